//! Issue #8, camera faults: cameras that restart, stall, send malformed SDP, the wrong RTP
//! payload type, huge or truncated RTP packets, garbage, endless NAL units and timestamp
//! jumps. One hub records a dozen scripted hostile cameras at once (tests/hostile): each
//! misbehaves on its first connection and behaves afterwards. hearth must log, reconnect,
//! never panic, record everything the cameras sent once they behaved, and keep its memory
//! bounded.

mod common;
mod hostile;
mod hub;

use std::time::{Duration, Instant};

use hostile::{Fault, HostileCamera};
use hub::{CameraSpec, Hub};

/// Resident memory allowed for the whole hub while recording (debug build, 14 cameras),
/// sampled every 500 ms. Not the high-water mark: unlocking the identity at start-up (age's
/// scrypt) briefly takes ~512 MiB, before any camera connects.
const MAX_RSS_KIB: u64 = 200 * 1024;

fn fault_name(fault: Fault) -> String {
    format!("{fault:?}").to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-").trim_matches('-').to_owned()
}

/// Faults that end the RTSP session (and are logged); the others are tolerated: a payload type
/// other than the SDP's still carries valid H.264, and retina does not check it.
fn breaks_session(camera: &str) -> bool {
    camera != "wrongpayloadtype"
}

#[test]
fn hostile_cameras_are_survived_and_recorded_once_they_behave() {
    let faults = [
        Fault::Silent,
        Fault::StallAfter(40),
        Fault::MalformedSdp,
        Fault::NoVideoSdp,
        Fault::BadParameterSets,
        Fault::WrongPayloadType,
        Fault::HugeRtp,
        Fault::TruncatedRtp,
        Fault::EndlessFuA,
        Fault::TimestampJumps,
        Fault::Garbage,
        Fault::CloseMidFrame,
        Fault::RtcpOnly,
    ];
    hostile::video(); // encode once before the clock starts
    let mut cameras: Vec<(String, HostileCamera)> =
        faults.iter().map(|f| (fault_name(*f), HostileCamera::start(&[*f]))).collect();
    // One more camera that reboots twice while being recorded.
    cameras.push(("restarts".into(), HostileCamera::start(&[])));
    let specs: Vec<CameraSpec> = cameras
        .iter()
        .map(|(name, cam)| CameraSpec { name: name.clone(), url: cam.url(), extra: String::new() })
        .collect();
    let mut hub = Hub::new("clip_seconds = 2", &specs);
    hub.start();
    let url = hub.web_url();
    let client = hub.login(&url);
    let started = Instant::now();

    std::thread::sleep(Duration::from_secs(4));
    cameras.last_mut().unwrap().1.restart(Duration::from_secs(2));
    std::thread::sleep(Duration::from_secs(3));
    cameras.last_mut().unwrap().1.restart(Duration::from_millis(300));

    // Every camera must come back: reconnected after its fault and recording.
    let mut peak_kib = 0;
    let deadline = started + Duration::from_secs(60);
    loop {
        assert!(hub.is_serving(), "hearth serve died\n{}", hub.log());
        if let Some((rss, _)) = hub.memory_kib() {
            peak_kib = peak_kib.max(rss);
        }
        let (status, _, body) = hub::fetch(client.get("api/cameras"));
        assert_eq!(status, 200, "the web UI keeps serving");
        let list = hub::json(&body);
        let offline: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] != "online")
            .map(|c| format!("{}: {} {}", c["name"], c["status"], c["last_error"]))
            .collect();
        let unreconnected: Vec<&str> =
            cameras.iter().filter(|(n, c)| breaks_session(n) && c.connections() < 2).map(|(n, _)| n.as_str()).collect();
        if offline.is_empty() && unreconnected.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "60 s on, cameras not back: offline {offline:?}, never reconnected {unreconnected:?}\n{}",
            hub.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let recovered_after = started.elapsed();
    // Record a few seconds of good video from everyone, then the cameras end their streams
    // cleanly so that everything they sent is in the index after the stop.
    std::thread::sleep(Duration::from_secs(5));
    for (_, camera) in &cameras {
        camera.finish();
    }
    std::thread::sleep(Duration::from_secs(2));
    if let Some((rss, _)) = hub.memory_kib() {
        peak_kib = peak_kib.max(rss);
    }
    hub.stop();
    let log = hub.log();
    assert!(!log.contains("panicked"), "{log}");

    let clips = hub.clips();
    let mut report =
        vec![format!("all cameras back {recovered_after:?} after start; largest RSS sample {} MiB", peak_kib / 1024)];
    for (name, camera) in &cameras {
        let mine: Vec<_> = clips.iter().filter(|c| &c.camera == name).collect();
        let recorded: i64 = mine.iter().map(|c| c.frames).sum();
        let (sent, sent_all) = (camera.frames_sent() as i64, camera.frames_sent_all() as i64);
        report.push(format!(
            "{name}: {} connections, {} clips, {recorded} frames recorded; sent {sent} by good connections, \
             {sent_all} in all",
            camera.connections(),
            mine.len()
        ));
        eprintln!("{}", report.last().unwrap());
        if breaks_session(name) {
            assert!(
                log.lines().any(|l| l.contains("camera offline") && l.contains(&format!("camera={name}"))),
                "{name}: the fault was not logged\n{log}"
            );
            assert!(sent > 100, "{name}: the good connection streamed only {sent} frames");
            assert!(recorded >= sent, "{name}: {recorded} frames recorded but the camera sent {sent} good ones\n{log}");
            assert!(recorded <= sent_all, "{name}: {recorded} frames recorded but the camera sent only {sent_all}");
        } else {
            // Harmless to a recorder: everything sent is recorded, in one session.
            assert_eq!(camera.connections(), 1, "{name}");
            assert_eq!(recorded, sent_all, "{name}: every frame recorded");
        }
        for pair in mine.windows(2) {
            assert!(pair[1].start_us >= pair[0].end_us, "{name}: clips {} and {} overlap", pair[0].id, pair[1].id);
        }
    }
    // The timestamp jumps: 7 s forward (plus the frame's own 40 ms) ends the clip and records a
    // gap; going backwards is beyond retina's policy and ends the session.
    assert!(log.contains("timestamp jump of 7.040 s"), "{log}");
    assert!(log.contains("camera=timestampjumps") && log.contains("Timestamp jumped -"), "{log}");
    let check = hub.run(&["check"]);
    let check_report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success() && check_report.contains("0 damaged"), "{check_report}");
    eprintln!("{}", report.join("\n"));
    assert!(peak_kib < MAX_RSS_KIB, "RSS reached {peak_kib} KiB");
}
