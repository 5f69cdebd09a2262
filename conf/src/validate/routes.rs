//! Route checks: syntax of each host, path and method, the upstream reference, and conflicts
//! between routes (two routes that would both claim the same request).

use super::{Errors, MAX_BODY_LIMIT};
use crate::model::{Route, Upstream};
use crate::pattern::{check_method, parse_host, parse_path, HostPattern};
use std::collections::{HashMap, HashSet};

/// What a route claims: one host (None = any), one path shape, one method (None = any).
/// Two routes claiming the same key would make matching ambiguous.
#[derive(PartialEq, Eq, Hash)]
struct Claim {
    host: Option<HostPattern>,
    shape: String,
    method: Option<String>,
}

/// Who first made a claim: route index and path index.
#[derive(Clone, Copy)]
struct Owner {
    route: usize,
    path: usize,
}

pub(super) fn check_routes(e: &mut Errors, routes: &[Route], upstreams: &[Upstream]) {
    let upstream_ids: HashSet<&str> = upstreams.iter().map(|u| u.id.as_str()).collect();
    let mut ids: HashSet<&str> = HashSet::new();
    let mut claims: HashMap<Claim, Owner> = HashMap::new();
    for (i, r) in routes.iter().enumerate() {
        let p = format!("routes[{i}]");
        e.id(&format!("{p}.id"), &r.id);
        if !r.id.is_empty() && !ids.insert(r.id.as_str()) {
            e.push(format!("{p}.id"), format!("duplicate id {:?}", r.id));
        }
        if r.upstream.is_empty() {
            e.push(format!("{p}.upstream"), "must name an upstream");
        } else if !upstream_ids.contains(r.upstream.as_str()) {
            e.push(
                format!("{p}.upstream"),
                format!("no upstream named {:?}", r.upstream),
            );
        }
        if let Some(n) = r.max_concurrent {
            e.range(&format!("{p}.max_concurrent"), n, 1, 10_000_000);
        }
        if let Some(limit) = r.max_body_bytes {
            e.range(&format!("{p}.max_body_bytes"), limit, 0, MAX_BODY_LIMIT);
        }
        if let Some(ws) = &r.websocket {
            e.range(
                &format!("{p}.websocket.idle_timeout_ms"),
                ws.idle_timeout_ms,
                100,
                86_400_000,
            );
            if ws.ping_interval_ms > 0 {
                e.range(
                    &format!("{p}.websocket.ping_interval_ms"),
                    ws.ping_interval_ms,
                    100,
                    ws.idle_timeout_ms.saturating_sub(1).max(100),
                );
            }
        }
        crate::resilience::check_route(e, &p, r);
        let hosts = check_hosts(e, &p, r);
        let methods = check_methods(e, &p, r);
        let paths = check_paths(e, &p, r);
        for (j, shape) in paths {
            let mut reported: HashSet<usize> = HashSet::new();
            for host in &hosts {
                for method in &methods {
                    let claim = Claim {
                        host: host.clone(),
                        shape: shape.clone(),
                        method: method.clone(),
                    };
                    let me = Owner { route: i, path: j };
                    let Some(other) = claims.get(&claim).copied() else {
                        claims.insert(claim, me);
                        continue;
                    };
                    // Repeats inside one route are reported as duplicates above; report each
                    // pair of routes once per path, not once per host x method.
                    if other.route != i && reported.insert(other.route) {
                        e.push(
                            format!("{p}.paths[{j}]"),
                            conflict_message(routes, other, &claim),
                        );
                    }
                }
            }
        }
    }
}

fn conflict_message(routes: &[Route], other: Owner, claim: &Claim) -> String {
    let other_id = routes.get(other.route).map_or("", |r| r.id.as_str());
    let host = match &claim.host {
        None => "any host".to_string(),
        Some(HostPattern::Exact(h)) => format!("host {h:?}"),
        Some(HostPattern::Wildcard(s)) => format!("host \"*{s}\""),
    };
    let method = match &claim.method {
        None => "any method".to_string(),
        Some(m) => format!("method {m}"),
    };
    format!(
        "conflicts with routes[{}].paths[{}] (route {other_id:?}): both match {host}, path {:?} \
         and {method}",
        other.route, other.path, claim.shape
    )
}

/// Parsed hosts of a route, `[None]` for "any host"; invalid or repeated hosts are reported
/// and left out.
fn check_hosts(e: &mut Errors, p: &str, r: &Route) -> Vec<Option<HostPattern>> {
    if r.hosts.is_empty() {
        return vec![None];
    }
    let mut out: Vec<Option<HostPattern>> = Vec::new();
    for (j, h) in r.hosts.iter().enumerate() {
        let hp = format!("{p}.hosts[{j}]");
        match parse_host(h) {
            Err(msg) => e.push(hp, msg),
            Ok(host) => match r.hosts[..j]
                .iter()
                .position(|x| parse_host(x) == Ok(host.clone()))
            {
                Some(k) => e.push(hp, format!("duplicate of {p}.hosts[{k}]")),
                None => out.push(Some(host)),
            },
        }
    }
    out
}

/// Methods of a route, `[None]` for "any method"; invalid or repeated ones are reported.
fn check_methods(e: &mut Errors, p: &str, r: &Route) -> Vec<Option<String>> {
    if r.methods.is_empty() {
        return vec![None];
    }
    let mut out: Vec<Option<String>> = Vec::new();
    for (j, m) in r.methods.iter().enumerate() {
        let mp = format!("{p}.methods[{j}]");
        if let Err(msg) = check_method(m) {
            e.push(mp, msg);
        } else if let Some(k) = r.methods[..j].iter().position(|x| x == m) {
            e.push(mp, format!("duplicate of {p}.methods[{k}]"));
        } else {
            out.push(Some(m.clone()));
        }
    }
    out
}

/// Shapes of the valid paths of a route with their indexes; syntax errors, repeats and
/// `strip_prefix` misuse are reported.
fn check_paths(e: &mut Errors, p: &str, r: &Route) -> Vec<(usize, String)> {
    if r.paths.is_empty() {
        e.push(format!("{p}.paths"), "must list at least one path");
    }
    let mut out: Vec<(usize, String)> = Vec::new();
    for (j, path) in r.paths.iter().enumerate() {
        let pp = format!("{p}.paths[{j}]");
        let pattern = match parse_path(path) {
            Ok(pattern) => pattern,
            Err(msg) => {
                e.push(pp, msg);
                continue;
            }
        };
        if r.strip_prefix && !pattern.prefix {
            e.push(
                pp.clone(),
                format!("strip_prefix needs prefix paths ending in \"/*\"; {path:?} is exact"),
            );
        }
        let shape = pattern.shape_key();
        if let Some((k, _)) = out.iter().find(|(_, s)| *s == shape) {
            e.push(pp, format!("same path as {p}.paths[{k}]"));
            continue;
        }
        out.push((j, shape));
    }
    out
}
