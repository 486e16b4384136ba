//! The demo camera's RTSP/1.0 server: accepts TCP connections, answers
//! OPTIONS, DESCRIBE, SETUP (interleaved TCP only), PLAY, GET_PARAMETER and
//! TEARDOWN, optionally behind HTTP Basic authentication, and streams the
//! pre-encoded loop to each playing client in real time with its own SSRC,
//! sequence numbers and RTP timestamps. Every client is an independent task;
//! a misbehaving one gets an error status or a closed connection, never a
//! crash of the server. Framing lives in `message`, packetisation in `rtp`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval};
use tracing::{debug, warn};
use url::Url;

use super::message::{parse_message, Incoming, Request, Response, Status};
use super::pattern::EncodedLoop;
use super::rtp::{ntp_timestamp, RtpSender};

/// Session timeout we announce. Enforced only until PLAY: a silent client
/// that never gets that far is dropped, while during playback TCP itself
/// reports a departed client and the write timeout a stalled one, so players
/// that skip keep-alives are not cut off.
pub(crate) const SESSION_TIMEOUT_SECS: u64 = 60;
/// A client that cannot take a frame (or a response) for this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to keep reading after a fatal error so the client gets our
/// response rather than a reset.
const LINGER: Duration = Duration::from_millis(500);
/// Simultaneous connections; more are closed at once to bound resource use.
const MAX_CLIENTS: usize = 64;
const RTP_CLOCK_HZ: u64 = 90_000;
/// Seconds between RTCP sender reports.
const SR_INTERVAL_SECS: u64 = 5;
const REALM: &str = "hearth demo camera";
/// Control URL of the single video stream, relative to the presentation.
const TRACK: &str = "trackID=0";
const PUBLIC: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN";

/// What every connection needs to know; shared read-only.
#[derive(Debug)]
pub(crate) struct ServerConfig {
    pub encoded: Arc<EncodedLoop>,
    /// Presentation path: leading `/`, no trailing `/`, e.g. `/demo`.
    pub path: String,
    pub credentials: Option<(String, String)>,
}

/// Accepts clients until `stop` fires (or its sender is dropped), then
/// closes the listener and every client connection.
pub(crate) async fn serve(listener: TcpListener, config: Arc<ServerConfig>, mut stop: watch::Receiver<()>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) if conns.len() < MAX_CLIENTS => {
                    conns.spawn(run_connection(socket, peer, config.clone(), stop.clone()));
                }
                Ok((_, peer)) => warn!(%peer, "demo camera: too many clients, refusing connection"),
                Err(e) => {
                    // Typically EMFILE; back off instead of spinning.
                    warn!("demo camera: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    conns.shutdown().await;
}

async fn run_connection(socket: TcpStream, peer: SocketAddr, config: Arc<ServerConfig>, stop: watch::Receiver<()>) {
    debug!(%peer, "demo camera: client connected");
    let local_ip = socket.local_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let _ = socket.set_nodelay(true);
    let conn = Connection::new(config, local_ip);
    conn.run(socket, stop).await;
    debug!(%peer, "demo camera: client gone");
}

/// What to do after handling buffered input.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// Orderly end (TEARDOWN).
    Close,
    /// Framing lost: the error response is sent; linger, then close.
    Abort,
}

/// Per-connection state. RTSP sessions here are tied to their connection,
/// like most cameras' TCP-interleaved sessions.
struct Connection {
    config: Arc<ServerConfig>,
    local_ip: IpAddr,
    session: Option<Session>,
    rtp: RtpSender,
    /// RTP timestamp of the first frame: random, per RFC 3550.
    rtp_base: u32,
}

struct Session {
    id: String,
    playing: Option<Playing>,
}

struct Playing {
    interval: Interval,
    frames_sent: u64,
}

impl Connection {
    fn new(config: Arc<ServerConfig>, local_ip: IpAddr) -> Self {
        Connection {
            config,
            local_ip,
            session: None,
            rtp: RtpSender::new(rand::random(), rand::random(), 0),
            rtp_base: rand::random(),
        }
    }

    async fn run(mut self, mut socket: TcpStream, mut stop: watch::Receiver<()>) {
        let (mut reader, mut writer) = socket.split();
        let mut buf = BytesMut::with_capacity(4096);
        let idle = Duration::from_secs(SESSION_TIMEOUT_SECS);
        let mut deadline = Instant::now() + idle;
        loop {
            match self.handle_buffered(&mut buf, &mut writer).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Close) | Err(_) => return,
                Ok(Flow::Abort) => return linger(&mut reader, &mut writer).await,
            }
            let playing = self.session.as_ref().is_some_and(|s| s.playing.is_some());
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep_until(deadline), if !playing => {
                    debug!("demo camera: client idle for {idle:?}, closing");
                    return;
                }
                read = reader.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => deadline = Instant::now() + idle,
                },
                _ = next_tick(&mut self.session) => {
                    let packets = self.next_frame_packets();
                    if let Err(e) = write_all(&mut writer, &packets).await {
                        debug!("demo camera: dropping client: {e}");
                        return;
                    }
                }
            }
        }
    }

    /// Answers every complete request in `buf`, discarding interleaved data.
    async fn handle_buffered<W: AsyncWrite + Unpin>(&mut self, buf: &mut BytesMut, w: &mut W) -> io::Result<Flow> {
        loop {
            match parse_message(buf) {
                Ok(None) => return Ok(Flow::Continue),
                Ok(Some((Incoming::Request(req), used))) => {
                    buf.advance(used);
                    let (response, flow) = self.handle(&req);
                    write_all(w, &response.to_bytes(req.cseq())).await?;
                    if flow != Flow::Continue {
                        return Ok(flow);
                    }
                }
                Ok(Some((_, used))) => buf.advance(used),
                Err(e) => {
                    debug!("demo camera: bad request: {e}");
                    write_all(w, &Response::new(e.status()).to_bytes(None)).await?;
                    return Ok(Flow::Abort);
                }
            }
        }
    }

    /// Produces the response to one request and updates session state.
    fn handle(&mut self, req: &Request) -> (Response, Flow) {
        if req.cseq().is_none() {
            return (Response::new(Status::BadRequest), Flow::Continue);
        }
        if req.method != "OPTIONS" && !self.authorized(req) {
            let challenge = format!("Basic realm=\"{REALM}\"");
            return (Response::new(Status::Unauthorized).header("WWW-Authenticate", challenge), Flow::Continue);
        }
        let response = match req.method.as_str() {
            "OPTIONS" => Response::new(Status::Ok).header("Public", PUBLIC),
            "DESCRIBE" => self.describe(req),
            "SETUP" => self.setup(req),
            "PLAY" => self.play(req),
            "GET_PARAMETER" => self.get_parameter(req),
            "TEARDOWN" => self.teardown(req),
            _ => Response::new(Status::NotImplemented).header("Public", PUBLIC),
        };
        let close = req.method == "TEARDOWN" && response.status() == Status::Ok;
        (response, if close { Flow::Close } else { Flow::Continue })
    }

    fn authorized(&self, req: &Request) -> bool {
        let Some((user, pass)) = &self.config.credentials else {
            return true;
        };
        req.header("Authorization").and_then(parse_basic).is_some_and(|(u, p)| {
            constant_time_eq(u.as_bytes(), user.as_bytes()) & constant_time_eq(p.as_bytes(), pass.as_bytes())
        })
    }

    /// True if `url` names our presentation, or (with `track`) its stream.
    fn names_us(&self, url: &Url, track: bool) -> bool {
        let path = url.path().trim_end_matches('/');
        let base = self.config.path.as_str();
        path == base || (track && path.strip_prefix(base).and_then(|r| r.strip_prefix('/')) == Some(TRACK))
    }

    fn describe(&self, req: &Request) -> Response {
        let Some(url) = request_url(req) else {
            return Response::new(Status::BadRequest);
        };
        if !self.names_us(&url, false) {
            return Response::new(Status::NotFound);
        }
        let sdp = sdp(&self.config.encoded, self.local_ip, u64::from(self.rtp.ssrc()));
        Response::new(Status::Ok)
            .header("Content-Base", public_url(&url, &format!("{}/", self.config.path)))
            .body("application/sdp", sdp)
    }

    fn setup(&mut self, req: &Request) -> Response {
        let Some(url) = request_url(req) else {
            return Response::new(Status::BadRequest);
        };
        if !self.names_us(&url, true) {
            return Response::new(Status::NotFound);
        }
        match (&self.session, req.session()) {
            (None, None) => {}
            // One stream only, and changing transport mid-session is unsupported.
            (Some(s), Some(id)) if s.id == id => return Response::new(Status::MethodNotValidInThisState),
            (Some(_), None) => return Response::new(Status::AggregateOperationNotAllowed),
            _ => return Response::new(Status::SessionNotFound),
        }
        let Some(transport) = req.header("Transport") else {
            return Response::new(Status::BadRequest);
        };
        let Some(channel) = choose_tcp_transport(transport) else {
            return Response::new(Status::UnsupportedTransport);
        };
        self.rtp.set_channel(channel);
        let id = format!("{:016X}", rand::random::<u64>());
        let reply = Response::new(Status::Ok)
            .header(
                "Transport",
                format!("RTP/AVP/TCP;unicast;interleaved={}-{};ssrc={:08X}", channel, channel + 1, self.rtp.ssrc()),
            )
            .header("Session", format!("{id};timeout={SESSION_TIMEOUT_SECS}"));
        self.session = Some(Session { id, playing: None });
        reply
    }

    /// Checks the request's `Session` header against the connection's session.
    fn check_session(&self, req: &Request) -> Result<&Session, Status> {
        match (&self.session, req.session()) {
            (Some(s), Some(id)) if s.id == id => Ok(s),
            (None, None) => Err(Status::MethodNotValidInThisState),
            _ => Err(Status::SessionNotFound),
        }
    }

    fn play(&mut self, req: &Request) -> Response {
        if let Err(status) = self.check_session(req) {
            return Response::new(status);
        }
        let fps = self.config.encoded.fps;
        let Some(session) = self.session.as_mut() else {
            return Response::new(Status::MethodNotValidInThisState);
        };
        // A repeated PLAY just reports where the stream already is.
        let frames_sent = session.playing.get_or_insert_with(|| Playing::new(fps)).frames_sent;
        let id = session.id.clone();
        let track = match request_url(req) {
            Some(url) => public_url(&url, &format!("{}/{TRACK}", self.config.path)),
            None => TRACK.to_owned(),
        };
        let rtptime = rtp_time(self.rtp_base, frames_sent, fps);
        Response::new(Status::Ok)
            .header("Session", id)
            .header("Range", "npt=0.000-")
            .header("RTP-Info", format!("url={track};seq={};rtptime={rtptime}", self.rtp.next_seq()))
    }

    fn get_parameter(&self, req: &Request) -> Response {
        // Without a Session header it is a plain ping; with one, it must be ours.
        if req.session().is_none() {
            return Response::new(Status::Ok);
        }
        match self.check_session(req) {
            Ok(s) => Response::new(Status::Ok).header("Session", s.id.clone()),
            Err(status) => Response::new(status),
        }
    }

    fn teardown(&mut self, req: &Request) -> Response {
        match self.check_session(req) {
            Ok(_) => {
                self.session = None;
                Response::new(Status::Ok)
            }
            Err(_) => Response::new(Status::SessionNotFound),
        }
    }

    /// Packets for the next frame of the loop, plus a sender report every
    /// few seconds. Parameter sets precede every keyframe, as cameras do.
    fn next_frame_packets(&mut self) -> BytesMut {
        let Some(playing) = self.session.as_mut().and_then(|s| s.playing.as_mut()) else {
            return BytesMut::new();
        };
        let n = playing.frames_sent;
        playing.frames_sent += 1;
        let enc = &self.config.encoded;
        let Some(frame) = enc.frames.get((n % enc.frames.len().max(1) as u64) as usize) else {
            return BytesMut::new();
        };
        // Sized for payload plus per-packet headers (18 bytes per ≤1400), so
        // a large keyframe is built without reallocating.
        let payload: usize = frame.nals.iter().map(|n| n.len()).sum::<usize>() + enc.sps.len() + enc.pps.len();
        let mut out = BytesMut::with_capacity(payload + payload / 64 + 256);
        let ts = rtp_time(self.rtp_base, n, enc.fps);
        let params: &[&[u8]] = if frame.is_keyframe { &[&enc.sps, &enc.pps] } else { &[] };
        let nals = params.iter().copied().chain(frame.nals.iter().map(|b| &b[..]));
        self.rtp.push_access_unit(nals, ts, &mut out);
        if n % (u64::from(enc.fps) * SR_INTERVAL_SECS) == 0 {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            self.rtp.push_sender_report(ntp_timestamp(now), ts, &mut out);
        }
        out
    }
}

impl Playing {
    fn new(fps: u32) -> Self {
        let period = Duration::from_nanos(1_000_000_000 / u64::from(fps.max(1)));
        // The first tick is immediate, so the first frame (a keyframe)
        // follows the PLAY response at once.
        Playing { interval: tokio::time::interval(period), frames_sent: 0 }
    }
}

/// Resolves at the playing session's next frame time; never, if not playing.
async fn next_tick(session: &mut Option<Session>) {
    match session.as_mut().and_then(|s| s.playing.as_mut()) {
        Some(p) => {
            p.interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn write_all<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, w.write_all(data)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "client not reading")),
    }
}

/// Half-closes, then briefly discards input so the kernel does not answer
/// the client's unread bytes with a reset that would destroy our response.
async fn linger<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(r: &mut R, w: &mut W) {
    let _ = w.shutdown().await;
    let mut scratch = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async { while matches!(r.read(&mut scratch).await, Ok(n) if n > 0) {} }).await;
}

/// RTP timestamp of frame `n`: exact 90 kHz arithmetic, wrapping like RTP.
pub(crate) fn rtp_time(base: u32, n: u64, fps: u32) -> u32 {
    let ticks = n.wrapping_mul(RTP_CLOCK_HZ) / u64::from(fps.max(1));
    base.wrapping_add(ticks as u32) // truncation is the intended mod 2^32
}

/// The request URI as an absolute URL, or `None` (e.g. `*` or garbage).
fn request_url(req: &Request) -> Option<Url> {
    Url::parse(&req.uri).ok().filter(|u| u.has_host())
}

/// `url` with `path`, minus any credentials, query or fragment: safe to
/// reflect back to the client as a control URL.
fn public_url(url: &Url, path: &str) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.set_path(path);
    u.to_string()
}

/// Picks the first `RTP/AVP/TCP` alternative of a `Transport` header and
/// returns its RTP interleaved channel (0 if the client left it to us).
/// `None` means nothing acceptable was offered: answer 461.
pub(crate) fn choose_tcp_transport(header: &str) -> Option<u8> {
    header.split(',').find_map(|spec| {
        let mut params = spec.split(';').map(str::trim);
        if !params.next()?.eq_ignore_ascii_case("RTP/AVP/TCP") {
            return None;
        }
        match params.find_map(|p| p.strip_prefix("interleaved=")) {
            None => Some(0),
            Some(range) => parse_interleaved(range),
        }
    })
}

/// `a` or `a-b` with `b == a + 1`; RTCP needs the channel after RTP's.
fn parse_interleaved(range: &str) -> Option<u8> {
    let (a, b) = match range.split_once('-') {
        Some((a, b)) => (a.trim().parse::<u8>().ok()?, Some(b.trim().parse::<u8>().ok()?)),
        None => (range.trim().parse::<u8>().ok()?, None),
    };
    let rtcp = a.checked_add(1)?;
    (b.is_none() || b == Some(rtcp)).then_some(a)
}

/// Decodes `Basic <base64(user:pass)>`.
pub(crate) fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(token.trim()).ok()?;
    let (user, pass) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// Compares without an early exit, so timing does not reveal how much of a
/// guessed password was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session description for DESCRIBE.
pub(crate) fn sdp(encoded: &EncodedLoop, origin: IpAddr, session_id: u64) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let (net, any) = match origin {
        IpAddr::V4(_) => ("IP4", "0.0.0.0"),
        IpAddr::V6(_) => ("IP6", "::"),
    };
    let seconds = (encoded.frames.len() as u64).div_ceil(u64::from(encoded.fps.max(1))).max(1);
    let kbps = (encoded.total_bytes() as u64 * 8).div_ceil(seconds * 1000).max(1);
    let lines = [
        "v=0".to_owned(),
        format!("o=- {session_id} 1 IN {net} {origin}"),
        "s=hearth demo camera".to_owned(),
        format!("c=IN {net} {any}"),
        "t=0 0".to_owned(),
        "a=control:*".to_owned(),
        "m=video 0 RTP/AVP 96".to_owned(),
        format!("b=AS:{kbps}"),
        "a=rtpmap:96 H264/90000".to_owned(),
        format!(
            "a=fmtp:96 packetization-mode=1;profile-level-id={};sprop-parameter-sets={},{}",
            encoded.profile_level_id(),
            b64.encode(&encoded.sps),
            b64.encode(&encoded.pps)
        ),
        format!("a=framerate:{}", encoded.fps),
        format!("a=control:{TRACK}"),
    ];
    let mut out = lines.join("\r\n");
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::pattern::EncodedFrame;
    use bytes::Bytes;

    fn tiny_loop() -> Arc<EncodedLoop> {
        Arc::new(EncodedLoop {
            sps: Bytes::from_static(&[0x67, 0x64, 0x00, 0x1E, 0xAC]),
            pps: Bytes::from_static(&[0x68, 0xEE, 0x3C, 0x80]),
            frames: vec![
                EncodedFrame { nals: vec![Bytes::from_static(&[0x65, 1, 2, 3])], is_keyframe: true },
                EncodedFrame { nals: vec![Bytes::from_static(&[0x41, 4])], is_keyframe: false },
            ],
            fps: 25,
            width: 640,
            height: 360,
        })
    }

    fn conn(credentials: Option<(&str, &str)>) -> Connection {
        let config = ServerConfig {
            encoded: tiny_loop(),
            path: "/demo".to_owned(),
            credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
        };
        Connection::new(Arc::new(config), IpAddr::from([127, 0, 0, 1]))
    }

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request {
        let mut h: Vec<(String, String)> = vec![("CSeq".into(), "1".into())];
        h.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        Request { method: method.into(), uri: uri.into(), headers: h }
    }

    fn text(r: &Response) -> String {
        String::from_utf8(r.to_bytes(Some("1"))).unwrap()
    }

    const URL: &str = "rtsp://127.0.0.1:8554/demo";
    const TCP: (&str, &str) = ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1");

    #[test]
    fn sdp_has_what_clients_need() {
        let s = sdp(&tiny_loop(), IpAddr::from([127, 0, 0, 1]), 42);
        assert!(s.starts_with("v=0\r\no=- 42 1 IN IP4 127.0.0.1\r\n"));
        for line in [
            "m=video 0 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
            "a=fmtp:96 packetization-mode=1;profile-level-id=64001E;sprop-parameter-sets=Z2QAHqw=,aO48gA==",
            "a=framerate:25",
            "a=control:trackID=0",
        ] {
            assert!(s.contains(&format!("{line}\r\n")), "missing {line}: {s}");
        }
    }

    #[test]
    fn transport_selection() {
        assert_eq!(choose_tcp_transport("RTP/AVP/TCP;unicast;interleaved=0-1"), Some(0));
        assert_eq!(choose_tcp_transport("rtp/avp/tcp;interleaved=4-5"), Some(4));
        assert_eq!(choose_tcp_transport("RTP/AVP/TCP;unicast"), Some(0));
        assert_eq!(choose_tcp_transport("RTP/AVP;unicast;client_port=5000-5001,RTP/AVP/TCP;interleaved=2"), Some(2));
        assert_eq!(choose_tcp_transport("RTP/AVP;unicast;client_port=5000-5001"), None);
        assert_eq!(choose_tcp_transport("RTP/AVP/UDP;unicast;client_port=5000-5001"), None);
        assert_eq!(choose_tcp_transport("RTP/AVP/TCP;interleaved=0-3"), None);
        assert_eq!(choose_tcp_transport("RTP/AVP/TCP;interleaved=255"), None);
        assert_eq!(choose_tcp_transport("RTP/AVP/TCP;interleaved=x"), None);
        assert_eq!(choose_tcp_transport(""), None);
    }

    #[test]
    fn basic_auth_parsing() {
        assert_eq!(parse_basic("Basic dXNlcjpwYTpzcw=="), Some(("user".into(), "pa:ss".into())));
        assert_eq!(parse_basic("basic  dXNlcjpwYTpzcw== "), Some(("user".into(), "pa:ss".into())));
        assert_eq!(parse_basic("Digest username=x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic("Basic dXNlcg=="), None); // no colon
        assert_eq!(parse_basic(""), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn rtp_time_is_exact_and_wraps() {
        assert_eq!(rtp_time(0, 1, 25), 3600);
        assert_eq!(rtp_time(u32::MAX, 1, 25), 3599);
        assert_eq!(rtp_time(0, 3, 30), 9000);
        assert_eq!(rtp_time(10, 0, 0), 10);
    }

    #[tokio::test]
    async fn request_flow_and_errors() {
        let mut c = conn(None);
        let (r, _) = c.handle(&req("OPTIONS", "*", &[]));
        assert!(text(&r).contains("Public: OPTIONS, DESCRIBE"));

        let (r, _) = c.handle(&Request { headers: vec![], ..req("OPTIONS", "*", &[]) });
        assert_eq!(r.status(), Status::BadRequest);

        let (r, _) = c.handle(&req("DESCRIBE", "rtsp://127.0.0.1:8554/other", &[]));
        assert_eq!(r.status(), Status::NotFound);
        let (r, _) = c.handle(&req("DESCRIBE", "not a url", &[]));
        assert_eq!(r.status(), Status::BadRequest);
        let (r, _) = c.handle(&req("DESCRIBE", "rtsp://u:p@127.0.0.1:8554/demo/?q", &[]));
        let t = text(&r);
        assert!(t.contains("Content-Base: rtsp://127.0.0.1:8554/demo/\r\n"), "{t}");
        assert!(t.contains("Content-Type: application/sdp"));

        let (r, _) = c.handle(&req("PLAY", URL, &[]));
        assert_eq!(r.status(), Status::MethodNotValidInThisState);
        let (r, _) =
            c.handle(&req("SETUP", &format!("{URL}/trackID=0"), &[("Transport", "RTP/AVP;unicast;client_port=1-2")]));
        assert_eq!(r.status(), Status::UnsupportedTransport);
        let (r, _) = c.handle(&req("SETUP", &format!("{URL}/trackID=0"), &[]));
        assert_eq!(r.status(), Status::BadRequest);
        let (r, _) = c.handle(&req("SETUP", &format!("{URL}/trackID=0"), &[TCP, ("Session", "nope")]));
        assert_eq!(r.status(), Status::SessionNotFound);

        let (r, _) = c.handle(&req("SETUP", &format!("{URL}/trackID=0"), &[TCP]));
        let t = text(&r);
        assert_eq!(r.status(), Status::Ok, "{t}");
        let id = c.session.as_ref().unwrap().id.clone();
        assert!(t.contains(&format!("Session: {id};timeout=60\r\n")));
        assert!(t.contains(&format!("Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc={:08X}\r\n", c.rtp.ssrc())));

        let (r, _) = c.handle(&req("SETUP", &format!("{URL}/trackID=0"), &[TCP, ("Session", &id)]));
        assert_eq!(r.status(), Status::MethodNotValidInThisState);
        let (r, _) = c.handle(&req("PLAY", URL, &[("Session", "wrong")]));
        assert_eq!(r.status(), Status::SessionNotFound);
        let (r, _) = c.handle(&req("PAUSE", URL, &[("Session", &id)]));
        assert_eq!(r.status(), Status::NotImplemented);

        let (r, _) = c.handle(&req("PLAY", &format!("{URL}/"), &[("Session", &id)]));
        let t = text(&r);
        assert_eq!(r.status(), Status::Ok, "{t}");
        let info = format!("RTP-Info: url={URL}/trackID=0;seq={};rtptime={}\r\n", c.rtp.next_seq(), c.rtp_base);
        assert!(t.contains(&info), "{t}");
        assert!(t.contains("Range: npt=0.000-\r\n"));

        let (r, _) = c.handle(&req("GET_PARAMETER", URL, &[("Session", &id)]));
        assert_eq!(r.status(), Status::Ok);
        let (r, _) = c.handle(&req("GET_PARAMETER", URL, &[("Session", "x")]));
        assert_eq!(r.status(), Status::SessionNotFound);
        let (r, flow) = c.handle(&req("TEARDOWN", URL, &[("Session", "x")]));
        assert_eq!((r.status(), flow), (Status::SessionNotFound, Flow::Continue));
        let (r, flow) = c.handle(&req("TEARDOWN", URL, &[("Session", &id)]));
        assert_eq!((r.status(), flow), (Status::Ok, Flow::Close));
    }

    #[test]
    fn auth_is_required_except_for_options() {
        let mut c = conn(Some(("admin", "s3cret")));
        let (r, _) = c.handle(&req("DESCRIBE", URL, &[]));
        assert_eq!(r.status(), Status::Unauthorized);
        assert!(text(&r).contains("WWW-Authenticate: Basic realm=\"hearth demo camera\"\r\n"));
        let (r, _) = c.handle(&req("DESCRIBE", URL, &[("Authorization", "Basic YWRtaW46d3Jvbmc=")]));
        assert_eq!(r.status(), Status::Unauthorized);
        let (r, _) = c.handle(&req("DESCRIBE", URL, &[("Authorization", "Basic YWRtaW46czNjcmV0")]));
        assert_eq!(r.status(), Status::Ok);
        let (r, _) = c.handle(&req("OPTIONS", URL, &[]));
        assert_eq!(r.status(), Status::Ok);
    }

    #[tokio::test]
    async fn frames_carry_parameter_sets_before_keyframes_and_sender_reports() {
        let mut c = conn(None);
        c.session = Some(Session { id: "s".into(), playing: Some(Playing::new(25)) });
        let first = c.next_frame_packets();
        // SPS, PPS, IDR as three single-NAL packets, then the SR on channel 1.
        let channels: Vec<(u8, u8)> = {
            let mut v = Vec::new();
            let mut b = &first[..];
            while !b.is_empty() {
                let len = u16::from_be_bytes([b[2], b[3]]) as usize;
                v.push((b[1], b[4 + 12.min(len - 1)] & 0x1F));
                b = &b[4 + len..];
            }
            v
        };
        assert_eq!(channels.iter().filter(|(ch, _)| *ch == 0).map(|(_, t)| *t).collect::<Vec<_>>(), [7, 8, 5]);
        assert_eq!(channels.iter().filter(|(ch, _)| *ch == 1).count(), 1);
        let second = c.next_frame_packets();
        assert_eq!(second.len(), 4 + 12 + 2, "P-frame alone, no SR");
        let ts = u32::from_be_bytes([second[8], second[9], second[10], second[11]]);
        assert_eq!(ts, c.rtp_base.wrapping_add(3600));
    }
}
