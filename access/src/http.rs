//! The HTTP/1.1 session driver: what a session does when its sockets become ready.
//!
//! `drive` loops over small steps (flush to the client, read and parse a head, pump the
//! exchange) until none makes progress, which with edge-triggered readiness means every
//! socket it needs has returned `WouldBlock`. Bodies stream through bounded buffers: bytes
//! are approved for forwarding by the framing tracker (length or chunked decoder) and
//! written straight from the buffer they were read into, so a body of any size passes
//! through one 16 KiB buffer per direction.

use crate::forward::{write_request_head, RequestRewrite};
use crate::io::would_block;
use crate::session::{Body, CoreSnap, Exchange, Phase, RespPhase, Session};
use business::{CoreState, Flow, Request};
use components::HttpPool;
use mio::Registry;
use protocols::error::{write_error, Answer, ErrorKind};
use protocols::http1::{
    parse_request, BodyKind, ChunkedDecoder, HeadError, HeaderKind, Limits, Parsed, RequestHead,
    ResponseHead,
};
use reactor::BufPool;

/// Steps per `drive` call before the session yields to others (fairness under a fast peer).
const MAX_ROUNDS: usize = 64;
/// Longest chunk-size line (with extensions) and trailer section accepted.
pub(crate) const MAX_CHUNK_LINE: usize = 4096;
pub(crate) const MAX_TRAILERS: usize = 16 * 1024;
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
    pub thrift: &'a mut crate::thrift::ThriftCore,
    /// The worker's access log queue and per-session staging.
    pub log: &'a mut crate::access_log::WorkerLog,
    /// The memory guard says the process is over `server.max_memory_mb`: new requests are
    /// answered 503 (see `overload.rs`).
    pub shedding: bool,
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
            Phase::Proxy => crate::proxy::proxy_step(s, env),
            Phase::ReadBody => crate::body::read_body_step(s, env),
            Phase::Calls => crate::calls::step(s, env),
            Phase::Thrift => crate::thrift::step(s, env),
            Phase::Tunnel => crate::tunnel::step(s, env),
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
        // A tunnel's request was logged when its 101 went out.
        if !ex.ws.open {
            crate::access_log::aborted(s, env, &ex);
        }
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
    crate::overload::release(&mut ex);
    crate::failover::end(&mut ex);
    crate::calls::abandon(&mut ex, env);
    crate::thrift::abandon(&mut ex, env);
    crate::tunnel::abandon(&mut ex, env);
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
            // TLS records encrypted earlier that the socket had no room for.
            if s.stream.has_pending() {
                match s.stream.flush_pending() {
                    Ok(()) => progress = true,
                    Err(e) if would_block(&e) => s.writable = false,
                    Err(_) => return Step::Close,
                }
            }
            break;
        }
        let head_len = head.len();
        match s.stream.write_two(head, body) {
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

pub(crate) fn cout_pending(s: &Session) -> usize {
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
    match s.stream.read_into(cin, room) {
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
    crate::access_log::answered(s, env, kind, rid, request_id.is_some());
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
    if !resuming && env.shedding {
        return crate::overload::shed(s, env);
    }
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
        env.log.begin(env.sid, env.now_us, head, cin);
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
        tls: s.stream.is_tls(),
        body,
    };
    // A WebSocket upgrade is checked before the pipeline; a good one then runs it like any
    // request.
    let ws_refused = if resuming {
        None
    } else {
        crate::tunnel::check_request(&mut ex.ws, head, req.buf).err()
    };
    let flow = match ws_refused {
        Some(kind) => Flow::Respond(business::Reject::new(kind)),
        None => snap.pipeline.run(&mut ex.ctx, &req, &snap, env.core),
    };
    if let Flow::Reply(status) = flow {
        bytes::Buf::advance(&mut **cin, head.head_len);
        let close = has_body || !ex.client_keep_alive;
        let cout = s.cout.get_or_insert_with(|| env.bufs.checkout());
        write_reply(cout, status, &ex.ctx, close);
        crate::access_log::finished(s, env, &ex, status);
        crate::stats::count_release(env, &ex, snap.version, status);
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
            _ => crate::overload::admit(&mut ex, &snap),
        },
    };
    if let Some((kind, retry_after, field)) = reject {
        let head_len = head.head_len;
        bytes::Buf::advance(&mut **cin, head_len);
        // An unread body cannot be told apart from the next request: close after answering.
        let close = has_body || !ex.client_keep_alive;
        let rid = ex.ctx.request_id;
        let rid_len = ex.ctx.request_id_len;
        crate::stats::count_release(env, &ex, snap.version, kind.status());
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

    if snap.thrift_route(ex.ctx.route.route).is_some() {
        return crate::thrift::start(s, env, ex, snap);
    }
    let up = &snap.upstreams[ex.ctx.upstream];
    ex.up_addr = up.addrs[ex.ctx.node];
    ex.connect_timeout_ms = up.connect_timeout_ms;
    ex.read_timeout_ms = up.read_timeout_ms;
    ex.max_idle = up.max_idle;
    ex.idle_timeout_ms = up.idle_timeout_ms;
    // A body codec (decrypt) opens the buffered body where it lies; the plaintext goes
    // upstream right behind the head, with its own Content-Length.
    let opened = match (ex.ctx.codec.clone(), has_body) {
        (Some(codec), true) => {
            let mut app = [0u8; business::codec::MAX_APP_ID];
            let app_len = ex.ctx.codec_app_len;
            app[..app_len].copy_from_slice(&ex.ctx.codec_app[..app_len]);
            let app = std::str::from_utf8(&app[..app_len]).unwrap_or("");
            let mut empty = [0u8; 0];
            let r = match head.body {
                BodyKind::Length(n) => {
                    let n = n as usize;
                    match cin.get_mut(head.head_len..head.head_len + n) {
                        Some(b) => codec
                            .open(app, b)
                            .map(|(o, l)| (false, head.head_len + o, l, n)),
                        None => Err(ErrorKind::Internal),
                    }
                }
                _ => {
                    let consumed = ex.body_scanned;
                    let b = ex
                        .body_buf
                        .as_deref_mut()
                        .map_or(&mut empty[..], |b| &mut b[..]);
                    codec.open(app, b).map(|(o, l)| (true, o, l, consumed))
                }
            };
            match r {
                Ok(v) => Some(v),
                Err(kind) => {
                    let rid = ex.ctx.request_id;
                    let rid_len = ex.ctx.request_id_len;
                    recycle(ex, env);
                    answer(s, env, kind, Some(&rid[..rid_len]), true, head_only, None);
                    s.phase = Phase::Closing;
                    return Step::Progress;
                }
            }
        }
        _ => None,
    };
    // A route release's candidate may strip where the route does not.
    let strip = snap.route_for(&ex.ctx).is_some_and(|r| r.strip_prefix);
    let path = head.path.get(cin);
    let stripped = if strip && ex.ctx.route.prefix_len > 0 {
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
        proto: if s.stream.is_tls() {
            &b"https"[..]
        } else {
            b"http"
        },
        request_id: ex.ctx.request_id(),
        upstream_addr: ex.up_addr,
        extra: &ex.ctx.upstream_headers,
        remove: &ex.ctx.upstream_remove,
        body_len: opened.map(|o| o.2),
        websocket: ex.ws.key.is_some(),
    };
    write_request_head(uout, cin, head, &rw);
    let mut consumed = head.head_len;
    if let Some((in_buf, off, len, raw)) = opened {
        let src: &[u8] = if in_buf {
            ex.body_buf.as_deref().map_or(&[], |b| &b[..])
        } else {
            &cin[..]
        };
        uout.extend_from_slice(src.get(off..off + len).unwrap_or(&[]));
        consumed += raw;
    }
    ex.uout_sent = 0;
    ex.req_body = match head.body {
        _ if opened.is_some() => Body::Done,
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
    bytes::Buf::advance(&mut **cin, consumed);
    ex.snap = Some(snap);
    crate::failover::first_try(&mut ex, env.now);
    s.ex = Some(ex);
    s.phase = Phase::Proxy;
    s.head_started = 0;
    if crate::proxy::connect(s, env, true).is_err() {
        return crate::proxy::upstream_failed(s, env, ErrorKind::UpstreamFailed("connect"));
    }
    Step::Progress
}

pub(crate) fn step(progress: bool) -> Step {
    if progress {
        Step::Progress
    } else {
        Step::Idle
    }
}

/// Flushes the last answer, half-closes, and reads what the client still sends for a
/// bounded time so it sees the answer rather than a reset.
fn closing_step(s: &mut Session) -> Step {
    if cout_pending(s) > 0 || s.stream.has_pending() {
        return Step::Idle;
    }
    if !s.read_closed {
        s.stream.shutdown_write();
    }
    let mut drained = 0usize;
    let mut sink = [0u8; 4096];
    loop {
        match s.stream.discard(&mut sink) {
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
                if !ex.resp_started {
                    d = d.min(ex.try_deadline);
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
        Phase::Thrift => s.ex.as_deref().map_or(env.now, crate::thrift::deadline),
        Phase::Tunnel => crate::tunnel::deadline(s, env.now),
        Phase::Closing => {
            if cout_pending(s) > 0 {
                s.client_activity + l.send_timeout_ms
            } else {
                s.client_activity + LINGER_MS
            }
        }
    };
    // A TLS handshake has its own, usually shorter, time (`tls.handshake_timeout_ms`).
    if let Some(d) = s.stream.handshake_deadline() {
        s.deadline = s.deadline.min(d);
    }
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
            // The client stalled mid-body while the gateway had room for more: its fault,
            // answered 408 (the upstream's half-sent request is dropped with its connection).
            let room = s.cin.as_ref().is_none_or(|c| c.len() < env.bufs.buf_size());
            if !ex.req_body.is_done()
                && room
                && !ex.resp_head_sent
                && env.now >= s.client_activity + env.snap.config.limits.body_timeout_ms
            {
                let _ = crate::proxy::client_body_failed(s, env, ErrorKind::ClientTimeout);
                s.client_activity = env.now;
                return drive(s, env);
            }
            let upstream_late = !ex.connected
                || crate::failover::try_expired(ex, env.now)
                || (ex.resp != RespPhase::Done && env.now >= ex.up_activity + ex.read_timeout_ms);
            if upstream_late && !ex.resp_head_sent {
                let _ = crate::proxy::upstream_failed(s, env, ErrorKind::UpstreamTimeout);
                s.client_activity = env.now;
                return drive(s, env);
            }
            close(s, env)
        }
        Phase::Calls => match crate::calls::on_timeout(s, env) {
            Step::Close => close(s, env),
            _ => drive(s, env),
        },
        Phase::Thrift => match crate::thrift::on_timeout(s, env) {
            Step::Close => close(s, env),
            _ => drive(s, env),
        },
        Phase::Tunnel => match crate::tunnel::on_timeout(s, env) {
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
