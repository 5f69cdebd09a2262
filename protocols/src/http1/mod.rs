//! HTTP/1.1 codec (RFC 9112), strict, pure (no I/O), allocation-free per message.
//!
//! A proxy sits between clients and servers that each parse HTTP their own way; any head two
//! parsers could read differently (bare LF, obs-fold, Content-Length next to
//! Transfer-Encoding, two Hosts...) is a request-smuggling vector. So this codec refuses
//! everything RFC 9112 lets a recipient refuse, and reports it as soon as the offending bytes
//! have arrived.
//!
//! - [`parse_request`] / [`parse_response`] parse a head from the start of the caller's buffer
//!   into a reusable [`RequestHead`] / [`ResponseHead`] holding [`Span`]s into that buffer.
//!   Tokenizing is httparse's; a memchr pre-scan (`scan`) adds the line-ending and size rules,
//!   `fields` and `target` the semantic ones.
//! - [`ChunkedDecoder`] validates a chunked body as it streams by and reports payload ranges.
//!
//! Callers keep the buffer: parse again with the grown buffer after `Parsed::Partial`.

mod chunked;
mod diagnose;
mod fields;
mod header;
mod request;
mod response;
mod scan;
mod target;
mod types;

#[doc(hidden)]
pub mod check;

pub use chunked::{
    ChunkError, ChunkProgress, ChunkedDecoder, DEFAULT_MAX_CHUNK_LINE, DEFAULT_MAX_TRAILER_BYTES,
};
pub use fields::MAX_CONNECTION_OPTIONS;
pub use header::{Header, HeaderKind};
pub use request::{parse_request, RequestHead};
pub use response::{parse_response, ResponseHead};
pub use types::{
    BodyKind, HeadError, Limits, Method, Parsed, Span, DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEAD_BYTES,
    DEFAULT_MAX_REQUEST_LINE, MAX_HEADERS_CAP,
};

#[cfg(test)]
mod tests_chunked;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_request;
#[cfg(test)]
mod tests_response;
#[cfg(test)]
mod tests_seeds;
