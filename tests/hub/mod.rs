//! Drives the real `hearth` binary for integration tests: a data dir made by `hearth init`,
//! cameras added to its config, `hearth serve` started and stopped (cleanly or with
//! `kill -9`), and the CLI's views of the index (`clips ls --json`, `clips decrypt`, `check`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PASSPHRASE: &str = "integration test passphrase";
/// The admin account `hearth init` creates.
pub const OWNER: &str = "owner";
pub const OWNER_PASSWORD: &str = "owner's long password";

pub fn hearth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hearth")
}

/// One indexed clip as `hearth clips ls --json` shows it.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ClipRow {
    pub id: i64,
    pub camera: String,
    pub start: String,
    pub end: String,
    pub start_us: i64,
    pub end_us: i64,
    pub duration_90k: i64,
    pub bytes: i64,
    pub frames: i64,
    pub keyframes: i64,
    pub codec: String,
    pub width: i64,
    pub height: i64,
    pub has_audio: bool,
    pub path: String,
    /// Holds an event: kept for the event retention period.
    #[serde(default)]
    pub event: bool,
}

pub struct CameraSpec {
    pub name: String,
    pub url: String,
    pub extra: String,
}

/// A data dir with a config and identity, and optionally a running `hearth serve`.
pub struct Hub {
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub passphrase_file: PathBuf,
    child: Option<Child>,
    /// `child` is a wrapper (strace) around hearth.
    wrapped: bool,
    /// How many URLs earlier runs printed into the log (a restart prints a new one).
    urls_before: usize,
    log_path: PathBuf,
}

impl Hub {
    /// `hearth init`, then the storage settings and cameras appended to the config.
    pub fn new(storage: &str, cameras: &[CameraSpec]) -> Hub {
        Self::new_in(None, storage, cameras)
    }

    /// Like `new`, with the data dir at `data_dir` (e.g. on a small tmpfs).
    pub fn new_in(data_dir: Option<PathBuf>, storage: &str, cameras: &[CameraSpec]) -> Hub {
        let dir = tempfile::Builder::new().prefix("hearth-test-").tempdir().unwrap();
        let data_dir = data_dir.unwrap_or_else(|| dir.path().join("data"));
        let passphrase_file = dir.path().join("passphrase");
        std::fs::write(&passphrase_file, PASSPHRASE).unwrap();
        let owner_password_file = dir.path().join("owner-password");
        std::fs::write(&owner_password_file, OWNER_PASSWORD).unwrap();
        let out = Command::new(hearth_bin())
            .args(["init", "--data-dir"])
            .arg(&data_dir)
            .arg("--passphrase-file")
            .arg(&passphrase_file)
            .arg("--owner-password-file")
            .arg(&owner_password_file)
            .env_remove("HEARTH_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "hearth init failed: {}", String::from_utf8_lossy(&out.stderr));
        let config = data_dir.join("config.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        if !storage.is_empty() {
            // Replace the generated [storage] table with the test's.
            let start = text.find("[storage]").unwrap();
            let end = text.find("[crypto]").unwrap();
            text.replace_range(start..end, &format!("[storage]\n{storage}\n\n"));
        }
        // Tests run in parallel: let the OS pick each hub's web port (read back by `web_url`).
        text = text.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"");
        for camera in cameras {
            text.push_str(&format!(
                "\n[[camera]]\nname = \"{}\"\nurl = \"{}\"\n{}\n",
                camera.name, camera.url, camera.extra
            ));
        }
        std::fs::write(&config, text).unwrap();
        let log_path = dir.path().join("serve.log");
        Hub { dir, data_dir, config, passphrase_file, child: None, wrapped: false, urls_before: 0, log_path }
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(hearth_bin());
        cmd.arg("--config").arg(&self.config).env("HEARTH_PASSPHRASE_FILE", &self.passphrase_file);
        cmd.env("HEARTH_LOG", std::env::var("HEARTH_TEST_LOG").unwrap_or_else(|_| "info,hearth=debug".into()));
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Starts `hearth serve`, its log appended to serve.log.
    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// Starts `hearth serve` with extra environment variables (e.g. `HEARTH_CRASH_AT`).
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "already serving");
        self.urls_before = self.log().matches("web UI at ").count();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).unwrap();
        let child = self
            .command()
            .envs(env.iter().copied())
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Starts `hearth serve` under `program args…` (e.g. strace), which must run its
    /// command as a child and exit when it exits. `stop` signals hearth itself.
    pub fn start_under(&mut self, program: &str, args: &[&str]) {
        assert!(self.child.is_none(), "already serving");
        self.urls_before = self.log().matches("web UI at ").count();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).unwrap();
        let child = Command::new(program)
            .args(args)
            .arg(hearth_bin())
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("HEARTH_PASSPHRASE_FILE", &self.passphrase_file)
            .env("HEARTH_LOG", "info,hearth=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.wrapped = true;
        self.child = Some(child);
    }

    /// SIGTERM and wait; asserts a clean exit (status 0).
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("not serving");
        if std::mem::take(&mut self.wrapped) {
            // The wrapper's child is hearth: signal it, and the wrapper exits after it.
            let _ = Command::new("pkill").args(["-TERM", "-P", &child.id().to_string()]).status();
        } else {
            unsafe_kill(child.id(), "TERM");
        }
        let status = wait_with_timeout(&mut child, Duration::from_secs(20)).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("hearth serve did not stop within 20 s of SIGTERM\n{}", self.log())
        });
        assert!(status.success(), "hearth serve exited with {status}\n{}", self.log());
    }

    /// Waits up to `timeout` for `hearth serve` to exit by itself (e.g. at a crash point);
    /// returns its status, or `None` if it is still running (it is then left running).
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let status = wait_with_timeout(self.child.as_mut().expect("not serving"), timeout)?;
        self.child = None;
        Some(status)
    }

    /// `kill -9`: a power cut as far as hearth can tell.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("not serving");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The web UI's base URL (`http://127.0.0.1:PORT/`), once `serve` printed it.
    pub fn web_url(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            let urls: Vec<&str> = log.lines().filter(|l| l.contains("web UI at ")).collect();
            if let Some(line) = urls.get(self.urls_before) {
                return line.rsplit("web UI at ").next().unwrap_or_default().trim().to_owned();
            }
            assert!(Instant::now() < deadline, "serve never printed its URL\n{}", self.log());
            assert!(self.is_serving(), "hearth serve died\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Logs in as the owner at `base` (the web URL).
    pub fn login(&self, base: &str) -> WebClient {
        WebClient::login(base, OWNER, OWNER_PASSWORD)
            .unwrap_or_else(|(status, body)| panic!("owner login: {status} {body}"))
    }

    /// `hearth user add` with a password file.
    pub fn add_user(&self, name: &str, password: &str, admin: bool) {
        let file = self.dir.path().join(format!("password-{name}"));
        std::fs::write(&file, password).unwrap();
        let mut args = vec!["user", "add", name, "--password-file", file.to_str().unwrap()];
        if admin {
            args.push("--admin");
        }
        let out = self.run(&args);
        assert!(out.status.success(), "user add: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Process id of the running `hearth serve` (not of a wrapper).
    pub fn pid(&self) -> Option<u32> {
        if self.wrapped {
            return None;
        }
        self.child.as_ref().map(|c| c.id())
    }

    /// Resident memory of the running `hearth serve` now and at its peak, in KiB
    /// (`VmRSS`, `VmHWM` from /proc).
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let field =
            |name: &str| status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse::<u64>().ok();
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    pub fn is_serving(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Closed clips, oldest first.
    pub fn clips(&self) -> Vec<ClipRow> {
        let out = self.run(&["clips", "ls", "--json"]);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("nothing recorded yet") {
                return Vec::new();
            }
            panic!("clips ls failed: {stderr}");
        }
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("clips ls JSON: {e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Decrypts clip `id` with the CLI into the test dir and returns the path.
    pub fn decrypt(&self, id: i64) -> PathBuf {
        self.decrypt_to(id, self.dir.path())
    }

    /// Decrypts clip `id` into `dir`.
    pub fn decrypt_to(&self, id: i64, dir: &Path) -> PathBuf {
        let out_path = dir.join(format!("clip-{id}.mp4"));
        let out = self.run(&["clips", "decrypt", &id.to_string(), "-o", out_path.to_str().unwrap()]);
        assert!(out.status.success(), "decrypt {id}: {}", String::from_utf8_lossy(&out.stderr));
        out_path
    }

    /// Waits until at least `n` clips are closed.
    pub fn wait_for_clips(&mut self, n: usize, timeout: Duration) -> Vec<ClipRow> {
        let deadline = Instant::now() + timeout;
        loop {
            let clips = self.clips();
            if clips.len() >= n {
                return clips;
            }
            if Instant::now() > deadline {
                panic!("expected {n} clips within {timeout:?}, have {}\n{}", clips.len(), self.log());
            }
            if self.child.is_some() && !self.is_serving() {
                panic!("hearth serve died\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Every regular file under the data dir.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.data_dir, &mut out);
        out
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
}

pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Signs of plaintext video in `bytes`: an MP4 box header (`ftyp`, `moov`, `moof`, `mdat`
/// preceded by a plausible 32-bit size), or a run of at least three H.264 start codes each
/// followed by a slice/SPS/PPS NAL header. The size and NAL-header conditions keep ordinary
/// binary files (SQLite pages are full of big-endian 1s) from tripping it.
pub fn plaintext_markers(bytes: &[u8]) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    let mut start_codes = Vec::new();
    for i in 0..bytes.len().saturating_sub(8) {
        let window = &bytes[i..i + 8];
        let size = u32::from_be_bytes([window[0], window[1], window[2], window[3]]);
        let fourcc = &window[4..8];
        let named = match fourcc {
            b"ftyp" => Some("ftyp box"),
            b"moov" => Some("moov box"),
            b"moof" => Some("moof box"),
            b"mdat" => Some("mdat box"),
            _ => None,
        };
        if let Some(name) = named {
            if (8..1 << 30).contains(&size) {
                found.push((i, name));
            }
        }
        // NAL headers with nal_ref_idc > 0 (what cameras send for slices, SPS and PPS).
        if window[..4] == [0, 0, 0, 1]
            && matches!(window[4], 0x21 | 0x25 | 0x27 | 0x28 | 0x41 | 0x45 | 0x47 | 0x48 | 0x61 | 0x65 | 0x67 | 0x68)
        {
            start_codes.push(i);
        }
    }
    if start_codes.len() >= 3 {
        found.push((start_codes[0], "run of H.264 start codes"));
    }
    found
}

/// Length of an age file's header (through the `---` line and its 32-byte MAC, then the
/// 16-byte payload nonce), after which everything is ciphertext.
pub fn age_header_len(bytes: &[u8]) -> Option<usize> {
    let marker = b"\n--- ";
    let pos = bytes.windows(marker.len()).position(|w| w == marker)?;
    let line_end = pos + 1 + bytes[pos + 1..].iter().position(|b| *b == b'\n')?;
    Some(line_end + 1 + 16)
}

/// An HTTP client holding one session cookie, like one browser.
#[derive(Clone)]
pub struct WebClient {
    pub base: String,
    pub agent: ureq::Agent,
    pub cookie: String,
}

impl WebClient {
    /// `POST /api/login`; on refusal, the status and body.
    pub fn login(base: &str, user: &str, password: &str) -> Result<WebClient, (u16, String)> {
        Self::login_with(base, serde_json::json!({ "username": user, "password": password }))
    }

    pub fn login_with(base: &str, body: serde_json::Value) -> Result<WebClient, (u16, String)> {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
        let response = agent
            .post(&format!("{base}api/login"))
            .set("content-type", "application/json")
            .send_string(&body.to_string());
        match response {
            Ok(r) => {
                let set_cookie = r.header("set-cookie").unwrap_or_default().to_owned();
                let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
                assert!(cookie.starts_with("hearth_session="), "login sets the session cookie: {set_cookie}");
                Ok(WebClient { base: base.to_owned(), agent, cookie })
            }
            Err(ureq::Error::Status(status, r)) => Err((status, r.into_string().unwrap_or_default())),
            Err(e) => panic!("login request failed: {e}"),
        }
    }

    pub fn request(&self, method: &str, path: &str) -> ureq::Request {
        let url = format!("{}{}", self.base, path.trim_start_matches('/'));
        self.agent.request(method, &url).set("cookie", &self.cookie)
    }

    pub fn get(&self, path: &str) -> ureq::Request {
        self.request("GET", path)
    }

    pub fn post(&self, path: &str) -> ureq::Request {
        self.request("POST", path)
    }

    /// A JSON request; returns status and parsed body (null when empty).
    pub fn send_json(&self, method: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let (status, _, bytes) =
            fetch_with(self.request(method, path).set("content-type", "application/json"), Some(body.to_string()));
        (status, if bytes.is_empty() { serde_json::Value::Null } else { json(&bytes) })
    }

    /// A WebSocket to `path` carrying this session's cookie.
    pub fn websocket(
        &self,
        path: &str,
    ) -> Result<tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>, tungstenite::Error>
    {
        use tungstenite::client::IntoClientRequest;
        let url = format!("{}{}", self.base.replacen("http://", "ws://", 1), path.trim_start_matches('/'));
        let mut request = url.into_client_request()?;
        request.headers_mut().insert("cookie", self.cookie.parse().unwrap());
        tungstenite::connect(request).map(|(socket, _)| socket)
    }
}

/// Status, headers and body of any response, error statuses included.
pub fn fetch(request: ureq::Request) -> (u16, Vec<(String, String)>, Vec<u8>) {
    fetch_with(request, None)
}

pub fn fetch_with(request: ureq::Request, body: Option<String>) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::Read;
    let result = match body {
        Some(body) => request.send_string(&body),
        None => request.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|n| (n.clone(), response.header(&n).unwrap_or("").to_owned()))
        .collect();
    let mut bytes = Vec::new();
    response.into_reader().take(200_000_000).read_to_end(&mut bytes).unwrap();
    (status, headers, bytes)
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// Error responses are JSON `{error, message}` with the given status.
pub fn assert_error(request: ureq::Request, status: u16, code: &str) {
    let (got, headers, body) = fetch(request);
    assert_eq!(got, status, "{}", String::from_utf8_lossy(&body));
    assert!(header(&headers, "content-type").unwrap_or("").starts_with("application/json"));
    let value = json(&body);
    assert_eq!(value["error"], code, "{value}");
    assert!(value["message"].as_str().is_some_and(|m| !m.is_empty()));
}
