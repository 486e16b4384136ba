//! Wall-clock time as hearth stores it: integer microseconds since the Unix epoch, UTC, with
//! conversions to and from RFC 3339 for the CLI, logs and API.

/// Now, in µs since the epoch.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// RFC 3339 with millisecond precision, e.g. `2026-11-24T10:00:00.000Z`.
pub fn format_us(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("@{us}us"))
}

/// Parses RFC 3339 (any offset) into µs since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let us = 1_795_514_400_123_000;
        assert_eq!(format_us(us), "2026-11-24T10:00:00.123Z");
        assert_eq!(parse_rfc3339(&format_us(us)), Some(us));
        assert_eq!(parse_rfc3339("2026-11-24T11:00:00.123+01:00"), Some(us));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
