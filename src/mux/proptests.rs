//! Property tests: the reader never panics on any bytes, and whatever the writer writes, the
//! reader reads back exactly, whole or cut at any byte.

use proptest::prelude::*;

use super::test_support::*;
use super::*;

fn sample_strategy(is_video: bool) -> impl Strategy<Value = Sample> {
    let offset = prop_oneof![3 => Just(0i32), 1 => any::<i32>()];
    (any::<u32>(), 0u32..300, any::<bool>(), offset).prop_map(move |(duration, size, is_sync, offset)| Sample {
        duration,
        size,
        is_sync: is_sync || !is_video,
        composition_offset: if is_video { offset } else { 0 },
    })
}

fn run_strategy(track_id: u32) -> impl Strategy<Value = OwnedRun> {
    let max_samples = if track_id == 1 { 12 } else { 8 };
    (any::<u64>(), prop::collection::vec(sample_strategy(track_id == 1), 0..max_samples))
        .prop_map(move |(base_decode_time, samples)| OwnedRun { track_id, base_decode_time, samples })
}

/// A fragment with a video run, an audio run, or both in either order.
fn fragment_strategy() -> impl Strategy<Value = Vec<OwnedRun>> {
    prop_oneof![
        run_strategy(1).prop_map(|video| vec![video]),
        run_strategy(2).prop_map(|audio| vec![audio]),
        (run_strategy(1), run_strategy(2)).prop_map(|(video, audio)| vec![video, audio]),
        (run_strategy(1), run_strategy(2)).prop_map(|(video, audio)| vec![audio, video]),
    ]
}

fn stream_strategy() -> impl Strategy<Value = TestStream> {
    (prop::collection::vec(fragment_strategy(), 0..5), prop::collection::vec(0usize..5, 0..3), 8usize..40)
        .prop_map(|(fragments, free_after, free_len)| write_stream(fragments, &free_after, free_len))
}

/// Scans to the end whatever happens; the property is only that it returns.
fn scan_everything(bytes: &[u8]) {
    let Ok(mut scanner) = FragmentScanner::new(bytes) else {
        return;
    };
    let mut payload = Vec::new();
    while let Ok(ScanStep::Fragment(fragment)) = scanner.next_fragment_with_payload(&mut payload) {
        let _ = rewrite_fragment_header(&fragment.moof_bytes, 1, &[(1, 2), (2, 3)]);
        let _ = crate::mux::shift_fragment_times(&fragment.moof_bytes, &[(1, u64::MAX), (2, 3)]);
    }
    let _ = summarize(bytes);
}

fn valid_init() -> Vec<u8> {
    init_segment(&[video_config(), audio_config()]).unwrap()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        scan_everything(&bytes);
        let _ = rewrite_fragment_header(&bytes, 1, &[(1, 2)]);
        let _ = crate::mux::shift_fragment_times(&bytes, &[(1, 2)]);
    }

    #[test]
    fn a_valid_init_then_arbitrary_bytes_never_panics(tail in prop::collection::vec(any::<u8>(), 0..600)) {
        scan_everything(&[valid_init(), tail].concat());
    }

    /// Arbitrary bytes rarely get past the first box header; corrupting a valid stream
    /// reaches every parser.
    #[test]
    fn a_corrupted_stream_never_panics(
        stream in stream_strategy(),
        corruptions in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = stream.bytes;
        for (index, value) in corruptions {
            let at = index.index(bytes.len());
            bytes[at] = value;
        }
        scan_everything(&bytes);
    }

    #[test]
    fn a_corrupted_moof_never_panics_the_rewriter(
        stream in stream_strategy(),
        corruptions in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        for (start, end) in &stream.fragment_spans {
            let fragment = &stream.bytes[*start as usize..*end as usize];
            let moof_len = u32::from_be_bytes([fragment[0], fragment[1], fragment[2], fragment[3]]) as usize;
            let mut moof = fragment[..moof_len].to_vec();
            for (index, value) in &corruptions {
                let at = index.index(moof.len());
                moof[at] = *value;
            }
            let _ = rewrite_fragment_header(&moof, 9, &[(1, u64::MAX), (2, 0)]);
        }
    }

    #[test]
    fn what_is_written_reads_back_exactly(stream in stream_strategy()) {
        let (fragments, last) = scan_all(&stream.bytes).unwrap();
        prop_assert_eq!(last, ScanStep::End);
        prop_assert_eq!(fragments.len(), stream.fragments.len());
        for (index, (fragment, payload)) in fragments.iter().enumerate() {
            prop_assert_eq!(payload, &stream.payloads[index]);
            assert_fragment_matches(fragment, payload, index as u32 + 1, &stream.fragments[index], &stream.bytes);
        }
        let summary = summarize(&stream.bytes[..]).unwrap();
        prop_assert_eq!(summary.fragment_count, stream.fragments.len() as u64);
        for track in &summary.tracks {
            let samples = stream.fragments.iter().flatten()
                .filter(|run| run.track_id == track.track_id)
                .flat_map(|run| &run.samples);
            prop_assert_eq!(track.sample_count, samples.clone().count() as u64);
            prop_assert_eq!(track.sync_sample_count, samples.clone().filter(|s| s.is_sync).count() as u64);
            prop_assert_eq!(track.total_duration, samples.map(|s| u64::from(s.duration)).sum::<u64>());
        }
    }

    #[test]
    fn a_cut_anywhere_keeps_exactly_the_complete_fragments(
        stream in stream_strategy(),
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = stream.init_len as usize + cut.index(stream.bytes.len() - stream.init_len as usize + 1);
        let (fragments, last) = scan_all(&stream.bytes[..cut]).unwrap();
        let complete = stream.fragment_spans.iter().filter(|(_, end)| *end as usize <= cut).count();
        prop_assert_eq!(fragments.len(), complete);
        for (index, (fragment, payload)) in fragments.iter().enumerate() {
            assert_fragment_matches(fragment, payload, index as u32 + 1, &stream.fragments[index], &stream.bytes);
        }
        let cut = cut as u64;
        match stream.units.iter().find(|(start, end)| *start < cut && cut < *end) {
            Some(&(start, _)) => prop_assert_eq!(last, ScanStep::Truncated { at: start }),
            None => prop_assert_eq!(last, ScanStep::End),
        }
    }
}
