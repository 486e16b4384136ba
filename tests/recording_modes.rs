//! Recording modes against a real camera (GStreamer's RTSP server, a keyframe every 2 s) and a
//! doorbell that calls the hub's webhook:
//! - `events`: nothing is written until the doorbell rings; then one clip holding the
//!   pre-roll (from the in-memory ring), the ring and the post-roll, playable (ffprobe decodes
//!   it from its first frame); presses whose windows overlap make one clip; nothing between.
//! - `both`: everything is written, and exactly the clips around the press are marked as event
//!   clips (kept for the event retention period).

mod common;
mod hub;

use std::time::{Duration, Instant};

use common::{ffprobe_frames, require_gst, wait_until, RtspServer, RtspServerOptions};
use hub::{CameraSpec, ClipRow, Hub, WebClient};
use serde_json::Value;

const TOKEN: &str = "the doorbell's own long token";
const PRE_ROLL_S: i64 = 3;
const POST_ROLL_S: i64 = 4;
const S: i64 = 1_000_000;
/// The test camera's keyframe interval: an event clip starts at the keyframe before its
/// pre-roll, so at most this much earlier.
const GOP_US: i64 = 2 * S;
/// Fragments are cut at most 1 s apart, so a clip ends up to 1 s after its post-roll; plus
/// the wall-clock anchoring's rounding and loopback latency.
const END_SLACK_US: i64 = 1_300_000;

fn hub_recording(mode: &str, storage: &str) -> (RtspServer, Hub, String, WebClient) {
    require_gst();
    let server = RtspServer::start(RtspServerOptions::default());
    let extra = format!(
        "hook_token = \"{TOKEN}\"\nrecord = \"{mode}\"\npre_roll_seconds = {PRE_ROLL_S}\npost_roll_seconds = {POST_ROLL_S}"
    );
    let mut hub = Hub::new(storage, &[CameraSpec { name: "door".into(), url: server.url(), extra }]);
    hub.start();
    let url = hub.web_url();
    let owner = hub.login(&url);
    wait_until(Duration::from_secs(30), "the camera is online", || {
        let (_, cameras) = owner.send_json("GET", "api/cameras", Value::Null);
        cameras[0]["status"] == "online"
    });
    (server, hub, url, owner)
}

/// Presses the doorbell; returns the event's time.
fn ring(url: &str, owner: &WebClient) -> i64 {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let response = agent
        .post(&format!("{url}api/hooks/door/doorbell"))
        .set("authorization", &format!("Bearer {TOKEN}"))
        .call()
        .expect("the webhook accepts the press");
    let id = serde_json::from_str::<Value>(&response.into_string().unwrap()).unwrap()["id"].as_i64().unwrap();
    let (_, events) = owner.send_json("GET", "api/events?camera=door&kind=doorbell", Value::Null);
    let event = events.as_array().unwrap().iter().find(|e| e["id"] == id).cloned();
    event.and_then(|e| e["start_us"].as_i64()).unwrap_or_else(|| panic!("event {id} not listed: {events}"))
}

fn seconds(us: i64) -> f64 {
    us as f64 / 1e6
}

/// The clip is a playable MP4 from its first frame to its last, as long as the index says.
fn assert_playable(hub: &Hub, clip: &ClipRow) {
    let probe = ffprobe_frames(&hub.decrypt(clip.id));
    assert_eq!(probe.frame_count as i64, clip.frames, "every frame decodes: {clip:?}");
    assert!(probe.pts.first().is_some_and(|pts| pts.abs() < 0.001), "starts at zero: {:?}", probe.pts.first());
    let last = probe.pts.last().copied().unwrap_or_default();
    let length = seconds(clip.end_us - clip.start_us);
    assert!((last - (length - 0.04)).abs() < 0.1, "the last frame at {last} s of a {length} s clip");
}

#[test]
fn events_mode_records_only_around_events_with_their_pre_roll() {
    let (_server, mut hub, url, owner) = hub_recording("events", "clip_seconds = 300");
    // Long enough for the ring to hold the whole pre-roll, and for continuous recording to
    // have closed clips, had it been on.
    std::thread::sleep(Duration::from_secs(8));
    assert!(hub.clips().is_empty(), "nothing is recorded without an event: {:?}", hub.clips());

    let pressed = ring(&url, &owner);
    // The clip closes after the post-roll, once no pre-roll of a next event could continue it.
    let clips = hub.wait_for_clips(1, Duration::from_secs(30));
    let clip = &clips[0];
    assert!(clip.event, "{clip:?}");
    let pre_roll = pressed - clip.start_us;
    assert!(
        (PRE_ROLL_S * S..=PRE_ROLL_S * S + GOP_US + 200_000).contains(&pre_roll),
        "the clip starts {} s before the press (pre-roll {PRE_ROLL_S} s, back to a keyframe)",
        seconds(pre_roll)
    );
    let post_roll = clip.end_us - pressed;
    assert!(
        (POST_ROLL_S * S..=POST_ROLL_S * S + END_SLACK_US).contains(&post_roll),
        "the clip ends {} s after the press (post-roll {POST_ROLL_S} s)",
        seconds(post_roll)
    );
    assert_playable(&hub, clip);

    // Two presses 2 s apart: their windows overlap, one clip.
    std::thread::sleep(Duration::from_secs(6));
    let first = ring(&url, &owner);
    std::thread::sleep(Duration::from_secs(2));
    let second = ring(&url, &owner);
    let clips = hub.wait_for_clips(2, Duration::from_secs(30));
    let merged = &clips[1];
    assert!(merged.start_us <= first - PRE_ROLL_S * S && merged.end_us >= second + POST_ROLL_S * S, "{merged:?}");
    assert_playable(&hub, merged);

    // Nothing more, before or after: between the two clips the camera was not recorded.
    std::thread::sleep(Duration::from_secs(3));
    let clips = hub.clips();
    assert_eq!(clips.len(), 2, "{clips:?}");
    assert!(clips[0].end_us < clips[1].start_us - S, "a gap between the events: {clips:?}");
    let (_, timeline) = owner.send_json(
        "GET",
        "api/cameras/door/timeline?start=2000-01-01T00:00:00Z&end=2100-01-01T00:00:00Z",
        Value::Null,
    );
    assert_eq!(timeline["clips"].as_array().map(Vec::len), Some(2), "{timeline}");
    let log = hub.log();
    assert!(!log.contains("panicked"), "{log}");
    hub.stop();
}

#[test]
fn both_mode_records_everything_and_marks_the_clips_around_events() {
    let (_server, mut hub, url, owner) = hub_recording("both", "clip_seconds = 2");
    hub.wait_for_clips(3, Duration::from_secs(30));
    let pressed = ring(&url, &owner);
    let window = (pressed - PRE_ROLL_S * S, pressed + POST_ROLL_S * S);
    // Wait until clips past the window have closed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let clips = loop {
        let clips = hub.clips();
        if clips.last().is_some_and(|c| c.start_us > window.1 + 2 * S) {
            break clips;
        }
        assert!(Instant::now() < deadline, "recording stopped: {clips:?}\n{}", hub.log());
        std::thread::sleep(Duration::from_millis(250));
    };
    for pair in clips.windows(2) {
        assert_eq!(pair[0].end_us, pair[1].start_us, "continuous: {clips:?}");
    }
    for clip in &clips {
        let overlaps = clip.start_us < window.1 && clip.end_us > window.0;
        // A clip that merely touches the window's edge by a fragment may go either way.
        let near_edge = (clip.end_us - window.0).abs() < S || (clip.start_us - window.1).abs() < S;
        if !near_edge {
            assert_eq!(clip.event, overlaps, "window {window:?}, clip {clip:?}");
        }
    }
    assert!(clips.iter().filter(|c| c.event).count() >= 3, "{clips:?}");
    assert_playable(&hub, clips.iter().find(|c| c.event).unwrap());
    hub.stop();
}
