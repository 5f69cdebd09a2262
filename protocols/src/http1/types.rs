//! Shared vocabulary of the HTTP/1.1 codec: limits, spans into the caller's buffer, the parse
//! outcome, error kinds, methods and body framing. Kept apart so request and response parsing
//! (and the access layer) speak the same small, `Copy` types.

use core::fmt;

/// Hard upper bound of [`Limits::max_headers`]: the header arrays inside [`super::RequestHead`]
/// and [`super::ResponseHead`] are fixed-size so parsing never allocates.
pub const MAX_HEADERS_CAP: usize = 256;

/// Default of [`Limits::max_request_line`].
pub const DEFAULT_MAX_REQUEST_LINE: usize = 8192;
/// Default of [`Limits::max_head_bytes`].
pub const DEFAULT_MAX_HEAD_BYTES: usize = 65536;
/// Default of [`Limits::max_headers`].
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// Size limits of one message head. Every limit is checked on partial input too, so a peer
/// that never finishes its head is refused as soon as it crosses a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (or status line), excluding its CRLF. Longer: `UriTooLong` (414).
    pub max_request_line: usize,
    /// Longest head, counting an optional leading CRLF and the final CRLFCRLF. Longer:
    /// `HeadersTooLarge` (431). Values above `u32::MAX` are treated as `u32::MAX`.
    pub max_head_bytes: usize,
    /// Most header fields. More: `HeadersTooLarge` (431). Clamped to [`MAX_HEADERS_CAP`].
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: DEFAULT_MAX_REQUEST_LINE,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

impl Limits {
    /// Head limit as used internally: spans are `u32`, so no head may be longer than that.
    pub(crate) fn head_cap(&self) -> usize {
        self.max_head_bytes.min(u32::MAX as usize)
    }

    pub(crate) fn headers_cap(&self) -> usize {
        self.max_headers.min(MAX_HEADERS_CAP)
    }
}

/// A byte range of the buffer that was parsed. Spans instead of slices keep the parsed heads
/// free of lifetimes, so they can live in per-connection state next to the buffer they index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Length in bytes.
    pub len: u32,
}

impl Span {
    /// Builds a span. Heads are at most `u32::MAX` bytes long (see [`Limits::head_cap`]), so
    /// offsets inside a head always fit.
    pub(crate) fn new(start: usize, len: usize) -> Span {
        Span {
            start: start as u32,
            len: len as u32,
        }
    }

    /// The bytes this span covers in `buf`; empty if `buf` is too short (never panics).
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let start = self.start as usize;
        buf.get(start..start.saturating_add(self.len as usize))
            .unwrap_or(&[])
    }

    /// True for a zero-length span.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offset one past the last byte.
    pub fn end(&self) -> usize {
        self.start as usize + self.len as usize
    }
}

/// Outcome of a successful parse call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The whole head is in the buffer; `head_len` tells where the body starts.
    Complete,
    /// Everything so far is valid but the head is not finished: read more and call again with
    /// the grown buffer (parsing is stateless, the whole head is parsed again).
    Partial,
}

/// Why a head was refused. Request variants map to the answer the gateway sends
/// ([`HeadError::status`]); every response problem is `BadResponse` (a 502 for the client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// 400, with a short reason code for logs and metrics (e.g. `"bare_lf"`).
    BadRequest(&'static str),
    /// 414: the request line is longer than `max_request_line`.
    UriTooLong,
    /// 431: the head is longer than `max_head_bytes` or has more than `max_headers` fields.
    HeadersTooLarge,
    /// 501: a transfer coding other than `chunked`.
    UnknownTransferCoding,
    /// The upstream's response head is invalid; the reason code says why.
    BadResponse(&'static str),
}

impl HeadError {
    /// HTTP status the gateway answers with (502 for a bad upstream response).
    pub fn status(&self) -> u16 {
        match self {
            HeadError::BadRequest(_) => 400,
            HeadError::UriTooLong => 414,
            HeadError::HeadersTooLarge => 431,
            HeadError::UnknownTransferCoding => 501,
            HeadError::BadResponse(_) => 502,
        }
    }

    /// Short reason code, stable enough for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            HeadError::BadRequest(r) | HeadError::BadResponse(r) => r,
            HeadError::UriTooLong => "uri_too_long",
            HeadError::HeadersTooLarge => "headers_too_large",
            HeadError::UnknownTransferCoding => "unknown_transfer_coding",
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())
    }
}

impl std::error::Error for HeadError {}

/// Request method. Methods are case-sensitive (RFC 9110 §9.1): `get` is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Connect,
    Trace,
    /// Any other valid token; its bytes are at `RequestHead::method_span`.
    Other,
}

impl Method {
    /// Maps a method token; unknown tokens are `Other`.
    pub fn from_bytes(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            b"TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }

    /// Idempotent per RFC 9110 §9.2.2, i.e. safe to retry on another upstream.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

/// How the message body is framed (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all.
    None,
    /// Exactly this many bytes (from Content-Length; may be 0).
    Length(u64),
    /// Chunked; feed the bytes after the head to a `ChunkedDecoder` to find the end.
    Chunked,
    /// Responses only: the body runs until the upstream closes the connection.
    CloseDelimited,
}
