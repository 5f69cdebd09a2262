//! The upstream half of an exchange: connecting through the pool, sending the rewritten head
//! and streaming the request body, reading and relaying the answer, and what happens when the
//! upstream fails (a retry per `crate::failover`, or an answer, or cutting the client off).
//!
//! Bodies are never copied between buffers: the framing tracker approves bytes in the buffer
//! they were read into (`cin` for the request, `uin` for the answer) and they are written
//! from there (see `approve`).

use crate::forward::{write_response_head, ClientConn};
use crate::http::{answer, cout_pending, recycle, step, Env, Step, MAX_CHUNK_LINE, MAX_TRAILERS};
use crate::io::would_block;
use crate::session::{Body, Phase, RespPhase, Session};
use crate::transport::{up_flush, up_read, up_send, up_write};
use protocols::error::ErrorKind;
use protocols::http1::{parse_response, BodyKind, ChunkedDecoder, Parsed};
use std::io;

pub(crate) fn connect(s: &mut Session, env: &mut Env, reuse: bool) -> io::Result<()> {
    let Some(ex) = s.ex.as_mut() else {
        return Ok(());
    };
    let snap = ex.snap.clone();
    let tls = snap
        .as_ref()
        .and_then(|s| s.upstreams.get(ex.ctx.upstream))
        .and_then(|u| u.tls.as_ref());
    let a = env.pool.acquire(
        env.registry,
        ex.up_addr,
        env.sid,
        env.now,
        ex.idle_timeout_ms,
        reuse,
        tls,
    )?;
    ex.up = Some(a.key);
    ex.up_reused = a.reused;
    ex.connected = a.reused;
    ex.conn_started = env.now;
    ex.up_activity = env.now;
    Ok(())
}

/// The upstream failed before the exchange could complete: go again when that is safe (a
/// stale keep-alive connection, or another node per the route's retry rules in
/// `crate::failover`), else answer (if nothing of the answer went out yet) or cut the client
/// off.
pub(crate) fn upstream_failed(s: &mut Session, env: &mut Env, kind: ErrorKind) -> Step {
    let Some(ex) = s.ex.as_mut() else {
        return Step::Close;
    };
    if let Some(key) = ex.up.take() {
        env.pool.discard(env.registry, key);
    }
    // A reused keep-alive connection may have been closed by the upstream just as we sent;
    // an idempotent request without a body that got no byte back can safely go again, to the
    // same node on a fresh connection: the node did nothing wrong.
    let stale = ex.up_reused
        && !ex.retried
        && !ex.resp_started
        && ex.method.is_idempotent()
        && ex.req_body_bytes == 0
        && matches!(ex.req_body, Body::Done)
        && kind != ErrorKind::UpstreamTimeout;
    if stale {
        ex.retried = true;
        ex.uout_sent = 0;
        ex.uin = None;
        if connect(s, env, false).is_ok() {
            return Step::Progress;
        }
        return upstream_failed(s, env, ErrorKind::UpstreamFailed("connect"));
    }
    crate::failover::report(ex, true);
    if let Some(node) = crate::failover::retry_node(ex, env) {
        crate::failover::begin_retry(ex, node, env.now);
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
        crate::stats::count_release(env, ex, snap.version, ex.ctx.status);
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
pub(crate) fn proxy_step(s: &mut Session, env: &mut Env) -> Step {
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
        match up_write(conn, pending) {
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
            match up_send(conn, cin, &mut ex.fwd_req) {
                Ok(true) => {
                    ex.up_activity = env.now;
                    progress = true;
                }
                Ok(false) => {}
                Err(_) => return upstream_failed(s, env, ErrorKind::UpstreamFailed("send")),
            }
        }
        if !ex.req_body.is_done() && s.readable && !s.read_closed {
            let cin = s.cin.get_or_insert_with(|| env.bufs.checkout());
            let room = env.bufs.buf_size().saturating_sub(cin.len());
            if room > 0 {
                match s.stream.read_into(cin, room) {
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

    // TLS records encrypted earlier that the socket had no room for.
    if conn.writable && conn.tls.as_ref().is_some_and(|t| t.conn.wants_write()) {
        match up_flush(conn) {
            Ok(()) => progress = true,
            Err(e) if would_block(&e) => conn.writable = false,
            Err(_) => return upstream_failed(s, env, ErrorKind::UpstreamFailed("send")),
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
            match up_read(conn, uin, room) {
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
pub(crate) fn client_body_failed(s: &mut Session, env: &mut Env, kind: ErrorKind) -> Step {
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
            if ex.sealing && crate::seal::finish(s, env).is_err() {
                return upstream_broken(s, env);
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
            RespPhase::Body if ex.sealing => {
                return match crate::seal::collect(s, env) {
                    Ok(st) => step(progress || st == Step::Progress),
                    Err(_) => upstream_broken(s, env),
                };
            }
            RespPhase::Body => {
                let before = ex.fwd_resp;
                let mut counted = 0;
                if approve(&mut ex.resp_body, &uin[..], &mut ex.fwd_resp, &mut counted).is_err() {
                    return upstream_broken(s, env);
                }
                env.log.sent(env.sid, ex.fwd_resp - before);
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
                        // Only a checked WebSocket upgrade may switch protocols, and only
                        // with a valid Sec-WebSocket-Accept; any other 101 is an upstream
                        // out of step (the request's Upgrade field was dropped).
                        return match crate::tunnel::open(s, env) {
                            Ok(step) => step,
                            Err(()) => upstream_broken(s, env),
                        };
                    }
                    write_response_head(cout, uin, head, &ex.ctx, ClientConn::KeepAlive, false);
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
                // A body codec seals the answer: the head waits (without its framing) until
                // the whole body is in and sealed.
                let seal = crate::seal::wants_sealing(&ex.ctx, ex.method)
                    && !matches!(head.body, BodyKind::None | BodyKind::Length(0));
                if seal {
                    let sh = ex.seal_head.get_or_insert_with(|| env.bufs.checkout());
                    sh.clear();
                    write_response_head(sh, uin, head, &ex.ctx, conn, true);
                    ex.sealing = true;
                } else {
                    write_response_head(cout, uin, head, &ex.ctx, conn, false);
                }
                bytes::Buf::advance(&mut **uin, head.head_len);
                ex.resp_head_sent = !seal;
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
    crate::failover::report(&mut ex, false);
    crate::access_log::finished(s, env, &ex, ex.ctx.status);
    let version = ex.snap.as_ref().map_or(0, |v| v.version);
    crate::stats::count_release(env, &ex, version, ex.ctx.status);
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
