//! The streaming reader: walks a clip's top-level boxes from any `Read`, holding at most one
//! `moof` (and, if asked, one `mdat` payload) in memory, and tells a clean end from a cut one.

use std::io::{self, Read};

use super::boxes::{checked_header, fourcc_text, malformed, BoxHeader, LARGE_HEADER_LEN, MIN_BOX_LEN};
use super::parse::{parse_init, parse_moof, InitInfo, ParsedTraf, TrackInfo};
use super::{MuxError, Sample};

/// Sanity limits on boxes read whole into memory; real ones are orders of magnitude smaller,
/// so anything larger is corruption, and refusing it bounds what a hostile file can allocate.
const MAX_FTYP_LEN: u64 = 64 * 1024;
const MAX_MOOV_LEN: u64 = 64 * 1024 * 1024;
const MAX_MOOF_LEN: u64 = 256 * 1024 * 1024;
/// Limit on an `mdat` payload read into memory (skipping one has none): hearth's fragments
/// hold about a second of video, a few MiB even from a 4K camera.
const MAX_PAYLOAD_IN_MEMORY: u64 = 1024 * 1024 * 1024;

/// What the scanner found next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanStep {
    /// A complete `moof`+`mdat` pair: every byte of it was present.
    Fragment(Fragment),
    /// The stream ended cleanly after a complete box.
    End,
    /// The stream ends inside the top-level box starting at byte `at` (a crash cut it short).
    /// Everything before `at` was complete and has been returned.
    Truncated { at: u64 },
}

/// One `moof`+`mdat` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// Stream offset of the `moof`'s first byte.
    pub offset: u64,
    pub sequence_number: u32,
    /// One per `traf`, in `moof` order.
    pub tracks: Vec<TrafInfo>,
    /// The complete `moof` box, header included.
    pub moof_bytes: Vec<u8>,
    /// 8, or 16 when the `mdat` used a 64-bit size.
    pub mdat_header_len: u64,
    pub mdat_payload_len: u64,
}

impl Fragment {
    /// Stream offset just past this fragment's `mdat`.
    pub fn end_offset(&self) -> u64 {
        self.offset + self.moof_bytes.len() as u64 + self.mdat_header_len + self.mdat_payload_len
    }

    /// The `mdat` header exactly as it was (its length matters: `trun` data offsets count it).
    pub fn mdat_header(&self) -> Vec<u8> {
        BoxHeader {
            fourcc: *b"mdat",
            size: self.mdat_header_len + self.mdat_payload_len,
            header_len: self.mdat_header_len,
        }
        .encode()
    }
}

/// One track's samples within a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafInfo {
    pub track_id: u32,
    pub base_decode_time: u64,
    pub samples: Vec<Sample>,
    /// Where this track's first sample starts within the `mdat` payload; its samples follow
    /// back to back (as hearth writes them; other writers' later `trun`s may be elsewhere).
    pub payload_offset: u64,
}

impl TrafInfo {
    pub fn duration(&self) -> u64 {
        self.samples.iter().map(|sample| u64::from(sample.duration)).sum()
    }
}

/// Reads a clip's init segment, then its fragments one at a time. See [`ScanStep`] for how a
/// stream cut short is reported. Offsets count from where the reader stood when the scanner
/// was created (the start of the clip, normally).
pub struct FragmentScanner<R> {
    stream: BoxStream<R>,
    init: InitInfo,
    init_end: u64,
    state: State,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Scanning,
    Ended,
    Truncated(u64),
    Failed(u64),
}

impl<R: Read> FragmentScanner<R> {
    /// Reads `ftyp` and `moov` (skipping any other boxes between them). A stream that ends
    /// before the `moov` is complete gives [`MuxError::TruncatedInit`].
    pub fn new(reader: R) -> Result<Self, MuxError> {
        let mut stream = BoxStream { reader, pos: 0 };
        let init = read_init(&mut stream)?;
        Ok(Self { init_end: stream.pos, stream, init, state: State::Scanning })
    }

    pub fn init(&self) -> &InitInfo {
        &self.init
    }

    pub fn into_init(self) -> InitInfo {
        self.init
    }

    /// Stream offset just past the `moov`.
    pub fn init_end(&self) -> u64 {
        self.init_end
    }

    /// The next complete fragment, reading and discarding its sample data.
    pub fn next_fragment(&mut self) -> Result<ScanStep, MuxError> {
        self.step(None)
    }

    /// The next complete fragment, with its whole `mdat` payload in `payload` (cleared first).
    /// On `End` or `Truncated`, `payload` holds nothing meaningful.
    pub fn next_fragment_with_payload(&mut self, payload: &mut Vec<u8>) -> Result<ScanStep, MuxError> {
        self.step(Some(payload))
    }

    /// Once the scan has ended, truncated or failed, it keeps answering the same way: the
    /// stream position is no longer at a box boundary, so going on would only invent errors.
    fn step(&mut self, payload: Option<&mut Vec<u8>>) -> Result<ScanStep, MuxError> {
        match self.state {
            State::Scanning => {}
            State::Ended => return Ok(ScanStep::End),
            State::Truncated(at) => return Ok(ScanStep::Truncated { at }),
            State::Failed(at) => return Err(malformed(at, "the scan already stopped at an error here")),
        }
        let result = self.scan_to_next_fragment(payload);
        self.state = match &result {
            Ok(ScanStep::Fragment(_)) => State::Scanning,
            Ok(ScanStep::End) => State::Ended,
            Ok(ScanStep::Truncated { at }) => State::Truncated(*at),
            Err(MuxError::Malformed { offset, .. }) => State::Failed(*offset),
            Err(_) => State::Failed(self.stream.pos),
        };
        result
    }

    fn scan_to_next_fragment(&mut self, payload: Option<&mut Vec<u8>>) -> Result<ScanStep, MuxError> {
        loop {
            let box_start = self.stream.pos;
            let header = match self.stream.read_box_header()? {
                HeaderRead::Complete(header) => header,
                HeaderRead::Eof => return Ok(ScanStep::End),
                HeaderRead::Partial => return Ok(ScanStep::Truncated { at: box_start }),
            };
            match &header.fourcc {
                b"moof" => return self.read_fragment(box_start, header, payload),
                b"mdat" => return Err(malformed(box_start, "mdat without a moof before it")),
                b"ftyp" | b"moov" => {
                    let what = format!("a second '{}' after the init segment", fourcc_text(&header.fourcc));
                    return Err(malformed(box_start, what));
                }
                // free/skip padding, styp, sidx, and boxes from the future: not ours to read.
                _ => {
                    if !self.stream.skip(header.body_len())? {
                        return Ok(ScanStep::Truncated { at: box_start });
                    }
                }
            }
        }
    }

    fn read_fragment(
        &mut self,
        moof_start: u64,
        moof_header: BoxHeader,
        payload: Option<&mut Vec<u8>>,
    ) -> Result<ScanStep, MuxError> {
        let truncated = Ok(ScanStep::Truncated { at: moof_start });
        check_size_limit(&moof_header, MAX_MOOF_LEN, moof_start)?;
        let Some(moof_bytes) = self.stream.read_whole_box(&moof_header)? else {
            return truncated;
        };
        let parsed = parse_moof(&moof_bytes, moof_start, &self.init)?;

        let mdat_start = self.stream.pos;
        let mdat = match self.stream.read_box_header()? {
            HeaderRead::Complete(header) if &header.fourcc == b"mdat" => header,
            HeaderRead::Complete(header) => {
                let what =
                    format!("moof at byte {moof_start} is followed by '{}', not mdat", fourcc_text(&header.fourcc));
                return Err(malformed(mdat_start, what));
            }
            HeaderRead::Eof | HeaderRead::Partial => return truncated,
        };
        if payload.is_some() {
            check_size_limit(&mdat, MAX_PAYLOAD_IN_MEMORY, mdat_start)?;
        }
        let payload_start = self.stream.pos;
        let tracks = locate_samples(parsed.trafs, payload_start, mdat.body_len(), mdat_start)?;
        if !self.stream.consume_payload(mdat.body_len(), payload)? {
            return truncated;
        }
        Ok(ScanStep::Fragment(Fragment {
            offset: moof_start,
            sequence_number: parsed.sequence_number,
            tracks,
            moof_bytes,
            mdat_header_len: mdat.header_len,
            mdat_payload_len: mdat.body_len(),
        }))
    }
}

/// Checks every `trun`'s data lies inside this fragment's `mdat` payload, so a consumer that
/// slices the payload by sample sizes can never read past it.
fn locate_samples(
    trafs: Vec<ParsedTraf>,
    payload_start: u64,
    payload_len: u64,
    mdat_start: u64,
) -> Result<Vec<TrafInfo>, MuxError> {
    let payload_end = payload_start
        .checked_add(payload_len)
        .ok_or_else(|| malformed(mdat_start, "mdat size overflows the stream offset"))?;
    let mut tracks = Vec::with_capacity(trafs.len());
    for traf in trafs {
        for &(start, len) in &traf.data_ranges {
            if start < payload_start || start + len > payload_end {
                let what = format!(
                    "track {} has {len} bytes of samples at byte {start}, outside the mdat payload ({payload_start}..{payload_end})",
                    traf.track_id
                );
                return Err(malformed(mdat_start, what));
            }
        }
        let first_start = traf.data_ranges.first().map_or(payload_start, |&(start, _)| start);
        tracks.push(TrafInfo {
            track_id: traf.track_id,
            base_decode_time: traf.base_decode_time,
            samples: traf.samples,
            payload_offset: first_start - payload_start,
        });
    }
    Ok(tracks)
}

fn check_size_limit(header: &BoxHeader, limit: u64, offset: u64) -> Result<(), MuxError> {
    if header.size > limit {
        let what = format!(
            "'{}' box of {} bytes exceeds the {limit}-byte sanity limit",
            fourcc_text(&header.fourcc),
            header.size
        );
        return Err(malformed(offset, what));
    }
    Ok(())
}

/// `ftyp`, then anything up to and including `moov`.
fn read_init<R: Read>(stream: &mut BoxStream<R>) -> Result<InitInfo, MuxError> {
    let HeaderRead::Complete(ftyp_header) = stream.read_box_header()? else {
        return Err(MuxError::TruncatedInit { at: 0 });
    };
    if &ftyp_header.fourcc != b"ftyp" {
        let what = format!("stream starts with '{}', not ftyp", fourcc_text(&ftyp_header.fourcc));
        return Err(malformed(0, what));
    }
    check_size_limit(&ftyp_header, MAX_FTYP_LEN, 0)?;
    let ftyp = stream.read_whole_box(&ftyp_header)?.ok_or(MuxError::TruncatedInit { at: 0 })?;
    loop {
        let box_start = stream.pos;
        let HeaderRead::Complete(header) = stream.read_box_header()? else {
            return Err(MuxError::TruncatedInit { at: box_start });
        };
        match &header.fourcc {
            b"moov" => {
                check_size_limit(&header, MAX_MOOV_LEN, box_start)?;
                let moov = stream.read_whole_box(&header)?.ok_or(MuxError::TruncatedInit { at: box_start })?;
                return parse_init(&ftyp, &moov, box_start);
            }
            b"moof" | b"mdat" | b"ftyp" => {
                let what = format!("'{}' before the moov", fourcc_text(&header.fourcc));
                return Err(malformed(box_start, what));
            }
            _ => {
                if !stream.skip(header.body_len())? {
                    return Err(MuxError::TruncatedInit { at: box_start });
                }
            }
        }
    }
}

enum HeaderRead {
    Complete(BoxHeader),
    /// The stream ended exactly at a box boundary.
    Eof,
    /// The stream ended inside a box header.
    Partial,
}

/// A `Read` that counts its position. Every method reports a short read as "incomplete"
/// (false / `None` / `Partial`) rather than an error: that is how truncation shows up.
struct BoxStream<R> {
    reader: R,
    pos: u64,
}

impl<R: Read> BoxStream<R> {
    fn read_box_header(&mut self) -> Result<HeaderRead, MuxError> {
        let offset = self.pos;
        let mut start = [0u8; MIN_BOX_LEN as usize];
        match self.read_up_to(&mut start)? {
            0 => return Ok(HeaderRead::Eof),
            n if n < start.len() => return Ok(HeaderRead::Partial),
            _ => {}
        }
        let size = u32::from_be_bytes([start[0], start[1], start[2], start[3]]);
        let fourcc = [start[4], start[5], start[6], start[7]];
        if size != 1 {
            return checked_header(fourcc, u64::from(size), MIN_BOX_LEN, offset).map(HeaderRead::Complete);
        }
        let mut large_size = [0u8; 8];
        if self.read_up_to(&mut large_size)? < large_size.len() {
            return Ok(HeaderRead::Partial);
        }
        checked_header(fourcc, u64::from_be_bytes(large_size), LARGE_HEADER_LEN, offset).map(HeaderRead::Complete)
    }

    /// Fills as much of `buf` as the stream still has.
    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, MuxError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
        self.pos += filled as u64;
        Ok(filled)
    }

    /// The whole box (header bytes rebuilt, then the body), or `None` if the stream ends first.
    /// Memory grows only as bytes actually arrive, whatever size the header claims.
    fn read_whole_box(&mut self, header: &BoxHeader) -> Result<Option<Vec<u8>>, MuxError> {
        let mut bytes = header.encode();
        let complete = self.read_into(header.body_len(), &mut bytes)?;
        Ok(complete.then_some(bytes))
    }

    /// Appends `len` bytes to `out`; false if the stream ends first.
    fn read_into(&mut self, len: u64, out: &mut Vec<u8>) -> Result<bool, MuxError> {
        let read = (&mut self.reader).take(len).read_to_end(out)?;
        self.pos += read as u64;
        Ok(read as u64 == len)
    }

    /// Discards `len` bytes; false if the stream ends first.
    fn skip(&mut self, len: u64) -> Result<bool, MuxError> {
        let skipped = io::copy(&mut (&mut self.reader).take(len), &mut io::sink())?;
        self.pos += skipped;
        Ok(skipped == len)
    }

    fn consume_payload(&mut self, len: u64, payload: Option<&mut Vec<u8>>) -> Result<bool, MuxError> {
        match payload {
            Some(payload) => {
                payload.clear();
                self.read_into(len, payload)
            }
            None => self.skip(len),
        }
    }
}

/// What `hearth check` reports about a clip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub init: InitInfo,
    pub fragment_count: u64,
    /// One per track of the init segment, in the same order.
    pub tracks: Vec<TrackSummary>,
    /// Stream offset just past the last complete fragment (past the `moov` if there is none).
    pub complete_len: u64,
    /// Where the stream was cut, if it was: the start of the incomplete top-level box.
    pub truncated_at: Option<u64>,
}

impl FileSummary {
    pub fn is_truncated(&self) -> bool {
        self.truncated_at.is_some()
    }
}

/// Totals for one track over all complete fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSummary {
    pub track_id: u32,
    pub timescale: u32,
    pub sample_count: u64,
    pub sync_sample_count: u64,
    /// Sum of sample durations, in `timescale` units.
    pub total_duration: u64,
    /// Base decode time of the track's first fragment.
    pub first_decode_time: Option<u64>,
    /// Base decode time of the track's last fragment plus that fragment's durations.
    pub end_time: Option<u64>,
}

impl TrackSummary {
    fn new(track: &TrackInfo) -> Self {
        Self {
            track_id: track.track_id,
            timescale: track.timescale,
            sample_count: 0,
            sync_sample_count: 0,
            total_duration: 0,
            first_decode_time: None,
            end_time: None,
        }
    }

    fn add(&mut self, traf: &TrafInfo) {
        let duration = traf.duration();
        self.sample_count += traf.samples.len() as u64;
        self.sync_sample_count += traf.samples.iter().filter(|sample| sample.is_sync).count() as u64;
        // Saturating: decode times come from the file and may be absurd.
        self.total_duration = self.total_duration.saturating_add(duration);
        self.first_decode_time.get_or_insert(traf.base_decode_time);
        self.end_time = Some(traf.base_decode_time.saturating_add(duration));
    }
}

/// Scans a whole clip without keeping its sample data. A clip cut short summarizes its
/// complete prefix (see [`FileSummary::truncated_at`]); malformed data is an error.
pub fn summarize<R: Read>(reader: R) -> Result<FileSummary, MuxError> {
    let mut scanner = FragmentScanner::new(reader)?;
    let mut tracks: Vec<TrackSummary> = scanner.init().tracks.iter().map(TrackSummary::new).collect();
    let mut fragment_count = 0;
    let mut complete_len = scanner.init_end();
    let truncated_at = loop {
        match scanner.next_fragment()? {
            ScanStep::Fragment(fragment) => {
                fragment_count += 1;
                complete_len = fragment.end_offset();
                for traf in &fragment.tracks {
                    // parse_moof guarantees every traf's track is in the init segment.
                    if let Some(summary) = tracks.iter_mut().find(|summary| summary.track_id == traf.track_id) {
                        summary.add(traf);
                    }
                }
            }
            ScanStep::End => break None,
            ScanStep::Truncated { at } => break Some(at),
        }
    };
    Ok(FileSummary { init: scanner.into_init(), fragment_count, tracks, complete_len, truncated_at })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::test_support::*;
    use crate::mux::{free_box, init_segment};

    fn small_stream() -> TestStream {
        write_stream(small_fragments(), &[0], 20)
    }

    #[test]
    fn round_trip_reads_back_everything_written() {
        let stream = small_stream();
        let mut scanner = FragmentScanner::new(&stream.bytes[..]).unwrap();
        let init = scanner.init().clone();
        assert_eq!(init.bytes, init_segment(&[video_config(), audio_config()]).unwrap());
        assert_eq!(scanner.init_end(), stream.init_len);
        assert_eq!(init.tracks.len(), 2);
        let (video, audio) = (&init.tracks[0], &init.tracks[1]);
        assert_eq!((video.track_id, &video.handler, video.timescale), (1, b"vide", 90_000));
        assert_eq!((video.width, video.height, &video.sample_entry_fourcc), (320, 240, b"avc1"));
        assert_eq!((audio.track_id, &audio.handler, audio.timescale), (2, b"soun", 48_000));
        assert_eq!((audio.width, audio.height, &audio.sample_entry_fourcc), (0, 0, b"mp4a"));
        assert_eq!(video.to_track_config(), Some(video_config()));
        assert_eq!(audio.to_track_config(), Some(audio_config()));

        for (index, runs) in stream.fragments.iter().enumerate() {
            let mut payload = Vec::new();
            let ScanStep::Fragment(fragment) = scanner.next_fragment_with_payload(&mut payload).unwrap() else {
                panic!("fragment {index} missing");
            };
            assert_eq!(payload, stream.payloads[index]);
            assert_eq!((fragment.offset, fragment.end_offset()), stream.fragment_spans[index]);
            assert_fragment_matches(&fragment, &payload, index as u32 + 1, runs, &stream.bytes);
        }
        assert_eq!(scanner.next_fragment().unwrap(), ScanStep::End);
        assert_eq!(scanner.next_fragment().unwrap(), ScanStep::End, "the end stays the end");
    }

    #[test]
    fn skipping_payloads_finds_the_same_fragments() {
        let stream = small_stream();
        let (with_payloads, _) = scan_all(&stream.bytes).unwrap();
        let mut scanner = FragmentScanner::new(&stream.bytes[..]).unwrap();
        for (expected, _) in with_payloads {
            assert_eq!(scanner.next_fragment().unwrap(), ScanStep::Fragment(expected));
        }
        assert_eq!(scanner.next_fragment().unwrap(), ScanStep::End);
    }

    /// The heart of crash recovery: any cut yields exactly the fragments completed before it.
    #[test]
    fn a_cut_at_every_byte_keeps_exactly_the_complete_fragments() {
        let stream = small_stream();
        for cut in 0..=stream.bytes.len() as u64 {
            let result = scan_all(&stream.bytes[..cut as usize]);
            if cut < stream.init_len {
                assert!(matches!(result, Err(MuxError::TruncatedInit { .. })), "cut {cut}: {result:?}");
                continue;
            }
            let (fragments, last) = result.unwrap_or_else(|error| panic!("cut {cut}: {error}"));
            let complete = stream.fragment_spans.iter().filter(|(_, end)| *end <= cut).count();
            assert_eq!(fragments.len(), complete, "cut {cut}");
            for ((fragment, payload), index) in fragments.iter().zip(0..) {
                assert_fragment_matches(fragment, payload, index + 1, &stream.fragments[index as usize], &stream.bytes);
            }
            let at_boundary = cut == stream.init_len || stream.units.iter().any(|(_, end)| *end == cut);
            let expected = match stream.units.iter().find(|(start, end)| *start <= cut && cut < *end) {
                Some(&(start, _)) if !at_boundary => ScanStep::Truncated { at: start },
                _ => ScanStep::End,
            };
            assert_eq!(last, expected, "cut {cut}");
        }
    }

    #[test]
    fn summary_totals_every_track() {
        let stream = small_stream();
        let summary = summarize(&stream.bytes[..]).unwrap();
        assert_eq!(summary.fragment_count, 3);
        assert_eq!(summary.complete_len, stream.bytes.len() as u64);
        assert_eq!(summary.truncated_at, None);
        let video = &summary.tracks[0];
        assert_eq!((video.track_id, video.timescale), (1, 90_000));
        assert_eq!((video.sample_count, video.sync_sample_count), (10, 3));
        assert_eq!(video.total_duration, 10 * 3600);
        assert_eq!((video.first_decode_time, video.end_time), (Some(0), Some(28_800 + 2 * 3600)));
        let audio = &summary.tracks[1];
        assert_eq!((audio.sample_count, audio.sync_sample_count, audio.total_duration), (4, 4, 4096));
        assert_eq!((audio.first_decode_time, audio.end_time), (Some(0), Some(4096)));
    }

    #[test]
    fn summary_of_a_cut_stream_covers_its_complete_prefix() {
        let stream = small_stream();
        let (second_start, second_end) = stream.fragment_spans[1];
        let summary = summarize(&stream.bytes[..second_end as usize - 1]).unwrap();
        assert_eq!(summary.fragment_count, 1);
        assert_eq!(summary.complete_len, stream.fragment_spans[0].1);
        assert_eq!(summary.truncated_at, Some(second_start));
        assert!(summary.is_truncated());
        assert_eq!(summary.tracks[0].sample_count, 5);

        let init_only = summarize(&stream.bytes[..stream.init_len as usize]).unwrap();
        assert_eq!((init_only.fragment_count, init_only.complete_len), (0, stream.init_len));
        assert_eq!(init_only.tracks[0].first_decode_time, None);
        assert!(matches!(summarize(&stream.bytes[..10]), Err(MuxError::TruncatedInit { at: 0 })));
    }

    #[test]
    fn boxes_between_init_and_fragments_are_skipped() {
        let stream = small_stream();
        let init_len = stream.init_len as usize;
        let ftyp_len = stream.bytes[3] as usize;
        let mut bytes = stream.bytes[..ftyp_len].to_vec();
        bytes.extend_from_slice(&free_box(12).unwrap());
        bytes.extend_from_slice(&stream.bytes[ftyp_len..init_len]);
        bytes.extend_from_slice(b"\0\0\0\x10stypmsdhmsdh");
        bytes.extend_from_slice(b"\0\0\0\x01skip\0\0\0\0\0\0\0\x11x");
        bytes.extend_from_slice(&stream.bytes[init_len..]);
        let mut scanner = FragmentScanner::new(&bytes[..]).unwrap();
        assert_eq!(scanner.init().bytes, stream.bytes[..init_len], "init bytes leave the free box out");
        let mut count = 0;
        while let ScanStep::Fragment(_) = scanner.next_fragment().unwrap() {
            count += 1;
        }
        assert_eq!(count, 3);
    }

    #[test]
    fn a_largesize_mdat_is_read_and_reproduced() {
        let samples = video_samples(2, 10);
        let run = OwnedRun { track_id: 1, base_decode_time: 0, samples };
        let mut written = Vec::new();
        let payload = write_fragment(&mut written, 1, std::slice::from_ref(&run));
        let moof_len = written.len() - payload.len() - 8;
        let mut moof = written[..moof_len].to_vec();
        let trun = moof.windows(4).position(|window| window == b"trun").unwrap();
        let offset_at = trun + 12;
        let old = i32::from_be_bytes(moof[offset_at..offset_at + 4].try_into().unwrap());
        moof[offset_at..offset_at + 4].copy_from_slice(&(old + 8).to_be_bytes());

        let mut bytes = init_segment(&[video_config(), audio_config()]).unwrap();
        let init_len = bytes.len() as u64;
        bytes.extend_from_slice(&moof);
        bytes.extend_from_slice(b"\0\0\0\x01mdat");
        bytes.extend_from_slice(&(16 + payload.len() as u64).to_be_bytes());
        bytes.extend_from_slice(&payload);
        let (fragments, last) = scan_all(&bytes).unwrap();
        assert_eq!(last, ScanStep::End);
        let (fragment, read_payload) = &fragments[0];
        assert_eq!(fragment.mdat_header_len, 16);
        assert_eq!(read_payload, &payload);
        assert_eq!(fragment.end_offset(), bytes.len() as u64);
        let header_at = (init_len as usize) + moof.len();
        assert_eq!(fragment.mdat_header(), bytes[header_at..header_at + 16]);
    }

    fn expect_malformed(bytes: &[u8], expected_offset: u64, needle: &str) {
        let result = scan_all(bytes);
        match result {
            Err(MuxError::Malformed { offset, what }) => {
                assert_eq!(offset, expected_offset, "{what}");
                assert!(what.contains(needle), "{what:?} should mention {needle:?}");
            }
            other => panic!("expected a malformed error about {needle:?}, got {other:?}"),
        }
    }

    #[test]
    fn malformed_streams_name_the_problem_and_its_offset() {
        let stream = small_stream();
        let init_len = stream.init_len as usize;
        let (first_start, first_end) = stream.fragment_spans[0];
        let first = &stream.bytes[first_start as usize..first_end as usize];
        let moof_len = u32::from_be_bytes(first[..4].try_into().unwrap()) as usize;
        let with_tail = |tail: &[u8]| [&stream.bytes[..init_len], tail].concat();

        expect_malformed(b"\0\0\0\x10moovxxxxxxxx", 0, "not ftyp");
        expect_malformed(&with_tail(b"\0\0\0\x09mdatx"), stream.init_len, "mdat without a moof");
        expect_malformed(&with_tail(b"\0\0\0\x04free"), stream.init_len, "smaller than its 8-byte header");
        expect_malformed(&with_tail(b"\0\0\0\0free"), stream.init_len, "size 0");
        expect_malformed(&with_tail(&stream.bytes[..init_len]), stream.init_len, "second 'ftyp'");

        let moof_then_free = with_tail(&[&first[..moof_len], &free_box(8).unwrap()[..]].concat());
        expect_malformed(&moof_then_free, (init_len + moof_len) as u64, "not mdat");

        // Shrink the mdat so the samples the moof describes no longer fit in it.
        let mut short_mdat = first.to_vec();
        short_mdat[moof_len + 3] -= 1;
        short_mdat.pop();
        expect_malformed(&with_tail(&short_mdat), (init_len + moof_len) as u64, "outside the mdat payload");

        // A traf for a track the moov doesn't have.
        let mut unknown_track = first.to_vec();
        let tfhd = unknown_track.windows(4).position(|window| window == b"tfhd").unwrap();
        unknown_track[tfhd + 11] = 9;
        expect_malformed(&with_tail(&unknown_track), (init_len + tfhd - 4) as u64, "track 9");

        let huge_moof = with_tail(b"\0\0\0\x01moof\0\0\0\x01\0\0\0\0");
        expect_malformed(&huge_moof, stream.init_len, "sanity limit");
    }

    #[test]
    fn a_huge_mdat_is_skipped_but_never_read_into_memory() {
        let stream = small_stream();
        let (start, end) = stream.fragment_spans[2];
        let fragment = &stream.bytes[start as usize..end as usize];
        let moof_len = u32::from_be_bytes(fragment[..4].try_into().unwrap()) as usize;
        let mut bytes = stream.bytes[..start as usize].to_vec();
        bytes.extend_from_slice(&fragment[..moof_len]);
        bytes.extend_from_slice(&(2u32 << 30).to_be_bytes());
        bytes.extend_from_slice(b"mdat");
        bytes.extend_from_slice(&fragment[moof_len + 8..]);

        let (fragments, last) = {
            let mut scanner = FragmentScanner::new(&bytes[..]).unwrap();
            let steps: Vec<_> = (0..3).map(|_| scanner.next_fragment().unwrap()).collect();
            (steps, scanner.next_fragment().unwrap())
        };
        assert!(fragments.iter().take(2).all(|step| matches!(step, ScanStep::Fragment(_))));
        assert_eq!(fragments[2], ScanStep::Truncated { at: start });
        assert_eq!(last, ScanStep::Truncated { at: start });
        expect_malformed(&bytes, start + moof_len as u64, "sanity limit");
    }

    #[test]
    fn an_error_is_sticky() {
        let stream = small_stream();
        let bytes = [&stream.bytes[..stream.init_len as usize], b"\0\0\0\x09mdatx"].concat();
        let mut scanner = FragmentScanner::new(&bytes[..]).unwrap();
        assert!(scanner.next_fragment().is_err());
        assert!(
            matches!(scanner.next_fragment(), Err(MuxError::Malformed { offset, .. }) if offset == stream.init_len)
        );
    }

    #[test]
    fn io_errors_are_reported_as_io() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        assert!(matches!(FragmentScanner::new(Failing), Err(MuxError::Io(_))));
    }
}
