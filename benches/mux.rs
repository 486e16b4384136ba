//! The muxer: building one fragment per second of 1080p video, as the recorder does for every
//! camera, and the init segment written at each clip start.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

use hearth::mux::{self, Sample, TrackConfig, TrackKind, TrackRun};

mod common;

/// 1 s at 25 fps, a keyframe every 2 s: one key and 24 predicted frames.
const FPS: usize = 25;
/// ~4 Mbit/s: 500 kB a second, a keyframe ten times the size of a predicted frame.
const KEYFRAME_BYTES: u32 = 150_000;
const FRAME_BYTES: u32 = 14_500;

fn samples() -> Vec<Sample> {
    (0..FPS)
        .map(|i| Sample {
            duration: 3600,
            size: if i == 0 { KEYFRAME_BYTES } else { FRAME_BYTES },
            is_sync: i == 0,
            composition_offset: 0,
        })
        .collect()
}

fn bench_fragment(c: &mut Criterion) {
    let samples = samples();
    let payload_len: usize = samples.iter().map(|s| s.size as usize).sum();
    let payload = vec![0x5a_u8; payload_len];
    let mut group = c.benchmark_group("mux");

    // Just the headers (moof + mdat header): what mux::fragment itself does.
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("fragment_header", "1s_1080p_25fps"), |b| {
        let mut seq = 0u32;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let run = TrackRun { track_id: 1, base_decode_time: u64::from(seq) * 90_000, samples: &samples };
            black_box(mux::fragment(seq, &[run], payload_len).unwrap())
        })
    });

    // Headers plus appending the sample bytes into one buffer, as the recorder assembles a
    // fragment before handing it to the writer: bytes of video per second of CPU.
    group.throughput(Throughput::Bytes(payload_len as u64));
    group.bench_function(BenchmarkId::new("fragment_with_payload", "1s_1080p_25fps"), |b| {
        let mut seq = 0u32;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let run = TrackRun { track_id: 1, base_decode_time: u64::from(seq) * 90_000, samples: &samples };
            let mut out = mux::fragment(seq, &[run], payload_len).unwrap();
            out.reserve(payload_len);
            let mut offset = 0;
            for s in &samples {
                out.extend_from_slice(&payload[offset..offset + s.size as usize]);
                offset += s.size as usize;
            }
            black_box(out)
        })
    });

    group.throughput(Throughput::Elements(1));
    let entry = fake_avc1_entry();
    group.bench_function("init_segment", |b| {
        b.iter(|| {
            let track = TrackConfig {
                kind: TrackKind::Video { width: 1920, height: 1080 },
                timescale: 90_000,
                sample_entry: entry.clone(),
            };
            black_box(mux::init_segment(&[track]).unwrap())
        })
    });
    group.finish();
}

/// A sample entry is embedded verbatim; the muxer checks only that it is one complete box.
fn fake_avc1_entry() -> Vec<u8> {
    let mut entry = vec![0u8; 120];
    entry[..4].copy_from_slice(&120u32.to_be_bytes());
    entry[4..8].copy_from_slice(b"avc1");
    entry
}

criterion_group! { name = benches; config = common::config(); targets = bench_fragment }
criterion_main!(benches);
