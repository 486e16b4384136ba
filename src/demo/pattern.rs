//! The demo camera's picture: a moving test pattern (colour bars, a bright
//! box sweeping across them, a loop-progress bar and a burned-in clock and
//! frame counter drawn with the built-in bitmap font), drawn straight into
//! YUV420P and encoded once, at start-up, into an H.264 loop with libx264
//! through ffmpeg-next. The server then replays that loop forever, so serving
//! a client costs no encoding. This module owns [`PatternOptions`],
//! [`EncodedLoop`] and everything between the options and the encoded NALs.

use bytes::Bytes;
use ffmpeg_next as ffmpeg;

use super::font::{self, Plane};
use super::DemoError;

/// What to draw and how to encode it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PatternOptions {
    /// Picture width in pixels (even, 64..=3840).
    pub width: u32,
    /// Picture height in pixels (even, 64..=2160).
    pub height: u32,
    /// Frames per second (1..=60).
    pub fps: u32,
    /// Loop length in seconds (1..=600).
    pub seconds: u32,
    /// Target bit rate in bits per second (50 kbit/s..=50 Mbit/s).
    pub bitrate: u64,
}

impl Default for PatternOptions {
    fn default() -> Self {
        PatternOptions { width: 640, height: 360, fps: 25, seconds: 20, bitrate: 1_000_000 }
    }
}

impl PatternOptions {
    /// Rejects values the drawing code or the encoder cannot honour, before
    /// spending seconds of CPU on them.
    pub fn validate(&self) -> Result<(), DemoError> {
        let bad = |what: &str| Err(DemoError::InvalidOptions(what.to_owned()));
        if !(64..=3840).contains(&self.width) || !self.width.is_multiple_of(2) {
            return bad("width must be even and within 64..=3840");
        }
        if !(64..=2160).contains(&self.height) || !self.height.is_multiple_of(2) {
            return bad("height must be even and within 64..=2160");
        }
        if !(1..=60).contains(&self.fps) {
            return bad("fps must be within 1..=60");
        }
        if !(1..=600).contains(&self.seconds) {
            return bad("seconds must be within 1..=600");
        }
        if !(50_000..=50_000_000).contains(&self.bitrate) {
            return bad("bitrate must be within 50 kbit/s..=50 Mbit/s");
        }
        Ok(())
    }

    /// Frames in the loop.
    pub fn frame_count(&self) -> usize {
        self.fps as usize * self.seconds as usize
    }

    /// Keyframe interval in frames: one every two seconds, like most cameras.
    pub fn gop(&self) -> u32 {
        self.fps * 2
    }
}

/// One encoded picture (access unit).
#[derive(Clone, Debug)]
pub struct EncodedFrame {
    /// NAL units without start codes; never SPS, PPS or access unit delimiters
    /// (the server sends the parameter sets itself before each keyframe).
    pub nals: Vec<Bytes>,
    /// True for IDR pictures, where a decoder may start.
    pub is_keyframe: bool,
}

/// The whole encoded loop, ready to be packetised.
#[derive(Clone, Debug)]
pub struct EncodedLoop {
    /// Sequence parameter set NAL, without start code.
    pub sps: Bytes,
    /// Picture parameter set NAL, without start code.
    pub pps: Bytes,
    /// Frames in presentation order (which is also decode order: no B-frames).
    pub frames: Vec<EncodedFrame>,
    /// Frames per second; each frame lasts `90_000 / fps` RTP ticks.
    pub fps: u32,
    /// Picture size in pixels.
    pub width: u32,
    pub height: u32,
}

impl EncodedLoop {
    /// The SDP `profile-level-id`: profile_idc, constraint flags and
    /// level_idc straight from the SPS, as six hex digits.
    pub fn profile_level_id(&self) -> String {
        match self.sps.get(1..4) {
            Some(b) => format!("{:02X}{:02X}{:02X}", b[0], b[1], b[2]),
            None => "42E01F".to_owned(), // unreachable for an SPS we accepted
        }
    }

    /// Total encoded size in bytes, for the SDP bandwidth line.
    pub fn total_bytes(&self) -> usize {
        self.frames.iter().flat_map(|f| &f.nals).map(|n| n.len()).sum()
    }
}

// --- drawing -------------------------------------------------------------

/// A colour in limited-range BT.601 YUV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Yuv(pub u8, pub u8, pub u8);

/// 75% SMPTE-style bars: grey, yellow, cyan, green, magenta, red, blue.
const BARS: [Yuv; 7] = [
    Yuv(180, 128, 128),
    Yuv(162, 44, 142),
    Yuv(131, 156, 44),
    Yuv(112, 72, 58),
    Yuv(84, 184, 198),
    Yuv(65, 100, 212),
    Yuv(35, 212, 114),
];
const BAND: Yuv = Yuv(32, 128, 128);
const WHITE: Yuv = Yuv(235, 128, 128);
const PROGRESS: Yuv = Yuv(145, 54, 34);
/// Luma of the text; the band behind it is neutral grey so only luma changes.
const TEXT_Y: u8 = 235;

/// An owned YUV420P picture with tightly packed planes.
pub(crate) struct YuvImage {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl YuvImage {
    fn new(width: usize, height: usize) -> Self {
        let chroma = (width / 2) * (height / 2);
        YuvImage { width, height, y: vec![16; width * height], u: vec![128; chroma], v: vec![128; chroma] }
    }

    /// Fills a rectangle, clipped to the picture. Edges are rounded down to
    /// even coordinates so every 2x2 chroma block is wholly inside or outside,
    /// which keeps colours clean at rectangle borders.
    fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, c: Yuv) {
        let (x0, y0) = (x & !1, y & !1);
        let x1 = ((x + w) & !1).min(self.width);
        let y1 = ((y + h) & !1).min(self.height);
        for row in y0..y1 {
            self.y[row * self.width + x0.min(x1)..row * self.width + x1].fill(c.0);
        }
        let cw = self.width / 2;
        for row in (y0 / 2)..(y1 / 2) {
            let (a, b) = (row * cw + (x0 / 2).min(x1 / 2), row * cw + x1 / 2);
            self.u[a..b].fill(c.1);
            self.v[a..b].fill(c.2);
        }
    }

    fn luma(&mut self) -> Plane<'_> {
        Plane { data: &mut self.y, stride: self.width, width: self.width, height: self.height }
    }
}

/// Where things go; derived once from the options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    width: usize,
    height: usize,
    bars_h: usize,
    box_size: usize,
    progress_h: usize,
    text_scale: usize,
    text_x: usize,
    line1_y: usize,
    line2_y: usize,
    /// Frames for the box to sweep across and back.
    sweep_period: usize,
}

/// The clock line, e.g. `HEARTH DEMO  00:07.12`: position within the loop as
/// minutes, seconds and hundredths.
pub(crate) fn clock_text(frame: usize, fps: u32) -> String {
    let fps = fps.max(1) as usize;
    let secs = frame / fps;
    let hundredths = (frame % fps) * 100 / fps;
    format!("HEARTH DEMO  {:02}:{:02}.{:02}", (secs / 60) % 100, secs % 60, hundredths)
}

/// The frame-counter line, e.g. `FRAME 000175`.
pub(crate) fn counter_text(frame: usize) -> String {
    format!("FRAME {:06}", frame % 1_000_000)
}

impl Layout {
    pub(crate) fn new(opts: &PatternOptions) -> Self {
        let (width, height) = (opts.width as usize, opts.height as usize);
        let bars_h = (height * 2 / 3) & !1;
        let band_h = height - bars_h;
        // Largest scale at which the clock fits the width (with margins) and
        // both lines fit the band.
        let line_w = font::text_width(&clock_text(0, opts.fps), 1);
        let by_width = width.saturating_sub(16) / line_w;
        let by_height = band_h / (2 * font::text_height(1) + 6);
        let text_scale = by_width.min(by_height).clamp(1, 6);
        let text_h = font::text_height(text_scale);
        let gap = text_scale * 2;
        let line1_y = bars_h + band_h.saturating_sub(2 * text_h + gap) / 2;
        Layout {
            width,
            height,
            bars_h,
            box_size: (bars_h / 3).max(2) & !1,
            progress_h: 4.min(band_h),
            text_scale,
            text_x: 8,
            line1_y,
            line2_y: line1_y + text_h + gap,
            sweep_period: (opts.fps as usize * 4).min(opts.frame_count()).max(2),
        }
    }

    /// Left edge of the sweeping box at `frame`: a triangle wave, so the box
    /// glides right then back rather than jumping.
    pub(crate) fn box_x(&self, frame: usize) -> usize {
        let travel = self.width - self.box_size;
        let half = self.sweep_period / 2;
        let phase = frame % self.sweep_period;
        let pos = if phase < half { phase } else { self.sweep_period - phase };
        travel * pos / half.max(1)
    }

    /// Draws frame `frame` of a `total`-frame loop.
    pub(crate) fn render(&self, frame: usize, total: usize, fps: u32) -> YuvImage {
        let mut img = YuvImage::new(self.width, self.height);
        let bar_w = self.width.div_ceil(BARS.len());
        for (i, c) in BARS.iter().enumerate() {
            img.fill_rect(i * bar_w, 0, bar_w + 1, self.bars_h, *c);
        }
        add_grain(&mut img.y[..self.bars_h * self.width], frame);
        let box_y = (self.bars_h - self.box_size) / 2;
        img.fill_rect(self.box_x(frame), box_y, self.box_size, self.box_size, WHITE);
        img.fill_rect(0, self.bars_h, self.width, self.height - self.bars_h, BAND);
        let progress_w = self.width * (frame + 1) / total.max(1);
        img.fill_rect(0, self.height - self.progress_h, progress_w, self.progress_h, PROGRESS);
        let mut luma = img.luma();
        font::draw_text(&mut luma, self.text_x, self.line1_y, self.text_scale, &clock_text(frame, fps), TEXT_Y);
        font::draw_text(&mut luma, self.text_x, self.line2_y, self.text_scale, &counter_text(frame), TEXT_Y);
        img
    }
}

/// Adds faint sensor-like noise (luma ±2) that changes every frame, so the
/// stream costs camera-like bits per frame instead of almost nothing, while
/// staying far below any sensible motion-detection threshold.
fn add_grain(luma: &mut [u8], frame: usize) {
    // xorshift32, seeded per frame: deterministic and cheap.
    let mut state = (frame as u32).wrapping_mul(0x9E37_79B9) | 1;
    for px in luma.iter_mut() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let delta = (state >> 29) as i16 % 5 - 2; // -2..=2
        *px = (i16::from(*px) + delta).clamp(16, 235) as u8;
    }
}

// --- encoding ------------------------------------------------------------

/// Splits an Annex B byte stream into NAL units without start codes.
/// Trailing zero bytes (the leading zero of a following four-byte start code,
/// or trailing_zero_8bits) are trimmed; a NAL never ends in a zero byte.
pub(crate) fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut nals = Vec::new();
    let mut start = None;
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                push_trimmed(&mut nals, &data[s..i]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        push_trimmed(&mut nals, &data[s..]);
    }
    nals
}

fn push_trimmed<'a>(nals: &mut Vec<&'a [u8]>, nal: &'a [u8]) {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    if end > 0 {
        nals.push(&nal[..end]);
    }
}

/// H.264 NAL unit type (low five bits of the header byte).
pub(crate) fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1F)
}

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;

/// Accumulates encoder output into an [`EncodedLoop`].
#[derive(Default)]
struct LoopBuilder {
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    frames: Vec<EncodedFrame>,
}

impl LoopBuilder {
    /// Takes one encoded access unit (Annex B). Parameter sets are lifted out
    /// (x264 repeats them before every IDR since we ask for no global header);
    /// delimiters are dropped.
    fn push_access_unit(&mut self, data: &[u8]) {
        let mut nals = Vec::new();
        for nal in split_annex_b(data) {
            match nal_type(nal) {
                NAL_SPS => self.sps = Some(Bytes::copy_from_slice(nal)),
                NAL_PPS => self.pps = Some(Bytes::copy_from_slice(nal)),
                NAL_AUD => {}
                _ => nals.push(Bytes::copy_from_slice(nal)),
            }
        }
        let is_keyframe = nals.iter().any(|n| nal_type(n) == NAL_IDR);
        self.frames.push(EncodedFrame { nals, is_keyframe });
    }

    fn finish(self, opts: &PatternOptions) -> Result<EncodedLoop, DemoError> {
        let (Some(sps), Some(pps)) = (self.sps, self.pps) else {
            return Err(DemoError::Encode("encoder produced no SPS/PPS".into()));
        };
        if sps.len() < 4 {
            return Err(DemoError::Encode("SPS too short".into()));
        }
        if self.frames.len() != opts.frame_count() {
            return Err(DemoError::Encode(format!(
                "encoder produced {} frames, expected {}",
                self.frames.len(),
                opts.frame_count()
            )));
        }
        if !self.frames.first().is_some_and(|f| f.is_keyframe) {
            return Err(DemoError::Encode("first frame is not a keyframe".into()));
        }
        Ok(EncodedLoop { sps, pps, frames: self.frames, fps: opts.fps, width: opts.width, height: opts.height })
    }
}

fn ff(context: &'static str) -> impl Fn(ffmpeg::Error) -> DemoError {
    move |e| DemoError::Encode(format!("{context}: {e}"))
}

/// libx264 settings: `veryfast` (High profile, unlike `ultrafast`'s
/// Baseline), no B-frames and no lookahead so output order equals input order
/// (zero composition offsets), fixed GOP with scene-cut detection off so
/// keyframes come exactly every `gop` frames, and in-band parameter sets
/// (no global header) so every IDR carries SPS/PPS, like a camera. `log=0`
/// keeps x264's own chatter (CPU flags, statistics) to errors only, without
/// touching ffmpeg's process-wide log level.
fn x264_options(opts: &PatternOptions) -> ffmpeg::Dictionary<'static> {
    let kbps = (opts.bitrate / 1000).max(1);
    let gop = opts.gop();
    let mut d = ffmpeg::Dictionary::new();
    d.set("preset", "veryfast");
    d.set("profile", "high");
    d.set(
        "x264-params",
        &format!(
            "keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:rc-lookahead=0:\
             sync-lookahead=0:mbtree=0:repeat-headers=1:aud=0:vbv-maxrate={kbps}:vbv-bufsize={kbps}:log=0"
        ),
    );
    d
}

fn open_encoder(opts: &PatternOptions) -> Result<ffmpeg::encoder::Video, DemoError> {
    ffmpeg::init().map_err(ff("ffmpeg init"))?;
    let codec = ffmpeg::encoder::find_by_name("libx264").ok_or(DemoError::EncoderNotFound("libx264"))?;
    let mut enc =
        ffmpeg::codec::Context::new_with_codec(codec).encoder().video().map_err(ff("video encoder context"))?;
    enc.set_width(opts.width);
    enc.set_height(opts.height);
    enc.set_format(ffmpeg::format::Pixel::YUV420P);
    enc.set_time_base(ffmpeg::Rational::new(1, opts.fps as i32));
    enc.set_frame_rate(Some(ffmpeg::Rational::new(opts.fps as i32, 1)));
    enc.set_bit_rate(opts.bitrate as usize);
    enc.set_gop(opts.gop());
    enc.set_max_b_frames(0);
    enc.open_as_with(codec, x264_options(opts)).map_err(ff("open libx264"))
}

/// Copies our packed planes into ffmpeg's frame, which has padded strides.
fn to_av_frame(img: &YuvImage, pts: i64) -> ffmpeg::frame::Video {
    let mut frame = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, img.width as u32, img.height as u32);
    let planes: [(&[u8], usize); 3] = [(&img.y, img.width), (&img.u, img.width / 2), (&img.v, img.width / 2)];
    for (i, (src, w)) in planes.into_iter().enumerate() {
        let stride = frame.stride(i);
        let dst = frame.data_mut(i);
        for (row, line) in src.chunks_exact(w).enumerate() {
            if let Some(d) = dst.get_mut(row * stride..row * stride + w) {
                d.copy_from_slice(line);
            }
        }
    }
    frame.set_pts(Some(pts));
    frame
}

/// Drains every packet the encoder has ready, checking it was not reordered.
fn drain(enc: &mut ffmpeg::encoder::Video, out: &mut LoopBuilder) -> Result<(), DemoError> {
    let mut packet = ffmpeg::Packet::empty();
    loop {
        match enc.receive_packet(&mut packet) {
            Ok(()) => {
                if packet.pts() != packet.dts() {
                    return Err(DemoError::Encode("encoder reordered frames (pts != dts)".into()));
                }
                out.push_access_unit(packet.data().unwrap_or_default());
            }
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => return Ok(()),
            Err(ffmpeg::Error::Eof) => return Ok(()),
            Err(e) => return Err(ff("encode")(e)),
        }
    }
}

/// Draws and encodes the whole loop. CPU-bound for a couple of seconds at
/// the defaults: call it from `spawn_blocking` (see `super::encode_pattern`).
pub fn encode_loop(opts: &PatternOptions) -> Result<EncodedLoop, DemoError> {
    opts.validate()?;
    let layout = Layout::new(opts);
    let total = opts.frame_count();
    let mut enc = open_encoder(opts)?;
    let mut out = LoopBuilder::default();
    for i in 0..total {
        let img = layout.render(i, total, opts.fps);
        enc.send_frame(&to_av_frame(&img, i as i64)).map_err(ff("send frame"))?;
        drain(&mut enc, &mut out)?;
    }
    enc.send_eof().map_err(ff("flush"))?;
    drain(&mut enc, &mut out)?;
    out.finish(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let o = PatternOptions::default();
        assert_eq!((o.width, o.height, o.fps, o.seconds, o.bitrate), (640, 360, 25, 20, 1_000_000));
        assert_eq!(o.frame_count(), 500);
        assert_eq!(o.gop(), 50);
        assert!(o.validate().is_ok());
        for bad in [
            PatternOptions { width: 641, ..o.clone() },
            PatternOptions { height: 10, ..o.clone() },
            PatternOptions { fps: 0, ..o.clone() },
            PatternOptions { seconds: 0, ..o.clone() },
            PatternOptions { bitrate: 1, ..o.clone() },
        ] {
            assert!(matches!(bad.validate(), Err(DemoError::InvalidOptions(_))), "{bad:?}");
        }
    }

    #[test]
    fn clock_and_counter_text() {
        assert_eq!(clock_text(0, 25), "HEARTH DEMO  00:00.00");
        assert_eq!(clock_text(178, 25), "HEARTH DEMO  00:07.12");
        assert_eq!(clock_text(25 * 61 + 24, 25), "HEARTH DEMO  01:01.96");
        assert_eq!(counter_text(175), "FRAME 000175");
    }

    #[test]
    fn box_sweeps_back_and_forth_within_the_picture() {
        let o = PatternOptions::default();
        let l = Layout::new(&o);
        let xs: Vec<usize> = (0..o.frame_count()).map(|i| l.box_x(i)).collect();
        assert_eq!(xs[0], 0);
        assert_eq!(xs[50], 640 - l.box_size);
        assert!(xs.iter().all(|&x| x + l.box_size <= 640));
        assert!(xs.windows(2).all(|w| w[0] != w[1]), "box must move every frame");
    }

    #[test]
    fn rendered_frame_shows_legible_clock_and_differs_between_frames() {
        let o = PatternOptions::default();
        let l = Layout::new(&o);
        let mut a = l.render(178, 500, 25);
        let b = l.render(179, 500, 25);
        assert_ne!(a.y, b.y);
        let (x, y1, y2, s) = (l.text_x, l.line1_y, l.line2_y, l.text_scale);
        let luma = a.luma();
        assert_eq!(font::read_text(&luma, x, y1, s, 21, 128), "HEARTH DEMO  00:07.12");
        assert_eq!(font::read_text(&luma, x, y2, s, 12, 128), "FRAME 000178");
        // Bars keep their colour: the yellow bar's chroma in its middle.
        let (cx, cy) = (640 / 7 + 640 / 14, 10);
        assert_eq!(a.u[(cy / 2) * 320 + cx / 2], 44);
    }

    #[test]
    fn fill_rect_clips() {
        let mut img = YuvImage::new(64, 64);
        img.fill_rect(60, 60, 100, 100, WHITE);
        img.fill_rect(100, 100, 10, 10, WHITE);
        assert_eq!(img.y[63 * 64 + 63], 235);
        assert_eq!(img.y[59 * 64 + 59], 16);
    }

    #[test]
    fn splits_annex_b() {
        let data = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 5, 0];
        let nals = split_annex_b(&data);
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5]]);
        assert!(split_annex_b(&[1, 2, 3]).is_empty());
        assert!(split_annex_b(&[]).is_empty());
    }

    #[test]
    fn builder_lifts_parameter_sets() {
        let mut b = LoopBuilder::default();
        b.push_access_unit(&[0, 0, 0, 1, 9, 0xF0, 0, 0, 1, 0x67, 0x64, 0, 0x1E, 0, 0, 1, 0x68, 1, 0, 0, 1, 0x65, 9]);
        b.push_access_unit(&[0, 0, 1, 0x41, 7]);
        let opts = PatternOptions { fps: 1, seconds: 2, ..Default::default() };
        let l = b.finish(&opts).unwrap();
        assert_eq!(l.profile_level_id(), "64001E");
        assert_eq!(l.frames.len(), 2);
        assert!(l.frames[0].is_keyframe && !l.frames[1].is_keyframe);
        assert_eq!(l.frames[0].nals, vec![Bytes::from_static(&[0x65, 9])]);
    }

    #[test]
    fn encodes_a_short_loop() {
        let opts = PatternOptions { width: 320, height: 180, fps: 10, seconds: 3, bitrate: 300_000 };
        let l = encode_loop(&opts).unwrap();
        assert_eq!(l.frames.len(), 30);
        assert_eq!(&l.profile_level_id()[..2], "64", "want High profile");
        let keys: Vec<usize> = l.frames.iter().enumerate().filter(|(_, f)| f.is_keyframe).map(|(i, _)| i).collect();
        assert_eq!(keys, vec![0, 20]);
        for f in &l.frames {
            assert!(!f.nals.is_empty());
            assert!(f.nals.iter().all(|n| !matches!(nal_type(n), NAL_SPS | NAL_PPS | NAL_AUD)));
        }
    }
}
