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

/// A refusal: the gateway answers the client itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject {
    pub kind: ErrorKind,
    /// The parameter or field at fault, named in the JSON answer.
    pub field: Option<&'static str>,
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
