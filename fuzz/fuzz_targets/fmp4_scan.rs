//! The fMP4 reader behind recovery, `check`, playback and export: a clip's bytes, arbitrary
//! or a valid clip edited by the input, are scanned fragment by fragment, and every fragment
//! found is re-timed the way export and live view re-time them. Never a panic, never an
//! allocation beyond the input's own size.
#![no_main]

mod support;

use std::io::Cursor;

use hearth::mux::{self, FragmentScanner, ScanStep};

fn scan(bytes: &[u8]) {
    let _ = mux::summarize(Cursor::new(bytes));
    let Ok(mut scanner) = FragmentScanner::new(Cursor::new(bytes)) else { return };
    // What export does with the init segment: rebuild it from the tracks found.
    let tracks: Vec<_> = scanner.init().tracks.iter().filter_map(|t| t.to_track_config()).collect();
    if !tracks.is_empty() {
        let _ = mux::init_segment(&tracks);
    }
    let mut payload = Vec::new();
    for _ in 0..64 {
        match scanner.next_fragment_with_payload(&mut payload) {
            Ok(ScanStep::Fragment(fragment)) => {
                let offsets: Vec<(u32, u64)> = fragment.tracks.iter().map(|t| (t.track_id, 90_000)).collect();
                let _ = mux::shift_fragment_times(&fragment.moof_bytes, &offsets);
                let _ = fragment.mdat_header();
            }
            _ => break,
        }
    }
}

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    scan(input);
    thread_local!(static CLIP: Vec<u8> = support::clip(3));
    let edited = CLIP.with(|clip| support::edit(clip.clone(), input));
    scan(&edited);
});
