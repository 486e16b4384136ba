//! Motion detection: a camera's frames decoded with ffmpeg-next (decode only — recordings are
//! never transcoded), scaled to a small grayscale picture with swscale at a few frames per
//! second, and judged by the [`detector`]. Motion becomes events (with a thumbnail) through
//! [`crate::events`].
//!
//! The camera task offers every video frame to a [`FrameSink`]; a per-camera worker thread
//! decodes them. The sink never blocks the camera: if the worker falls behind, frames are
//! dropped and the worker resumes at the next keyframe (a decoder cannot start elsewhere). So
//! motion detection can lag or miss a moment under load, but recording never does.
//!
//! Cost: the decoder must decode every frame of the stream it watches. For a 1080p main
//! stream that is a large share of a Pi core, so a camera's low-resolution sub-stream
//! (`sub_url`) is watched instead when configured (`camera::run_substream` feeds the sink).

pub mod detector;

use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use ffmpeg_next as ffmpeg;
use tokio::sync::mpsc;

use crate::events::Events;
use detector::{Detector, DetectorConfig, Update};

/// Widest grayscale picture the detector looks at.
pub const MAX_WIDTH: u32 = 320;
/// Thumbnails stored with events.
const THUMBNAIL_WIDTH: u32 = 320;
/// Frames waiting for the decoder: about a second of video.
const QUEUE: usize = 32;

/// Motion settings of one camera.
#[derive(Clone, Debug, PartialEq)]
pub struct MotionConfig {
    /// Frames analysed per second.
    pub fps: f32,
    pub detector: DetectorConfig,
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
}

impl FrameSink {
    /// Hands a frame to the worker, or drops it if the worker is behind.
    pub fn offer(&self, frame: Frame) {
        let _ = self.tx.try_send(frame);
    }
}

/// Starts the motion worker for `camera`. It stops when every [`FrameSink`] is dropped.
pub fn spawn(
    camera: String,
    config: MotionConfig,
    events: Arc<Events>,
) -> std::io::Result<(FrameSink, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let name = format!("motion-{camera}").chars().take(15).collect::<String>();
    let handle = std::thread::Builder::new().name(name).spawn(move || Worker::new(camera, config, events).run(rx))?;
    Ok((FrameSink { tx }, handle))
}

struct Worker {
    camera: String,
    config: MotionConfig,
    events: Arc<Events>,
    decoder: Option<(Arc<Vec<u8>>, ffmpeg::decoder::Video)>,
    scaler: Option<(ScalerKey, ffmpeg::software::scaling::Context)>,
    detector: Option<Detector>,
    waiting_for_keyframe: bool,
    last_analysed_us: i64,
    /// The open motion event, if any.
    current: Option<i64>,
    last_time_us: i64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct ScalerKey {
    format: ffmpeg::format::Pixel,
    width: u32,
    height: u32,
}

impl Worker {
    fn new(camera: String, config: MotionConfig, events: Arc<Events>) -> Worker {
        Worker {
            camera,
            config,
            events,
            decoder: None,
            scaler: None,
            detector: None,
            waiting_for_keyframe: true,
            last_analysed_us: i64::MIN,
            current: None,
            last_time_us: 0,
        }
    }

    fn run(mut self, mut frames: mpsc::Receiver<Frame>) {
        if let Err(e) = ffmpeg::init() {
            tracing::error!(camera = %self.camera, error = %e, "ffmpeg unavailable; motion detection off");
            return;
        }
        let mut errors = 0u32;
        while let Some(frame) = frames.blocking_recv() {
            // Frames were dropped if the queue filled: resume at a keyframe.
            if frames.len() + 1 >= QUEUE {
                self.waiting_for_keyframe = true;
            }
            match self.handle(frame) {
                Ok(()) => errors = 0,
                Err(e) => {
                    if errors == 0 {
                        tracing::warn!(camera = %self.camera, error = %e, "motion: cannot decode; waiting for a keyframe");
                    }
                    errors = errors.saturating_add(1);
                    self.decoder = None;
                    self.waiting_for_keyframe = true;
                }
            }
        }
        if let Some(id) = self.current.take() {
            let _ = self.events.end(id, self.last_time_us, 0.0, None);
        }
    }

    fn handle(&mut self, frame: Frame) -> Result<(), crate::snapshot::SnapshotError> {
        use crate::snapshot::SnapshotError;
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
            self.analyse(&decoded, frame.time_us)?;
        }
        Ok(())
    }

    fn analyse(&mut self, decoded: &ffmpeg::frame::Video, time_us: i64) -> Result<(), crate::snapshot::SnapshotError> {
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
        match update {
            Some(Update::Started { time_us, score, bbox }) => {
                let thumbnail = crate::snapshot::encode_jpeg(decoded, THUMBNAIL_WIDTH).ok();
                match self.events.start(
                    &self.camera,
                    "motion",
                    "motion",
                    time_us,
                    score,
                    Some(bbox),
                    thumbnail.as_deref(),
                ) {
                    Ok(id) => self.current = Some(id),
                    Err(e) => tracing::error!(camera = %self.camera, error = %e, "cannot store a motion event"),
                }
            }
            Some(Update::Ended { time_us, peak, bbox }) => {
                if let Some(id) = self.current.take() {
                    if let Err(e) = self.events.end(id, time_us, peak, Some(bbox)) {
                        tracing::error!(camera = %self.camera, error = %e, "cannot store a motion event");
                    }
                }
            }
            None => {}
        }
        Ok(())
    }

    fn to_gray(
        &mut self,
        decoded: &ffmpeg::frame::Video,
    ) -> Result<ffmpeg::frame::Video, crate::snapshot::SnapshotError> {
        use crate::snapshot::SnapshotError;
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
