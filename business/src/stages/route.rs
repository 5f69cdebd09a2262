//! The route stage: finds the route for host, method and path, or answers 404.

use crate::context::Context;
use crate::pipeline::CoreState;
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use protocols::error::ErrorKind;

pub struct RouteStage;

impl Stage for RouteStage {
    fn kind(&self) -> &'static str {
        "route"
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        req: &Request,
        snap: &Snapshot,
        _core: &mut CoreState,
    ) -> Flow {
        if !snap
            .router
            .find(req.host(), req.method(), req.path(), &mut ctx.route)
        {
            return Flow::Respond(Reject::new(ErrorKind::NoRoute));
        }
        ctx.matched = true;
        let route = &snap.config.routes[ctx.route.route];
        ctx.max_body = route.body_limit(&snap.config.limits);
        Flow::Continue
    }
}
