//! End-to-end tests of the built-in demo camera against real RTSP clients:
//! retina (the library hearth records with), the ffprobe CLI, and raw TCP
//! sockets sending garbage. Everything runs on 127.0.0.1 with bounded time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hearth::demo::{encode_pattern, DemoCamera, DemoOptions, EncodedLoop, PatternOptions};
use retina::client::{Credentials, PlayOptions, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A short loop (two keyframe intervals) for tests that do not need the
/// full 20 s default; cheap to encode, and clients soon see it wrap around.
async fn short_loop() -> Arc<EncodedLoop> {
    encode_pattern(PatternOptions { seconds: 2, ..Default::default() }).await.expect("encode")
}

/// What one retina client observed.
#[derive(Debug, Default)]
struct Observed {
    frames: usize,
    keyframes: Vec<usize>,
    dimensions: Option<(u32, u32)>,
    codec: String,
    sender_reports: usize,
}

/// Connects with retina over interleaved TCP, plays, and checks `want`
/// frames: no loss, +3600 ticks per frame, well-formed MP4-framed NALs.
async fn watch(url: &str, creds: Option<Credentials>, want: usize) -> Result<Observed, retina::Error> {
    let url = url::Url::parse(url).expect("url");
    let mut session = retina::client::Session::describe(url, SessionOptions::default().creds(creds)).await?;
    assert_eq!(session.streams().len(), 1);
    assert_eq!(session.streams()[0].encoding_name(), "h264");
    assert_eq!(session.streams()[0].framerate(), Some(25.0));
    let setup = SetupOptions::default().transport(Transport::Tcp(Default::default())).frame_format(FrameFormat::MP4);
    session.setup(0, setup).await?;
    let mut demuxed = session.play(PlayOptions::default()).await?.demuxed()?;
    let mut seen = Observed::default();
    let mut last_ts: Option<i64> = None;
    let started = std::time::Instant::now();
    while seen.frames < want {
        let item = timeout(Duration::from_secs(5), demuxed.next()).await.expect("frame within 5 s");
        let Some(item) = item else { panic!("stream ended") };
        let frame = match item? {
            CodecItem::VideoFrame(frame) => frame,
            CodecItem::Rtcp(rtcp) => {
                seen.sender_reports += usize::from(rtcp.rtp_timestamp().is_some());
                continue;
            }
            _ => continue,
        };
        assert_eq!(frame.loss(), 0, "loss reported");
        let ts = frame.timestamp().timestamp();
        if let Some(prev) = last_ts {
            assert_eq!(ts - prev, 3600, "frame {} timestamp step", seen.frames);
        }
        last_ts = Some(ts);
        assert_mp4_nals(frame.data());
        if frame.is_random_access_point() {
            seen.keyframes.push(seen.frames);
        }
        if seen.dimensions.is_none() {
            if let Some(ParametersRef::Video(v)) = demuxed.streams()[0].parameters() {
                seen.dimensions = Some(v.pixel_dimensions());
                seen.codec = v.rfc6381_codec().to_owned();
            }
        }
        seen.frames += 1;
    }
    // Real-time pacing: `want` frames at 25 fps cannot arrive much faster.
    let min = Duration::from_millis(40 * want.saturating_sub(5) as u64);
    assert!(started.elapsed() >= min, "{} frames in {:?}: not paced", want, started.elapsed());
    Ok(seen)
}

/// MP4 framing: 4-byte big-endian lengths that tile the buffer exactly.
fn assert_mp4_nals(mut data: &[u8]) {
    assert!(!data.is_empty());
    while !data.is_empty() {
        let len = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        assert!(len > 0 && 4 + len <= data.len(), "bad NAL length {len}");
        let nal_type = data[4] & 0x1F;
        assert!(!matches!(nal_type, 7..=9), "MP4 frames carry no SPS/PPS/AUD");
        data = &data[4 + len..];
    }
}

fn check_video(seen: &Observed, frames: usize) {
    assert_eq!(seen.frames, frames);
    assert_eq!(seen.dimensions, Some((640, 360)));
    assert!(seen.codec.starts_with("avc1.64"), "codec {}", seen.codec);
    assert!(seen.sender_reports >= 1, "RTCP sender reports");
    // Every client starts at the top of the loop: keyframes at 0, 50, 100...
    let expected: Vec<usize> = (0..frames).step_by(50).collect();
    assert_eq!(seen.keyframes, expected);
}

#[tokio::test]
async fn two_retina_clients_get_regular_lossless_video() {
    let camera = DemoCamera::start(localhost(), DemoOptions::default()).await.expect("start");
    let url = camera.url();
    assert_eq!(url, format!("rtsp://127.0.0.1:{}/demo", camera.local_addr().port()));
    assert_ne!(camera.local_addr().port(), 0);
    let frames = 3 * 25 + 1;
    let (a, b) = tokio::join!(watch(&url, None, frames), watch(&url, None, frames));
    check_video(&a.expect("client a"), frames);
    check_video(&b.expect("client b"), frames);
    camera.shutdown().await;
}

#[tokio::test]
async fn credentials_are_enforced() {
    let opts = DemoOptions { credentials: Some(("admin".into(), "s3cret".into())), ..Default::default() };
    let camera = DemoCamera::start_with_loop(localhost(), opts, short_loop().await).await.expect("start");
    let url = camera.url();
    let good = Credentials { username: "admin".into(), password: "s3cret".into() };
    let bad = Credentials { username: "admin".into(), password: "guess".into() };
    // 60 frames of a 50-frame loop: timestamps must run on across the wrap.
    let seen = watch(&url, Some(good), 60).await.expect("right credentials work");
    check_video(&seen, 60);
    for creds in [Some(bad), None] {
        let err = watch(&url, creds, 1).await.expect_err("must be refused");
        assert_eq!(err.status_code(), Some(401), "{err}");
    }
}

#[tokio::test]
async fn ffprobe_reads_the_stream() {
    let camera =
        DemoCamera::start_with_loop(localhost(), DemoOptions::default(), short_loop().await).await.expect("start");
    let probe = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=codec_name,profile,width,height"])
        .args(["-of", "csv=p=0", &camera.url()])
        .kill_on_drop(true)
        .output();
    let out = match timeout(Duration::from_secs(20), probe).await.expect("ffprobe finished") {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("ffprobe not installed; skipping");
            return;
        }
        Err(e) => panic!("ffprobe: {e}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), "h264,High,640,360");
}

/// Sends `bytes` on a fresh connection and returns what came back before the
/// server closed it (or 2 s passed).
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(bytes).await;
    let mut got = Vec::new();
    let _ = timeout(Duration::from_secs(2), s.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn misbehaving_clients_do_not_disturb_others() {
    let camera =
        DemoCamera::start_with_loop(localhost(), DemoOptions::default(), short_loop().await).await.expect("start");
    let (addr, url) = (camera.local_addr(), camera.url());
    // A well-behaved viewer keeps watching throughout.
    let viewer = tokio::spawn({
        let url = url.clone();
        async move { watch(&url, None, 60).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Random bytes (not starting with '$', which would announce binary data).
    let mut junk: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
    junk[0] = b'G';
    junk.extend_from_slice(b"\r\n\r\n");
    let reply = exchange(addr, &junk).await;
    assert!(reply.is_empty() || reply.starts_with("RTSP/1.0 400"), "{reply:?}");

    // An overlong header line: 400, then the connection is closed.
    let long = format!("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Pad: {}\r\n\r\n", "a".repeat(9000));
    let reply = exchange(addr, long.as_bytes()).await;
    assert!(reply.starts_with("RTSP/1.0 400 "), "{reply:?}");

    // No CSeq: 400, but the connection stays usable.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"OPTIONS * RTSP/1.0\r\n\r\nOPTIONS * RTSP/1.0\r\nCSeq: 7\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 1024];
    let mut got = String::new();
    while !got.contains("CSeq: 7") {
        let n = timeout(Duration::from_secs(2), s.read(&mut buf)).await.expect("reply").unwrap();
        assert!(n > 0, "closed early: {got:?}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.starts_with("RTSP/1.0 400 Bad Request\r\n"), "{got:?}");
    assert!(got.contains("RTSP/1.0 200 OK\r\nCSeq: 7\r\n"), "{got:?}");
    drop(s);

    // UDP-only SETUP: 461.
    let setup = format!(
        "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n"
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(setup.as_bytes()).await.unwrap();
    let n = timeout(Duration::from_secs(2), s.read(&mut buf)).await.expect("reply").unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("RTSP/1.0 461 Unsupported Transport\r\n"));
    drop(s);

    // Half a request, then hang up; and a player that vanishes mid-stream.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"DESCRIBE rtsp://127.0.0.1/de").await.unwrap();
    drop(s);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let play =
        format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n");
    s.write_all(play.as_bytes()).await.unwrap();
    let n = timeout(Duration::from_secs(2), s.read(&mut buf)).await.expect("reply").unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    let session = reply.lines().find_map(|l| l.strip_prefix("Session: ")).expect("session").split(';').next().unwrap();
    let play = format!("PLAY {url}/ RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n");
    s.write_all(play.as_bytes()).await.unwrap();
    let n = timeout(Duration::from_secs(2), s.read(&mut buf)).await.expect("reply").unwrap();
    assert!(n > 0);
    drop(s);

    let seen = viewer.await.unwrap().expect("viewer unaffected");
    assert_eq!(seen.frames, 60);
    // And the server still takes new clients.
    let reply = exchange(addr, b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\nTEARDOWN * RTSP/1.0\r\nCSeq: 2\r\n\r\n").await;
    assert!(reply.starts_with("RTSP/1.0 200 OK\r\nCSeq: 1\r\n"), "{reply:?}");
    camera.shutdown().await;
}

#[tokio::test]
async fn shutdown_and_drop_close_everything() {
    let encoded = short_loop().await;
    let camera = DemoCamera::start_with_loop(localhost(), DemoOptions::default(), encoded.clone()).await.unwrap();
    let addr = camera.local_addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 1024];
    assert!(s.read(&mut buf).await.unwrap() > 0);
    timeout(Duration::from_secs(2), camera.shutdown()).await.expect("prompt shutdown");
    let n = timeout(Duration::from_secs(2), s.read(&mut buf)).await.expect("closed").unwrap_or(0);
    assert_eq!(n, 0, "client connection closed");
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");

    let camera = DemoCamera::start_with_loop(localhost(), DemoOptions::default(), encoded).await.unwrap();
    let addr = camera.local_addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    drop(camera);
    let n = timeout(Duration::from_secs(2), s.read(&mut buf)).await.expect("closed").unwrap_or(0);
    assert_eq!(n, 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed on drop");
}

#[tokio::test]
async fn bad_options_fail_fast() {
    let opts = DemoOptions { path: "has space".into(), ..Default::default() };
    assert!(DemoCamera::start(localhost(), opts).await.is_err());
    let opts = DemoOptions { pattern: PatternOptions { width: 641, ..Default::default() }, ..Default::default() };
    assert!(DemoCamera::start(localhost(), opts).await.is_err());
    let busy = std::net::TcpListener::bind(localhost()).unwrap();
    let taken = busy.local_addr().unwrap();
    assert!(DemoCamera::start(taken, DemoOptions::default()).await.is_err());
}
