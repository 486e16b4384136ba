//! Byte-level helpers shared by the writer and the reader: appending sized boxes to a
//! `Vec<u8>`, decoding box headers, and bounds-checked reading of box contents held in memory.

use super::MuxError;

pub(super) type FourCc = [u8; 4];

/// The smallest possible box: a 32-bit size and a fourcc.
pub(super) const MIN_BOX_LEN: u64 = 8;
/// A header with a 64-bit `largesize` after the fourcc.
pub(super) const LARGE_HEADER_LEN: u64 = 16;

/// A fourcc as text for error messages; arbitrary bytes come out escaped, never as garbage.
pub(super) fn fourcc_text(fourcc: &FourCc) -> String {
    fourcc.escape_ascii().to_string()
}

pub(super) fn malformed(offset: u64, what: impl Into<String>) -> MuxError {
    MuxError::Malformed { offset, what: what.into() }
}

/// Big-endian appends, the only byte order MP4 knows.
pub(super) trait PutBigEndian {
    fn put_u16(&mut self, value: u16);
    fn put_u32(&mut self, value: u32);
    fn put_u64(&mut self, value: u64);
    fn put_zeros(&mut self, count: usize);
}

impl PutBigEndian for Vec<u8> {
    fn put_u16(&mut self, value: u16) {
        self.extend_from_slice(&value.to_be_bytes());
    }
    fn put_u32(&mut self, value: u32) {
        self.extend_from_slice(&value.to_be_bytes());
    }
    fn put_u64(&mut self, value: u64) {
        self.extend_from_slice(&value.to_be_bytes());
    }
    fn put_zeros(&mut self, count: usize) {
        self.resize(self.len() + count, 0);
    }
}

/// Appends a box whose size is patched in once its body is written, so no caller ever
/// computes a box size by hand (the easiest way to corrupt an MP4).
pub(super) fn write_box<F>(out: &mut Vec<u8>, fourcc: &FourCc, body: F) -> Result<(), MuxError>
where
    F: FnOnce(&mut Vec<u8>) -> Result<(), MuxError>,
{
    let start = out.len();
    out.put_u32(0);
    out.extend_from_slice(fourcc);
    body(out)?;
    let size = u32::try_from(out.len() - start).map_err(|_| MuxError::TooLarge { what: "box" })?;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Appends a "full box": a box whose body starts with a version byte and 24 bits of flags.
pub(super) fn write_full_box<F>(
    out: &mut Vec<u8>,
    fourcc: &FourCc,
    version: u8,
    flags: u32,
    body: F,
) -> Result<(), MuxError>
where
    F: FnOnce(&mut Vec<u8>) -> Result<(), MuxError>,
{
    write_box(out, fourcc, |out| {
        out.push(version);
        out.extend_from_slice(&flags.to_be_bytes()[1..]);
        body(out)
    })
}

/// A decoded box header. `size` includes the header and is at least `header_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BoxHeader {
    pub fourcc: FourCc,
    pub size: u64,
    pub header_len: u64,
}

impl BoxHeader {
    pub fn body_len(&self) -> u64 {
        self.size - self.header_len
    }

    /// The header exactly as it would appear in a file (8 or 16 bytes).
    pub fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LARGE_HEADER_LEN as usize);
        if self.header_len == LARGE_HEADER_LEN {
            out.put_u32(1);
            out.extend_from_slice(&self.fourcc);
            out.put_u64(self.size);
        } else {
            // A header is only ever built 8 bytes long from a size that fits 32 bits.
            out.put_u32(u32::try_from(self.size).unwrap_or(u32::MAX));
            out.extend_from_slice(&self.fourcc);
        }
        out
    }
}

/// Checks the size a header declares: size 0 ("to the end of the file") is refused because
/// hearth streams never use it and a reader of a growing or truncated file cannot honour it.
pub(super) fn checked_header(fourcc: FourCc, size: u64, header_len: u64, offset: u64) -> Result<BoxHeader, MuxError> {
    if size == 0 {
        return Err(malformed(
            offset,
            format!("box '{}' has size 0 (extends to end of file), which is not supported", fourcc_text(&fourcc)),
        ));
    }
    if size < header_len {
        return Err(malformed(
            offset,
            format!("box '{}' declares size {size}, smaller than its {header_len}-byte header", fourcc_text(&fourcc)),
        ));
    }
    Ok(BoxHeader { fourcc, size, header_len })
}

/// Bounds-checked reads from box contents held in memory. `base` is the stream offset of
/// `data[0]`, so every error names the byte where the problem is.
pub(super) struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> ByteReader<'a> {
    pub fn new(data: &'a [u8], base: u64) -> Self {
        Self { data, pos: 0, base }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn bytes(&mut self, count: usize, what: &str) -> Result<&'a [u8], MuxError> {
        if count > self.remaining() {
            return Err(malformed(
                self.offset(),
                format!("{what} needs {count} bytes but its box has only {} left", self.remaining()),
            ));
        }
        let bytes = &self.data[self.pos..self.pos + count];
        self.pos += count;
        Ok(bytes)
    }

    pub fn skip(&mut self, count: usize, what: &str) -> Result<(), MuxError> {
        self.bytes(count, what).map(|_| ())
    }

    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], MuxError> {
        let mut array = [0; N];
        array.copy_from_slice(self.bytes(N, what)?);
        Ok(array)
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, MuxError> {
        self.array(what).map(u32::from_be_bytes)
    }

    pub fn u64(&mut self, what: &str) -> Result<u64, MuxError> {
        self.array(what).map(u64::from_be_bytes)
    }

    /// The version byte and 24-bit flags that start every full box.
    pub fn full_box_header(&mut self, what: &str) -> Result<(u8, u32), MuxError> {
        let word = self.u32(what)?;
        Ok(((word >> 24) as u8, word & 0x00ff_ffff))
    }

    /// Reads one box header from the current position and checks it fits in what remains.
    pub fn box_header(&mut self) -> Result<BoxHeader, MuxError> {
        let offset = self.offset();
        let size32 = self.u32("box size")?;
        let fourcc: FourCc = self.array("box type")?;
        let header = if size32 == 1 {
            let size = self.u64("box largesize")?;
            checked_header(fourcc, size, LARGE_HEADER_LEN, offset)?
        } else {
            checked_header(fourcc, u64::from(size32), MIN_BOX_LEN, offset)?
        };
        if header.body_len() > self.remaining() as u64 {
            return Err(malformed(
                offset,
                format!(
                    "box '{}' declares {} bytes but its parent has only {} left",
                    fourcc_text(&fourcc),
                    header.size,
                    self.remaining() as u64 + header.header_len
                ),
            ));
        }
        Ok(header)
    }
}

/// A box nested in another box's body, borrowed from the parent's bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChildBox<'a> {
    pub fourcc: FourCc,
    /// The whole box, header included.
    pub raw: &'a [u8],
    pub body: &'a [u8],
    /// Stream offset of the box's first header byte.
    pub offset: u64,
    /// Stream offset of `body[0]`.
    pub body_offset: u64,
}

/// Iterates the boxes packed in `data` (a container's body); stops after the first error.
pub(super) fn child_boxes(data: &[u8], base: u64) -> ChildBoxes<'_> {
    ChildBoxes { reader: ByteReader::new(data, base), failed: false }
}

pub(super) struct ChildBoxes<'a> {
    reader: ByteReader<'a>,
    failed: bool,
}

impl<'a> Iterator for ChildBoxes<'a> {
    type Item = Result<ChildBox<'a>, MuxError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.remaining() == 0 {
            return None;
        }
        let start = self.reader.pos;
        let offset = self.reader.offset();
        let result = self.reader.box_header().and_then(|header| {
            // box_header checked the body fits, so these conversions and slices cannot fail.
            let body_len = usize::try_from(header.body_len()).map_err(|_| malformed(offset, "box too large"))?;
            let body_offset = self.reader.offset();
            let body = self.reader.bytes(body_len, "box body")?;
            Ok(ChildBox {
                fourcc: header.fourcc,
                raw: &self.reader.data[start..self.reader.pos],
                body,
                offset,
                body_offset,
            })
        });
        self.failed = result.is_err();
        Some(result)
    }
}

/// The first child box of the given type, if any.
pub(super) fn find_child<'a>(data: &'a [u8], base: u64, fourcc: &FourCc) -> Result<Option<ChildBox<'a>>, MuxError> {
    for child in child_boxes(data, base) {
        let child = child?;
        if &child.fourcc == fourcc {
            return Ok(Some(child));
        }
    }
    Ok(None)
}

/// Like [`find_child`], but a missing box is malformed: `parent` names the container.
pub(super) fn require_child<'a>(
    data: &'a [u8],
    base: u64,
    fourcc: &FourCc,
    parent: &str,
) -> Result<ChildBox<'a>, MuxError> {
    find_child(data, base, fourcc)?
        .ok_or_else(|| malformed(base, format!("{parent} has no '{}' box", fourcc_text(fourcc))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_box_patches_sizes_of_nested_boxes() {
        let mut out = Vec::new();
        write_box(&mut out, b"outr", |out| {
            write_full_box(out, b"innr", 1, 0x00_0203, |out| {
                out.put_u16(0xabcd);
                Ok(())
            })
        })
        .unwrap();
        assert_eq!(
            out,
            [0, 0, 0, 22, b'o', b'u', b't', b'r', 0, 0, 0, 14, b'i', b'n', b'n', b'r', 1, 0, 2, 3, 0xab, 0xcd]
        );
    }

    #[test]
    fn child_boxes_reads_plain_and_large_headers() {
        let mut data = vec![0, 0, 0, 9, b'a', b'b', b'c', b'd', 7];
        data.extend_from_slice(&[0, 0, 0, 1, b'l', b'a', b'r', b'g', 0, 0, 0, 0, 0, 0, 0, 17, 9]);
        let children: Vec<_> = child_boxes(&data, 100).collect::<Result<_, _>>().unwrap();
        assert_eq!(children.len(), 2);
        assert_eq!(&children[0].fourcc, b"abcd");
        assert_eq!(children[0].body, &[7]);
        assert_eq!(children[0].body_offset, 108);
        assert_eq!(&children[1].fourcc, b"larg");
        assert_eq!(children[1].body, &[9]);
        assert_eq!(children[1].offset, 109);
        assert_eq!(children[1].raw.len(), 17);
    }

    #[test]
    fn child_boxes_rejects_bad_sizes_with_their_offset() {
        for bad in [
            vec![0, 0, 0, 4, b'a', b'b', b'c', b'd'],
            vec![0, 0, 0, 0, b'a', b'b', b'c', b'd'],
            vec![0, 0, 0, 20, b'a', b'b', b'c', b'd'],
            vec![0, 0, 0, 1, b'a', b'b', b'c', b'd', 0, 0, 0, 0, 0, 0, 0, 8],
            vec![0, 0, 0],
        ] {
            let mut children = child_boxes(&bad, 40);
            match children.next() {
                Some(Err(MuxError::Malformed { offset, .. })) => assert!((40..=44).contains(&offset)),
                other => panic!("expected an error for {bad:?}, got {other:?}"),
            }
            assert!(children.next().is_none(), "iteration stops after an error");
        }
    }

    #[test]
    fn fourcc_text_escapes_binary() {
        assert_eq!(fourcc_text(b"moof"), "moof");
        assert_eq!(fourcc_text(&[0, b'a', 0xff, b'\n']), "\\x00a\\xff\\n");
    }
}
