//! The media helper as the hub meets it: `hearth` itself must not load libav (that is the
//! point of the helper), and a helper that is missing, fed garbage or asked nonsense fails
//! with a clear error, never a hang or a panic. Its working paths (snapshots, thumbnails,
//! motion, the demo pattern) are exercised by the web, motion, mqtt and cli tests.

use std::process::Command;
use std::time::{Duration, Instant};

use hearth::media::{Media, MediaError};

fn needed_libraries(binary: &str) -> Vec<String> {
    let out = Command::new("readelf").args(["-d", binary]).output().expect("readelf (binutils)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.trim_end_matches(']').to_owned()))
        .collect()
}

#[test]
fn only_the_helper_links_libav() {
    let hub = needed_libraries(env!("CARGO_BIN_EXE_hearth"));
    assert!(hub.iter().all(|l| !l.starts_with("libav") && !l.starts_with("libsw")), "hearth links {hub:?}");
    let helper = needed_libraries(env!("CARGO_BIN_EXE_hearth-media"));
    assert!(helper.iter().any(|l| l.starts_with("libavcodec")), "hearth-media links {helper:?}");
}

#[tokio::test]
async fn a_missing_helper_is_named_in_the_error() {
    let media = Media::at("/nonexistent/hearth-media".into());
    let err = media.keyframe_to_jpeg(b"entry", b"sample", 320).await.unwrap_err();
    assert!(matches!(err, MediaError::Start { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/hearth-media"), "{err}");
}

#[tokio::test]
async fn garbage_keyframes_are_refused_with_a_reason() {
    let media = Media::at(env!("CARGO_BIN_EXE_hearth-media").into());
    let mut entry = vec![0, 0, 0, 100];
    entry.extend_from_slice(b"avc1");
    entry.resize(100, 0);
    let started = Instant::now();
    for (entry, sample) in
        [(&b""[..], &b""[..]), (&entry[..], &[0, 0, 0, 9, 1, 2][..]), (&b"\0\0\0\x08mp4v"[..], &b"x"[..])]
    {
        match media.keyframe_to_jpeg(entry, sample, 320).await {
            Err(MediaError::Failed(reason)) => assert!(!reason.is_empty()),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_helper_explains_itself_to_a_person() {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth-media")).arg("transcode").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("started by hearth"));
}
