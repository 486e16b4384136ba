//! The gate fed by the real recorder: 25 fps, a keyframe every 2 s, fragments of 1 s.

use proptest::prelude::*;

use super::*;
use crate::recorder::{Recorder, VideoFrame, VideoParams};

const T0: i64 = 1_700_000_000_000_000;
const FRAME_90K: i64 = 3600;
const FPS: i64 = 25;
const GOP: i64 = 50;
const S: i64 = 1_000_000;

fn params() -> VideoParams {
    let mut entry = vec![0, 0, 0, 16];
    entry.extend_from_slice(b"avc1");
    entry.extend_from_slice(&[0; 8]);
    VideoParams { codec: "avc1.64001f".into(), width: 640, height: 360, sample_entry: entry }
}

fn frame(index: i64) -> VideoFrame {
    VideoFrame {
        time_90k: index * FRAME_90K,
        is_keyframe: index % GOP == 0,
        data: vec![index as u8; 100],
        received_us: T0 + index * S / FPS,
    }
}

fn at(seconds: i64) -> i64 {
    T0 + seconds * S
}

/// A notice as the events table would announce it.
fn notice(id: i64, phase: &'static str, seconds: i64) -> Notice {
    Notice { id, camera: "door".into(), kind: "motion".into(), phase, time_us: at(seconds), score: 1.0 }
}

fn config(mode: RecordMode) -> GateConfig {
    GateConfig { mode, pre_roll_us: 5 * S, post_roll_us: 10 * S }
}

/// Runs `seconds` of video through recorder and gate; `notices[i]` is heard once the frame at
/// its time has been recorded (as in life, a notice comes after the frame that caused it).
fn run(config: GateConfig, clip_seconds: u32, seconds: i64, notices: &[Notice]) -> (Vec<ClipEvent>, Gate) {
    run_heard_late(config, clip_seconds, seconds, notices, 0)
}

/// [`run`], with each notice heard `delay_us` after the moment it reports.
fn run_heard_late(
    config: GateConfig,
    clip_seconds: u32,
    seconds: i64,
    notices: &[Notice],
    delay_us: i64,
) -> (Vec<ClipEvent>, Gate) {
    let mut recorder = Recorder::new(clip_seconds, None);
    let mut gate = Gate::new(config);
    recorder.start_session(params(), None);
    let mut out = Vec::new();
    let mut pending: Vec<&Notice> = notices.iter().collect();
    pending.sort_by_key(|n| n.time_us);
    let mut pending = pending.into_iter().peekable();
    for index in 0..seconds * FPS {
        recorder.push_video(frame(index)).unwrap();
        for event in recorder.take_events() {
            gate.push(event);
        }
        let now = T0 + index * S / FPS;
        while let Some(notice) = pending.next_if(|n| n.time_us + delay_us <= now) {
            gate.notice(notice);
        }
        out.extend(std::iter::from_fn(|| gate.next_output()));
    }
    recorder.end_session("test over").unwrap();
    for event in recorder.take_events() {
        gate.push(event);
    }
    gate.end_session();
    out.extend(std::iter::from_fn(|| gate.next_output()));
    (out, gate)
}

/// An event clip as the writer would store it.
#[derive(Debug)]
struct Written {
    start_us: i64,
    end_us: i64,
    frames: i64,
    event: bool,
    file: Vec<u8>,
}

fn written(events: &[ClipEvent]) -> Vec<Written> {
    let mut done = Vec::new();
    let mut open: Option<Written> = None;
    for event in events {
        match event {
            ClipEvent::Start { start_us, init_segment, event, .. } => {
                assert!(open.is_none(), "a clip started before the last one ended");
                open = Some(Written {
                    start_us: *start_us,
                    end_us: *start_us,
                    frames: 0,
                    event: *event,
                    file: init_segment.clone(),
                });
            }
            ClipEvent::Fragment { bytes, progress, event, .. } => {
                let clip = open.as_mut().expect("a fragment outside a clip");
                clip.file.extend_from_slice(bytes);
                clip.frames = progress.frames;
                clip.end_us = progress.end_us;
                clip.event |= *event;
            }
            ClipEvent::End { progress } => {
                let mut clip = open.take().expect("an end outside a clip");
                assert_eq!((progress.frames, progress.end_us), (clip.frames, clip.end_us));
                clip.end_us = progress.end_us;
                done.push(clip);
            }
            ClipEvent::Gap { .. } | ClipEvent::MarkEvents { .. } => {}
        }
    }
    assert!(open.is_none(), "a clip was left open");
    done
}

/// Every clip is a well-formed fMP4 that starts with a keyframe at decode time zero, with
/// fragments numbered from 1 and no hole in its timeline.
fn assert_playable(clip: &Written) {
    let summary = crate::mux::summarize(&clip.file[..]).expect("the clip parses");
    assert!(!summary.is_truncated());
    let video = &summary.tracks[0];
    assert_eq!(video.first_decode_time, Some(0), "starts at zero");
    assert_eq!(video.end_time, Some(video.total_duration), "no hole in the timeline");
    assert_eq!(video.sample_count as i64, clip.frames);
    assert_eq!(video.total_duration as i64 * S / 90_000, clip.end_us - clip.start_us);
    let mut scanner = crate::mux::FragmentScanner::new(&clip.file[..]).unwrap();
    let mut sequence = 0;
    while let crate::mux::ScanStep::Fragment(fragment) = scanner.next_fragment().unwrap() {
        sequence += 1;
        assert_eq!(fragment.sequence_number, sequence);
        if sequence == 1 {
            assert!(fragment.tracks[0].samples[0].is_sync, "the first sample is a keyframe");
        }
    }
}

fn spans(clips: &[Written]) -> Vec<(i64, i64)> {
    clips.iter().map(|c| ((c.start_us - T0) / 1000, (c.end_us - T0) / 1000)).collect()
}

#[test]
fn without_events_nothing_is_written_and_the_ring_stays_small() {
    let (out, gate) = run(config(RecordMode::Events), 60, 120, &[]);
    assert!(out.is_empty(), "{out:?}");
    // The pre-roll (5 s) and notice latency (2 s) back to a keyframe (≤ 2 s more), plus the
    // fragment in hand.
    let (fragments, _) = gate.ring_len();
    assert!(fragments <= 10, "{fragments} fragments held");
}

#[test]
fn an_instant_event_is_written_with_its_pre_and_post_roll() {
    let (out, _) = run(config(RecordMode::Events), 60, 90, &[notice(1, "instant", 30)]);
    let clips = written(&out);
    // Pre-roll from 25 s back to the keyframe at 24 s; post-roll to 40 s.
    assert_eq!(spans(&clips), [(24_000, 40_000)]);
    assert!(clips[0].event);
    assert_playable(&clips[0]);
}

#[test]
fn an_event_that_lasts_is_written_until_its_post_roll_ends() {
    let (out, _) = run(config(RecordMode::Events), 300, 90, &[notice(7, "start", 30), notice(7, "end", 45)]);
    assert_eq!(spans(&written(&out)), [(24_000, 55_000)]);
}

#[test]
fn overlapping_events_make_one_clip_and_separate_ones_two() {
    let (out, _) = run(config(RecordMode::Events), 300, 90, &[notice(1, "instant", 30), notice(2, "instant", 38)]);
    assert_eq!(spans(&written(&out)), [(24_000, 48_000)]);

    // 50 s: its pre-roll (45 s) begins after the first one's post-roll (40 s) ended.
    let (out, _) = run(config(RecordMode::Events), 300, 90, &[notice(1, "instant", 30), notice(2, "instant", 50)]);
    let clips = written(&out);
    assert_eq!(spans(&clips), [(24_000, 40_000), (44_000, 60_000)]);
    clips.iter().for_each(assert_playable);

    // A motion event going on keeps one clip open across doorbell presses.
    let notices = [notice(1, "start", 20), notice(2, "instant", 25), notice(1, "end", 60), notice(3, "instant", 65)];
    let (out, _) = run(config(RecordMode::Events), 300, 120, &notices);
    assert_eq!(spans(&written(&out)), [(14_000, 75_000)]);
}

#[test]
fn an_event_whose_pre_roll_reaches_a_finished_clip_continues_it() {
    // The first post-roll ends at 51 s; the second event's pre-roll starts at 48 s.
    let (out, _) = run(config(RecordMode::Events), 300, 90, &[notice(1, "instant", 41), notice(2, "instant", 53)]);
    let clips = written(&out);
    assert_eq!(spans(&clips), [(36_000, 63_000)]);
    assert_playable(&clips[0]);
}

#[test]
fn a_notice_heard_late_still_gets_its_whole_pre_roll() {
    // Motion is decided a little after it began: heard 1.5 s late, the pre-roll is still there.
    let (out, _) = run_heard_late(config(RecordMode::Events), 300, 90, &[notice(1, "instant", 30)], 1_500_000);
    assert_eq!(spans(&written(&out)), [(24_000, 40_000)]);
}

#[test]
fn event_clips_follow_the_recorders_clip_boundaries_contiguously() {
    // Recorder clips of 20 s; the event (33 s .. 48 s) spans the boundary at 40 s.
    let (out, _) = run(config(RecordMode::Events), 20, 90, &[notice(1, "instant", 38)]);
    let clips = written(&out);
    assert_eq!(spans(&clips), [(32_000, 40_000), (40_000, 48_000)]);
    clips.iter().for_each(assert_playable);

    // The pre-roll reaches back into the previous recorder clip.
    let (out, _) = run(config(RecordMode::Events), 20, 90, &[notice(1, "instant", 22)]);
    let clips = written(&out);
    assert_eq!(spans(&clips), [(16_000, 20_000), (20_000, 32_000)]);
    clips.iter().for_each(assert_playable);
}

#[test]
fn an_event_at_the_very_start_begins_at_the_first_keyframe() {
    let (out, _) = run(config(RecordMode::Events), 60, 30, &[notice(1, "instant", 1)]);
    assert_eq!(spans(&written(&out)), [(0, 11_000)]);
}

#[test]
fn the_recording_ends_with_the_camera_and_nothing_is_left_open() {
    // The stream ends during the event: the clip ends with it.
    let (out, _) = run(config(RecordMode::Events), 60, 35, &[notice(1, "start", 30)]);
    assert_eq!(spans(&written(&out)), [(24_000, 35_000)]);
}

#[test]
fn after_missed_notices_open_events_keep_recording() {
    let mut recorder = Recorder::new(300, None);
    let mut gate = Gate::new(config(RecordMode::Events));
    recorder.start_session(params(), None);
    let mut out = Vec::new();
    for index in 0..60 * FPS {
        recorder.push_video(frame(index)).unwrap();
        recorder.take_events().into_iter().for_each(|e| gate.push(e));
        if index == 20 * FPS {
            // The table says event 9 started at 18 s and goes on.
            gate.resync(&[(9, at(18))], at(20));
        }
        out.extend(std::iter::from_fn(|| gate.next_output()));
    }
    recorder.end_session("test over").unwrap();
    recorder.take_events().into_iter().for_each(|e| gate.push(e));
    gate.end_session();
    out.extend(std::iter::from_fn(|| gate.next_output()));
    // From 15 s (pre-roll of the resync) to the end of the stream: the event never ended.
    let clips = written(&out);
    assert_eq!(spans(&clips)[0].0, 14_000);
    assert!(spans(&clips)[0].1 >= 59_000);
}

#[test]
fn a_gap_empties_the_ring() {
    let mut recorder = Recorder::new(300, None);
    let mut gate = Gate::new(config(RecordMode::Events));
    recorder.start_session(params(), None);
    for index in 0..10 * FPS {
        recorder.push_video(frame(index)).unwrap();
    }
    recorder.end_session("camera went away").unwrap();
    recorder.take_events().into_iter().for_each(|e| gate.push(e));
    assert!(gate.ring_len().0 > 0);
    // Back 60 s later: the recorder notes the gap, and the old pre-roll is of no use.
    recorder.start_session(params(), None);
    let mut later = frame(0);
    later.received_us = at(70);
    recorder.push_video(later).unwrap();
    let mut next = frame(1);
    next.received_us = at(70) + S / FPS;
    recorder.push_video(next).unwrap();
    recorder.take_events().into_iter().for_each(|e| gate.push(e));
    assert_eq!(gate.ring_len().0, 0);
    assert!(matches!(gate.next_output(), Some(ClipEvent::Gap { .. })), "gaps reach the index");
}

#[test]
fn continuous_mode_passes_everything_unchanged() {
    let mut recorder = Recorder::new(20, None);
    recorder.start_session(params(), None);
    for index in 0..50 * FPS {
        recorder.push_video(frame(index)).unwrap();
    }
    recorder.end_session("test over").unwrap();
    let expected = recorder.take_events();
    let (out, _) = run(GateConfig::continuous(), 20, 50, &[notice(1, "instant", 30)]);
    assert_eq!(out, expected);
}

#[test]
fn both_mode_writes_everything_and_marks_what_holds_events() {
    let (out, _) = run(config(RecordMode::Both), 20, 90, &[notice(1, "instant", 50)]);
    let clips = written(&out);
    assert_eq!(spans(&clips), [(0, 20_000), (20_000, 40_000), (40_000, 60_000), (60_000, 80_000), (80_000, 90_000)]);
    let marked: Vec<bool> = clips.iter().map(|c| c.event).collect();
    // The clip holding 50 s .. 60 s; the pre-roll (45 s) is in the same clip.
    assert_eq!(marked, [false, false, true, false, false]);
    let marks: Vec<(i64, i64)> = out
        .iter()
        .filter_map(|e| match e {
            ClipEvent::MarkEvents { start_us, end_us } => Some(((start_us - T0) / 1000, (end_us - T0) / 1000)),
            _ => None,
        })
        .collect();
    assert_eq!(marks, [(45_000, 50_000)], "the pre-roll is marked after the fact");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the events, clips never overlap, each is playable from a keyframe at zero, each
    /// event's window is covered (as far as the stream reaches), and nothing far from an event
    /// is written.
    #[test]
    fn every_event_window_is_covered_and_little_else(
        instants in proptest::collection::vec(1i64..170, 0..6),
        lasting in proptest::collection::vec((1i64..150, 0i64..40), 0..3),
        clip_seconds in prop_oneof![Just(20u32), Just(60), Just(300)],
    ) {
        let mut notices = Vec::new();
        let mut windows = Vec::new();
        for (i, t) in instants.iter().enumerate() {
            notices.push(notice(i as i64, "instant", *t));
            windows.push((*t - 5, *t + 10));
        }
        for (i, (start, length)) in lasting.iter().enumerate() {
            let id = 100 + i as i64;
            notices.push(notice(id, "start", *start));
            notices.push(notice(id, "end", start + length));
            windows.push((start - 5, start + length + 10));
        }
        let seconds = 180;
        let (out, _) = run(config(RecordMode::Events), clip_seconds, seconds, &notices);
        let clips = written(&out);
        for clip in &clips {
            assert_playable(clip);
        }
        for pair in clips.windows(2) {
            prop_assert!(pair[0].end_us <= pair[1].start_us, "clips overlap: {:?}", spans(&clips));
        }
        let covered = |t: i64| clips.iter().any(|c| c.start_us <= at(t) && at(t) < c.end_us);
        for (from, to) in &windows {
            for second in (*from).max(0)..(*to).min(seconds) {
                prop_assert!(covered(second), "{second} s of window {from}..{to} missing: {:?}", spans(&clips));
            }
        }
        // Written: within a window, or up to one GOP before one (a clip starts at a keyframe).
        for clip in &clips {
            for second in (clip.start_us - T0) / S..(clip.end_us - T0) / S {
                prop_assert!(
                    windows.iter().any(|(from, to)| from - 2 <= second && second < *to),
                    "{second} s written far from any event: {:?} windows {windows:?}", spans(&clips)
                );
            }
        }
    }
}
