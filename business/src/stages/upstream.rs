//! The upstream stage: picks the node of the route's upstream with the core's balancer.

use crate::context::Context;
use crate::pipeline::CoreState;
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use protocols::error::ErrorKind;

pub struct UpstreamStage;

impl Stage for UpstreamStage {
    fn kind(&self) -> &'static str {
        "upstream"
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        _req: &Request,
        snap: &Snapshot,
        core: &mut CoreState,
    ) -> Flow {
        let Some(&upstream) = snap.route_upstream.get(ctx.route.route) else {
            return Flow::Respond(Reject::new(ErrorKind::NoRoute));
        };
        ctx.upstream = upstream;
        match core.balancers.get_mut(upstream).and_then(|b| b.pick()) {
            Some(node) => {
                ctx.node = node;
                Flow::Continue
            }
            None => Flow::Respond(Reject::new(ErrorKind::NoHealthyUpstream)),
        }
    }
}
