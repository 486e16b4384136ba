//! Live view fan-out: one camera connection feeds the recorder *and* any number of viewers.
//!
//! The camera task publishes what the recorder produces — init segments and fMP4 fragments —
//! into a [`LiveFeed`]. Clips restart their decode times at zero, but a live viewer needs one
//! continuous timeline, so fragments are re-timed to the RTSP session's clock once, here, not
//! per viewer — and only while someone watches. While a camera has viewers the feed keeps the
//! fragments since the last keyframe (the open GOP), so another viewer starts playing at once;
//! it always keeps the current init segment, and the last keyframe for snapshots. Viewers that
//! fall behind the broadcast buffer are resynchronised rather than fed a broken stream.

use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::mux;

/// Fragments buffered for a slow viewer before it must resynchronise (~8 s at 1/s). Each slot
/// holds a fragment until overwritten, so this bounds memory per watched camera (~4 MB at
/// 4 Mbit/s).
const BROADCAST_CAPACITY: usize = 8;
/// Upper bound on the open-GOP cache, whatever the camera's GOP (~10 s of 1 s fragments).
const MAX_GOP_FRAGMENTS: usize = 10;

/// What a viewer needs to (re)start: codec, MIME type for MSE, and the init segment.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamHeader {
    pub codec: String,
    pub mime: String,
    pub init: Bytes,
}

#[derive(Clone, Debug)]
pub enum LiveItem {
    /// New stream parameters: a viewer must reset its decoder.
    Header(StreamHeader),
    /// One `moof`+`mdat`; `keyframe` when it starts with one.
    Fragment { bytes: Bytes, keyframe: bool },
}

/// The latest keyframe, for snapshots.
#[derive(Clone, Debug)]
pub struct Keyframe {
    /// The `avc1`/`hvc1` sample entry describing it.
    pub sample_entry: Vec<u8>,
    /// AVC/HEVC sample: 4-byte length-prefixed NAL units.
    pub data: Bytes,
}

#[derive(Default)]
struct Cache {
    header: Option<StreamHeader>,
    gop: Vec<Bytes>,
    keyframe: Option<Keyframe>,
}

/// One camera's live stream. See the module docs.
pub struct LiveFeed {
    tx: broadcast::Sender<LiveItem>,
    cache: Mutex<Cache>,
}

/// What a new viewer gets: where to start, and the stream from there on.
pub struct Subscription {
    pub header: Option<StreamHeader>,
    pub backlog: Vec<Bytes>,
    pub items: broadcast::Receiver<LiveItem>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        LiveFeed { tx: broadcast::channel(BROADCAST_CAPACITY).0, cache: Mutex::new(Cache::default()) }
    }
}

impl LiveFeed {
    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A clip started with `init`. Only a real change of parameters reaches viewers.
    pub fn publish_init(&self, codec: &str, init: &[u8]) {
        let mut cache = self.cache();
        if cache.header.as_ref().is_some_and(|h| h.init == init) {
            return;
        }
        let header = StreamHeader {
            codec: codec.to_owned(),
            mime: format!("video/mp4; codecs=\"{codec}\""),
            init: Bytes::copy_from_slice(init),
        };
        cache.header = Some(header.clone());
        cache.gop.clear();
        let _ = self.tx.send(LiveItem::Header(header));
    }

    /// A fragment of the current clip; `offsets` re-time it onto the session clock. With
    /// nobody watching this costs nothing: no copy, no cache (a first viewer then starts at
    /// the next keyframe; later ones at once, from the open GOP).
    pub fn publish_fragment(&self, fragment: &[u8], offsets: &[(u32, u64)], keyframe: bool) {
        if self.tx.receiver_count() == 0 {
            self.cache().gop.clear();
            return;
        }
        let bytes = match retime(fragment, offsets) {
            Some(bytes) => bytes,
            None => return, // our own muxer's output; unparseable means a bug, not live data
        };
        let mut cache = self.cache();
        if keyframe {
            cache.gop.clear();
        }
        if cache.gop.len() < MAX_GOP_FRAGMENTS && (keyframe || !cache.gop.is_empty()) {
            cache.gop.push(bytes.clone());
        }
        let _ = self.tx.send(LiveItem::Fragment { bytes, keyframe });
    }

    /// The camera went away: viewers keep their socket and wait for a new header.
    pub fn reset(&self) {
        let mut cache = self.cache();
        cache.header = None;
        cache.gop.clear();
    }

    pub fn set_keyframe(&self, keyframe: Keyframe) {
        self.cache().keyframe = Some(keyframe);
    }

    pub fn keyframe(&self) -> Option<Keyframe> {
        self.cache().keyframe.clone()
    }

    /// Subscribes and returns the current header and open GOP, consistently: nothing
    /// published after the snapshot is missed, nothing before it is repeated.
    pub fn subscribe(&self) -> Subscription {
        let cache = self.cache();
        Subscription { header: cache.header.clone(), backlog: cache.gop.clone(), items: self.tx.subscribe() }
    }
}

/// The fragment with each listed track's decode time advanced by its offset.
fn retime(fragment: &[u8], offsets: &[(u32, u64)]) -> Option<Bytes> {
    let moof_len = u32::from_be_bytes(fragment.get(0..4)?.try_into().ok()?) as usize;
    let moof = fragment.get(..moof_len)?;
    let mut out = mux::shift_fragment_times(moof, offsets).ok()?;
    out.extend_from_slice(&fragment[moof_len..]);
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::{Sample, TrackRun};

    fn fragment(sequence: u32, base: u64, keyframe: bool) -> Vec<u8> {
        let samples = [Sample { duration: 3600, size: 4, is_sync: keyframe, composition_offset: 0 }];
        let mut bytes =
            mux::fragment(sequence, &[TrackRun { track_id: 1, base_decode_time: base, samples: &samples }], 4).unwrap();
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        bytes
    }

    #[test]
    fn fragments_are_retimed_onto_the_session_clock() {
        let retimed = retime(&fragment(7, 3600, true), &[(1, 90_000)]).unwrap();
        let mut stream = test_init();
        stream.extend_from_slice(&retimed);
        let mut scanner = mux::FragmentScanner::new(&stream[..]).unwrap();
        let mux::ScanStep::Fragment(parsed) = scanner.next_fragment().unwrap() else { panic!("no fragment") };
        assert_eq!((parsed.sequence_number, parsed.tracks[0].base_decode_time), (7, 93_600));
        assert_eq!(&retimed[retimed.len() - 4..], &[1, 2, 3, 4], "payload untouched");
    }

    fn test_init() -> Vec<u8> {
        let mut entry = vec![0, 0, 0, 16];
        entry.extend_from_slice(b"avc1");
        entry.extend_from_slice(&[0; 8]);
        let track = mux::TrackConfig {
            kind: mux::TrackKind::Video { width: 640, height: 360 },
            timescale: 90_000,
            sample_entry: entry,
        };
        mux::init_segment(&[track]).unwrap()
    }

    #[test]
    fn new_viewers_start_at_the_last_keyframe() {
        let feed = LiveFeed::default();
        let _first_viewer = feed.subscribe();
        feed.publish_init("avc1.64001f", b"init");
        feed.publish_fragment(&fragment(1, 0, true), &[], true);
        feed.publish_fragment(&fragment(2, 3600, false), &[], false);
        feed.publish_fragment(&fragment(3, 7200, true), &[], true);
        feed.publish_fragment(&fragment(4, 10800, false), &[], false);
        let sub = feed.subscribe();
        assert_eq!(sub.header.unwrap().mime, "video/mp4; codecs=\"avc1.64001f\"");
        assert_eq!(sub.backlog.len(), 2, "from the keyframe of fragment 3 on");
        // The same init again (next clip) is not news for viewers.
        let mut items = feed.subscribe().items;
        feed.publish_init("avc1.64001f", b"init");
        assert!(items.try_recv().is_err());
        feed.publish_init("avc1.640028", b"other init");
        assert!(matches!(items.try_recv(), Ok(LiveItem::Header(_))));
    }

    #[test]
    fn nothing_is_cached_or_copied_without_viewers() {
        let feed = LiveFeed::default();
        feed.publish_init("avc1.64001f", b"init");
        feed.publish_fragment(&fragment(1, 0, true), &[], true);
        let sub = feed.subscribe();
        assert!(sub.header.is_some(), "the init segment is always known");
        assert!(sub.backlog.is_empty());
    }
}
