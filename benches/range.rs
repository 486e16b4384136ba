//! Range math and ranged reads: parsing `Range` headers, and the in-process cost of serving
//! the first 256 KiB of a range at 1 %, 50 % and 99 % of a 100 MiB age-encrypted clip (the
//! decrypting reader seeks by 64 KiB age chunk, so this must not grow with the offset).

use std::io::{Cursor, Write as _};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;

use hearth::playback::range::{parse_range, ByteRange};
use hearth::playback::{ClipBody, CHUNK_LEN};

mod common;

const CLIP_LEN: u64 = 100 * 1024 * 1024;

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("range");
    for (name, header) in [
        ("open_ended", "bytes=52428800-"),
        ("bounded", "bytes=0-1048575"),
        ("suffix", "bytes=-65536"),
        ("coalesced_3", "bytes=0-99, 100-199, 150-4095"),
    ] {
        group.bench_with_input(BenchmarkId::new("parse", name), header, |b, header| {
            b.iter(|| black_box(parse_range(black_box(header), CLIP_LEN)))
        });
    }
    group.finish();
}

/// 100 MiB of plaintext encrypted with age to a fresh X25519 key, in memory.
fn encrypted_clip(len: u64) -> (Vec<u8>, age::x25519::Identity) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient)).expect("one recipient");
    let mut out = Vec::with_capacity(len as usize + len as usize / 1000 + 1024);
    let mut writer = encryptor.wrap_output(&mut out).unwrap();
    let block = vec![0x42u8; 1024 * 1024];
    for _ in 0..len / block.len() as u64 {
        writer.write_all(&block).unwrap();
    }
    writer.finish().unwrap();
    (out, identity)
}

fn bench_ranged_read(c: &mut Criterion) {
    // Under `cargo test` (a check that the bench works), a 4 MiB clip.
    let len = if common::measuring() { CLIP_LEN } else { 4 * 1024 * 1024 };
    let (ciphertext, identity) = encrypted_clip(len);
    let mut group = c.benchmark_group("range");
    for percent in [1u64, 50, 99] {
        let start = len * percent / 100;
        // Open (header + last-chunk authentication, as every request does), seek, first chunk.
        group.bench_function(BenchmarkId::new("first_chunk_at", format!("{percent}pct")), |b| {
            b.iter(|| {
                let decryptor = age::Decryptor::new(Cursor::new(&ciphertext[..])).unwrap();
                let reader = decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity)).unwrap();
                let body = ClipBody::from_reader(reader).unwrap();
                let range = ByteRange::new(start, body.len() - 1).unwrap();
                black_box(body.read_range(range, CHUNK_LEN).next().unwrap().unwrap())
            })
        });
    }
    group.finish();
}

criterion_group! { name = benches; config = common::config(); targets = bench_parse, bench_ranged_read }
criterion_main!(benches);
