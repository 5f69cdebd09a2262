//! The stage trait: what a module implements to take part in a request.
//!
//! Stages are immutable, built once per config version and shared by every core; per-request
//! data lives in the [`Context`], per-core mutable state in [`CoreState`]. Every method has a
//! do-nothing default, so a module implements only the phases it cares about.

use crate::context::Context;
use crate::pipeline::CoreState;
use crate::snapshot::Snapshot;
use protocols::error::ErrorKind;
use protocols::http1::RequestHead;
use std::net::IpAddr;

/// A borrowed view of the request being processed. Spans in `head` index into `buf`.
pub struct Request<'a> {
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
    /// The socket peer.
    pub peer: IpAddr,
    /// The request body, when the pipeline asked for it to be read first
    /// (see [`Stage::body_bytes`]); None otherwise.
    pub body: Option<&'a [u8]>,
    /// Whether the client connection is TLS (for `X-Forwarded-Proto` and redirects).
    pub tls: bool,
}

impl Request<'_> {
    pub fn path(&self) -> &[u8] {
        self.head.path.get(self.buf)
    }

    pub fn host(&self) -> &[u8] {
        self.head.host.map(|h| h.get(self.buf)).unwrap_or(b"")
    }

    pub fn method(&self) -> &[u8] {
        self.head.method_span.get(self.buf)
    }

    /// Whether the request carries a body (chunked, or a non-zero Content-Length).
    pub fn has_body(&self) -> bool {
        match self.head.body {
            protocols::http1::BodyKind::Chunked => true,
            protocols::http1::BodyKind::Length(n) => n > 0,
            _ => false,
        }
    }

    pub fn query(&self) -> Option<&[u8]> {
        self.head.query.map(|q| q.get(self.buf))
    }

    /// The first value of a header (any case), None when absent.
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.head
            .find_name(self.buf, name)
            .map(|h| h.value.get(self.buf))
    }

    /// Every header as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone + '_ {
        self.head
            .headers()
            .iter()
            .map(|h| (h.name.get(self.buf), h.value.get(self.buf)))
    }
}

/// Longest field name a refusal carries; longer names are cut (at a UTF-8 boundary).
pub const FIELD_NAME_MAX: usize = 64;

/// The name of the parameter or field at fault, held inline so that refusing a request
/// allocates nothing even though names come from the config (a declared parameter).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FieldName {
    bytes: [u8; FIELD_NAME_MAX],
    len: u8,
}

impl FieldName {
    pub fn new(name: &str) -> FieldName {
        let mut len = name.len().min(FIELD_NAME_MAX);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0u8; FIELD_NAME_MAX];
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        FieldName {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl std::fmt::Debug for FieldName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A refusal: the gateway answers the client itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject {
    pub kind: ErrorKind,
    /// The parameter or field at fault, named in the JSON answer (`"field": "id"`).
    pub field: Option<FieldName>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl Reject {
    pub fn new(kind: ErrorKind) -> Reject {
        Reject {
            kind,
            field: None,
            retry_after: None,
        }
    }

    /// A refusal naming the field at fault.
    pub fn with_field(kind: ErrorKind, field: &str) -> Reject {
        Reject {
            kind,
            field: Some(FieldName::new(field)),
            retry_after: None,
        }
    }
}

/// What a stage decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next stage.
    Continue,
    /// Stop and answer with an error; nothing goes upstream.
    Respond(Reject),
    /// Stop and answer with this status, no body, and the fields in `ctx.reply_headers`
    /// (a redirect, a CORS preflight); nothing goes upstream.
    Reply(u16),
    /// Read up to this many body bytes, then run the pipeline again (it resumes at the
    /// stage that asked). A larger body is answered 413.
    NeedBody(usize),
    /// Make the calls listed in `ctx.calls` concurrently, record their outcomes in
    /// `ctx.call_outcomes`, then run the pipeline again: it resumes at the stage that asked,
    /// which merges the verdicts.
    Wait,
}

/// A configured module taking part in the pipeline.
pub trait Stage: Send + Sync {
    /// The module kind, for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Runs once per request when its head is complete, in pipeline order.
    /// `Continue` (the default) passes to the next stage; `Respond` answers at once.
    fn on_request(
        &self,
        _ctx: &mut Context,
        _req: &Request,
        _snap: &Snapshot,
        _core: &mut CoreState,
    ) -> Flow {
        Flow::Continue
    }

    /// Bytes of the request body this stage must see before it can decide (a WAF body
    /// prefix, JSON parameters, a signature). When any stage asks, the access layer reads
    /// the body (up to the largest ask; a larger body is a 413) before running the
    /// pipeline, and `Request::body` holds it. The default, 0, keeps bodies streaming.
    fn body_bytes(&self) -> usize {
        0
    }

    /// Runs once when the upstream's answer head is known (status in `ctx`), in reverse
    /// pipeline order. The default does nothing.
    fn on_response(&self, _ctx: &mut Context) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_inline_and_cut_at_a_char_boundary() {
        assert_eq!(FieldName::new("id").as_str(), "id");
        let long = "é".repeat(40); // 80 bytes
        let f = FieldName::new(&long);
        assert_eq!(f.as_str(), "é".repeat(32));
        assert_eq!(format!("{f:?}"), format!("{:?}", "é".repeat(32)));
        let r = Reject::with_field(ErrorKind::BadParameter, "page");
        assert_eq!(r.field.map(|f| f.as_str().to_string()), Some("page".into()));
    }
}
