//! Motion detection: a camera's frames decoded with ffmpeg-next (decode only — recordings are
//! never transcoded), scaled to a small grayscale picture with swscale at a few frames per
//! second, and judged by the [`detector`]. Motion becomes events (with a thumbnail) through
//! [`crate::events`].
//!
//! The decoding and the detector run in a `hearth-media` helper process per camera
//! ([`crate::media`]: libav never loads into the hub). In the hub, the camera task offers every
//! video frame to a [`FrameSink`]; a supervisor thread pipes them to the helper, turns its
//! [`Report`]s into events, and restarts it with backoff if it dies (ending the event it had
//! open). The sink never blocks the camera: if the helper falls behind, frames are dropped and
//! the stream resumes at the next keyframe (a decoder cannot start elsewhere). So motion
//! detection can lag or miss a moment under load, but recording never does.
//!
//! Cost: the decoder must decode every frame of the stream it watches. For a 1080p main
//! stream that is a large share of a Pi core, so a camera's low-resolution sub-stream
//! (`sub_url`) is watched instead when configured (`camera::run_substream` feeds the sink).

pub mod detector;

use std::io::BufReader;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use ffmpeg_next as ffmpeg;
use tokio::sync::mpsc;

use crate::events::Events;
use crate::media::{wire, Job, Media};
use crate::snapshot::SnapshotError;
use detector::{BoundingBox, Detector, DetectorConfig, Update};

/// Widest grayscale picture the detector looks at.
pub const MAX_WIDTH: u32 = 320;
/// Thumbnails stored with events.
const THUMBNAIL_WIDTH: u32 = 320;
/// Frames waiting for the helper: about a second of video.
const QUEUE: usize = 32;
/// Restarts of a crashed helper back off from this…
const RESTART_MIN: Duration = Duration::from_secs(1);
/// …to this; a helper that ran this long without dying starts the backoff over.
const RESTART_MAX: Duration = Duration::from_secs(60);
/// A helper that takes a frame no sooner than this is hung (a decoder loop), not slow.
const HUNG_AFTER: Duration = Duration::from_secs(10);

/// Motion settings of one camera.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MotionConfig {
    /// Frames analysed per second.
    pub fps: f32,
    pub detector: DetectorConfig,
}

/// What a motion helper is told when it starts.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct MotionJob {
    /// For its log lines.
    pub camera: String,
    pub config: MotionConfig,
}

/// What a motion helper tells the hub.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Report {
    Started {
        time_us: i64,
        score: f32,
        bbox: BoundingBox,
        /// JPEG of the frame that started it, base64.
        thumbnail: Option<String>,
    },
    Ended {
        time_us: i64,
        peak: f32,
        bbox: Option<BoundingBox>,
    },
}

/// One video frame as the camera received it.
#[derive(Clone)]
pub struct Frame {
    /// The `avc1`/`hvc1` sample entry describing the stream.
    pub sample_entry: Arc<Vec<u8>>,
    /// Length-prefixed NAL units (MP4 sample format).
    pub data: Bytes,
    pub keyframe: bool,
    /// Wall-clock time the frame arrived, µs since the epoch.
    pub time_us: i64,
}

/// Where the camera task offers frames; never blocks.
#[derive(Clone)]
pub struct FrameSink {
    tx: mpsc::Sender<Frame>,
    /// Set when a frame was dropped: what follows cannot be decoded before a keyframe.
    resync: Arc<AtomicBool>,
}

impl FrameSink {
    /// Hands a frame to the helper, or drops it if the helper is behind.
    pub fn offer(&self, frame: Frame) {
        if !frame.keyframe && self.resync.load(Ordering::Relaxed) {
            return;
        }
        match self.tx.try_send(frame) {
            Ok(()) => self.resync.store(false, Ordering::Relaxed),
            Err(mpsc::error::TrySendError::Full(_)) => self.resync.store(true, Ordering::Relaxed),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Starts motion detection for `camera` in a helper process (restarted if it dies), and a
/// supervisor thread feeding it. Both stop when every [`FrameSink`] is dropped.
pub fn spawn(
    camera: String,
    config: MotionConfig,
    events: Arc<Events>,
    media: Media,
) -> std::io::Result<(FrameSink, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let name = format!("motion-{camera}").chars().take(15).collect::<String>();
    let supervisor = Supervisor { job: MotionJob { camera, config }, events, media };
    let handle = std::thread::Builder::new().name(name).spawn(move || supervisor.run(rx))?;
    Ok((FrameSink { tx, resync: Arc::new(AtomicBool::new(true)) }, handle))
}

struct Supervisor {
    job: MotionJob,
    events: Arc<Events>,
    media: Media,
}

/// How one helper's life ended.
enum Outcome {
    /// The camera is gone (shutdown): stop.
    Finished,
    /// The helper died or could not start: start another after a pause.
    Died,
}

impl Supervisor {
    fn run(self, mut frames: mpsc::Receiver<Frame>) {
        let camera = &self.job.camera;
        let mut backoff = RESTART_MIN;
        loop {
            let started = Instant::now();
            match self.run_helper(&mut frames) {
                Outcome::Finished => return,
                Outcome::Died => {}
            }
            if started.elapsed() >= RESTART_MAX {
                backoff = RESTART_MIN;
            }
            tracing::warn!(camera = %camera, retry_in_s = backoff.as_secs(), "motion helper stopped; restarting it");
            if !discard_for(&mut frames, backoff) {
                return;
            }
            backoff = (backoff * 2).min(RESTART_MAX);
        }
    }

    /// One helper's life: start it, feed it until the frames end or it dies, apply its reports.
    fn run_helper(&self, frames: &mut mpsc::Receiver<Frame>) -> Outcome {
        let camera = &self.job.camera;
        let mut child = match self.media.start(Job::Motion) {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(camera = %camera, error = %e, "motion detection cannot start");
                return Outcome::Died;
            }
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Outcome::Died;
        };
        let events = self.events.clone();
        let reader_camera = camera.clone();
        let reader = std::thread::Builder::new()
            .name("motion-reports".to_owned())
            .spawn(move || apply_reports(&reader_camera, &events, BufReader::new(stdout)));
        let Ok(reader) = reader else {
            let _ = child.kill();
            let _ = child.wait();
            return Outcome::Died;
        };
        let mut stdin = match crate::media::Pipe::new(stdin, HUNG_AFTER) {
            Ok(pipe) => pipe,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::Died;
            }
        };
        let (outcome, last_time_us) = self.feed(&mut stdin, frames);
        drop(stdin); // end of input: the helper ends its open event and exits
        if matches!(outcome, Outcome::Died) {
            let _ = child.kill();
        }
        // At the end of input a helper reports and exits at once; one that does not is hung,
        // and must not hold up the hub's shutdown.
        match wait_or_kill(&mut child, HUNG_AFTER) {
            Some(status) if !status.success() && matches!(outcome, Outcome::Finished) => {
                tracing::warn!(camera = %camera, %status, "motion helper exited with an error");
            }
            _ => {}
        }
        // A helper that died mid-event leaves it open: it ended, as far as anyone can tell,
        // at the last frame it was given.
        if let Ok(Some(open)) = reader.join() {
            if let Err(e) = self.events.end(open, last_time_us, 0.0, None) {
                tracing::error!(camera = %camera, error = %e, "cannot store a motion event");
            }
        }
        outcome
    }

    /// Pipes frames to the helper; returns why it stopped and the last frame's time.
    fn feed(&self, stdin: &mut crate::media::Pipe, frames: &mut mpsc::Receiver<Frame>) -> (Outcome, i64) {
        let camera = &self.job.camera;
        let mut message = Vec::new();
        let config = serde_json::to_vec(&self.job).unwrap_or_default();
        let mut last_time_us = 0;
        if wire::write(&mut message, wire::CONFIG, &config).and_then(|()| stdin.send(&message)).is_err() {
            return (Outcome::Died, last_time_us);
        }
        // A new helper waits for a keyframe itself; the sample entry goes before the first frame.
        let mut sent_entry: Option<Arc<Vec<u8>>> = None;
        while let Some(frame) = frames.blocking_recv() {
            let entry_changed =
                sent_entry.as_ref().is_none_or(|e| !Arc::ptr_eq(e, &frame.sample_entry) && **e != *frame.sample_entry);
            message.clear();
            let mut encoded = Ok(());
            if entry_changed {
                encoded = wire::write(&mut message, wire::SAMPLE_ENTRY, &frame.sample_entry);
                sent_entry = Some(frame.sample_entry.clone());
            }
            let sent = encoded
                .and_then(|()| wire::write_frame(&mut message, frame.time_us, frame.keyframe, &frame.data))
                .and_then(|()| stdin.send(&message));
            if let Err(e) = sent {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    tracing::warn!(camera = %camera, "motion helper stopped reading frames (hung); killing it");
                }
                return (Outcome::Died, last_time_us);
            }
            last_time_us = frame.time_us;
        }
        (Outcome::Finished, last_time_us)
    }
}

/// Turns a helper's reports into events until it exits; returns the event it left open.
fn apply_reports(camera: &str, events: &Events, mut reports: impl std::io::Read) -> Option<i64> {
    let mut open = None;
    loop {
        let report = match wire::read(&mut reports) {
            Ok(Some((wire::REPORT, payload))) => serde_json::from_slice::<Report>(&payload),
            Ok(Some((wire::ERROR, reason))) => {
                tracing::warn!(camera = %camera, error = %String::from_utf8_lossy(&reason), "motion helper failed");
                return open;
            }
            Ok(Some(_)) | Err(_) => {
                tracing::warn!(camera = %camera, "motion helper sent something unexpected; ignoring the rest");
                return open;
            }
            Ok(None) => return open,
        };
        let stored = match report {
            Ok(Report::Started { time_us, score, bbox, thumbnail }) => {
                let thumbnail = thumbnail.and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok());
                events
                    .start(camera, "motion", "motion", time_us, score, Some(bbox), thumbnail.as_deref())
                    .map(|id| open = Some(id))
            }
            Ok(Report::Ended { time_us, peak, bbox }) => match open.take() {
                Some(id) => events.end(id, time_us, peak, bbox),
                None => Ok(()),
            },
            Err(e) => {
                tracing::warn!(camera = %camera, error = %e, "motion helper sent a malformed report");
                Ok(())
            }
        };
        if let Err(e) = stored {
            tracing::error!(camera = %camera, error = %e, "cannot store a motion event");
        }
    }
}

/// The child's exit status, waiting at most `grace` before killing it (then `None`).
fn wait_or_kill(child: &mut std::process::Child, grace: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Drops frames for `pause` (a helper is about to restart); false when the frames ended.
fn discard_for(frames: &mut mpsc::Receiver<Frame>, pause: Duration) -> bool {
    let deadline = Instant::now() + pause;
    while Instant::now() < deadline {
        match frames.try_recv() {
            Ok(_) => {}
            Err(mpsc::error::TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(50)),
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
    true
}

/// The decoder and detector of one camera, inside the helper process.
pub struct Worker {
    camera: String,
    config: MotionConfig,
    decoder: Option<(Arc<Vec<u8>>, ffmpeg::decoder::Video)>,
    scaler: Option<(ScalerKey, ffmpeg::software::scaling::Context)>,
    detector: Option<Detector>,
    waiting_for_keyframe: bool,
    last_analysed_us: i64,
    in_event: bool,
    last_time_us: i64,
    errors: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct ScalerKey {
    format: ffmpeg::format::Pixel,
    width: u32,
    height: u32,
}

impl Worker {
    pub fn new(camera: String, config: MotionConfig) -> Result<Worker, SnapshotError> {
        ffmpeg::init().map_err(|source| SnapshotError::Ffmpeg { context: "init", source })?;
        Ok(Worker {
            camera,
            config,
            decoder: None,
            scaler: None,
            detector: None,
            waiting_for_keyframe: true,
            last_analysed_us: i64::MIN,
            in_event: false,
            last_time_us: 0,
            errors: 0,
        })
    }

    /// Decodes a frame and analyses it if it is due; a frame that cannot be decoded is logged
    /// once and the decoder restarts at the next keyframe.
    pub fn offer(&mut self, frame: Frame) -> Vec<Report> {
        let mut reports = Vec::new();
        match self.handle(frame, &mut reports) {
            Ok(()) => self.errors = 0,
            Err(e) => {
                if self.errors == 0 {
                    tracing::warn!(camera = %self.camera, error = %e, "motion: cannot decode; waiting for a keyframe");
                }
                self.errors = self.errors.saturating_add(1);
                self.decoder = None;
                self.waiting_for_keyframe = true;
            }
        }
        reports
    }

    /// The end of the stream: an open event ends at the last frame.
    pub fn finish(&mut self) -> Vec<Report> {
        match std::mem::take(&mut self.in_event) {
            true => vec![Report::Ended { time_us: self.last_time_us, peak: 0.0, bbox: None }],
            false => Vec::new(),
        }
    }

    fn handle(&mut self, frame: Frame, reports: &mut Vec<Report>) -> Result<(), SnapshotError> {
        let ff = |context| move |source| SnapshotError::Ffmpeg { context, source };
        if self.waiting_for_keyframe && !frame.keyframe {
            return Ok(());
        }
        self.waiting_for_keyframe = false;
        self.last_time_us = frame.time_us;
        let (codec_id, annex_b) = crate::snapshot::to_annex_b(&frame.sample_entry, &frame.data)?;
        // The camera shares one Arc per parameter set, so a pointer check settles it per frame.
        let stale = self
            .decoder
            .as_ref()
            .is_none_or(|(entry, _)| !Arc::ptr_eq(entry, &frame.sample_entry) && *entry != frame.sample_entry);
        if stale {
            let codec = ffmpeg::decoder::find(codec_id).ok_or(SnapshotError::CodecMissing("decoder"))?;
            let decoder = ffmpeg::codec::Context::new_with_codec(codec).decoder().video().map_err(ff("decoder"))?;
            self.decoder = Some((frame.sample_entry.clone(), decoder));
        }
        let (_, decoder) = self.decoder.as_mut().expect("set above");
        decoder.send_packet(&ffmpeg::Packet::copy(&annex_b)).map_err(ff("decode"))?;
        let mut ready = Vec::new();
        loop {
            let mut decoded = ffmpeg::frame::Video::empty();
            if decoder.receive_frame(&mut decoded).is_err() {
                break;
            }
            ready.push(decoded);
        }
        for decoded in ready {
            let interval_us = (1e6 / self.config.fps.max(0.1)) as i64;
            if frame.time_us.saturating_sub(self.last_analysed_us) < interval_us * 9 / 10 {
                continue;
            }
            self.last_analysed_us = frame.time_us;
            reports.extend(self.analyse(&decoded, frame.time_us)?);
        }
        Ok(())
    }

    fn analyse(&mut self, decoded: &ffmpeg::frame::Video, time_us: i64) -> Result<Option<Report>, SnapshotError> {
        let gray = self.to_gray(decoded)?;
        let (width, height) = (gray.width() as usize, gray.height() as usize);
        let detector = self.detector.get_or_insert_with(|| Detector::new(self.config.detector.clone(), width, height));
        let stride = gray.stride(0);
        let plane = gray.data(0);
        let mut pixels = Vec::with_capacity(width * height);
        for row in 0..height {
            pixels.extend_from_slice(&plane[row * stride..row * stride + width]);
        }
        let (analysis, update) = detector.process(&pixels, time_us);
        if analysis.changed > 0.0 {
            tracing::trace!(camera = %self.camera, changed = analysis.changed, shift = analysis.shift, global = analysis.global, "motion frame");
        }
        Ok(match update {
            Some(Update::Started { time_us, score, bbox }) => {
                self.in_event = true;
                let thumbnail = crate::snapshot::encode_jpeg(decoded, THUMBNAIL_WIDTH).ok();
                let thumbnail = thumbnail.map(|jpeg| base64::engine::general_purpose::STANDARD.encode(jpeg));
                Some(Report::Started { time_us, score, bbox, thumbnail })
            }
            Some(Update::Ended { time_us, peak, bbox }) => {
                self.in_event = false;
                Some(Report::Ended { time_us, peak, bbox: Some(bbox) })
            }
            None => None,
        })
    }

    fn to_gray(&mut self, decoded: &ffmpeg::frame::Video) -> Result<ffmpeg::frame::Video, SnapshotError> {
        let key = ScalerKey { format: decoded.format(), width: decoded.width(), height: decoded.height() };
        if self.scaler.as_ref().is_none_or(|(k, _)| *k != key) {
            let (width, height) = gray_size(key.width, key.height);
            let scaler = ffmpeg::software::scaling::Context::get(
                key.format,
                key.width,
                key.height,
                ffmpeg::format::Pixel::GRAY8,
                width,
                height,
                ffmpeg::software::scaling::Flags::AREA,
            )
            .map_err(|source| SnapshotError::Ffmpeg { context: "scaler", source })?;
            self.scaler = Some((key, scaler));
            self.detector = None; // a new size needs a new background
        }
        let (_, scaler) = self.scaler.as_mut().expect("set above");
        let mut gray = ffmpeg::frame::Video::empty();
        scaler.run(decoded, &mut gray).map_err(|source| SnapshotError::Ffmpeg { context: "scale", source })?;
        Ok(gray)
    }
}

/// The detector's picture size: at most [`MAX_WIDTH`] wide, aspect kept, even sizes.
fn gray_size(width: u32, height: u32) -> (u32, u32) {
    if width <= MAX_WIDTH {
        return (width.max(2) & !1, height.max(2) & !1);
    }
    let h = (u64::from(height) * u64::from(MAX_WIDTH) / u64::from(width)) as u32;
    (MAX_WIDTH, h.max(2) & !1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_pictures_are_small() {
        assert_eq!(gray_size(1920, 1080), (320, 180));
        assert_eq!(gray_size(640, 360), (320, 180));
        assert_eq!(gray_size(320, 240), (320, 240));
    }
}
