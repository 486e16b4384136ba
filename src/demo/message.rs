//! RTSP/1.0 wire format for the demo server: incremental, bounded parsing
//! of what a client sends (requests, plus interleaved `$` frames such as
//! RTCP receiver reports) and serialisation of our responses. Pure functions
//! over byte slices, so every malformed-input case is unit-testable; nothing
//! here can panic on client bytes.

use std::fmt::Write as _;

/// Longest accepted line of a request head, in bytes.
pub(crate) const MAX_LINE: usize = 8 * 1024;
/// Longest accepted request head (request line plus headers).
pub(crate) const MAX_HEAD: usize = 32 * 1024;
/// Most headers accepted in one request.
pub(crate) const MAX_HEADERS: usize = 64;
/// Largest request body accepted (and ignored); our methods take none.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// Longest accepted method name.
const MAX_METHOD: usize = 32;

/// Why the byte stream cannot be understood. After any of these the framing
/// is lost, so the server answers once and closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FramingError {
    #[error("header line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("request head longer than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    #[error("request head is not UTF-8")]
    NotUtf8,
    #[error("malformed request line")]
    BadRequestLine,
    #[error("malformed header line")]
    BadHeader,
    #[error("unsupported protocol version")]
    BadVersion,
    #[error("malformed Content-Length")]
    BadContentLength,
    #[error("body longer than {MAX_BODY} bytes")]
    BodyTooLarge,
}

impl FramingError {
    /// The status to answer with before closing.
    pub(crate) fn status(&self) -> Status {
        match self {
            FramingError::BadVersion => Status::VersionNotSupported,
            _ => Status::BadRequest,
        }
    }
}

/// One parsed request. Header names keep their spelling; look-ups ignore case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The CSeq, if present and a plain decimal number: we echo it back, so a
    /// value that could smuggle text into our response is treated as absent.
    pub(crate) fn cseq(&self) -> Option<&str> {
        self.header("CSeq").filter(|v| !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The session id the client names, without any `;timeout=` suffix.
    pub(crate) fn session(&self) -> Option<&str> {
        self.header("Session").map(|v| v.split(';').next().unwrap_or("").trim())
    }
}

/// One unit read from the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    Request(Request),
    /// An interleaved binary frame (e.g. an RTCP receiver report); ignored.
    Interleaved {
        channel: u8,
        len: usize,
    },
    /// Stray CR/LF between messages, which some clients send.
    Blank,
}

/// Takes one message from the front of `buf`. Returns the message and the
/// bytes it used, `Ok(None)` when more bytes are needed, or an error once the
/// bytes can never become a valid message (so buffering stays bounded).
pub(crate) fn parse_message(buf: &[u8]) -> Result<Option<(Incoming, usize)>, FramingError> {
    match buf.first() {
        None => Ok(None),
        Some(b'\r' | b'\n') => Ok(Some((Incoming::Blank, 1))),
        Some(b'$') => Ok(parse_interleaved(buf)),
        Some(_) => parse_request(buf),
    }
}

fn parse_interleaved(buf: &[u8]) -> Option<(Incoming, usize)> {
    let header = buf.get(..4)?;
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    (buf.len() >= 4 + len).then_some((Incoming::Interleaved { channel: header[1], len }, 4 + len))
}

/// A request head split into lines, and the offset just past its blank line.
type HeadLines<'a> = (Vec<&'a [u8]>, usize);

/// Splits the head into lines (CRLF or bare LF), enforcing the size limits.
fn head_lines(buf: &[u8]) -> Result<Option<HeadLines<'_>>, FramingError> {
    let mut lines = Vec::new();
    let mut pos = 0;
    loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            if buf.len() - pos > MAX_LINE {
                return Err(FramingError::LineTooLong);
            }
            if buf.len() > MAX_HEAD {
                return Err(FramingError::HeadTooLarge);
            }
            return Ok(None);
        };
        let raw = &buf[pos..pos + nl];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        pos += nl + 1;
        if line.len() > MAX_LINE {
            return Err(FramingError::LineTooLong);
        }
        if pos > MAX_HEAD {
            return Err(FramingError::HeadTooLarge);
        }
        if line.is_empty() {
            return Ok(Some((lines, pos)));
        }
        if lines.len() > MAX_HEADERS {
            return Err(FramingError::TooManyHeaders);
        }
        lines.push(line);
    }
}

fn parse_request(buf: &[u8]) -> Result<Option<(Incoming, usize)>, FramingError> {
    let Some((lines, head_len)) = head_lines(buf)? else {
        return Ok(None);
    };
    let mut lines = lines.into_iter().map(|l| std::str::from_utf8(l).map_err(|_| FramingError::NotUtf8));
    let (method, uri) = parse_request_line(lines.next().ok_or(FramingError::BadRequestLine)??)?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        let line = line?;
        if line.starts_with([' ', '\t']) {
            // Obsolete line folding: continue the previous header's value.
            let (_, v) = headers.last_mut().ok_or(FramingError::BadHeader)?;
            v.push(' ');
            v.push_str(line.trim());
            continue;
        }
        let (name, value) = line.split_once(':').ok_or(FramingError::BadHeader)?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(FramingError::BadHeader);
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let req = Request { method, uri, headers };
    let body_len = content_length(&req)?;
    let total = head_len + body_len;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((Incoming::Request(req), total)))
}

fn parse_request_line(line: &str) -> Result<(String, String), FramingError> {
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(FramingError::BadRequestLine);
    };
    if method.len() > MAX_METHOD || !method.bytes().all(is_token_byte) {
        return Err(FramingError::BadRequestLine);
    }
    if !version.starts_with("RTSP/") && !version.starts_with("HTTP/") {
        return Err(FramingError::BadRequestLine);
    }
    if version != "RTSP/1.0" {
        return Err(FramingError::BadVersion);
    }
    Ok((method.to_owned(), uri.to_owned()))
}

/// RFC 2616 token characters, as used for methods and header names.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn content_length(req: &Request) -> Result<usize, FramingError> {
    let Some(v) = req.header("Content-Length") else {
        return Ok(0);
    };
    let n: usize = v.parse().map_err(|_| FramingError::BadContentLength)?;
    if n > MAX_BODY {
        return Err(FramingError::BodyTooLarge);
    }
    Ok(n)
}

/// The statuses the demo server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    BadRequest,
    Unauthorized,
    NotFound,
    SessionNotFound,
    MethodNotValidInThisState,
    AggregateOperationNotAllowed,
    UnsupportedTransport,
    NotImplemented,
    VersionNotSupported,
}

impl Status {
    pub(crate) fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::NotFound => 404,
            Status::SessionNotFound => 454,
            Status::MethodNotValidInThisState => 455,
            Status::AggregateOperationNotAllowed => 459,
            Status::UnsupportedTransport => 461,
            Status::NotImplemented => 501,
            Status::VersionNotSupported => 505,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::Unauthorized => "Unauthorized",
            Status::NotFound => "Not Found",
            Status::SessionNotFound => "Session Not Found",
            Status::MethodNotValidInThisState => "Method Not Valid in This State",
            Status::AggregateOperationNotAllowed => "Aggregate Operation Not Allowed",
            Status::UnsupportedTransport => "Unsupported Transport",
            Status::NotImplemented => "Not Implemented",
            Status::VersionNotSupported => "RTSP Version Not Supported",
        }
    }
}

/// A response under construction. Header values are ours, never copied from
/// the client (except a validated CSeq), so no CR/LF can be injected.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    status: Status,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Response {
    pub(crate) fn new(status: Status) -> Self {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    pub(crate) fn status(&self) -> Status {
        self.status
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.header("Content-Type", content_type)
    }

    /// Serialises with `cseq` echoed when the request had a usable one.
    pub(crate) fn to_bytes(&self, cseq: Option<&str>) -> Vec<u8> {
        let mut head = format!("RTSP/1.0 {} {}\r\n", self.status.code(), self.status.reason());
        if let Some(c) = cseq {
            let _ = write!(head, "CSeq: {c}\r\n");
        }
        head.push_str("Server: hearth-demo\r\n");
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if !self.body.is_empty() {
            let _ = write!(head, "Content-Length: {}\r\n", self.body.len());
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw: &str) -> Request {
        match parse_message(raw.as_bytes()) {
            Ok(Some((Incoming::Request(r), n))) => {
                assert_eq!(n, raw.len());
                r
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parses_a_request() {
        let r = req("DESCRIBE rtsp://127.0.0.1:554/demo RTSP/1.0\r\nCSeq: 2\r\nAccept:application/sdp\r\n\r\n");
        assert_eq!(r.method, "DESCRIBE");
        assert_eq!(r.uri, "rtsp://127.0.0.1:554/demo");
        assert_eq!(r.cseq(), Some("2"));
        assert_eq!(r.header("accept"), Some("application/sdp"));
        assert_eq!(r.header("Session"), None);
    }

    #[test]
    fn bare_lf_folding_and_session_suffix() {
        let r = req("PLAY * RTSP/1.0\nCSeq: 5\nSession: abc;timeout=60\nX-Long: a\n  b\n\n");
        assert_eq!(r.session(), Some("abc"));
        assert_eq!(r.header("x-long"), Some("a b"));
    }

    #[test]
    fn incomplete_input_needs_more() {
        for raw in ["", "OPT", "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n", "$\x00\x00\x10abc"] {
            assert_eq!(parse_message(raw.as_bytes()), Ok(None), "{raw:?}");
        }
        let raw = "GET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 5\r\n\r\nab";
        assert_eq!(parse_message(raw.as_bytes()), Ok(None));
    }

    #[test]
    fn body_is_consumed() {
        let raw = "GET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 5\r\n\r\nhelloOPTIONS";
        let Ok(Some((Incoming::Request(_), n))) = parse_message(raw.as_bytes()) else { panic!() };
        assert_eq!(&raw[n..], "OPTIONS");
    }

    #[test]
    fn interleaved_and_blank() {
        let raw = b"$\x01\x00\x03abcOPTIONS";
        assert_eq!(parse_message(raw), Ok(Some((Incoming::Interleaved { channel: 1, len: 3 }, 7))));
        assert_eq!(parse_message(b"\r\nOPTIONS"), Ok(Some((Incoming::Blank, 1))));
    }

    #[test]
    fn missing_cseq_or_unsafe_cseq_is_absent() {
        assert_eq!(req("OPTIONS * RTSP/1.0\r\n\r\n").cseq(), None);
        assert_eq!(req("OPTIONS * RTSP/1.0\r\nCSeq: 1x\r\n\r\n").cseq(), None);
        assert_eq!(req("OPTIONS * RTSP/1.0\r\nCSeq: 99999999999\r\n\r\n").cseq(), None);
    }

    #[test]
    fn framing_errors() {
        let cases: Vec<(Vec<u8>, FramingError)> = vec![
            (b"garbage\r\n\r\n".to_vec(), FramingError::BadRequestLine),
            (b"OPTIONS * HTTP/1.1\r\n\r\n".to_vec(), FramingError::BadVersion),
            (b"OPTIONS * RTSP/2.0\r\n\r\n".to_vec(), FramingError::BadVersion),
            (b"OPTIONS * RTSP/1.0 extra\r\n\r\n".to_vec(), FramingError::BadRequestLine),
            (b"OPT(ONS * RTSP/1.0\r\n\r\n".to_vec(), FramingError::BadRequestLine),
            (b"OPTIONS * RTSP/1.0\r\nno colon\r\n\r\n".to_vec(), FramingError::BadHeader),
            (b"OPTIONS * RTSP/1.0\r\n bad fold\r\n\r\n".to_vec(), FramingError::BadHeader),
            (b"OPTIONS * RTSP/1.0\r\n\xff: x\r\n\r\n".to_vec(), FramingError::NotUtf8),
            (b"OPTIONS * RTSP/1.0\r\nContent-Length: -1\r\n\r\n".to_vec(), FramingError::BadContentLength),
            (b"OPTIONS * RTSP/1.0\r\nContent-Length: 999999\r\n\r\n".to_vec(), FramingError::BodyTooLarge),
            ([b"OPTIONS * RTSP/1.0\r\nX: ".as_slice(), &[b'a'; MAX_LINE + 1]].concat(), FramingError::LineTooLong),
            (vec![b'a'; MAX_LINE + 1], FramingError::LineTooLong),
            (format!("X: {}\r\n", "a".repeat(8000)).repeat(5).into_bytes(), FramingError::HeadTooLarge),
            ("X: y\r\n".repeat(MAX_HEADERS + 2).into_bytes(), FramingError::TooManyHeaders),
        ];
        for (raw, want) in cases {
            assert_eq!(
                parse_message(&raw),
                Err(want.clone()),
                "{:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(60)])
            );
            assert!(matches!(want.status().code(), 400 | 505));
        }
    }

    #[test]
    fn never_panics_on_random_bytes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..2000 {
            let len = rng.gen_range(0..300);
            let mut buf: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if rng.gen_bool(0.5) {
                buf.splice(0..0, b"SETUP rtsp://x/ RTSP/1.0\r\n".iter().copied());
            }
            let _ = parse_message(&buf);
        }
    }

    #[test]
    fn serialises_a_response() {
        let r = Response::new(Status::UnsupportedTransport).header("Session", "abc");
        let s = String::from_utf8(r.to_bytes(Some("3"))).unwrap();
        assert_eq!(s, "RTSP/1.0 461 Unsupported Transport\r\nCSeq: 3\r\nServer: hearth-demo\r\nSession: abc\r\n\r\n");
        let r = Response::new(Status::Ok).body("application/sdp", "v=0\r\n");
        let s = String::from_utf8(r.to_bytes(None)).unwrap();
        assert!(s.ends_with("Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"));
    }
}
