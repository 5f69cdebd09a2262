//! The HTTP/1.1 session driver: what a session does when its sockets become ready.
//!
//! `drive` loops over small steps (flush to the client, read and parse a head, pump the
//! exchange) until none makes progress, which with edge-triggered readiness means every
//! socket it needs has returned `WouldBlock`. Bodies stream through bounded buffers: bytes
//! are approved for forwarding by the framing tracker (length or chunked decoder) and
//! written straight from the buffer they were read into, so a body of any size passes
//! through one 16 KiB buffer per direction.

use crate::forward::{write_request_head, write_response_head, ClientConn, RequestRewrite};
use crate::io::{read_into, would_block, write_some, write_two};
use crate::session::{Body, CoreSnap, Exchange, Phase, RespPhase, Session};
use business::{CoreState, Flow, Request};
use components::HttpPool;
use mio::Registry;
use protocols::error::{write_error, Answer, ErrorKind};
use protocols::http1::{
    parse_request, parse_response, BodyKind, ChunkedDecoder, HeadError, HeaderKind, Limits, Parsed,
    RequestHead, ResponseHead,
};
use reactor::BufPool;
use std::io;

/// Steps per `drive` call before the session yields to others (fairness under a fast peer).
const MAX_ROUNDS: usize = 64;
/// Longest chunk-size line (with extensions) and trailer section accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;
/// Answers queued for a pipelining client before the session stops parsing more requests.
const MAX_QUEUED_ANSWERS: usize = 64 * 1024;
/// How long a closing connection keeps reading (and discarding) so the client sees the
/// answer instead of a reset.
const LINGER_MS: u64 = 2000;

/// Everything a session needs from its worker while it runs.
pub struct Env<'a> {
    pub registry: &'a Registry,
    pub pool: &'a mut HttpPool,
    pub bufs: &'a BufPool,
    pub now: u64,
    pub snap: &'a CoreSnap,
    pub core: &'a mut CoreState,
    pub limits: &'a Limits,
    pub req_head: &'a mut RequestHead,
    pub resp_head: &'a mut ResponseHead,
    pub free_ex: &'a mut Vec<Box<Exchange>>,
    pub rid_prefix: u64,
    pub rid_counter: &'a mut u64,
    pub stopping: bool,
    pub sid: usize,
    /// Wall-clock seconds, read once per loop iteration.
    pub unix_secs: u64,
    /// Worker clock in µs, for latency figures.
    pub now_us: u64,
    pub stats: &'a crate::stats::WorkerStats,
    /// Per-route counters of the worker's current config version.
    pub routes: &'a crate::stats::RouteTable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Waiting for readiness.
    Open,
    /// Could go on but yielded; drive again soon.
    Again,
    /// Close and free the session.
    Close,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Progress,
    Idle,
    Close,
}

pub fn drive(s: &mut Session, env: &mut Env) -> Outcome {
    for _ in 0..MAX_ROUNDS {
        let mut progress = match flush_client(s, env) {
            Step::Close => return close(s, env),
            Step::Progress => true,
            Step::Idle => false,
        };
        let step = match s.phase {
            Phase::Head => head_step(s, env),
            Phase::Proxy => proxy_step(s, env),
            Phase::ReadBody => crate::body::read_body_step(s, env),
            Phase::Calls => crate::calls::step(s, env),
            Phase::Closing => closing_step(s),
        };
        match step {
            Step::Close => return close(s, env),
            Step::Progress => progress = true,
            Step::Idle => {}
        }
        if !progress {
            settle(s, env);
            return Outcome::Open;
        }
    }
    settle(s, env);
    Outcome::Again
}

/// Frees what the session holds (used on every close path).
fn close(s: &mut Session, env: &mut Env) -> Outcome {
    if let Some(mut ex) = s.ex.take() {
        if let Some(key) = ex.up.take() {
            env.pool.discard(env.registry, key);
        }
        recycle(ex, env);
    }
    s.cin = None;
    s.cout = None;
    Outcome::Close
}

pub(crate) fn recycle(mut ex: Box<Exchange>, env: &mut Env) {
    crate::calls::abandon(&mut ex, env);
    ex.clear();
    env.free_ex.push(ex);
}

/// Writes queued answers, then approved response body bytes, to the client, in one
/// `writev` when both are pending.
///
/// A short write means the socket buffer is full: with edge-triggered readiness a new
/// event arrives once it drains, so the flag is cleared without a `WouldBlock` round trip.
fn flush_client(s: &mut Session, env: &mut Env) -> Step {
    let mut progress = false;
    while s.writable {
        let head: &[u8] = s.cout.as_deref().map_or(&[], |c| &c[..]);
        let body: &[u8] = match &s.ex {
            Some(ex) if ex.fwd_resp > 0 => ex.uin.as_deref().map_or(&[], |u| &u[..ex.fwd_resp]),
            _ => &[],
        };
        let total = head.len() + body.len();
        if total == 0 {
            break;
        }
        let head_len = head.len();
        match write_two(&mut s.stream, head, body) {
            Ok(n) => {
                progress = true;
                s.client_activity = env.now;
                let from_head = n.min(head_len);
                if let Some(c) = s.cout.as_mut() {
                    bytes::Buf::advance(&mut **c, from_head);
                }
                let from_body = n - from_head;
                if from_body > 0 {
                    if let Some(ex) = s.ex.as_mut() {
                        if let Some(u) = ex.uin.as_mut() {
                            bytes::Buf::advance(&mut **u, from_body);
                        }
                        ex.fwd_resp -= from_body;
                    }
                }
                if n < total {
                    s.writable = false;
                }
            }
            Err(e) if would_block(&e) => s.writable = false,
            Err(_) => return Step::Close,
        }
    }
    step(progress)
}

fn cout_pending(s: &Session) -> usize {
    s.cout.as_ref().map_or(0, |c| c.len())
}

/// Reads and parses request heads; starts an exchange when one is complete.
fn head_step(s: &mut Session, env: &mut Env) -> Step {
    if cout_pending(s) > MAX_QUEUED_ANSWERS {
        return Step::Idle;
    }
    if s.cin.as_ref().is_some_and(|c| !c.is_empty()) {
        let cin = s.cin.as_ref().map(|c| &c[..]).unwrap_or(&[]);
        match parse_request(cin, env.limits, env.req_head) {
            Ok(Parsed::Complete) => return start_exchange(s, env),
            Ok(Parsed::Partial) => {}
            Err(e) => {
                let kind = match e {
                    HeadError::UriTooLong => ErrorKind::UriTooLong,
                    HeadError::HeadersTooLarge => ErrorKind::HeadersTooLarge,
                    HeadError::UnknownTransferCoding => ErrorKind::UnknownTransferCoding,
                    HeadError::BadRequest(r) | HeadError::BadResponse(r) => {
                        ErrorKind::BadRequest(r)
                    }
                };
                answer(s, env, kind, None, true, false, None);
                s.phase = Phase::Closing;
                return Step::Progress;
            }
        }
    }
    if !s.readable || s.read_closed {
        if s.read_closed && cout_pending(s) == 0 {
            return Step::Close;
        }
        return Step::Idle;
    }
    let max_head = env.limits.max_head_bytes + 4;
    let cin = s.cin.get_or_insert_with(|| env.bufs.checkout());
    let room = max_head
        .saturating_sub(cin.len())
        .clamp(1, env.bufs.buf_size().max(1));
    match read_into(&s.stream, cin, room) {
        Ok(0) => {
            s.read_closed = true;
            Step::Progress
        }
        Ok(n) => {
            // A short read drained the socket: the next edge will say when more arrives.
            if n < room && !s.rdhup {
                s.readable = false;
            }
            if s.head_started == 0 {
                s.head_started = env.now;
            }
            s.client_activity = env.now;
            Step::Progress
        }
        Err(e) if would_block(&e) => {
            s.readable = false;
            Step::Idle
        }
        Err(_) => Step::Close,
    }
}

/// Writes a gateway answer to the client.
pub(crate) fn answer(
    s: &mut Session,
    env: &mut Env,
    kind: ErrorKind,
    request_id: Option<&[u8]>,
    close: bool,
    head_only: bool,
    retry_after: Option<u64>,
) {
    answer_field(
        s,
        env,
        kind,
        request_id,
        close,
        head_only,
        retry_after,
        None,
    );
}

/// Like [`answer`], naming the parameter or field at fault in the JSON body.
#[allow(clippy::too_many_arguments)]
pub(crate) fn answer_field(
    s: &mut Session,
    env: &mut Env,
    kind: ErrorKind,
    request_id: Option<&[u8]>,
    close: bool,
    head_only: bool,
    retry_after: Option<u64>,
    field: Option<&[u8]>,
) {
    let mut generated = [0u8; 32];
    let rid = match request_id {
        Some(r) => r,
        None => {
            *env.rid_counter += 1;
            business::context::write_request_id(env.rid_prefix, *env.rid_counter, &mut generated);
            &generated[..]
        }
    };
    env.stats.answered(kind.code());
    let cout = s.cout.get_or_insert_with(|| env.bufs.checkout());
    write_error(
        cout,
        kind,
        &Answer {
            request_id: rid,
            close,
            retry_after,
            field,
            head_only,
        },
    );
    if close {
        s.close_after = true;
    }
}

/// Writes an answer the pipeline made itself: status, its fields, no body.
fn write_reply(out: &mut bytes::BytesMut, status: u16, ctx: &business::Context, close: bool) {
    use bytes::BufMut;
    out.put_slice(b"HTTP/1.1 ");
    protocols::error::put_u64(out, status as u64);
    out.put_u8(b' ');
    out.put_slice(protocols::error::reason(status).as_bytes());
    out.put_slice(b"\r\n");
    for (n, v) in ctx.reply_headers.iter().chain(ctx.response_headers.iter()) {
        out.put_slice(n);
        out.put_slice(b": ");
        out.put_slice(v);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"X-Request-Id: ");
    out.put_slice(ctx.request_id());
    out.put_slice(if close {
        &b"\r\nConnection: close"[..]
    } else {
        b""
    });
    out.put_slice(b"\r\nContent-Length: 0\r\n\r\n");
}

/// A complete head is in `env.req_head`: run the pipeline and start the upstream call.
pub(crate) fn start_exchange(s: &mut Session, env: &mut Env) -> Step {
    // An exchange already present means the pipeline asked for the body, which is now in
    // `cin` after the head: resume the pipeline where it stopped.
    let resuming = s.ex.is_some();
    let mut ex = match s.ex.take() {
        Some(ex) => ex,
        None => env.free_ex.pop().unwrap_or_default(),
    };
    let snap = env.snap.clone();
    let head = &*env.req_head;
    let Some(cin) = s.cin.as_mut() else {
        recycle(ex, env);
        return Step::Close;
    };
    if !resuming {
        ex.ctx.reset(s.peer.ip(), env.now, env.unix_secs);
        let adopted = head
            .find(HeaderKind::XRequestId)
            .is_some_and(|h| ex.ctx.adopt_request_id(h.value.get(cin)));
        if !adopted {
            *env.rid_counter += 1;
            ex.ctx.generate_request_id(env.rid_prefix, *env.rid_counter);
        }
        ex.started_us = env.now_us;
        ex.up_sent_us = 0;
        ex.resp_head_us = 0;
        ex.method = head.method;
        ex.client_minor = head.minor_version;
        ex.client_keep_alive = head.keep_alive && !env.stopping;
    }
    let has_body =
        matches!(head.body, BodyKind::Chunked) || matches!(head.body, BodyKind::Length(n) if n > 0);
    let head_only = head.method == protocols::http1::Method::Head;

    let body = if resuming {
        crate::body::buffered(ex.body_buf.as_deref().map(|b| &b[..]), head, cin)
    } else {
        None
    };
    let req = Request {
        buf: cin,
        head,
        peer: s.peer.ip(),
        tls: false,
        body,
    };
    let flow = snap.pipeline.run(&mut ex.ctx, &req, &snap, env.core);
    if let Flow::Reply(status) = flow {
        bytes::Buf::advance(&mut **cin, head.head_len);
        let close = has_body || !ex.client_keep_alive;
        let cout = s.cout.get_or_insert_with(|| env.bufs.checkout());
        write_reply(cout, status, &ex.ctx, close);
        recycle(ex, env);
        if close {
            s.close_after = true;
        }
        s.phase = if close { Phase::Closing } else { Phase::Head };
        s.head_started = if s.cin.as_ref().is_some_and(|c| !c.is_empty()) {
            env.now
        } else {
            0
        };
        return Step::Progress;
    }
    if flow == Flow::Wait {
        ex.snap = Some(snap.clone());
        s.ex = Some(ex);
        return crate::calls::start(s, env);
    }
    let reject = match flow {
        Flow::Reply(_) | Flow::Wait => None,
        Flow::NeedBody(max) => match head.body {
            BodyKind::Length(n) if n > max as u64 || n > ex.ctx.max_body => {
                Some((ErrorKind::BodyTooLarge, None, None))
            }
            _ => {
                let max = max.min(ex.ctx.max_body as usize);
                crate::body::begin(&mut ex, head, max);
                s.ex = Some(ex);
                s.phase = Phase::ReadBody;
                return Step::Progress;
            }
        },
        Flow::Respond(r) => Some((r.kind, r.retry_after, r.field)),
        Flow::Continue => match head.body {
            BodyKind::Length(n) if n > ex.ctx.max_body => {
                Some((ErrorKind::BodyTooLarge, None, None))
            }
            _ => None,
        },
    };
    if let Some((kind, retry_after, field)) = reject {
        let head_len = head.head_len;
        bytes::Buf::advance(&mut **cin, head_len);
        // An unread body cannot be told apart from the next request: close after answering.
        let close = has_body || !ex.client_keep_alive;
        let rid = ex.ctx.request_id;
        let rid_len = ex.ctx.request_id_len;
        recycle(ex, env);
        answer_field(
            s,
            env,
            kind,
            Some(&rid[..rid_len]),
            close,
            head_only,
            retry_after,
            field.as_ref().map(|f| f.as_bytes()),
        );
        s.phase = if close { Phase::Closing } else { Phase::Head };
        s.head_started = if s.cin.as_ref().is_some_and(|c| !c.is_empty()) {
            env.now
        } else {
            0
        };
        return Step::Progress;
    }

    let up = &snap.upstreams[ex.ctx.upstream];
    ex.up_addr = up.addrs[ex.ctx.node];
    ex.connect_timeout_ms = up.connect_timeout_ms;
    ex.read_timeout_ms = up.read_timeout_ms;
    ex.max_idle = up.max_idle;
    ex.idle_timeout_ms = up.idle_timeout_ms;
    let route = &snap.config.routes[ex.ctx.route.route];
    let path = head.path.get(cin);
    let stripped = if route.strip_prefix && ex.ctx.route.prefix_len > 0 {
        let rest = path.get(ex.ctx.route.prefix_len..).unwrap_or(b"");
        Some(if rest.is_empty() { &b"/"[..] } else { rest })
    } else {
        None
    };
    let uout = ex.uout.get_or_insert_with(|| env.bufs.checkout());
    uout.clear();
    let rw = RequestRewrite {
        path: stripped,
        client_ip: ex.ctx.client_ip,
        peer: s.peer.ip(),
        proto: b"http",
        request_id: ex.ctx.request_id(),
        upstream_addr: ex.up_addr,
        extra: &ex.ctx.upstream_headers,
        remove: &ex.ctx.upstream_remove,
    };
    write_request_head(uout, cin, head, &rw);
    ex.uout_sent = 0;
    ex.req_body = match head.body {
        BodyKind::Length(n) if n > 0 => Body::Length(n),
        BodyKind::Chunked => Body::Chunked(ChunkedDecoder::new(MAX_CHUNK_LINE, MAX_TRAILERS)),
        _ => Body::Done,
    };
    ex.req_body_bytes = 0;
    ex.fwd_req = 0;
    ex.resp = RespPhase::Head;
    ex.resp_body = Body::Done;
    ex.resp_keep_alive = true;
    ex.fwd_resp = 0;
    ex.resp_started = false;
    ex.resp_head_sent = false;
    ex.retried = false;
    bytes::Buf::advance(&mut **cin, head.head_len);
    ex.snap = Some(snap);
    s.ex = Some(ex);
    s.phase = Phase::Proxy;
    s.head_started = 0;
    if connect(s, env, true).is_err() {
        return upstream_failed(s, env, ErrorKind::UpstreamFailed("connect"));
    }
    Step::Progress
}

fn connect(s: &mut Session, env: &mut Env, reuse: bool) -> io::Result<()> {
    let Some(ex) = s.ex.as_mut() else {
        return Ok(());
    };
    let a = env.pool.acquire(
        env.registry,
        ex.up_addr,
        env.sid,
        env.now,
        ex.idle_timeout_ms,
        reuse,
    )?;
    ex.up = Some(a.key);
    ex.up_reused = a.reused;
    ex.connected = a.reused;
    ex.conn_started = env.now;
    ex.up_activity = env.now;
    Ok(())
}

/// The upstream failed before the exchange could complete: retry once when that is safe,
/// else answer (if nothing of the answer went out yet) or cut the client off.
fn upstream_failed(s: &mut Session, env: &mut Env, kind: ErrorKind) -> Step {
    let Some(ex) = s.ex.as_mut() else {
        return Step::Close;
    };
    if let Some(key) = ex.up.take() {
        env.pool.discard(env.registry, key);
    }
    // A reused keep-alive connection may have been closed by the upstream just as we sent;
    // an idempotent request without a body that got no byte back can safely go again.
    let retry = ex.up_reused
        && !ex.retried
        && !ex.resp_started
        && ex.method.is_idempotent()
        && ex.req_body_bytes == 0
        && matches!(ex.req_body, Body::Done)
        && kind != ErrorKind::UpstreamTimeout;
    if retry {
        ex.retried = true;
        ex.uout_sent = 0;
        ex.uin = None;
        if connect(s, env, false).is_ok() {
            return Step::Progress;
        }
        return upstream_failed(s, env, ErrorKind::UpstreamFailed("connect"));
    }
    if ex.resp_head_sent {
        return Step::Close;
    }
    // Stages that watch outcomes (the circuit breaker) see the failure as the answer the
    // client gets.
    if let Some(snap) = ex.snap.clone() {
        ex.ctx.status = kind.status();
        snap.pipeline.on_response(&mut ex.ctx);
    }
    let req_done = ex.req_body.is_done() && ex.fwd_req == 0;
    let close = !req_done || !ex.client_keep_alive;
    let head_only = ex.method == protocols::http1::Method::Head;
    let rid = ex.ctx.request_id;
    let rid_len = ex.ctx.request_id_len;
    if let Some(ex) = s.ex.take() {
        recycle(ex, env);
    }
    answer(s, env, kind, Some(&rid[..rid_len]), close, head_only, None);
    s.phase = if close { Phase::Closing } else { Phase::Head };
    Step::Progress
}

/// Moves an exchange forward: connect, send head and body, read and relay the answer.
fn proxy_step(s: &mut Session, env: &mut Env) -> Step {
    let Some(ex) = s.ex.as_mut() else {
        return Step::Close;
    };
    let Some(key) = ex.up else { return Step::Close };
    let Some(conn) = env.pool.get_mut(key) else {
        return upstream_failed(s, env, ErrorKind::UpstreamFailed("connect"));
    };
    let mut progress = false;

    if !ex.connected {
        match conn.finish_connect() {
            Ok(true) => {
                ex.connected = true;
                ex.up_activity = env.now;
                progress = true;
            }
            Ok(false) => return Step::Idle,
            Err(_) => return upstream_failed(s, env, ErrorKind::UpstreamFailed("connect")),
        }
    }

    // Request head.
    let head_len = ex.uout.as_ref().map_or(0, |u| u.len());
    while ex.uout_sent < head_len && conn.writable {
        let Some(uout) = ex.uout.as_ref() else { break };
        let pending = &uout[ex.uout_sent..];
        match write_some(&mut conn.stream, pending) {
            Ok(n) => {
                if n < pending.len() {
                    conn.writable = false;
                }
                ex.uout_sent += n;
                ex.up_activity = env.now;
                progress = true;
            }
            Err(e) if would_block(&e) => conn.writable = false,
            Err(_) => return upstream_failed(s, env, ErrorKind::UpstreamFailed("send")),
        }
    }
    let head_sent = ex.uout_sent >= head_len;
    if head_sent && ex.up_sent_us == 0 {
        ex.up_sent_us = env.now_us;
    }

    // Request body: approve what the framing allows, write it, read more.
    if head_sent && (!ex.req_body.is_done() || ex.fwd_req > 0) {
        if let Some(cin) = s.cin.as_mut() {
            if let Err(kind) = approve(
                &mut ex.req_body,
                &cin[..],
                &mut ex.fwd_req,
                &mut ex.req_body_bytes,
            ) {
                return client_body_failed(s, env, kind);
            }
            if ex.req_body_bytes > ex.ctx.max_body {
                return client_body_failed(s, env, ErrorKind::BodyTooLarge);
            }
            while ex.fwd_req > 0 && conn.writable {
                match write_some(&mut conn.stream, &cin[..ex.fwd_req]) {
                    Ok(n) => {
                        if n < ex.fwd_req {
                            conn.writable = false;
                        }
                        bytes::Buf::advance(&mut **cin, n);
                        ex.fwd_req -= n;
                        ex.up_activity = env.now;
                        progress = true;
                    }
                    Err(e) if would_block(&e) => conn.writable = false,
                    Err(_) => return upstream_failed(s, env, ErrorKind::UpstreamFailed("send")),
                }
            }
        }
        if !ex.req_body.is_done() && s.readable && !s.read_closed {
            let cin = s.cin.get_or_insert_with(|| env.bufs.checkout());
            let room = env.bufs.buf_size().saturating_sub(cin.len());
            if room > 0 {
                match read_into(&s.stream, cin, room) {
                    Ok(0) => {
                        // The client gave up mid-body: the request can never complete.
                        s.read_closed = true;
                        return Step::Close;
                    }
                    Ok(n) => {
                        if n < room && !s.rdhup {
                            s.readable = false;
                        }
                        s.client_activity = env.now;
                        progress = true;
                    }
                    Err(e) if would_block(&e) => s.readable = false,
                    Err(_) => return Step::Close,
                }
            }
        }
    }

    // Response: read, parse the head, approve body bytes.
    if ex.resp != RespPhase::Done && conn.readable {
        let uin = ex.uin.get_or_insert_with(|| env.bufs.checkout());
        let cap = if ex.resp == RespPhase::Head {
            env.limits.max_head_bytes + 4
        } else {
            env.bufs.buf_size()
        };
        let room = cap.saturating_sub(uin.len()).min(env.bufs.buf_size());
        if room > 0 {
            match read_into(&conn.stream, uin, room) {
                Ok(0) => return upstream_eof(s, env),
                Ok(n) => {
                    if n < room && !conn.rdhup {
                        conn.readable = false;
                    }
                    ex.resp_started = true;
                    ex.up_activity = env.now;
                    progress = true;
                }
                Err(e) if would_block(&e) => conn.readable = false,
                Err(_) => {
                    return if ex.resp_started {
                        upstream_broken(s, env)
                    } else {
                        upstream_failed(s, env, ErrorKind::UpstreamFailed("reset"))
                    }
                }
            }
        }
    }
    match relay_response(s, env) {
        Step::Close => return Step::Close,
        Step::Progress => progress = true,
        Step::Idle => {}
    }
    let Some(ex) = s.ex.as_ref() else {
        return Step::Progress;
    };
    if ex.resp == RespPhase::Done && ex.fwd_resp == 0 && cout_pending(s) == 0 {
        finish_exchange(s, env);
        return Step::Progress;
    }
    if progress {
        Step::Progress
    } else {
        Step::Idle
    }
}

/// Approves body bytes at `buf[*fwd..]` per the framing; returns an error kind for a
/// malformed chunked body.
fn approve(
    body: &mut Body,
    buf: &[u8],
    fwd: &mut usize,
    counted: &mut u64,
) -> Result<(), ErrorKind> {
    loop {
        let avail = buf.len() - *fwd;
        if avail == 0 {
            return Ok(());
        }
        match body {
            Body::Done => return Ok(()),
            Body::Length(rem) => {
                let take = (*rem).min(avail as u64);
                *fwd += take as usize;
                *counted += take;
                *rem -= take;
                if *rem == 0 {
                    *body = Body::Done;
                }
                return Ok(());
            }
            Body::UntilClose => {
                *fwd += avail;
                *counted += avail as u64;
                return Ok(());
            }
            Body::Chunked(dec) => {
                let p = dec
                    .feed(&buf[*fwd..])
                    .map_err(|_| ErrorKind::BadRequest("bad_chunked_body"))?;
                *fwd += p.consumed;
                *counted += (p.data.end - p.data.start) as u64;
                if p.done {
                    *body = Body::Done;
                    return Ok(());
                }
                if p.consumed == 0 {
                    return Ok(());
                }
            }
        }
    }
}

/// The client's body broke a rule mid-stream: the upstream got part of a request, so its
/// connection is dropped; the client gets the answer if none started, and is closed.
fn client_body_failed(s: &mut Session, env: &mut Env, kind: ErrorKind) -> Step {
    let Some(ex) = s.ex.as_mut() else {
        return Step::Close;
    };
    if let Some(key) = ex.up.take() {
        env.pool.discard(env.registry, key);
    }
    if ex.resp_head_sent {
        return Step::Close;
    }
    let rid = ex.ctx.request_id;
    let rid_len = ex.ctx.request_id_len;
    if let Some(ex) = s.ex.take() {
        recycle(ex, env);
    }
    answer(s, env, kind, Some(&rid[..rid_len]), true, false, None);
    s.phase = Phase::Closing;
    Step::Progress
}

/// The upstream closed its side.
fn upstream_eof(s: &mut Session, env: &mut Env) -> Step {
    let Some(ex) = s.ex.as_mut() else {
        return Step::Close;
    };
    match ex.resp_body {
        Body::UntilClose if ex.resp == RespPhase::Body => {
            ex.resp = RespPhase::Done;
            ex.resp_body = Body::Done;
            ex.resp_keep_alive = false;
            if let Some(key) = ex.up.take() {
                env.pool.discard(env.registry, key);
            }
            Step::Progress
        }
        _ if !ex.resp_started => upstream_failed(s, env, ErrorKind::UpstreamFailed("closed")),
        _ => upstream_broken(s, env),
    }
}

/// The upstream broke off mid-answer: answer 502 if the client saw nothing yet, else cut.
fn upstream_broken(s: &mut Session, env: &mut Env) -> Step {
    let Some(ex) = s.ex.as_mut() else {
        return Step::Close;
    };
    if ex.resp_head_sent {
        return Step::Close;
    }
    ex.retried = true;
    upstream_failed(s, env, ErrorKind::UpstreamFailed("bad_response"))
}

/// Parses response heads in `uin` and approves body bytes for the client.
fn relay_response(s: &mut Session, env: &mut Env) -> Step {
    let mut progress = false;
    loop {
        let Some(ex) = s.ex.as_mut() else {
            return Step::Close;
        };
        let Some(uin) = ex.uin.as_mut() else {
            return step(progress);
        };
        match ex.resp {
            RespPhase::Done => return step(progress),
            RespPhase::Body => {
                let before = ex.fwd_resp;
                let mut counted = 0;
                if approve(&mut ex.resp_body, &uin[..], &mut ex.fwd_resp, &mut counted).is_err() {
                    return upstream_broken(s, env);
                }
                if ex.resp_body.is_done() {
                    ex.resp = RespPhase::Done;
                    // Bytes past the end of the answer: the upstream is out of step.
                    if uin.len() > ex.fwd_resp {
                        ex.resp_keep_alive = false;
                    }
                }
                return step(progress || ex.fwd_resp != before);
            }
            RespPhase::Head => {
                if uin.is_empty() {
                    return step(progress);
                }
                match parse_response(&uin[..], env.limits, ex.method, env.resp_head) {
                    Ok(Parsed::Partial) => return step(progress),
                    Err(_) => return upstream_broken(s, env),
                    Ok(Parsed::Complete) => {}
                }
                let head = &*env.resp_head;
                let cout = s.cout.get_or_insert_with(|| env.bufs.checkout());
                if head.status < 200 {
                    if head.status == 101 {
                        // Upgrades are not negotiated on this path: the request's Upgrade
                        // field was dropped, so a 101 is an upstream out of step.
                        return upstream_broken(s, env);
                    }
                    write_response_head(cout, uin, head, &ex.ctx, ClientConn::KeepAlive);
                    bytes::Buf::advance(&mut **uin, head.head_len);
                    progress = true;
                    continue;
                }
                let req_done = ex.req_body.is_done() && ex.fwd_req == 0;
                let until_close = head.body == BodyKind::CloseDelimited;
                let keep = ex.client_keep_alive
                    && req_done
                    && !until_close
                    && !env.stopping
                    && !s.close_after;
                let conn = match (keep, ex.client_minor) {
                    (false, _) => ClientConn::Close,
                    (true, 0) => ClientConn::KeepAlive10,
                    (true, _) => ClientConn::KeepAlive,
                };
                ex.client_keep_alive = keep;
                ex.resp_keep_alive = head.keep_alive;
                ex.ctx.status = head.status;
                write_response_head(cout, uin, head, &ex.ctx, conn);
                bytes::Buf::advance(&mut **uin, head.head_len);
                ex.resp_head_sent = true;
                ex.resp_head_us = env.now_us;
                ex.resp_body = match head.body {
                    BodyKind::None | BodyKind::Length(0) => Body::Done,
                    BodyKind::Length(n) => Body::Length(n),
                    BodyKind::Chunked => {
                        Body::Chunked(ChunkedDecoder::new(MAX_CHUNK_LINE, MAX_TRAILERS))
                    }
                    BodyKind::CloseDelimited => Body::UntilClose,
                };
                ex.resp = if ex.resp_body.is_done() {
                    RespPhase::Done
                } else {
                    RespPhase::Body
                };
                if ex.resp == RespPhase::Done && !uin.is_empty() {
                    ex.resp_keep_alive = false;
                }
                if let Some(snap) = ex.snap.as_ref() {
                    snap.pipeline.on_response(&mut ex.ctx);
                }
                progress = true;
            }
        }
    }
}

fn step(progress: bool) -> Step {
    if progress {
        Step::Progress
    } else {
        Step::Idle
    }
}

/// The answer is fully relayed: park or drop the upstream connection, then read the next
/// request or close.
fn finish_exchange(s: &mut Session, env: &mut Env) {
    let Some(mut ex) = s.ex.take() else { return };
    // Counted against the route table of the version the request ran on, when the worker
    // still serves it (a request straddling a config change goes uncounted by route).
    if ex.ctx.matched
        && ex
            .snap
            .as_ref()
            .is_some_and(|v| v.version == env.routes.version)
    {
        if let Some(r) = env.routes.routes.get(ex.ctx.route.route) {
            r.count(ex.ctx.status);
            r.latency.observe(env.now_us.saturating_sub(ex.started_us));
            if ex.resp_head_us > ex.up_sent_us && ex.up_sent_us > 0 {
                r.upstream_latency.observe(ex.resp_head_us - ex.up_sent_us);
            }
        }
    }
    let req_done = ex.req_body.is_done() && ex.fwd_req == 0;
    let uin_clean = ex.uin.as_ref().is_none_or(|u| u.is_empty());
    if let Some(key) = ex.up.take() {
        let reusable = ex.resp_keep_alive && req_done && uin_clean;
        env.pool
            .release(env.registry, key, env.now, reusable, ex.max_idle);
    }
    let keep = ex.client_keep_alive && req_done && !s.close_after && !env.stopping;
    recycle(ex, env);
    if keep {
        s.phase = Phase::Head;
        s.head_started = if s.cin.as_ref().is_some_and(|c| !c.is_empty()) {
            env.now
        } else {
            0
        };
    } else {
        s.close_after = true;
        s.phase = Phase::Closing;
    }
}

/// Flushes the last answer, half-closes, and reads what the client still sends for a
/// bounded time so it sees the answer rather than a reset.
fn closing_step(s: &mut Session) -> Step {
    if cout_pending(s) > 0 {
        return Step::Idle;
    }
    if !s.read_closed {
        let _ = s.stream.shutdown(std::net::Shutdown::Write);
    }
    let mut drained = 0usize;
    let mut sink = [0u8; 4096];
    loop {
        match io::Read::read(&mut s.stream, &mut sink) {
            Ok(0) => return Step::Close,
            Ok(n) => {
                drained += n;
                if drained > 1 << 20 {
                    return Step::Close;
                }
            }
            Err(e) if would_block(&e) => {
                s.readable = false;
                s.read_closed = true;
                return Step::Idle;
            }
            Err(_) => return Step::Close,
        }
    }
}

/// After a drive: return idle buffers and arm the session's next deadline.
fn settle(s: &mut Session, env: &mut Env) {
    if s.cout.as_ref().is_some_and(|c| c.is_empty()) {
        s.cout = None;
    }
    let l = &env.snap.config.limits;
    s.deadline = match s.phase {
        Phase::Head => {
            if s.cin.as_ref().is_some_and(|c| c.is_empty()) {
                s.cin = None;
            }
            // A head under way, or a new connection that has sent nothing yet, must finish
            // within the header timeout; only a kept-alive connection between requests
            // gets the idle timeout.
            if s.head_started > 0 {
                s.head_started + l.header_timeout_ms
            } else if cout_pending(s) > 0 {
                s.client_activity + l.send_timeout_ms
            } else {
                s.client_activity + l.idle_timeout_ms
            }
        }
        Phase::Proxy => match s.ex.as_ref() {
            None => s.client_activity + l.idle_timeout_ms,
            Some(ex) => {
                let mut d = u64::MAX;
                if !ex.connected {
                    d = ex.conn_started + ex.connect_timeout_ms;
                } else if ex.resp != RespPhase::Done {
                    d = ex.up_activity + ex.read_timeout_ms;
                }
                if !ex.req_body.is_done() {
                    d = d.min(s.client_activity + l.body_timeout_ms);
                }
                if cout_pending(s) > 0 || ex.fwd_resp > 0 {
                    d = d.min(s.client_activity + l.send_timeout_ms);
                }
                d
            }
        },
        Phase::ReadBody => s.client_activity + l.body_timeout_ms,
        Phase::Calls => s.ex.as_deref().map_or(env.now, crate::calls::deadline),
        Phase::Closing => {
            if cout_pending(s) > 0 {
                s.client_activity + l.send_timeout_ms
            } else {
                s.client_activity + LINGER_MS
            }
        }
    };
}

/// The session's deadline passed: answer or close as its state says.
pub fn on_timeout(s: &mut Session, env: &mut Env) -> Outcome {
    match s.phase {
        Phase::Head => {
            if s.cin.as_ref().is_some_and(|c| !c.is_empty()) && cout_pending(s) == 0 {
                answer(s, env, ErrorKind::ClientTimeout, None, true, false, None);
                s.phase = Phase::Closing;
                s.client_activity = env.now;
                return drive(s, env);
            }
            close(s, env)
        }
        Phase::Proxy => {
            let Some(ex) = s.ex.as_ref() else {
                return close(s, env);
            };
            let upstream_late = !ex.connected
                || (ex.resp != RespPhase::Done && env.now >= ex.up_activity + ex.read_timeout_ms);
            if upstream_late && !ex.resp_head_sent {
                let _ = upstream_failed(s, env, ErrorKind::UpstreamTimeout);
                s.client_activity = env.now;
                return drive(s, env);
            }
            close(s, env)
        }
        Phase::Calls => match crate::calls::on_timeout(s, env) {
            Step::Close => close(s, env),
            _ => drive(s, env),
        },
        Phase::ReadBody => {
            if let Some(ex) = s.ex.take() {
                recycle(ex, env);
            }
            answer(s, env, ErrorKind::ClientTimeout, None, true, false, None);
            s.phase = Phase::Closing;
            s.client_activity = env.now;
            drive(s, env)
        }
        Phase::Closing => close(s, env),
    }
}
