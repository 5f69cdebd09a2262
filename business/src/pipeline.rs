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
//!
//! A route a gray release touches has two lists, stable and candidate, equal up to the
//! release's switch ([`lists`], `crate::release`). At the switch the split records the side
//! in `ctx.release`, and from there on (also after a resume) the request walks that side's
//! list; positions are the same in both lists, so resume tokens need no side of their own.

mod lists;

pub(crate) use lists::{Candidate, ReleasePlan};

use crate::calls::CallsStage;
use crate::context::Context;
use crate::modules::params::ParamsScratch;
use crate::modules::waf::WafScratch;
use crate::release::{ReleaseMark, ReleaseRt, Side};
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Request, Stage};
use crate::stages::{BreakerStage, Compiled, Form, RouteStage, ScratchPlan};
use components::Wrr;
use conf::{Config, ConfigError, Route};
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

/// One list of stages after the route stage, with the body ask from each position on.
struct StageList {
    stages: Vec<Arc<dyn Stage>>,
    /// `body_ask[j]`: the largest `body_bytes()` of `stages[j..]`, so one read serves every
    /// later stage that needs the body.
    body_ask: Vec<usize>,
}

/// One route's stages: the stable list, and the candidate's when a release touches the route.
struct RouteStages {
    stable: StageList,
    release: Option<RouteRelease>,
}

/// The release side of a route.
struct RouteRelease {
    /// Index of the release in `Pipeline::releases`.
    index: u16,
    /// Position (in both lists) where the split is decided; the lists are the same before it.
    switch_at: usize,
    candidate: StageList,
    /// A route release's candidate route (its body limit and `strip_prefix` apply on the
    /// candidate side).
    route: Option<Box<Route>>,
}

pub struct Pipeline {
    generation: u64,
    pre_route: Vec<Arc<dyn Stage>>,
    route: RouteStage,
    per_route: Vec<RouteStages>,
    /// Every `[[modules]]` entry compiled, in config order (state carried to the next
    /// version, metrics).
    pub(crate) modules: Vec<Compiled>,
    /// The candidates of module releases (state carried to the next version).
    pub(crate) release_modules: Vec<Compiled>,
    /// Every `[[releases]]` entry compiled, in config order (`ReleaseMark::index`).
    pub releases: Vec<ReleaseRt>,
    pub(crate) scratch: ScratchPlan,
}

impl Pipeline {
    /// The stage lists for a validated config whose modules compiled to `modules` and whose
    /// releases to `releases`; `route_upstream` is each route's upstream index. Fails only on
    /// release combinations no list can serve (two releases on one route, a consumer split
    /// before authentication).
    pub(crate) fn build(
        config: &Config,
        modules: Vec<Compiled>,
        scratch: ScratchPlan,
        releases: Vec<ReleasePlan>,
        route_upstream: &[usize],
    ) -> Result<Pipeline, Vec<ConfigError>> {
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        let mut breakers = 0;
        let mut stage_of = |m: &Compiled| -> Arc<dyn Stage> {
            match &m.form {
                Form::Shared(s) => s.clone(),
                // Grouped per route; never a stage of its own.
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
        let mut errors = Vec::new();
        let by_route = lists::releases_by_route(&config.routes, &modules, &releases, &mut errors);
        let mut per_route = Vec::with_capacity(config.routes.len());
        for (i, r) in config.routes.iter().enumerate() {
            let release = by_route
                .get(i)
                .copied()
                .flatten()
                .and_then(|k| releases.get(k).map(|p| (k, p)));
            let upstream = route_upstream.get(i).copied().unwrap_or(0);
            per_route.push(lists::route_stages(
                &modules,
                r,
                upstream,
                release,
                &mut stage_of,
                &mut errors,
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut release_modules = Vec::new();
        let mut rts = Vec::with_capacity(releases.len());
        for plan in releases {
            if let Candidate::Module(c) = plan.candidate {
                release_modules.push(c);
            }
            rts.push(plan.rt);
        }
        Ok(Pipeline {
            generation,
            pre_route,
            route: RouteStage,
            per_route,
            modules,
            release_modules,
            releases: rts,
            scratch,
        })
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
        let mut j = pos - pre - 1;
        loop {
            // The side is decided once, where the lists part; a resumed request keeps it.
            if let Some(rel) = &route.release {
                if j == rel.switch_at && ctx.release.is_none() {
                    self.decide(rel, ctx, req, snap);
                }
            }
            let list = route.list(ctx.release);
            let Some(stage) = list.stages.get(j) else {
                return Flow::Continue;
            };
            if req.body.is_none() && stage.body_bytes() > 0 && req.has_body() {
                ctx.resume_at = ((self.generation << POSITION_BITS)
                    | ((pre + 1 + j) as u64 & POSITION_MASK))
                    as usize;
                return Flow::NeedBody(list.body_ask.get(j).copied().unwrap_or(0));
            }
            match stage.on_request(ctx, req, snap, core) {
                Flow::Continue => j += 1,
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
    }

    /// The split of `rel`'s release picks this request's side.
    fn decide(&self, rel: &RouteRelease, ctx: &mut Context, req: &Request, snap: &Snapshot) {
        let Some(r) = self.releases.get(rel.index as usize) else {
            return;
        };
        let side = r.split.side(req, ctx, snap);
        ctx.release = Some(ReleaseMark {
            index: rel.index,
            side,
        });
        if side == Side::Candidate {
            if let Some(route) = &rel.route {
                ctx.max_body = route.body_limit(&snap.config.limits);
            }
        }
    }

    /// The candidate route serving a request on the candidate side of a route release.
    pub fn candidate_route(&self, ctx: &Context) -> Option<&Route> {
        let mark = ctx.release.filter(|m| m.side == Side::Candidate)?;
        let rel = self.per_route.get(ctx.route.route)?.release.as_ref()?;
        (rel.index == mark.index)
            .then_some(rel.route.as_deref())
            .flatten()
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
        ctx.release = None;
        0
    }

    /// Lets the stages of the request's route see the upstream's answer, in reverse order.
    pub fn on_response(&self, ctx: &mut Context) {
        if !ctx.matched {
            return;
        }
        if let Some(route) = self.per_route.get(ctx.route.route) {
            for stage in route.list(ctx.release).stages.iter().rev() {
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
            out.extend(r.stable.stages.iter().map(|s| s.kind()));
        }
        out
    }

    /// The kinds a request to `route` on the candidate side of its release goes through, and
    /// where the side is decided (index into the kinds); `None` when no release touches it.
    pub fn candidate_kinds(&self, route: usize) -> Option<(Vec<&'static str>, usize)> {
        let rel = self.per_route.get(route)?.release.as_ref()?;
        let mut out: Vec<&'static str> = self.pre_route.iter().map(|s| s.kind()).collect();
        out.push(self.route.kind());
        let at = out.len() + rel.switch_at;
        out.extend(rel.candidate.stages.iter().map(|s| s.kind()));
        Some((out, at))
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
    /// The least-request balancer's random state.
    pub rng: u64,
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
            rng: seed(),
            params: plan.params.iter().map(|e| e.scratch()).collect(),
            waf: plan.waf.iter().map(|e| e.scratch()).collect(),
            jwt: vec![0; plan.jwt_bytes],
        }
    }
}

/// A distinct non-zero seed for each core's random state.
fn seed() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    components::balancer_hash::mix(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) | 1
}

#[cfg(test)]
mod tests;
