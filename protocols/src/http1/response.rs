//! Response heads from upstreams: the same scan and field walk as requests, with the response
//! framing rules of RFC 9112 §6.3 (which depend on the request method and the status). Every
//! fault is `HeadError::BadResponse`, i.e. a 502 for the client and a closed upstream.

use core::fmt;
use core::mem::MaybeUninit;

use super::diagnose::{httparse_response_error, scan_error_response};
use super::fields::{collect, FieldError, Role};
use super::header::{Header, HeaderKind, HeaderList};
use super::scan::{scan_head, Scan};
use super::types::{BodyKind, HeadError, Limits, Method, Parsed, Span, MAX_HEADERS_CAP};

/// A parsed response head. Create once per upstream connection and reuse.
/// Fields are meaningful only after `Parsed::Complete`.
#[derive(Clone)]
pub struct ResponseHead {
    pub status: u16,
    /// Reason phrase (may be empty).
    pub reason: Span,
    pub minor_version: u8,
    pub body: BodyKind,
    /// False for `Connection: close`, HTTP/1.0 without keep-alive, or a close-delimited body.
    pub keep_alive: bool,
    /// Upgrade value when Connection lists "upgrade" (for 101 Switching Protocols).
    pub upgrade: Option<Span>,
    /// Bytes of the head, including the final CRLFCRLF.
    pub head_len: usize,
    headers: HeaderList,
}

impl ResponseHead {
    pub fn new() -> Self {
        ResponseHead {
            status: 0,
            reason: Span::default(),
            minor_version: 1,
            body: BodyKind::None,
            keep_alive: false,
            upgrade: None,
            head_len: 0,
            headers: HeaderList::new(),
        }
    }

    fn reset(&mut self) {
        self.status = 0;
        self.reason = Span::default();
        self.minor_version = 1;
        self.body = BodyKind::None;
        self.keep_alive = false;
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

    /// 1xx other than 101: an interim answer; another head follows on the same connection.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

impl Default for ResponseHead {
    fn default() -> Self {
        ResponseHead::new()
    }
}

impl PartialEq for ResponseHead {
    fn eq(&self, o: &Self) -> bool {
        self.status == o.status
            && self.reason == o.reason
            && self.minor_version == o.minor_version
            && self.body == o.body
            && self.keep_alive == o.keep_alive
            && self.upgrade == o.upgrade
            && self.head_len == o.head_len
            && self.headers() == o.headers()
    }
}

impl Eq for ResponseHead {}

impl fmt::Debug for ResponseHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseHead")
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("minor_version", &self.minor_version)
            .field("body", &self.body)
            .field("keep_alive", &self.keep_alive)
            .field("upgrade", &self.upgrade)
            .field("head_len", &self.head_len)
            .field("headers", &self.headers())
            .finish()
    }
}

/// Parses the response head at the start of `buf`; `request_method` is the method of the
/// request this answers (HEAD and CONNECT change the framing). Interim 1xx heads parse like
/// any other: the caller forwards them and parses again after `head_len`.
pub fn parse_response(
    buf: &[u8],
    limits: &Limits,
    request_method: Method,
    out: &mut ResponseHead,
) -> Result<Parsed, HeadError> {
    out.reset();
    let (start, end, complete) = match scan_head(buf, limits).map_err(scan_error_response)? {
        Scan::Partial { start } => (start, buf.len().min(limits.head_cap()), false),
        Scan::Complete { start, head_len } => (start, head_len, true),
    };
    let head = buf.get(start..end).unwrap_or(&[]);
    let mut raw = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let slots = raw.get_mut(..limits.headers_cap()).unwrap_or(&mut []);
    let mut resp = httparse::Response::new(&mut []);
    let status = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, head, slots)
        .map_err(|e| httparse_response_error(e, buf, start))?;
    match status {
        httparse::Status::Partial if !complete => return Ok(Parsed::Partial),
        httparse::Status::Complete(n) if complete && start + n == end => {}
        _ => return Err(HeadError::BadResponse("malformed_head")),
    }
    let (Some(code), Some(v)) = (resp.code, resp.version) else {
        return Err(HeadError::BadResponse("malformed_head"));
    };
    if code < 100 {
        return Err(HeadError::BadResponse("bad_status"));
    }
    out.status = code;
    out.minor_version = v;
    // "HTTP/1.x NNN" is 12 bytes; the reason follows one SP and runs to the CR. Taken from
    // the line itself: httparse hands out "" (not a sub-slice) when the reason has obs-text.
    let line_end = head.iter().position(|&b| b == b'\r').unwrap_or(0);
    out.reason = if line_end > 13 {
        Span::new(start + 13, line_end - 13)
    } else {
        Span::new(start + line_end, 0)
    };

    let facts = collect(buf, resp.headers, &mut out.headers, Role::Response).map_err(|e| {
        HeadError::BadResponse(match e {
            FieldError::Bad(r) => r,
            FieldError::TooManyHeaders => "too_many_headers",
        })
    })?;
    if facts.te.present {
        if v == 0 {
            return Err(HeadError::BadResponse("transfer_encoding_http10"));
        }
        if facts.content_length.is_some() {
            return Err(HeadError::BadResponse(
                "content_length_with_transfer_encoding",
            ));
        }
        if let Some(r) = facts.te.bad {
            return Err(HeadError::BadResponse(r));
        }
    }
    let no_body = request_method == Method::Head
        || (100..200).contains(&code)
        || code == 204
        || code == 304
        || (request_method == Method::Connect && (200..300).contains(&code));
    out.body = if no_body {
        BodyKind::None
    } else if facts.te.present {
        // RFC 9112 §6.3: chunked last frames the body; other codings run to the close.
        if facts.te.chunked_last {
            BodyKind::Chunked
        } else {
            BodyKind::CloseDelimited
        }
    } else {
        match facts.content_length {
            Some(n) => BodyKind::Length(n),
            None => BodyKind::CloseDelimited,
        }
    };
    out.keep_alive =
        !facts.close && (v == 1 || facts.keep_alive) && out.body != BodyKind::CloseDelimited;
    out.upgrade = if facts.upgrade_option {
        facts.upgrade
    } else {
        None
    };
    out.head_len = end;
    Ok(Parsed::Complete)
}
