//! The HTTP API against the real server recording a real RTSP stream (GStreamer): JSON
//! endpoints, clip playback with ranges, export across clips, lock/unlock, snapshots, live
//! view over WebSocket, errors, and the OpenAPI document.

mod common;
mod hub;

use std::time::{Duration, Instant};

use common::{ffprobe_frames, require_gst, RtspServer, RtspServerOptions};
use hub::{assert_error, fetch, header, json, CameraSpec, ClipRow, Hub, PASSPHRASE};

struct Recorded {
    _server: RtspServer,
    hub: Hub,
    url: String,
    clips: Vec<ClipRow>,
}

/// Records ~14 s of GStreamer in 4 s clips and leaves the hub serving.
fn recorded_hub() -> Recorded {
    require_gst();
    let server = RtspServer::start(RtspServerOptions { audio: true, ..Default::default() });
    let camera = CameraSpec { name: "door".into(), url: server.url(), extra: "audio = true".into() };
    let mut hub = Hub::new("clip_seconds = 4", &[camera]);
    hub.start();
    let url = hub.web_url();
    let clips = hub.wait_for_clips(3, Duration::from_secs(40));
    Recorded { _server: server, hub, url, clips }
}

#[test]
fn api_serves_recordings_with_ranges_export_and_errors() {
    let Recorded { _server, mut hub, url, clips } = recorded_hub();
    let http = hub.login(&url);
    let get = |path: &str| http.get(path);

    // Cameras and clips.
    let (status, _, body) = fetch(get("/api/cameras"));
    assert_eq!(status, 200);
    let cameras = json(&body);
    assert_eq!(cameras[0]["name"], "door");
    assert_eq!(cameras[0]["status"], "online", "{}", hub.log());
    assert_eq!(cameras[0]["width"], 640);
    assert!(cameras[0]["codec"].as_str().unwrap().starts_with("avc1.64"));
    let (_, _, body) = fetch(get("/api/clips?camera=door"));
    let listed = json(&body);
    assert!(listed.as_array().unwrap().len() >= clips.len());
    assert_eq!(listed[0]["id"], clips[0].id);
    let (_, _, body) = fetch(get("/api/cameras/door/timeline"));
    let timeline = json(&body);
    assert!(timeline["clips"].as_array().unwrap().len() >= clips.len());
    assert!(timeline["recording"]["start_us"].is_i64(), "the open clip shows as recording: {timeline}");

    // Whole clip, identical to the CLI's decryption.
    let clip = &clips[1];
    let (status, headers, whole) = fetch(get(&format!("/api/clips/{}.mp4", clip.id)));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("video/mp4"));
    assert_eq!(header(&headers, "accept-ranges"), Some("bytes"));
    assert_eq!(whole, std::fs::read(hub.decrypt(clip.id)).unwrap());
    let len = whole.len();

    // Ranges: start, middle across age chunks, open-ended, suffix, and out of range.
    for (range, start, end) in [
        ("bytes=0-99", 0, 99),
        ("bytes=70000-200000", 70_000, 200_000.min(len - 1)),
        (&format!("bytes={}-", len - 10)[..], len - 10, len - 1),
        ("bytes=-500", len - 500, len - 1),
    ] {
        let (status, headers, body) = fetch(get(&format!("/api/clips/{}.mp4", clip.id)).set("Range", range));
        assert_eq!(status, 206, "{range}");
        assert_eq!(header(&headers, "content-range"), Some(&format!("bytes {start}-{end}/{len}")[..]), "{range}");
        assert_eq!(body, &whole[start..=end], "{range}");
    }
    let (status, headers, _) =
        fetch(get(&format!("/api/clips/{}.mp4", clip.id)).set("Range", &format!("bytes={len}-")));
    assert_eq!(status, 416);
    assert_eq!(header(&headers, "content-range"), Some(&format!("bytes */{len}")[..]));

    // Export across all closed clips: one continuous MP4.
    let (start, end) = (&clips[0].start, &clips[clips.len() - 1].end);
    let (status, headers, body) = fetch(get(&format!("/api/cameras/door/export.mp4?start={start}&end={end}")));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(header(&headers, "content-disposition").unwrap_or("").starts_with("attachment"));
    let exported = hub.dir.path().join("export.mp4");
    std::fs::write(&exported, &body).unwrap();
    let probe = ffprobe_frames(&exported);
    let frames: i64 = clips.iter().map(|c| c.frames).sum();
    assert_eq!(probe.frame_count as i64, frames, "export frame count");
    assert!(probe.has_audio);
    assert!(probe.pts.windows(2).all(|w| w[1] > w[0]), "export timestamps must increase across clips");
    let expected_s = (clips[clips.len() - 1].end_us - clips[0].start_us) as f64 / 1e6;
    let last = probe.pts.last().copied().unwrap_or_default();
    assert!((last - expected_s).abs() < 0.2, "export ends at {last} s, clips span {expected_s} s");

    // Snapshot.
    let (status, headers, body) = fetch(get("/api/cameras/door/snapshot.jpg"));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("image/jpeg"));
    assert_eq!(&body[..2], &[0xff, 0xd8]);

    // Errors: JSON with the right status, never a panic or a 500.
    assert_error(get("/api/clips/999999.mp4"), 404, "no_such_clip");
    assert_error(get("/api/clips/nope.mp4"), 404, "no_such_clip");
    assert_error(get("/api/clips?start=yesterday"), 400, "bad_time");
    assert_error(get(&format!("/api/clips?start={end}&end={start}")), 400, "bad_range");
    assert_error(get("/api/cameras/garage/timeline"), 404, "no_such_camera");
    assert_error(
        get("/api/cameras/door/export.mp4?start=2001-01-01T00:00:00Z&end=2001-01-02T00:00:00Z"),
        404,
        "empty_range",
    );
    assert_error(get("/api/cameras/door/export.mp4"), 400, "bad_range");
    assert_error(get("/api/nothing/here"), 404, "no_such_route");
    assert_error(get("/api/cameras/%FF%FE/timeline"), 400, "bad_request");
    assert_error(get("/api/clips?start=1"), 400, "bad_time");
    assert_error(get("/api/clips?start=1&start=2"), 400, "bad_request");
    assert_error(http.request("DELETE", "api/clips"), 405, "method_not_allowed");
    assert_error(get("/api/clips/..%2F..%2Fidentity.age"), 404, "no_such_clip");
    assert_error(http.post("api/unlock").set("content-type", "application/json"), 400, "bad_body");

    // Lock: playback and export refuse; live and snapshots go on. Unlock again.
    let post = |path: &str| http.post(path);
    assert_eq!(fetch(post("/api/lock")).0, 204);
    assert_eq!(json(&fetch(get("/api/status")).2)["locked"], true);
    assert_error(get(&format!("/api/clips/{}.mp4", clip.id)), 423, "locked");
    assert_error(get(&format!("/api/cameras/door/export.mp4?start={start}&end={end}")), 423, "locked");
    assert_eq!(fetch(get("/api/cameras/door/snapshot.jpg")).0, 200);
    let wrong = post("/api/unlock").set("content-type", "application/json");
    let response = wrong.send_string(r#"{"passphrase":"guess"}"#);
    assert!(matches!(response, Err(ureq::Error::Status(403, _))));
    let right = post("/api/unlock")
        .set("content-type", "application/json")
        .send_string(&serde_json::json!({ "passphrase": PASSPHRASE }).to_string());
    assert_eq!(right.unwrap().status(), 204);
    assert_eq!(fetch(get(&format!("/api/clips/{}.mp4", clip.id))).0, 200);

    // Storage.
    let storage = json(&fetch(get("/api/storage")).2);
    assert!(storage["used_bytes"].as_i64().unwrap() > 0);
    assert_eq!(storage["cameras"][0]["name"], "door");
    hub.stop();

    // A camera taken out of the config keeps its recordings until retention removes them:
    // still listed, playable and exportable; only live and snapshots are gone with it.
    let config = std::fs::read_to_string(&hub.config).unwrap();
    std::fs::write(&hub.config, &config[..config.find("[[camera]]").unwrap()]).unwrap();
    hub.start();
    let url = hub.web_url();
    let owner = hub.login(&url);
    let listed = json(&fetch(owner.get("api/clips?camera=door")).2);
    let listed = listed.as_array().unwrap();
    assert!(listed.len() >= clips.len() && listed.iter().all(|c| c["camera"] == "door"), "{listed:?}");
    let (status, _, body) = fetch(owner.get(&format!("api/clips/{}.mp4", clip.id)));
    assert_eq!((status, body.len()), (200, len));
    assert_eq!(fetch(owner.get("api/cameras/door/timeline")).0, 200);
    assert_eq!(fetch(owner.get(&format!("api/cameras/door/export.mp4?start={start}&end={end}"))).0, 200);
    assert_eq!(fetch(owner.get("api/cameras/door/snapshot.jpg")).0, 404);
    assert_eq!(fetch(owner.get("api/cameras/garage/timeline")).0, 404, "never configured nor recorded");
    hub.stop();
}

#[test]
fn live_view_streams_fmp4_fragments_over_websocket() {
    let Recorded { _server, mut hub, url, .. } = recorded_hub();
    let mut socket = hub.login(&url).websocket("api/cameras/door/live").expect("websocket connects");
    let started = Instant::now();
    let header = match socket.read().unwrap() {
        tungstenite::Message::Text(text) => serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        other => panic!("expected the JSON header first, got {other:?}"),
    };
    assert!(header["mime"].as_str().unwrap().starts_with("video/mp4; codecs=\"avc1.64"), "{header}");
    let init = socket.read().unwrap().into_data();
    assert_eq!(&init[4..8], b"ftyp", "then the init segment");
    let mut fragments = 0;
    let mut last_time = None;
    while started.elapsed() < Duration::from_secs(8) {
        let data = socket.read().unwrap().into_data();
        assert_eq!(&data[4..8], b"moof");
        let time = first_tfdt(&data);
        if let Some(previous) = last_time {
            assert!(time > previous, "live decode times must increase across clips: {previous} then {time}");
        }
        last_time = Some(time);
        fragments += 1;
    }
    // The first viewer starts at the next keyframe (≤ 2 s), then ~1 fragment a second; 4 s
    // clips roll over meanwhile.
    assert!(fragments >= 5, "only {fragments} fragments in 8 s");
    drop(socket);
    hub.stop();
}

/// The first `tfdt` decode time in a fragment.
fn first_tfdt(fragment: &[u8]) -> u64 {
    let at = fragment.windows(4).position(|w| w == b"tfdt").expect("tfdt");
    match fragment[at + 4] {
        1 => u64::from_be_bytes(fragment[at + 8..at + 16].try_into().unwrap()),
        _ => u64::from(u32::from_be_bytes(fragment[at + 8..at + 12].try_into().unwrap())),
    }
}

#[test]
fn openapi_document_describes_every_route() {
    let doc: serde_json::Value = serde_json::from_str(include_str!("../src/web/openapi.json")).unwrap();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let documented: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let sources = [
        include_str!("../src/web/api.rs"),
        include_str!("../src/web/video.rs"),
        include_str!("../src/web/account.rs"),
        include_str!("../src/web/admin.rs"),
        include_str!("../src/web/events.rs"),
    ];
    for source in sources {
        for route in source.split(".route(\"").skip(1) {
            let path = format!("/api{}", route.split('"').next().unwrap());
            assert!(documented.contains(&path), "route {path} is missing from src/web/openapi.json");
        }
    }
    for path in &documented {
        let relative = path.trim_start_matches("/api");
        let in_source = sources.iter().any(|s| s.contains(&format!(".route(\"{relative}\"")));
        assert!(in_source, "src/web/openapi.json documents {path}, which the router does not have");
    }
}

#[test]
fn https_with_the_certificate_hearth_init_made() {
    let mut hub = Hub::new("", &[]);
    let text = std::fs::read_to_string(&hub.config).unwrap().replace("tls = \"auto\"", "tls = \"on\"");
    std::fs::write(&hub.config, text).unwrap();
    hub.start();
    let url = hub.web_url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let port = url.trim_end_matches('/').rsplit(':').next().unwrap().to_owned();
    let cert = hub.data_dir.join("tls/cert.pem");
    // Trusting the hub's own certificate is enough: it names localhost and 127.0.0.1.
    for host in ["localhost", "127.0.0.1"] {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&cert)
            .arg(format!("https://{host}:{port}/api/status"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{host}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(json(&out.stdout)["error"], "unauthenticated", "TLS works; the API wants a session");
    }
    // Without trusting it, a client refuses: the connection really is authenticated TLS.
    let untrusted = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("https://localhost:{port}/"))
        .output()
        .unwrap();
    assert!(!untrusted.status.success());
    hub.stop();
}
