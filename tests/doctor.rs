//! `hearth doctor` as a homeowner runs it: the real binary against a good hub (its camera a
//! real listening socket on 127.0.0.1) and against broken ones — a bad key, an unreachable
//! camera, the example config left in place, no config at all.

mod common;
mod hub;

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hub::{hearth_bin, CameraSpec, Hub};

fn camera(name: &str, port: u16) -> CameraSpec {
    CameraSpec { name: name.to_owned(), url: format!("rtsp://127.0.0.1:{port}/stream1"), extra: String::new() }
}

fn doctor(config: &std::path::Path) -> (Output, String) {
    let out = Command::new(hearth_bin()).arg("--config").arg(config).arg("doctor").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

/// The report line for `check`, e.g. `line(&out, "camera door")`.
fn line<'a>(report: &'a str, check: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(&format!("{check} "))))
        .unwrap_or_else(|| panic!("no `{check}` line in:\n{report}"))
}

#[test]
fn a_good_hub_passes_with_every_check_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hub = Hub::new("max_bytes = \"1GB\"", &[camera("door", port)]);
    let (out, report) = doctor(&hub.config);
    assert!(out.status.success(), "doctor failed a good hub:\n{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!report.contains("FAIL"), "{report}");
    for check in [
        "config",
        "key",
        "data dir",
        "disk space",
        "write speed",
        "media helper",
        "clock",
        "certificate",
        "web exposure",
    ] {
        line(&report, check);
    }
    assert!(line(&report, "camera door").starts_with("ok "), "{report}");
    assert!(line(&report, "camera door").contains(&format!("127.0.0.1:{port}")), "{report}");
    assert!(line(&report, "write speed").contains("MB/s"), "{report}");
    assert!(line(&report, "web exposure").starts_with("ok "), "loopback is not exposed:\n{report}");
    assert!(line(&report, "certificate").starts_with("ok "), "init's certificate is fresh:\n{report}");
    assert!(line(&report, "media helper").starts_with("ok "), "{report}");
    assert!(line(&report, "media helper").contains("hearth-media"), "{report}");
    // The write test cleans up after itself.
    assert!(
        hub.files().iter().all(|p| !p.to_string_lossy().contains(".doctor-")),
        "left a test file: {:?}",
        hub.files()
    );
}

#[test]
fn an_unreachable_camera_fails_naming_it_within_the_timeout() {
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let down_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hub = Hub::new("", &[camera("porch", up.local_addr().unwrap().port()), camera("garage", down_port)]);
    let started = Instant::now();
    let (out, report) = doctor(&hub.config);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(started.elapsed() < Duration::from_secs(20), "doctor took {:?}", started.elapsed());
    let garage = line(&report, "camera garage");
    assert!(garage.starts_with("FAIL"), "{report}");
    assert!(garage.contains(&format!("127.0.0.1:{down_port}")) && garage.contains("unreachable"), "{report}");
    assert!(report.contains("fix: check the camera is powered"), "{report}");
    assert!(line(&report, "camera porch").starts_with("ok "), "{report}");
    assert!(report.trim_end().ends_with("1 failure(s)"), "{report}");
}

#[test]
fn a_missing_media_helper_fails_when_motion_needs_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut door = camera("door", listener.local_addr().unwrap().port());
    door.extra = "[camera.motion]\nfps = 5\n".into();
    let hub = Hub::new("", &[door]);
    let out = Command::new(hearth_bin())
        .arg("--config")
        .arg(&hub.config)
        .arg("doctor")
        .env("HEARTH_MEDIA", "/nonexistent/hearth-media")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let helper = line(&report, "media helper");
    assert!(helper.starts_with("FAIL") && helper.contains("/nonexistent/hearth-media"), "{report}");
    assert!(helper.contains("no motion detection"), "{report}");
    assert!(report.contains("fix: reinstall hearth"), "{report}");
}

#[test]
fn a_bad_key_fails_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let data_dir = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data_dir:?}\n[crypto]\nrecipient = \"age1z9kvl9xqk6wdlcyq6nuxk8ec0ltqkfyhzjtymvw3zfmctq6nq6nsadd0k0\"\n\
             [storage]\nclip_secs = 5\n"
        ),
    )
    .unwrap();
    let (out, report) = doctor(&config);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let config_line = line(&report, "config");
    assert!(config_line.starts_with("FAIL") && config_line.contains("clip_secs"), "{report}");
    assert!(report.contains(&format!("fix: edit {}", config.display())), "{report}");
    assert!(!report.contains("camera"), "no further checks without a config:\n{report}");
}

#[test]
fn the_example_config_and_a_missing_one_say_how_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let example = dir.path().join("config.toml");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"), &example).unwrap();
    let (out, report) = doctor(&example);
    assert_eq!(out.status.code(), Some(1));
    assert!(line(&report, "config").contains("still the example config"), "{report}");
    assert!(report.contains("init --data-dir /var/lib/hearth"), "{report}");

    let (out, report) = doctor(&dir.path().join("absent.toml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(line(&report, "config").contains("does not exist"), "{report}");
}
