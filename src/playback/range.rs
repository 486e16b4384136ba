//! HTTP `Range` requests (RFC 9110 §14): turning a `Range` header and a representation length
//! into the one byte range to serve, or the decision to serve everything or nothing.
//!
//! Only single contiguous ranges are ever served. Browsers' media elements send one range at a
//! time (`bytes=0-`, then `bytes=N-` on seeks), so multipart/byteranges responses would be
//! code for no client: several ranges that coalesce into one are served as that one, anything
//! else is ignored and answered with the whole clip, which RFC 9110 §14.2 allows. Numbers too
//! large for a `u64` are read as `u64::MAX`: they are still valid syntax, just far past the end.

use std::fmt;

/// Ranges beyond this many in one header are not worth reading: no browser sends them, and
/// RFC 9110 §14.2 lets a server ignore a header asking for many small ranges.
const MAX_RANGE_SPECS: usize = 64;

/// A non-empty inclusive range of byte positions, `start..=end`. Construct it with
/// [`ByteRange::new`], which refuses `end < start`, so [`ByteRange::len`] is never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    start: u64,
    end: u64,
}

impl ByteRange {
    /// `start..=end`, or `None` when `end < start`.
    pub fn new(start: u64, end: u64) -> Option<ByteRange> {
        (start <= end).then_some(ByteRange { start, end })
    }

    /// Every byte of a representation `len` bytes long; `None` when it is empty.
    pub fn whole(len: u64) -> Option<ByteRange> {
        ByteRange::new(0, len.checked_sub(1)?)
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    /// The last byte served (inclusive, as in `Content-Range`).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Bytes in the range: the `Content-Length` of a 206 response. Saturates only for the
    /// single range `0..=u64::MAX`, which no real file has.
    #[allow(clippy::len_without_is_empty)] // never empty, by construction
    pub fn len(&self) -> u64 {
        (self.end - self.start).saturating_add(1)
    }

    /// The `Content-Range` value of a 206 response, e.g. `bytes 0-99/1000`.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, total)
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// The `Content-Range` value of a 416 response, e.g. `bytes */1000`.
pub fn unsatisfied_content_range(total: u64) -> String {
    format!("bytes */{total}")
}

/// What to answer a request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No `Range` header: 200 with the whole representation.
    Full,
    /// 206 with this range.
    Partial(ByteRange),
    /// 416 with [`unsatisfied_content_range`]: every range asked for starts past the end.
    Unsatisfiable,
    /// A header we don't serve (malformed, another unit, disjoint ranges): 200 with the whole
    /// representation, as if there were no header.
    Ignored,
}

/// [`parse_range`] for a header that may be absent.
pub fn range_request(header: Option<&str>, len: u64) -> RangeRequest {
    header.map_or(RangeRequest::Full, |header| parse_range(header, len))
}

/// Decides how to answer a `Range` header value for a representation of `len` bytes.
pub fn parse_range(header: &str, len: u64) -> RangeRequest {
    let Some(specs) = parse_header(header) else {
        return RangeRequest::Ignored;
    };
    let mut satisfiable: Vec<ByteRange> = specs.into_iter().filter_map(|spec| spec.resolve(len)).collect();
    if satisfiable.is_empty() {
        return RangeRequest::Unsatisfiable;
    }
    match coalesce(&mut satisfiable) {
        Some(range) => RangeRequest::Partial(range),
        None => RangeRequest::Ignored,
    }
}

/// One `byte-range-spec` or `suffix-range-spec`, before the length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeSpec {
    /// `a-b` or `a-`.
    From { first: u64, last: Option<u64> },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// The bytes this spec selects of a `len`-byte representation, if any.
    fn resolve(self, len: u64) -> Option<ByteRange> {
        let last_byte = len.checked_sub(1)?;
        match self {
            RangeSpec::From { first, last } => {
                // `first` past the end is unsatisfiable; `last` past the end is clamped.
                ByteRange::new(first, last.unwrap_or(last_byte).min(last_byte))
            }
            // `-0` asks for nothing; a suffix longer than the representation is all of it.
            RangeSpec::Suffix(0) => None,
            RangeSpec::Suffix(n) => ByteRange::new(len.saturating_sub(n), last_byte),
        }
    }
}

/// The specs of a `bytes=...` header, or `None` when it is not one we understand.
fn parse_header(header: &str) -> Option<Vec<RangeSpec>> {
    let (unit, set) = header.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    // RFC 9110 §5.6.1: recipients accept empty list elements (`bytes=0-1,,5-6`).
    let elements: Vec<&str> = set.split(',').map(str::trim).filter(|element| !element.is_empty()).collect();
    if elements.is_empty() || elements.len() > MAX_RANGE_SPECS {
        return None;
    }
    elements.into_iter().map(parse_spec).collect()
}

/// `a-b`, `a-` or `-n`, whitespace around the parts allowed.
fn parse_spec(spec: &str) -> Option<RangeSpec> {
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        return parse_number(last).map(RangeSpec::Suffix);
    }
    let first = parse_number(first)?;
    let last = if last.is_empty() { None } else { Some(parse_number(last)?) };
    // RFC 9110 §14.1.1: a last position before the first makes the spec, and so the header,
    // invalid; a server then ignores it.
    if last.is_some_and(|last| last < first) {
        return None;
    }
    Some(RangeSpec::From { first, last })
}

/// ASCII digits only (no sign, unlike `str::parse`); values past `u64::MAX` saturate.
fn parse_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |value, digit| value.saturating_mul(10).saturating_add(u64::from(digit - b'0'))))
}

/// Merges overlapping or adjacent ranges; `Some` only when they make one contiguous range.
fn coalesce(ranges: &mut [ByteRange]) -> Option<ByteRange> {
    ranges.sort_by_key(|range| range.start);
    let (first, rest) = ranges.split_first()?;
    rest.iter().try_fold(*first, |merged, next| {
        // Adjacent counts as contiguous: 0-4 and 5-9 are 0-9.
        (next.start <= merged.end.saturating_add(1))
            .then(|| ByteRange { start: merged.start, end: merged.end.max(next.end) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn partial(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange::new(start, end).unwrap())
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(parse_range("bytes=0-99", 1000), partial(0, 99));
        assert_eq!(parse_range("bytes=500-", 1000), partial(500, 999));
        assert_eq!(parse_range("bytes=-100", 1000), partial(900, 999));
        assert_eq!(parse_range("bytes=0-0", 1000), partial(0, 0));
        assert_eq!(parse_range("bytes=999-999", 1000), partial(999, 999));
        assert_eq!(parse_range("bytes=0-", 1000), partial(0, 999), "browsers' first request gets a 206");
    }

    #[test]
    fn whitespace_and_unit_case_are_tolerated() {
        assert_eq!(parse_range(" BYTES = 10 - 20 ", 1000), partial(10, 20));
        assert_eq!(parse_range("Bytes=\t-5", 1000), partial(995, 999));
        assert_eq!(parse_range("bytes=0-1 , 2-3", 1000), partial(0, 3));
    }

    #[test]
    fn ends_past_the_representation_are_clamped() {
        assert_eq!(parse_range("bytes=10-5000", 1000), partial(10, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), partial(0, 999));
        assert_eq!(parse_range("bytes=0-99999999999999999999999", 1000), partial(0, 999));
    }

    #[test]
    fn starts_past_the_end_are_unsatisfiable() {
        assert_eq!(parse_range("bytes=1000-", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=1000-2000", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=99999999999999999999999-", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=2000-3000, 5000-", 1000), RangeRequest::Unsatisfiable);
    }

    #[test]
    fn any_range_of_an_empty_representation_is_unsatisfiable() {
        for header in ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=-0", "bytes=5-9"] {
            assert_eq!(parse_range(header, 0), RangeRequest::Unsatisfiable, "{header}");
        }
    }

    #[test]
    fn malformed_headers_and_other_units_are_ignored() {
        for header in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=5-2",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=--5",
            "bytes=1-2-3",
            "bytes=1",
            "items=0-5",
            "bytes=0-5,x",
            "bytes=,",
            "bytes=٣-٤",
            "=0-5",
        ] {
            assert_eq!(parse_range(header, 1000), RangeRequest::Ignored, "{header:?}");
        }
        assert_eq!(range_request(None, 1000), RangeRequest::Full);
        assert_eq!(range_request(Some("bytes=1-2"), 1000), partial(1, 2));
    }

    #[test]
    fn several_ranges_are_served_only_when_they_coalesce() {
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), RangeRequest::Ignored);
        assert_eq!(parse_range("bytes=5-9,0-4", 1000), partial(0, 9), "adjacent, out of order");
        assert_eq!(parse_range("bytes=0-10,5-20,-990", 1000), partial(0, 999));
        assert_eq!(parse_range("bytes=0-1,,2-3", 1000), partial(0, 3), "empty list elements");
        assert_eq!(parse_range("bytes=0-9,2000-", 1000), partial(0, 9), "the unsatisfiable one is dropped");
        let many = format!("bytes={}", vec!["0-1"; MAX_RANGE_SPECS + 1].join(","));
        assert_eq!(parse_range(&many, 1000), RangeRequest::Ignored);
    }

    #[test]
    fn header_values() {
        let range = ByteRange::new(0, 99).unwrap();
        assert_eq!(range.len(), 100);
        assert_eq!(range.content_range(1000), "bytes 0-99/1000");
        assert_eq!(unsatisfied_content_range(1000), "bytes */1000");
        assert_eq!(ByteRange::new(5, 4), None);
        assert_eq!(ByteRange::whole(0), None);
        assert_eq!(ByteRange::whole(10), ByteRange::new(0, 9));
        assert_eq!(ByteRange::new(0, u64::MAX).unwrap().len(), u64::MAX);
    }

    /// A valid spec, written with random spacing and unit case.
    fn spec_text() -> impl Strategy<Value = String> {
        let spaces = || "[ \t]{0,2}";
        let spec = prop_oneof![
            (0u64..3000, 0u64..3000).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (0u64..3000).prop_map(|a| format!("{a}-")),
            (0u64..3000).prop_map(|n| format!("-{n}")),
        ];
        // ASCII case only: `(?i)` would also generate `ſ`, which Unicode folds to `s`.
        let unit = proptest::collection::vec(any::<bool>(), 5).prop_map(|upper| {
            "bytes"
                .chars()
                .zip(upper)
                .map(|(c, upper)| if upper { c.to_ascii_uppercase() } else { c })
                .collect::<String>()
        });
        (spaces(), unit, spaces(), spaces(), spec, spaces())
            .prop_map(|(s1, unit, s2, s3, spec, s4)| format!("{s1}{unit}{s2}={s3}{spec}{s4}"))
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic(header in any::<String>(), len in any::<u64>()) {
            let _ = parse_range(&header, len);
        }

        #[test]
        fn range_like_headers_never_panic(header in "[bB][yY][tT][eE][sS] ?= ?[0-9, -]{0,40}", len in any::<u64>()) {
            if let RangeRequest::Partial(range) = parse_range(&header, len) {
                prop_assert!(range.end() < len);
            }
        }

        #[test]
        fn valid_ranges_stay_within_the_representation(header in spec_text(), len in 0u64..2500) {
            match parse_range(&header, len) {
                RangeRequest::Partial(range) => {
                    prop_assert!(range.start() <= range.end() && range.end() < len, "{header} {len}: {range}");
                    prop_assert_eq!(range.len(), range.end() - range.start() + 1);
                    let suffix = format!("/{}", len);
                    prop_assert!(range.content_range(len).ends_with(&suffix));
                }
                RangeRequest::Unsatisfiable => {}
                other => prop_assert!(false, "{header:?} of {len}: {other:?}"),
            }
        }

        #[test]
        fn satisfiable_exactly_when_the_start_is_inside(a in 0u64..3000, len in 0u64..3000) {
            let expected = if a < len { partial(a, len - 1) } else { RangeRequest::Unsatisfiable };
            prop_assert_eq!(parse_range(&format!("bytes={a}-"), len), expected);
        }
    }
}
