//! Node health for Thrift calls: where a call goes, what its outcome tells the shared health
//! table (passive checks), and the one case a call goes to another node.
//!
//! The rules are those of HTTP (docs/resilience.md), narrowed by what a call is: a call that
//! failed on connect was never written, so it is retried on a node not tried yet (within the
//! route's `retries`, the call's deadline and the upstream's retry budget); a call that was
//! written is never sent again, whatever happened to it (a Thrift method may not be safe to
//! run twice, and a oneway call's effect cannot be seen). Failures for the outlier rules:
//! connect failures, connections closed or broken under a call, replies that break the
//! protocol, and call timeouts. A reply (a TApplicationException too) is a success: the node
//! answered. A full wait queue is the gateway's own limit, not the node's fault.

use crate::http::Env;
use crate::session::Exchange;
use business::snapshot::Snapshot;
use business::thrift::ThriftRoute;
use components::health::clock_ms;
use components::mux_pool::{CallError, NodeKey, NodeSettings};
use components::tls::client::UpTls;

/// The first try begins on the node the pipeline picked.
pub(crate) fn first_try(ex: &mut Exchange, snap: &Snapshot) {
    ex.tried = bit(ex.ctx.node);
    ex.tries = 1;
    if let Some(up) = snap.upstreams.get(ex.ctx.upstream) {
        up.res.health.budget.on_request(clock_ms());
    }
}

/// Where the exchange's call goes now: the node `ex.ctx.node` of its upstream, in the
/// route's protocol and transport, with the upstream's bounds and TLS settings.
pub(crate) fn target<'a>(
    ex: &Exchange,
    snap: &'a Snapshot,
    route: &ThriftRoute,
) -> Option<(NodeKey, NodeSettings, Option<&'a UpTls>)> {
    let up = snap.upstreams.get(ex.ctx.upstream)?;
    let key = NodeKey {
        addr: *up.addrs.get(ex.ctx.node)?,
        protocol: route.protocol,
        transport: route.transport,
        tls: 0, // `submit` sets it from the TLS settings
    };
    Some((key, up.mux?, up.tls.as_ref()))
}

/// Whether a call that ended with `e` counts against its node.
pub(crate) fn node_failed(e: CallError) -> bool {
    match e {
        CallError::Connect
        | CallError::Closed
        | CallError::Protocol(_)
        | CallError::WrongMethod
        | CallError::BadSequenceId => true,
        CallError::Overloaded | CallError::BadCall(_) => false,
    }
}

/// The call's outcome on `ex.ctx.node`, for the outlier rules.
pub(crate) fn report(ex: &mut Exchange, failed: bool) {
    crate::failover::report(ex, failed);
}

/// After a failed connect: the node of the next try, when the rules allow one (and the
/// budget pays for it); `None` to give up with the failure.
pub(crate) fn retry_node(ex: &mut Exchange, env: &mut Env, snap: &Snapshot) -> Option<usize> {
    let retries = snap.route_for(&ex.ctx).map_or(1, |r| r.retries);
    // The call's deadline (the upstream's read_timeout_ms) covers every try.
    let past_deadline = ex.thrift.deadline > 0 && env.now >= ex.thrift.deadline;
    if ex.tries > retries || past_deadline {
        return None;
    }
    let node = business::resilience::pick(snap, env.core, ex.ctx.upstream, None, ex.tried)?;
    let res = &snap.upstreams.get(ex.ctx.upstream)?.res;
    if !res.take_retry() {
        return None;
    }
    ex.ctx.node = node;
    ex.tried |= bit(node);
    ex.tries += 1;
    Some(node)
}

fn bit(node: usize) -> u64 {
    if node < 64 {
        1 << node
    } else {
        0
    }
}
