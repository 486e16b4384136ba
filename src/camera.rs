//! Camera ingest: one task per camera that keeps an RTSP session up (retina), feeds its frames
//! to the [`Recorder`], and keeps the camera's [`CameraStatus`] for the UI.
//!
//! The task never gives up: any failure — refused connection, bad SDP, a stall, garbage on
//! the wire — ends the session, closes the current clip cleanly, and retries with exponential
//! backoff (1 s doubling to 30 s, ±20 % jitter). While a camera is unreachable the task probes
//! its TCP port every second, so a camera that comes back is recorded again within about a
//! second instead of waiting out the backoff. Status changes are logged once per change, not
//! once per retry, and credentials never appear in logs (URLs are redacted).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use retina::client::{self, PlayOptions, SessionOptions, SetupOptions};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};

use crate::config::{redacted_url, CameraConfig, Transport};
use crate::events::{Events, Notice};
use crate::gate::Gate;
use crate::live::{Keyframe, LiveFeed};
use crate::recorder::{AudioFrame, AudioParams, ClipEvent, Recorder, VideoFrame, VideoParams};
use crate::shutdown::Shutdown;

/// No frame for this long means the camera stalled (TCP open, no data).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long DESCRIBE, SETUP and PLAY may each take. retina waits for a response forever, so
/// without this a camera that accepts the connection and never answers would hold the camera
/// task in "connecting" until hearth restarts.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot reach camera: {0}")]
    Unreachable(String),
    #[error("RTSP: {0}")]
    Rtsp(String),
    #[error("camera offers no H.264 or H.265 video stream")]
    NoVideo,
    #[error("no video parameters from camera")]
    NoParameters,
    #[error("camera stalled: no frame for {} s", STALL_TIMEOUT.as_secs())]
    Stalled,
    #[error("camera did not answer {0} within {secs} s", secs = REQUEST_TIMEOUT.as_secs())]
    NoAnswer(&'static str),
    #[error("cannot record stream: {0}")]
    Unsupported(String),
    #[error("clip writer stopped")]
    WriterGone,
    #[error(transparent)]
    Recorder(#[from] crate::recorder::RecorderError),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Connection {
    #[default]
    Connecting,
    Online,
    Offline,
}

/// What the UI shows about a camera.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CameraStatus {
    pub connection: Connection,
    pub last_error: Option<String>,
    /// µs since the epoch.
    pub last_frame_us: Option<i64>,
    pub bitrate_bps: u64,
    pub fps: f64,
    pub codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// Where a camera's frames go: the recorder cuts them into clips, live viewers get every
/// fragment, and the gate (the recording mode) decides what reaches the clip writer.
pub struct Pipeline {
    pub recorder: Recorder,
    pub gate: Gate,
    pub writer: mpsc::Sender<ClipEvent>,
    pub live: Arc<LiveFeed>,
    /// The camera's event notices, when its recording mode depends on them.
    pub notices: Option<EventFeed>,
}

impl Pipeline {
    /// Hands what the recorder decided to live viewers and to the gate.
    fn take_recorder_events(&mut self) {
        while let Some(event) = self.recorder.next_event() {
            match &event {
                ClipEvent::Start { codec, init_segment, .. } => self.live.publish_init(codec, init_segment),
                ClipEvent::Fragment { bytes, keyframe, live_offsets, .. } => {
                    self.live.publish_fragment(bytes, live_offsets, *keyframe)
                }
                ClipEvent::End { .. } | ClipEvent::Gap { .. } | ClipEvent::MarkEvents { .. } => {}
            }
            self.gate.push(event);
        }
    }
}

/// Event notices for the gate, and the table to re-read when some were missed.
pub struct EventFeed {
    pub notices: broadcast::Receiver<Notice>,
    pub events: Arc<Events>,
}

/// What the event feed had for this camera.
enum Heard {
    Notice(Notice),
    /// Notices were dropped because this camera did not keep up.
    Missed,
}

/// Runs a camera until `shutdown`.
pub async fn run(
    camera: CameraConfig,
    mut pipeline: Pipeline,
    status: watch::Sender<CameraStatus>,
    egress: crate::egress::Connections,
    motion: Option<crate::motion::FrameSink>,
    mut shutdown: Shutdown,
) {
    let name = camera.name.clone();
    let url = redacted_url(&camera.url);
    let mut backoff = BACKOFF_MIN;
    let mut last_logged: Option<String> = None;
    loop {
        set_connection(&status, Connection::Connecting, None);
        let session_start = Instant::now();
        let result = tokio::select! {
            result = record_session(&camera, &mut pipeline, &status, &egress, motion.as_ref()) => result,
            _ = shutdown.recv() => Ok(()),
        };
        let reason = match &result {
            Ok(()) => "hearth stopped".to_owned(),
            Err(e) => e.to_string(),
        };
        if let Err(e) = pipeline.recorder.end_session(&reason) {
            tracing::error!(camera = %name, error = %e, "cannot finish clip");
        }
        pipeline.take_recorder_events();
        pipeline.gate.end_session();
        pipeline.live.reset();
        if forward(&mut pipeline).await.is_err() || shutdown.is_shutdown() {
            break;
        }
        let Err(error) = result else { break };
        set_connection(&status, Connection::Offline, Some(error.to_string()));
        if last_logged.as_deref() != Some(&reason) {
            tracing::warn!(camera = %name, url = %url, error = %reason, "camera offline; retrying with backoff");
            last_logged = Some(reason);
        }
        if session_start.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_MIN; // it worked for a while: this is a new outage
        }
        let delay = jittered(backoff);
        tracing::debug!(camera = %name, delay_ms = delay.as_millis() as u64, "reconnecting after backoff");
        backoff = (backoff * 2).min(BACKOFF_MAX);
        let wait = async {
            if matches!(error, IngestError::Unreachable(_)) {
                wait_until_reachable(&camera.url, delay).await
            } else {
                tokio::time::sleep(delay).await
            }
        };
        tokio::select! {
            _ = wait => {}
            _ = shutdown.recv() => break,
        }
    }
    set_connection(&status, Connection::Offline, Some("hearth stopped".into()));
    tracing::debug!(camera = %name, "ingest stopped");
}

fn jittered(base: Duration) -> Duration {
    let factor = 0.8 + rand::random::<f64>() * 0.4;
    base.mul_f64(factor)
}

/// Sleeps up to `limit`, but returns as soon as the camera's port accepts a connection
/// (probed every second, never sooner than `BACKOFF_MIN`).
async fn wait_until_reachable(url: &url::Url, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        tokio::time::sleep(BACKOFF_MIN).await;
        if tokio::time::Instant::now() >= deadline || probe(url).await.is_ok() {
            return;
        }
    }
}

/// Connects to the camera's RTSP port and hangs up; returns the address that answered.
async fn probe(url: &url::Url) -> Result<std::net::SocketAddr, IngestError> {
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = url.port().unwrap_or(554);
    match tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(stream)) => stream.peer_addr().map_err(|e| IngestError::Unreachable(e.to_string())),
        Ok(Err(e)) => Err(IngestError::Unreachable(e.to_string())),
        Err(_) => Err(IngestError::Unreachable("connection timed out".into())),
    }
}

fn set_connection(status: &watch::Sender<CameraStatus>, connection: Connection, error: Option<String>) {
    status.send_modify(|s| {
        s.connection = connection;
        if error.is_some() || connection == Connection::Online {
            s.last_error = error;
        }
        if connection != Connection::Online {
            s.bitrate_bps = 0;
            s.fps = 0.0;
        }
    });
}

/// Hands the recorder's events to live viewers and the gate, and what the gate decided to
/// the clip writer.
async fn forward(pipeline: &mut Pipeline) -> Result<(), IngestError> {
    pipeline.take_recorder_events();
    while pipeline.gate.has_output() {
        // Reserve room first: cancelling this wait (shutdown) leaves the event in the gate.
        let permit = pipeline.writer.reserve().await.map_err(|_| IngestError::WriterGone)?;
        let Some(event) = pipeline.gate.next_output() else { break };
        permit.send(event);
    }
    Ok(())
}

/// The next notice about `camera`; never resolves without a feed.
async fn next_notice(feed: &mut Option<EventFeed>, camera: &str) -> Heard {
    let Some(feed) = feed else { return std::future::pending().await };
    loop {
        match feed.notices.recv().await {
            Ok(notice) if notice.camera == camera => return Heard::Notice(notice),
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(_)) => return Heard::Missed,
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// Tells the gate what the feed had; missed notices are made good from the events table.
async fn hear(pipeline: &mut Pipeline, camera: &str, heard: Heard) {
    match heard {
        Heard::Notice(notice) => pipeline.gate.notice(&notice),
        Heard::Missed => {
            tracing::warn!(camera = %camera, "event notices were missed; re-reading open events");
            let Some(feed) = &pipeline.notices else { return };
            let (events, name) = (feed.events.clone(), camera.to_owned());
            let open = match tokio::task::spawn_blocking(move || events.open_events(&name)).await {
                Ok(Ok(open)) => open,
                Ok(Err(e)) => {
                    tracing::error!(camera = %camera, error = %e, "cannot read open events");
                    Vec::new()
                }
                Err(_) => Vec::new(),
            };
            pipeline.gate.resync(&open, crate::time::now_us());
        }
    }
}

/// One RTSP session, from DESCRIBE until it fails.
async fn record_session(
    camera: &CameraConfig,
    pipeline: &mut Pipeline,
    status: &watch::Sender<CameraStatus>,
    egress: &crate::egress::Connections,
    motion: Option<&crate::motion::FrameSink>,
) -> Result<(), IngestError> {
    let remote = probe(&camera.url).await?;
    // Listed on the connections page for as long as this session lasts.
    let _registration = egress.register("camera", &camera.name, remote);
    let rtsp = |e: retina::Error| IngestError::Rtsp(e.to_string());
    let mut session = describe(camera, &camera.url).await?;

    let video_i = session
        .streams()
        .iter()
        .position(|s| s.media() == "video" && matches!(s.encoding_name(), "h264" | "h265"))
        .ok_or(IngestError::NoVideo)?;
    let audio_i = if camera.audio { pick_audio(session.streams()) } else { None };
    let transport = match camera.transport {
        Transport::Tcp => client::Transport::Tcp(Default::default()),
        Transport::Udp => client::Transport::Udp(Default::default()),
    };
    for i in std::iter::once(video_i).chain(audio_i) {
        let setup = SetupOptions::default().transport(transport.clone()).frame_format(FrameFormat::MP4);
        answered("SETUP", session.setup(i, setup)).await?.map_err(rtsp)?;
    }
    let play = PlayOptions::default().enforce_timestamps_with_max_jump_secs(NonZeroU32::new(10).expect("10 > 0"));
    let playing = answered("PLAY", session.play(play)).await?.map_err(rtsp)?;
    let mut demuxed = playing.demuxed().map_err(rtsp)?;

    let mut video = demuxed.streams()[video_i].parameters().and_then(video_params);
    let audio = audio_i.and_then(|i| {
        let stream = &demuxed.streams()[i];
        match stream.parameters() {
            Some(ParametersRef::Audio(p)) => audio_params(p, stream.encoding_name(), &camera.name),
            _ => None,
        }
    });
    let mut meter = RateMeter::new();
    let mut session_started = false;
    let mut frames_without_params = 0u32;
    // The sample entry as the motion worker gets it: shared, rebuilt only when it changes.
    let mut motion_entry: Option<Arc<Vec<u8>>> = None;
    // A stall is measured from the last *video* frame: a camera whose encoder hung may keep
    // its RTSP stack alive and go on sending RTCP sender reports.
    let mut stall_deadline = tokio::time::Instant::now() + STALL_TIMEOUT;
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout_at(stall_deadline, demuxed.next()) => next,
            heard = next_notice(&mut pipeline.notices, &camera.name) => {
                hear(pipeline, &camera.name, heard).await;
                forward(pipeline).await?;
                continue;
            }
        };
        let item = match next {
            Err(_) => return Err(IngestError::Stalled),
            Ok(None) => return Err(IngestError::Rtsp("camera closed the stream".into())),
            Ok(Some(Err(e))) => return Err(rtsp(e)),
            Ok(Some(Ok(item))) => item,
        };
        let recorder = &mut pipeline.recorder;
        let live = &pipeline.live;
        match item {
            CodecItem::VideoFrame(frame) if frame.stream_id() == video_i => {
                stall_deadline = tokio::time::Instant::now() + STALL_TIMEOUT;
                if frame.has_new_parameters() || video.is_none() {
                    let fresh = demuxed.streams()[video_i].parameters().and_then(video_params);
                    if let (Some(params), true) = (&fresh, session_started) {
                        show_params(status, params);
                        recorder.set_video_params(params.clone());
                    }
                    video = fresh.or(video);
                }
                let Some(params) = &video else {
                    // A stream whose parameters never parse would otherwise be skipped forever.
                    frames_without_params += 1;
                    if frames_without_params > 300 {
                        return Err(IngestError::NoParameters);
                    }
                    continue;
                };
                if !session_started {
                    recorder.start_session(params.clone(), audio.clone());
                    session_started = true;
                    show_params(status, params);
                    set_connection(status, Connection::Online, None);
                    tracing::info!(camera = %camera.name, codec = %params.codec, width = params.width, height = params.height, "camera online");
                }
                if frame.loss() > 0 {
                    tracing::debug!(camera = %camera.name, packets = frame.loss(), "RTP packets lost");
                }
                let now = crate::time::now_us();
                meter.add(frame.data().len(), now, status);
                if frame.is_random_access_point() {
                    live.set_keyframe(Keyframe {
                        sample_entry: params.sample_entry.clone(),
                        data: bytes::Bytes::copy_from_slice(frame.data()),
                    });
                }
                if let Some(sink) = motion {
                    if motion_entry.as_deref() != Some(&params.sample_entry) {
                        motion_entry = Some(Arc::new(params.sample_entry.clone()));
                    }
                    sink.offer(crate::motion::Frame {
                        sample_entry: motion_entry.clone().expect("set above"),
                        data: bytes::Bytes::copy_from_slice(frame.data()),
                        keyframe: frame.is_random_access_point(),
                        time_us: now,
                    });
                }
                recorder.push_video(VideoFrame {
                    time_90k: frame.timestamp().elapsed(),
                    is_keyframe: frame.is_random_access_point(),
                    received_us: now,
                    data: frame.into_data(),
                })?;
            }
            CodecItem::AudioFrame(frame)
                if Some(frame.stream_id()) == audio_i && session_started && audio.is_some() =>
            {
                recorder.push_audio(AudioFrame {
                    time: frame.timestamp().elapsed(),
                    duration: frame.frame_length().get(),
                    data: frame.data().to_vec(),
                });
            }
            _ => {}
        }
        forward(pipeline).await?;
    }
}

/// `request` unless the camera takes longer than [`REQUEST_TIMEOUT`] to answer it.
async fn answered<T>(method: &'static str, request: impl std::future::Future<Output = T>) -> Result<T, IngestError> {
    tokio::time::timeout(REQUEST_TIMEOUT, request).await.map_err(|_| IngestError::NoAnswer(method))
}

/// Keeps a session to the camera's sub-stream (`sub_url`) up for motion detection only: its
/// frames go to `sink`, nothing is recorded. Same reconnect policy as the main stream.
pub async fn run_substream(
    camera: CameraConfig,
    url: url::Url,
    sink: crate::motion::FrameSink,
    egress: crate::egress::Connections,
    mut shutdown: Shutdown,
) {
    let mut backoff = BACKOFF_MIN;
    let mut last_logged: Option<String> = None;
    loop {
        let started = Instant::now();
        let result = tokio::select! {
            result = substream_session(&camera, &url, &sink, &egress) => result,
            _ = shutdown.recv() => return,
        };
        let reason = match result {
            Ok(()) => "the sub-stream ended".to_owned(),
            Err(e) => e.to_string(),
        };
        if last_logged.as_deref() != Some(&reason) {
            tracing::warn!(camera = %camera.name, url = %redacted_url(&url), error = %reason, "motion sub-stream offline; retrying with backoff");
            last_logged = Some(reason);
        }
        if started.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_MIN;
        }
        tokio::select! {
            _ = tokio::time::sleep(jittered(backoff)) => {}
            _ = shutdown.recv() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn substream_session(
    camera: &CameraConfig,
    url: &url::Url,
    sink: &crate::motion::FrameSink,
    egress: &crate::egress::Connections,
) -> Result<(), IngestError> {
    let remote = probe(url).await?;
    let _registration = egress.register("camera", &camera.name, remote);
    let rtsp = |e: retina::Error| IngestError::Rtsp(e.to_string());
    let mut demuxed = open_video_session(camera, url).await?;
    let mut entry: Option<Arc<Vec<u8>>> = None;
    let mut stall_deadline = tokio::time::Instant::now() + STALL_TIMEOUT; // from the last video frame
    loop {
        let item = match tokio::time::timeout_at(stall_deadline, demuxed.next()).await {
            Err(_) => return Err(IngestError::Stalled),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(rtsp(e)),
            Ok(Some(Ok(item))) => item,
        };
        let CodecItem::VideoFrame(frame) = item else { continue };
        stall_deadline = tokio::time::Instant::now() + STALL_TIMEOUT;
        if frame.has_new_parameters() || entry.is_none() {
            let stream = &demuxed.streams()[frame.stream_id()];
            entry = stream.parameters().and_then(video_params).map(|p| Arc::new(p.sample_entry));
        }
        let Some(entry) = &entry else { continue };
        sink.offer(crate::motion::Frame {
            sample_entry: entry.clone(),
            data: bytes::Bytes::copy_from_slice(frame.data()),
            keyframe: frame.is_random_access_point(),
            time_us: crate::time::now_us(),
        });
    }
}

/// DESCRIBE `url` with the camera's credentials (given to retina, never left in the URL).
async fn describe(camera: &CameraConfig, url: &url::Url) -> Result<client::Session<client::Described>, IngestError> {
    let creds = camera
        .username
        .clone()
        .map(|username| client::Credentials { username, password: camera.password.clone().unwrap_or_default() });
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("hearth/{}", env!("CARGO_PKG_VERSION")))
        .teardown(client::TeardownPolicy::Auto);
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    answered("DESCRIBE", client::Session::describe(url, options)).await?.map_err(|e| IngestError::Rtsp(e.to_string()))
}

/// DESCRIBE, SETUP of the first H.264/H.265 stream only, PLAY: a video-only session.
async fn open_video_session(camera: &CameraConfig, url: &url::Url) -> Result<client::Demuxed, IngestError> {
    let rtsp = |e: retina::Error| IngestError::Rtsp(e.to_string());
    let mut session = describe(camera, url).await?;
    let video = session
        .streams()
        .iter()
        .position(|s| s.media() == "video" && matches!(s.encoding_name(), "h264" | "h265"))
        .ok_or(IngestError::NoVideo)?;
    let transport = match camera.transport {
        Transport::Tcp => client::Transport::Tcp(Default::default()),
        Transport::Udp => client::Transport::Udp(Default::default()),
    };
    let setup = SetupOptions::default().transport(transport).frame_format(FrameFormat::MP4);
    answered("SETUP", session.setup(video, setup)).await?.map_err(rtsp)?;
    let playing = answered("PLAY", session.play(PlayOptions::default())).await?.map_err(rtsp)?;
    playing.demuxed().map_err(rtsp)
}

fn show_params(status: &watch::Sender<CameraStatus>, params: &VideoParams) {
    status.send_modify(|s| {
        s.codec = Some(params.codec.clone());
        s.width = Some(params.width);
        s.height = Some(params.height);
    });
}

fn pick_audio(streams: &[client::Stream]) -> Option<usize> {
    streams.iter().position(|s| s.media() == "audio" && matches!(s.encoding_name(), "mpeg4-generic" | "pcmu" | "pcma"))
}

fn video_params(params: ParametersRef<'_>) -> Option<VideoParams> {
    let ParametersRef::Video(v) = params else { return None };
    let sample_entry = v.mp4_sample_entry().build().ok()?;
    let (width, height) = v.pixel_dimensions();
    Some(VideoParams { codec: v.rfc6381_codec().to_owned(), width, height, sample_entry })
}

/// AAC via retina's sample entry; G.711 via a QuickTime-style `ulaw`/`alaw` entry, which
/// ffmpeg and VLC play (browsers don't; the web player then plays the video alone).
fn audio_params(params: &retina::codec::AudioParameters, encoding: &str, camera: &str) -> Option<AudioParams> {
    let sample_rate = params.clock_rate();
    let channels = params.channels().get();
    let codec = params.rfc6381_codec().map(str::to_owned);
    let (codec, sample_entry) = match (codec, params.mp4_sample_entry().build()) {
        (Some(codec), Ok(entry)) => (codec, entry),
        _ => match g711_fourcc(encoding) {
            Some(fourcc) => {
                (String::from_utf8_lossy(&fourcc).into_owned(), g711_sample_entry(fourcc, sample_rate, channels))
            }
            None => {
                tracing::warn!(camera, ?params, "audio codec cannot be stored in MP4; recording video only");
                return None;
            }
        },
    };
    Some(AudioParams { codec, sample_rate, channels, sample_entry })
}

fn g711_fourcc(encoding: &str) -> Option<[u8; 4]> {
    match encoding {
        "pcmu" => Some(*b"ulaw"),
        "pcma" => Some(*b"alaw"),
        _ => None,
    }
}

/// A minimal ISO/IEC 14496-12 AudioSampleEntry for G.711.
fn g711_sample_entry(fourcc: [u8; 4], sample_rate: u32, channels: u16) -> Vec<u8> {
    let mut entry = Vec::with_capacity(36);
    entry.extend_from_slice(&36u32.to_be_bytes());
    entry.extend_from_slice(&fourcc);
    entry.extend_from_slice(&[0; 6]); // reserved
    entry.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
    entry.extend_from_slice(&[0; 8]); // reserved
    entry.extend_from_slice(&channels.to_be_bytes());
    entry.extend_from_slice(&16u16.to_be_bytes()); // samplesize
    entry.extend_from_slice(&[0; 4]); // pre_defined, reserved
    entry.extend_from_slice(&(sample_rate << 16).to_be_bytes());
    entry
}

/// Bitrate and frame rate over ~5 s windows, and the last frame time (to the second), for
/// the status page — updated rarely so watchers are not woken on every frame.
struct RateMeter {
    window_start_us: i64,
    bytes: u64,
    frames: u64,
    last_published_us: i64,
}

impl RateMeter {
    const WINDOW_US: i64 = 5_000_000;

    fn new() -> RateMeter {
        RateMeter { window_start_us: crate::time::now_us(), bytes: 0, frames: 0, last_published_us: 0 }
    }

    fn add(&mut self, bytes: usize, now_us: i64, status: &watch::Sender<CameraStatus>) {
        self.bytes += bytes as u64;
        self.frames += 1;
        // The wall clock was set back: start over rather than go quiet until it catches up.
        if now_us < self.window_start_us || now_us < self.last_published_us {
            (self.window_start_us, self.last_published_us) = (now_us, 0);
        }
        let elapsed = now_us - self.window_start_us;
        if elapsed >= Self::WINDOW_US {
            let seconds = elapsed as f64 / 1e6;
            let (bitrate, fps) = ((self.bytes as f64 * 8.0 / seconds) as u64, self.frames as f64 / seconds);
            status.send_modify(|s| {
                s.bitrate_bps = bitrate;
                s.fps = (fps * 10.0).round() / 10.0;
            });
            (self.window_start_us, self.bytes, self.frames) = (now_us, 0, 0);
        }
        if now_us - self.last_published_us >= 1_000_000 {
            status.send_modify(|s| s.last_frame_us = Some(now_us));
            self.last_published_us = now_us;
        }
    }
}

/// What the rest of hearth (the web UI) holds of a running camera.
pub struct CameraHandle {
    pub name: String,
    pub status: watch::Receiver<CameraStatus>,
    pub live: Arc<LiveFeed>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_jitter_stays_within_twenty_percent() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(10));
            assert!(d >= Duration::from_secs(8) && d <= Duration::from_secs(12), "{d:?}");
        }
    }

    #[test]
    fn g711_entry_is_a_well_formed_box() {
        let entry = g711_sample_entry(*b"ulaw", 8000, 1);
        assert_eq!(entry.len(), 36);
        assert_eq!(u32::from_be_bytes(entry[0..4].try_into().unwrap()), 36);
        assert_eq!(&entry[4..8], b"ulaw");
    }
}
