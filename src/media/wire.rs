//! The pipe protocol between the hub and `hearth-media`: a stream of messages, each a one-byte
//! tag, a big-endian u32 length and that many bytes. Both directions, all jobs. Small on
//! purpose: the helper is started by our own binary, so there is no version negotiation —
//! but the hub still treats what comes back as untrusted input (the helper parses camera
//! bytes), so every length is bounded and every payload checked.

use std::io::{self, Read, Write};

/// Largest message either side accepts: a 4K keyframe is a few MB, a JPEG far less.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// The job's settings (JSON): first message of every job.
pub const CONFIG: u8 = 1;
/// An `avc1`/`hvc1` sample entry, sent before the first frame and whenever it changes.
pub const SAMPLE_ENTRY: u8 = 2;
/// A frame: i64 arrival time in µs, one keyframe byte, then the MP4 sample.
pub const FRAME: u8 = 3;
/// A JPEG picture.
pub const JPEG: u8 = 4;
/// A motion report (JSON, [`crate::motion::Report`]).
pub const REPORT: u8 = 5;
/// The job failed; the payload is the reason (UTF-8).
pub const ERROR: u8 = 6;
/// The encoded test pattern: its header (JSON), parameter sets and pictures.
pub const PATTERN_HEADER: u8 = 7;
pub const SPS: u8 = 8;
pub const PPS: u8 = 9;
/// One picture: a keyframe byte, then NAL units each behind a u32 length.
pub const PICTURE: u8 = 10;

pub fn write(out: &mut impl Write, tag: u8, payload: &[u8]) -> io::Result<()> {
    write_header(out, tag, payload.len())?;
    out.write_all(payload)
}

fn write_header(out: &mut impl Write, tag: u8, len: usize) -> io::Result<()> {
    let len = u32::try_from(len)
        .ok()
        .filter(|&l| l as usize <= MAX_PAYLOAD)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "message too large for the media helper"))?;
    out.write_all(&[tag])?;
    out.write_all(&len.to_be_bytes())
}

/// The next message, or `None` at a clean end of stream (between messages).
pub fn read(input: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 5];
    match input.read(&mut header[..1])? {
        0 => return Ok(None),
        _ => input.read_exact(&mut header[1..])?,
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("media message of {len} bytes")));
    }
    let mut payload = vec![0u8; len];
    input.read_exact(&mut payload)?;
    Ok(Some((header[0], payload)))
}

/// Time and keyframe flag before a frame message's sample.
const FRAME_HEADER: usize = 9;

/// A frame message, the sample copied straight to `out` (this runs for every frame).
pub fn write_frame(out: &mut impl Write, time_us: i64, keyframe: bool, sample: &[u8]) -> io::Result<()> {
    write_header(out, FRAME, FRAME_HEADER + sample.len())?;
    out.write_all(&time_us.to_be_bytes())?;
    out.write_all(&[u8::from(keyframe)])?;
    out.write_all(sample)
}

/// Splits a frame message's payload into (time_us, keyframe, sample), without copying it.
pub fn parse_frame(payload: Vec<u8>) -> Option<(i64, bool, bytes::Bytes)> {
    let time = i64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
    let keyframe = *payload.get(FRAME_HEADER - 1)? != 0;
    Some((time, keyframe, bytes::Bytes::from(payload).slice(FRAME_HEADER..)))
}

/// A picture message's payload: keyframe byte, then length-prefixed NAL units.
pub fn picture_payload(keyframe: bool, nals: &[bytes::Bytes]) -> Vec<u8> {
    let mut payload = vec![u8::from(keyframe)];
    for nal in nals {
        payload.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        payload.extend_from_slice(nal);
    }
    payload
}

pub fn parse_picture(payload: &[u8]) -> Option<(bool, Vec<bytes::Bytes>)> {
    let keyframe = *payload.first()? != 0;
    let mut rest = &payload[1..];
    let mut nals = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        nals.push(bytes::Bytes::copy_from_slice(rest.get(4..4 + len)?));
        rest = &rest[4 + len..];
    }
    Some((keyframe, nals))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn messages_round_trip_and_end_cleanly() {
        let mut buf = Vec::new();
        write_frame(&mut buf, -5, true, b"abc").unwrap();
        write(&mut buf, ERROR, b"").unwrap();
        let mut input = &buf[..];
        let (tag, payload) = read(&mut input).unwrap().unwrap();
        assert_eq!(tag, FRAME);
        assert_eq!(parse_frame(payload), Some((-5, true, bytes::Bytes::from_static(b"abc"))));
        assert_eq!(read(&mut input).unwrap(), Some((ERROR, Vec::new())));
        assert_eq!(read(&mut input).unwrap(), None);
    }

    #[test]
    fn truncated_and_oversized_messages_are_errors() {
        let mut buf = Vec::new();
        write(&mut buf, JPEG, b"0123456789").unwrap();
        assert!(read(&mut &buf[..7]).is_err(), "cut inside the payload");
        assert!(read(&mut &buf[..3]).is_err(), "cut inside the header");
        let huge = [JPEG, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(read(&mut &huge[..]).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(parse_frame(vec![0; 8]), None);
    }

    proptest! {
        #[test]
        fn pictures_round_trip(keyframe: bool, nals in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..5)) {
            let nals: Vec<bytes::Bytes> = nals.into_iter().map(bytes::Bytes::from).collect();
            prop_assert_eq!(parse_picture(&picture_payload(keyframe, &nals)), Some((keyframe, nals)));
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_picture(&data);
            let _ = parse_frame(data.clone());
            let _ = read(&mut &data[..]);
        }
    }
}
