//! HTTP `Range` parsing: any header value and length give a well-formed answer; a satisfiable
//! range lies inside the representation. Input: 8 bytes of length (little-endian), then the
//! header value.
#![no_main]

use hearth::playback::range::{parse_range, RangeRequest};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((len, header)) = data.split_first_chunk::<8>() else { return };
    let len = u64::from_le_bytes(*len);
    let Ok(header) = std::str::from_utf8(header) else { return };
    if let RangeRequest::Partial(range) = parse_range(header, len) {
        assert!(range.start() <= range.end() && range.end() < len, "{header:?} {len} -> {range:?}");
        let _ = range.content_range(len);
    }
});
