//! Turns one camera's frames into clips: where a clip starts and ends, what each sample lasts,
//! how fragments are cut, and what wall-clock time each clip covers.
//!
//! [`Recorder`] is pure logic with no I/O: the ingest task feeds it [`VideoFrame`]s and
//! [`AudioFrame`]s and drains [`ClipEvent`]s (start a clip with its init segment, append a
//! fragment, end a clip, note a gap), which the clip writer turns into files and index rows.
//! Keeping it pure is what lets its unit tests cover clip boundaries, timestamp jumps and
//! contiguity exhaustively.
//!
//! Rules, in the order they apply to each video frame:
//! - a sample's duration is the difference to the *next* frame's RTP timestamp, so the last
//!   frame of a clip is held back until the first frame of the next one arrives, and clips
//!   are contiguous to the 90 kHz tick;
//! - a timestamp that goes backwards or jumps forward by more than [`MAX_FRAME_GAP_90K`] ends
//!   the clip and records a gap — never papered over;
//! - a new clip starts at the first keyframe after `clip_seconds`, and at any keyframe whose
//!   codec parameters differ from the clip's (a camera's resolution change);
//! - a fragment holds one GOP or at most ~1 s ([`MAX_FRAGMENT_90K`]), whichever is shorter, so
//!   live viewers and crash recovery both work in small steps.
//!
//! Wall-clock time is anchored once per session (the first frame's arrival) and advanced by
//! RTP time, so a clip's end equals the next clip's start exactly; if the two clocks drift
//! apart by more than [`MAX_DRIFT_US`] the anchor is reset at the next clip boundary.

use crate::mux::{self, Sample, TrackConfig, TrackKind, TrackRun};

/// Video time base: RTP video is always 90 kHz.
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// A jump between consecutive frames larger than this ends the clip (5 s).
pub const MAX_FRAME_GAP_90K: i64 = 5 * 90_000;
/// A fragment is cut at the next frame once it holds this much (1 s).
pub const MAX_FRAGMENT_90K: i64 = 90_000;
/// Re-anchor wall-clock time when it and RTP time disagree by more than this.
pub const MAX_DRIFT_US: i64 = 1_000_000;

/// What describes a video stream well enough to write its init segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoParams {
    /// RFC 6381, e.g. `avc1.64001f`.
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// The complete `avc1`/`hvc1` sample entry box.
    pub sample_entry: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioParams {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u16,
    /// The complete `mp4a` sample entry box.
    pub sample_entry: Vec<u8>,
}

/// One encoded video frame (access unit), with 4-byte length-prefixed NAL units.
#[derive(Clone, Debug)]
pub struct VideoFrame {
    /// RTP time since the session started, in 90 kHz units.
    pub time_90k: i64,
    pub is_keyframe: bool,
    pub data: Vec<u8>,
    /// Wall-clock arrival time, µs since the epoch.
    pub received_us: i64,
}

/// One encoded audio frame.
#[derive(Clone, Debug)]
pub struct AudioFrame {
    /// RTP time since the session started, in the audio clock rate.
    pub time: i64,
    pub duration: u32,
    pub data: Vec<u8>,
}

/// Counters of a clip so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClipProgress {
    pub duration_90k: i64,
    pub frames: i64,
    pub keyframes: i64,
    /// Wall-clock end of what has been written, µs.
    pub end_us: i64,
}

/// What the recorder asks the clip writer to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum ClipEvent {
    Start {
        start_us: i64,
        codec: String,
        width: u32,
        height: u32,
        has_audio: bool,
        init_segment: Vec<u8>,
        /// Kept for the event retention period (every clip of a camera recording in
        /// `events` mode); the recorder itself never knows, the [`crate::gate`] decides.
        event: bool,
    },
    /// A complete `moof`+`mdat`. `keyframe` when it starts with one; `live_offsets` (track id,
    /// ticks) move its clip-relative decode times onto the RTSP session's clock, for live view;
    /// `starts_at` (track id, ticks) is each track's clip-relative time at the fragment's first
    /// video frame, what an event clip cut out here subtracts to start at zero.
    Fragment {
        bytes: Vec<u8>,
        progress: ClipProgress,
        keyframe: bool,
        live_offsets: Vec<(u32, u64)>,
        starts_at: Vec<(u32, u64)>,
        /// The fragment overlaps an event (with its pre- and post-roll): its clip is kept for
        /// the event retention period.
        event: bool,
    },
    End {
        progress: ClipProgress,
    },
    Gap {
        start_us: i64,
        end_us: i64,
        reason: String,
    },
    /// Clips of this camera overlapping `[start_us, end_us)` hold an event's pre-roll: keep
    /// them for the event retention period (`both` mode, where they were written already).
    MarkEvents {
        start_us: i64,
        end_us: i64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("cannot build MP4: {0}")]
    Mux(#[from] mux::MuxError),
}

/// A sample waiting in the current fragment.
struct PendingSample {
    sample: Sample,
    data: Vec<u8>,
}

/// The clip being written.
struct OpenClip {
    params: VideoParams,
    has_audio: bool,
    start_us: i64,
    /// Session RTP time (90 kHz) of the clip's first frame.
    start_90k: i64,
    /// The audio clock value that lines up with `start_90k`.
    audio_start: Option<i64>,
    audio_rate: Option<u32>,
    sequence: u32,
    progress: ClipProgress,
    video: Vec<PendingSample>,
    /// Decode time (relative to the clip) of the first video sample in `video`.
    video_base: i64,
    audio: Vec<PendingSample>,
    audio_base: i64,
    /// Audio decode time (clip-relative) the next audio sample would start at.
    audio_next: i64,
    fragment_has_frames: bool,
}

impl OpenClip {
    fn fragment_duration(&self) -> i64 {
        self.video.iter().map(|s| i64::from(s.sample.duration)).sum()
    }
}

/// Per-camera clip-making state machine. See the module docs.
pub struct Recorder {
    clip_seconds: u32,
    video_params: Option<VideoParams>,
    audio_params: Option<AudioParams>,
    clip: Option<OpenClip>,
    /// The last frame, waiting for its successor to learn its duration.
    held: Option<VideoFrame>,
    last_duration: i64,
    /// (session RTP time 90k, wall µs) anchor.
    anchor: Option<(i64, i64)>,
    /// Wall-clock end of the last clip, to record gaps.
    last_end_us: Option<i64>,
    /// The wall clock is behind what is already recorded (it was set back): clips continue
    /// from the last end. Logged once, not at every clip.
    clock_behind: bool,
    gap_reason: String,
    events: std::collections::VecDeque<ClipEvent>,
}

impl Recorder {
    /// `last_end_us` is where this camera's previous recording ended (from the index), so the
    /// first clip after a restart records the gap since.
    pub fn new(clip_seconds: u32, last_end_us: Option<i64>) -> Recorder {
        Recorder {
            clip_seconds,
            video_params: None,
            audio_params: None,
            clip: None,
            held: None,
            last_duration: 0,
            anchor: None,
            last_end_us,
            clock_behind: false,
            gap_reason: "hearth was not running".to_owned(),
            events: std::collections::VecDeque::new(),
        }
    }

    /// A new RTSP session begins: its RTP times are unrelated to the previous session's.
    pub fn start_session(&mut self, video: VideoParams, audio: Option<AudioParams>) {
        self.video_params = Some(video);
        self.audio_params = audio;
        self.anchor = None;
        self.held = None;
    }

    /// Video parameters changed mid-session; takes effect at the next keyframe.
    pub fn set_video_params(&mut self, video: VideoParams) {
        self.video_params = Some(video);
    }

    /// The session ended (error or shutdown): finish the clip with what we have. The held
    /// frame gets the previous frame's duration, the best estimate there is.
    pub fn end_session(&mut self, reason: &str) -> Result<(), RecorderError> {
        if let Some(frame) = self.held.take() {
            let duration = if self.last_duration > 0 { self.last_duration } else { 3000 };
            self.append_video(frame, duration)?;
        }
        self.close_clip()?;
        self.gap_reason = reason.to_owned();
        self.anchor = None;
        Ok(())
    }

    pub fn push_video(&mut self, frame: VideoFrame) -> Result<(), RecorderError> {
        if let Some(held) = self.held.take() {
            let duration = frame.time_90k - held.time_90k;
            if duration <= 0 || duration > MAX_FRAME_GAP_90K {
                let reason = format!("timestamp jump of {:.3} s", duration as f64 / 90_000.0);
                tracing::warn!(%reason, "ending clip");
                self.held = Some(held);
                self.end_session(&reason)?;
            } else {
                self.last_duration = duration;
                self.append_video(held, duration)?;
            }
        }
        if frame.is_keyframe && self.needs_new_clip(frame.time_90k) {
            self.close_clip()?;
            self.open_clip(&frame)?;
        }
        if self.clip.is_some() {
            self.held = Some(frame);
        }
        Ok(())
    }

    pub fn push_audio(&mut self, frame: AudioFrame) {
        let Some(clip) = self.clip.as_mut() else { return };
        let Some(audio_start) = clip.audio_start else { return };
        let time = frame.time - audio_start;
        if time < clip.audio_next {
            return; // before the clip's first video frame, or a duplicate
        }
        if clip.audio.is_empty() {
            clip.audio_base = time;
        }
        clip.audio_next = time + i64::from(frame.duration);
        let sample =
            Sample { duration: frame.duration, size: frame.data.len() as u32, is_sync: true, composition_offset: 0 };
        clip.audio.push(PendingSample { sample, data: frame.data });
    }

    /// Everything decided since the last call, in order.
    pub fn take_events(&mut self) -> Vec<ClipEvent> {
        self.events.drain(..).collect()
    }

    /// Whether events are waiting to be taken.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The oldest waiting event. Taking one at a time lets the caller wait for room downstream
    /// first, so an event is never taken and then lost (e.g. at shutdown).
    pub fn next_event(&mut self) -> Option<ClipEvent> {
        self.events.pop_front()
    }

    fn needs_new_clip(&self, time_90k: i64) -> bool {
        match &self.clip {
            None => self.video_params.is_some(),
            Some(clip) => {
                let elapsed = time_90k - clip.start_90k;
                elapsed >= i64::from(self.clip_seconds) * i64::from(VIDEO_TIMESCALE)
                    || self.video_params.as_ref() != Some(&clip.params)
            }
        }
    }

    fn wall_us(&self, time_90k: i64) -> Option<i64> {
        self.anchor.map(|(anchor_90k, anchor_us)| anchor_us + (time_90k - anchor_90k) * 1_000_000 / 90_000)
    }

    /// Wall-clock start for a clip beginning with `frame`, re-anchoring when needed.
    fn clip_start_us(&mut self, frame: &VideoFrame) -> i64 {
        match self.wall_us(frame.time_90k) {
            Some(wall) if (frame.received_us - wall).abs() <= MAX_DRIFT_US => wall,
            Some(wall) => {
                // Never start before the previous clip ended: the index must stay ordered. When
                // the wall clock was set back behind what is already recorded, recording goes
                // on from the last clip's end (and the anchor with it) until the clock catches up.
                let start = frame.received_us.max(self.last_end_us.unwrap_or(i64::MIN));
                let behind = start != frame.received_us;
                if !(behind && self.clock_behind) {
                    tracing::warn!(
                        drift_ms = (frame.received_us - wall) / 1000,
                        behind_recorded_time = behind,
                        "camera clock drifted from wall clock; re-anchoring"
                    );
                }
                self.clock_behind = behind;
                self.anchor = Some((frame.time_90k, start));
                start
            }
            None => {
                let start = frame.received_us.max(self.last_end_us.unwrap_or(i64::MIN));
                self.anchor = Some((frame.time_90k, start));
                start
            }
        }
    }

    fn open_clip(&mut self, frame: &VideoFrame) -> Result<(), RecorderError> {
        let Some(params) = self.video_params.clone() else { return Ok(()) };
        let start_us = self.clip_start_us(frame);
        if let Some(last_end) = self.last_end_us {
            if start_us > last_end {
                self.events.push_back(ClipEvent::Gap {
                    start_us: last_end,
                    end_us: start_us,
                    reason: self.gap_reason.clone(),
                });
            }
        }
        let audio = self.audio_params.clone();
        let mut tracks = vec![TrackConfig {
            kind: TrackKind::Video { width: params.width as u16, height: params.height as u16 },
            timescale: VIDEO_TIMESCALE,
            sample_entry: params.sample_entry.clone(),
        }];
        if let Some(audio) = &audio {
            tracks.push(TrackConfig {
                kind: TrackKind::Audio { channels: audio.channels, sample_rate: audio.sample_rate },
                timescale: audio.sample_rate,
                sample_entry: audio.sample_entry.clone(),
            });
        }
        let init_segment = mux::init_segment(&tracks)?;
        self.events.push_back(ClipEvent::Start {
            start_us,
            codec: params.codec.clone(),
            width: params.width,
            height: params.height,
            has_audio: audio.is_some(),
            init_segment,
            event: false,
        });
        // Both RTP clocks count from the same PLAY instant, so scaling puts them on one line.
        let audio_start = audio.as_ref().map(|a| frame.time_90k * i64::from(a.sample_rate) / 90_000);
        self.clip = Some(OpenClip {
            params,
            has_audio: audio.is_some(),
            start_us,
            start_90k: frame.time_90k,
            audio_start,
            audio_rate: audio.as_ref().map(|a| a.sample_rate),
            sequence: 0,
            progress: ClipProgress { end_us: start_us, ..ClipProgress::default() },
            video: Vec::new(),
            video_base: 0,
            audio: Vec::new(),
            audio_base: 0,
            audio_next: 0,
            fragment_has_frames: false,
        });
        Ok(())
    }

    fn append_video(&mut self, frame: VideoFrame, duration: i64) -> Result<(), RecorderError> {
        let Some(clip) = self.clip.as_ref() else { return Ok(()) };
        if clip.fragment_has_frames && (frame.is_keyframe || clip.fragment_duration() >= MAX_FRAGMENT_90K) {
            self.flush_fragment()?;
        }
        let Some(clip) = self.clip.as_mut() else { return Ok(()) };
        if clip.video.is_empty() {
            clip.video_base = clip.progress.duration_90k;
        }
        let sample = Sample {
            duration: duration as u32,
            size: frame.data.len() as u32,
            is_sync: frame.is_keyframe,
            composition_offset: 0,
        };
        clip.progress.duration_90k += duration;
        clip.progress.frames += 1;
        clip.progress.keyframes += i64::from(frame.is_keyframe);
        clip.progress.end_us = clip.start_us + clip.progress.duration_90k * 1_000_000 / 90_000;
        clip.video.push(PendingSample { sample, data: frame.data });
        clip.fragment_has_frames = true;
        Ok(())
    }

    fn flush_fragment(&mut self) -> Result<(), RecorderError> {
        let Some(clip) = self.clip.as_mut() else { return Ok(()) };
        if clip.video.is_empty() {
            return Ok(());
        }
        clip.sequence += 1;
        let video_samples: Vec<Sample> = clip.video.iter().map(|s| s.sample.clone()).collect();
        let audio_samples: Vec<Sample> = clip.audio.iter().map(|s| s.sample.clone()).collect();
        let mut runs =
            vec![TrackRun { track_id: 1, base_decode_time: clip.video_base as u64, samples: &video_samples }];
        if clip.has_audio && !audio_samples.is_empty() {
            runs.push(TrackRun { track_id: 2, base_decode_time: clip.audio_base as u64, samples: &audio_samples });
        }
        let payload_len: usize = clip.video.iter().chain(clip.audio.iter()).map(|s| s.data.len()).sum();
        let mut bytes = mux::fragment(clip.sequence, &runs, payload_len)?;
        bytes.reserve(payload_len);
        for sample in clip.video.drain(..).chain(clip.audio.drain(..)) {
            bytes.extend_from_slice(&sample.data);
        }
        clip.fragment_has_frames = false;
        let keyframe = video_samples.first().is_some_and(|s| s.is_sync);
        let mut live_offsets = vec![(1, clip.start_90k.max(0) as u64)];
        if let Some(audio_start) = clip.audio_start {
            live_offsets.push((2, audio_start.max(0) as u64));
        }
        let video_start = clip.video_base as u64;
        let mut starts_at = vec![(1, video_start)];
        if let Some(rate) = clip.audio_rate {
            starts_at.push((2, video_start * u64::from(rate) / u64::from(VIDEO_TIMESCALE)));
        }
        self.events.push_back(ClipEvent::Fragment {
            bytes,
            progress: clip.progress,
            keyframe,
            live_offsets,
            starts_at,
            event: false,
        });
        Ok(())
    }

    fn close_clip(&mut self) -> Result<(), RecorderError> {
        self.flush_fragment()?;
        if let Some(clip) = self.clip.take() {
            self.last_end_us = Some(clip.progress.end_us);
            self.events.push_back(ClipEvent::End { progress: clip.progress });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: i64 = 3600; // 25 fps

    fn params(width: u32) -> VideoParams {
        // A structurally valid (if not decodable) avc1 box is all the muxer needs here.
        let mut entry = vec![0, 0, 0, 16];
        entry.extend_from_slice(b"avc1");
        entry.extend_from_slice(&[0; 8]);
        VideoParams { codec: "avc1.64001f".into(), width, height: 360, sample_entry: entry }
    }

    fn frame(index: i64, gop: i64) -> VideoFrame {
        VideoFrame {
            time_90k: index * FRAME,
            is_keyframe: index % gop == 0,
            data: vec![index as u8; 100],
            received_us: 1_700_000_000_000_000 + index * FRAME * 1_000_000 / 90_000,
        }
    }

    fn clips(events: &[ClipEvent]) -> Vec<(i64, ClipProgress)> {
        let mut out = Vec::new();
        let mut start = None;
        for event in events {
            match event {
                ClipEvent::Start { start_us, .. } => start = Some(*start_us),
                ClipEvent::End { progress } => out.push((start.take().unwrap(), *progress)),
                _ => {}
            }
        }
        out
    }

    fn record(frames: impl IntoIterator<Item = VideoFrame>, clip_seconds: u32) -> Vec<ClipEvent> {
        let mut recorder = Recorder::new(clip_seconds, None);
        recorder.start_session(params(640), None);
        for f in frames {
            recorder.push_video(f).unwrap();
        }
        recorder.end_session("test over").unwrap();
        recorder.take_events()
    }

    #[test]
    fn clips_are_contiguous_and_cut_at_keyframes_after_clip_seconds() {
        // 25 s at 25 fps with a keyframe every 2 s; clips of 5 s → cut at 6 s, 12 s, 18 s, 24 s.
        let events = record((0..625).map(|i| frame(i, 50)), 5);
        let clips = clips(&events);
        assert_eq!(clips.len(), 5);
        let boundaries: Vec<i64> = clips.iter().map(|(_, p)| p.duration_90k / 90_000).collect();
        assert_eq!(boundaries, vec![6, 6, 6, 6, 1]);
        for pair in clips.windows(2) {
            assert_eq!(pair[0].1.end_us, pair[1].0, "clip end must equal next clip start");
        }
        let total_frames: i64 = clips.iter().map(|(_, p)| p.frames).sum();
        assert_eq!(total_frames, 625, "no frame lost or duplicated");
        assert!(clips.iter().all(|(_, p)| p.keyframes >= 1));
    }

    #[test]
    fn frames_before_the_first_keyframe_are_skipped() {
        let events = record((10..110).map(|i| frame(i, 50)), 60);
        let clips = clips(&events);
        assert_eq!(clips.len(), 1);
        assert_eq!(clips[0].1.frames, 60); // from frame 50 on
    }

    #[test]
    fn fragments_hold_at_most_a_gop_or_a_second() {
        let events = record((0..250).map(|i| frame(i, 50)), 60);
        let fragments: Vec<&ClipProgress> = events
            .iter()
            .filter_map(|e| if let ClipEvent::Fragment { progress, .. } = e { Some(progress) } else { None })
            .collect();
        // 10 s of 2 s GOPs cut at 1 s: 10 fragments of 25 frames.
        assert_eq!(fragments.len(), 10);
        let mut previous = 0;
        for f in &fragments {
            assert_eq!(f.frames - previous, 25);
            previous = f.frames;
        }
    }

    #[test]
    fn a_timestamp_jump_ends_the_clip_and_records_a_gap() {
        let mut frames: Vec<VideoFrame> = (0..100).map(|i| frame(i, 50)).collect();
        // The camera skips 10 s: RTP time and arrival time both jump.
        frames.extend((350..450).map(|i| frame(i, 50)));
        let events = record(frames, 60);
        let clips = clips(&events);
        assert_eq!(clips.len(), 2);
        let gap = events.iter().find_map(|e| {
            if let ClipEvent::Gap { start_us, end_us, .. } = e {
                Some((*start_us, *end_us))
            } else {
                None
            }
        });
        let (gap_start, gap_end) = gap.expect("gap recorded");
        assert_eq!(gap_start, clips[0].1.end_us);
        assert_eq!(gap_end, clips[1].0);
        assert!(gap_end - gap_start > 9_000_000);
    }

    #[test]
    fn backwards_timestamps_never_reorder_the_index() {
        let mut frames: Vec<VideoFrame> = (0..100).map(|i| frame(i, 50)).collect();
        let mut replay: Vec<VideoFrame> = (0..100).map(|i| frame(i, 50)).collect();
        for f in &mut replay {
            f.received_us += 4_000_000 + 100 * FRAME * 1_000_000 / 90_000;
        }
        frames.extend(replay);
        let clips = clips(&record(frames, 60));
        assert_eq!(clips.len(), 2);
        assert!(clips[1].0 >= clips[0].1.end_us);
    }

    /// Regression (issue #8): after the system clock was set back an hour, the clip after the
    /// re-anchored one started an hour before its predecessor ended.
    #[test]
    fn a_wall_clock_set_back_or_forward_never_reorders_the_index() {
        const HOUR_US: i64 = 3_600_000_000;
        // 30 s at 25 fps in 2 s clips; the wall clock goes back an hour at 8 s, forward two
        // hours at 16 s (an hour ahead of where it started).
        let frames = (0..750).map(|i| {
            let mut f = frame(i, 50);
            let t = i * FRAME / 90_000;
            f.received_us += match t {
                8..=15 => -HOUR_US,
                16.. => HOUR_US,
                _ => 0,
            };
            f
        });
        let events = record(frames, 2);
        let clips = clips(&events);
        assert_eq!(clips.iter().map(|(_, p)| p.frames).sum::<i64>(), 750, "no frame lost");
        for pair in clips.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1.end_us,
                "clip starting {} before the previous end {}",
                pair[1].0,
                pair[0].1.end_us
            );
        }
        // Set back: recording goes on seamlessly from the last end. Set forward past recorded
        // time: the clock is followed, and the jump is a gap.
        let back = clips.iter().position(|(start, _)| *start >= 1_700_000_000_000_000 + 8_000_000).unwrap();
        assert_eq!(clips[back].0, clips[back - 1].1.end_us);
        let gaps: Vec<(i64, i64)> = events
            .iter()
            .filter_map(
                |e| if let ClipEvent::Gap { start_us, end_us, .. } = e { Some((*start_us, *end_us)) } else { None },
            )
            .collect();
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert!(gaps[0].1 - gaps[0].0 > HOUR_US / 2, "{gaps:?}");
        assert!(clips.last().unwrap().1.end_us > 1_700_000_000_000_000 + HOUR_US + 29_000_000);
    }

    #[test]
    fn a_parameter_change_starts_a_new_clip_at_the_next_keyframe() {
        let mut recorder = Recorder::new(60, None);
        recorder.start_session(params(640), None);
        for i in 0..75 {
            recorder.push_video(frame(i, 50)).unwrap();
        }
        recorder.set_video_params(params(1280));
        for i in 75..150 {
            recorder.push_video(frame(i, 50)).unwrap();
        }
        recorder.end_session("done").unwrap();
        let events = recorder.take_events();
        let widths: Vec<u32> = events
            .iter()
            .filter_map(|e| if let ClipEvent::Start { width, .. } = e { Some(*width) } else { None })
            .collect();
        assert_eq!(widths, vec![640, 1280]);
        let clips = clips(&events);
        assert_eq!(clips[0].1.frames, 100);
    }

    #[test]
    fn audio_is_aligned_to_the_clip_start() {
        let mut recorder = Recorder::new(60, None);
        let audio = AudioParams {
            codec: "mp4a.40.2".into(),
            sample_rate: 8000,
            channels: 1,
            sample_entry: {
                let mut e = vec![0, 0, 0, 16];
                e.extend_from_slice(b"mp4a");
                e.extend_from_slice(&[0; 8]);
                e
            },
        };
        recorder.start_session(params(640), Some(audio));
        // Audio every 128 ms (1024 samples at 8 kHz), video from frame 0 with a keyframe at 0.
        let mut audio_time = 0;
        for i in 0..100 {
            recorder.push_video(frame(i, 50)).unwrap();
            while audio_time * 90_000 / 8000 <= i * FRAME {
                recorder.push_audio(AudioFrame { time: audio_time, duration: 1024, data: vec![1; 10] });
                audio_time += 1024;
            }
        }
        recorder.end_session("done").unwrap();
        let events = recorder.take_events();
        assert!(matches!(events[0], ClipEvent::Start { has_audio: true, .. }));
        assert_eq!(clips(&events).len(), 1);
    }
}
