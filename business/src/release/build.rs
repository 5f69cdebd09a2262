//! Compiling a config's releases for its snapshot: each split, and each candidate (a module's
//! stage, or a route with its upstream resolved); plus the snapshot's view of which route
//! serves a request.

use super::{ReleaseRt, SplitRule, MAX_RELEASES};
use crate::context::Context;
use crate::pipeline::{Candidate, ReleasePlan};
use crate::snapshot::Snapshot;
use crate::stages::{self, ScratchPlan};
use conf::release::TargetKind;
use conf::{Config, ConfigError, Route};

impl Snapshot {
    /// The route serving a matched request: the candidate on the candidate side of a route
    /// release, else the matched route.
    pub fn route_for(&self, ctx: &Context) -> Option<&Route> {
        self.pipeline
            .candidate_route(ctx)
            .or_else(|| self.config.routes.get(ctx.route.route))
    }
}

/// Compiles every `[[releases]]` entry of `config` (already checked by
/// `conf::release::check`, so targets and candidates read). A release keeps the `since` of
/// its previous version while it stays the same, so its counters carry over.
pub(crate) fn compile(
    config: &Config,
    version: u64,
    prev: Option<&Snapshot>,
    plan: &mut ScratchPlan,
    upstream_ids: &[String],
) -> Result<Vec<ReleasePlan>, Vec<ConfigError>> {
    if config.releases.len() > MAX_RELEASES {
        return Err(vec![ConfigError::new(
            "releases",
            format!("at most {MAX_RELEASES} releases"),
        )]);
    }
    let mut out = Vec::with_capacity(config.releases.len());
    let mut errors = Vec::new();
    for (i, spec) in config.releases.iter().enumerate() {
        let at = format!("releases[{i}]");
        let Some((kind, id)) = spec.target() else {
            continue;
        };
        let split = match SplitRule::compile(&spec.split, &spec.id, &format!("{at}.split")) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let since = prev
            .and_then(|p| {
                let j = p.config.releases.iter().position(|r| r.id == spec.id)?;
                let old = p.pipeline.releases.get(j)?;
                (p.config.releases.get(j)? == spec).then_some(old.since)
            })
            .unwrap_or(version);
        let compiled = match kind {
            TargetKind::Route => route_candidate(config, spec, id),
            TargetKind::Module => module_candidate(config, spec, id, &at, prev, plan, upstream_ids),
        };
        let (target, candidate) = match compiled {
            Ok(Some(c)) => c,
            // Already reported by the config check.
            Ok(None) => continue,
            Err(mut e) => {
                errors.append(&mut e);
                continue;
            }
        };
        out.push(ReleasePlan {
            rt: ReleaseRt {
                id: spec.id.clone(),
                kind,
                target,
                split,
                since,
                guard: spec.guard.clone(),
            },
            candidate,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

type Compiled = Result<Option<(usize, Candidate)>, Vec<ConfigError>>;

fn route_candidate(config: &Config, spec: &conf::release::ReleaseSpec, id: &str) -> Compiled {
    let (Some(target), Ok(route)) = (
        config.routes.iter().position(|r| r.id == id),
        spec.candidate_route(),
    ) else {
        return Ok(None);
    };
    let Some(upstream) = config.upstreams.iter().position(|u| u.id == route.upstream) else {
        return Ok(None);
    };
    Ok(Some((target, Candidate::Route { route, upstream })))
}

fn module_candidate(
    config: &Config,
    spec: &conf::release::ReleaseSpec,
    id: &str,
    at: &str,
    prev: Option<&Snapshot>,
    plan: &mut ScratchPlan,
    upstream_ids: &[String],
) -> Compiled {
    let (Some(target), Ok(module)) = (
        config.modules.iter().position(|m| m.id == id),
        spec.candidate_module(),
    ) else {
        return Ok(None);
    };
    // A candidate takes over the state of the previous version's candidate (rate tables).
    let carried = prev.and_then(|p| {
        p.pipeline
            .release_modules
            .iter()
            .find(|m| m.id == module.id && m.kind == module.kind)
    });
    match stages::compile(&module, target, carried, plan, upstream_ids) {
        Ok(c) => Ok(Some((target, Candidate::Module(c)))),
        Err(errs) => {
            // Named under the release, not under the module the candidate stands in for.
            let slot = format!("modules[{target}]");
            Err(errs
                .into_iter()
                .map(|e| {
                    let rel = conf::store::kinds::relative_path(&e.path, &slot);
                    let path = conf::release::under(
                        &format!("{at}.candidate"),
                        rel.as_deref().unwrap_or(""),
                    );
                    ConfigError::new(path, e.message)
                })
                .collect())
        }
    }
}
