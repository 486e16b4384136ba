//! Issue #4's promises, each against the real server: every failure of a commercial doorbell
//! service named there has a test here that would have caught it.
//! - a password change, a removed or disabled user, a revoked session: the next request is
//!   refused and an open live stream is cut within 1 s;
//! - a viewer sees only the cameras granted to them, and only what each grant allows;
//! - logins: one message for every refusal, throttling, TOTP and recovery codes, required 2FA;
//! - cross-site requests, foreign Host names and clients outside the allowed networks are
//!   refused before any handler, and audited;
//! - the audit log records who watched what and detects tampering;
//! - the hub opens no connection but to its cameras (traced with strace).

mod common;
mod hub;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{require_gst, RtspServer, RtspServerOptions};
use hub::{fetch, header, json, CameraSpec, Hub, WebClient};
use serde_json::json;

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

fn camera(name: &str, server: &RtspServer) -> CameraSpec {
    CameraSpec { name: name.into(), url: server.url(), extra: String::new() }
}

/// A hub recording `cameras` (all from one GStreamer server), serving, with its web URL.
fn serving_hub(names: &[&str]) -> (RtspServer, Hub, String) {
    require_gst();
    let server = RtspServer::start(RtspServerOptions::default());
    let cameras: Vec<CameraSpec> = names.iter().map(|n| camera(n, &server)).collect();
    let mut hub = Hub::new("clip_seconds = 4", &cameras);
    hub.start();
    let url = hub.web_url();
    (server, hub, url)
}

fn status(client: &WebClient, path: &str) -> u16 {
    fetch(client.get(path)).0
}

/// Opens a live stream and waits for its first message (the stream header), so the stream is
/// really flowing before the test revokes anything.
fn watch_live(client: &WebClient, camera: &str) -> Socket {
    let mut socket = client.websocket(&format!("api/cameras/{camera}/live")).expect("live stream opens");
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_mut() {
        stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match socket.read() {
            Ok(tungstenite::Message::Text(_)) => return socket,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("live stream failed before it started: {e}"),
        }
        assert!(Instant::now() < deadline, "no live stream header within 20 s");
    }
}

/// How long after `since` the server closed the stream (panics if it is still open after 5 s).
fn stream_cut_after(socket: &mut Socket, since: Instant) -> Duration {
    loop {
        match socket.read() {
            Ok(tungstenite::Message::Close(frame)) => {
                let elapsed = since.elapsed();
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(4401), "closed as 'session ended'");
                return elapsed;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return since.elapsed(),
            Err(e) => panic!("live stream error: {e}"),
        }
        assert!(since.elapsed() < Duration::from_secs(5), "the live stream was still open 5 s after revocation");
    }
}

fn assert_cut_within_a_second(socket: &mut Socket, since: Instant, what: &str) {
    let after = stream_cut_after(socket, since);
    assert!(after <= Duration::from_secs(1), "{what}: live stream cut only after {after:?}");
}

fn add_viewer(owner: &WebClient, name: &str, password: &str, grants: serde_json::Value) {
    let (status, body) = owner.send_json(
        "POST",
        "api/users",
        json!({"name": name, "password": password, "role": "viewer", "grants": grants}),
    );
    assert_eq!(status, 201, "{body}");
}

#[test]
fn sessions_end_at_once_on_password_change_revocation_disable_and_removal() {
    let (_server, mut hub, url) = serving_hub(&["door"]);
    let owner = hub.login(&url);
    let password = "bob's first password";
    add_viewer(&owner, "bob", password, json!([{"camera": "door", "live": true}]));
    let login = |password: &str| WebClient::login(&url, "bob", password).expect("bob logs in");

    // Bob changes his own password on his laptop: his phone is logged out, its video cut.
    let laptop = login(password);
    let phone = login(password);
    let mut phone_video = watch_live(&phone, "door");
    let changed = Instant::now();
    let (status, body) =
        laptop.send_json("POST", "api/account/password", json!({"current": password, "new": "bob's second password"}));
    assert_eq!(status, 204, "{body}");
    assert_eq!(self::status(&phone, "api/cameras"), 401, "the phone's next request is refused");
    assert_cut_within_a_second(&mut phone_video, changed, "own password change");
    assert_eq!(self::status(&laptop, "api/cameras"), 200, "the session that changed it stays");

    // A password set from the hub's shell ends every session, the current one too.
    let mut laptop_video = watch_live(&laptop, "door");
    let file = hub.dir.path().join("bob-third");
    std::fs::write(&file, "bob's third password").unwrap();
    let changed = Instant::now();
    let out = hub.run(&["user", "passwd", "bob", "--password-file", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_cut_within_a_second(&mut laptop_video, changed, "`hearth user passwd`");
    assert_eq!(self::status(&laptop, "api/cameras"), 401);
    assert!(WebClient::login(&url, "bob", "bob's second password").is_err(), "the old password is dead");

    // Revoking one session from the sessions page.
    let tablet = login("bob's third password");
    let desk = login("bob's third password");
    let mut tablet_video = watch_live(&tablet, "door");
    let (_, sessions) = desk.send_json("GET", "api/sessions", serde_json::Value::Null);
    let tablet_id =
        sessions.as_array().unwrap().iter().find(|s| s["current"] == false).unwrap()["id"].as_i64().unwrap();
    let revoked = Instant::now();
    let (status, _) = desk.send_json("DELETE", &format!("api/sessions/{tablet_id}"), serde_json::Value::Null);
    assert_eq!(status, 204);
    assert_cut_within_a_second(&mut tablet_video, revoked, "session revoked");
    assert_eq!(self::status(&tablet, "api/cameras"), 401);
    assert_eq!(self::status(&desk, "api/cameras"), 200);
    // Nobody revokes someone else's session: it looks like no session at all.
    let (_, owner_sessions) = owner.send_json("GET", "api/sessions", serde_json::Value::Null);
    let owner_id = owner_sessions[0]["id"].as_i64().unwrap();
    assert_eq!(desk.send_json("DELETE", &format!("api/sessions/{owner_id}"), serde_json::Value::Null).0, 404);

    // Disabling the account.
    let mut desk_video = watch_live(&desk, "door");
    let disabled = Instant::now();
    assert_eq!(owner.send_json("PATCH", "api/users/bob", json!({"disabled": true})).0, 200);
    assert_cut_within_a_second(&mut desk_video, disabled, "user disabled");
    assert_eq!(self::status(&desk, "api/cameras"), 401);
    assert!(WebClient::login(&url, "bob", "bob's third password").is_err(), "a disabled user cannot log in");

    // Removing the account.
    assert_eq!(owner.send_json("PATCH", "api/users/bob", json!({"disabled": false})).0, 200);
    let last = login("bob's third password");
    let mut last_video = watch_live(&last, "door");
    let removed = Instant::now();
    assert_eq!(owner.send_json("DELETE", "api/users/bob", serde_json::Value::Null).0, 204);
    assert_cut_within_a_second(&mut last_video, removed, "user removed");
    assert_eq!(self::status(&last, "api/cameras"), 401);

    // Taking the grant away cuts a stream too.
    add_viewer(&owner, "carol", "carol's long password", json!([{"camera": "door", "live": true}]));
    let carol = WebClient::login(&url, "carol", "carol's long password").unwrap();
    let mut carol_video = watch_live(&carol, "door");
    let ungranted = Instant::now();
    assert_eq!(owner.send_json("PUT", "api/users/carol/grants", json!([])).0, 200);
    assert_cut_within_a_second(&mut carol_video, ungranted, "grant removed");

    // Every one of those is in the audit log, and the chain is intact.
    let (_, log) = owner.send_json("GET", "api/audit?limit=1000", serde_json::Value::Null);
    let actions: Vec<&str> = log.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in [
        "login",
        "live_start",
        "live_stop",
        "password_change",
        "session_revoke",
        "user_change",
        "user_rm",
        "grant_change",
        "user_add",
    ] {
        assert!(actions.contains(&action), "{action} missing from the audit log: {actions:?}");
    }
    let stop = log.as_array().unwrap().iter().find(|e| e["action"] == "live_stop" && e["user"] == "carol").unwrap();
    assert_eq!(stop["result"], "revoked");
    let shell = log.as_array().unwrap().iter().find(|e| e["action"] == "password_change" && e["address"] == "local");
    assert!(shell.is_some_and(|e| e["user"].as_str().unwrap().starts_with("shell:")), "the shell change is attributed");
    assert_eq!(
        owner.send_json("GET", "api/audit/verify", serde_json::Value::Null).1["first_broken_id"],
        serde_json::Value::Null
    );
    hub.stop();
}

#[test]
fn viewers_see_only_what_their_grants_allow() {
    let (_server, mut hub, url) = serving_hub(&["doorbell", "nursery"]);
    let owner = hub.login(&url);
    add_viewer(&owner, "neighbour", "neighbour's password", json!([{"camera": "doorbell", "live": true}]));
    let neighbour = WebClient::login(&url, "neighbour", "neighbour's password").unwrap();
    let clips = hub.wait_for_clips(2, Duration::from_secs(40));
    let nursery_clip = clips.iter().find(|c| c.camera == "nursery").expect("a nursery clip").id;

    let (_, cameras) = neighbour.send_json("GET", "api/cameras", serde_json::Value::Null);
    let names: Vec<&str> = cameras.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["doorbell"], "the nursery is not even listed");
    assert_eq!(status(&owner, "api/cameras"), 200);
    assert_eq!(owner.send_json("GET", "api/cameras", serde_json::Value::Null).1.as_array().unwrap().len(), 2);

    // What the doorbell grant allows: live and snapshots; not playback or download.
    let mut doorbell = watch_live(&neighbour, "doorbell");
    drop(doorbell.close(None));
    assert_eq!(status(&neighbour, "api/cameras/doorbell/snapshot.jpg"), 200);
    for path in [
        "api/cameras/doorbell/timeline".to_owned(),
        "api/clips?camera=doorbell".to_owned(),
        "api/cameras/doorbell/export.mp4?start=2020-01-01T00:00:00Z&end=2030-01-01T00:00:00Z".to_owned(),
        // The nursery: nothing at all, and the same answer as for a camera that does not exist.
        "api/cameras/nursery/snapshot.jpg".to_owned(),
        "api/cameras/nursery/timeline".to_owned(),
        "api/cameras/nursery/export.mp4?start=2020-01-01T00:00:00Z&end=2030-01-01T00:00:00Z".to_owned(),
        format!("api/clips/{nursery_clip}.mp4"),
        "api/clips/999999.mp4".to_owned(),
        "api/cameras/garage/snapshot.jpg".to_owned(),
        // Admin pages.
        "api/users".to_owned(),
        "api/audit".to_owned(),
        "api/storage".to_owned(),
        "api/connections".to_owned(),
        "api/settings".to_owned(),
    ] {
        let (code, _, body) = fetch(neighbour.get(&path));
        assert_eq!(code, 403, "{path}: {}", String::from_utf8_lossy(&body));
        assert_eq!(json(&body)["error"], "forbidden", "{path}");
    }
    match neighbour.websocket("api/cameras/nursery/live") {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        Ok(_) => panic!("the nursery's live stream opened for a viewer without a grant"),
        Err(e) => panic!("unexpected: {e}"),
    }
    let (_, clips) = neighbour.send_json("GET", "api/clips", serde_json::Value::Null);
    assert_eq!(clips.as_array().unwrap().len(), 0, "no clip of any camera without playback");
    assert_eq!(neighbour.send_json("POST", "api/lock", serde_json::Value::Null).0, 403, "only admins lock");

    // Playback granted: the doorbell's clips appear, the nursery's still do not.
    let grants = json!([{"camera": "doorbell", "live": true, "playback": true}]);
    assert_eq!(owner.send_json("PUT", "api/users/neighbour/grants", grants).0, 200);
    let (_, clips) = neighbour.send_json("GET", "api/clips", serde_json::Value::Null);
    assert!(clips.as_array().unwrap().iter().all(|c| c["camera"] == "doorbell"));
    assert_eq!(status(&neighbour, "api/cameras/doorbell/timeline"), 200);
    let denied = owner.send_json("GET", "api/audit?action=denied&user=neighbour&limit=100", serde_json::Value::Null).1;
    assert!(denied.as_array().unwrap().iter().any(|e| e["camera"] == "nursery"), "refusals are audited: {denied}");
    hub.stop();
}

#[test]
fn logins_are_generic_throttled_and_two_factor() {
    let mut hub = Hub::new("", &[]);
    hub.start();
    let url = hub.web_url();
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();

    // Without a session every API route answers 401, before anything else.
    for path in [
        "api/status",
        "api/cameras",
        "api/clips",
        "api/storage",
        "api/users",
        "api/audit",
        "api/sessions",
        "api/openapi.json",
        "api/clips/1.mp4",
        "api/nothing",
    ] {
        let (code, _, body) = fetch(agent.get(&format!("{url}{path}")));
        assert_eq!(code, 401, "{path}");
        assert_eq!(json(&body)["error"], "unauthenticated");
    }
    // The UI itself loads (it shows the login form).
    assert_eq!(fetch(agent.get(&url)).0, 200);

    // One message whether the user exists or not.
    let refused = |user: &str, password: &str| WebClient::login(&url, user, password).err().expect("refused");
    let (code_a, body_a) = refused(hub::OWNER, "wrong password!!");
    let (code_b, body_b) = refused("nobody-here", "wrong password!!");
    assert_eq!((code_a, code_b), (401, 401));
    assert_eq!(json(body_a.as_bytes())["message"], json(body_b.as_bytes())["message"]);

    // Throttling: a few free failures, then waiting, for this name from any address.
    let (code, _) = refused(hub::OWNER, "wrong password!!");
    assert_eq!(code, 401);
    let (code, _) = refused(hub::OWNER, "wrong password!!");
    assert_eq!(code, 401);
    let (code, body) = refused(hub::OWNER, "wrong password!!");
    assert_eq!(code, 429, "{body}");
    assert_eq!(json(body.as_bytes())["error"], "too_many_attempts");
    let (code, _) = refused(hub::OWNER, hub::OWNER_PASSWORD);
    assert_eq!(code, 429, "even the right password waits its turn");
    std::thread::sleep(Duration::from_millis(1100));
    let owner = hub.login(&url);

    // The cookie: HttpOnly, SameSite=Strict (Secure is added under TLS).
    let response = agent
        .post(&format!("{url}api/login"))
        .set("content-type", "application/json")
        .send_string(&json!({"username": hub::OWNER, "password": hub::OWNER_PASSWORD}).to_string())
        .unwrap();
    let cookie = response.header("set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");

    // TOTP: enrol, then the password alone is not enough.
    let (_, enrolment) = owner.send_json("POST", "api/account/totp", serde_json::Value::Null);
    assert!(enrolment["uri"].as_str().unwrap().starts_with("otpauth://totp/hearth%3Aowner?secret="));
    assert!(enrolment["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = base32_decode(enrolment["secret"].as_str().unwrap());
    let (status, confirmed) =
        owner.send_json("POST", "api/account/totp/confirm", json!({"code": totp_now(&secret, 0)}));
    assert_eq!(status, 200, "{confirmed}");
    let recovery: Vec<String> =
        confirmed["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(recovery.len(), 10);
    let with = |totp: &str| {
        WebClient::login_with(&url, json!({"username": hub::OWNER, "password": hub::OWNER_PASSWORD, "totp": totp}))
    };
    let (code, body) = WebClient::login(&url, hub::OWNER, hub::OWNER_PASSWORD).err().unwrap();
    assert_eq!((code, json(body.as_bytes())["error"].as_str().unwrap()), (401, "totp_required"));
    assert_eq!(with("000000").err().unwrap().0, 401);
    // The enrolment code's step is spent; the next step's code works (one step of drift).
    let next = with(&totp_now(&secret, 30)).expect("password + TOTP logs in");
    assert_eq!(status_of(&next, "api/account"), 200);
    assert!(with(&recovery[0]).is_ok(), "a recovery code works once");
    assert_eq!(with(&recovery[0]).err().unwrap().0, 401, "and only once");

    // Required 2FA: a user without it may only enrol.
    hub.add_user("dave", "dave's long password", false);
    assert_eq!(owner.send_json("PUT", "api/settings", json!({"require_2fa": true})).0, 200);
    let dave = WebClient::login(&url, "dave", "dave's long password").unwrap();
    let (code, _, body) = fetch(dave.get("api/cameras"));
    assert_eq!((code, json(&body)["error"].as_str().unwrap()), (403, "totp_enrolment_required"));
    assert_eq!(dave.send_json("GET", "api/account", serde_json::Value::Null).1["must_enroll_totp"], true);
    let (_, enrolment) = dave.send_json("POST", "api/account/totp", serde_json::Value::Null);
    let secret = base32_decode(enrolment["secret"].as_str().unwrap());
    assert_eq!(dave.send_json("POST", "api/account/totp/confirm", json!({"code": totp_now(&secret, 0)})).0, 200);
    assert_eq!(status_of(&dave, "api/cameras"), 200, "enrolled: the same session may do the rest");

    // Cross-site requests and foreign Host names are refused.
    let (code, _, body) = fetch_post(owner.post("api/lock").set("origin", "https://evil.example"));
    assert_eq!((code, json(&body)["error"].as_str().unwrap()), (403, "cross_origin"));
    let (code, _, _) = fetch_post(owner.post("api/lock").set("sec-fetch-site", "cross-site"));
    assert_eq!(code, 403);
    let same_origin = url.trim_end_matches('/').to_owned();
    assert_eq!(fetch_post(owner.post("api/lock").set("origin", &same_origin)).0, 204);
    let (code, _, body) = fetch(owner.get("api/cameras").set("host", "evil.example"));
    assert_eq!((code, json(&body)["error"].as_str().unwrap()), (403, "bad_host"));
    let (code, _, _) = fetch(agent.get(&url).set("host", "rebind.evil.example:80"));
    assert_eq!(code, 403, "DNS rebinding is refused for the UI too");
    assert_eq!(fetch(owner.get("api/cameras").set("host", "localhost")).0, 200);
    hub.stop();
}

fn status_of(client: &WebClient, path: &str) -> u16 {
    fetch(client.get(path)).0
}

fn fetch_post(request: ureq::Request) -> (u16, Vec<(String, String)>, Vec<u8>) {
    hub::fetch_with(request.set("content-type", "application/json"), Some(String::new()))
}

#[test]
fn clients_outside_the_allowed_networks_are_refused_and_audited() {
    let mut hub = Hub::new("", &[]);
    let text = std::fs::read_to_string(&hub.config).unwrap();
    let text = text.replace("[web]\n", "[web]\nallowed_networks = [\"10.0.0.0/8\", \"192.168.0.0/16\"]\n");
    std::fs::write(&hub.config, text).unwrap();
    hub.start();
    let url = hub.web_url();
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    for path in ["", "api/login", "api/cameras"] {
        let (code, headers, body) = fetch(agent.get(&format!("{url}{path}")));
        assert_eq!(code, 403, "{path}");
        assert!(header(&headers, "content-type").unwrap().starts_with("application/json"));
        assert_eq!(json(&body)["error"], "forbidden_network");
    }
    assert_eq!(WebClient::login(&url, hub::OWNER, hub::OWNER_PASSWORD).err().unwrap().0, 403, "not even a login");
    let out = hub.run(&["audit", "ls", "--limit", "10"]);
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("denied") && log.contains("127.0.0.1") && log.contains("network_not_allowed"), "{log}");
    hub.stop();
}

#[test]
fn the_audit_log_detects_tampering() {
    let mut hub = Hub::new("", &[]);
    hub.start();
    let url = hub.web_url();
    let owner = hub.login(&url);
    let _ = WebClient::login(&url, hub::OWNER, "a wrong password");
    owner.send_json("POST", "api/lock", serde_json::Value::Null);
    hub.stop();
    let out = hub.run(&["audit", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let db = rusqlite::Connection::open(hub.data_dir.join("index.sqlite3")).unwrap();
    assert!(db.execute("UPDATE audit SET result = 'ok' WHERE action = 'login_failed'", []).is_err(), "append-only");
    db.execute_batch("DROP TRIGGER audit_append_only; UPDATE audit SET result = 'ok' WHERE action = 'login_failed';")
        .unwrap();
    let broken: i64 = db.query_row("SELECT id FROM audit WHERE action = 'login_failed'", [], |r| r.get(0)).unwrap();
    let out = hub.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("breaks at row {broken}")), "{stdout}");
    // CSV export for the owner's own records.
    hub.start();
    let url = hub.web_url();
    let owner = hub.login(&url);
    let (code, headers, body) = fetch(owner.get("api/audit?format=csv&action=login"));
    assert_eq!(code, 200);
    assert!(header(&headers, "content-type").unwrap().starts_with("text/csv"));
    let csv = String::from_utf8(body).unwrap();
    assert!(csv.starts_with("id,time,user,address,action,camera,target,result"));
    assert!(csv.lines().skip(1).all(|l| l.contains(",login,")), "{csv}");
    assert_eq!(owner.send_json("GET", "api/audit/verify", serde_json::Value::Null).1["first_broken_id"], broken);
    hub.stop();
}

#[test]
fn the_hub_connects_to_nothing_but_its_cameras() {
    require_gst();
    let server = RtspServer::start(RtspServerOptions::default());
    let mut hub = Hub::new("clip_seconds = 2", &[camera("door", &server)]);
    let trace = hub.dir.path().join("connect.trace");
    hub.start_under("strace", &["-f", "-qq", "-e", "trace=connect", "-o", trace.to_str().unwrap()]);
    let url = hub.web_url();
    hub.wait_for_clips(1, Duration::from_secs(40));
    let owner = hub.login(&url);
    let (_, connections) = owner.send_json("GET", "api/connections", serde_json::Value::Null);
    let open = connections["open"].as_array().unwrap();
    assert_eq!(open.len(), 1, "{connections}");
    assert_eq!(open[0]["owner"], "door");
    assert_eq!(open[0]["remote"], format!("127.0.0.1:{}", server.port()));
    hub.stop();

    let text = std::fs::read_to_string(&trace).unwrap();
    let inet: Vec<&str> = text.lines().filter(|l| l.contains("sa_family=AF_INET")).collect();
    assert!(!inet.is_empty(), "strace saw no connect() at all:\n{text}");
    let camera_port = format!("sin_port=htons({})", server.port());
    for line in &inet {
        assert!(
            line.contains(&camera_port) && line.contains("inet_addr(\"127.0.0.1\")"),
            "a connect() to something other than the camera:\n{line}"
        );
    }
}

// --- TOTP on the client side, as an authenticator app computes it.

fn base32_decode(text: &str) -> Vec<u8> {
    let mut bits = 0u64;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {text}"),
        };
        bits = (bits << 5) | u64::from(value);
        count += 5;
        if count >= 8 {
            out.push((bits >> (count - 8)) as u8);
            count -= 8;
        }
    }
    out
}

fn totp_now(secret: &[u8], offset_seconds: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let step = ((now + offset_seconds) / 30) as u64;
    format!("{:06}", hearth::auth::totp::hotp(secret, step))
}
