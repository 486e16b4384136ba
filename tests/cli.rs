//! The command line as a user meets it: `init`, bad configs, and `demo` recording the
//! built-in synthetic camera (our own RTSP server: a second, independent implementation).

mod common;
mod hub;

use std::process::Command;

use hub::{hearth_bin, Hub};

fn run_with_config(config_text: &str, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text).unwrap();
    let out = Command::new(hearth_bin()).arg("--config").arg(&config).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

#[test]
fn bad_configs_fail_with_one_clear_error_naming_the_key() {
    let base = format!("data_dir = \"/tmp/hearth-never-created\"\n[crypto]\nrecipient = \"{RECIPIENT}\"\n");
    let cases = [
        (format!("{base}[storage]\nclip_secs = 5\n"), "clip_secs"),
        (format!("{base}[[camera]]\nname = \"door\"\nurl = \"http://192.0.2.1/\"\n"), "camera[0].url"),
        (format!("{base}[[camera]]\nname = \"door\"\nurl = \"::not a url::\"\n"), "camera[0].url"),
        ("data_dir = \"/tmp/x\"\n".to_owned(), "crypto.recipient"),
        (format!("{base}[[camera]]\nname = \"Front Door\"\nurl = \"rtsp://h/\"\n"), "camera[0].name"),
        (format!("{base}[storage]\nmax_bytes = \"lots\"\n"), "max_bytes"),
    ];
    for (text, key) in cases {
        for command in [&["serve"][..], &["clips", "ls"][..]] {
            let (ok, stderr) = run_with_config(&text, command);
            assert!(!ok, "{command:?} accepted a bad config:\n{text}");
            assert!(stderr.contains(key), "error for {key} does not name it: {stderr}");
            assert_eq!(
                stderr.trim().lines().filter(|l| l.contains("error")).count(),
                1,
                "one error, not a cascade: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

#[test]
fn init_writes_a_working_config_and_a_locked_key() {
    let hub = Hub::new("", &[]);
    let identity = std::fs::read(hub.data_dir.join("identity.age")).unwrap();
    assert!(identity.starts_with(b"age-encryption.org/v1"));
    assert!(!String::from_utf8_lossy(&identity).contains("AGE-SECRET-KEY"), "private key in the clear");
    let text = std::fs::read_to_string(&hub.config).unwrap();
    assert!(text.contains("recipient = \"age1"));
    // init refuses to overwrite.
    let again = Command::new(hearth_bin())
        .args(["init", "--data-dir"])
        .arg(&hub.data_dir)
        .arg("--passphrase-file")
        .arg(&hub.passphrase_file)
        .env_remove("HEARTH_CONFIG")
        .output()
        .unwrap();
    assert!(!again.status.success());
    // A wrong passphrase is refused clearly.
    std::fs::write(&hub.passphrase_file, "not the passphrase").unwrap();
    let out = hub.run(&["check"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn demo_records_the_built_in_camera() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("demo");
    let out = Command::new(hearth_bin())
        .args(["demo", "--seconds", "14", "--clip-seconds", "4", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("rtsp://127.0.0.1:"), "{stdout}");

    // The demo's data dir is an ordinary hub: list and decrypt with the CLI.
    let config = data_dir.join("config.toml");
    let list =
        Command::new(hearth_bin()).arg("--config").arg(&config).args(["clips", "ls", "--json"]).output().unwrap();
    assert!(list.status.success());
    let clips: Vec<hub::ClipRow> = serde_json::from_slice(&list.stdout).unwrap();
    assert!(clips.len() >= 2, "expected several 4 s clips from 14 s of demo, got {}", clips.len());
    for pair in clips.windows(2) {
        assert_eq!(pair[0].end_us, pair[1].start_us);
    }
    let first = &clips[0];
    assert_eq!((first.width, first.height), (640, 360));
    let mp4 = dir.path().join("first.mp4");
    let decrypt = Command::new(hearth_bin())
        .arg("--config")
        .arg(&config)
        .env("HEARTH_PASSPHRASE_FILE", data_dir.join("demo-passphrase.txt"))
        .args(["clips", "decrypt", &first.id.to_string(), "-o"])
        .arg(&mp4)
        .output()
        .unwrap();
    assert!(decrypt.status.success(), "{}", String::from_utf8_lossy(&decrypt.stderr));
    let probe = common::ffprobe_frames(&mp4);
    assert_eq!(probe.codec, "h264");
    assert_eq!(probe.frame_count as i64, first.frames);
}

#[test]
fn serve_without_cameras_runs_owns_its_data_dir_and_exits_cleanly() {
    let mut hub = Hub::new("", &[]);
    hub.start();
    hub.web_url(); // fully started
                   // `check` must not "recover" clips a running recorder is writing.
    let check = hub.run(&["check"]);
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("in use"), "{}", String::from_utf8_lossy(&check.stderr));
    hub.stop();
    assert!(hub.run(&["check"]).status.success(), "free again after serve stopped");
}
