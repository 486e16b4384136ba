//! Shared by the fuzz targets: a valid clip to mutate, so the fuzzer starts deep inside the
//! formats instead of having to discover MP4 box structure (or age's) from nothing.
#![allow(dead_code)]

use hearth::mux::{self, Sample, TrackConfig, TrackKind, TrackRun};

/// An fMP4 clip as hearth writes it: init segment and `fragments` one-second fragments of
/// 25 frames (keyframe first), with recognisable payload bytes.
pub fn clip(fragments: u32) -> Vec<u8> {
    let mut entry = vec![0, 0, 0, 16];
    entry.extend_from_slice(b"avc1");
    entry.extend_from_slice(&[0; 8]);
    let track = TrackConfig { kind: TrackKind::Video { width: 320, height: 180 }, timescale: 90_000, sample_entry: entry };
    let mut out = mux::init_segment(&[track]).expect("init segment");
    for n in 0..fragments {
        let samples: Vec<Sample> = (0..25)
            .map(|i| Sample { duration: 3600, size: 40 + i, is_sync: i == 0, composition_offset: 0 })
            .collect();
        let payload_len: usize = samples.iter().map(|s| s.size as usize).sum();
        let runs = [TrackRun { track_id: 1, base_decode_time: u64::from(n) * 90_000, samples: &samples }];
        out.extend(mux::fragment(n + 1, &runs, payload_len).expect("fragment"));
        out.extend(std::iter::repeat_n(n as u8, payload_len));
    }
    out
}

/// Applies an edit script to `bytes`: each 4-byte instruction `[op, pos_hi, pos_lo, value]`
/// overwrites, inserts or deletes a byte, or truncates, at `pos` (modulo the length).
pub fn edit(mut bytes: Vec<u8>, script: &[u8]) -> Vec<u8> {
    for ins in script.chunks_exact(4) {
        if bytes.is_empty() {
            break;
        }
        let pos = usize::from(u16::from_be_bytes([ins[1], ins[2]])) * 7 % bytes.len();
        match ins[0] % 4 {
            0 => bytes[pos] = ins[3],
            1 => bytes.insert(pos, ins[3]),
            2 => {
                bytes.remove(pos);
            }
            _ => bytes.truncate(pos),
        }
    }
    bytes
}
