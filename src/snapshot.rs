//! Snapshots: a camera's latest keyframe decoded with ffmpeg-next and encoded as JPEG, for the
//! camera grid and the timeline. Decode only — recordings are never transcoded.
//!
//! The keyframe arrives as an MP4 sample (4-byte length-prefixed NAL units) plus the sample
//! entry that describes it (`avc1` with `avcC`, or `hvc1` with `hvcC`). The decoder is fed
//! Annex B: the parameter sets from the sample entry, then the frame's NAL units, each behind
//! a start code — so no extradata (which ffmpeg-next cannot set safely) is needed.

use ffmpeg_next as ffmpeg;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("unsupported sample entry `{0}`")]
    Unsupported(String),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("ffmpeg {context}: {source}")]
    Ffmpeg { context: &'static str, source: ffmpeg::Error },
    #[error("{0} not available in this ffmpeg build")]
    CodecMissing(&'static str),
}

fn ff(context: &'static str) -> impl Fn(ffmpeg::Error) -> SnapshotError {
    move |source| SnapshotError::Ffmpeg { context, source }
}

/// Decodes one keyframe and returns a JPEG, scaled down to at most `max_width` pixels wide.
/// CPU-bound (tens of ms at 1080p): call from `spawn_blocking`.
pub fn keyframe_to_jpeg(sample_entry: &[u8], sample: &[u8], max_width: u32) -> Result<Vec<u8>, SnapshotError> {
    let (codec_id, annex_b) = to_annex_b(sample_entry, sample)?;
    ffmpeg::init().map_err(ff("init"))?;
    let frame = decode(codec_id, &annex_b)?;
    encode_jpeg(&frame, max_width)
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// The decoder id and the Annex B bytes for one keyframe.
pub(crate) fn to_annex_b(sample_entry: &[u8], sample: &[u8]) -> Result<(ffmpeg::codec::Id, Vec<u8>), SnapshotError> {
    let fourcc = sample_entry.get(4..8).ok_or(SnapshotError::Malformed("sample entry"))?;
    let (codec_id, config_box, parameter_sets): (_, &[u8; 4], fn(&[u8]) -> Option<Vec<&[u8]>>) = match fourcc {
        b"avc1" | b"avc3" => (ffmpeg::codec::Id::H264, b"avcC", avcc_parameter_sets),
        b"hvc1" | b"hev1" => (ffmpeg::codec::Id::HEVC, b"hvcC", hvcc_parameter_sets),
        other => return Err(SnapshotError::Unsupported(String::from_utf8_lossy(other).into_owned())),
    };
    let config = find_box(sample_entry, config_box).ok_or(SnapshotError::Malformed("decoder configuration"))?;
    let mut out = Vec::with_capacity(sample.len() + 256);
    for nal in parameter_sets(config).ok_or(SnapshotError::Malformed("parameter sets"))? {
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nal);
    }
    let mut rest = sample;
    while !rest.is_empty() {
        let len =
            u32::from_be_bytes(rest.get(..4).ok_or(SnapshotError::Malformed("sample"))?.try_into().unwrap_or([0; 4]))
                as usize;
        let nal = rest.get(4..4 + len).ok_or(SnapshotError::Malformed("sample"))?;
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nal);
        rest = &rest[4 + len..];
    }
    Ok((codec_id, out))
}

/// Finds a child box by type inside a visual sample entry (after its 86-byte fixed part).
fn find_box<'a>(sample_entry: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let mut rest = sample_entry.get(86..)?;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes(rest[..4].try_into().ok()?) as usize;
        if size < 8 || size > rest.len() {
            return None;
        }
        if &rest[4..8] == kind {
            return Some(&rest[8..size]);
        }
        rest = &rest[size..];
    }
    None
}

/// SPS and PPS from an `avcC` (ISO/IEC 14496-15 §5.3.3.1).
fn avcc_parameter_sets(config: &[u8]) -> Option<Vec<&[u8]>> {
    let mut nals = Vec::new();
    let mut pos = 5;
    let sps_count = config.get(pos)? & 0x1f;
    pos += 1;
    for _ in 0..sps_count {
        nals.push(length_prefixed(config, &mut pos)?);
    }
    let pps_count = *config.get(pos)?;
    pos += 1;
    for _ in 0..pps_count {
        nals.push(length_prefixed(config, &mut pos)?);
    }
    Some(nals)
}

/// VPS, SPS and PPS from an `hvcC` (ISO/IEC 14496-15 §8.3.3.1).
fn hvcc_parameter_sets(config: &[u8]) -> Option<Vec<&[u8]>> {
    let mut nals = Vec::new();
    let mut pos = 22;
    let arrays = *config.get(pos)?;
    pos += 1;
    for _ in 0..arrays {
        pos += 1; // array_completeness, NAL unit type
        let count = u16::from_be_bytes(config.get(pos..pos + 2)?.try_into().ok()?);
        pos += 2;
        for _ in 0..count {
            nals.push(length_prefixed(config, &mut pos)?);
        }
    }
    Some(nals)
}

fn length_prefixed<'a>(data: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = u16::from_be_bytes(data.get(*pos..*pos + 2)?.try_into().ok()?) as usize;
    let nal = data.get(*pos + 2..*pos + 2 + len)?;
    *pos += 2 + len;
    Some(nal)
}

fn decode(codec_id: ffmpeg::codec::Id, annex_b: &[u8]) -> Result<ffmpeg::frame::Video, SnapshotError> {
    let codec = ffmpeg::decoder::find(codec_id).ok_or(SnapshotError::CodecMissing("decoder"))?;
    let mut decoder = ffmpeg::codec::Context::new_with_codec(codec).decoder().video().map_err(ff("decoder"))?;
    decoder.send_packet(&ffmpeg::Packet::copy(annex_b)).map_err(ff("decode"))?;
    decoder.send_eof().map_err(ff("decode"))?;
    let mut frame = ffmpeg::frame::Video::empty();
    decoder.receive_frame(&mut frame).map_err(ff("decode"))?;
    Ok(frame)
}

pub(crate) fn encode_jpeg(frame: &ffmpeg::frame::Video, max_width: u32) -> Result<Vec<u8>, SnapshotError> {
    use ffmpeg::format::Pixel;
    let (width, height) = scaled_size(frame.width(), frame.height(), max_width);
    let mut scaler = ffmpeg::software::scaling::Context::get(
        frame.format(),
        frame.width(),
        frame.height(),
        Pixel::YUVJ420P,
        width,
        height,
        ffmpeg::software::scaling::Flags::BILINEAR,
    )
    .map_err(ff("scaler"))?;
    let mut scaled = ffmpeg::frame::Video::empty();
    scaler.run(frame, &mut scaled).map_err(ff("scale"))?;
    scaled.set_pts(Some(0));

    let codec = ffmpeg::encoder::find(ffmpeg::codec::Id::MJPEG).ok_or(SnapshotError::CodecMissing("MJPEG encoder"))?;
    let mut encoder = ffmpeg::codec::Context::new_with_codec(codec).encoder().video().map_err(ff("encoder"))?;
    encoder.set_width(width);
    encoder.set_height(height);
    encoder.set_format(Pixel::YUVJ420P);
    encoder.set_time_base(ffmpeg::Rational::new(1, 25));
    let mut encoder = encoder.open_as(codec).map_err(ff("open MJPEG"))?;
    encoder.send_frame(&scaled).map_err(ff("encode"))?;
    encoder.send_eof().map_err(ff("encode"))?;
    let mut packet = ffmpeg::Packet::empty();
    encoder.receive_packet(&mut packet).map_err(ff("encode"))?;
    Ok(packet.data().unwrap_or_default().to_vec())
}

/// Keeps the aspect ratio; even dimensions (4:2:0 chroma).
fn scaled_size(width: u32, height: u32, max_width: u32) -> (u32, u32) {
    if width <= max_width || width == 0 {
        return (width & !1, height & !1);
    }
    let h = (u64::from(height) * u64::from(max_width) / u64::from(width)) as u32;
    (max_width & !1, h.max(2) & !1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_keeps_aspect_and_even_sizes() {
        assert_eq!(scaled_size(1920, 1080, 640), (640, 360));
        assert_eq!(scaled_size(640, 360, 1280), (640, 360));
        assert_eq!(scaled_size(1921, 1081, 640), (640, 360));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(keyframe_to_jpeg(b"", b"", 640).is_err());
        let mut entry = vec![0, 0, 0, 100];
        entry.extend_from_slice(b"avc1");
        entry.resize(100, 0);
        assert!(keyframe_to_jpeg(&entry, &[0, 0, 0, 9, 1, 2], 640).is_err());
        assert!(matches!(to_annex_b(b"\0\0\0\x08mp4v", b""), Err(SnapshotError::Unsupported(_))));
    }

    #[tokio::test]
    async fn the_demo_cameras_keyframe_becomes_a_jpeg() {
        // A real encoded keyframe: the demo pattern's first frame, wrapped as an MP4 sample.
        let opts = crate::demo::PatternOptions { seconds: 1, ..Default::default() };
        let encoded = crate::demo::encode_pattern(opts).await.unwrap();
        let mut avcc = vec![1, encoded.sps[1], encoded.sps[2], encoded.sps[3], 0xff, 0xe1];
        avcc.extend_from_slice(&(encoded.sps.len() as u16).to_be_bytes());
        avcc.extend_from_slice(&encoded.sps);
        avcc.push(1);
        avcc.extend_from_slice(&(encoded.pps.len() as u16).to_be_bytes());
        avcc.extend_from_slice(&encoded.pps);
        let mut entry = vec![0u8; 86];
        entry[4..8].copy_from_slice(b"avc1");
        entry.extend_from_slice(&((avcc.len() + 8) as u32).to_be_bytes());
        entry.extend_from_slice(b"avcC");
        entry.extend_from_slice(&avcc);
        let len = entry.len() as u32;
        entry[..4].copy_from_slice(&len.to_be_bytes());
        let mut sample = Vec::new();
        for nal in &encoded.frames[0].nals {
            sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            sample.extend_from_slice(nal);
        }
        let jpeg = keyframe_to_jpeg(&entry, &sample, 320).unwrap();
        assert_eq!(&jpeg[..2], &[0xff, 0xd8], "JPEG SOI marker");
        assert!(jpeg.len() > 1000);
    }
}
