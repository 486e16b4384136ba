//! A tiny built-in 5x7 bitmap font, so the demo pattern can show a clock and
//! a frame counter without font files or ffmpeg's drawtext filter. It owns the
//! glyph table and the code that stamps text into an 8-bit plane (the luma
//! plane of a YUV420P picture); it knows nothing about video otherwise.

/// Glyph width in font pixels.
pub(crate) const GLYPH_W: usize = 5;
/// Glyph height in font pixels.
pub(crate) const GLYPH_H: usize = 7;
/// Horizontal advance per character: the glyph plus one column of spacing.
pub(crate) const CELL_W: usize = GLYPH_W + 1;

/// One glyph: seven rows, each the low five bits of a byte, MSB = leftmost.
type Glyph = [u8; GLYPH_H];

/// Shown for characters the table lacks, so a typo is visible rather than silent.
const UNKNOWN: Glyph = [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04];

/// The glyph table: digits, upper-case letters and the punctuation a clock needs.
const GLYPHS: &[(char, Glyph)] = &[
    (' ', [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
    ('0', [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E]),
    ('1', [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E]),
    ('2', [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F]),
    ('3', [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E]),
    ('4', [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02]),
    ('5', [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E]),
    ('6', [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E]),
    ('7', [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08]),
    ('8', [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E]),
    ('9', [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C]),
    ('A', [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11]),
    ('B', [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E]),
    ('C', [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E]),
    ('D', [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C]),
    ('E', [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F]),
    ('F', [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10]),
    ('G', [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F]),
    ('H', [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11]),
    ('I', [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E]),
    ('J', [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C]),
    ('K', [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11]),
    ('L', [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F]),
    ('M', [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11]),
    ('N', [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11]),
    ('O', [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E]),
    ('P', [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10]),
    ('Q', [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D]),
    ('R', [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11]),
    ('S', [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E]),
    ('T', [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04]),
    ('U', [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E]),
    ('V', [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04]),
    ('W', [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A]),
    ('X', [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11]),
    ('Y', [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04]),
    ('Z', [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F]),
    (':', [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00]),
    ('.', [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C]),
    ('-', [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00]),
    ('/', [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00]),
    ('#', [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A]),
];

/// Looks up a glyph; lower-case letters share the upper-case shapes.
fn glyph(c: char) -> &'static Glyph {
    let c = c.to_ascii_uppercase();
    GLYPHS.iter().find(|(g, _)| *g == c).map(|(_, bits)| bits).unwrap_or(&UNKNOWN)
}

/// Whether font pixel (`col`, `row`) of `c` is lit.
fn lit(c: char, col: usize, row: usize) -> bool {
    col < GLYPH_W && row < GLYPH_H && glyph(c)[row] & (0x10 >> col) != 0
}

/// Width in plane pixels of `text` drawn at `scale` (trailing spacing excluded).
pub(crate) fn text_width(text: &str, scale: usize) -> usize {
    let n = text.chars().count();
    (n * CELL_W).saturating_sub(1) * scale
}

/// Height in plane pixels of one line of text at `scale`.
pub(crate) fn text_height(scale: usize) -> usize {
    GLYPH_H * scale
}

/// A mutable view of one 8-bit image plane with its row stride.
pub(crate) struct Plane<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
}

impl Plane<'_> {
    /// Sets one pixel, silently clipping anything outside the plane so that
    /// callers can position text freely.
    fn put(&mut self, x: usize, y: usize, value: u8) {
        if x < self.width && y < self.height {
            if let Some(p) = self.data.get_mut(y * self.stride + x) {
                *p = value;
            }
        }
    }
}

/// Stamps `text` with its top-left corner at (`x`, `y`), each font pixel
/// becoming a `scale`x`scale` block of `value`. Unlit pixels are untouched,
/// so the caller paints the background first.
pub(crate) fn draw_text(plane: &mut Plane<'_>, x: usize, y: usize, scale: usize, text: &str, value: u8) {
    for (i, c) in text.chars().enumerate() {
        let cx = x + i * CELL_W * scale;
        for row in 0..GLYPH_H {
            for col in 0..GLYPH_W {
                if lit(c, col, row) {
                    fill_block(plane, cx + col * scale, y + row * scale, scale, value);
                }
            }
        }
    }
}

fn fill_block(plane: &mut Plane<'_>, x: usize, y: usize, scale: usize, value: u8) {
    for dy in 0..scale {
        for dx in 0..scale {
            plane.put(x + dx, y + dy, value);
        }
    }
}

/// Reads back text drawn by [`draw_text`] by matching each cell against the
/// glyph table: pixels brighter than `threshold` count as lit. Used by tests
/// (here and in the pattern module) to prove the clock is legible.
#[cfg(test)]
pub(crate) fn read_text(plane: &Plane<'_>, x: usize, y: usize, scale: usize, chars: usize, threshold: u8) -> String {
    let mut out = String::new();
    for i in 0..chars {
        let cx = x + i * CELL_W * scale;
        let mut bits: Glyph = [0; GLYPH_H];
        for (row, b) in bits.iter_mut().enumerate() {
            for col in 0..GLYPH_W {
                // Sample the centre of the block, robust to codec blur at edges.
                let px = cx + col * scale + scale / 2;
                let py = y + row * scale + scale / 2;
                let v = plane.data.get(py * plane.stride + px).copied().unwrap_or(0);
                if v > threshold {
                    *b |= 0x10 >> col;
                }
            }
        }
        out.push(GLYPHS.iter().find(|(_, g)| *g == bits).map(|(c, _)| *c).unwrap_or('?'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_are_distinct_and_five_bits_wide() {
        for (i, (c, g)) in GLYPHS.iter().enumerate() {
            assert!(g.iter().all(|row| row & !0x1F == 0), "{c} too wide");
            for (c2, g2) in &GLYPHS[i + 1..] {
                assert_ne!(g, g2, "{c} and {c2} look the same");
                assert_ne!(c, c2, "{c} listed twice");
            }
        }
    }

    #[test]
    fn unknown_and_lower_case() {
        assert_eq!(glyph('~'), &UNKNOWN);
        assert_eq!(glyph('h'), glyph('H'));
    }

    #[test]
    fn widths() {
        assert_eq!(text_width("", 3), 0);
        assert_eq!(text_width("8", 1), 5);
        assert_eq!(text_width("88", 2), 22);
        assert_eq!(text_height(3), 21);
    }

    #[test]
    fn draws_an_eight() {
        let mut buf = vec![0u8; 6 * 8];
        let mut plane = Plane { data: &mut buf, stride: 6, width: 6, height: 8 };
        draw_text(&mut plane, 0, 0, 1, "8", 1);
        let rows: Vec<String> =
            buf.chunks(6).map(|r| r.iter().map(|&v| if v == 1 { '#' } else { '.' }).collect()).collect();
        assert_eq!(rows, [".###..", "#...#.", "#...#.", ".###..", "#...#.", "#...#.", ".###..", "......"]);
    }

    #[test]
    fn clips_at_the_edges() {
        let mut buf = vec![0u8; 4 * 4];
        let mut plane = Plane { data: &mut buf, stride: 4, width: 4, height: 4 };
        draw_text(&mut plane, 2, 2, 3, "HEARTH", 255);
        assert!(buf.contains(&255));
    }

    #[test]
    fn round_trips_through_read_text() {
        let text = "HEARTH DEMO  00:07.12 #0175";
        let scale = 2;
        let (w, h) = (text_width(text, scale) + 4, text_height(scale) + 4);
        let mut buf = vec![16u8; w * h];
        let mut plane = Plane { data: &mut buf, stride: w, width: w, height: h };
        draw_text(&mut plane, 2, 2, scale, text, 235);
        let read = read_text(&plane, 2, 2, scale, text.chars().count(), 128);
        assert_eq!(read, text);
    }
}
