//! Helper for `make bench` (scripts/bench*.py): the pieces of the whole-process benchmarks that
//! need hearth's library rather than its CLI. Not installed, not part of hearth.
//!
//! ```text
//! bench_helper encrypt RECIPIENT IN OUT      age-encrypt IN to OUT with crypto::EncryptingFile
//! bench_helper make-clip CONFIG CAMERA MB    record a synthetic MB-megabyte clip with ClipWriter
//!                                            into CONFIG's data dir and index; prints its id
//! bench_helper cameras COUNT WIDTH HEIGHT BITRATE SECONDS
//!                                            COUNT demo cameras (64 clients each) sharing one
//!                                            encoded loop; prints `serving URL` per camera and
//!                                            runs until SIGTERM/SIGINT or EOF on stdin
//! ```

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use hearth::clip::ClipWriter;
use hearth::config::Config;
use hearth::crypto::{EncryptingFile, Recipient};
use hearth::db::Index;
use hearth::mux::{self, Sample, TrackConfig, TrackKind, TrackRun};
use hearth::recorder::{ClipEvent, ClipProgress};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["encrypt", recipient, input, output] => encrypt(recipient, Path::new(input), Path::new(output)),
        ["make-clip", config, camera, mb] => make_clip(Path::new(config), camera, mb.parse()?),
        ["cameras", count, width, height, bitrate, seconds] => tokio::runtime::Runtime::new()?.block_on(cameras(
            count.parse()?,
            width.parse()?,
            height.parse()?,
            bitrate.parse()?,
            seconds.parse()?,
        )),
        _ => bail!("usage: see the doc comment of examples/bench_helper.rs"),
    }
}

/// What the clip writer does per byte, minus the recorder: age STREAM encryption to a file,
/// fed in fragment-sized writes, finished with an fsync.
fn encrypt(recipient: &str, input: &Path, output: &Path) -> Result<()> {
    let recipient = Recipient::parse(recipient)?;
    let mut reader = std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let mut file = EncryptingFile::create(output, &recipient)?;
    let mut buf = vec![0u8; 512 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])?;
    }
    file.finish()?;
    Ok(())
}

/// One-second fragments of 25 frames (a keyframe every 2 s) at ~4 Mbit/s, with noise for
/// payload: the player is never asked to decode it, only to move its bytes.
fn make_clip(config_path: &Path, camera: &str, megabytes: u64) -> Result<()> {
    let config = Config::load(config_path)?;
    let index = Arc::new(Index::open(&config.db_path())?);
    let recipient = Recipient::parse(&config.crypto.recipient)?;
    let mut writer =
        ClipWriter::new(camera, &config.data_dir, index, recipient, config.storage.flush_seconds, Arc::new(|| false));
    let mut entry = vec![0u8; 120];
    entry[..4].copy_from_slice(&120u32.to_be_bytes());
    entry[4..8].copy_from_slice(b"avc1");
    let init_segment = mux::init_segment(&[TrackConfig {
        kind: TrackKind::Video { width: 1920, height: 1080 },
        timescale: 90_000,
        sample_entry: entry,
    }])?;
    let start_us = hearth::time::now_us() - 3_600_000_000;
    writer.handle(ClipEvent::Start {
        start_us,
        codec: "avc1.640028".to_owned(),
        width: 1920,
        height: 1080,
        has_audio: false,
        init_segment,
        event: false,
    })?;
    let mut noise = vec![0u8; 520_000];
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    for byte in noise.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    let mut progress = ClipProgress { duration_90k: 0, frames: 0, keyframes: 0, end_us: start_us };
    let mut written = 0u64;
    let mut seq = 0u32;
    while written < megabytes * 1_000_000 {
        let samples: Vec<Sample> = (0..25)
            .map(|i| Sample {
                duration: 3600,
                size: if i == 0 { 160_000 } else { 15_000 },
                is_sync: i == 0 && seq % 2 == 0,
                composition_offset: 0,
            })
            .collect();
        let payload_len: usize = samples.iter().map(|s| s.size as usize).sum();
        let run = TrackRun { track_id: 1, base_decode_time: u64::from(seq) * 90_000, samples: &samples };
        let mut bytes = mux::fragment(seq + 1, &[run], payload_len)?;
        bytes.extend_from_slice(&noise[..payload_len]);
        written += bytes.len() as u64;
        seq += 1;
        progress.duration_90k += 90_000;
        progress.frames += 25;
        progress.keyframes += i64::from(seq % 2);
        progress.end_us = start_us + progress.duration_90k * 100 / 9;
        writer.handle(ClipEvent::Fragment {
            bytes,
            progress: progress.clone(),
            keyframe: true,
            live_offsets: vec![],
            starts_at: vec![],
            event: false,
        })?;
    }
    let closed = writer.handle(ClipEvent::End { progress })?.context("the clip did not close")?;
    println!("{} {}", closed.id, closed.bytes);
    Ok(())
}

async fn cameras(count: usize, width: u32, height: u32, bitrate: u64, seconds: u32) -> Result<()> {
    use hearth::demo::{encode_pattern, DemoCamera, DemoOptions, PatternOptions};
    use std::io::Write as _;
    let pattern = PatternOptions { width, height, seconds, bitrate, ..PatternOptions::default() };
    let encoded = encode_pattern(pattern).await?;
    let mut running = Vec::new();
    for _ in 0..count {
        let camera =
            DemoCamera::start_with_loop("127.0.0.1:0".parse()?, DemoOptions::default(), encoded.clone()).await?;
        println!("serving {}", camera.url());
        running.push(camera);
    }
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stdin_eof = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    });
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = stdin_eof => {}
    }
    for camera in running {
        camera.shutdown().await;
    }
    // The stdin reader is still blocked: leave without waiting for it.
    std::process::exit(0)
}
