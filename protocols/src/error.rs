//! The gateway's own answers: one error kind per failure, mapped to an HTTP status and a
//! stable `code` in exactly one place, and written as the JSON body of CONTRACT.md.
//!
//! Writing goes straight into the caller's buffer with no intermediate `String`, so even
//! the error path stays allocation-free.

use bytes::{BufMut, BytesMut};

/// Where a failure came from: the client, the upstream, or the gateway itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Downstream,
    Upstream,
    Internal,
}

/// Every answer the gateway makes on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed request; the detail is a short machine-readable reason.
    BadRequest(&'static str),
    /// A declared parameter failed its check.
    BadParameter,
    AuthFailed,
    Forbidden(&'static str),
    NoRoute,
    ClientTimeout,
    BodyTooLarge,
    UriTooLong,
    HeadersTooLarge,
    RateLimited,
    UnknownTransferCoding,
    /// A WebSocket upgrade asked for a protocol version other than 13. RFC 6455 §4.4 asks
    /// for "an appropriate HTTP error code (such as 426)" and the versions supported: the
    /// answer is CONTRACT.md's 400 `bad_request`, with `Sec-WebSocket-Version: 13`.
    UnsupportedWebSocketVersion,
    UpstreamFailed(&'static str),
    NoHealthyUpstream,
    CircuitOpen,
    Overloaded,
    UpstreamTimeout,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest(_)
            | ErrorKind::BadParameter
            | ErrorKind::UnsupportedWebSocketVersion => 400,
            ErrorKind::AuthFailed => 401,
            ErrorKind::Forbidden(_) => 403,
            ErrorKind::NoRoute => 404,
            ErrorKind::ClientTimeout => 408,
            ErrorKind::BodyTooLarge => 413,
            ErrorKind::UriTooLong => 414,
            ErrorKind::HeadersTooLarge => 431,
            ErrorKind::RateLimited => 429,
            ErrorKind::UnknownTransferCoding => 501,
            ErrorKind::UpstreamFailed(_) => 502,
            ErrorKind::NoHealthyUpstream | ErrorKind::CircuitOpen | ErrorKind::Overloaded => 503,
            ErrorKind::UpstreamTimeout => 504,
            ErrorKind::Internal => 500,
        }
    }

    /// The stable `error.code` of the JSON body.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::BadRequest(_) | ErrorKind::UnsupportedWebSocketVersion => "bad_request",
            ErrorKind::BadParameter => "bad_parameter",
            ErrorKind::AuthFailed => "auth_failed",
            ErrorKind::Forbidden(_) => "forbidden",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::ClientTimeout => "client_timeout",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::UriTooLong => "uri_too_long",
            ErrorKind::HeadersTooLarge => "headers_too_large",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::UnknownTransferCoding => "unknown_transfer_coding",
            ErrorKind::UpstreamFailed(_) => "upstream_failed",
            ErrorKind::NoHealthyUpstream => "no_healthy_upstream",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::Internal => "internal",
        }
    }

    /// A human-readable message; the detail of `BadRequest`-like kinds is appended.
    pub fn message(self) -> &'static str {
        match self {
            ErrorKind::BadRequest(_) => "malformed request",
            ErrorKind::BadParameter => "invalid parameter",
            ErrorKind::AuthFailed => "authentication failed",
            ErrorKind::Forbidden(_) => "access denied",
            ErrorKind::NoRoute => "no route matches the request",
            ErrorKind::ClientTimeout => "client did not send the request in time",
            ErrorKind::BodyTooLarge => "request body too large",
            ErrorKind::UriTooLong => "request line too long",
            ErrorKind::HeadersTooLarge => "request headers too large",
            ErrorKind::RateLimited => "rate limit exceeded",
            ErrorKind::UnknownTransferCoding => "transfer coding not implemented",
            ErrorKind::UnsupportedWebSocketVersion => {
                "unsupported WebSocket version (13 is supported)"
            }
            ErrorKind::UpstreamFailed(_) => "upstream failed",
            ErrorKind::NoHealthyUpstream => "no healthy upstream",
            ErrorKind::CircuitOpen => "circuit open",
            ErrorKind::Overloaded => "gateway overloaded",
            ErrorKind::UpstreamTimeout => "upstream timed out",
            ErrorKind::Internal => "internal error",
        }
    }

    fn detail(self) -> Option<&'static str> {
        match self {
            ErrorKind::BadRequest(d) | ErrorKind::Forbidden(d) | ErrorKind::UpstreamFailed(d) => {
                Some(d)
            }
            _ => None,
        }
    }

    pub fn source(self) -> Source {
        match self {
            ErrorKind::UpstreamFailed(_)
            | ErrorKind::UpstreamTimeout
            | ErrorKind::NoHealthyUpstream
            | ErrorKind::CircuitOpen => Source::Upstream,
            ErrorKind::Internal | ErrorKind::Overloaded => Source::Internal,
            _ => Source::Downstream,
        }
    }
}

/// The reason phrase for a status the gateway sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Appends `s` as the inside of a JSON string (quotes not included).
pub fn put_json_str(out: &mut BytesMut, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f | 0x7f..=0xff => None,
            _ => continue,
        };
        out.put_slice(&s[start..i]);
        match esc {
            Some(e) => out.put_slice(e),
            None => out.put_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
        }
        start = i + 1;
    }
    out.put_slice(&s[start..]);
}

/// Formats a decimal number into `tmp`, returning the digits.
pub fn fmt_u64(mut n: u64, tmp: &mut [u8; 20]) -> &[u8] {
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &tmp[i..]
}

/// Appends a decimal number.
pub fn put_u64(out: &mut BytesMut, n: u64) {
    let mut tmp = [0u8; 20];
    out.put_slice(fmt_u64(n, &mut tmp));
}

/// Options of an error answer beyond its kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct Answer<'a> {
    pub request_id: &'a [u8],
    /// Ends the connection after the answer (`Connection: close`).
    pub close: bool,
    /// `Retry-After` seconds, for 429 and 503.
    pub retry_after: Option<u64>,
    /// Extra detail such as the name of a failing parameter.
    pub field: Option<&'a [u8]>,
    /// Omit the body (answer to HEAD).
    pub head_only: bool,
}

/// Writes a complete HTTP/1.1 error response with the JSON body of CONTRACT.md:
/// `{"error": {"code": "...", "message": "...", "request_id": "..."}}`.
pub fn write_error(out: &mut BytesMut, kind: ErrorKind, a: &Answer) {
    // The body is written first so its length is known, then the head is appended and both
    // are rotated into place: a few hundred bytes moved, no allocation, an exact
    // Content-Length.
    let start = out.len();
    out.put_slice(b"{\"error\":{\"code\":\"");
    out.put_slice(kind.code().as_bytes());
    out.put_slice(b"\",\"message\":\"");
    out.put_slice(kind.message().as_bytes());
    if let Some(d) = kind.detail() {
        out.put_slice(b": ");
        put_json_str(out, d.as_bytes());
    }
    out.put_slice(b"\"");
    if let Some(f) = a.field {
        out.put_slice(b",\"field\":\"");
        put_json_str(out, f);
        out.put_slice(b"\"");
    }
    out.put_slice(b",\"request_id\":\"");
    put_json_str(out, a.request_id);
    out.put_slice(b"\"}}\n");
    let body_len = out.len() - start;
    let status = kind.status();
    out.put_slice(b"HTTP/1.1 ");
    put_u64(out, status as u64);
    out.put_u8(b' ');
    out.put_slice(reason(status).as_bytes());
    out.put_slice(b"\r\nContent-Type: application/json\r\nX-Request-Id: ");
    out.put_slice(a.request_id);
    if let Some(s) = a.retry_after {
        out.put_slice(b"\r\nRetry-After: ");
        put_u64(out, s);
    }
    if kind == ErrorKind::UnsupportedWebSocketVersion {
        out.put_slice(b"\r\nSec-WebSocket-Version: 13");
    }
    if a.close {
        out.put_slice(b"\r\nConnection: close");
    }
    out.put_slice(b"\r\nContent-Length: ");
    put_u64(out, body_len as u64);
    out.put_slice(b"\r\n\r\n");
    let head_len = out.len() - start - body_len;
    out[start..].rotate_right(head_len);
    if a.head_only {
        out.truncate(start + head_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answer_is_well_formed() {
        let mut out = BytesMut::new();
        let a = Answer {
            request_id: b"abc",
            close: true,
            ..Default::default()
        };
        write_error(&mut out, ErrorKind::BadRequest("bare \"lf\""), &a);
        let text = std::str::from_utf8(&out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains("Connection: close"));
        assert!(head.contains("X-Request-Id: abc"));
        assert!(
            !head.contains(" \r\n") && !head.ends_with(' '),
            "no padding: {head:?}"
        );
        let cl: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(cl, body.len());
        assert_eq!(
            body,
            "{\"error\":{\"code\":\"bad_request\",\"message\":\"malformed request: bare \\\"lf\\\"\",\"request_id\":\"abc\"}}\n"
        );
    }

    #[test]
    fn statuses_match_the_contract() {
        let cases = [
            (ErrorKind::NoRoute, 404),
            (ErrorKind::ClientTimeout, 408),
            (ErrorKind::BodyTooLarge, 413),
            (ErrorKind::UriTooLong, 414),
            (ErrorKind::HeadersTooLarge, 431),
            (ErrorKind::RateLimited, 429),
            (ErrorKind::UnknownTransferCoding, 501),
            (ErrorKind::UpstreamFailed("connect"), 502),
            (ErrorKind::NoHealthyUpstream, 503),
            (ErrorKind::UpstreamTimeout, 504),
        ];
        for (k, s) in cases {
            assert_eq!(k.status(), s, "{k:?}");
        }
    }

    #[test]
    fn control_bytes_are_escaped() {
        let mut out = BytesMut::new();
        put_json_str(&mut out, b"a\x01b\xff");
        assert_eq!(&out[..], b"a\\u0001b\\u00ff");
    }
}
