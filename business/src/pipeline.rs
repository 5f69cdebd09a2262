//! The pipeline driver: the ordered stages of one config version, and the per-core state the
//! stages may mutate.
//!
//! Order is fixed and explicit (ARCHITECTURE.md, docs/modules/README.md). Global `ip_list`
//! modules run before route matching; then, for the matched route, its own modules and the
//! global ones sorted by [`Phase`], configured order within a phase (global modules first, in
//! `[[modules]]` order, then the route's, in its `modules` order), then the upstream pick.
//! Each route's list is built once per config version, so a request only walks a slice.
//!
//! A request's position in the pipeline is one index over "pre-route stages, the route stage,
//! the route's stages". When a stage must see the body, [`Pipeline::run`] returns
//! `Flow::NeedBody` and records in `ctx.resume_at` where to resume; the access layer reads the
//! body and calls `run` again, so no stage runs twice.

use crate::calls::{CallConfig, CallsStage, MAX_CALLS};
use crate::context::Context;
use crate::modules::params::ParamsScratch;
use crate::modules::waf::WafScratch;
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Request, Stage};
use crate::stages::{BreakerStage, Compiled, Form, RouteStage, ScratchPlan, UpstreamStage};
use components::Wrr;
use conf::Config;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The phases in the order they run. Modules of a kind always run in their kind's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// `ip_list`: global ones before routing, a route's own right after it.
    IpList,
    Route,
    /// `redirect`: answered before any check, since the request goes elsewhere.
    Redirect,
    /// `cors`: preflights are answered before parameters or credentials are required
    /// (browsers send neither on a preflight).
    Cors,
    Params,
    Waf,
    /// `rate_limit` keyed by IP, route or header.
    RateLimit,
    /// `key_auth`, `jwt`, `hmac_auth`.
    Auth,
    /// `rate_limit` keyed by consumer: needs the consumer the auth phase found.
    ConsumerLimit,
    /// Concurrent external calls and their merge (not built yet).
    Calls,
    Merge,
    /// `sign_check` (and `decrypt`, once the access layer can forward a rewritten body).
    Verify,
    /// `headers`: last word on what goes upstream and back.
    Headers,
    /// `circuit_breaker`: just before the call it protects.
    Breaker,
    Upstream,
}

/// Distinguishes pipelines across config versions, for resume tokens and per-core breakers.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Resume tokens: `generation << 32 | position`; 0 means "from the start".
const POSITION_BITS: u32 = 32;
const POSITION_MASK: u64 = (1 << POSITION_BITS) - 1;

/// One route's stages after the route stage, with the body ask from each position on.
struct RouteStages {
    stages: Vec<Arc<dyn Stage>>,
    /// `body_ask[j]`: the largest `body_bytes()` of `stages[j..]`, so one read serves every
    /// later stage that needs the body.
    body_ask: Vec<usize>,
}

pub struct Pipeline {
    generation: u64,
    pre_route: Vec<Arc<dyn Stage>>,
    route: RouteStage,
    per_route: Vec<RouteStages>,
    /// Every `[[modules]]` entry compiled, in config order (state carried to the next
    /// version, metrics).
    pub(crate) modules: Vec<Compiled>,
    pub(crate) scratch: ScratchPlan,
}

impl Pipeline {
    /// The stage lists for a validated config whose modules compiled to `modules`.
    pub(crate) fn build(config: &Config, modules: Vec<Compiled>, scratch: ScratchPlan) -> Pipeline {
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        let by_id = |id: &str| modules.iter().position(|m| m.id == id);
        let mut breakers = 0;
        let mut stage_of = |m: &Compiled| -> Arc<dyn Stage> {
            match &m.form {
                Form::Shared(s) => s.clone(),
                // Grouped per route below; never a stage of its own.
                Form::Call(c) => Arc::new(CallsStage::new(vec![c.clone()])),
                Form::Breaker(policy) => {
                    breakers += 1;
                    Arc::new(BreakerStage::new(*policy, generation, breakers - 1))
                }
            }
        };
        let pre_route: Vec<Arc<dyn Stage>> = modules
            .iter()
            .filter(|m| m.global && m.phase == Phase::IpList)
            .map(&mut stage_of)
            .collect();
        let mut per_route = Vec::with_capacity(config.routes.len());
        for r in &config.routes {
            // Globals first, then the route's own, each in configured order; the stable sort
            // keeps that order within a phase.
            let mut chosen: Vec<&Compiled> = modules
                .iter()
                .filter(|m| m.global && m.phase != Phase::IpList)
                .collect();
            chosen.extend(
                r.modules
                    .iter()
                    .filter_map(|id| by_id(id))
                    .map(|i| &modules[i]),
            );
            chosen.sort_by_key(|m| m.phase);
            // Every call module of the route becomes one stage, at the place of the first, so
            // the calls run concurrently (at most MAX_CALLS; the snapshot checks).
            let calls: Vec<CallConfig> = chosen
                .iter()
                .filter_map(|m| match &m.form {
                    Form::Call(c) => Some(c.clone()),
                    _ => None,
                })
                .take(MAX_CALLS)
                .collect();
            let mut calls = Some(calls).filter(|c| !c.is_empty());
            let mut stages: Vec<Arc<dyn Stage>> = Vec::with_capacity(chosen.len() + 1);
            for m in chosen {
                if let Form::Call(_) = m.form {
                    if let Some(c) = calls.take() {
                        stages.push(Arc::new(CallsStage::new(c)));
                    }
                    continue;
                }
                stages.push(stage_of(m));
            }
            stages.push(Arc::new(UpstreamStage));
            crate::thrift::replace_upstream_stage(r, &mut stages);
            let mut body_ask = vec![0; stages.len()];
            let mut most = 0;
            for (j, s) in stages.iter().enumerate().rev() {
                most = most.max(s.body_bytes());
                body_ask[j] = most;
            }
            per_route.push(RouteStages { stages, body_ask });
        }
        Pipeline {
            generation,
            pre_route,
            route: RouteStage,
            per_route,
            modules,
            scratch,
        }
    }

    /// Runs the request stages in order, from where `ctx.resume_at` says, until one answers.
    ///
    /// A stage that must see the body (`body_bytes() > 0`) while it has not been read stops
    /// the run with `Flow::NeedBody(n)`, `n` being the most any remaining stage needs;
    /// `ctx.resume_at` then holds a token for that stage, and the access layer runs the
    /// pipeline again with the body once it has read it. A token from another config
    /// version (the snapshot changed while the body was read) starts the request over.
    pub fn run(
        &self,
        ctx: &mut Context,
        req: &Request,
        snap: &Snapshot,
        core: &mut CoreState,
    ) -> Flow {
        let mut pos = self.resume_position(ctx, req);
        let pre = self.pre_route.len();
        while let Some(stage) = self.pre_route.get(pos) {
            match stage.on_request(ctx, req, snap, core) {
                Flow::Continue => pos += 1,
                answer => return answer,
            }
        }
        if pos == pre {
            match self.route.on_request(ctx, req, snap, core) {
                Flow::Continue => pos += 1,
                answer => return answer,
            }
        }
        let Some(route) = self.per_route.get(ctx.route.route) else {
            return Flow::Continue;
        };
        let first = pos - pre - 1;
        for (j, stage) in route.stages.iter().enumerate().skip(first) {
            if req.body.is_none() && stage.body_bytes() > 0 && req.has_body() {
                ctx.resume_at = ((self.generation << POSITION_BITS)
                    | ((pre + 1 + j) as u64 & POSITION_MASK))
                    as usize;
                return Flow::NeedBody(route.body_ask.get(j).copied().unwrap_or(0));
            }
            match stage.on_request(ctx, req, snap, core) {
                Flow::Continue => {}
                Flow::Wait => {
                    // Resume at the same stage: it merges the calls' outcomes.
                    ctx.resume_at = ((self.generation << POSITION_BITS)
                        | ((pre + 1 + j) as u64 & POSITION_MASK))
                        as usize;
                    return Flow::Wait;
                }
                answer => return answer,
            }
        }
        Flow::Continue
    }

    /// Where to start: 0, or the position a resume token of this version names. A token of
    /// another version restarts the request, with the decisions made so far forgotten.
    fn resume_position(&self, ctx: &mut Context, req: &Request) -> usize {
        let token = ctx.resume_at as u64;
        if token == 0 {
            return 0;
        }
        ctx.resume_at = 0;
        if token >> POSITION_BITS == self.generation & (u64::MAX >> POSITION_BITS) {
            return (token & POSITION_MASK) as usize;
        }
        ctx.client_ip = req.peer;
        ctx.matched = false;
        ctx.consumer = None;
        ctx.upstream_headers.clear();
        ctx.response_headers.clear();
        ctx.reply_headers.clear();
        ctx.upstream_remove.clear();
        ctx.response_remove.clear();
        ctx.calls = None;
        0
    }

    /// Lets the stages of the request's route see the upstream's answer, in reverse order.
    pub fn on_response(&self, ctx: &mut Context) {
        if !ctx.matched {
            return;
        }
        if let Some(route) = self.per_route.get(ctx.route.route) {
            for stage in route.stages.iter().rev() {
                stage.on_response(ctx);
            }
        }
        for stage in self.pre_route.iter().rev() {
            stage.on_response(ctx);
        }
    }

    /// The kinds a request to route `route` goes through, in order (diagnostics and tests).
    pub fn kinds(&self, route: usize) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = self.pre_route.iter().map(|s| s.kind()).collect();
        out.push(self.route.kind());
        if let Some(r) = self.per_route.get(route) {
            out.extend(r.stages.iter().map(|s| s.kind()));
        }
        out
    }

    /// Hit counters of every waf module: (module id, rule id, hits), for metrics.
    pub fn waf_hits(&self) -> Vec<(String, String, u64)> {
        self.scratch
            .waf
            .iter()
            .zip(self.modules.iter().filter(|m| m.kind == "waf"))
            .flat_map(|(engine, m)| {
                engine
                    .hit_counts()
                    .map(|(rule, n)| (m.id.clone(), rule.to_string(), n))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Mutable per-core state used by stages: balancer positions, the parameter and WAF engines'
/// working memory, the JWT decode buffer. Rebuilt by each worker when it adopts a new
/// snapshot (allocation happens here, not per request).
pub struct CoreState {
    pub balancers: Vec<Wrr>,
    pub(crate) params: Vec<ParamsScratch>,
    pub(crate) waf: Vec<WafScratch>,
    pub(crate) jwt: Vec<u8>,
}

impl CoreState {
    pub fn for_snapshot(snap: &Snapshot) -> CoreState {
        let plan = &snap.pipeline.scratch;
        CoreState {
            balancers: snap
                .upstreams
                .iter()
                .map(|u| Wrr::new(&u.weights))
                .collect(),
            params: plan.params.iter().map(|e| e.scratch()).collect(),
            waf: plan.waf.iter().map(|e| e.scratch()).collect(),
            jwt: vec![0; plan.jwt_bytes],
        }
    }
}

#[cfg(test)]
mod tests;
