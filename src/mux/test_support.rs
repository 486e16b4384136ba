//! Helpers shared by the unit, property and ffprobe tests: plausible sample entries, sample
//! data that identifies where it came from, and a writer for whole streams.

use super::*;

pub fn wrap_box(fourcc: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(8 + body.len() as u32).to_be_bytes());
    out.extend_from_slice(fourcc);
    out.extend_from_slice(body);
    out
}

/// A VisualSampleEntry (`avc1`, `hvc1`, ...) with `children` (e.g. `avcC`) appended.
pub fn visual_sample_entry(fourcc: &[u8; 4], width: u16, height: u16, children: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&[0; 6]); // reserved
    body.extend_from_slice(&1u16.to_be_bytes()); // data reference index
    body.extend_from_slice(&[0; 16]); // pre_defined, reserved
    body.extend_from_slice(&width.to_be_bytes());
    body.extend_from_slice(&height.to_be_bytes());
    body.extend_from_slice(&0x0048_0000u32.to_be_bytes()); // 72 dpi
    body.extend_from_slice(&0x0048_0000u32.to_be_bytes());
    body.extend_from_slice(&[0; 4]); // reserved
    body.extend_from_slice(&1u16.to_be_bytes()); // frame count
    body.extend_from_slice(&[0; 32]); // compressor name
    body.extend_from_slice(&0x0018u16.to_be_bytes()); // depth
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(children);
    wrap_box(fourcc, &body)
}

/// An AudioSampleEntry (`mp4a`, ...) with `children` (e.g. `esds`) appended.
pub fn audio_sample_entry(fourcc: &[u8; 4], channels: u16, sample_rate: u16, children: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&[0; 6]); // reserved
    body.extend_from_slice(&1u16.to_be_bytes()); // data reference index
    body.extend_from_slice(&[0; 8]); // reserved
    body.extend_from_slice(&channels.to_be_bytes());
    body.extend_from_slice(&16u16.to_be_bytes()); // sample size
    body.extend_from_slice(&[0; 4]); // pre_defined, reserved
    body.extend_from_slice(&(u32::from(sample_rate) << 16).to_be_bytes());
    body.extend_from_slice(children);
    wrap_box(fourcc, &body)
}

pub fn video_config() -> TrackConfig {
    let avcc = wrap_box(b"avcC", &[1, 0x64, 0, 0x1e, 0xff, 0xe0, 0]);
    TrackConfig {
        kind: TrackKind::Video { width: 320, height: 240 },
        timescale: 90_000,
        sample_entry: visual_sample_entry(b"avc1", 320, 240, &avcc),
    }
}

pub fn audio_config() -> TrackConfig {
    TrackConfig {
        kind: TrackKind::Audio { channels: 2, sample_rate: 48_000 },
        timescale: 48_000,
        sample_entry: audio_sample_entry(b"mp4a", 2, 48_000, &wrap_box(b"esds", &[0; 8])),
    }
}

/// Sample data whose bytes depend on track, fragment and position, so a mixed-up slice shows.
pub fn sample_bytes(track_id: u32, sequence: u32, samples: &[Sample]) -> Vec<u8> {
    let len: usize = samples.iter().map(|sample| sample.size as usize).sum();
    let seed = track_id.wrapping_mul(101).wrapping_add(sequence.wrapping_mul(7));
    (0..len as u32).map(|i| i.wrapping_mul(31).wrapping_add(seed) as u8).collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRun {
    pub track_id: u32,
    pub base_decode_time: u64,
    pub samples: Vec<Sample>,
}

impl OwnedRun {
    pub fn borrow(&self) -> TrackRun<'_> {
        TrackRun { track_id: self.track_id, base_decode_time: self.base_decode_time, samples: &self.samples }
    }
}

/// Appends one fragment (headers, then payload) and returns its payload.
pub fn write_fragment(out: &mut Vec<u8>, sequence: u32, runs: &[OwnedRun]) -> Vec<u8> {
    let borrowed: Vec<TrackRun> = runs.iter().map(OwnedRun::borrow).collect();
    let payload: Vec<u8> = runs.iter().flat_map(|run| sample_bytes(run.track_id, sequence, &run.samples)).collect();
    out.extend_from_slice(&fragment(sequence, &borrowed, payload.len()).unwrap());
    out.extend_from_slice(&payload);
    payload
}

pub fn video_samples(count: usize, first_size: u32) -> Vec<Sample> {
    (0..count)
        .map(|i| Sample { duration: 3600, size: first_size + 3 * i as u32, is_sync: i == 0, composition_offset: 0 })
        .collect()
}

pub fn audio_samples(count: usize) -> Vec<Sample> {
    (0..count)
        .map(|i| Sample { duration: 1024, size: 6 + i as u32 % 3, is_sync: true, composition_offset: 0 })
        .collect()
}

/// Three small fragments covering the interesting shapes: two tracks, an empty audio run with
/// composition offsets on video, and video only.
pub fn small_fragments() -> Vec<Vec<OwnedRun>> {
    let mut shifted = video_samples(3, 9);
    shifted[1].composition_offset = 7200;
    shifted[2].composition_offset = -3600;
    vec![
        vec![
            OwnedRun { track_id: 1, base_decode_time: 0, samples: video_samples(5, 20) },
            OwnedRun { track_id: 2, base_decode_time: 0, samples: audio_samples(4) },
        ],
        vec![
            OwnedRun { track_id: 1, base_decode_time: 18_000, samples: shifted },
            OwnedRun { track_id: 2, base_decode_time: 4096, samples: vec![] },
        ],
        vec![OwnedRun { track_id: 1, base_decode_time: 28_800, samples: video_samples(2, 5) }],
    ]
}

/// A written stream and where its pieces are.
#[derive(Debug, Clone)]
pub struct TestStream {
    pub bytes: Vec<u8>,
    pub init_len: u64,
    pub fragments: Vec<Vec<OwnedRun>>,
    pub payloads: Vec<Vec<u8>>,
    /// `(start, end)` of every top-level unit after the init: fragments and free boxes.
    pub units: Vec<(u64, u64)>,
    /// `(start, end)` of each fragment alone.
    pub fragment_spans: Vec<(u64, u64)>,
}

/// Writes init + `fragments` (sequence numbers from 1), with a `free` box of `free_len` bytes
/// after the fragments whose index is in `free_after`.
pub fn write_stream(fragments: Vec<Vec<OwnedRun>>, free_after: &[usize], free_len: usize) -> TestStream {
    let mut bytes = init_segment(&[video_config(), audio_config()]).unwrap();
    let init_len = bytes.len() as u64;
    let mut payloads = Vec::new();
    let mut units = Vec::new();
    let mut fragment_spans = Vec::new();
    for (index, runs) in fragments.iter().enumerate() {
        let start = bytes.len() as u64;
        payloads.push(write_fragment(&mut bytes, index as u32 + 1, runs));
        units.push((start, bytes.len() as u64));
        fragment_spans.push((start, bytes.len() as u64));
        if free_after.contains(&index) {
            let start = bytes.len() as u64;
            bytes.extend_from_slice(&free_box(free_len).unwrap());
            units.push((start, bytes.len() as u64));
        }
    }
    TestStream { bytes, init_len, fragments, payloads, units, fragment_spans }
}

/// Fragments with their payloads, and the step that ended the scan.
pub type ScanResult = (Vec<(Fragment, Vec<u8>)>, ScanStep);

/// Scans `bytes` to the end, collecting fragments with payloads and the final step.
pub fn scan_all(bytes: &[u8]) -> Result<ScanResult, MuxError> {
    let mut scanner = FragmentScanner::new(bytes)?;
    let mut fragments = Vec::new();
    loop {
        let mut payload = Vec::new();
        match scanner.next_fragment_with_payload(&mut payload)? {
            ScanStep::Fragment(fragment) => fragments.push((fragment, payload)),
            last => return Ok((fragments, last)),
        }
    }
}

/// Checks a scanned fragment against what was written, field by field.
pub fn assert_fragment_matches(fragment: &Fragment, payload: &[u8], sequence: u32, runs: &[OwnedRun], written: &[u8]) {
    assert_eq!(fragment.sequence_number, sequence);
    assert_eq!(fragment.tracks.len(), runs.len());
    assert_eq!(fragment.mdat_payload_len, payload.len() as u64);
    for (traf, run) in fragment.tracks.iter().zip(runs) {
        assert_eq!(traf.track_id, run.track_id);
        assert_eq!(traf.base_decode_time, run.base_decode_time);
        assert_eq!(traf.samples, run.samples);
        let start = traf.payload_offset as usize;
        let expected = sample_bytes(run.track_id, sequence, &run.samples);
        assert_eq!(&payload[start..start + expected.len()], &expected[..]);
    }
    let start = fragment.offset as usize;
    let headers_len = fragment.moof_bytes.len() + fragment.mdat_header_len as usize;
    assert_eq!(&written[start..start + fragment.moof_bytes.len()], &fragment.moof_bytes[..]);
    assert_eq!(&written[start + fragment.moof_bytes.len()..start + headers_len], &fragment.mdat_header()[..]);
}
