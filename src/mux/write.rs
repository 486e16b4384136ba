//! The writer: init segments, fragment headers, and `free` padding boxes.

use super::boxes::{write_box, write_full_box, PutBigEndian, LARGE_HEADER_LEN, MIN_BOX_LEN};
use super::{MuxError, Sample, TrackConfig, TrackKind, TrackRun, NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS};

/// The movie timescale only scales `mvhd`/`tkhd` durations, which are all 0 when fragmented.
const MOVIE_TIMESCALE: u32 = 1000;
/// `und` (undetermined) packed as three 5-bit letters, each minus 0x60.
const LANGUAGE_UND: u16 = (((b'u' - 0x60) as u16) << 10) | (((b'n' - 0x60) as u16) << 5) | (b'd' - 0x60) as u16;
/// The identity transform, in 16.16 and 2.30 fixed point.
const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

const TKHD_ENABLED_IN_MOVIE: u32 = 0x000003;
const VMHD_NO_LEAN_AHEAD: u32 = 0x000001;
const URL_SELF_CONTAINED: u32 = 0x000001;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x020000;
const TRUN_DATA_OFFSET: u32 = 0x000001;
const TRUN_SAMPLE_DURATION: u32 = 0x000100;
const TRUN_SAMPLE_SIZE: u32 = 0x000200;
const TRUN_SAMPLE_FLAGS: u32 = 0x000400;
const TRUN_COMPOSITION_OFFSET: u32 = 0x000800;

/// Builds `ftyp` + `moov` for the given tracks (ids 1, 2, ... in order). All durations are 0
/// and the sample tables empty: the samples live in fragments.
pub fn init_segment(tracks: &[TrackConfig]) -> Result<Vec<u8>, MuxError> {
    if tracks.is_empty() {
        return Err(MuxError::NoTracks);
    }
    let track_ids = (1..).take(tracks.len()).collect::<Vec<u32>>();
    for (track, &track_id) in tracks.iter().zip(&track_ids) {
        validate_track(track_id, track)?;
    }
    let entries_len: usize = tracks.iter().map(|track| track.sample_entry.len()).sum();
    let mut out = Vec::with_capacity(1024 + entries_len);
    write_ftyp(&mut out)?;
    write_box(&mut out, b"moov", |out| {
        let next_track_id = u32::try_from(tracks.len() + 1).map_err(|_| MuxError::TooLarge { what: "track count" })?;
        write_mvhd(out, next_track_id)?;
        for (track, &track_id) in tracks.iter().zip(&track_ids) {
            write_trak(out, track_id, track)?;
        }
        write_box(out, b"mvex", |out| track_ids.iter().try_for_each(|&track_id| write_trex(out, track_id)))
    })?;
    Ok(out)
}

fn validate_track(track_id: u32, track: &TrackConfig) -> Result<(), MuxError> {
    let invalid = |what: &str| MuxError::InvalidTrack { track_id, what: what.to_owned() };
    if track.timescale == 0 {
        return Err(invalid("timescale is 0"));
    }
    // The entry is embedded verbatim, so a wrong size would desynchronise every reader.
    let entry = &track.sample_entry;
    let declared = entry.get(..4).map(|size| u32::from_be_bytes([size[0], size[1], size[2], size[3]]));
    if entry.len() < MIN_BOX_LEN as usize || declared.map(|size| size as usize) != Some(entry.len()) {
        return Err(invalid("sample entry is not a single complete box"));
    }
    Ok(())
}

fn write_ftyp(out: &mut Vec<u8>) -> Result<(), MuxError> {
    write_box(out, b"ftyp", |out| {
        out.extend_from_slice(b"isom");
        out.put_u32(0x200); // minor version, as ffmpeg writes it
        for brand in [b"isom", b"iso6", b"avc1", b"mp41"] {
            out.extend_from_slice(brand);
        }
        Ok(())
    })
}

fn write_matrix(out: &mut Vec<u8>) {
    UNITY_MATRIX.iter().for_each(|&value| out.put_u32(value));
}

fn write_mvhd(out: &mut Vec<u8>, next_track_id: u32) -> Result<(), MuxError> {
    write_full_box(out, b"mvhd", 0, 0, |out| {
        out.put_u32(0); // creation time: unknown, and a timestamp would leak nothing useful
        out.put_u32(0); // modification time
        out.put_u32(MOVIE_TIMESCALE);
        out.put_u32(0); // duration: fragmented
        out.put_u32(0x0001_0000); // rate 1.0
        out.put_u16(0x0100); // volume 1.0
        out.put_zeros(2 + 8); // reserved
        write_matrix(out);
        out.put_zeros(24); // pre_defined
        out.put_u32(next_track_id);
        Ok(())
    })
}

fn write_trak(out: &mut Vec<u8>, track_id: u32, track: &TrackConfig) -> Result<(), MuxError> {
    write_box(out, b"trak", |out| {
        write_tkhd(out, track_id, &track.kind)?;
        write_box(out, b"mdia", |out| {
            write_mdhd(out, track.timescale)?;
            write_hdlr(out, &track.kind)?;
            write_minf(out, track)
        })
    })
}

fn write_tkhd(out: &mut Vec<u8>, track_id: u32, kind: &TrackKind) -> Result<(), MuxError> {
    let (volume, width, height) = match *kind {
        TrackKind::Video { width, height } => (0, width, height),
        TrackKind::Audio { .. } => (0x0100, 0, 0),
    };
    write_full_box(out, b"tkhd", 0, TKHD_ENABLED_IN_MOVIE, |out| {
        out.put_u32(0); // creation time
        out.put_u32(0); // modification time
        out.put_u32(track_id);
        out.put_u32(0); // reserved
        out.put_u32(0); // duration: fragmented
        out.put_zeros(8); // reserved
        out.put_u16(0); // layer
        out.put_u16(0); // alternate group
        out.put_u16(volume);
        out.put_u16(0); // reserved
        write_matrix(out);
        out.put_u32(u32::from(width) << 16); // 16.16 fixed point
        out.put_u32(u32::from(height) << 16);
        Ok(())
    })
}

fn write_mdhd(out: &mut Vec<u8>, timescale: u32) -> Result<(), MuxError> {
    write_full_box(out, b"mdhd", 0, 0, |out| {
        out.put_u32(0); // creation time
        out.put_u32(0); // modification time
        out.put_u32(timescale);
        out.put_u32(0); // duration: fragmented
        out.put_u16(LANGUAGE_UND);
        out.put_u16(0); // pre_defined
        Ok(())
    })
}

fn write_hdlr(out: &mut Vec<u8>, kind: &TrackKind) -> Result<(), MuxError> {
    let (handler, name): (&[u8; 4], &[u8]) = match kind {
        TrackKind::Video { .. } => (b"vide", b"hearth video\0"),
        TrackKind::Audio { .. } => (b"soun", b"hearth audio\0"),
    };
    write_full_box(out, b"hdlr", 0, 0, |out| {
        out.put_u32(0); // pre_defined
        out.extend_from_slice(handler);
        out.put_zeros(12); // reserved
        out.extend_from_slice(name);
        Ok(())
    })
}

fn write_minf(out: &mut Vec<u8>, track: &TrackConfig) -> Result<(), MuxError> {
    write_box(out, b"minf", |out| {
        match track.kind {
            TrackKind::Video { .. } => write_full_box(out, b"vmhd", 0, VMHD_NO_LEAN_AHEAD, |out| {
                out.put_zeros(2 + 6); // graphics mode copy, opcolor
                Ok(())
            })?,
            TrackKind::Audio { .. } => write_full_box(out, b"smhd", 0, 0, |out| {
                out.put_zeros(2 + 2); // balance centred, reserved
                Ok(())
            })?,
        }
        write_dinf(out)?;
        write_stbl(out, &track.sample_entry)
    })
}

/// A single data reference saying "the samples are in this file".
fn write_dinf(out: &mut Vec<u8>) -> Result<(), MuxError> {
    write_box(out, b"dinf", |out| {
        write_full_box(out, b"dref", 0, 0, |out| {
            out.put_u32(1); // entry count
            write_full_box(out, b"url ", 0, URL_SELF_CONTAINED, |_| Ok(()))
        })
    })
}

/// The sample description plus the mandatory but empty sample tables.
fn write_stbl(out: &mut Vec<u8>, sample_entry: &[u8]) -> Result<(), MuxError> {
    write_box(out, b"stbl", |out| {
        write_full_box(out, b"stsd", 0, 0, |out| {
            out.put_u32(1); // entry count
            out.extend_from_slice(sample_entry);
            Ok(())
        })?;
        for table in [b"stts", b"stsc", b"stco"] {
            write_full_box(out, table, 0, 0, |out| {
                out.put_u32(0); // entry count
                Ok(())
            })?;
        }
        write_full_box(out, b"stsz", 0, 0, |out| {
            out.put_u32(0); // sample size: varies
            out.put_u32(0); // sample count
            Ok(())
        })
    })
}

fn write_trex(out: &mut Vec<u8>, track_id: u32) -> Result<(), MuxError> {
    write_full_box(out, b"trex", 0, 0, |out| {
        out.put_u32(track_id);
        out.put_u32(1); // sample description index
        out.put_zeros(12); // default duration, size and flags: every trun carries its own
        Ok(())
    })
}

/// Builds one fragment's headers: the `moof` followed by the `mdat` header. The caller then
/// writes exactly `payload_len` bytes: track 1's samples, then the next run's, in `runs` order.
pub fn fragment(sequence_number: u32, runs: &[TrackRun], payload_len: usize) -> Result<Vec<u8>, MuxError> {
    validate_runs(runs, payload_len)?;
    let sample_count: usize = runs.iter().map(|run| run.samples.len()).sum();
    let mut out = Vec::with_capacity(64 + runs.len() * 80 + sample_count * 16);
    let mut data_offset_fields = Vec::with_capacity(runs.len());
    write_box(&mut out, b"moof", |out| {
        write_full_box(out, b"mfhd", 0, 0, |out| {
            out.put_u32(sequence_number);
            Ok(())
        })?;
        for run in runs {
            data_offset_fields.push(write_traf(out, run)?);
        }
        Ok(())
    })?;
    let mdat_header = mdat_header(payload_len as u64)?;
    patch_data_offsets(&mut out, &data_offset_fields, runs, mdat_header.len())?;
    out.extend_from_slice(&mdat_header);
    Ok(out)
}

/// Catches caller bugs that would otherwise produce a file no player can make sense of.
fn validate_runs(runs: &[TrackRun], payload_len: usize) -> Result<(), MuxError> {
    if runs.is_empty() {
        return Err(MuxError::InvalidFragment("a fragment needs at least one track run".into()));
    }
    for (index, run) in runs.iter().enumerate() {
        if run.track_id == 0 {
            return Err(MuxError::InvalidFragment("track ids start at 1".into()));
        }
        if runs[..index].iter().any(|earlier| earlier.track_id == run.track_id) {
            return Err(MuxError::InvalidFragment(format!("track {} has two runs", run.track_id)));
        }
    }
    let samples_len: u64 = runs.iter().map(run_payload_len).sum();
    if samples_len != payload_len as u64 {
        return Err(MuxError::InvalidFragment(format!(
            "sample sizes add up to {samples_len} bytes but the payload is {payload_len}"
        )));
    }
    Ok(())
}

fn run_payload_len(run: &TrackRun) -> u64 {
    run.samples.iter().map(|sample| u64::from(sample.size)).sum()
}

/// Writes a `traf` and returns the position of its `trun` data offset, which can only be
/// filled in once the `moof`'s total length is known.
fn write_traf(out: &mut Vec<u8>, run: &TrackRun) -> Result<usize, MuxError> {
    let mut data_offset_field = 0;
    write_box(out, b"traf", |out| {
        write_full_box(out, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |out| {
            out.put_u32(run.track_id);
            Ok(())
        })?;
        write_full_box(out, b"tfdt", 1, 0, |out| {
            out.put_u64(run.base_decode_time);
            Ok(())
        })?;
        data_offset_field = write_trun(out, run.samples)?;
        Ok(())
    })?;
    Ok(data_offset_field)
}

fn write_trun(out: &mut Vec<u8>, samples: &[Sample]) -> Result<usize, MuxError> {
    // Version 1 (signed offsets) only when needed, so plain streams stay maximally compatible.
    let has_offsets = samples.iter().any(|sample| sample.composition_offset != 0);
    let (version, offset_flag) = if has_offsets { (1, TRUN_COMPOSITION_OFFSET) } else { (0, 0) };
    let flags = TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE | TRUN_SAMPLE_FLAGS | offset_flag;
    let sample_count = u32::try_from(samples.len()).map_err(|_| MuxError::TooLarge { what: "trun sample count" })?;
    let mut data_offset_field = 0;
    write_full_box(out, b"trun", version, flags, |out| {
        out.put_u32(sample_count);
        data_offset_field = out.len();
        out.put_u32(0); // data offset, patched by patch_data_offsets
        for sample in samples {
            out.put_u32(sample.duration);
            out.put_u32(sample.size);
            out.put_u32(if sample.is_sync { SYNC_SAMPLE_FLAGS } else { NON_SYNC_SAMPLE_FLAGS });
            if has_offsets {
                out.extend_from_slice(&sample.composition_offset.to_be_bytes());
            }
        }
        Ok(())
    })?;
    Ok(data_offset_field)
}

/// Points each `trun` at its run's first byte: data offsets count from the start of the `moof`
/// (default-base-is-moof), and runs follow each other in the `mdat` in `runs` order.
fn patch_data_offsets(
    moof: &mut [u8],
    data_offset_fields: &[usize],
    runs: &[TrackRun],
    mdat_header_len: usize,
) -> Result<(), MuxError> {
    let mut run_start = (moof.len() + mdat_header_len) as u64;
    for (&field, run) in data_offset_fields.iter().zip(runs) {
        let data_offset = i32::try_from(run_start).map_err(|_| MuxError::TooLarge { what: "trun data offset" })?;
        moof[field..field + 4].copy_from_slice(&data_offset.to_be_bytes());
        run_start += run_payload_len(run);
    }
    Ok(())
}

/// The `mdat` header for `payload_len` bytes, with a 64-bit size only when 32 bits can't hold it.
fn mdat_header(payload_len: u64) -> Result<Vec<u8>, MuxError> {
    let mut out = Vec::with_capacity(LARGE_HEADER_LEN as usize);
    match u32::try_from(payload_len.saturating_add(MIN_BOX_LEN)) {
        Ok(size) => {
            out.put_u32(size);
            out.extend_from_slice(b"mdat");
        }
        Err(_) => {
            let size = payload_len.checked_add(LARGE_HEADER_LEN).ok_or(MuxError::TooLarge { what: "mdat size" })?;
            out.put_u32(1);
            out.extend_from_slice(b"mdat");
            out.put_u64(size);
        }
    }
    Ok(out)
}

/// A top-level `free` box exactly `total_len` bytes long, zero-filled; players skip it.
pub fn free_box(total_len: usize) -> Result<Vec<u8>, MuxError> {
    let size = u32::try_from(total_len).map_err(|_| MuxError::BadFreeBoxLen(total_len))?;
    if u64::from(size) < MIN_BOX_LEN {
        return Err(MuxError::BadFreeBoxLen(total_len));
    }
    let mut out = Vec::with_capacity(total_len);
    out.put_u32(size);
    out.extend_from_slice(b"free");
    out.put_zeros(total_len - MIN_BOX_LEN as usize);
    Ok(out)
}

/// The length of a `free` box that, written at stream position `pos`, ends exactly on a
/// multiple of `boundary`. A box can't be shorter than 8 bytes, so a smaller gap is padded
/// through to the following boundary. `None` when `pos` is already on a boundary (nothing to
/// pad) or `boundary` is under 8 bytes or too large for one `free` box.
pub fn padding_to_boundary(pos: u64, boundary: u64) -> Option<usize> {
    if boundary < MIN_BOX_LEN {
        return None;
    }
    let gap = (boundary - pos % boundary) % boundary;
    let len = match gap {
        0 => return None,
        gap if gap < MIN_BOX_LEN => gap + boundary,
        gap => gap,
    };
    u32::try_from(len).ok()?;
    usize::try_from(len).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avc1_stub() -> Vec<u8> {
        vec![0, 0, 0, 12, b'a', b'v', b'c', b'1', 1, 2, 3, 4]
    }

    fn video_track() -> TrackConfig {
        TrackConfig { kind: TrackKind::Video { width: 320, height: 240 }, timescale: 90_000, sample_entry: avc1_stub() }
    }

    fn sample(size: u32, is_sync: bool) -> Sample {
        Sample { duration: 3600, size, is_sync, composition_offset: 0 }
    }

    #[test]
    fn padding_fills_to_the_next_boundary() {
        assert_eq!(padding_to_boundary(100, 64), Some(28));
        assert_eq!(padding_to_boundary(0, 64), None);
        assert_eq!(padding_to_boundary(128, 64), None);
        assert_eq!(padding_to_boundary(120, 64), Some(8), "a gap of exactly 8 fits a bare header");
        assert_eq!(padding_to_boundary(121, 64), Some(71), "a gap under 8 rolls over a boundary");
        assert_eq!(padding_to_boundary(127, 64), Some(65));
        assert_eq!(padding_to_boundary(65_535, 65_536), Some(65_537));
        assert_eq!(padding_to_boundary(5, 4), None, "boundary smaller than a box header");
        assert_eq!(padding_to_boundary(1, 1 << 40), None, "too large for a free box");
        assert_eq!(padding_to_boundary(u64::MAX, 1 << 16), Some(65_537), "no overflow near u64::MAX");
    }

    #[test]
    fn padding_always_lands_on_a_boundary() {
        for boundary in [8u64, 9, 16, 100, 4096, 65_536] {
            for pos in 0..300u64 {
                if let Some(len) = padding_to_boundary(pos, boundary) {
                    assert!(len >= 8);
                    assert_eq!((pos + len as u64) % boundary, 0, "pos {pos} boundary {boundary}");
                    assert!(len as u64 <= boundary + 7);
                    assert_eq!(free_box(len).unwrap().len(), len);
                }
            }
        }
    }

    #[test]
    fn free_box_has_exact_length_and_header() {
        assert_eq!(free_box(8).unwrap(), b"\0\0\0\x08free");
        let padded = free_box(1000).unwrap();
        assert_eq!(padded.len(), 1000);
        assert_eq!(&padded[..8], &[0, 0, 0x03, 0xe8, b'f', b'r', b'e', b'e']);
        assert!(matches!(free_box(7), Err(MuxError::BadFreeBoxLen(7))));
        assert!(matches!(free_box(0), Err(MuxError::BadFreeBoxLen(0))));
    }

    #[test]
    fn init_segment_starts_with_ftyp_and_embeds_the_sample_entry() {
        let init = init_segment(&[video_track()]).unwrap();
        assert_eq!(&init[4..12], b"ftypisom");
        let entry = avc1_stub();
        assert!(init.windows(entry.len()).any(|window| window == entry));
        for fourcc in [b"mvhd", b"tkhd", b"mdhd", b"hdlr", b"vmhd", b"url ", b"stsd", b"stco", b"trex"] {
            assert!(init.windows(4).any(|window| window == fourcc), "{fourcc:?} missing");
        }
    }

    #[test]
    fn init_segment_rejects_bad_configs() {
        assert!(matches!(init_segment(&[]), Err(MuxError::NoTracks)));
        let zero_timescale = TrackConfig { timescale: 0, ..video_track() };
        assert!(matches!(init_segment(&[zero_timescale]), Err(MuxError::InvalidTrack { track_id: 1, .. })));
        for entry in [vec![], vec![0, 0, 0, 9, b'a', b'v', b'c', b'1'], vec![0, 0, 0, 8, b'a']] {
            let bad_entry = TrackConfig { sample_entry: entry, ..video_track() };
            let result = init_segment(&[video_track(), bad_entry]);
            assert!(matches!(result, Err(MuxError::InvalidTrack { track_id: 2, .. })));
        }
    }

    #[test]
    fn fragment_data_offsets_point_past_the_mdat_header_for_each_run() {
        let video = [sample(100, true), sample(50, false)];
        let audio = [sample(7, true); 3];
        let runs = [
            TrackRun { track_id: 1, base_decode_time: 0, samples: &video },
            TrackRun { track_id: 2, base_decode_time: 0, samples: &audio },
        ];
        let headers = fragment(1, &runs, 171).unwrap();
        let moof_len = u32::from_be_bytes([headers[0], headers[1], headers[2], headers[3]]) as usize;
        assert_eq!(headers.len(), moof_len + 8);
        assert_eq!(&headers[moof_len..], &[0, 0, 0, 179, b'm', b'd', b'a', b't']);
        let offsets: Vec<i32> = headers
            .windows(4)
            .enumerate()
            .filter(|(_, window)| window == b"trun")
            .map(|(at, _)| i32::from_be_bytes(headers[at + 12..at + 16].try_into().unwrap()))
            .collect();
        assert_eq!(offsets, [moof_len as i32 + 8, moof_len as i32 + 8 + 150]);
    }

    #[test]
    fn fragment_uses_trun_version_1_only_with_composition_offsets() {
        let plain = [sample(10, true)];
        let shifted = [Sample { composition_offset: -3, ..sample(10, true) }];
        for (samples, version, entry_len) in [(&plain, 0u8, 12), (&shifted, 1, 16)] {
            let runs = [TrackRun { track_id: 1, base_decode_time: 5, samples }];
            let headers = fragment(1, &runs, 10).unwrap();
            let at = headers.windows(4).position(|window| window == b"trun").unwrap();
            assert_eq!(headers[at + 4], version);
            let trun_len = u32::from_be_bytes(headers[at - 4..at].try_into().unwrap()) as usize;
            assert_eq!(trun_len, 8 + 4 + 4 + 4 + entry_len);
        }
    }

    #[test]
    fn fragment_rejects_inconsistent_runs() {
        let samples = [sample(10, true)];
        let run = |track_id| TrackRun { track_id, base_decode_time: 0, samples: &samples };
        assert!(matches!(fragment(1, &[], 0), Err(MuxError::InvalidFragment(_))));
        assert!(matches!(fragment(1, &[run(0)], 10), Err(MuxError::InvalidFragment(_))));
        assert!(matches!(fragment(1, &[run(1), run(1)], 20), Err(MuxError::InvalidFragment(_))));
        assert!(matches!(fragment(1, &[run(1)], 11), Err(MuxError::InvalidFragment(_))));
    }

    #[test]
    fn huge_payload_gets_a_largesize_mdat_header() {
        assert_eq!(mdat_header(10).unwrap(), [0, 0, 0, 18, b'm', b'd', b'a', b't']);
        let huge = u64::from(u32::MAX);
        let header = mdat_header(huge).unwrap();
        assert_eq!(header.len(), 16);
        assert_eq!(&header[..8], &[0, 0, 0, 1, b'm', b'd', b'a', b't']);
        assert_eq!(u64::from_be_bytes(header[8..].try_into().unwrap()), huge + 16);
        assert!(matches!(mdat_header(u64::MAX), Err(MuxError::TooLarge { .. })));
    }
}
