//! Gray releases (`[[releases]]`, `/admin/v1/releases/{id}`): the model and its whole-config
//! checks.
//!
//! A release names a target resource (`routes/ID` or `modules/ID`), carries a candidate (a
//! full alternative version of that resource) and a split saying which requests the candidate
//! serves. It is a resource like the others so that it is persisted with the store, survives
//! restarts and is validated with everything else; the business layer compiles it into a
//! per-request switch (docs/releases.md).
//!
//! The candidate is kept as JSON because its type depends on the target's kind; [`check`]
//! reads it into that kind's struct and validates the config the release would leave once
//! promoted, so a promotion can never be refused for a reason the PUT did not already name.

use crate::error::{parse_json, ConfigError};
use crate::model::{Config, ModuleSpec, Route};
use crate::thrift::UpstreamProtocol;
use crate::validate::Errors;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Route fields a candidate may change. Every other field decides which requests the route
/// matches (or how a Thrift call is made) and must stay as the route has it, so that both sides
/// serve the same traffic and the switch needs no second route lookup.
pub const ROUTE_FIELDS_CANDIDATE_MAY_CHANGE: &[&str] =
    &["upstream", "modules", "max_body_bytes", "strip_prefix"];

/// `[[releases]]`: a gray release of one route or module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSpec {
    pub id: String,
    /// `"routes/ID"` or `"modules/ID"`.
    pub target: String,
    /// The whole alternative resource, as the target kind's admin body.
    pub candidate: Value,
    pub split: Split,
    /// Rolls the release back by itself when the candidate does worse than the stable side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Guard>,
}

/// Which requests the candidate serves. Exactly one of `percent`, `header`, `cookie`, `ips`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// Share of keys sent to the candidate, 0 to 100 (steps of 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// What a percentage split hashes so that a key always lands on the same side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<SplitKey>,
    /// Header, cookie or claim name for `by` = `header`, `cookie`, `jwt_claim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The candidate serves requests carrying this header (with one of `values`, if given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The candidate serves requests carrying this cookie (with one of `values`, if given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    /// Exact values for `header` / `cookie`; empty = any value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// The candidate serves these client addresses (`10.0.0.0/8`, `2001:db8::1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
}

/// The sticky key of a percentage split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitKey {
    /// The client address (after trusted proxies).
    Ip,
    Header,
    Cookie,
    /// A claim of the bearer JWT, read without verifying it (it only picks a side).
    JwtClaim,
    /// The consumer an auth module identified.
    Consumer,
}

/// The auto-rollback guard. Judged over the last `window_ms`, once the candidate served
/// `min_requests` in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// Roll back when the candidate's 5xx rate exceeds the stable side's by more than this
    /// many percentage points.
    #[serde(default = "default_error_margin")]
    pub error_rate_margin: f64,
    /// Roll back when the candidate's p99 latency exceeds the stable side's by more than this
    /// (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_margin_ms: Option<u64>,
    /// How often the guard looks.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
}

fn default_window_ms() -> u64 {
    60_000
}
fn default_min_requests() -> u64 {
    100
}
fn default_error_margin() -> f64 {
    5.0
}
fn default_interval_ms() -> u64 {
    1000
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            window_ms: default_window_ms(),
            min_requests: default_min_requests(),
            error_rate_margin: default_error_margin(),
            p99_margin_ms: None,
            interval_ms: default_interval_ms(),
        }
    }
}

/// The kind of resource a release targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Route,
    Module,
}

impl TargetKind {
    /// The resource kind's name (`routes`, `modules`), as in URLs and `Config` arrays.
    pub fn kind(self) -> &'static str {
        match self {
            TargetKind::Route => "routes",
            TargetKind::Module => "modules",
        }
    }
}

impl ReleaseSpec {
    /// The target's kind and id, `None` when `target` is not `routes/ID` or `modules/ID`.
    pub fn target(&self) -> Option<(TargetKind, &str)> {
        parse_target(&self.target)
    }

    /// The candidate read as a route (errors named relative to the candidate).
    pub fn candidate_route(&self) -> Result<Route, ConfigError> {
        parse_json(&self.candidate.to_string(), "")
    }

    /// The candidate read as a module.
    pub fn candidate_module(&self) -> Result<ModuleSpec, ConfigError> {
        parse_json(&self.candidate.to_string(), "")
    }
}

/// `routes/ID` or `modules/ID` split into kind and id.
pub fn parse_target(target: &str) -> Option<(TargetKind, &str)> {
    let (kind, id) = target.split_once('/')?;
    let kind = match kind {
        "routes" => TargetKind::Route,
        "modules" => TargetKind::Module,
        _ => return None,
    };
    (!id.is_empty() && !id.contains('/')).then_some((kind, id))
}

/// Largest `percent` step: splits are decided on buckets of 1/10,000.
pub const PERCENT_BUCKETS: u32 = 10_000;

/// Guard bounds.
const WINDOW_MS: (u64, u64) = (1000, 86_400_000);
const INTERVAL_MS: (u64, u64) = (100, 60_000);
const MIN_REQUESTS: (u64, u64) = (1, 1_000_000_000);

/// Checks every release of `config` (whose other resources are assumed checked): ids, targets
/// (existing, one release each), the split, the guard, and the candidate, which must read as
/// its kind and leave a valid config once promoted.
pub fn check(config: &Config) -> Vec<ConfigError> {
    let mut e = Errors::default();
    for (i, r) in config.releases.iter().enumerate() {
        let at = format!("releases[{i}]");
        e.id(&format!("{at}.id"), &r.id);
        if config.releases[..i].iter().any(|o| o.id == r.id) {
            e.push(
                format!("{at}.id"),
                format!("duplicate release id {:?}", r.id),
            );
        }
        check_split(&mut e, &format!("{at}.split"), &r.split);
        if let Some(g) = &r.guard {
            check_guard(&mut e, &format!("{at}.guard"), g);
        }
        let Some((kind, id)) = r.target() else {
            e.push(
                format!("{at}.target"),
                "must be \"routes/ID\" or \"modules/ID\"",
            );
            continue;
        };
        if let Some(o) = config.releases[..i].iter().find(|o| o.target == r.target) {
            e.push(
                format!("{at}.target"),
                format!("{} is already under release {:?}", r.target, o.id),
            );
            continue;
        }
        match kind {
            TargetKind::Route => check_route_candidate(&mut e, config, &at, r, id),
            TargetKind::Module => check_module_candidate(&mut e, config, &at, r, id),
        }
    }
    e.0
}

fn check_split(e: &mut Errors, at: &str, s: &Split) {
    let modes = [
        s.percent.is_some(),
        s.header.is_some(),
        s.cookie.is_some(),
        !s.ips.is_empty(),
    ];
    match modes.iter().filter(|m| **m).count() {
        0 => e.push(at, "needs one of percent, header, cookie or ips"),
        1 => {}
        _ => e.push(at, "takes only one of percent, header, cookie or ips"),
    }
    if let Some(p) = s.percent {
        if !(0.0..=100.0).contains(&p) {
            e.push(format!("{at}.percent"), "must be between 0 and 100");
        }
        let needs_name = matches!(
            s.by,
            Some(SplitKey::Header | SplitKey::Cookie | SplitKey::JwtClaim)
        );
        match (&s.name, needs_name) {
            (None, true) => e.push(format!("{at}.name"), "is required for this \"by\""),
            (Some(n), true) if n.is_empty() => e.push(format!("{at}.name"), "must not be empty"),
            (Some(_), false) => e.push(
                format!("{at}.name"),
                "is only for by = header, cookie or jwt_claim",
            ),
            _ => {}
        }
    } else {
        if s.by.is_some() {
            e.push(format!("{at}.by"), "is only for a percent split");
        }
        if s.name.is_some() {
            e.push(format!("{at}.name"), "is only for a percent split");
        }
    }
    for (field, v) in [("header", &s.header), ("cookie", &s.cookie)] {
        if v.as_ref().is_some_and(|n| n.is_empty()) {
            e.push(format!("{at}.{field}"), "must not be empty");
        }
    }
    if !s.values.is_empty() && s.header.is_none() && s.cookie.is_none() {
        e.push(
            format!("{at}.values"),
            "is only for a header or cookie split",
        );
    }
    // IP syntax is checked where the set is built (the business layer owns the parser).
}

fn check_guard(e: &mut Errors, at: &str, g: &Guard) {
    e.range(
        &format!("{at}.window_ms"),
        g.window_ms,
        WINDOW_MS.0,
        WINDOW_MS.1,
    );
    e.range(
        &format!("{at}.interval_ms"),
        g.interval_ms,
        INTERVAL_MS.0,
        INTERVAL_MS.1,
    );
    e.range(
        &format!("{at}.min_requests"),
        g.min_requests,
        MIN_REQUESTS.0,
        MIN_REQUESTS.1,
    );
    if !(0.0..=100.0).contains(&g.error_rate_margin) {
        e.push(
            format!("{at}.error_rate_margin"),
            "must be between 0 and 100 (percentage points)",
        );
    }
    if let Some(ms) = g.p99_margin_ms {
        e.range(&format!("{at}.p99_margin_ms"), ms, 0, WINDOW_MS.1);
    }
}

/// The candidate must carry the target's id (the admin API fills it in).
fn check_candidate_id(e: &mut Errors, at: &str, candidate_id: &str, id: &str) -> bool {
    if candidate_id != id {
        e.push(
            format!("{at}.candidate.id"),
            format!("must be the target's id ({id:?})"),
        );
        return false;
    }
    true
}

fn check_route_candidate(e: &mut Errors, config: &Config, at: &str, r: &ReleaseSpec, id: &str) {
    let Some(index) = config.routes.iter().position(|x| x.id == id) else {
        e.push(format!("{at}.target"), format!("no route named {id:?}"));
        return;
    };
    let cand = match r.candidate_route() {
        Ok(c) => c,
        Err(err) => {
            e.push(under(&format!("{at}.candidate"), &err.path), err.message);
            return;
        }
    };
    if !check_candidate_id(e, at, &cand.id, id) {
        return;
    }
    let (Ok(Value::Object(stable)), Ok(Value::Object(new))) = (
        serde_json::to_value(&config.routes[index]),
        serde_json::to_value(&cand),
    ) else {
        return;
    };
    let mut fields: Vec<&String> = stable.keys().chain(new.keys()).collect();
    fields.sort();
    fields.dedup();
    for f in fields {
        if !ROUTE_FIELDS_CANDIDATE_MAY_CHANGE.contains(&f.as_str()) && stable.get(f) != new.get(f) {
            e.push(
                format!("{at}.candidate.{f}"),
                format!(
                    "must equal the route's: a candidate may change only {} (both sides serve \
                     the requests the route matches)",
                    ROUTE_FIELDS_CANDIDATE_MAY_CHANGE.join(", ")
                ),
            );
        }
    }
    // A Thrift route's call is compiled per route; the candidate side would not have its own.
    let thrift = |upstream: &str| {
        config
            .upstreams
            .iter()
            .any(|u| u.id == upstream && u.protocol == UpstreamProtocol::Thrift)
    };
    if thrift(&config.routes[index].upstream) || thrift(&cand.upstream) {
        e.push(
            format!("{at}.target"),
            "releases of Thrift routes are not supported yet",
        );
    }
    let mut promoted = without_releases(config);
    promoted.routes[index] = cand;
    report_promoted(e, at, &promoted, &format!("routes[{index}]"));
}

fn check_module_candidate(e: &mut Errors, config: &Config, at: &str, r: &ReleaseSpec, id: &str) {
    let Some(index) = config.modules.iter().position(|x| x.id == id) else {
        e.push(format!("{at}.target"), format!("no module named {id:?}"));
        return;
    };
    let cand = match r.candidate_module() {
        Ok(c) => c,
        Err(err) => {
            e.push(under(&format!("{at}.candidate"), &err.path), err.message);
            return;
        }
    };
    if !check_candidate_id(e, at, &cand.id, id) {
        return;
    }
    let stable = &config.modules[index];
    if cand.kind != stable.kind {
        e.push(
            format!("{at}.candidate.kind"),
            format!(
                "must stay {:?} (a release changes a module's settings)",
                stable.kind
            ),
        );
    }
    if cand.global != stable.global {
        e.push(
            format!("{at}.candidate.global"),
            format!("must stay {}", stable.global),
        );
    }
    if stable.global && stable.kind == "ip_list" {
        e.push(
            format!("{at}.target"),
            "a global ip_list runs before routing, where no release can split",
        );
    }
    let mut promoted = without_releases(config);
    promoted.modules[index] = cand;
    report_promoted(e, at, &promoted, &format!("modules[{index}]"));
}

/// `config` without its releases (what a promotion or rollback leaves, less the swap).
fn without_releases(config: &Config) -> Config {
    let mut c = config.clone();
    c.releases.clear();
    c
}

/// Validates the promoted config; problems inside the candidate (at `slot`, its place in the
/// promoted config) are named under `at.candidate`, others keep their path in the message.
fn report_promoted(e: &mut Errors, at: &str, promoted: &Config, slot: &str) {
    for err in promoted.validate() {
        match crate::store::kinds::relative_path(&err.path, slot) {
            Some(rel) => e.push(under(&format!("{at}.candidate"), &rel), err.message),
            None => e.push(format!("{at}.candidate"), format!("once promoted, {}", err)),
        }
    }
}

/// `at` joined with a relative field path (`""`, `paths[0]`, `[1]`).
pub fn under(at: &str, rel: &str) -> String {
    if rel.is_empty() {
        at.to_string()
    } else if rel.starts_with('[') {
        format!("{at}{rel}")
    } else {
        format!("{at}.{rel}")
    }
}

#[cfg(test)]
mod tests;
