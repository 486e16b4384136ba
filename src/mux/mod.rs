//! The fragmented-MP4 container: every ISO BMFF box hearth writes or reads is built or parsed
//! here, and nowhere else.
//!
//! A clip is an init segment (`ftyp` + `moov`, built by [`init_segment`] from one
//! [`TrackConfig`] per camera stream) followed by `moof`+`mdat` pairs, one per second or two of
//! media, built by [`fragment`] from one [`TrackRun`] of [`Sample`]s per track. [`fragment`]
//! returns only the headers (the `moof` and the 8-byte `mdat` header), so the recorder appends
//! the sample bytes itself. [`free_box`] makes the padding the clip writer uses to push age's
//! buffered chunk to disk (sized by `crypto::EncryptingFile::flush_padding_len`, which crosses
//! the chunk boundary); [`padding_to_boundary`] computes padding that ends exactly on one.
//!
//! Reading goes the other way and never holds more than one fragment: [`FragmentScanner`] walks
//! any [`std::io::Read`], parses the [`InitInfo`] (raw init bytes plus one [`TrackInfo`] per
//! track) and then returns one [`Fragment`] (with a [`TrafInfo`] per track) per `moof`+`mdat`
//! pair. A file cut short by a crash scans as its complete fragments followed by
//! [`ScanStep::Truncated`], never as an error, which is what crash recovery relies on; malformed
//! data is a [`MuxError`] naming the problem and its byte offset. [`summarize`] condenses a clip
//! into a [`FileSummary`] for `hearth check`, [`shift_fragment_times`] moves a fragment onto
//! another clock (live view), and [`rewrite_fragment_header`] renumbers and
//! retimes a fragment for export.

mod boxes;
mod parse;
mod scan;
mod write;

#[cfg(test)]
mod ffprobe_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod test_support;

pub use parse::{rebase_fragment, rewrite_fragment_header, shift_fragment_times, InitInfo, TrackInfo};
pub use scan::{summarize, FileSummary, Fragment, FragmentScanner, ScanStep, TrackSummary, TrafInfo};
pub use write::{fragment, free_box, init_segment, padding_to_boundary};

/// Everything that can go wrong building or reading an MP4 stream.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error("I/O error on an MP4 stream: {0}")]
    Io(#[from] std::io::Error),

    /// The bytes are not a stream hearth can read. `offset` is from the start of the stream.
    #[error("malformed MP4 at byte {offset}: {what}")]
    Malformed { offset: u64, what: String },

    /// The stream ends before its init segment is complete, so nothing in it is usable.
    #[error("MP4 stream ends inside its init segment (incomplete box at byte {at})")]
    TruncatedInit { at: u64 },

    #[error("an init segment needs at least one track")]
    NoTracks,

    #[error("track {track_id} cannot be muxed: {what}")]
    InvalidTrack { track_id: u32, what: String },

    #[error("cannot build fragment: {0}")]
    InvalidFragment(String),

    #[error("a free box must be 8 bytes to 4 GiB long, not {0} bytes")]
    BadFreeBoxLen(usize),

    #[error("{what} does not fit its MP4 field")]
    TooLarge { what: &'static str },
}

/// What a track carries; decides its handler, media header and `tkhd` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Video { width: u16, height: u16 },
    Audio { channels: u16, sample_rate: u32 },
}

/// One track of an init segment. Track ids are 1-based, in the order the configs are given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackConfig {
    pub kind: TrackKind,
    /// Ticks per second of this track's sample durations and decode times.
    pub timescale: u32,
    /// A complete sample entry box (`avc1` with `avcC`, `hvc1`, `mp4a` with `esds`, ...), as
    /// retina's `mp4_sample_entry().build()` makes it; embedded verbatim in `stsd`.
    pub sample_entry: Vec<u8>,
}

/// One sample (a video access unit or an audio frame) as a `trun` entry describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    /// In the track's timescale.
    pub duration: u32,
    /// Bytes of sample data in the `mdat`.
    pub size: u32,
    /// A key frame. Audio samples are always sync: callers set this for every audio sample.
    pub is_sync: bool,
    /// Presentation minus decode time, in the track's timescale; 0 unless B-frames are muxed.
    pub composition_offset: i32,
}

/// The samples of one track within one fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackRun<'a> {
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale, from the start of the clip.
    pub base_decode_time: u64,
    pub samples: &'a [Sample],
}

/// `trun` sample flags for a key frame: depends on no other sample (`sample_depends_on=2`).
const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `trun` sample flags for a predicted frame: `sample_depends_on=1`, `sample_is_non_sync_sample`.
const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;
/// The `sample_is_non_sync_sample` bit, the only bit the reader needs to tell key frames apart.
const SAMPLE_IS_NON_SYNC: u32 = 0x0001_0000;
