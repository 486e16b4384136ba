//! Helpers shared by hearth's integration tests (`mod common;`).
//!
//! The RTSP camera is GStreamer's real RTSP server, scripted in
//! `tests/support/rtsp_server.py` and run with Debian's `/usr/bin/python3`
//! (it has the `gi` bindings; a pyenv/venv `python3` usually does not).
//! Needs the Debian packages that `make deps` installs, plus `ffprobe`.
//!
//! Environment:
//! - `HEARTH_RTSP_SERVER_PY`: path of the server script (default
//!   `$CARGO_MANIFEST_DIR/tests/support/rtsp_server.py`).
//! - `HEARTH_TEST_PYTHON`: interpreter (default `/usr/bin/python3`).
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// How long `RtspServer::start` waits for the script's `READY` line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `ffprobe_json` lets ffprobe run before killing it and panicking.
pub const FFPROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// The interpreter with the GStreamer `gi` bindings.
pub fn python() -> String {
    std::env::var("HEARTH_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_string())
}

/// Path of `tests/support/rtsp_server.py`.
pub fn rtsp_server_script() -> PathBuf {
    match std::env::var_os("HEARTH_RTSP_SERVER_PY") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/rtsp_server.py"),
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind :0, read, drop).
/// Racy by nature; `RtspServerOptions { port: 0, .. }` avoids the race by
/// letting the server bind port 0 itself.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Poll `f` every 50 ms until it returns true; panic mentioning `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

const GST_CHECK: &str = r#"
import sys
try:
    import gi
    gi.require_version('Gst', '1.0')
    gi.require_version('GstRtspServer', '1.0')
    from gi.repository import Gst, GstRtspServer
except Exception as e:
    print('gi / GstRtspServer bindings: %s' % e)
    sys.exit(1)
Gst.init(None)
need = ['videotestsrc', 'videoconvert', 'x264enc', 'h264parse', 'rtph264pay']
missing = [e for e in need if Gst.ElementFactory.find(e) is None]
if missing:
    print('missing GStreamer elements: ' + ', '.join(missing))
    sys.exit(1)
"#;

fn gst_check() -> &'static Result<(), String> {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    CHECK.get_or_init(|| match Command::new(python()).args(["-c", GST_CHECK]).stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))),
        Err(e) => Err(format!("cannot run {}: {e}", python())),
    })
}

/// True if `/usr/bin/python3` can import GstRtspServer and the H.264 elements exist.
pub fn gst_available() -> bool {
    gst_check().is_ok()
}

/// Panic with a clear message (run `make deps`) unless `gst_available()`.
pub fn require_gst() {
    if let Err(why) = gst_check() {
        panic!(
            "the GStreamer RTSP test server is not usable with {}: {}\n\
             run `make deps` (Debian: python3-gi gir1.2-gst-rtsp-server-1.0 \
             gstreamer1.0-plugins-{{base,good,bad,ugly}} gstreamer1.0-libav gstreamer1.0-x ffmpeg)",
            python(),
            why.trim()
        );
    }
}

/// Options of the test camera. `Default`: port 0 (server picks a free one,
/// kept across `restart`), "/cam", H.264 High 640x360 @ 25 fps, 1000 kbit/s,
/// keyframe every 50 frames, no audio, no auth.
#[derive(Clone, Debug)]
pub struct RtspServerOptions {
    /// 0 = pick a free port (the server binds :0 and reports it; no race).
    pub port: u16,
    pub path: String,
    /// Add an AAC (MPEG4-GENERIC) sine track.
    pub audio: bool,
    /// H.265 Main instead of H.264 High.
    pub h265: bool,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    /// Max frames between keyframes.
    pub keyint: u32,
    /// (user, password): require RTSP Basic or Digest auth (both offered).
    pub credentials: Option<(String, String)>,
    /// GStreamer `videotestsrc` pattern: "ball" (default, low bitrate) or "snow" (noise that
    /// fills the bitrate, for tests that need bytes).
    pub pattern: String,
    /// A scripted scene for motion tests ("motion": a box crosses a static picture after
    /// `scene_start` seconds; "ramp": the picture darkens), its transitions appended to
    /// `scene_log` as `<what> <unix µs>` lines.
    pub scene: Option<(String, std::path::PathBuf)>,
    /// Seconds of static scene before it changes, and the box's vertical position (0-1).
    pub scene_start: f32,
    pub box_y: f32,
}

impl Default for RtspServerOptions {
    fn default() -> Self {
        RtspServerOptions {
            port: 0,
            path: "/cam".to_string(),
            audio: false,
            h265: false,
            width: 640,
            height: 360,
            fps: 25,
            bitrate_kbps: 1000,
            keyint: 50,
            credentials: None,
            pattern: "ball".to_string(),
            scene: None,
            scene_start: 4.0,
            box_y: 0.6,
        }
    }
}

/// A running `tests/support/rtsp_server.py` on 127.0.0.1. Killed on drop
/// (and it exits by itself if the test process dies: its stdin closes).
pub struct RtspServer {
    opts: RtspServerOptions,
    child: Option<Child>,
    url: String,
    log: tempfile::NamedTempFile,
}

impl RtspServer {
    /// Spawn the server and wait (up to 20 s) for its READY line; panics with
    /// the script's stderr if it fails.
    pub fn start(opts: RtspServerOptions) -> RtspServer {
        let log = tempfile::Builder::new()
            .prefix("hearth-rtsp-server-")
            .suffix(".log")
            .tempfile()
            .expect("create server log file");
        let mut s = RtspServer { opts, child: None, url: String::new(), log };
        s.spawn_until_ready(false);
        s
    }

    /// `rtsp://127.0.0.1:PORT/path` (no credentials).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The URL with `user:password@` (percent-encoded) when credentials are set.
    pub fn url_with_credentials(&self) -> String {
        match &self.opts.credentials {
            None => self.url.clone(),
            Some((u, p)) => self.url.replacen("rtsp://", &format!("rtsp://{}:{}@", pct_encode(u), pct_encode(p)), 1),
        }
    }

    pub fn port(&self) -> u16 {
        self.opts.port
    }

    pub fn options(&self) -> &RtspServerOptions {
        &self.opts
    }

    /// Process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// True while the server process is alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Everything the script wrote to stderr so far (all runs, restarts included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// SIGTERM, wait up to 3 s, then SIGKILL. Connected clients see the
    /// connection close. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let termed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !termed {
            // No `kill` binary: closing stdin makes the script exit cleanly too.
            drop(child.stdin.take());
        }
        if wait_timeout(&mut child, Duration::from_secs(3)).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop, then start again on the same port with the same options
    /// (a client sees the camera go away and come back).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_until_ready(true);
    }

    fn args(&self) -> Vec<String> {
        let o = &self.opts;
        let mut a = vec![
            rtsp_server_script().display().to_string(),
            "--exit-on-stdin-eof".into(),
            "--port".into(),
            o.port.to_string(),
            "--path".into(),
            o.path.clone(),
            "--width".into(),
            o.width.to_string(),
            "--height".into(),
            o.height.to_string(),
            "--fps".into(),
            o.fps.to_string(),
            "--bitrate-kbps".into(),
            o.bitrate_kbps.to_string(),
            "--keyint".into(),
            o.keyint.to_string(),
            "--pattern".into(),
            o.pattern.clone(),
        ];
        if o.audio {
            a.push("--audio".into());
        }
        if o.h265 {
            a.push("--h265".into());
        }
        if let Some((u, p)) = &o.credentials {
            a.extend(["--user".into(), u.clone(), "--password".into(), p.clone()]);
        }
        if let Some((scene, log)) = &o.scene {
            a.extend(["--scene".into(), scene.clone(), "--scene-log".into(), log.display().to_string()]);
            a.extend(["--scene-start".into(), o.scene_start.to_string(), "--box-y".into(), o.box_y.to_string()]);
        }
        a
    }

    fn spawn_until_ready(&mut self, restarting: bool) {
        // On restart the port is fixed; if it is briefly not bindable, retry.
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.spawn_once(deadline) {
                Ok(url) => {
                    let port = url
                        .strip_prefix("rtsp://127.0.0.1:")
                        .and_then(|r| r.split('/').next())
                        .and_then(|p| p.parse::<u16>().ok())
                        .unwrap_or_else(|| panic!("bad READY url {url:?}"));
                    self.opts.port = port;
                    self.url = url;
                    return;
                }
                Err(why) => {
                    let log = self.log();
                    let retry = restarting
                        && attempt < 10
                        && Instant::now() + Duration::from_millis(300) < deadline
                        && log.lines().last().is_some_and(|l| l.contains("cannot listen"));
                    if retry {
                        thread::sleep(Duration::from_millis(300));
                        continue;
                    }
                    panic!(
                        "rtsp_server.py ({} {}) failed: {why}\n--- server stderr ---\n{log}",
                        python(),
                        self.args().join(" ")
                    );
                }
            }
        }
    }

    fn spawn_once(&mut self, deadline: Instant) -> Result<String, String> {
        let stderr = OpenOptions::new().append(true).open(self.log.path()).map_err(|e| format!("open log: {e}"))?;
        let mut child = Command::new(python())
            .args(self.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("cannot spawn {}: {e}", python()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            // Forward lines until EOF; keep draining after READY.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("READY ") {
                        self.child = Some(child);
                        return Ok(url.trim().to_string());
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let st = child.wait().ok();
                    return Err(format!("exited before READY ({st:?})"));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("no READY line within {READY_TIMEOUT:?}"));
                }
            }
        }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Show the server's log with a failing test (not twice for a failed start).
        if thread::panicking() && !self.url.is_empty() {
            eprintln!("--- rtsp_server.py stderr ({}) ---\n{}", self.url, self.log());
        }
    }
}

fn pct_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

/// Run a command to completion, killing it after `timeout`.
pub fn output_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {cmd:?}: {e}"))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let t_out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = match wait_timeout(&mut child, timeout) {
        Some(st) => st,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = t_err.join().unwrap_or_default();
            return Err(format!(
                "{cmd:?} still running after {timeout:?}; killed. stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            ));
        }
    };
    Ok(Output { status, stdout: t_out.join().unwrap_or_default(), stderr: t_err.join().unwrap_or_default() })
}

/// `ffprobe -v error -of json <args> <path>` parsed as JSON; panics with
/// ffprobe's stderr on failure or after 60 s. For `rtsp://` paths,
/// `-rtsp_transport tcp` is added unless `args` name a transport.
pub fn ffprobe_json(args: &[&str], path: &Path) -> serde_json::Value {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-of", "json"]);
    let p = path.to_string_lossy();
    if p.starts_with("rtsp://") && !args.contains(&"-rtsp_transport") {
        cmd.args(["-rtsp_transport", "tcp"]);
    }
    cmd.args(args).arg(path);
    let out = output_with_timeout(&mut cmd, FFPROBE_TIMEOUT).unwrap_or_else(|e| panic!("ffprobe on {p}: {e}"));
    if !out.status.success() {
        panic!("ffprobe {args:?} {p} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ffprobe {args:?} {p}: bad JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)))
}

/// What `ffprobe_frames` found in a media file (first video stream).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameProbe {
    /// ffprobe codec name of the first video stream ("h264", "hevc").
    pub codec: String,
    /// e.g. "High", "Main".
    pub profile: Option<String>,
    pub width: u32,
    pub height: u32,
    /// Decoded video frames (`-count_frames` nb_read_frames).
    pub frame_count: u64,
    /// pts_time of each video packet, in file order (= presentation order without B-frames).
    pub pts: Vec<f64>,
    pub has_audio: bool,
    /// Codec name of the first audio stream ("aac").
    pub audio_codec: Option<String>,
}

fn json_u64(v: &serde_json::Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Probe a media file (decodes it all: not for live URLs). Panics if it has no video.
pub fn ffprobe_frames(path: &Path) -> FrameProbe {
    let v = ffprobe_json(
        &[
            "-count_frames",
            "-show_entries",
            "stream=index,codec_type,codec_name,profile,width,height,nb_read_frames:packet=stream_index,pts_time",
        ],
        path,
    );
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("{}: no video stream in {v}", path.display()));
    let audio = streams.iter().find(|s| s["codec_type"] == "audio");
    let vindex = json_u64(&video["index"]).unwrap_or(0);
    let pts = v["packets"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| json_u64(&p["stream_index"]) == Some(vindex))
                .filter_map(|p| p["pts_time"].as_str().and_then(|t| t.parse::<f64>().ok()))
                .collect()
        })
        .unwrap_or_default();
    FrameProbe {
        codec: video["codec_name"].as_str().unwrap_or_default().to_string(),
        profile: video["profile"].as_str().map(str::to_string),
        width: json_u64(&video["width"]).unwrap_or(0) as u32,
        height: json_u64(&video["height"]).unwrap_or(0) as u32,
        frame_count: json_u64(&video["nb_read_frames"]).unwrap_or(0),
        pts,
        has_audio: audio.is_some(),
        audio_codec: audio.and_then(|a| a["codec_name"].as_str().map(str::to_string)),
    }
}
