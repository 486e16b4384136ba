//! Issue #8, bad input over HTTP against the real server: path traversal, oversized bodies,
//! slow headers ("slowloris"), and invalid UTF-8 in every parameter the OpenAPI document
//! names. Requests are written byte for byte on raw sockets, so nothing normalises them on the
//! way. The promise: a 4xx (JSON under /api/), never a 5xx, never a byte of a file outside
//! what the API serves, and other clients are served meanwhile.

mod common;
mod hostile;
mod hub;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hostile::HostileCamera;
use hub::{Hub, WebClient};

/// What the server's header timeout is (src/web/mod.rs `HEADER_READ_TIMEOUT`).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

struct Served {
    _camera: HostileCamera,
    hub: Hub,
    url: String,
    addr: String,
    client: WebClient,
}

/// A hub recording one camera, with a clip closed, serving, and the owner logged in.
fn served() -> Served {
    let (camera, hub, url) = hostile::serving_hub(1);
    let client = hub.login(&url);
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    Served { _camera: camera, hub, url, addr, client }
}

/// A response read off a raw socket.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Writes `request` (a complete HTTP/1.1 request, `Connection: close`) and reads the answer.
fn raw(addr: &str, request: &[u8]) -> Raw {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The server may answer (413) and close before a big body is all written.
    let _ = stream.write_all(request);
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes); // a reset after the response is fine
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("no response to {:?}: {:?}", String::from_utf8_lossy(request), String::from_utf8_lossy(&bytes))
    });
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Raw { status, head, body: bytes[end + 4..].to_vec() }
}

/// A GET of `target` (raw bytes, sent as they are) with the session cookie.
fn get_raw(s: &Served, target: &[u8]) -> Raw {
    let mut request = b"GET ".to_vec();
    request.extend_from_slice(target);
    request.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nConnection: close\r\n\r\n", s.addr, s.client.cookie).as_bytes(),
    );
    raw(&s.addr, &request)
}

/// Things that must never appear in a response: files outside the API's view of the data dir.
fn leaks(s: &Served, body: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(body);
    let config = std::fs::read_to_string(&s.hub.config).unwrap();
    let recipient_line = config.lines().find(|l| l.starts_with("recipient")).unwrap_or("recipient");
    let found = [
        ("root:x:0:0", "/etc/passwd"),
        ("[package]", "Cargo.toml"),
        ("SQLite format 3", "the index"),
        ("age-encryption.org", "an age file (clip or identity)"),
        ("CANARY-OUTSIDE-THE-DATA-DIR", "a file next to the data dir"),
        (recipient_line, "config.toml"),
    ]
    .into_iter()
    .find(|(marker, _)| text.contains(marker))
    .map(|(_, what)| what);
    found
}

#[test]
fn path_traversal_never_leaves_the_data_dir() {
    let s = served();
    std::fs::write(s.hub.dir.path().join("canary.txt"), "CANARY-OUTSIDE-THE-DATA-DIR").unwrap();
    let clip = s.hub.clips()[0].id;
    let targets: Vec<String> = vec![
        "/../../../../../../etc/passwd".into(),
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd".into(),
        "/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd".into(),
        "/%2e%2e%2f%2e%2e%2fCargo.toml".into(),
        "/../Cargo.toml".into(),
        "/..%5c..%5cCargo.toml".into(),
        "/..\\..\\Cargo.toml".into(),
        "/index.html/../../Cargo.toml".into(),
        "/web/../Cargo.toml".into(),
        "/%2f%2fetc/passwd".into(),
        "//etc/passwd".into(),
        "/%00/etc/passwd".into(),
        "/index.html%00.txt".into(),
        "/../canary.txt".into(),
        "/..%2f..%2fcanary.txt".into(),
        "/api/clips/..%2f..%2fconfig.toml".into(),
        "/api/clips/..%2fconfig.toml.mp4".into(),
        "/api/clips/%2e%2e%2findex.sqlite3".into(),
        "/api/clips/../../index.sqlite3".into(),
        format!("/api/clips/{clip}.mp4%00"),
        format!("/api/clips/{clip}%2f..%2f..%2fidentity.age.mp4"),
        "/api/cameras/..%2f..%2fconfig/snapshot.jpg".into(),
        "/api/cameras/..%2fdata/timeline".into(),
        "/api/cameras/%2e%2e/export.mp4?start=2020-01-01T00:00:00Z&end=2030-01-01T00:00:00Z".into(),
        "/api/clips?camera=../../etc".into(),
        "/api/users/..%2f..%2fetc%2fpasswd".into(),
        "http://127.0.0.1/../../etc/passwd".into(),
        "file:///etc/passwd".into(),
    ];
    for target in &targets {
        let r = get_raw(&s, target.as_bytes());
        assert!((400..500).contains(&r.status), "{target}: {}\n{}", r.status, r.head);
        assert_eq!(leaks(&s, &r.body), None, "{target} leaked it: {}", String::from_utf8_lossy(&r.body));
        if target.starts_with("/api/") {
            assert!(r.head.to_ascii_lowercase().contains("content-type: application/json"), "{target}: {}", r.head);
        }
    }
    // The API still serves the real clip, and only through its own route.
    let r = get_raw(&s, format!("/api/clips/{clip}.mp4").as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(leaks(&s, &r.body), None);
}

#[test]
fn oversized_bodies_are_refused_with_413() {
    let s = served();
    let post = |path: &str, body: &[u8], chunked: bool| {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nContent-Type: application/json\r\nConnection: close\r\n",
            s.addr, s.client.cookie
        )
        .into_bytes();
        if chunked {
            request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for piece in body.chunks(16 * 1024) {
                request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                request.extend_from_slice(piece);
                request.extend_from_slice(b"\r\n");
            }
            request.extend_from_slice(b"0\r\n\r\n");
        } else {
            request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            request.extend_from_slice(body);
        }
        raw(&s.addr, &request)
    };
    let big_json = |n: usize| format!("{{\"username\":\"owner\",\"password\":\"{}\"}}", "x".repeat(n)).into_bytes();
    for (path, size, chunked) in [
        ("/api/login", 100_000, false),
        ("/api/login", 100_000, true),
        ("/api/users", 3_000_000, false),
        ("/api/account/password", 200_000, true),
        ("/api/unlock", 5_000_000, false),
    ] {
        let r = post(path, &big_json(size), chunked);
        assert_eq!(r.status, 413, "{path} with {size} bytes (chunked: {chunked}): {}", r.head);
        assert_eq!(hub::json(&r.body)["error"], "too_large", "{}", String::from_utf8_lossy(&r.body));
    }
    // A body just under the limit is read (and refused for what it says, not its size).
    let r = post("/api/login", &big_json(60_000), false);
    assert!(r.status == 401 || r.status == 400 || r.status == 403, "{}", r.head);
    // A huge announced length is refused before it is sent.
    let mut stream = TcpStream::connect(&s.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "POST /api/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n",
        s.addr
    )
    .unwrap();
    let mut answer = [0u8; 512];
    let n = stream.read(&mut answer).unwrap();
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}

/// A slow client: sends `request` one byte per `pace` on its own thread until the server
/// closes the connection; returns when that happened (or `None` if it never did).
fn trickle(addr: String, request: Vec<u8>, pace: Duration) -> std::thread::JoinHandle<Option<Duration>> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(pace.max(Duration::from_millis(50)))).unwrap();
        let mut i = 0;
        let mut buf = [0u8; 1024];
        while started.elapsed() < HEADER_TIMEOUT * 3 {
            if i < request.len() {
                if stream.write_all(&request[i..=i]).is_err() {
                    return Some(started.elapsed());
                }
                i += 1;
            }
            match stream.read(&mut buf) {
                Ok(0) => return Some(started.elapsed()),
                Ok(_) => {} // a 408 before the close is fine
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return Some(started.elapsed()),
            }
        }
        None
    })
}

#[test]
fn slow_headers_are_cut_off_while_others_are_served() {
    let s = served();
    let request = format!("GET /api/cameras HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\n\r\n", s.addr, s.client.cookie);
    // 100 slowloris connections trickling a byte every 300 ms, and 100 that send nothing.
    let mut slow = Vec::new();
    for _ in 0..100 {
        slow.push(trickle(s.addr.clone(), request.clone().into_bytes(), Duration::from_millis(300)));
        slow.push(trickle(s.addr.clone(), Vec::new(), Duration::from_millis(300)));
    }
    // Meanwhile a normal client is served at once, every time.
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    while started.elapsed() < HEADER_TIMEOUT + Duration::from_secs(2) {
        let t = Instant::now();
        let (status, _, _) = hub::fetch(s.client.get("api/cameras"));
        assert_eq!(status, 200);
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(worst < Duration::from_secs(1), "a normal request took {worst:?} among slow clients");
    let closed: Vec<Option<Duration>> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    for (i, after) in closed.iter().enumerate() {
        let after = after.unwrap_or_else(|| panic!("slow connection {i} still open after {:?}", HEADER_TIMEOUT * 3));
        assert!(
            after >= HEADER_TIMEOUT - Duration::from_millis(500) && after < HEADER_TIMEOUT + Duration::from_secs(3),
            "slow connection {i} closed after {after:?}"
        );
    }
    eprintln!(
        "200 slow connections closed after {:?}..{:?}; normal requests at most {worst:?}",
        closed.iter().flatten().min(),
        closed.iter().flatten().max()
    );
    let _ = &s.url;
}

/// Percent-encoded invalid UTF-8 (a lone continuation byte, an overlong '/', a surrogate).
const BAD: &str = "%FF%FE%C0%AF%ED%A0%80";

/// Resolves `{"$ref": "#/components/..."}` in the OpenAPI document.
fn resolve<'a>(doc: &'a serde_json::Value, v: &'a serde_json::Value) -> &'a serde_json::Value {
    match v["$ref"].as_str() {
        Some(r) => r.trim_start_matches("#/").split('/').fold(doc, |node, key| &node[key]),
        None => v,
    }
}

#[test]
fn invalid_utf8_in_every_parameter_is_a_4xx() {
    let s = served();
    let (status, _, body) = hub::fetch(s.client.get("api/openapi.json"));
    assert_eq!(status, 200);
    let doc = hub::json(&body);
    let clip = s.hub.clips()[0].id;
    let mut operations: Vec<(String, String, serde_json::Value)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                let mut params: Vec<serde_json::Value> = item["parameters"].as_array().cloned().unwrap_or_default();
                params.extend(op["parameters"].as_array().cloned().unwrap_or_default());
                let op = serde_json::json!({"params": params, "body": op.get("requestBody").is_some()});
                operations.push((method.to_uppercase(), path.clone(), op));
            }
        }
    }
    // Logging out (or locking) would end what the other requests test: last.
    operations.sort_by_key(|(_, path, _)| path.ends_with("/logout") || path.ends_with("/lock"));
    let mut tried = 0;
    for (method, path, op) in &operations {
        let params: Vec<&serde_json::Value> =
            op["params"].as_array().unwrap().iter().map(|p| resolve(&doc, p)).collect();
        let named = |kind: &str| -> Vec<String> {
            params.iter().filter(|p| p["in"] == kind).filter_map(|p| p["name"].as_str().map(str::to_owned)).collect()
        };
        let fill_path = |bad: Option<&str>| {
            let mut p = path.clone();
            for name in named("path") {
                let value = match name.as_str() {
                    _ if Some(name.as_str()) == bad => BAD.to_owned(),
                    "file" => format!("{clip}.mp4"),
                    "name" if path.starts_with("/api/users/") => "owner".to_owned(),
                    "id" => "1".to_owned(),
                    _ => "door".to_owned(),
                };
                p = p.replace(&format!("{{{name}}}"), &value);
            }
            p
        };
        let send = |target: &[u8], extra_headers: &[u8], body: Option<&[u8]>, may_ignore: bool| {
            let mut request = format!("{method} ").into_bytes();
            request.extend_from_slice(target);
            request.extend_from_slice(
                format!(" HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nConnection: close\r\n", s.addr, s.client.cookie)
                    .as_bytes(),
            );
            let target = String::from_utf8_lossy(target);
            request.extend_from_slice(extra_headers);
            if let Some(body) = body {
                request.extend_from_slice(
                    format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()).as_bytes(),
                );
                request.extend_from_slice(b"\r\n");
                request.extend_from_slice(body);
            } else {
                request.extend_from_slice(b"\r\n");
            }
            let r = raw(&s.addr, &request);
            let what = format!("{method} {target} ({})", String::from_utf8_lossy(extra_headers).trim());
            if may_ignore && r.status == 200 {
                return;
            }
            assert!((400..500).contains(&r.status), "{what}: {}\n{}", r.status, String::from_utf8_lossy(&r.body));
            // Bytes that are not even a valid request line are refused by hyper itself (an
            // empty 400); everything that reaches hearth is answered in JSON.
            if !target.contains('\u{fffd}') {
                assert!(r.head.to_ascii_lowercase().contains("application/json"), "{what}: {}", r.head);
            }
        };
        for name in named("path") {
            send(fill_path(Some(&name)).as_bytes(), b"", None, false);
            tried += 1;
        }
        for name in named("query") {
            send(format!("{}?{name}={BAD}", fill_path(None)).as_bytes(), b"", None, false);
            // Raw bytes, not even percent-encoded: the server must refuse, not guess.
            let mut target = format!("{}?{name}=", fill_path(None)).into_bytes();
            target.extend_from_slice(b"\xff\xfe");
            send(&target, b"", None, false);
            tried += 2;
        }
        for name in named("header") {
            // A Range header hearth cannot parse is ignored, as RFC 9110 (14.2) wants: the
            // whole clip, 200. Anything else is a 4xx, like every other parameter.
            let mut header = format!("{name}: bytes=").into_bytes();
            header.extend_from_slice(b"\xff\xfe-\r\n");
            send(fill_path(None).as_bytes(), &header, None, name.eq_ignore_ascii_case("range"));
            tried += 1;
        }
        if op["body"] == true {
            let body = b"{\"name\":\"\xff\xfe\",\"password\":\"\xc0\xaf\",\"passphrase\":\"\xed\xa0\x80\"}";
            send(fill_path(None).as_bytes(), b"", Some(body), false);
            tried += 1;
        }
    }
    // Headers every request has: the session cookie and Host.
    let r = raw(
        &s.addr,
        format!(
            "GET /api/cameras HTTP/1.1\r\nHost: {}\r\nCookie: hearth_session=\u{0}\r\nConnection: close\r\n\r\n",
            s.addr
        )
        .as_bytes(),
    );
    assert!((400..500).contains(&r.status), "NUL in the cookie: {}", r.head);
    let mut request = b"GET /api/cameras HTTP/1.1\r\nHost: \xff\xfe\r\nConnection: close\r\n".to_vec();
    request.extend_from_slice(format!("Cookie: {}\r\n\r\n", s.client.cookie).as_bytes());
    let r = raw(&s.addr, &request);
    assert!((400..500).contains(&r.status), "Host with invalid UTF-8: {}", r.head);
    let mut request =
        format!("GET /api/cameras HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nCookie: hearth_session=", s.addr)
            .into_bytes();
    request.extend_from_slice(b"\xff\xfe\r\n\r\n");
    assert_eq!(raw(&s.addr, &request).status, 401);
    assert!(tried >= 10, "only {tried} parameters found in the OpenAPI document");
    eprintln!("{tried} parameters of {} operations tried with invalid UTF-8", operations.len());
    let log = s.hub.log();
    assert!(!log.contains("panicked"), "{log}");
}
