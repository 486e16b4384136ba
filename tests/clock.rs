//! Issue #8, clock jumps: `hearth serve` runs under libfaketime (Debian `faketime`, installed by
//! `make deps`), whose offset the test rewrites while hearth records: the wall clock goes back
//! an hour, forward an hour, and forward another hour. CLOCK_MONOTONIC stays real
//! (`FAKETIME_DONT_FAKE_MONOTONIC=1`), as it does when an NTP daemon or an owner sets the time.
//! The index and the timeline must stay ordered, without overlaps, and every frame the camera
//! sent must be recorded.

mod common;
mod hostile;
mod hub;

use std::path::Path;
use std::time::Duration;

use hostile::HostileCamera;
use hub::Hub;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[test]
fn wall_clock_jumps_keep_the_index_and_timeline_ordered() {
    assert!(Path::new(LIBFAKETIME).exists(), "{LIBFAKETIME} is missing: run `make deps` (Debian package faketime)");
    let camera = HostileCamera::start(&[]);
    let spec = hub::CameraSpec { name: "door".into(), url: camera.url(), extra: String::new() };
    let mut hub = Hub::new("clip_seconds = 2", &[spec]);
    let offset = hub.dir.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    hub.start_with_env(&[
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", offset.to_str().unwrap()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]);
    let url = hub.web_url();
    let client = hub.login(&url);
    for (after, jump) in [(5, "-1h"), (5, "+0"), (5, "+1h")] {
        std::thread::sleep(Duration::from_secs(after));
        std::fs::write(&offset, format!("{jump}\n")).unwrap();
    }
    std::thread::sleep(Duration::from_secs(5));
    // The camera ends its stream, so every frame it sent is in closed clips.
    camera.finish();
    std::thread::sleep(Duration::from_secs(1));
    let (status, _, body) = hub::fetch(client.get("api/cameras/door/timeline"));
    assert_eq!(status, 200);
    let timeline = hub::json(&body);
    hub.stop();
    let log = hub.log();
    assert!(log.contains("drift_ms=-3600"), "the clock never went back under libfaketime:\n{log}");
    assert!(!log.contains("panicked"), "{log}");

    let clips = hub.clips();
    let recorded: i64 = clips.iter().map(|c| c.frames).sum();
    assert_eq!(recorded, camera.frames_sent() as i64, "every frame recorded\n{log}");
    for pair in clips.windows(2) {
        assert!(
            pair[1].start_us >= pair[0].end_us,
            "clip {} starts {:.3} s before clip {} ends",
            pair[1].id,
            (pair[0].end_us - pair[1].start_us) as f64 / 1e6,
            pair[0].id
        );
        assert!(
            pair[1].id > pair[0].id,
            "index order differs from recording order: {} after {}",
            pair[1].id,
            pair[0].id
        );
    }
    // The timeline the UI draws: clips and gaps in order, none overlapping another.
    let mut spans: Vec<(i64, i64, String)> = Vec::new();
    for (kind, list) in [("clip", &timeline["clips"]), ("gap", &timeline["gaps"])] {
        for span in list.as_array().unwrap() {
            spans.push((span["start_us"].as_i64().unwrap(), span["end_us"].as_i64().unwrap(), kind.to_owned()));
        }
    }
    let listed: Vec<i64> =
        timeline["clips"].as_array().unwrap().iter().map(|c| c["start_us"].as_i64().unwrap()).collect();
    assert!(listed.windows(2).all(|w| w[0] <= w[1]), "timeline clips out of order: {listed:?}");
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "timeline spans overlap: {pair:?}");
    }
    let gaps: Vec<&(i64, i64, String)> = spans.iter().filter(|s| s.2 == "gap").collect();
    eprintln!(
        "{} clips, {recorded} frames, {} gap(s): {:?}",
        clips.len(),
        gaps.len(),
        gaps.iter().map(|g| format!("{:.1} s", (g.1 - g.0) as f64 / 1e6)).collect::<Vec<_>>()
    );
}
