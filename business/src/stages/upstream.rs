//! The upstream stage: picks the node of the route's upstream (or of a route release's
//! candidate) with the core's balancer, among the nodes that are up (see
//! [`crate::resilience::pick`]).

use crate::context::Context;
use crate::pipeline::CoreState;
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use protocols::error::ErrorKind;

/// The last stage of every route's list.
pub struct UpstreamStage {
    /// The upstream (index in the snapshot) when it is not the matched route's own: a route
    /// release's candidate names its own.
    fixed: Option<usize>,
}

impl UpstreamStage {
    /// Sends to the matched route's upstream.
    pub fn of_route() -> UpstreamStage {
        UpstreamStage { fixed: None }
    }

    /// Sends to upstream `index` whatever the route says (a route release's candidate).
    pub fn fixed(index: usize) -> UpstreamStage {
        UpstreamStage { fixed: Some(index) }
    }
}

impl Stage for UpstreamStage {
    fn kind(&self) -> &'static str {
        "upstream"
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        req: &Request,
        snap: &Snapshot,
        core: &mut CoreState,
    ) -> Flow {
        let Some(upstream) = self
            .fixed
            .or_else(|| snap.route_upstream.get(ctx.route.route).copied())
        else {
            return Flow::Respond(Reject::new(ErrorKind::NoRoute));
        };
        ctx.upstream = upstream;
        ctx.balance_key = snap
            .upstreams
            .get(upstream)
            .and_then(|u| crate::resilience::request_key(&u.res, req, ctx));
        match crate::resilience::pick(snap, core, upstream, ctx.balance_key, 0) {
            Some(node) => {
                ctx.node = node;
                Flow::Continue
            }
            None => Flow::Respond(Reject::new(ErrorKind::NoHealthyUpstream)),
        }
    }
}
