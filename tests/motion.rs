//! Motion detection and events against a real camera: GStreamer's RTSP server plays a scripted
//! scene (a static picture, then a box crossing it; or the picture slowly darkening) and the
//! scene's own log says when things happened. The hub must see the box within a frame or two
//! of the truth, see nothing in a brightness ramp or outside its zones, and keep a thumbnail
//! only the passphrase opens. Doorbell webhooks become events too, announced live. A camera
//! recording in `events` mode records the crossing with its pre- and post-roll, and nothing else.
//! Motion runs in a `hearth-media` helper process: killed, it is restarted and motion goes on.

mod common;
mod hub;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{require_gst, RtspServer, RtspServerOptions};
use hub::{fetch, CameraSpec, Hub, WebClient};
use serde_json::{json, Value};

/// Analysed frames are 200 ms apart at 5 fps: "within a frame or two" is 0.5 s, which also
/// covers the encoder's and the network's latency on loopback.
const TOLERANCE_US: i64 = 500_000;

fn scene_times(log: &Path) -> Vec<(String, i64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (what, time) = l.split_once(' ')?;
            Some((what.to_owned(), time.parse().ok()?))
        })
        .collect()
}

fn time_of(log: &Path, what: &str) -> Option<i64> {
    scene_times(log).into_iter().find(|(w, _)| w == what).map(|(_, t)| t)
}

struct Scene {
    _server: RtspServer,
    _main: Option<RtspServer>,
    hub: Hub,
    owner: WebClient,
    log: std::path::PathBuf,
}

/// A hub watching one camera with motion detection, playing `scene`, until the scene logged
/// `until` (plus a few seconds for the event to end).
fn play(scene: &str, motion_extra: &str, box_y: f32, until: &str) -> Scene {
    play_on(scene, motion_extra, box_y, until, false, "")
}

/// `play`, with the scene as the camera's sub-stream (`sub_url`) when `sub` (the main stream
/// is then an unrelated moving pattern that motion detection must not look at), and
/// `camera_extra` in the camera's table.
fn play_on(scene: &str, motion_extra: &str, box_y: f32, until: &str, sub: bool, camera_extra: &str) -> Scene {
    require_gst();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.keep().join("scene.log");
    let options = RtspServerOptions {
        scene: Some((scene.to_owned(), log.clone())),
        box_y,
        scene_start: 4.0,
        ..RtspServerOptions::default()
    };
    let server = RtspServer::start(options);
    let main =
        sub.then(|| RtspServer::start(RtspServerOptions { pattern: "ball".into(), ..RtspServerOptions::default() }));
    let (url, sub_line) = match &main {
        Some(main) => (main.url(), format!("sub_url = \"{}\"\n", server.url())),
        None => (server.url(), String::new()),
    };
    let extra = format!("{sub_line}{camera_extra}[camera.motion]\nfps = 5\n{motion_extra}");
    let mut hub = Hub::new("clip_seconds = 4", &[CameraSpec { name: "porch".into(), url, extra }]);
    hub.start();
    let url = hub.web_url();
    let owner = hub.login(&url);
    let deadline = Instant::now() + Duration::from_secs(40);
    while time_of(&log, until).is_none() {
        assert!(Instant::now() < deadline, "the scene never reached `{until}`:\n{}", hub.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    // The event ends after 10 quiet analysed frames (2 s).
    std::thread::sleep(Duration::from_secs(4));
    Scene { _server: server, _main: main, hub, owner, log }
}

fn motion_events(owner: &WebClient) -> Vec<Value> {
    let (status, events) = owner.send_json("GET", "api/events?kind=motion", Value::Null);
    assert_eq!(status, 200, "{events}");
    events.as_array().unwrap().clone()
}

#[test]
fn a_box_crossing_the_scene_is_one_event_within_a_frame_or_two() {
    let Scene { _server, mut hub, owner, log, .. } = play("motion", "", 0.6, "gone");
    let events = motion_events(&owner);
    assert_eq!(events.len(), 1, "exactly one event for one crossing: {events:?}\n{}", hub.log());
    let event = &events[0];
    let (moving, gone) = (time_of(&log, "moving").unwrap(), time_of(&log, "gone").unwrap());
    let start = event["start_us"].as_i64().unwrap();
    let end = event["end_us"]
        .as_i64()
        .unwrap_or_else(|| panic!("the event has not ended: {event}\n{:?}\n{}", scene_times(&log), hub.log()));
    eprintln!("start {} ms, end {} ms after the truth", (start - moving) / 1000, (end - gone) / 1000);
    assert!((start - moving).abs() <= TOLERANCE_US, "started {} ms from the truth", (start - moving) / 1000);
    assert!((end - gone).abs() <= TOLERANCE_US, "ended {} ms from the truth", (end - gone) / 1000);
    // The box crossed at 60 % of the height: the bounding box says so.
    let bbox: Vec<f64> = event["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(bbox[1] > 0.5 && bbox[1] < 0.7, "bbox {bbox:?}");
    assert!(bbox[2] > 0.8, "the box crossed the whole width: {bbox:?}");
    // The thumbnail is a JPEG once unlocked (the test hub starts unlocked), and encrypted at rest.
    let (status, headers, jpeg) = fetch(owner.get(&format!("api/events/{}/thumbnail.jpg", event["id"])));
    assert_eq!(status, 200);
    assert_eq!(hub::header(&headers, "content-type"), Some("image/jpeg"));
    assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
    assert_eq!(owner.send_json("POST", "api/lock", Value::Null).0, 204);
    assert_eq!(fetch(owner.get(&format!("api/events/{}/thumbnail.jpg", event["id"]))).0, 423);
    hub.stop();
}

/// The `hearth-media` processes `pid` started (motion runs in one per camera).
fn media_helpers(pid: u32) -> Vec<u32> {
    let mut helpers = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid …; comm is cut to 15 characters.
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        if head.ends_with("(hearth-media") && ppid == Some(pid) {
            helpers.extend(entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()));
        }
    }
    helpers
}

#[test]
fn a_killed_motion_helper_is_restarted_and_the_next_crossing_is_seen() {
    require_gst();
    let log = tempfile::tempdir().unwrap().keep().join("scene.log");
    // A long static start: time to kill the helper and for its successor to learn the scene.
    let options = RtspServerOptions {
        scene: Some(("motion".to_owned(), log.clone())),
        box_y: 0.6,
        scene_start: 14.0,
        ..RtspServerOptions::default()
    };
    let server = RtspServer::start(options);
    let extra = "[camera.motion]\nfps = 5\n".to_owned();
    let mut hub = Hub::new("clip_seconds = 4", &[CameraSpec { name: "porch".into(), url: server.url(), extra }]);
    hub.start();
    let url = hub.web_url();
    let owner = hub.login(&url);
    let pid = hub.pid().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        if let Some(&helper) = media_helpers(pid).first() {
            break helper;
        }
        assert!(Instant::now() < deadline, "no motion helper started:\n{}", hub.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(2));
    assert!(std::process::Command::new("kill").args(["-KILL", &first.to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let helpers = media_helpers(pid);
        if !helpers.is_empty() && !helpers.contains(&first) {
            break;
        }
        assert!(Instant::now() < deadline, "the motion helper was not restarted:\n{}", hub.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(hub.log().contains("motion helper stopped; restarting it"), "{}", hub.log());
    let deadline = Instant::now() + Duration::from_secs(40);
    while time_of(&log, "gone").is_none() {
        assert!(Instant::now() < deadline, "the scene never ended:\n{}", hub.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(4));
    let events = motion_events(&owner);
    assert_eq!(events.len(), 1, "the crossing after the restart, once: {events:?}\n{}", hub.log());
    let start = events[0]["start_us"].as_i64().unwrap();
    assert!((start - time_of(&log, "moving").unwrap()).abs() <= TOLERANCE_US, "{events:?}");
    assert!(events[0]["end_us"].as_i64().is_some(), "{events:?}");
    hub.stop();
    drop(server);
}

#[test]
fn motion_watches_the_sub_stream_when_there_is_one() {
    // The main stream's ball moves all the time; the sub-stream shows one crossing.
    let Scene { _server, mut hub, owner, log, .. } = play_on("motion", "", 0.6, "gone", true, "");
    let events = motion_events(&owner);
    assert_eq!(events.len(), 1, "one crossing on the sub-stream: {events:?}\n{}", hub.log());
    let start = events[0]["start_us"].as_i64().unwrap();
    assert!((start - time_of(&log, "moving").unwrap()).abs() <= TOLERANCE_US);
    let (_, connections) = owner.send_json("GET", "api/connections", Value::Null);
    let sub_port = format!("127.0.0.1:{}", _server.port());
    let open = connections["open"].as_array().unwrap();
    assert!(open.iter().any(|c| c["remote"] == sub_port.as_str()), "the sub-stream is listed: {connections}");
    assert!(connections["allowed"].as_array().unwrap().iter().any(|c| c["address"] == sub_port.as_str()));
    hub.stop();
}

#[test]
fn in_events_mode_the_crossing_is_recorded_with_its_pre_and_post_roll() {
    let recording = "record = \"events\"\npre_roll_seconds = 2\npost_roll_seconds = 2\n";
    let Scene { _server, mut hub, owner, .. } = play_on("motion", "", 0.6, "gone", false, recording);
    let events = motion_events(&owner);
    assert_eq!(events.len(), 1, "{events:?}\n{}", hub.log());
    let start = events[0]["start_us"].as_i64().unwrap();
    let end = events[0]["end_us"].as_i64().expect("the event ended");
    // A clip closes once no next event's pre-roll could continue it (pre-roll + 2 s after its
    // post-roll): wait for the one that holds the post-roll.
    let deadline = Instant::now() + Duration::from_secs(20);
    let clips = loop {
        let clips = hub.clips();
        if clips.last().is_some_and(|c| c.end_us >= end + 2_000_000) {
            break clips;
        }
        assert!(Instant::now() < deadline, "no clip holds the post-roll: {clips:?}\n{}", hub.log());
        std::thread::sleep(Duration::from_millis(250));
    };
    // The recording is cut where the recorder cuts clips (every 4 s here), contiguously: one
    // span of clips around the one event.
    for pair in clips.windows(2) {
        assert_eq!(pair[0].end_us, pair[1].start_us, "one contiguous recording: {clips:?}");
    }
    let (first, last) = (&clips[0], &clips[clips.len() - 1]);
    // From the keyframe (every 2 s) at or before the pre-roll, to the fragment after the post-roll.
    let pre_roll = start - first.start_us;
    assert!((2_000_000..=4_300_000).contains(&pre_roll), "pre-roll {} ms: {clips:?}", pre_roll / 1000);
    let post_roll = last.end_us - end;
    assert!((2_000_000..=3_300_000).contains(&post_roll), "post-roll {} ms: {clips:?}", post_roll / 1000);
    for clip in &clips {
        assert!(clip.event);
        let probe = common::ffprobe_frames(&hub.decrypt(clip.id));
        assert_eq!(probe.frame_count as i64, clip.frames, "the whole clip decodes");
    }
    hub.stop();
}

#[test]
fn a_brightness_ramp_is_not_motion() {
    let Scene { _server, mut hub, owner, .. } = play("ramp", "", 0.6, "ramp_end");
    assert_eq!(motion_events(&owner), Vec::<Value>::new(), "{}", hub.log());
    hub.stop();
}

#[test]
fn motion_outside_the_zones_is_ignored() {
    // Watch only the top third; the box crosses at 60 % of the height.
    let zone = "zones = [[[0.0, 0.0], [1.0, 0.0], [1.0, 0.33], [0.0, 0.33]]]\n";
    let Scene { _server, mut hub, owner, .. } = play("motion", zone, 0.6, "gone");
    assert_eq!(motion_events(&owner), Vec::<Value>::new(), "{}", hub.log());
    hub.stop();
}

#[test]
fn a_doorbell_webhook_is_an_event_announced_live() {
    require_gst();
    let server = RtspServer::start(RtspServerOptions::default());
    let token = "a doorbell's long secret token";
    let camera = CameraSpec { name: "door".into(), url: server.url(), extra: format!("hook_token = \"{token}\"") };
    let mut hub = Hub::new("", &[camera]);
    hub.start();
    let url = hub.web_url();
    let owner = hub.login(&url);

    // The page's live feed (server-sent events), read on a thread.
    let (tx, rx) = std::sync::mpsc::channel();
    let feed = owner.get("api/events/stream").call().expect("event stream opens");
    std::thread::spawn(move || {
        for line in BufReader::new(feed.into_reader()).lines() {
            let Ok(line) = line else { break };
            if let Some(data) = line.strip_prefix("data:") {
                let _ = tx.send(data.trim().to_owned());
            }
        }
    });

    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let hook = format!("{url}api/hooks/door/doorbell");
    let refused = agent.post(&hook).set("authorization", "Bearer wrong token entirely").call();
    assert!(matches!(refused, Err(ureq::Error::Status(401, _))));
    let refused =
        agent.post(&format!("{url}api/hooks/garage/doorbell")).set("authorization", &format!("Bearer {token}")).call();
    assert!(matches!(refused, Err(ureq::Error::Status(401, _))), "an unknown camera looks the same");
    let accepted = agent.post(&hook).set("authorization", &format!("Bearer {token}")).call().unwrap();
    assert_eq!(accepted.status(), 202);
    let id = serde_json::from_str::<Value>(&accepted.into_string().unwrap()).unwrap()["id"].as_i64().unwrap();
    let via_query = agent.post(&format!("{hook}?token={}", token.replace(' ', "%20"))).call().unwrap();
    assert_eq!(via_query.status(), 202, "devices that can only call a URL");

    let notice: Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(5)).expect("announced live")).unwrap();
    assert_eq!(
        (notice["id"].as_i64(), notice["kind"].as_str(), notice["phase"].as_str()),
        (Some(id), Some("doorbell"), Some("instant"))
    );
    let (_, events) = owner.send_json("GET", "api/events?kind=doorbell&camera=door", json!(null));
    assert_eq!(events.as_array().unwrap().len(), 2);
    let (_, denied) = owner.send_json("GET", "api/audit?action=denied", json!(null));
    assert!(denied.as_array().unwrap().iter().any(|e| e["result"] == "bad_hook_token"));
    hub.stop();
}
