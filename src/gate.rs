//! Recording modes: which of the recorder's clips reach the disk, and which are event clips.
//!
//! The [`Recorder`](crate::recorder::Recorder) cuts a camera's stream into clips all the time
//! (live view needs every fragment either way); the [`Gate`] stands between it and the clip
//! writer and applies the camera's [`RecordMode`]:
//! - `continuous`: everything passes, as it is.
//! - `events`: fragments wait in an in-memory **ring** holding the last `pre_roll` (from the
//!   keyframe before it, so playback can start there). When an event starts, the ring is
//!   written out as the beginning of an event clip; fragments are then written while any event
//!   goes on and until `post_roll` after the last one ended, and the clip ends. Events that
//!   overlap — one starting during another's post-roll included — make one clip. An event clip
//!   is cut out of the middle of a recorder clip, so its fragments are renumbered and their
//!   decode times moved to start at zero; where the recorder starts a new clip (every
//!   `clip_seconds`, or on new codec parameters) the event clip ends and the next one
//!   continues it, contiguous to the tick.
//! - `both`: everything passes, and clips overlapping an event with its pre- and post-roll are
//!   marked, so retention keeps them for the event retention period instead of the continuous
//!   one.
//!
//! The gate is pure logic like the recorder: it is fed the recorder's [`ClipEvent`]s and the
//! camera's event [`Notice`]s, and decides on the fragments' wall-clock times (the recorder's
//! anchored time) against the times the notices carry. Its only memory is the ring, bounded
//! by `pre_roll` plus one long GOP ([`MAX_GOP_US`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::events::Notice;
use crate::recorder::{ClipEvent, ClipProgress};

/// The longest GOP the ring makes room for beyond the pre-roll. A camera with longer GOPs gets
/// a pre-roll starting at the oldest keyframe the ring still holds.
pub const MAX_GOP_US: i64 = 20_000_000;
/// How late a notice may arrive after the moment it reports (motion is decided a few frames
/// after it began) and still get its whole pre-roll.
pub const NOTICE_LATENCY_US: i64 = 2_000_000;

/// What a camera records. See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecordMode {
    #[default]
    Continuous,
    Events,
    Both,
}

/// A camera's recording mode and how much to keep around each event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateConfig {
    pub mode: RecordMode,
    pub pre_roll_us: i64,
    pub post_roll_us: i64,
}

impl GateConfig {
    pub fn continuous() -> GateConfig {
        GateConfig { mode: RecordMode::Continuous, pre_roll_us: 0, post_roll_us: 0 }
    }
}

/// The recorder clip that fragments come from: what an event clip cut out of it starts with.
#[derive(Debug)]
struct SourceClip {
    codec: String,
    width: u32,
    height: u32,
    has_audio: bool,
    init_segment: Vec<u8>,
}

/// A fragment waiting in the ring (or on its way to the writer).
#[derive(Debug)]
struct Held {
    source: Arc<SourceClip>,
    bytes: Vec<u8>,
    /// The source clip's progress before and after this fragment.
    before: ClipProgress,
    after: ClipProgress,
    keyframe: bool,
    starts_at: Vec<(u32, u64)>,
}

impl Held {
    fn start_us(&self) -> i64 {
        self.before.end_us
    }

    fn end_us(&self) -> i64 {
        self.after.end_us
    }
}

/// The event clip the writer has open.
#[derive(Debug)]
struct EventClip {
    source: Arc<SourceClip>,
    /// The source clip's progress where the event clip begins, and the per-track decode
    /// times there: subtracted from everything written.
    base: ClipProgress,
    offsets: Vec<(u32, u64)>,
    sequence: u32,
    progress: ClipProgress,
}

/// Per-camera recording-mode state machine. See the module docs.
#[derive(Debug)]
pub struct Gate {
    config: GateConfig,
    /// The recorder clip in progress, and its progress before the next fragment.
    source: Option<Arc<SourceClip>>,
    before: ClipProgress,
    ring: VecDeque<Held>,
    open: Option<EventClip>,
    /// Events going on: id → start.
    ongoing: BTreeMap<i64, i64>,
    /// Until when the last ended (or instant) event's post-roll lasts.
    until_us: i64,
    /// Where the next event clip should start, set by an event the ring could not serve yet.
    replay_from_us: Option<i64>,
    out: VecDeque<ClipEvent>,
}

impl Gate {
    pub fn new(config: GateConfig) -> Gate {
        Gate {
            config,
            source: None,
            before: ClipProgress::default(),
            ring: VecDeque::new(),
            open: None,
            ongoing: BTreeMap::new(),
            until_us: i64::MIN,
            replay_from_us: None,
            out: VecDeque::new(),
        }
    }

    /// The oldest decision waiting for the writer. One at a time, so the caller can wait for
    /// room downstream first and never lose one it took.
    pub fn next_output(&mut self) -> Option<ClipEvent> {
        self.out.pop_front()
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// How many fragments and bytes the ring holds (for tests and the memory bound).
    pub fn ring_len(&self) -> (usize, usize) {
        (self.ring.len(), self.ring.iter().map(|h| h.bytes.len()).sum())
    }

    /// One of the recorder's events, in order.
    pub fn push(&mut self, event: ClipEvent) {
        match self.config.mode {
            RecordMode::Continuous => self.out.push_back(event),
            RecordMode::Both => self.push_marking(event),
            RecordMode::Events => self.push_gated(event),
        }
    }

    /// An event notice; those of other cameras must be filtered out by the caller.
    pub fn notice(&mut self, notice: &Notice) {
        match notice.phase {
            "start" => {
                self.ongoing.insert(notice.id, notice.time_us);
                self.event_began(notice.time_us);
            }
            "end" => {
                let known = self.ongoing.remove(&notice.id).is_some();
                self.until_us = self.until_us.max(notice.time_us.saturating_add(self.config.post_roll_us));
                if !known {
                    // Its start was missed (it began before hearth did): treat it as instant.
                    self.event_began(notice.time_us);
                }
            }
            _ => {
                self.until_us = self.until_us.max(notice.time_us.saturating_add(self.config.post_roll_us));
                self.event_began(notice.time_us);
            }
        }
    }

    /// The camera's session ended (after the recorder's own `end_session`): nothing can
    /// continue the open clip any more.
    pub fn end_session(&mut self) {
        self.close_event_clip();
    }

    /// The notices fell behind and some were lost: `open` are the camera's events going on now
    /// (id, start), from the table. What was missed is treated as an event at `now_us`, so
    /// the gap costs extra footage rather than lost footage.
    pub fn resync(&mut self, open: &[(i64, i64)], now_us: i64) {
        self.ongoing = open.iter().copied().collect();
        self.until_us = self.until_us.max(now_us.saturating_add(self.config.post_roll_us));
        self.event_began(now_us);
    }

    fn event_began(&mut self, time_us: i64) {
        let from = time_us.saturating_sub(self.config.pre_roll_us);
        match self.config.mode {
            RecordMode::Continuous => {}
            RecordMode::Both => self.out.push_back(ClipEvent::MarkEvents { start_us: from, end_us: time_us }),
            RecordMode::Events => {
                self.replay_from_us = Some(self.replay_from_us.map_or(from, |pending| pending.min(from)));
                if self.open.is_none() {
                    self.start_from_ring();
                }
            }
        }
    }

    /// Whether a fragment starting at `start_us` belongs to an event (or its post-roll).
    fn wanted(&self, start_us: i64) -> bool {
        !self.ongoing.is_empty() || start_us < self.until_us
    }

    fn push_marking(&mut self, mut event: ClipEvent) {
        match &mut event {
            ClipEvent::Start { start_us, .. } => {
                self.before = ClipProgress { end_us: *start_us, ..ClipProgress::default() };
            }
            ClipEvent::Fragment { progress, event, .. } => {
                *event = self.wanted(self.before.end_us);
                self.before = *progress;
            }
            _ => {}
        }
        self.out.push_back(event);
    }

    fn push_gated(&mut self, event: ClipEvent) {
        match event {
            ClipEvent::Start { start_us, codec, width, height, has_audio, init_segment, .. } => {
                self.source = Some(Arc::new(SourceClip { codec, width, height, has_audio, init_segment }));
                self.before = ClipProgress { end_us: start_us, ..ClipProgress::default() };
            }
            ClipEvent::Fragment { bytes, progress, keyframe, starts_at, .. } => {
                // The recorder always starts a clip before its fragments.
                let Some(source) = self.source.clone() else { return };
                let held = Held { source, bytes, before: self.before, after: progress, keyframe, starts_at };
                self.before = progress;
                self.on_fragment(held);
            }
            ClipEvent::End { .. } => {
                let source = self.source.take();
                let ends_open_clip = self
                    .open
                    .as_ref()
                    .zip(source.as_ref())
                    .is_some_and(|(open, source)| Arc::ptr_eq(&open.source, source));
                // A clip past its post-roll stays open a little (see `hold`): the next event's
                // pre-roll may still continue it with what the ring holds of this source.
                if ends_open_clip && self.ring.is_empty() {
                    self.close_event_clip();
                }
            }
            gap @ ClipEvent::Gap { .. } => {
                // Nothing before a gap is continuous with what follows: no pre-roll from there.
                self.close_event_clip();
                self.ring.clear();
                self.out.push_back(gap);
            }
            ClipEvent::MarkEvents { .. } => {}
        }
    }

    fn on_fragment(&mut self, held: Held) {
        let wanted = self.wanted(held.start_us());
        if wanted && self.open.is_some() && self.ring.is_empty() {
            self.write(held);
            return;
        }
        self.hold(held);
        if wanted {
            self.start_from_ring();
        } else {
            // An event whose window passed without video (the camera was away) is over.
            self.replay_from_us = None;
        }
    }

    /// Writes the ring from the keyframe at or before the pending pre-roll start (or, when it
    /// does not reach back that far, from its oldest keyframe) and keeps writing from then on.
    /// When the pre-roll reaches back into the clip that just ended its post-roll, that clip
    /// simply goes on: overlapping events make one clip. Waits while the ring holds nothing of
    /// the pre-roll yet, or no keyframe.
    fn start_from_ring(&mut self) {
        let from = self.replay_from_us.unwrap_or(i64::MAX);
        if self.ring.back().is_none_or(|newest| newest.end_us() <= from && from != i64::MAX) {
            return;
        }
        if let Some(open) = &self.open {
            if from <= open.progress.end_us || from == i64::MAX {
                self.replay_from_us = None;
                self.write_ring();
                return;
            }
            self.close_event_clip();
        }
        let keyframe_at_or_before = self.ring.iter().rposition(|h| h.keyframe && h.start_us() <= from);
        let Some(first) = keyframe_at_or_before.or_else(|| self.ring.iter().position(|h| h.keyframe)) else {
            return;
        };
        self.replay_from_us = None;
        self.ring.drain(..first);
        self.write_ring();
    }

    fn write_ring(&mut self) {
        while let Some(held) = self.ring.pop_front() {
            self.write(held);
        }
    }

    /// Keeps `held` for a pre-roll. While an event clip past its post-roll could still be
    /// continued by the next event's pre-roll, everything since its end is kept; after that,
    /// the ring keeps the pre-roll (and the notice latency) back to a keyframe.
    fn hold(&mut self, held: Held) {
        self.ring.push_back(held);
        let newest_end = self.ring.back().map_or(i64::MIN, Held::end_us);
        let horizon = newest_end.saturating_sub(self.config.pre_roll_us + NOTICE_LATENCY_US);
        if let Some(open) = &self.open {
            if horizon < open.progress.end_us {
                return;
            }
            self.close_event_clip();
        }
        // Keep the latest keyframe at or before the horizon, and everything after it.
        if let Some(keep_from) = self.ring.iter().rposition(|h| h.keyframe && h.start_us() <= horizon) {
            self.ring.drain(..keep_from);
        }
        // A camera whose keyframes are further apart than that still may not grow the ring.
        let oldest_allowed = horizon.saturating_sub(MAX_GOP_US);
        while self.ring.front().is_some_and(|h| h.start_us() < oldest_allowed || !h.keyframe) {
            self.ring.pop_front();
        }
    }

    fn write(&mut self, held: Held) {
        if self.open.as_ref().is_some_and(|open| !Arc::ptr_eq(&open.source, &held.source)) {
            self.close_event_clip();
        }
        if self.open.is_none() {
            if !held.keyframe {
                return; // an event clip must start with a keyframe; the recorder's always do
            }
            let source = held.source.clone();
            self.out.push_back(ClipEvent::Start {
                start_us: held.start_us(),
                codec: source.codec.clone(),
                width: source.width,
                height: source.height,
                has_audio: source.has_audio,
                init_segment: source.init_segment.clone(),
                event: true,
            });
            self.open = Some(EventClip {
                source,
                base: held.before,
                offsets: held.starts_at.clone(),
                sequence: 0,
                progress: ClipProgress { end_us: held.start_us(), ..ClipProgress::default() },
            });
        }
        let Some(open) = self.open.as_mut() else { return };
        let Held { mut bytes, after, keyframe, .. } = held;
        open.sequence += 1;
        if let Err(e) = rebase_in_place(&mut bytes, open.sequence, &open.offsets) {
            // Our own muxer's output: failing to parse it is a bug, not camera data.
            tracing::error!(error = %e, "cannot rebase a fragment for an event clip; dropped");
            open.sequence -= 1;
            return;
        }
        open.progress = ClipProgress {
            duration_90k: after.duration_90k - open.base.duration_90k,
            frames: after.frames - open.base.frames,
            keyframes: after.keyframes - open.base.keyframes,
            end_us: after.end_us,
        };
        self.out.push_back(ClipEvent::Fragment {
            bytes,
            progress: open.progress,
            keyframe,
            live_offsets: Vec::new(),
            starts_at: Vec::new(),
            event: true,
        });
    }

    fn close_event_clip(&mut self) {
        if let Some(open) = self.open.take() {
            self.out.push_back(ClipEvent::End { progress: open.progress });
        }
    }
}

/// Renumbers a `moof`+`mdat` fragment and moves its decode times `earlier_by`, in place (the
/// `moof` keeps its length, so the media data is not copied).
fn rebase_in_place(fragment: &mut [u8], sequence: u32, earlier_by: &[(u32, u64)]) -> Result<(), crate::mux::MuxError> {
    let moof_len = fragment
        .get(0..4)
        .map(|size| u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize)
        .filter(|len| *len <= fragment.len())
        .ok_or_else(|| crate::mux::MuxError::Malformed { offset: 0, what: "fragment shorter than its moof".into() })?;
    let moof = crate::mux::rebase_fragment(&fragment[..moof_len], sequence, earlier_by)?;
    fragment[..moof_len].copy_from_slice(&moof);
    Ok(())
}

#[cfg(test)]
mod tests;
