//! Request heads: `parse_request` runs the pre-scan, lets httparse tokenize, then applies the
//! RFC 9112 rules a proxy needs to agree with every server behind it (one framing, one Host,
//! a routable target). The result is spans into the caller's buffer in a reusable
//! `RequestHead`; nothing is allocated.

use core::fmt;
use core::mem::MaybeUninit;

use super::diagnose::{httparse_request_error, scan_error_request};
use super::fields::{collect, span_in, FieldError, Role};
use super::header::{Header, HeaderKind, HeaderList};
use super::scan::{scan_head, Scan};
use super::target::parse_target;
use super::types::{BodyKind, HeadError, Limits, Method, Parsed, Span, MAX_HEADERS_CAP};

/// A parsed request head. Create once per connection and reuse: every parse overwrites it.
/// Fields are meaningful only after `Parsed::Complete`.
#[derive(Clone)]
pub struct RequestHead {
    pub method: Method,
    pub method_span: Span,
    /// The request-target as sent.
    pub target: Span,
    /// Path before '?'. Empty for CONNECT and for an absolute-form target without a path
    /// (`http://host`), which means "/".
    pub path: Span,
    /// Query after '?', without the '?'; `Some(empty)` for a bare '?'.
    pub query: Option<Span>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Authority of an absolute-form or CONNECT target if there is one, else the Host value (may be empty
    /// per RFC 9112 §3.2), else None (HTTP/1.0 without Host).
    pub host: Option<Span>,
    pub body: BodyKind,
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// HTTP/1.1 with `Expect: 100-continue`.
    pub expect_continue: bool,
    /// Upgrade value when Connection lists "upgrade" (e.g. WebSocket).
    pub upgrade: Option<Span>,
    /// Bytes of the head, including a leading CRLF if any and the final CRLFCRLF.
    pub head_len: usize,
    headers: HeaderList,
}

impl RequestHead {
    pub fn new() -> Self {
        RequestHead {
            method: Method::Get,
            method_span: Span::default(),
            target: Span::default(),
            path: Span::default(),
            query: None,
            minor_version: 1,
            host: None,
            body: BodyKind::None,
            keep_alive: false,
            expect_continue: false,
            upgrade: None,
            head_len: 0,
            headers: HeaderList::new(),
        }
    }

    /// Back to the state of `new()` without rewriting the header array.
    fn reset(&mut self) {
        self.method = Method::Get;
        self.method_span = Span::default();
        self.target = Span::default();
        self.path = Span::default();
        self.query = None;
        self.minor_version = 1;
        self.host = None;
        self.body = BodyKind::None;
        self.keep_alive = false;
        self.expect_continue = false;
        self.upgrade = None;
        self.head_len = 0;
        self.headers.clear();
    }

    /// The fields in order of arrival.
    pub fn headers(&self) -> &[Header] {
        self.headers.as_slice()
    }

    /// First field of this kind.
    pub fn find(&self, kind: HeaderKind) -> Option<&Header> {
        self.headers.find(kind)
    }

    /// First field with this name (ASCII case-insensitive); `buf` is the parsed buffer.
    pub fn find_name(&self, buf: &[u8], name: &[u8]) -> Option<&Header> {
        self.headers.find_name(buf, name)
    }
}

impl Default for RequestHead {
    fn default() -> Self {
        RequestHead::new()
    }
}

/// Compares what was parsed (only the used part of the header array).
impl PartialEq for RequestHead {
    fn eq(&self, o: &Self) -> bool {
        self.method == o.method
            && self.method_span == o.method_span
            && self.target == o.target
            && self.path == o.path
            && self.query == o.query
            && self.minor_version == o.minor_version
            && self.host == o.host
            && self.body == o.body
            && self.keep_alive == o.keep_alive
            && self.expect_continue == o.expect_continue
            && self.upgrade == o.upgrade
            && self.head_len == o.head_len
            && self.headers() == o.headers()
    }
}

impl Eq for RequestHead {}

impl fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", &self.method)
            .field("method_span", &self.method_span)
            .field("target", &self.target)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("minor_version", &self.minor_version)
            .field("host", &self.host)
            .field("body", &self.body)
            .field("keep_alive", &self.keep_alive)
            .field("expect_continue", &self.expect_continue)
            .field("upgrade", &self.upgrade)
            .field("head_len", &self.head_len)
            .field("headers", &self.headers())
            .finish()
    }
}

/// Parses the request head at the start of `buf` into `out`.
///
/// `buf` is everything received so far on the connection (the head may be followed by body
/// bytes or a pipelined request; they are not looked at). Faults are reported as soon as the
/// offending bytes are in `buf`: bad bytes, line ends and limits while the head is still
/// partial, the request-target as soon as the request line is complete, and the rules that
/// need every field (framing, Host) once the head is complete.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    out: &mut RequestHead,
) -> Result<Parsed, HeadError> {
    out.reset();
    let (start, end, complete) = match scan_head(buf, limits).map_err(scan_error_request)? {
        Scan::Partial { start } => (start, buf.len().min(limits.head_cap()), false),
        Scan::Complete { start, head_len } => (start, head_len, true),
    };
    let head = buf.get(start..end).unwrap_or(&[]);
    // httparse writes its fields here; uninitialised so a parse does not pay for clearing it.
    let mut raw = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let slots = raw.get_mut(..limits.headers_cap()).unwrap_or(&mut []);
    let mut req = httparse::Request::new(&mut []);
    let status = req
        .parse_with_uninit_headers(head, slots)
        .map_err(|e| httparse_request_error(e, buf, start))?;

    let mut authority = None;
    if let (Some(m), Some(t), Some(v)) = (req.method, req.path, req.version) {
        out.method_span = span_in(buf, m.as_bytes());
        out.method = Method::from_bytes(m.as_bytes());
        out.target = span_in(buf, t.as_bytes());
        out.minor_version = v;
        let parts = parse_target(buf, out.target, out.method).map_err(HeadError::BadRequest)?;
        out.path = parts.path;
        out.query = parts.query;
        authority = parts.authority;
    }
    match status {
        httparse::Status::Partial if !complete => return Ok(Parsed::Partial),
        httparse::Status::Complete(n) if complete && start + n == end => {}
        // The scan and httparse disagree on where the head ends; cannot happen with the
        // scan's stricter line rules, and is refused rather than guessed if it ever does.
        _ => return Err(HeadError::BadRequest("malformed_head")),
    }

    let facts =
        collect(buf, req.headers, &mut out.headers, Role::Request).map_err(|e| match e {
            FieldError::Bad(r) => HeadError::BadRequest(r),
            FieldError::TooManyHeaders => HeadError::HeadersTooLarge,
        })?;
    let v11 = out.minor_version == 1;
    out.body = if facts.te.present {
        // RFC 9112 §6.1-6.3: any doubt about framing is a 400 and a close.
        if !v11 {
            return Err(HeadError::BadRequest("transfer_encoding_http10"));
        }
        if facts.content_length.is_some() {
            return Err(HeadError::BadRequest(
                "content_length_with_transfer_encoding",
            ));
        }
        if let Some(r) = facts.te.bad {
            return Err(HeadError::BadRequest(r));
        }
        if facts.te.unknown {
            return Err(HeadError::UnknownTransferCoding);
        }
        BodyKind::Chunked
    } else {
        match facts.content_length {
            Some(n) => BodyKind::Length(n),
            None => BodyKind::None,
        }
    };
    if v11 && facts.host.is_none() {
        return Err(HeadError::BadRequest("missing_host"));
    }
    out.host = authority.or(facts.host);
    out.keep_alive = !facts.close && (v11 || facts.keep_alive);
    out.expect_continue = v11 && facts.expect_continue;
    // RFC 9110 §7.8: Upgrade is ignored in HTTP/1.0 and only meant when Connection names it.
    out.upgrade = if v11 && facts.upgrade_option {
        facts.upgrade
    } else {
        None
    };
    out.head_len = end;
    Ok(Parsed::Complete)
}
