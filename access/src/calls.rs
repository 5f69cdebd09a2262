//! Side-service calls (`auth_service`, `risk`, `device_fingerprint`) made for one request,
//! all at once, through the worker's upstream pools.
//!
//! When the pipeline answers `Flow::Wait`, [`start`] sends every call listed in the context
//! and the session enters `Phase::Calls`; the calls' connections are owned by the session, so
//! their readiness events drive it here. Each call ends when its answer head arrives (the
//! status is what the merge needs; a small body already read is skipped so the connection can
//! be reused, a longer one costs the connection), when it fails, or at its own timeout. When
//! every call has ended, the pipeline resumes at the stage that asked, which merges.

use crate::http::{answer, start_exchange, Env, Step};
use crate::io::would_block;
use crate::session::{Exchange, Phase, Session};
use business::calls::{CallOutcome, MAX_CALLS};
use bytes::BufMut;
use protocols::error::ErrorKind;
use protocols::http1::{parse_request, parse_response, BodyKind, Method, Parsed};
use reactor::PooledBuf;
use std::io::Write;
use std::net::SocketAddr;

/// The I/O state of one call.
#[derive(Default)]
pub struct CallIo {
    pub active: bool,
    pub key: Option<usize>,
    pub connected: bool,
    pub out: Option<PooledBuf>,
    pub sent: usize,
    pub inb: Option<PooledBuf>,
    pub deadline: u64,
    pub max_idle: usize,
}

/// Drops every call still holding a connection (the exchange ends early).
pub(crate) fn abandon(ex: &mut Exchange, env: &mut Env) {
    for c in ex.calls.iter_mut() {
        if let Some(key) = c.key.take() {
            env.pool.discard(env.registry, key);
        }
        c.active = false;
        c.out = None;
        c.inb = None;
    }
}

fn end(ex: &mut Exchange, env: &mut Env, i: usize, outcome: CallOutcome, reusable: bool) {
    let c = &mut ex.calls[i];
    if let Some(key) = c.key.take() {
        if reusable {
            env.pool
                .release(env.registry, key, env.now, true, c.max_idle);
        } else {
            env.pool.discard(env.registry, key);
        }
    }
    c.active = false;
    c.out = None;
    c.inb = None;
    if ex.ctx.call_outcomes[i] == CallOutcome::Pending {
        ex.ctx.call_outcomes[i] = outcome;
    }
}

/// Sends every call the pipeline listed; the client's head is in `cin` and `env.req_head`.
pub(crate) fn start(s: &mut Session, env: &mut Env) -> Step {
    let Some(ex) = s.ex.as_mut() else {
        return Step::Close;
    };
    let Some(specs) = ex.ctx.calls.clone() else {
        return Step::Close;
    };
    let Some(snap) = ex.snap.clone() else {
        return Step::Close;
    };
    let cin = s.cin.as_deref().map_or(&[][..], |c| &c[..]);
    let head = &*env.req_head;
    for (i, spec) in specs.iter().enumerate().take(MAX_CALLS) {
        let Some(up) = snap.upstreams.get(spec.upstream) else {
            ex.ctx.call_outcomes[i] = CallOutcome::Failed;
            continue;
        };
        let Some(addr) = env
            .core
            .balancers
            .get_mut(spec.upstream)
            .and_then(|b| b.pick())
            .and_then(|n| up.addrs.get(n))
            .copied()
        else {
            ex.ctx.call_outcomes[i] = CallOutcome::Failed;
            continue;
        };
        let acquired = match env.pool.acquire(
            env.registry,
            addr,
            env.sid,
            env.now,
            up.idle_timeout_ms,
            true,
            up.tls.as_ref(),
        ) {
            Ok(a) => a,
            Err(_) => {
                ex.ctx.call_outcomes[i] = CallOutcome::Failed;
                continue;
            }
        };
        let mut out = env.bufs.checkout();
        write_call(&mut out, spec, addr, &ex.ctx, head, cin);
        ex.calls[i] = CallIo {
            active: true,
            key: Some(acquired.key),
            connected: acquired.reused,
            out: Some(out),
            sent: 0,
            inb: None,
            deadline: env.now + spec.timeout_ms,
            max_idle: up.max_idle,
        };
    }
    s.phase = Phase::Calls;
    Step::Progress
}

/// The request to a check service: the configured method and path, the request's identity
/// (`X-Request-Id`, client address, original method and URI) and the configured fields.
fn write_call(
    out: &mut bytes::BytesMut,
    spec: &business::calls::CallConfig,
    addr: SocketAddr,
    ctx: &business::Context,
    head: &protocols::http1::RequestHead,
    cin: &[u8],
) {
    out.put_slice(spec.method.as_bytes());
    out.put_u8(b' ');
    out.put_slice(spec.path.as_bytes());
    out.put_slice(b" HTTP/1.1\r\nHost: ");
    let mut tmp = [0u8; 64];
    let mut cur = std::io::Cursor::new(&mut tmp[..]);
    let _ = write!(cur, "{addr}");
    let n = cur.position() as usize;
    out.put_slice(&tmp[..n]);
    out.put_slice(b"\r\nX-Request-Id: ");
    out.put_slice(ctx.request_id());
    let mut ip = [0u8; 48];
    out.put_slice(b"\r\nX-Real-IP: ");
    out.put_slice(crate::forward::fmt_ip(ctx.client_ip, &mut ip));
    out.put_slice(b"\r\nX-Original-Method: ");
    out.put_slice(head.method_span.get(cin));
    out.put_slice(b"\r\nX-Original-URI: ");
    out.put_slice(head.target.get(cin));
    out.put_slice(b"\r\n");
    for name in &spec.forward_headers {
        for h in head
            .headers()
            .iter()
            .filter(|h| h.name.get(cin).eq_ignore_ascii_case(name.as_bytes()))
        {
            out.put_slice(name.as_bytes());
            out.put_slice(b": ");
            out.put_slice(h.value.get(cin));
            out.put_slice(b"\r\n");
        }
    }
    out.put_slice(b"Content-Length: 0\r\n\r\n");
}

/// Moves every call forward; resumes the pipeline when all have ended.
pub(crate) fn step(s: &mut Session, env: &mut Env) -> Step {
    let Some(ex) = s.ex.as_mut() else {
        return Step::Close;
    };
    let mut progress = false;
    for i in 0..MAX_CALLS {
        if ex.calls[i].active {
            progress |= step_one(ex, env, i);
        }
    }
    if ex.calls.iter().any(|c| c.active) {
        return if progress { Step::Progress } else { Step::Idle };
    }
    // Every call ended: the client's head is still in `cin`; parse it again (the scratch
    // head served other sessions meanwhile) and resume the pipeline.
    let Some(cin) = s.cin.as_ref() else {
        return Step::Close;
    };
    match parse_request(cin, env.limits, env.req_head) {
        Ok(Parsed::Complete) => start_exchange(s, env),
        _ => {
            let rid = ex.ctx.request_id;
            let len = ex.ctx.request_id_len;
            if let Some(ex) = s.ex.take() {
                crate::http::recycle(ex, env);
            }
            answer(
                s,
                env,
                ErrorKind::Internal,
                Some(&rid[..len]),
                true,
                false,
                None,
            );
            s.phase = Phase::Closing;
            Step::Progress
        }
    }
}

fn step_one(ex: &mut Exchange, env: &mut Env, i: usize) -> bool {
    let Some(key) = ex.calls[i].key else {
        end(ex, env, i, CallOutcome::Failed, false);
        return true;
    };
    let Some(conn) = env.pool.get_mut(key) else {
        end(ex, env, i, CallOutcome::Failed, false);
        return true;
    };
    let c = &mut ex.calls[i];
    let mut progress = false;
    if !c.connected {
        match conn.finish_connect() {
            Ok(true) => {
                c.connected = true;
                progress = true;
            }
            Ok(false) => return false,
            Err(_) => {
                end(ex, env, i, CallOutcome::Failed, false);
                return true;
            }
        }
    }
    if let Some(out) = c.out.as_ref() {
        while c.sent < out.len() && conn.writable {
            match crate::transport::up_write(conn, &out[c.sent..]) {
                Ok(n) => {
                    c.sent += n;
                    progress = true;
                }
                Err(e) if would_block(&e) => conn.writable = false,
                Err(_) => {
                    end(ex, env, i, CallOutcome::Failed, false);
                    return true;
                }
            }
        }
    }
    if !conn.readable {
        return progress;
    }
    let inb = c.inb.get_or_insert_with(|| env.bufs.checkout());
    let room = (env.limits.max_head_bytes + 4)
        .saturating_sub(inb.len())
        .min(env.bufs.buf_size());
    match crate::transport::up_read(conn, inb, room.max(1)) {
        Ok(0) => {
            end(ex, env, i, CallOutcome::Failed, false);
            return true;
        }
        Ok(n) => {
            if n < room && !conn.rdhup {
                conn.readable = false;
            }
            progress = true;
        }
        Err(e) if would_block(&e) => {
            conn.readable = false;
            return progress;
        }
        Err(_) => {
            end(ex, env, i, CallOutcome::Failed, false);
            return true;
        }
    }
    // Interim answers are skipped; the first final head decides.
    loop {
        let Some(inb) = ex.calls[i].inb.as_mut() else {
            return progress;
        };
        let method = ex
            .ctx
            .calls
            .as_ref()
            .and_then(|c| c.get(i))
            .map_or(Method::Get, |c| Method::from_bytes(c.method.as_bytes()));
        match parse_response(inb, env.limits, method, env.resp_head) {
            Ok(Parsed::Partial) => return progress,
            Err(_) => {
                end(ex, env, i, CallOutcome::Failed, false);
                return true;
            }
            Ok(Parsed::Complete) => {}
        }
        let head = &*env.resp_head;
        if head.status < 200 {
            bytes::Buf::advance(&mut **inb, head.head_len);
            continue;
        }
        let status = head.status;
        if (200..300).contains(&status) {
            if let Some(specs) = ex.ctx.calls.clone() {
                for name in specs.get(i).map_or(&[][..], |s| &s.copy_headers[..]) {
                    if let Some(h) = head.find_name(inb, name.as_bytes()) {
                        // A field that does not fit fails the call rather than vanishing.
                        if !ex
                            .ctx
                            .upstream_headers
                            .push(name.as_bytes(), h.value.get(inb))
                        {
                            end(ex, env, i, CallOutcome::Failed, false);
                            return true;
                        }
                    }
                }
            }
        }
        // The connection is reusable only if the whole answer is already here.
        let rest = inb.len() - head.head_len;
        let whole = match head.body {
            BodyKind::None => rest == 0,
            BodyKind::Length(n) => rest as u64 == n,
            _ => false,
        };
        let reusable = whole && head.keep_alive;
        end(ex, env, i, CallOutcome::Status(status), reusable);
        return true;
    }
}

/// The earliest deadline among the calls still running.
pub(crate) fn deadline(ex: &Exchange) -> u64 {
    ex.calls
        .iter()
        .filter(|c| c.active)
        .map(|c| c.deadline)
        .min()
        .unwrap_or(u64::MAX)
}

/// Ends the calls whose time is up; resumes when none is left.
pub(crate) fn on_timeout(s: &mut Session, env: &mut Env) -> Step {
    let Some(ex) = s.ex.as_mut() else {
        return Step::Close;
    };
    for i in 0..MAX_CALLS {
        if ex.calls[i].active && ex.calls[i].deadline <= env.now {
            end(ex, env, i, CallOutcome::TimedOut, false);
        }
    }
    step(s, env)
}
