//! Building a route's stage lists: the stable one, and for a route a release touches, the
//! candidate's and the switch between them (see `crate::release`).

use super::{Phase, RouteRelease, RouteStages, StageList};
use crate::calls::{CallConfig, CallsStage, MAX_CALLS};
use crate::release::{ReleaseRt, Side};
use crate::stage::Stage;
use crate::stages::{Compiled, Form, UpstreamStage};
use conf::release::TargetKind;
use conf::{ConfigError, Route};
use std::sync::Arc;

/// What a release's candidate compiled to.
pub(crate) enum Candidate {
    /// A route's candidate, with its upstream's index.
    Route { route: Route, upstream: usize },
    /// A module's candidate.
    Module(Compiled),
}

/// One release of a config version, ready for the pipeline.
pub(crate) struct ReleasePlan {
    pub rt: ReleaseRt,
    pub candidate: Candidate,
}

/// A list as built, with where each stage came from (to find where two lists differ) and its
/// phase (to place a switch after authentication).
pub(super) struct Built {
    pub stages: Vec<Arc<dyn Stage>>,
    phases: Vec<Phase>,
    sources: Vec<usize>,
}

/// Makes a stage for a module; breakers get a fresh per-route breaker each time.
pub(super) type StageOf<'a> = dyn FnMut(&Compiled) -> Arc<dyn Stage> + 'a;

/// The stages of route `r` after the route stage: the global modules and the route's own,
/// sorted by phase, its call modules grouped into one stage, then the upstream stage.
/// `swap` stands in for the module of the same id (a module release's candidate).
pub(super) fn route_list<'a>(
    modules: &'a [Compiled],
    swap: Option<&'a Compiled>,
    r: &Route,
    upstream: (UpstreamStage, usize),
    stage_of: &mut StageOf,
) -> Built {
    let pick = |m: &'a Compiled| -> &'a Compiled {
        match swap {
            Some(c) if c.id == m.id => c,
            _ => m,
        }
    };
    // Globals first, then the route's own, each in configured order; the stable sort keeps
    // that order within a phase.
    let mut chosen: Vec<&Compiled> = modules
        .iter()
        .filter(|m| m.global && m.phase != Phase::IpList)
        .map(pick)
        .collect();
    chosen.extend(
        r.modules
            .iter()
            .filter_map(|id| modules.iter().find(|m| m.id == *id))
            .map(pick),
    );
    chosen.sort_by_key(|m| m.phase);
    // Every call module of the route becomes one stage, at the place of the first, so the
    // calls run concurrently (at most MAX_CALLS; the snapshot checks).
    let group: Vec<&Compiled> = chosen
        .iter()
        .copied()
        .filter(|m| matches!(m.form, Form::Call(_)))
        .take(MAX_CALLS)
        .collect();
    let mut calls: Option<Vec<CallConfig>> = Some(
        group
            .iter()
            .filter_map(|m| match &m.form {
                Form::Call(c) => Some(c.clone()),
                _ => None,
            })
            .collect(),
    )
    .filter(|c: &Vec<CallConfig>| !c.is_empty());
    let mut out = Built {
        stages: Vec::with_capacity(chosen.len() + 1),
        phases: Vec::with_capacity(chosen.len() + 1),
        sources: Vec::with_capacity(chosen.len() + 1),
    };
    for m in chosen {
        if let Form::Call(_) = m.form {
            if let Some(c) = calls.take() {
                out.stages.push(Arc::new(CallsStage::new(c)));
                out.phases.push(Phase::Calls);
                // The group differs when any of its members does.
                let id = group.iter().fold(0usize, |h, g| {
                    h.rotate_left(7) ^ (*g as *const Compiled as usize)
                });
                out.sources.push(id);
            }
            continue;
        }
        out.stages.push(stage_of(m));
        out.phases.push(m.phase);
        out.sources.push(m as *const Compiled as usize);
    }
    out.stages.push(Arc::new(upstream.0));
    crate::thrift::replace_upstream_stage(r, &mut out.stages);
    out.phases.push(Phase::Upstream);
    // Upstream indexes cannot collide with addresses of modules (low addresses are unmapped).
    out.sources.push(upstream.1);
    out
}

impl StageList {
    pub(super) fn new(stages: Vec<Arc<dyn Stage>>) -> StageList {
        let mut body_ask = vec![0; stages.len()];
        let mut most = 0;
        for (j, s) in stages.iter().enumerate().rev() {
            most = most.max(s.body_bytes());
            body_ask[j] = most;
        }
        StageList { stages, body_ask }
    }
}

/// The stages of route `r`, with the release that touches it, if any.
pub(super) fn route_stages(
    modules: &[Compiled],
    r: &Route,
    upstream: usize,
    release: Option<(usize, &ReleasePlan)>,
    stage_of: &mut StageOf,
    errors: &mut Vec<ConfigError>,
) -> RouteStages {
    let stable = route_list(
        modules,
        None,
        r,
        (UpstreamStage::of_route(), upstream),
        stage_of,
    );
    let Some((k, plan)) = release else {
        return RouteStages {
            stable: StageList::new(stable.stages),
            release: None,
        };
    };
    let (cand, route) = match &plan.candidate {
        Candidate::Route { route, upstream } => (
            route_list(
                modules,
                None,
                route,
                (UpstreamStage::fixed(*upstream), *upstream),
                stage_of,
            ),
            Some(Box::new(route.clone())),
        ),
        Candidate::Module(c) => (
            route_list(
                modules,
                Some(c),
                r,
                (UpstreamStage::of_route(), upstream),
                stage_of,
            ),
            None,
        ),
    };
    let common = stable
        .sources
        .iter()
        .zip(&cand.sources)
        .take_while(|(a, b)| a == b)
        .count();
    let switch_at = match (plan.rt.kind, plan.rt.split.needs_consumer()) {
        (TargetKind::Route, false) => 0,
        (TargetKind::Module, false) => common,
        (kind, true) => {
            // The consumer is known once the auth phase ran, so the split is decided after
            // it, which needs the same authentication on both sides.
            let auth_end = stable
                .phases
                .iter()
                .take_while(|p| **p <= Phase::Auth)
                .count();
            let at = format!("releases[{k}].split.by");
            let authenticates = stable.phases.contains(&Phase::Auth);
            if !authenticates && kind == TargetKind::Route {
                errors.push(ConfigError::new(
                    at,
                    format!(
                        "a split by consumer needs an auth module (key_auth, jwt, hmac_auth) \
                         on routes/{}",
                        r.id
                    ),
                ));
            } else if authenticates && auth_end > common {
                errors.push(ConfigError::new(
                    at,
                    format!(
                        "a split by consumer is decided after authentication, so routes/{} \
                         must authenticate the same way on both sides",
                        r.id
                    ),
                ));
            }
            // A route of a module release without authentication never has a consumer:
            // its requests all stay on the stable side, wherever the switch is.
            match kind {
                TargetKind::Route => auth_end.min(common),
                TargetKind::Module => common,
            }
        }
    };
    let mut stages: Vec<Arc<dyn Stage>> = stable.stages.iter().take(switch_at).cloned().collect();
    stages.extend(cand.stages.into_iter().skip(switch_at));
    RouteStages {
        stable: StageList::new(stable.stages),
        release: Some(RouteRelease {
            index: k as u16,
            switch_at,
            candidate: StageList::new(stages),
            route,
        }),
    }
}

/// For each route, the release that touches it (index into `plans`); two releases touching
/// one route are an error, since neither side's counts would then mean anything.
pub(super) fn releases_by_route(
    routes: &[Route],
    modules: &[Compiled],
    plans: &[ReleasePlan],
    errors: &mut Vec<ConfigError>,
) -> Vec<Option<usize>> {
    let mut by_route: Vec<Option<usize>> = vec![None; routes.len()];
    for (k, plan) in plans.iter().enumerate() {
        let touched: Vec<usize> = match plan.rt.kind {
            TargetKind::Route => vec![plan.rt.target],
            TargetKind::Module => {
                let Some(m) = modules.get(plan.rt.target) else {
                    continue;
                };
                routes
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| m.global || r.modules.contains(&m.id))
                    .map(|(i, _)| i)
                    .collect()
            }
        };
        for ri in touched {
            let Some(slot) = by_route.get_mut(ri) else {
                continue;
            };
            match slot {
                Some(other) => {
                    let other_id = plans.get(*other).map_or("", |p| p.rt.id.as_str());
                    errors.push(ConfigError::new(
                        format!("releases[{k}].target"),
                        format!(
                            "routes/{} is already under release {other_id:?}; one release per \
                             route at a time",
                            routes.get(ri).map_or("", |r| r.id.as_str())
                        ),
                    ));
                }
                None => *slot = Some(k),
            }
        }
    }
    by_route
}

/// Which list a request walks.
impl RouteStages {
    pub(super) fn list(&self, mark: Option<crate::release::ReleaseMark>) -> &StageList {
        match (&self.release, mark) {
            (Some(rel), Some(m)) if m.side == Side::Candidate && m.index == rel.index => {
                &rel.candidate
            }
            _ => &self.stable,
        }
    }
}
