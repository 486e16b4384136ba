//! In-memory parsing of the two boxes the reader needs to understand, `moov` and `moof`, and
//! the in-place retiming of a `moof` for export. Every field read is bounds-checked: these
//! bytes come from files that may be corrupt or hostile.

use super::boxes::{child_boxes, find_child, malformed, require_child, ByteReader, ChildBox, FourCc};
use super::{MuxError, Sample, TrackConfig, TrackKind, SAMPLE_IS_NON_SYNC};

/// More samples than this in one fragment is treated as corruption: it bounds the memory a
/// hostile `trun` whose samples all use default values (0 bytes each) can make us allocate.
const MAX_SAMPLES_PER_FRAGMENT: u64 = 1 << 20;

const TFHD_BASE_DATA_OFFSET: u32 = 0x000001;
const TFHD_SAMPLE_DESCRIPTION_INDEX: u32 = 0x000002;
const TFHD_DEFAULT_DURATION: u32 = 0x000008;
const TFHD_DEFAULT_SIZE: u32 = 0x000010;
const TFHD_DEFAULT_FLAGS: u32 = 0x000020;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x020000;
const TRUN_DATA_OFFSET: u32 = 0x000001;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x000004;
const TRUN_SAMPLE_DURATION: u32 = 0x000100;
const TRUN_SAMPLE_SIZE: u32 = 0x000200;
const TRUN_SAMPLE_FLAGS: u32 = 0x000400;
const TRUN_COMPOSITION_OFFSET: u32 = 0x000800;

/// The init segment of a stream: its raw bytes and what the reader learnt from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitInfo {
    /// `ftyp` + `moov` exactly as they appear in the stream (boxes between them left out).
    pub bytes: Vec<u8>,
    /// In `moov` order.
    pub tracks: Vec<TrackInfo>,
    /// `trex` defaults, used by fragments whose `trun`s leave sample fields out.
    pub(super) defaults: Vec<TrackDefaults>,
}

impl InitInfo {
    pub fn track(&self, track_id: u32) -> Option<&TrackInfo> {
        self.tracks.iter().find(|track| track.track_id == track_id)
    }
}

/// One `trak` of an init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub track_id: u32,
    /// `vide`, `soun`, or whatever else the file says.
    pub handler: FourCc,
    pub timescale: u32,
    /// From `tkhd` (integer part of 16.16); 0 for audio.
    pub width: u16,
    pub height: u16,
    /// The sample entry's type, e.g. `avc1`, `hvc1`, `mp4a`.
    pub sample_entry_fourcc: FourCc,
    /// The complete first sample entry box, header included.
    pub sample_entry: Vec<u8>,
}

impl TrackInfo {
    /// The config that writes an equivalent track, e.g. to export into a new file; `None` for
    /// handlers hearth doesn't record or an audio entry too short to carry its format.
    pub fn to_track_config(&self) -> Option<TrackConfig> {
        let kind = match &self.handler {
            b"vide" => TrackKind::Video { width: self.width, height: self.height },
            b"soun" => self.audio_kind()?,
            _ => return None,
        };
        Some(TrackConfig { kind, timescale: self.timescale, sample_entry: self.sample_entry.clone() })
    }

    /// Channel count and rate from an AudioSampleEntry: header (8), reserved (6), data
    /// reference index (2), reserved (8), channelcount (2), samplesize (2), pre_defined and
    /// reserved (4), then the rate as 16.16 fixed point.
    fn audio_kind(&self) -> Option<TrackKind> {
        let entry = &self.sample_entry;
        let channels = u16::from_be_bytes([*entry.get(24)?, *entry.get(25)?]);
        let rate = u16::from_be_bytes([*entry.get(32)?, *entry.get(33)?]);
        Some(TrackKind::Audio { channels, sample_rate: u32::from(rate) })
    }
}

/// Per-track sample defaults, from `trex` and overridden by `tfhd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct TrackDefaults {
    pub track_id: u32,
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
}

/// Parses an init segment from its `ftyp` and `moov` boxes (each complete, header included).
pub(super) fn parse_init(ftyp: &[u8], moov: &[u8], moov_offset: u64) -> Result<InitInfo, MuxError> {
    let moov_body = single_box_body(moov, moov_offset)?;
    let body_offset = moov_offset + (moov.len() - moov_body.len()) as u64;
    let mut tracks = Vec::new();
    let mut defaults = Vec::new();
    for child in child_boxes(moov_body, body_offset) {
        let child = child?;
        match &child.fourcc {
            b"trak" => tracks.push(parse_trak(&child)?),
            b"mvex" => defaults = parse_mvex(&child)?,
            _ => {}
        }
    }
    check_tracks(&tracks, moov_offset)?;
    let mut bytes = Vec::with_capacity(ftyp.len() + moov.len());
    bytes.extend_from_slice(ftyp);
    bytes.extend_from_slice(moov);
    Ok(InitInfo { bytes, tracks, defaults })
}

fn check_tracks(tracks: &[TrackInfo], moov_offset: u64) -> Result<(), MuxError> {
    if tracks.is_empty() {
        return Err(malformed(moov_offset, "moov has no tracks"));
    }
    for (index, track) in tracks.iter().enumerate() {
        if tracks[..index].iter().any(|earlier| earlier.track_id == track.track_id) {
            return Err(malformed(moov_offset, format!("track id {} appears twice", track.track_id)));
        }
    }
    Ok(())
}

/// The body of `raw`, which must be exactly one box.
fn single_box_body(raw: &[u8], offset: u64) -> Result<&[u8], MuxError> {
    let mut reader = ByteReader::new(raw, offset);
    let header = reader.box_header()?;
    if header.size != raw.len() as u64 {
        return Err(malformed(offset, "box size does not match its bytes"));
    }
    Ok(&raw[header.header_len as usize..])
}

fn parse_trak(trak: &ChildBox) -> Result<TrackInfo, MuxError> {
    let tkhd = require_child(trak.body, trak.body_offset, b"tkhd", "trak")?;
    let (track_id, width, height) = parse_tkhd(&tkhd)?;
    let mdia = require_child(trak.body, trak.body_offset, b"mdia", "trak")?;
    let mdhd = require_child(mdia.body, mdia.body_offset, b"mdhd", "mdia")?;
    let timescale = parse_mdhd(&mdhd)?;
    let hdlr = require_child(mdia.body, mdia.body_offset, b"hdlr", "mdia")?;
    let handler = parse_hdlr(&hdlr)?;
    let minf = require_child(mdia.body, mdia.body_offset, b"minf", "mdia")?;
    let stbl = require_child(minf.body, minf.body_offset, b"stbl", "minf")?;
    let stsd = require_child(stbl.body, stbl.body_offset, b"stsd", "stbl")?;
    let entry = parse_stsd(&stsd)?;
    Ok(TrackInfo {
        track_id,
        handler,
        timescale,
        width,
        height,
        sample_entry_fourcc: entry.fourcc,
        sample_entry: entry.raw.to_vec(),
    })
}

/// Track id and the integer parts of the 16.16 width and height.
fn parse_tkhd(tkhd: &ChildBox) -> Result<(u32, u16, u16), MuxError> {
    let mut reader = ByteReader::new(tkhd.body, tkhd.body_offset);
    let (version, _) = reader.full_box_header("tkhd version")?;
    let time_len = if version == 1 { 8 } else { 4 };
    reader.skip(2 * time_len, "tkhd times")?;
    let track_id = reader.u32("tkhd track id")?;
    reader.skip(4 + time_len, "tkhd duration")?;
    // reserved (8), layer, alternate group, volume, reserved (2 each), matrix (36)
    reader.skip(8 + 8 + 36, "tkhd matrix")?;
    let width = reader.u32("tkhd width")?;
    let height = reader.u32("tkhd height")?;
    if track_id == 0 {
        return Err(malformed(tkhd.offset, "tkhd has track id 0"));
    }
    Ok((track_id, (width >> 16) as u16, (height >> 16) as u16))
}

fn parse_mdhd(mdhd: &ChildBox) -> Result<u32, MuxError> {
    let mut reader = ByteReader::new(mdhd.body, mdhd.body_offset);
    let (version, _) = reader.full_box_header("mdhd version")?;
    reader.skip(if version == 1 { 16 } else { 8 }, "mdhd times")?;
    let timescale = reader.u32("mdhd timescale")?;
    if timescale == 0 {
        // Every duration and decode time would be meaningless (and summaries divide by it).
        return Err(malformed(mdhd.offset, "mdhd timescale is 0"));
    }
    Ok(timescale)
}

fn parse_hdlr(hdlr: &ChildBox) -> Result<FourCc, MuxError> {
    let mut reader = ByteReader::new(hdlr.body, hdlr.body_offset);
    reader.full_box_header("hdlr version")?;
    reader.skip(4, "hdlr pre_defined")?;
    reader.array("hdlr handler type")
}

/// The first sample entry: hearth tracks have exactly one.
fn parse_stsd<'a>(stsd: &ChildBox<'a>) -> Result<ChildBox<'a>, MuxError> {
    let mut reader = ByteReader::new(stsd.body, stsd.body_offset);
    reader.full_box_header("stsd version")?;
    let entry_count = reader.u32("stsd entry count")?;
    let entries_offset = reader.offset();
    let entries = reader.bytes(reader.remaining(), "stsd entries")?;
    match child_boxes(entries, entries_offset).next() {
        Some(entry) if entry_count > 0 => entry,
        _ => Err(malformed(stsd.offset, "stsd has no sample entry")),
    }
}

fn parse_mvex(mvex: &ChildBox) -> Result<Vec<TrackDefaults>, MuxError> {
    let mut defaults = Vec::new();
    for child in child_boxes(mvex.body, mvex.body_offset) {
        let child = child?;
        if &child.fourcc == b"trex" {
            let mut reader = ByteReader::new(child.body, child.body_offset);
            reader.full_box_header("trex version")?;
            let track_id = reader.u32("trex track id")?;
            reader.skip(4, "trex sample description index")?;
            defaults.push(TrackDefaults {
                track_id,
                duration: reader.u32("trex default duration")?,
                size: reader.u32("trex default size")?,
                flags: reader.u32("trex default flags")?,
            });
        }
    }
    Ok(defaults)
}

/// What a `moof` says, with each track's sample data located by absolute stream offset.
#[derive(Debug)]
pub(super) struct ParsedMoof {
    pub sequence_number: u32,
    pub trafs: Vec<ParsedTraf>,
}

#[derive(Debug)]
pub(super) struct ParsedTraf {
    pub track_id: u32,
    pub base_decode_time: u64,
    pub samples: Vec<Sample>,
    /// One `(stream offset, length)` per `trun`: where its samples' bytes are.
    pub data_ranges: Vec<(u64, u64)>,
}

/// Parses a complete `moof` box that starts at stream offset `moof_offset`.
pub(super) fn parse_moof(moof: &[u8], moof_offset: u64, init: &InitInfo) -> Result<ParsedMoof, MuxError> {
    let body = single_box_body(moof, moof_offset)?;
    let body_offset = moof_offset + (moof.len() - body.len()) as u64;
    let mfhd = require_child(body, body_offset, b"mfhd", "moof")?;
    let mut reader = ByteReader::new(mfhd.body, mfhd.body_offset);
    reader.full_box_header("mfhd version")?;
    let sequence_number = reader.u32("mfhd sequence number")?;

    let mut trafs: Vec<ParsedTraf> = Vec::new();
    let mut sample_budget = MAX_SAMPLES_PER_FRAGMENT;
    for child in child_boxes(body, body_offset) {
        let child = child?;
        if &child.fourcc == b"traf" {
            // Without an explicit base, a traf's data follows the previous traf's data.
            let previous_end =
                trafs.last().and_then(|traf| traf.data_ranges.last()).map_or(moof_offset, |&(start, len)| start + len);
            trafs.push(parse_traf(&child, moof_offset, previous_end, init, &mut sample_budget)?);
        }
    }
    Ok(ParsedMoof { sequence_number, trafs })
}

/// A `tfhd`: the track and its overrides of the `trex` defaults.
struct TfhdInfo {
    defaults: TrackDefaults,
    base_data_offset: Option<u64>,
    base_is_moof: bool,
}

fn parse_tfhd(tfhd: &ChildBox, init: &InitInfo) -> Result<TfhdInfo, MuxError> {
    let mut reader = ByteReader::new(tfhd.body, tfhd.body_offset);
    let (_, flags) = reader.full_box_header("tfhd version")?;
    let track_id = reader.u32("tfhd track id")?;
    if init.track(track_id).is_none() {
        return Err(malformed(tfhd.offset, format!("traf for track {track_id}, which the moov lacks")));
    }
    let mut defaults = init
        .defaults
        .iter()
        .find(|defaults| defaults.track_id == track_id)
        .copied()
        .unwrap_or(TrackDefaults { track_id, ..TrackDefaults::default() });
    let base_data_offset = optional(&mut reader, flags, TFHD_BASE_DATA_OFFSET, |r| r.u64("tfhd base data offset"))?;
    optional(&mut reader, flags, TFHD_SAMPLE_DESCRIPTION_INDEX, |r| r.u32("tfhd sample description"))?;
    if let Some(duration) = optional(&mut reader, flags, TFHD_DEFAULT_DURATION, |r| r.u32("tfhd default duration"))? {
        defaults.duration = duration;
    }
    if let Some(size) = optional(&mut reader, flags, TFHD_DEFAULT_SIZE, |r| r.u32("tfhd default size"))? {
        defaults.size = size;
    }
    if let Some(sample_flags) = optional(&mut reader, flags, TFHD_DEFAULT_FLAGS, |r| r.u32("tfhd default flags"))? {
        defaults.flags = sample_flags;
    }
    Ok(TfhdInfo { defaults, base_data_offset, base_is_moof: flags & TFHD_DEFAULT_BASE_IS_MOOF != 0 })
}

/// Reads a field that is present only when `flag` is set in `flags`.
fn optional<T>(
    reader: &mut ByteReader,
    flags: u32,
    flag: u32,
    read: impl FnOnce(&mut ByteReader) -> Result<T, MuxError>,
) -> Result<Option<T>, MuxError> {
    if flags & flag != 0 {
        read(reader).map(Some)
    } else {
        Ok(None)
    }
}

fn parse_tfdt(tfdt: &ChildBox) -> Result<u64, MuxError> {
    let mut reader = ByteReader::new(tfdt.body, tfdt.body_offset);
    let (version, _) = reader.full_box_header("tfdt version")?;
    if version == 1 {
        reader.u64("tfdt base decode time")
    } else {
        reader.u32("tfdt base decode time").map(u64::from)
    }
}

fn parse_traf(
    traf: &ChildBox,
    moof_offset: u64,
    previous_end: u64,
    init: &InitInfo,
    sample_budget: &mut u64,
) -> Result<ParsedTraf, MuxError> {
    let tfhd = parse_tfhd(&require_child(traf.body, traf.body_offset, b"tfhd", "traf")?, init)?;
    let track_id = tfhd.defaults.track_id;
    let tfdt = find_child(traf.body, traf.body_offset, b"tfdt")?
        .ok_or_else(|| malformed(traf.offset, format!("traf for track {track_id} has no tfdt")))?;
    let base = match (tfhd.base_data_offset, tfhd.base_is_moof) {
        (Some(explicit), _) => explicit,
        (None, true) => moof_offset,
        (None, false) => previous_end,
    };
    let mut parsed =
        ParsedTraf { track_id, base_decode_time: parse_tfdt(&tfdt)?, samples: Vec::new(), data_ranges: Vec::new() };
    for child in child_boxes(traf.body, traf.body_offset) {
        let child = child?;
        if &child.fourcc == b"trun" {
            // A trun without a data offset continues where the previous one ended.
            let next_start = parsed.data_ranges.last().map_or(base, |&(start, len)| start + len);
            let range = parse_trun(&child, base, next_start, &tfhd.defaults, sample_budget, &mut parsed.samples)?;
            parsed.data_ranges.push(range);
        }
    }
    Ok(parsed)
}

/// Appends a `trun`'s samples and returns where their bytes are: `(stream offset, length)`.
fn parse_trun(
    trun: &ChildBox,
    base: u64,
    next_start: u64,
    defaults: &TrackDefaults,
    sample_budget: &mut u64,
    samples: &mut Vec<Sample>,
) -> Result<(u64, u64), MuxError> {
    let mut reader = ByteReader::new(trun.body, trun.body_offset);
    // Version 0 composition offsets are unsigned, but writers store negative ones there anyway
    // and the bits mean the same for any offset a real stream uses, so the version is moot.
    let (_version, flags) = reader.full_box_header("trun version")?;
    let sample_count = reader.u32("trun sample count")?;
    let data_offset = optional(&mut reader, flags, TRUN_DATA_OFFSET, |r| r.u32("trun data offset"))?;
    let first_flags = optional(&mut reader, flags, TRUN_FIRST_SAMPLE_FLAGS, |r| r.u32("trun first sample flags"))?;
    check_sample_count(&reader, flags, sample_count, sample_budget, trun.offset)?;

    let start = match data_offset {
        // The offset is signed: data may precede the moof in files other tools write.
        Some(offset) => base.checked_add_signed(i64::from(offset as i32)),
        None => Some(next_start),
    }
    .ok_or_else(|| malformed(trun.offset, "trun data offset points before the stream start"))?;

    let mut data_len: u64 = 0;
    samples.reserve(sample_count as usize);
    for index in 0..sample_count {
        let sample = parse_trun_entry(&mut reader, flags, defaults, first_flags.filter(|_| index == 0))?;
        data_len += u64::from(sample.size);
        samples.push(sample);
    }
    start.checked_add(data_len).ok_or_else(|| malformed(trun.offset, "trun data extends past the largest offset"))?;
    Ok((start, data_len))
}

/// Refuses counts the box can't hold, before anything is allocated for them.
fn check_sample_count(
    reader: &ByteReader,
    flags: u32,
    sample_count: u32,
    sample_budget: &mut u64,
    trun_offset: u64,
) -> Result<(), MuxError> {
    let per_sample_fields = [TRUN_SAMPLE_DURATION, TRUN_SAMPLE_SIZE, TRUN_SAMPLE_FLAGS, TRUN_COMPOSITION_OFFSET];
    let entry_len = 4 * per_sample_fields.iter().filter(|&&field| flags & field != 0).count() as u64;
    let needed = u64::from(sample_count) * entry_len;
    if needed > reader.remaining() as u64 {
        return Err(malformed(
            trun_offset,
            format!("trun claims {sample_count} samples ({needed} bytes) but has {} bytes left", reader.remaining()),
        ));
    }
    *sample_budget = sample_budget.checked_sub(u64::from(sample_count)).ok_or_else(|| {
        malformed(trun_offset, format!("more than {MAX_SAMPLES_PER_FRAGMENT} samples in one fragment"))
    })?;
    Ok(())
}

fn parse_trun_entry(
    reader: &mut ByteReader,
    flags: u32,
    defaults: &TrackDefaults,
    first_sample_flags: Option<u32>,
) -> Result<Sample, MuxError> {
    let duration = optional(reader, flags, TRUN_SAMPLE_DURATION, |r| r.u32("sample duration"))?;
    let size = optional(reader, flags, TRUN_SAMPLE_SIZE, |r| r.u32("sample size"))?;
    let sample_flags = optional(reader, flags, TRUN_SAMPLE_FLAGS, |r| r.u32("sample flags"))?;
    let offset = optional(reader, flags, TRUN_COMPOSITION_OFFSET, |r| r.u32("sample composition offset"))?;
    let sample_flags = first_sample_flags.or(sample_flags).unwrap_or(defaults.flags);
    Ok(Sample {
        duration: duration.unwrap_or(defaults.duration),
        size: size.unwrap_or(defaults.size),
        is_sync: sample_flags & SAMPLE_IS_NON_SYNC == 0,
        composition_offset: offset.map_or(0, |offset| offset as i32),
    })
}

/// Copies a complete `moof`, setting its `mfhd` sequence number and the `tfdt` of every track
/// listed in `new_base_decode_times` as `(track id, decode time)`. The length never changes;
/// tracks not listed keep their time, and listed tracks absent from the fragment are ignored.
pub fn rewrite_fragment_header(
    moof: &[u8],
    new_sequence: u32,
    new_base_decode_times: &[(u32, u64)],
) -> Result<Vec<u8>, MuxError> {
    renumber_and_retime(moof, new_sequence, |track, _| {
        new_base_decode_times.iter().find(|(id, _)| *id == track).map(|(_, time)| *time)
    })
}

/// Copies a complete `moof`, setting its `mfhd` sequence number and moving the `tfdt` of every
/// track listed in `earlier_by` as `(track id, ticks)` that many ticks earlier, stopping at
/// zero. Event clips use it: a clip cut out of the recorder's stream must start at time zero.
/// Only a track whose first sample began before the cut (audio, by less than one frame) is
/// ever clamped, which shifts that one fragment's audio by that fraction of a frame.
pub fn rebase_fragment(moof: &[u8], new_sequence: u32, earlier_by: &[(u32, u64)]) -> Result<Vec<u8>, MuxError> {
    renumber_and_retime(moof, new_sequence, |track, time| {
        let (_, ticks) = earlier_by.iter().find(|(id, _)| *id == track)?;
        Some(time.saturating_sub(*ticks))
    })
}

fn renumber_and_retime(
    moof: &[u8],
    new_sequence: u32,
    new_time: impl Fn(u32, u64) -> Option<u64>,
) -> Result<Vec<u8>, MuxError> {
    let body = single_box_body(moof, 0)?;
    let body_offset = moof.len() - body.len();
    let mut out = moof.to_vec();
    let mut saw_mfhd = false;
    for child in child_boxes(body, body_offset as u64) {
        let child = child?;
        match &child.fourcc {
            b"mfhd" => {
                ByteReader::new(child.body, child.body_offset).skip(8, "mfhd")?;
                patch(&mut out, child.body_offset + 4, &new_sequence.to_be_bytes());
                saw_mfhd = true;
            }
            b"traf" => retime_traf(&mut out, &child, &new_time)?,
            _ => {}
        }
    }
    if !saw_mfhd {
        return Err(malformed(0, "moof has no 'mfhd' box"));
    }
    Ok(out)
}

/// Copies a complete `moof`, advancing the `tfdt` of every track listed in `offsets` as
/// `(track id, ticks)` by that many ticks; the sequence number stays. Live view uses it to put
/// a clip's fragments on the camera session's continuous clock.
pub fn shift_fragment_times(moof: &[u8], offsets: &[(u32, u64)]) -> Result<Vec<u8>, MuxError> {
    let body = single_box_body(moof, 0)?;
    let body_offset = moof.len() - body.len();
    let mut out = moof.to_vec();
    for child in child_boxes(body, body_offset as u64) {
        let child = child?;
        if &child.fourcc == b"traf" {
            retime_traf(&mut out, &child, |track, time| {
                let (_, offset) = offsets.iter().find(|(id, _)| *id == track)?;
                time.checked_add(*offset)
            })?;
        }
    }
    Ok(out)
}

/// Sets a traf's `tfdt` to `new_time(track id, current time)`; `None` leaves it alone.
fn retime_traf(out: &mut [u8], traf: &ChildBox, new_time: impl Fn(u32, u64) -> Option<u64>) -> Result<(), MuxError> {
    let tfhd = require_child(traf.body, traf.body_offset, b"tfhd", "traf")?;
    let mut reader = ByteReader::new(tfhd.body, tfhd.body_offset);
    reader.full_box_header("tfhd version")?;
    let track_id = reader.u32("tfhd track id")?;
    let tfdt = find_child(traf.body, traf.body_offset, b"tfdt")?
        .ok_or_else(|| malformed(traf.offset, format!("traf for track {track_id} has no tfdt")))?;
    let mut reader = ByteReader::new(tfdt.body, tfdt.body_offset);
    let (version, _) = reader.full_box_header("tfdt version")?;
    let time_at = tfdt.body_offset + 4;
    if version == 1 {
        let current = reader.u64("tfdt base decode time")?;
        if let Some(time) = new_time(track_id, current) {
            patch(out, time_at, &time.to_be_bytes());
        }
    } else {
        let current = u64::from(reader.u32("tfdt base decode time")?);
        if let Some(time) = new_time(track_id, current) {
            let narrow = u32::try_from(time).map_err(|_| MuxError::TooLarge { what: "version 0 tfdt time" })?;
            patch(out, time_at, &narrow.to_be_bytes());
        }
    }
    Ok(())
}

/// Overwrites bytes whose presence the caller has already checked with a ByteReader.
fn patch(out: &mut [u8], at: u64, bytes: &[u8]) {
    let at = at as usize;
    if let Some(target) = out.get_mut(at..at + bytes.len()) {
        target.copy_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::boxes::{write_box, write_full_box, PutBigEndian};
    use crate::mux::test_support::*;
    use crate::mux::{fragment, init_segment, TrackRun};

    /// A version 0 full box holding one u32.
    fn u32_box(out: &mut Vec<u8>, fourcc: &[u8; 4], flags: u32, value: u32) -> Result<(), MuxError> {
        write_full_box(out, fourcc, 0, flags, |out| {
            out.put_u32(value);
            Ok(())
        })
    }

    fn test_init() -> InitInfo {
        let init = init_segment(&[video_config(), audio_config()]).unwrap();
        let ftyp_len = init[3] as usize;
        parse_init(&init[..ftyp_len], &init[ftyp_len..], ftyp_len as u64).unwrap()
    }

    fn two_track_moof() -> Vec<u8> {
        let video = video_samples(3, 10);
        let audio = audio_samples(2);
        let runs = [
            TrackRun { track_id: 1, base_decode_time: 90_000, samples: &video },
            TrackRun { track_id: 2, base_decode_time: 48_128, samples: &audio },
        ];
        let payload_len = (10 + 13 + 16) + (6 + 7);
        let mut headers = fragment(4, &runs, payload_len).unwrap();
        headers.truncate(headers.len() - 8);
        headers
    }

    #[test]
    fn rewrite_patches_sequence_and_listed_decode_times_only() {
        let init = test_init();
        let moof = two_track_moof();
        let rewritten = rewrite_fragment_header(&moof, 77, &[(1, 5), (3, 1)]).unwrap();
        assert_eq!(rewritten.len(), moof.len());
        let parsed = parse_moof(&rewritten, 0, &init).unwrap();
        assert_eq!(parsed.sequence_number, 77);
        assert_eq!(parsed.trafs[0].base_decode_time, 5);
        assert_eq!(parsed.trafs[1].base_decode_time, 48_128, "unlisted tracks keep their time");
        let original = parse_moof(&moof, 0, &init).unwrap();
        assert_eq!(parsed.trafs[0].samples, original.trafs[0].samples);
        assert_eq!(parsed.trafs[1].data_ranges, original.trafs[1].data_ranges);
    }

    #[test]
    fn rewrite_rejects_what_is_not_one_moof() {
        let moof = two_track_moof();
        assert!(rewrite_fragment_header(&moof[..moof.len() - 1], 1, &[]).is_err());
        assert!(rewrite_fragment_header(&[moof.clone(), moof.clone()].concat(), 1, &[]).is_err());
        assert!(rewrite_fragment_header(b"\0\0\0\x08moof", 1, &[]).is_err(), "no mfhd");
        assert!(rewrite_fragment_header(&[], 1, &[]).is_err());
    }

    #[test]
    fn rewrite_refuses_times_a_version_0_tfdt_cannot_hold() {
        let mut moof = Vec::new();
        write_box(&mut moof, b"moof", |out| {
            u32_box(out, b"mfhd", 0, 1)?;
            write_box(out, b"traf", |out| {
                u32_box(out, b"tfhd", 0x020000, 1)?;
                u32_box(out, b"tfdt", 0, 1)
            })
        })
        .unwrap();
        let result = rewrite_fragment_header(&moof, 1, &[(1, 1 << 40)]);
        assert!(matches!(result, Err(MuxError::TooLarge { .. })), "{result:?}");
        let narrow = rewrite_fragment_header(&moof, 1, &[(1, 9)]).unwrap();
        assert_eq!(parse_moof(&narrow, 0, &test_init()).unwrap().trafs[0].base_decode_time, 9);
    }

    /// What other muxers (ffmpeg among them) write: defaults in tfhd, sizes only in trun,
    /// first-sample flags, and no default-base-is-moof.
    #[test]
    fn tfhd_defaults_and_first_sample_flags_fill_missing_trun_fields() {
        let mut moof = Vec::new();
        write_box(&mut moof, b"moof", |out| {
            u32_box(out, b"mfhd", 0, 3)?;
            write_box(out, b"traf", |out| {
                write_full_box(out, b"tfhd", 0, 0x08 | 0x10 | 0x20, |out| {
                    out.put_u32(1);
                    out.put_u32(3000); // duration
                    out.put_u32(99); // size, overridden per sample
                    out.put_u32(0x0101_0000); // non-sync
                    Ok(())
                })?;
                u32_box(out, b"tfdt", 0, 12)?;
                write_full_box(out, b"trun", 0, 0x001 | 0x004 | 0x200, |out| {
                    out.put_u32(3);
                    out.put_u32(200); // data offset
                    out.put_u32(0x0200_0000); // first sample is sync
                    [5, 6, 7].into_iter().for_each(|size| out.put_u32(size));
                    Ok(())
                })
            })
        })
        .unwrap();
        let parsed = parse_moof(&moof, 1000, &test_init()).unwrap();
        let traf = &parsed.trafs[0];
        assert_eq!((parsed.sequence_number, traf.base_decode_time), (3, 12));
        let sample = |size, is_sync| Sample { duration: 3000, size, is_sync, composition_offset: 0 };
        assert_eq!(traf.samples, [sample(5, true), sample(6, false), sample(7, false)]);
        assert_eq!(traf.data_ranges, [(1200, 18)], "first traf without a base starts at the moof");
    }

    #[test]
    fn a_trun_claiming_more_samples_than_it_holds_is_refused_before_allocating() {
        let mut moof = two_track_moof();
        let trun = moof.windows(4).position(|window| window == b"trun").unwrap();
        moof[trun + 8..trun + 12].copy_from_slice(&u32::MAX.to_be_bytes());
        match parse_moof(&moof, 0, &test_init()) {
            Err(MuxError::Malformed { offset, what }) => {
                assert_eq!(offset, trun as u64 - 4);
                assert!(what.contains("4294967295 samples"), "{what}");
            }
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    #[test]
    fn init_parsing_requires_the_boxes_hearth_depends_on() {
        let init = init_segment(&[video_config()]).unwrap();
        let ftyp_len = init[3] as usize;
        let (ftyp, moov) = init.split_at(ftyp_len);
        for fourcc in [b"tkhd", b"mdhd", b"hdlr", b"stsd"] {
            let mut broken = moov.to_vec();
            let at = broken.windows(4).position(|window| window == fourcc).unwrap();
            broken[at..at + 4].copy_from_slice(b"junk");
            let error = parse_init(ftyp, &broken, 0).unwrap_err().to_string();
            assert!(error.contains(std::str::from_utf8(fourcc).unwrap()), "{error}");
        }
        let mut zero_timescale = moov.to_vec();
        let mdhd = zero_timescale.windows(4).position(|window| window == b"mdhd").unwrap();
        zero_timescale[mdhd + 16..mdhd + 20].copy_from_slice(&[0; 4]);
        assert!(parse_init(ftyp, &zero_timescale, 0).unwrap_err().to_string().contains("timescale is 0"));
        assert!(parse_init(ftyp, b"\0\0\0\x08moov", 0).unwrap_err().to_string().contains("no tracks"));
    }

    #[test]
    fn track_config_needs_a_known_handler_and_a_full_audio_entry() {
        let mut track = test_init().tracks[1].clone();
        track.sample_entry.truncate(30);
        assert_eq!(track.to_track_config(), None);
        track.handler = *b"text";
        assert_eq!(track.to_track_config(), None);
    }
}
