//! Tries of one proxied request: what each try tells the shared health table (passive
//! checks), whether a failed try may be retried and on which node, and the per-try and
//! overall deadlines.
//!
//! The retry rules (docs/resilience.md):
//! - nothing of the request went out (connect failed or timed out): retry, whatever the method;
//! - the request went out but no answer byte came back (reset, close, try timeout): retry only
//!   idempotent methods, or any when the route says `retry_non_idempotent`, and only while the
//!   request can be replayed whole (no body bytes streamed yet: bodies are not kept);
//! - once any answer byte came back: never;
//! - at most the route's `retries`, never to a node already tried, not past the route's
//!   `timeout_ms`, and only while the upstream's retry budget has room.
//!
//! Everything here reads the exchange's own snapshot, so a config change mid-request does not
//! mix versions. Nothing allocates.

use crate::http::Env;
use crate::session::Exchange;
use components::health::clock_ms;

/// The first try begins (the node was picked by the upstream stage).
pub(crate) fn first_try(ex: &mut Exchange, now: u64) {
    ex.tried = bit(ex.ctx.node);
    ex.tries = 1;
    let Some(snap) = ex.snap.as_ref() else { return };
    let route = snap.route_for(&ex.ctx);
    let overall = route.map_or(0, |r| r.timeout_ms);
    ex.deadline = if overall > 0 { now + overall } else { u64::MAX };
    ex.try_timeout_ms = route.map_or(0, |r| r.try_timeout_ms);
    if let Some(up) = snap.upstreams.get(ex.ctx.upstream) {
        up.res.health.budget.on_request(clock_ms());
    }
    begin(ex, now);
}

/// A try starts on `ex.ctx.node`: its deadline, and the in-flight count least_request uses.
fn begin(ex: &mut Exchange, now: u64) {
    ex.try_deadline = if ex.try_timeout_ms > 0 {
        (now + ex.try_timeout_ms).min(ex.deadline)
    } else {
        ex.deadline
    };
    let Some(snap) = ex.snap.as_ref() else { return };
    if let Some(up) = snap.upstreams.get(ex.ctx.upstream) {
        if let Some(a) = up.addrs.get(ex.ctx.node) {
            ex.up_addr = *a;
        }
        if up.res.kind == components::balancer::Kind::LeastRequest {
            up.res.health.begin(ex.ctx.node);
            ex.in_flight = true;
        }
    }
}

/// The try ended (any way): the in-flight count goes down. Idempotent.
pub(crate) fn end(ex: &mut Exchange) {
    if !ex.in_flight {
        return;
    }
    ex.in_flight = false;
    if let Some(up) = ex
        .snap
        .as_ref()
        .and_then(|s| s.upstreams.get(ex.ctx.upstream))
    {
        up.res.health.end(ex.ctx.node);
    }
}

/// The try's outcome for the passive checks: `failed` for a connect failure, reset or
/// timeout; an answer's status is judged here (5xx by the upstream's policy).
pub(crate) fn report(ex: &mut Exchange, failed: bool) {
    end(ex);
    let Some(up) = ex
        .snap
        .as_ref()
        .and_then(|s| s.upstreams.get(ex.ctx.upstream))
    else {
        return;
    };
    let failed = failed || (up.res.count_5xx && ex.ctx.status >= 500);
    if up.res.outlier.is_off() {
        return;
    }
    up.res
        .health
        .report(ex.ctx.node, failed, &up.res.outlier, clock_ms());
}

/// After a failed try: the node of the next try, when the rules allow one (and the budget
/// pays for it); `None` to give up with the failure.
pub(crate) fn retry_node(ex: &mut Exchange, env: &mut Env) -> Option<usize> {
    let snap = ex.snap.as_ref()?;
    let route = snap.route_for(&ex.ctx);
    let retries = route.map_or(1, |r| r.retries);
    if ex.resp_started || ex.tries > retries || env.now >= ex.deadline {
        return None;
    }
    let nothing_sent = ex.uout_sent == 0 && ex.req_body_bytes == 0;
    let replayable = ex.req_body_bytes == 0 && ex.fwd_req == 0;
    let method_ok = ex.method.is_idempotent() || route.is_some_and(|r| r.retry_non_idempotent);
    if !(nothing_sent || (replayable && method_ok)) {
        return None;
    }
    let node = business::resilience::pick(
        snap,
        env.core,
        ex.ctx.upstream,
        ex.ctx.balance_key,
        ex.tried,
    )?;
    let up = snap.upstreams.get(ex.ctx.upstream)?;
    let res = &up.res;
    if !res.take_retry() {
        return None;
    }
    Some(node)
}

/// Resets the exchange for a new try on `node`; the rewritten head in `uout` goes again.
pub(crate) fn begin_retry(ex: &mut Exchange, node: usize, now: u64) {
    ex.ctx.node = node;
    ex.tried |= bit(node);
    ex.tries += 1;
    ex.uout_sent = 0;
    ex.uin = None;
    ex.resp_started = false;
    ex.connected = false;
    ex.up_reused = false;
    ex.up_sent_us = 0;
    begin(ex, now);
}

/// The try timed out before any answer byte (the session's deadline fired).
pub(crate) fn try_expired(ex: &Exchange, now: u64) -> bool {
    !ex.resp_started && now >= ex.try_deadline
}

fn bit(node: usize) -> u64 {
    if node < 64 {
        1 << node
    } else {
        0
    }
}
