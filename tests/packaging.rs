//! Installing hearth like a homeowner would, without touching this machine:
//! - the unit passes `systemd-analyze security --offline=true` at exposure 1.5 or lower, and
//!   allows IP traffic to this network only;
//! - `make install` into a throw-away root lays out binary, unit, config and data dir; there
//!   the unit passes `systemd-analyze verify`, and its `ExecStart=`, run with the environment
//!   systemd gives it (notify socket, watchdog, credentials directory), reports READY, keeps
//!   petting the watchdog although its camera is offline, and says STOPPING on SIGTERM;
//!   `make uninstall` keeps config and recordings unless PURGE=1;
//! - the .deb (cargo-deb, `make deps` installs it) carries the binary, the same unit, the
//!   conffile and maintainer scripts that create the user.

mod common;
mod hub;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hub::hearth_bin;

const MAX_EXPOSURE: f64 = 1.5;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(command: &mut Command) -> Output {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The overall exposure `systemd-analyze security --offline=true` gives `unit` (extra args
/// before it, e.g. `--root=`); it must also pass `--threshold` at [`MAX_EXPOSURE`].
fn exposure(args: &[&str], unit: &str) -> f64 {
    let threshold = format!("--threshold={}", (MAX_EXPOSURE * 10.0) as u32);
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager", &threshold])
        .args(args)
        .arg(unit)
        .output()
        .expect("systemd-analyze (Debian package systemd; `make deps` installs it)");
    let report = text(&out);
    assert!(out.status.success(), "exposure above {MAX_EXPOSURE}:\n{report}");
    let line = report.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("{report}"));
    let value = line.split(':').nth(1).and_then(|v| v.split_whitespace().next()).unwrap();
    value.parse().unwrap_or_else(|_| panic!("cannot read exposure from {line:?}"))
}

#[test]
fn the_unit_is_hardened_and_fenced_to_this_network() {
    let unit = repo().join("systemd/hearth.service");
    let score = exposure(&[], unit.to_str().unwrap());
    assert!(score <= MAX_EXPOSURE, "exposure {score}");
    println!("systemd-analyze security: exposure {score}");

    let text = std::fs::read_to_string(&unit).unwrap();
    let values = |key: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .flat_map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    };
    assert_eq!(values("IPAddressDeny"), ["any"]);
    let allowed = values("IPAddressAllow");
    for range in [
        "127.0.0.0/8",
        "::1",
        "169.254.0.0/16",
        "fe80::/10",
        "224.0.0.0/4",
        "ff00::/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
    ] {
        assert!(allowed.iter().any(|a| a == range), "IPAddressAllow lacks {range}: {allowed:?}");
    }
    assert_eq!(allowed.len(), 10, "nothing beyond this network: {allowed:?}");
    for (key, value) in [
        ("Type", "notify"),
        ("Restart", "on-failure"),
        ("User", "hearth"),
        ("StateDirectory", "hearth"),
        ("ConfigurationDirectory", "hearth"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallFilter", "@system-service"),
    ] {
        assert!(values(key).iter().any(|v| v == value), "{key}={value} missing");
    }
    assert!(values("WatchdogSec").len() == 1, "WatchdogSec= missing");
    assert!(text.lines().any(|l| l == "CapabilityBoundingSet="), "capabilities not emptied");
}

/// `make` in the repository with `args`.
fn make(args: &[&str]) -> Output {
    run(Command::new("make").arg("--no-print-directory").arg("-C").arg(repo()).args(args))
}

/// The host's own systemd units (sysinit.target & co.), so `verify --root` can resolve the
/// unit's dependencies inside a throw-away root.
fn copy_system_units(root: &Path) {
    let host = ["/usr/lib/systemd/system", "/lib/systemd/system"].into_iter().find(|p| Path::new(p).is_dir()).unwrap();
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    run(Command::new("cp").arg("-a").arg(host).arg(root.join("usr/lib/systemd/")));
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

/// An absolute path of the installed system, inside `root`.
fn in_root(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

#[test]
fn make_install_into_a_throwaway_root_and_run_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let destdir = format!("DESTDIR={}", root.display());
    make(&["install", &destdir, &format!("BIN={}", hearth_bin())]);

    assert_eq!(mode(&in_root(&root, "/usr/local/bin/hearth")), 0o755);
    assert_eq!(mode(&in_root(&root, "/usr/local/libexec/hearth/hearth-media")), 0o755);
    let unit_path = in_root(&root, "/usr/local/lib/systemd/system/hearth.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let exec_start = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    assert_eq!(exec_start, "/usr/local/bin/hearth --config /etc/hearth/config.toml serve");
    assert_eq!(mode(&in_root(&root, "/etc/hearth/config.toml")), 0o640);
    assert_eq!(mode(&in_root(&root, "/etc/hearth/secrets")), 0o750);
    assert_eq!(mode(&in_root(&root, "/var/lib/hearth")), 0o750);

    copy_system_units(&root);
    let root_arg = format!("--root={}", root.display());
    let verify = run(Command::new("systemd-analyze").args(["verify", &root_arg, "hearth.service"]));
    assert!(text(&verify).trim().is_empty(), "verify complained:\n{}", text(&verify));
    let score = exposure(&[&root_arg], "hearth.service");
    assert!(score <= MAX_EXPOSURE, "installed unit exposure {score}");

    // What a homeowner does next: `hearth init` replaces the example config with their own key.
    let config = in_root(&root, "/etc/hearth/config.toml");
    let data_dir = in_root(&root, "/var/lib/hearth");
    let passphrase = dir.path().join("passphrase");
    std::fs::write(&passphrase, hub::PASSPHRASE).unwrap();
    let owner_password = dir.path().join("owner-password");
    std::fs::write(&owner_password, hub::OWNER_PASSWORD).unwrap();
    let installed = in_root(&root, "/usr/local/bin/hearth");
    run(Command::new(&installed)
        .arg("--config")
        .arg(&config)
        .args(["init", "--data-dir"])
        .arg(&data_dir)
        .arg("--passphrase-file")
        .arg(&passphrase)
        .arg("--owner-password-file")
        .arg(&owner_password));
    let condition = unit.lines().find_map(|l| l.strip_prefix("ConditionPathExists=")).unwrap();
    assert!(in_root(&root, condition).exists(), "after init the unit's condition {condition} holds");
    // A camera that is offline: the hub is healthy all the same and must keep petting the watchdog.
    let offline_port = common::free_port();
    let mut text_config = std::fs::read_to_string(&config).unwrap();
    text_config = text_config.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"");
    text_config.push_str(&format!(
        "\n[[camera]]\nname = \"door\"\nurl = \"rtsp://127.0.0.1:{offline_port}/s\"\n[camera.motion]\nfps = 5\n"
    ));
    std::fs::write(&config, text_config).unwrap();

    // ExecStart= with its paths inside the root, and the environment systemd would give it.
    let mut args = exec_start.split_whitespace().map(|a| if a.starts_with('/') { in_root(&root, a) } else { a.into() });
    let program = args.next().unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("hearth-passphrase"), hub::PASSPHRASE).unwrap();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "1000000")
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .env("HEARTH_LOG", "info,hearth=debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let serve_log = || std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();

    notify.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let receive = || {
        let mut buf = [0u8; 1024];
        let n = notify.recv(&mut buf).unwrap_or_else(|e| panic!("no notification: {e}\n{}", serve_log()));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = receive();
    assert!(ready.starts_with("READY=1\nSTATUS=recording 1 camera(s)"), "{ready:?}");
    let started = Instant::now();
    for _ in 0..4 {
        assert_eq!(receive(), "WATCHDOG=1", "{}", serve_log());
    }
    assert!(started.elapsed() < Duration::from_secs(4), "petted every 0.5 s, took {:?}", started.elapsed());
    assert!(serve_log().contains("camera offline"), "the camera really was offline:\n{}", serve_log());
    // The installed hearth finds its media helper in ../libexec/hearth/ (motion starts it).
    assert!(!serve_log().contains("media helper not installed"), "{}", serve_log());
    assert!(!serve_log().contains("motion detection cannot start"), "{}", serve_log());
    // The passphrase came in as the systemd credential: playback is unlocked from the start.
    let log_text = serve_log();
    let url = log_text.lines().find_map(|l| l.split("web UI at ").nth(1)).expect("web UI URL").trim().to_owned();
    let owner = hub::WebClient::login(&url, hub::OWNER, hub::OWNER_PASSWORD).expect("the owner logs in");
    let (_, status) = owner.send_json("GET", "api/status", serde_json::Value::Null);
    assert_eq!(status["locked"], false, "{status}");

    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let stopping = loop {
        let message = receive();
        if message != "WATCHDOG=1" {
            break message;
        }
    };
    assert!(stopping.starts_with("STOPPING=1"), "{stopping:?}");
    let status = hub::wait_with_timeout(&mut child, Duration::from_secs(20)).expect("stops within 20 s");
    assert!(status.success(), "{status}\n{}", serve_log());

    // Uninstall keeps what is the homeowner's; PURGE=1 removes it.
    make(&["uninstall", &destdir]);
    assert!(!in_root(&root, "/usr/local/bin/hearth").exists());
    assert!(!in_root(&root, "/usr/local/libexec/hearth").exists());
    assert!(!unit_path.exists());
    assert!(config.exists() && data_dir.join("identity.age").exists(), "config and key kept");
    make(&["uninstall", &destdir, "PURGE=1"]);
    assert!(!config.exists() && !data_dir.exists());
}

#[test]
fn the_deb_carries_binary_unit_conffile_and_user_creation() {
    let version = Command::new("cargo").args(["deb", "--version"]).output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "cargo-deb is missing: `make deps` installs it (cargo install cargo-deb)"
    );
    // cargo-deb packages target/release/hearth; point it at a target dir holding this build's binary.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::os::unix::fs::symlink(hearth_bin(), target.join("release/hearth")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_hearth-media"), target.join("release/hearth-media")).unwrap();
    let out_dir = dir.path().join("out");
    run(Command::new("cargo")
        .args(["deb", "--no-build", "--fast", "--strip", "--quiet", "-o"])
        .arg(&out_dir)
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", &target));
    let deb = std::fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"));
    let deb = deb.expect("a .deb");

    let contents = text(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    let entry = |path: &str| contents.lines().find(|l| l.ends_with(path)).map(str::to_owned);
    let binary = entry("./usr/bin/hearth").unwrap_or_else(|| panic!("no binary:\n{contents}"));
    assert!(binary.starts_with("-rwxr-xr-x"), "{binary}");
    let helper = entry("./usr/libexec/hearth/hearth-media").unwrap_or_else(|| panic!("no media helper:\n{contents}"));
    assert!(helper.starts_with("-rwxr-xr-x"), "{helper}");
    let config = entry("./etc/hearth/config.toml").unwrap_or_else(|| panic!("no config:\n{contents}"));
    assert!(config.starts_with("-rw-r-----"), "{config}");
    assert!(entry("/systemd/system/hearth.service").is_some(), "no unit:\n{contents}");
    assert!(entry("./usr/share/doc/hearth/README.md").is_some(), "{contents}");

    let info = text(&run(Command::new("dpkg-deb").arg("-I").arg(&deb)));
    assert!(info.contains("Package: hearth") && info.contains("Depends:") && info.contains("libc6"), "{info}");
    assert!(info.contains("libavcodec"), "the media helper's libraries are dependencies:\n{info}");

    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(conffiles.lines().collect::<Vec<_>>(), ["/etc/hearth/config.toml"]);
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("useradd --system"), "{postinst}");
    assert!(postinst.contains("install -d -m 0750 -o hearth -g hearth /var/lib/hearth"), "{postinst}");
    assert!(postinst.contains("deb-systemd-helper"), "cargo-deb's systemd snippet:\n{postinst}");
    assert!(!postinst.contains("#DEBHELPER#"), "token replaced");
    let postrm = std::fs::read_to_string(control.join("postrm")).unwrap();
    assert!(postrm.contains("purge") && postrm.contains("kept /var/lib/hearth"), "{postrm}");

    // Unpacked, the unit is the repository's, byte for byte, and it verifies with the packaged binary.
    let root = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let unit = ["usr/lib/systemd/system/hearth.service", "lib/systemd/system/hearth.service"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.exists())
        .unwrap();
    assert_eq!(std::fs::read(&unit).unwrap(), std::fs::read(repo().join("systemd/hearth.service")).unwrap());
    copy_system_units(&root);
    let verify = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("hearth.service"));
    assert!(text(&verify).trim().is_empty(), "{}", text(&verify));
    let version = text(&run(Command::new(root.join("usr/bin/hearth")).arg("--version")));
    assert!(version.starts_with("hearth "), "{version}");
}
