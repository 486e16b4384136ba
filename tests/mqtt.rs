//! MQTT against a real broker: Debian's mosquitto, started by the test on 127.0.0.1 with a
//! password, and mosquitto_sub listening as Home Assistant would. A doorbell webhook must
//! reach the broker as a JSON event and a JPEG snapshot; discovery must describe the camera;
//! the status topic must say online, and offline after hearth stops.

mod common;
mod hub;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{free_port, require_gst, RtspServer, RtspServerOptions};
use hub::{CameraSpec, Hub};
use serde_json::Value;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require_mosquitto() {
    for tool in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto_sub", "/usr/bin/mosquitto_passwd"] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} missing: run `make deps` (Debian: mosquitto mosquitto-clients)"
        );
    }
}

/// A mosquitto on 127.0.0.1:`port` that wants `user`/`password`.
fn broker(dir: &std::path::Path, port: u16, user: &str, password: &str) -> Killed {
    let passwords = dir.join("mosquitto.passwd");
    let status = Command::new("/usr/bin/mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args([user, password])
        .status()
        .unwrap();
    assert!(status.success());
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\n",
            passwords.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("mosquitto.log")).unwrap();
    let child = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen:\n{}",
            std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Killed(child)
}

/// Every message on `hearth/#` and `homeassistant/#` as (topic, payload bytes).
fn subscribe(port: u16, user: &str, password: &str) -> (Killed, mpsc::Receiver<(String, Vec<u8>)>) {
    let mut child = Command::new("/usr/bin/mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            user,
            "-P",
            password,
            "-t",
            "hearth/#",
            "-t",
            "homeassistant/#",
            "-F",
            "%t %x",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let (topic, hex) = line.split_once(' ').unwrap_or((&line, ""));
            let bytes =
                (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
            if tx.send((topic.to_owned(), bytes)).is_err() {
                break;
            }
        }
    });
    (Killed(child), rx)
}

/// Waits for a message on `topic` (collecting everything seen meanwhile).
fn wait_for(
    rx: &mpsc::Receiver<(String, Vec<u8>)>,
    seen: &mut Vec<(String, Vec<u8>)>,
    topic: &str,
    what: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    if let Some((_, payload)) = seen.iter().find(|(t, p)| t == topic && what(p)) {
        return payload.clone();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (t, payload) = rx.recv_timeout(left).unwrap_or_else(|_| {
            let topics: Vec<&String> = seen.iter().map(|(t, _)| t).collect();
            panic!("no message on {topic} within 15 s; saw {topics:?}")
        });
        seen.push((t.clone(), payload.clone()));
        if t == topic && what(&payload) {
            return payload;
        }
    }
}

#[test]
fn events_reach_the_households_broker_with_discovery() {
    require_gst();
    require_mosquitto();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = broker(dir.path(), port, "hearth", "broker password");
    let (_sub, rx) = subscribe(port, "hearth", "broker password");
    let password_file = dir.path().join("mqtt-password");
    std::fs::write(&password_file, "broker password\n").unwrap();

    let camera_server = RtspServer::start(RtspServerOptions::default());
    let token = "a doorbell's long secret token";
    let camera =
        CameraSpec { name: "door".into(), url: camera_server.url(), extra: format!("hook_token = \"{token}\"") };
    let mut hub = Hub::new("", &[camera]);
    let mut text = std::fs::read_to_string(&hub.config).unwrap();
    text = text.replace(
        "[crypto]",
        &format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nusername = \"hearth\"\npassword_file = \"{}\"\n\n[crypto]",
            password_file.display()
        ),
    );
    std::fs::write(&hub.config, text).unwrap();
    hub.start();
    let url = hub.web_url();
    let mut seen = Vec::new();

    assert_eq!(wait_for(&rx, &mut seen, "hearth/status", |p| p == b"online"), b"online");
    let motion: Value = serde_json::from_slice(&wait_for(
        &rx,
        &mut seen,
        "homeassistant/binary_sensor/hearth_door/motion/config",
        |_| true,
    ))
    .unwrap();
    assert_eq!(motion["device_class"], "motion");
    assert_eq!(motion["state_topic"], "hearth/door/motion/state");
    let doorbell: Value =
        serde_json::from_slice(&wait_for(&rx, &mut seen, "homeassistant/event/hearth_door/doorbell/config", |_| true))
            .unwrap();
    assert_eq!(doorbell["event_types"][0], "press");
    wait_for(&rx, &mut seen, "homeassistant/camera/hearth_door/snapshot/config", |_| true);

    // The broker is listed among the hub's outbound connections, next to the camera.
    let owner = hub.login(&url);
    let (_, connections) = owner.send_json("GET", "api/connections", Value::Null);
    let purposes: Vec<&str> =
        connections["open"].as_array().unwrap().iter().map(|c| c["purpose"].as_str().unwrap()).collect();
    assert!(purposes.contains(&"mqtt"), "{connections}");

    // A doorbell press: JSON event, then a JPEG of the moment (once the camera sent a keyframe).
    let deadline = Instant::now() + Duration::from_secs(20);
    while hub::fetch(owner.get("api/cameras/door/snapshot.jpg")).0 != 200 {
        assert!(Instant::now() < deadline, "no picture from the camera");
        std::thread::sleep(Duration::from_millis(200));
    }
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let pressed = agent
        .post(&format!("{url}api/hooks/door/doorbell"))
        .set("authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(pressed.status(), 202);
    let event: Value = serde_json::from_slice(&wait_for(&rx, &mut seen, "hearth/door/doorbell", |_| true)).unwrap();
    assert_eq!(
        (event["camera"].as_str(), event["event_type"].as_str(), event["phase"].as_str()),
        (Some("door"), Some("press"), Some("instant"))
    );
    let jpeg = wait_for(&rx, &mut seen, "hearth/door/snapshot", |p| p.starts_with(&[0xff, 0xd8]));
    assert!(jpeg.len() > 1000);

    hub.stop();
    wait_for(&rx, &mut seen, "hearth/status", |p| p == b"offline");
}
