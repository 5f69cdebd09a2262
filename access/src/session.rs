//! A client connection and the request it is working on.
//!
//! A session is an explicit state machine (see `LIFECYCLE.md`): `Head` reads and parses a
//! request head, `Proxy` pumps one exchange (request out, response back), `Tunnel` carries a
//! WebSocket connection after an accepted upgrade, `Closing` flushes
//! what is queued for the client and closes. The per-request state lives in an [`Exchange`]
//! taken from the worker's free list for the length of one request, so an idle keep-alive
//! session holds a socket and a few integers, and no buffer.

use crate::transport::ClientStream;
use business::{Context, Snapshot};
use protocols::http1::{BodyKind, ChunkedDecoder, Method};
use reactor::PooledBuf;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

/// The config version a worker serves, counted per core: a request takes a reference by a
/// plain increment, where cloning the shared `Arc` would bounce its counter's cache line
/// between cores on every request.
#[allow(clippy::redundant_allocation)]
pub type CoreSnap = Rc<Arc<Snapshot>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for (or parsing) a request head.
    Head,
    /// The pipeline asked to see the body: it is read into `cin` behind the head before
    /// the pipeline resumes.
    ReadBody,
    /// Side-service calls the pipeline asked for are under way (see `calls.rs`).
    Calls,
    /// An exchange is in progress.
    Proxy,
    /// A Thrift route's call is out (see `thrift/mod.rs`).
    Thrift,
    /// A WebSocket upgrade was accepted: bytes flow both ways until it ends (`tunnel/`).
    Tunnel,
    /// Flushing the last answer, then closing.
    Closing,
}

pub struct Session {
    /// The client socket, plain or TLS (`transport.rs`).
    pub stream: ClientStream,
    pub peer: SocketAddr,
    pub readable: bool,
    pub writable: bool,
    /// The client sent FIN: nothing more will be read.
    pub read_closed: bool,
    /// An event reported the peer's FIN: reads go on to end of stream even after a short
    /// read (a short read normally means "drained, wait for the next edge").
    pub rdhup: bool,
    pub phase: Phase,
    /// Bytes read from the client, not yet consumed.
    pub cin: Option<PooledBuf>,
    /// Bytes for the client that the gateway produced itself (heads, error answers).
    pub cout: Option<PooledBuf>,
    pub ex: Option<Box<Exchange>>,
    /// When the first byte of the head being read arrived (ms), 0 when none.
    pub head_started: u64,
    /// Last time bytes moved on the client socket, for idle, body and send timeouts.
    pub client_activity: u64,
    pub deadline: u64,
    /// The earliest wheel entry this session has, 0 when none.
    pub timer_at: u64,
    /// Close once the current answer is written.
    pub close_after: bool,
}

/// Framing state of a body being forwarded.
pub enum Body {
    /// No body left to forward.
    Done,
    /// This many bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Until the upstream closes (responses only).
    UntilClose,
}

impl Body {
    pub fn is_done(&self) -> bool {
        matches!(self, Body::Done)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RespPhase {
    Head,
    Body,
    Done,
}

/// One request/response exchange. Recycled through the worker's free list.
pub struct Exchange {
    pub ctx: Context,
    /// The config version the request started on; held until it ends.
    pub snap: Option<CoreSnap>,
    pub method: Method,
    pub client_keep_alive: bool,
    pub client_minor: u8,
    pub req_body: Body,
    pub req_body_bytes: u64,
    /// Bytes at the front of the session's `cin` approved for the upstream.
    pub fwd_req: usize,
    /// Request head (rewritten) for the upstream; kept whole until the answer starts so a
    /// stale keep-alive connection can be retried.
    pub uout: Option<PooledBuf>,
    pub uout_sent: usize,
    /// The pool key of the upstream connection.
    pub up: Option<usize>,
    pub up_addr: SocketAddr,
    pub up_reused: bool,
    pub connected: bool,
    pub retried: bool,
    /// Tries so far, the nodes they went to (bit i = node i), whether the try counts as in
    /// flight on its node, and its deadlines (worker clock; see `crate::failover`).
    pub tries: u32,
    pub tried: u64,
    pub in_flight: bool,
    pub try_timeout_ms: u64,
    pub try_deadline: u64,
    pub deadline: u64,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    pub max_idle: usize,
    pub idle_timeout_ms: u64,
    pub conn_started: u64,
    pub up_activity: u64,
    /// Bytes read from the upstream, not yet consumed.
    pub uin: Option<PooledBuf>,
    pub resp: RespPhase,
    pub resp_body: Body,
    pub resp_keep_alive: bool,
    /// Bytes at the front of `uin` approved for the client.
    pub fwd_resp: usize,
    /// Any byte came back from the upstream.
    pub resp_started: bool,
    /// A final (non-1xx) head went to the client.
    pub resp_head_sent: bool,
    /// While reading a body for the pipeline: the head's length in `cin`, the body limit,
    /// the framing, raw bytes scanned by the decoder, and the decoded chunked payload.
    pub head_len: usize,
    pub body_max: usize,
    pub body_kind: BodyKind,
    pub body_scanned: usize,
    pub body_dec: ChunkedDecoder,
    pub body_buf: Option<PooledBuf>,
    /// Worker-clock µs: head complete, request head sent upstream, answer head received.
    pub started_us: u64,
    pub up_sent_us: u64,
    pub resp_head_us: u64,
    /// Sealing the answer (a body codec): the rewritten head without its framing fields,
    /// and the answer's plaintext body, until it is complete.
    pub sealing: bool,
    pub seal_head: Option<PooledBuf>,
    pub seal_body: Option<PooledBuf>,
    /// Side-service calls of this request.
    pub calls: [crate::calls::CallIo; business::calls::MAX_CALLS],
    /// The call of a Thrift route.
    pub thrift: crate::thrift::CallState,
    /// A WebSocket upgrade's key, then its tunnel.
    pub ws: crate::tunnel::WsState,
    /// Places taken under the route's and upstream's in-flight caps, given back (against
    /// `snap`) when the exchange is recycled.
    pub held: business::admission::Held,
}

impl Exchange {
    pub fn new() -> Exchange {
        Exchange {
            ctx: Context::new(),
            snap: None,
            method: Method::Get,
            client_keep_alive: true,
            client_minor: 1,
            req_body: Body::Done,
            req_body_bytes: 0,
            fwd_req: 0,
            uout: None,
            uout_sent: 0,
            up: None,
            up_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            up_reused: false,
            connected: false,
            retried: false,
            tries: 0,
            tried: 0,
            in_flight: false,
            try_timeout_ms: 0,
            try_deadline: u64::MAX,
            deadline: u64::MAX,
            connect_timeout_ms: 0,
            read_timeout_ms: 0,
            max_idle: 0,
            idle_timeout_ms: 0,
            conn_started: 0,
            up_activity: 0,
            uin: None,
            resp: RespPhase::Head,
            resp_body: Body::Done,
            resp_keep_alive: true,
            fwd_resp: 0,
            resp_started: false,
            resp_head_sent: false,
            head_len: 0,
            body_max: 0,
            body_kind: BodyKind::None,
            body_scanned: 0,
            body_dec: ChunkedDecoder::default(),
            body_buf: None,
            sealing: false,
            seal_head: None,
            seal_body: None,
            started_us: 0,
            up_sent_us: 0,
            resp_head_us: 0,
            calls: Default::default(),
            thrift: Default::default(),
            ws: Default::default(),
            held: business::admission::Held::NONE,
        }
    }

    /// Drops buffers and references so the exchange can wait in the free list.
    pub fn clear(&mut self) {
        self.snap = None;
        self.uout = None;
        self.uin = None;
        self.up = None;
        self.req_body = Body::Done;
        self.resp_body = Body::Done;
        self.body_buf = None;
        self.sealing = false;
        self.seal_head = None;
        self.seal_body = None;
    }
}

impl Default for Exchange {
    fn default() -> Self {
        Exchange::new()
    }
}

impl Session {
    /// Between requests with nothing buffered either way: closing it loses no work.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Head
            && self.cin.as_ref().is_none_or(|c| c.is_empty())
            && self.cout.is_none()
    }

    pub fn new(stream: ClientStream, peer: SocketAddr, now: u64) -> Session {
        Session {
            stream,
            peer,
            readable: false,
            writable: true,
            read_closed: false,
            rdhup: false,
            phase: Phase::Head,
            cin: None,
            cout: None,
            ex: None,
            head_started: 0,
            client_activity: now,
            deadline: 0,
            timer_at: 0,
            close_after: false,
        }
    }
}
