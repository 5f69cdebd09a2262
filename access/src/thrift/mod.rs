//! Routes to Thrift upstreams: the exchange that turns an HTTP request with a JSON body
//! into a Thrift call and the reply into a JSON answer, on the worker's event loop.
//!
//! The pipeline runs as for any route; for a Thrift route its last stage asks for the body
//! (the JSON arguments, read by the ReadBody phase) and picks the node. Then [`start`]
//! collects the arguments given by path, query and headers, writes the call straight into a
//! call slot of the worker's multiplexed pool (a mapping error, such as a missing required
//! argument, is a 400 naming the field, and nothing is sent), submits it, and the session
//! waits in `Phase::Thrift`. The pool reports the session when the call ends; [`step`] then
//! writes the answer: the return value as JSON (200), a declared exception as JSON with the
//! route's status for it, a TApplicationException or a broken reply as 502, a transport
//! failure as 502 (503 when the wait queue is full), and the call's deadline (the upstream's
//! `read_timeout_ms`) as 504, which also frees the call's place on its connection.
//!
//! Per worker, [`ThriftCore`] holds the pool and two reusable buffers (decoded request
//! parameters, reply JSON): a steady stream of calls allocates nothing here.

mod answer;
mod tries;

use crate::http::{answer as gateway_answer, recycle, Env, Step};
use crate::session::{CoreSnap, Exchange, Phase, Session};
use business::stage::Request;
use business::thrift::MAX_ARGS;
use components::mux_pool::{self, CallError, CallId, CallPoll, MuxPool};
use mio::Registry;
use protocols::error::ErrorKind;
use protocols::http1::{BodyKind, Method};
use protocols::thrift::codec;
use protocols::thrift::json::{encode_json_call, reply_to_json, AppExceptionKind, ReplyKind};

/// The Thrift state of one worker.
#[derive(Default)]
pub struct ThriftCore {
    pub pool: MuxPool,
    scratch: Vec<u8>,
    json: Vec<u8>,
    ready: Vec<usize>,
}

impl ThriftCore {
    pub fn new() -> ThriftCore {
        ThriftCore::default()
    }

    /// Readiness of a mux connection (see [`owns`]).
    pub fn on_event(
        &mut self,
        registry: &Registry,
        index: usize,
        readable: bool,
        writable: bool,
        rdhup: bool,
        now: u64,
    ) {
        self.pool
            .on_event(registry, index, readable, writable, rdhup, now);
    }

    /// Periodic pool work, then the sessions whose calls ended since the last turn: the
    /// worker drives each, and hands the list back with [`ThriftCore::done`].
    pub fn tick(&mut self, registry: &Registry, now: u64) -> Vec<usize> {
        self.pool.sweep(registry, now);
        let mut out = std::mem::take(&mut self.ready);
        self.pool.take_ready(&mut out);
        out
    }

    /// Takes back the list [`ThriftCore::tick`] gave, keeping its capacity.
    pub fn done(&mut self, mut ready: Vec<usize>) {
        ready.clear();
        self.ready = ready;
    }
}

/// Whether an `Upstream` token index is a Thrift connection (else the HTTP pool's).
pub fn owns(index: usize) -> bool {
    mux_pool::is_mux_token(index)
}

/// The call of one exchange.
#[derive(Default)]
pub struct CallState {
    pub call: Option<CallId>,
    pub deadline: u64,
}

/// Frees the exchange's call, if any (the exchange ends early: client gone, stop).
pub(crate) fn abandon(ex: &mut Exchange, env: &mut Env) {
    if let Some(id) = ex.thrift.call.take() {
        env.thrift.pool.finish(env.registry, env.now, id);
    }
}

/// The session's deadline while its call is out.
pub(crate) fn deadline(ex: &Exchange) -> u64 {
    ex.thrift.deadline
}

/// The pipeline continued on a Thrift route: make the call. The request head is in
/// `env.req_head`, the body (if any) behind it in `cin` or decoded in `ex.body_buf`.
pub(crate) fn start(s: &mut Session, env: &mut Env, mut ex: Box<Exchange>, snap: CoreSnap) -> Step {
    let Some(route) = snap.thrift_route(ex.ctx.route.route) else {
        return fail(s, env, ex, ErrorKind::Internal);
    };
    let head = &*env.req_head;
    let Some(cin) = s.cin.as_ref() else {
        recycle(ex, env);
        return Step::Close;
    };
    let (body, consumed): (&[u8], usize) = match head.body {
        BodyKind::Length(n) if n > 0 => {
            let end = head.head_len.saturating_add(n as usize);
            match cin.get(head.head_len..end) {
                Some(b) => (b, end),
                None => return fail(s, env, ex, ErrorKind::BodyTooLarge),
            }
        }
        BodyKind::Chunked => match ex.body_buf.as_deref() {
            Some(b) if ex.body_scanned > 0 => (&b[..], head.head_len + ex.body_scanned),
            // The route's body limit is 0: the pipeline did not read the body.
            _ => return fail(s, env, ex, ErrorKind::BodyTooLarge),
        },
        _ => (&[], head.head_len),
    };
    let req = Request {
        buf: cin,
        head,
        peer: s.peer.ip(),
        body: Some(body),
        tls: false,
    };
    let core = &mut *env.thrift;
    let mut extra = [("", ""); MAX_ARGS];
    let n = match route.request_args(
        &req,
        &ex.ctx.route,
        &snap.router,
        &mut core.scratch,
        &mut extra,
    ) {
        Ok(n) => n,
        Err(e) => return bad_request(s, env, ex, consumed, &e.path, &e.message),
    };
    let (id, buf) = core.pool.begin_call();
    let encoded = encode_json_call(
        &route.idl,
        &route.method,
        &route.wire_name,
        0,
        body,
        &extra[..n],
        &route.policy,
        route.protocol,
        route.transport,
        buf,
    );
    if let Err(e) = encoded {
        core.pool.finish(env.registry, env.now, id);
        return bad_request(s, env, ex, consumed, &e.path, &e.message);
    }
    let timeout = snap
        .upstreams
        .get(ex.ctx.upstream)
        .map_or(0, |u| u.read_timeout_ms);
    let Some((key, settings, tls)) = tries::target(&ex, &snap, route) else {
        core.pool.finish(env.registry, env.now, id);
        return fail(s, env, ex, ErrorKind::Internal);
    };
    if let Some(c) = s.cin.as_mut() {
        let n = consumed.min(c.len());
        bytes::Buf::advance(&mut **c, n);
    }
    s.head_started = 0;
    ex.thrift = CallState {
        call: Some(id),
        deadline: env.now + timeout,
    };
    // The reports of a failed submit read the exchange's snapshot.
    ex.snap = Some(snap.clone());
    tries::first_try(&mut ex, &snap);
    let sent = core
        .pool
        .submit(env.registry, env.now, id, key, &settings, tls, env.sid);
    if let Err(e) = sent.or_else(|e| resend(&mut ex, env, &snap, route, e)) {
        env.thrift.pool.finish(env.registry, env.now, id);
        ex.thrift.call = None;
        return call_failed(s, env, ex, e);
    }
    ex.up_sent_us = env.now_us;
    s.ex = Some(ex);
    s.phase = Phase::Thrift;
    Step::Progress
}

/// The session was driven while its call is out: answer once it has ended.
pub(crate) fn step(s: &mut Session, env: &mut Env) -> Step {
    let Some(ex) = s.ex.as_mut() else {
        return Step::Close;
    };
    let Some(id) = ex.thrift.call else {
        return Step::Close;
    };
    let Some(snap) = ex.snap.clone() else {
        return Step::Close;
    };
    let Some(route) = snap.thrift_route(ex.ctx.route.route) else {
        return Step::Close;
    };
    if let CallPoll::Failed(e) = env.thrift.pool.poll(id) {
        // A call refused on connect was never written: it may go to another node.
        if resend(ex, env, &snap, route, e).is_ok() {
            return Step::Idle;
        }
    }
    let core = &mut *env.thrift;
    let head_only = ex.method == Method::Head;
    let close = !ex.client_keep_alive || env.stopping || s.close_after;
    let cout = s.cout.get_or_insert_with(|| env.bufs.checkout());
    let status = match core.pool.poll(id) {
        CallPoll::Pending => return Step::Idle,
        CallPoll::Failed(e) => {
            core.pool.finish(env.registry, env.now, id);
            ex.thrift.call = None;
            let Some(ex) = s.ex.take() else {
                return Step::Close;
            };
            return call_failed(s, env, ex, e);
        }
        CallPoll::Sent => {
            answer::json(cout, 202, &ex.ctx, close, None, b"null", head_only);
            202
        }
        CallPoll::Reply(msg) => {
            // Any reply, an exception too, shows a live node.
            tries::report(ex, false);
            core.json.clear();
            let mapped = codec::strip_frame(route.transport, msg).and_then(|body| {
                reply_to_json(
                    &route.idl,
                    &route.method,
                    route.protocol,
                    body,
                    &route.policy,
                    &mut core.json,
                )
            });
            match mapped {
                Ok(ReplyKind::Success) => {
                    answer::json(cout, 200, &ex.ctx, close, None, &core.json, head_only);
                    200
                }
                Ok(ReplyKind::DeclaredException { type_name, .. }) => {
                    let status = route.exception_status(type_name);
                    let plain = type_name.rsplit('.').next().unwrap_or(type_name);
                    answer::json(
                        cout,
                        status,
                        &ex.ctx,
                        close,
                        Some(plain.as_bytes()),
                        &core.json,
                        head_only,
                    );
                    status
                }
                Ok(ReplyKind::ApplicationException { kind, message }) => {
                    let what = app_kind(kind);
                    let msg: [&str; 4] = ["TApplicationException ", what, ": ", &message];
                    answer::error(
                        cout,
                        502,
                        "upstream_failed",
                        &msg,
                        None,
                        &ex.ctx,
                        close,
                        head_only,
                    );
                    502
                }
                Err(e) => {
                    let text = e.to_string();
                    let msg: [&str; 2] = ["upstream failed: bad reply: ", &text];
                    answer::error(
                        cout,
                        502,
                        "upstream_failed",
                        &msg,
                        None,
                        &ex.ctx,
                        close,
                        head_only,
                    );
                    502
                }
            }
        }
    };
    core.pool.finish(env.registry, env.now, id);
    ex.thrift.call = None;
    ex.ctx.status = status;
    snap.pipeline.on_response(&mut ex.ctx);
    if let Some(ex) = s.ex.take() {
        account(s, env, &ex, status);
        recycle(ex, env);
    }
    end(s, env, close)
}

/// Counts and logs an answer the route wrote itself, as `finish_exchange` does for proxied
/// answers (the gateway's fixed errors are counted by `http::answer`).
fn account(s: &Session, env: &mut Env, ex: &Exchange, status: u16) {
    let version = ex.snap.as_ref().map_or(0, |v| v.version);
    if ex.ctx.matched && version == env.routes.version {
        if let Some(r) = env.routes.routes.get(ex.ctx.route.route) {
            r.count(status);
            r.latency.observe(env.now_us.saturating_sub(ex.started_us));
            if ex.up_sent_us > 0 {
                r.upstream_latency
                    .observe(env.now_us.saturating_sub(ex.up_sent_us));
            }
        }
    }
    crate::access_log::finished(s, env, ex, status);
    crate::stats::count_release(env, ex, version, status);
}

/// The exchange's call ended with `e`: reports the node's failure, and, when the call failed
/// on connect (nothing was written) and the rules allow a retry, sends it to another node.
/// `Ok` when the call is out again; else the error to answer with (the call still needs
/// `finish`).
fn resend(
    ex: &mut Exchange,
    env: &mut Env,
    snap: &business::snapshot::Snapshot,
    route: &business::thrift::ThriftRoute,
    mut e: CallError,
) -> Result<(), CallError> {
    let Some(id) = ex.thrift.call else {
        return Err(e);
    };
    loop {
        if tries::node_failed(e) {
            tries::report(ex, true);
        }
        if e != CallError::Connect || tries::retry_node(ex, env, snap).is_none() {
            return Err(e);
        }
        let Some((key, settings, tls)) = tries::target(ex, snap, route) else {
            return Err(e);
        };
        if !env.thrift.pool.rearm(id) {
            return Err(e);
        }
        match env
            .thrift
            .pool
            .submit(env.registry, env.now, id, key, &settings, tls, env.sid)
        {
            Ok(()) => return Ok(()),
            Err(next) => e = next,
        }
    }
}

/// The call's deadline passed: free its place and answer 504.
pub(crate) fn on_timeout(s: &mut Session, env: &mut Env) -> Step {
    let Some(mut ex) = s.ex.take() else {
        return Step::Close;
    };
    if ex.thrift.call.is_some() {
        tries::report(&mut ex, true);
    }
    abandon(&mut ex, env);
    fail(s, env, ex, ErrorKind::UpstreamTimeout)
}

/// The exchange is answered: next request, or close.
fn end(s: &mut Session, env: &mut Env, close: bool) -> Step {
    if let Some(ex) = s.ex.take() {
        recycle(ex, env);
    }
    if close {
        s.close_after = true;
        s.phase = Phase::Closing;
    } else {
        s.phase = Phase::Head;
        s.head_started = if s.cin.as_ref().is_some_and(|c| !c.is_empty()) {
            env.now
        } else {
            0
        };
    }
    s.client_activity = env.now;
    Step::Progress
}

/// A gateway error of a fixed kind (the shared writer, so it is counted like the others).
fn fail(s: &mut Session, env: &mut Env, ex: Box<Exchange>, kind: ErrorKind) -> Step {
    let rid = ex.ctx.request_id;
    let len = ex.ctx.request_id_len;
    let head_only = ex.method == Method::Head;
    // A body not consumed cannot be told from the next request.
    let close = !ex.client_keep_alive
        || env.stopping
        || matches!(kind, ErrorKind::BodyTooLarge | ErrorKind::Internal);
    recycle(ex, env);
    gateway_answer(s, env, kind, Some(&rid[..len]), close, head_only, None);
    end(s, env, close)
}

fn call_failed(s: &mut Session, env: &mut Env, ex: Box<Exchange>, e: CallError) -> Step {
    let kind = match e {
        CallError::Connect => ErrorKind::UpstreamFailed("connect"),
        CallError::Overloaded => ErrorKind::Overloaded,
        CallError::Closed => ErrorKind::UpstreamFailed("closed"),
        CallError::Protocol(_) => ErrorKind::UpstreamFailed("bad_response"),
        CallError::WrongMethod => ErrorKind::UpstreamFailed("wrong_method"),
        CallError::BadSequenceId => ErrorKind::UpstreamFailed("bad_sequence_id"),
        CallError::BadCall(_) => ErrorKind::Internal,
    };
    fail(s, env, ex, kind)
}

/// 400 for a request that does not fit the IDL, naming the field; the request is consumed.
fn bad_request(
    s: &mut Session,
    env: &mut Env,
    ex: Box<Exchange>,
    consumed: usize,
    field: &str,
    message: &str,
) -> Step {
    if let Some(c) = s.cin.as_mut() {
        let n = consumed.min(c.len());
        bytes::Buf::advance(&mut **c, n);
    }
    let close = !ex.client_keep_alive || env.stopping;
    let head_only = ex.method == Method::Head;
    let cout = s.cout.get_or_insert_with(|| env.bufs.checkout());
    let sep = if field.is_empty() { "" } else { ": " };
    let msg: [&str; 4] = ["malformed request: ", field, sep, message];
    answer::error(
        cout,
        400,
        "bad_request",
        &msg,
        Some(field),
        &ex.ctx,
        close,
        head_only,
    );
    account(s, env, &ex, 400);
    recycle(ex, env);
    end(s, env, close)
}

fn app_kind(kind: AppExceptionKind) -> &'static str {
    match kind {
        AppExceptionKind::Unknown => "Unknown",
        AppExceptionKind::UnknownMethod => "UnknownMethod",
        AppExceptionKind::InvalidMessageType => "InvalidMessageType",
        AppExceptionKind::WrongMethodName => "WrongMethodName",
        AppExceptionKind::BadSequenceId => "BadSequenceId",
        AppExceptionKind::MissingResult => "MissingResult",
        AppExceptionKind::InternalError => "InternalError",
        AppExceptionKind::ProtocolError => "ProtocolError",
        AppExceptionKind::InvalidTransform => "InvalidTransform",
        AppExceptionKind::InvalidProtocol => "InvalidProtocol",
        AppExceptionKind::UnsupportedClientType => "UnsupportedClientType",
        AppExceptionKind::Other(_) => "Other",
    }
}
