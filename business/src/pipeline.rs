//! The pipeline driver: the ordered stage list of one config version, and the per-core state
//! the stages may mutate.
//!
//! Order is fixed and explicit (ARCHITECTURE.md): IP lists -> route -> parameters -> WAF ->
//! rate limits -> concurrent external calls -> merge -> signature/decryption -> upstream.
//! Stages of later kinds slot into their phase; within a phase, configured order holds.

use crate::context::Context;
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Request, Stage};
use crate::stages::{RouteStage, UpstreamStage};
use components::Wrr;
use conf::Config;

/// The phases in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    IpList,
    Route,
    Params,
    Waf,
    RateLimit,
    Calls,
    Merge,
    Verify,
    Upstream,
}

pub struct Pipeline {
    stages: Vec<(Phase, Box<dyn Stage>)>,
}

impl Pipeline {
    /// The stage list for a validated config.
    pub fn build(_config: &Config) -> Pipeline {
        let mut stages: Vec<(Phase, Box<dyn Stage>)> = vec![
            (Phase::Route, Box::new(RouteStage)),
            (Phase::Upstream, Box::new(UpstreamStage)),
        ];
        // A stable sort keeps the configured order within a phase.
        stages.sort_by_key(|(p, _)| *p);
        Pipeline { stages }
    }

    /// Runs the request stages in order, from `ctx.resume_at`, until one answers.
    ///
    /// A stage that must see the body (`body_bytes() > 0`) while the body has not been read
    /// stops the run with `Flow::NeedBody`; `ctx.resume_at` then points at that stage, and
    /// the access layer runs the pipeline again with the body once it has read it, so no
    /// stage runs twice for one request.
    pub fn run(
        &self,
        ctx: &mut Context,
        req: &Request,
        snap: &Snapshot,
        core: &mut CoreState,
    ) -> Flow {
        let start = ctx.resume_at;
        for (i, (_, stage)) in self.stages.iter().enumerate().skip(start) {
            let want = stage.body_bytes();
            if want > 0 && req.body.is_none() && req.has_body() {
                ctx.resume_at = i;
                return Flow::NeedBody(want);
            }
            match stage.on_request(ctx, req, snap, core) {
                Flow::Continue => {}
                answer => return answer,
            }
        }
        Flow::Continue
    }

    /// Lets the stages see the upstream's answer, in reverse order.
    pub fn on_response(&self, ctx: &mut Context) {
        for (_, stage) in self.stages.iter().rev() {
            stage.on_response(ctx);
        }
    }

    /// The kinds of the stages, in order (for diagnostics and tests).
    pub fn kinds(&self) -> Vec<&'static str> {
        self.stages.iter().map(|(_, s)| s.kind()).collect()
    }
}

/// Mutable per-core state used by stages: balancer positions, for now. Rebuilt by each worker
/// when it adopts a new snapshot.
pub struct CoreState {
    pub balancers: Vec<Wrr>,
}

impl CoreState {
    pub fn for_snapshot(snap: &Snapshot) -> CoreState {
        CoreState {
            balancers: snap
                .upstreams
                .iter()
                .map(|u| Wrr::new(&u.weights))
                .collect(),
        }
    }
}
