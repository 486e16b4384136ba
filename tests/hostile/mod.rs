//! A small scripted RTSP camera for fault tests (`mod hostile;`): it answers OPTIONS,
//! DESCRIBE, SETUP (interleaved TCP) and PLAY like a camera and streams a real H.264 loop
//! (hearth's demo pattern, encoded once per test binary), but each connection can be told to
//! misbehave in one [`Fault`] way first. It counts connections and the access units it sent
//! completely, so tests can compare what the camera sent with what hearth recorded.
//!
//! Plain std threads and blocking sockets: one thread per connection plus one streaming
//! thread while playing. Everything binds 127.0.0.1.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hearth::demo::{EncodedLoop, PatternOptions};

/// A hub recording one well-behaved camera named `door` in 2 s clips, serving, once `clips`
/// clips are closed; with the camera and the web URL.
pub fn serving_hub(clips: usize) -> (HostileCamera, crate::hub::Hub, String) {
    let camera = HostileCamera::start(&[]);
    let spec = crate::hub::CameraSpec { name: "door".into(), url: camera.url(), extra: String::new() };
    let mut hub = crate::hub::Hub::new("clip_seconds = 2", &[spec]);
    hub.start();
    let url = hub.web_url();
    hub.wait_for_clips(clips, Duration::from_secs(30));
    (camera, hub, url)
}

/// How a connection misbehaves. After its scripted faults a camera behaves (`Good`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A well-behaved camera.
    Good,
    /// Accepts the connection and reads requests but never answers (TCP open, no data).
    Silent,
    /// Streams this many frames, then stops sending anything; the connection stays open.
    StallAfter(u32),
    /// DESCRIBE answers 200 with a body that is not SDP.
    MalformedSdp,
    /// DESCRIBE answers an SDP with an audio track only.
    NoVideoSdp,
    /// The SDP's sprop-parameter-sets are garbage (base64 of random bytes), and no SPS/PPS
    /// ever comes in band: the video parameters never parse.
    BadParameterSets,
    /// RTP packets carry payload type 0 although the SDP announced 96.
    WrongPayloadType,
    /// A few good frames, then interleaved messages of 65 535 bytes of junk on the RTP channel.
    HugeRtp,
    /// A few good frames, then interleaved RTP messages of 3 bytes (shorter than a header).
    TruncatedRtp,
    /// A few good frames, then one FU-A NAL that never ends (same timestamp, no end bit),
    /// streamed at `FU_A_RATE` bytes/s until the client gives up.
    EndlessFuA,
    /// Good frames whose RTP timestamp jumps forward by 7 s after 60 frames, backwards by
    /// 3 s after 120, and forward by 60 s (beyond retina's limit) after 180.
    TimestampJumps,
    /// A few good frames, then bytes that are neither RTSP nor interleaved data.
    Garbage,
    /// A few good frames, then half of a keyframe's packets, then the connection closes.
    CloseMidFrame,
    /// A few good frames, then only RTCP sender reports (one a second): the encoder hung but
    /// the camera's RTSP stack is alive.
    RtcpOnly,
}

/// Rate of the endless FU-A: 16 Mbit/s, the most a 4K camera sends.
pub const FU_A_RATE: usize = 2_000_000;
const GOOD_FRAMES_BEFORE_FAULT: u64 = 30;
const MAX_PAYLOAD: usize = 1400;

/// The H.264 loop every hostile camera in this test binary streams: 320×180, 25 fps, 4 s,
/// a keyframe every 2 s (hearth's demo pattern, so ffprobe decodes what hearth records).
pub fn video() -> Arc<EncodedLoop> {
    static VIDEO: OnceLock<Arc<EncodedLoop>> = OnceLock::new();
    VIDEO
        .get_or_init(|| {
            let opts = PatternOptions { width: 320, height: 180, fps: 25, seconds: 4, bitrate: 300_000 };
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(hearth::demo::encode_pattern(opts)).expect("encode the test pattern")
        })
        .clone()
}

struct Shared {
    video: Arc<EncodedLoop>,
    script: Mutex<VecDeque<Fault>>,
    /// RTSP connections so far (ones that sent a request: hearth's reachability probe, which
    /// connects and hangs up, does not count), and the fault each one played.
    connections: AtomicUsize,
    faults_played: Mutex<Vec<Fault>>,
    /// Access units written completely by `Good` streams, and by any stream.
    frames_sent: AtomicU64,
    frames_sent_all: AtomicU64,
    /// Set by `restart` and `finish`: every connection ends.
    down: AtomicBool,
    /// Set by `finish`: streams end cleanly after the current frame, new connections close.
    finishing: AtomicBool,
    live: Mutex<Vec<TcpStream>>,
    streaming: AtomicUsize,
}

/// A running hostile camera on 127.0.0.1. Stops on drop.
pub struct HostileCamera {
    shared: Arc<Shared>,
    port: u16,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl HostileCamera {
    /// Starts a camera whose first connections play `faults` in order; later ones are good.
    pub fn start(faults: &[Fault]) -> HostileCamera {
        let shared = Arc::new(Shared {
            video: video(),
            script: Mutex::new(faults.iter().copied().collect()),
            connections: AtomicUsize::new(0),
            faults_played: Mutex::new(Vec::new()),
            frames_sent: AtomicU64::new(0),
            frames_sent_all: AtomicU64::new(0),
            down: AtomicBool::new(false),
            finishing: AtomicBool::new(false),
            live: Mutex::new(Vec::new()),
            streaming: AtomicUsize::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut camera = HostileCamera { shared, port, acceptor: None };
        camera.accept_on(listener);
        camera
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    pub fn faults_played(&self) -> Vec<Fault> {
        self.shared.faults_played.lock().unwrap().clone()
    }

    /// Complete access units sent by well-behaved streams.
    pub fn frames_sent(&self) -> u64 {
        self.shared.frames_sent.load(Ordering::SeqCst)
    }

    /// Complete access units sent by any stream, faulty ones included.
    pub fn frames_sent_all(&self) -> u64 {
        self.shared.frames_sent_all.load(Ordering::SeqCst)
    }

    /// Queues more faults for the next connections.
    pub fn then(&self, faults: &[Fault]) {
        self.shared.script.lock().unwrap().extend(faults.iter().copied());
    }

    /// The camera reboots: every connection is cut, the port refuses connections for
    /// `down_for`, then the camera answers again on the same port.
    pub fn restart(&mut self, down_for: Duration) {
        self.shut_down();
        thread::sleep(down_for);
        self.shared.down.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebinding {}: {e}", self.port);
                    thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot rebind port {}: {e}", self.port),
            }
        };
        self.accept_on(listener);
    }

    /// Ends every stream cleanly after its current frame and closes the connections; the
    /// camera then refuses to stream (new connections are closed at once). Returns when every
    /// stream has stopped, so `frames_sent` is final.
    pub fn finish(&self) {
        self.shared.finishing.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.shared.streaming.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(self.shared.streaming.load(Ordering::SeqCst), 0, "streams did not end");
    }

    fn accept_on(&mut self, listener: TcpListener) {
        let shared = self.shared.clone();
        self.acceptor = Some(thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.down.load(Ordering::SeqCst) {
                    return; // the wake-up connection from shut_down
                }
                let Ok(stream) = stream else { continue };
                if shared.finishing.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                if let Ok(clone) = stream.try_clone() {
                    shared.live.lock().unwrap().push(clone);
                }
                let shared = shared.clone();
                thread::spawn(move || Connection::new(stream, shared).run());
            }
        }));
    }

    fn shut_down(&mut self) {
        self.shared.down.store(true, Ordering::SeqCst);
        for stream in self.shared.live.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the acceptor
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for HostileCamera {
    fn drop(&mut self) {
        self.shut_down();
    }
}

struct Connection {
    stream: TcpStream,
    writer: Arc<Mutex<TcpStream>>,
    fault: Fault,
    shared: Arc<Shared>,
    session: String,
    ssrc: u32,
    seq0: u16,
    ts0: u32,
    streamer: Option<thread::JoinHandle<()>>,
    stop_streaming: Arc<AtomicBool>,
}

/// One parsed request head.
struct Request {
    method: String,
    uri: String,
    cseq: String,
}

impl Connection {
    fn new(stream: TcpStream, shared: Arc<Shared>) -> Connection {
        let writer = Arc::new(Mutex::new(stream.try_clone().unwrap()));
        Connection {
            stream,
            writer,
            fault: Fault::Good,
            shared,
            session: format!("{:016X}", rand::random::<u64>()),
            ssrc: rand::random(),
            seq0: rand::random(),
            ts0: rand::random(),
            streamer: None,
            stop_streaming: Arc::new(AtomicBool::new(false)),
        }
    }

    fn run(mut self) {
        let _ = self.stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut first = true;
        loop {
            if self.shared.down.load(Ordering::SeqCst) || self.streamer.as_ref().is_some_and(|s| s.is_finished()) {
                break;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
                Err(_) => break,
            }
            while let Some((request, used)) = parse_request(&buf) {
                buf.drain(..used);
                if first {
                    // The fault is chosen by the first request, not at accept.
                    first = false;
                    self.fault = self.shared.script.lock().unwrap().pop_front().unwrap_or(Fault::Good);
                    self.shared.faults_played.lock().unwrap().push(self.fault);
                    self.shared.connections.fetch_add(1, Ordering::SeqCst);
                }
                if !request.method.is_empty() && self.fault != Fault::Silent {
                    self.answer(&request);
                }
            }
            if buf.len() > 1 << 20 {
                break;
            }
        }
        self.stop_streaming.store(true, Ordering::SeqCst);
        if let Some(streamer) = self.streamer.take() {
            let _ = streamer.join();
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn answer(&mut self, req: &Request) {
        let base = req.uri.trim_end_matches('/').to_owned();
        let response = match req.method.as_str() {
            "OPTIONS" => ok(&req.cseq, "Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN\r\n", ""),
            "DESCRIBE" => {
                let sdp = self.sdp();
                let headers = format!(
                    "Content-Base: {base}/\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n",
                    sdp.len()
                );
                ok(&req.cseq, &headers, &sdp)
            }
            "SETUP" => ok(
                &req.cseq,
                &format!(
                    "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc={:08X}\r\nSession: {};timeout=60\r\n",
                    self.ssrc, self.session
                ),
                "",
            ),
            "PLAY" => {
                let headers = format!(
                    "Session: {}\r\nRange: npt=0.000-\r\nRTP-Info: url={}/trackID=0;seq={};rtptime={}\r\n",
                    self.session,
                    base.trim_end_matches("/trackID=0"),
                    self.seq0,
                    self.ts0
                );
                let response = ok(&req.cseq, &headers, "");
                self.send(response.as_bytes());
                self.start_streaming();
                return;
            }
            "GET_PARAMETER" | "SET_PARAMETER" => ok(&req.cseq, &format!("Session: {}\r\n", self.session), ""),
            "TEARDOWN" => {
                self.stop_streaming.store(true, Ordering::SeqCst);
                ok(&req.cseq, "", "")
            }
            _ => format!("RTSP/1.0 501 Not Implemented\r\nCSeq: {}\r\n\r\n", req.cseq),
        };
        self.send(response.as_bytes());
    }

    fn send(&self, bytes: &[u8]) {
        let _ = self.writer.lock().unwrap().write_all(bytes);
    }

    fn sdp(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let video = &self.shared.video;
        let (sps, pps) = match self.fault {
            Fault::BadParameterSets => (b64.encode(rand::random::<[u8; 12]>()), b64.encode(rand::random::<[u8; 5]>())),
            _ => (b64.encode(&video.sps), b64.encode(&video.pps)),
        };
        let profile = video.profile_level_id();
        match self.fault {
            Fault::MalformedSdp => "v=0\r\nthis is not an SDP \u{1}\u{7f} m=video\r\nm=\r\na=rtpmap:96\r\n".to_owned(),
            Fault::NoVideoSdp => "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
                m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:trackID=0\r\n"
                .to_owned(),
            _ => format!(
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=hostile camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
                 a=control:*\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
                 a=fmtp:96 packetization-mode=1;profile-level-id={profile};sprop-parameter-sets={sps},{pps}\r\n\
                 a=control:trackID=0\r\n"
            ),
        }
    }

    fn start_streaming(&mut self) {
        if self.streamer.is_some() {
            return;
        }
        let mut streamer = Streamer {
            writer: self.writer.clone(),
            video: self.shared.video.clone(),
            fault: self.fault,
            shared: self.shared.clone(),
            stop: self.stop_streaming.clone(),
            ssrc: self.ssrc,
            seq: self.seq0,
            ts0: self.ts0,
        };
        self.shared.streaming.fetch_add(1, Ordering::SeqCst);
        self.streamer = Some(thread::spawn(move || {
            streamer.run();
            streamer.shared.streaming.fetch_sub(1, Ordering::SeqCst);
        }));
    }
}

fn ok(cseq: &str, headers: &str, body: &str) -> String {
    format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nServer: hostile\r\n{headers}\r\n{body}")
}

/// The first complete request in `buf` and the bytes it used. Interleaved data from the
/// client (RTCP receiver reports) is skipped.
fn parse_request(buf: &[u8]) -> Option<(Request, usize)> {
    if buf.first() == Some(&b'$') {
        let len = usize::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]));
        return (buf.len() >= 4 + len)
            .then(|| (Request { method: String::new(), uri: String::new(), cseq: "0".into() }, 4 + len));
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_owned();
    let uri = first.next().unwrap_or_default().to_owned();
    let mut cseq = "0".to_owned();
    let mut content_length = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        match name.trim().to_ascii_lowercase().as_str() {
            "cseq" => cseq = value.trim().to_owned(),
            "content-length" => content_length = value.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    (buf.len() >= end + content_length).then_some((Request { method, uri, cseq }, end + content_length))
}

struct Streamer {
    writer: Arc<Mutex<TcpStream>>,
    video: Arc<EncodedLoop>,
    fault: Fault,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    ssrc: u32,
    seq: u16,
    ts0: u32,
}

impl Streamer {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.shared.down.load(Ordering::SeqCst)
    }

    fn run(&mut self) {
        let fps = u64::from(self.video.fps);
        let period = Duration::from_nanos(1_000_000_000 / fps);
        let started = Instant::now();
        let mut ts_offset: i64 = 0;
        for n in 0u64.. {
            if self.stopped() {
                return;
            }
            if self.shared.finishing.load(Ordering::SeqCst) {
                let _ = self.writer.lock().unwrap().shutdown(Shutdown::Both);
                return;
            }
            // Real time, from the PLAY response on.
            let due = started + period * n as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            let faulty = n >= GOOD_FRAMES_BEFORE_FAULT;
            match self.fault {
                Fault::StallAfter(frames) if n >= u64::from(frames) => {
                    while !self.stopped() {
                        thread::sleep(Duration::from_millis(50));
                    }
                    return;
                }
                Fault::HugeRtp if faulty => {
                    let mut junk = vec![b'$', 0, 0xff, 0xff];
                    junk.extend((0..65_535).map(|i| (i * 7 + 3) as u8));
                    if !self.write(&junk) {
                        return;
                    }
                    continue;
                }
                Fault::TruncatedRtp if faulty => {
                    if !self.write(&[b'$', 0, 0, 3, 0x80, 96, 0]) {
                        return;
                    }
                    continue;
                }
                Fault::Garbage if faulty => {
                    let garbage: Vec<u8> = (0..1000).map(|_| b'A' + rand::random::<u8>() % 26).collect();
                    if !self.write(&garbage) {
                        return;
                    }
                    continue;
                }
                Fault::EndlessFuA if faulty => return self.endless_fu_a(n),
                Fault::RtcpOnly if faulty => {
                    if n % u64::from(self.video.fps) == 0 && !self.write(&self.sender_report(n)) {
                        return;
                    }
                    continue;
                }
                Fault::TimestampJumps => match n {
                    60 => ts_offset += 7 * 90_000,
                    120 => ts_offset -= 3 * 90_000,
                    180 => ts_offset += 60 * 90_000,
                    _ => {}
                },
                _ => {}
            }
            let packets = self.frame_packets(n, ts_offset);
            if self.fault == Fault::CloseMidFrame
                && faulty
                && self.video.frames[n as usize % self.video.frames.len()].is_keyframe
            {
                let half = packets.len() / 2;
                for p in &packets[..half.max(1)] {
                    self.write(p);
                }
                let _ = self.writer.lock().unwrap().shutdown(Shutdown::Both);
                return;
            }
            let all: Vec<u8> = packets.concat();
            if !self.write(&all) {
                return;
            }
            if self.fault == Fault::Good {
                self.shared.frames_sent.fetch_add(1, Ordering::SeqCst);
            }
            self.shared.frames_sent_all.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn write(&self, bytes: &[u8]) -> bool {
        self.writer.lock().unwrap().write_all(bytes).is_ok()
    }

    /// The interleaved RTP packets of frame `n` (SPS and PPS before keyframes).
    fn frame_packets(&mut self, n: u64, ts_offset: i64) -> Vec<Vec<u8>> {
        let video = self.video.clone();
        let frame = &video.frames[n as usize % video.frames.len()];
        let ts = (i64::from(self.ts0) + (n * 90_000 / u64::from(video.fps)) as i64 + ts_offset) as u32;
        let mut nals: Vec<&[u8]> = Vec::new();
        if frame.is_keyframe && self.fault != Fault::BadParameterSets {
            nals.push(&video.sps);
            nals.push(&video.pps);
        }
        nals.extend(frame.nals.iter().map(|b| &b[..]));
        let pt = if self.fault == Fault::WrongPayloadType { 0 } else { 96 };
        let mut out = Vec::new();
        for (i, nal) in nals.iter().enumerate() {
            let last = i + 1 == nals.len();
            if nal.len() <= MAX_PAYLOAD {
                out.push(self.packet(pt, ts, last, &[], nal));
                continue;
            }
            let indicator = (nal[0] & 0xE0) | 28;
            let kind = nal[0] & 0x1F;
            let chunks: Vec<&[u8]> = nal[1..].chunks(MAX_PAYLOAD - 2).collect();
            for (j, chunk) in chunks.iter().enumerate() {
                let end = j + 1 == chunks.len();
                let header = kind | if j == 0 { 0x80 } else { 0 } | if end { 0x40 } else { 0 };
                out.push(self.packet(pt, ts, last && end, &[indicator, header], chunk));
            }
        }
        out
    }

    /// An RTCP sender report on the interleaved RTCP channel for frame `n`'s time.
    fn sender_report(&self, n: u64) -> Vec<u8> {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        let ntp = ((since_epoch.as_secs() + 2_208_988_800) << 32)
            | ((u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000);
        let ts = self.ts0.wrapping_add((n * 90_000 / u64::from(self.video.fps)) as u32);
        let mut p = vec![b'$', 1, 0, 28, 0x80, 200, 0, 6];
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(&ntp.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p
    }

    fn packet(&mut self, pt: u8, ts: u32, marker: bool, prefix: &[u8], payload: &[u8]) -> Vec<u8> {
        let len = 12 + prefix.len() + payload.len();
        let mut p = Vec::with_capacity(4 + len);
        p.extend_from_slice(&[b'$', 0]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
        p.push(0x80);
        p.push(if marker { 0x80 | pt } else { pt });
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(prefix);
        p.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        p
    }

    /// A non-IDR slice NAL that never ends: FU-A start, then middle fragments forever, all
    /// with one timestamp and no marker, at `FU_A_RATE`.
    fn endless_fu_a(&mut self, n: u64) {
        let ts = self.ts0.wrapping_add((n * 90_000 / u64::from(self.video.fps)) as u32);
        let payload = vec![0x5au8; MAX_PAYLOAD - 2];
        let first = self.packet(96, ts, false, &[0x41 & 0xE0 | 28, 0x80 | 1], &payload);
        if !self.write(&first) {
            return;
        }
        let per_batch = 64;
        let batch_bytes = per_batch * MAX_PAYLOAD;
        let batch_period = Duration::from_secs_f64(batch_bytes as f64 / FU_A_RATE as f64);
        let started = Instant::now();
        for batch in 0u32.. {
            if self.stopped() {
                return;
            }
            let mut out = Vec::with_capacity(batch_bytes + per_batch * 16);
            for _ in 0..per_batch {
                out.extend(self.packet(96, ts, false, &[0x41 & 0xE0 | 28, 1], &payload));
            }
            if !self.write(&out) {
                return;
            }
            let due = started + batch_period * (batch + 1);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
        }
    }
}
