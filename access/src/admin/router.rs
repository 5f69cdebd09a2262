//! The admin routes as a table: each row is a path pattern, a method and a handler. The table
//! is the single list the dispatcher, the 404/405 answers and the OpenAPI document all read,
//! so a new endpoint (gray releases, metrics) is one row and one function.
//!
//! Patterns are literal segments plus two placeholders: `{kind}` matches only a resource kind
//! the model has (`routes`, `upstreams`, ...; see `conf::store::kinds`), `{id}` any non-empty
//! segment. Fixed paths never clash with `{kind}`, because no kind is named `config` or
//! `audit`; the one exception is on purpose: `releases` is a kind (listed and stored like the
//! others), and its own rows come first so they answer `/admin/v1/releases/{id}`.

use super::answer::Answer;
use super::State;
use std::net::SocketAddr;

/// One request as the handlers see it.
pub struct Req<'a> {
    pub method: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// Query without the `?` ("" when absent).
    pub query: &'a str,
    pub body: &'a [u8],
    /// The `X-API-Key` value, if sent.
    pub key: Option<&'a [u8]>,
    pub peer: SocketAddr,
}

impl Req<'_> {
    /// The value of query parameter `name` (not percent-decoded: admin parameters are numbers).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// The placeholders a pattern bound.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Params<'a> {
    pub kind: Option<&'static str>,
    pub id: Option<&'a str>,
}

pub type Handler = fn(&State, &Req, &Params) -> Answer;

/// One admin endpoint.
pub struct RouteDef {
    pub pattern: &'static str,
    pub method: &'static str,
    /// Needs `X-API-Key` when `admin.api_key` is set.
    pub auth: bool,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Success status and what its body is, for the OpenAPI document.
    pub ok: (u16, &'static str),
    pub handler: Handler,
}

/// Every admin endpoint. Fixed paths come before patterns.
pub static ROUTES: &[RouteDef] = &[
    RouteDef {
        pattern: "/metrics",
        method: "GET",
        auth: true,
        summary: "Prometheus text exposition: requests by route, status class and upstream; latency histograms; gateway answers by code; pools; connections; config version",
        ok: (200, "Metrics"),
        handler: super::handlers::metrics,
    },
    RouteDef {
        pattern: "/healthz",
        method: "GET",
        auth: false,
        summary: "200 while the gateway serves (no key needed)",
        ok: (200, "Health"),
        handler: super::handlers::healthz,
    },
    RouteDef {
        pattern: "/admin/v1/config",
        method: "GET",
        auth: true,
        summary: "The whole published config with its version",
        ok: (200, "Config"),
        handler: super::handlers::config,
    },
    RouteDef {
        pattern: "/admin/v1/audit",
        method: "GET",
        auth: true,
        summary: "The newest audit records, oldest first (?limit=N, default 100, at most 1000)",
        ok: (200, "AuditPage"),
        handler: super::handlers::audit,
    },
    RouteDef {
        pattern: "/admin/v1/openapi.json",
        method: "GET",
        auth: true,
        summary: "This document",
        ok: (200, "OpenApi"),
        handler: super::openapi::handler,
    },
    RouteDef {
        pattern: "/admin/v1/releases/{id}",
        method: "GET",
        auth: true,
        summary: "A gray release: as stored, its state (running, promoted, rolled_back) and each side's counters",
        ok: (200, "ReleaseState"),
        handler: super::releases::get,
    },
    RouteDef {
        pattern: "/admin/v1/releases/{id}",
        method: "PUT",
        auth: true,
        summary: "Start or change a gray release of a route or module: {\"target\", \"candidate\", \"split\", \"guard\"}",
        ok: (200, "Resource"),
        handler: super::releases::put,
    },
    RouteDef {
        pattern: "/admin/v1/releases/{id}",
        method: "DELETE",
        auth: true,
        summary: "Roll a gray release back (as POST .../rollback, answered 204)",
        ok: (204, ""),
        handler: super::releases::delete,
    },
    RouteDef {
        pattern: "/admin/v1/releases/{id}/promote",
        method: "POST",
        auth: true,
        summary: "The candidate becomes the resource and the release ends, in one version",
        ok: (200, "ReleaseState"),
        handler: super::releases::promote,
    },
    RouteDef {
        pattern: "/admin/v1/releases/{id}/rollback",
        method: "POST",
        auth: true,
        summary: "The release ends and the stable version serves everything, in one version",
        ok: (200, "ReleaseState"),
        handler: super::releases::rollback,
    },
    RouteDef {
        pattern: "/admin/v1/{kind}",
        method: "GET",
        auth: true,
        summary: "Every resource of the kind, with the config version",
        ok: (200, "List"),
        handler: super::handlers::list,
    },
    RouteDef {
        pattern: "/admin/v1/{kind}/{id}",
        method: "GET",
        auth: true,
        summary: "One resource, with the config version",
        ok: (200, "Resource"),
        handler: super::handlers::get,
    },
    RouteDef {
        pattern: "/admin/v1/{kind}/{id}",
        method: "PUT",
        auth: true,
        summary: "Create (201) or replace (200) a resource; answered once every worker serves it",
        ok: (200, "Resource"),
        handler: super::handlers::put,
    },
    RouteDef {
        pattern: "/admin/v1/{kind}/{id}",
        method: "DELETE",
        auth: true,
        summary: "Delete a resource (409 while another resource refers to it)",
        ok: (204, ""),
        handler: super::handlers::delete,
    },
];

/// Binds `pattern` against `path`.
pub fn match_pattern<'a>(pattern: &str, path: &'a str) -> Option<Params<'a>> {
    let mut params = Params::default();
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(params),
            (Some("{kind}"), Some(seg)) => params.kind = Some(conf::store::kinds::kind_named(seg)?),
            (Some("{id}"), Some(seg)) if !seg.is_empty() => params.id = Some(seg),
            (Some(w), Some(seg)) if w == seg => {}
            _ => return None,
        }
    }
}

/// Compares secrets in time independent of where they differ.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Routes `req` through [`ROUTES`]: 401 before anything else on a protected path, then the
/// handler, a 405 naming the allowed methods, or a 404 for a path no route has.
pub fn dispatch(state: &State, req: &Req) -> Answer {
    let matched: Vec<(&RouteDef, Params)> = ROUTES
        .iter()
        .filter_map(|r| match_pattern(r.pattern, req.path).map(|p| (r, p)))
        .collect();
    // Unknown paths are protected too, so a caller without the key learns nothing.
    let protected = matched.is_empty() || matched.iter().any(|(r, _)| r.auth);
    let key = state.settings.api_key.as_bytes();
    if protected && !key.is_empty() && !req.key.is_some_and(|k| same_key(k, key)) {
        let msg = if req.key.is_some() {
            "wrong X-API-Key"
        } else {
            "missing X-API-Key"
        };
        return Answer::error(401, "unauthorized", msg, "");
    }
    if matched.is_empty() {
        return Answer::error(
            404,
            "no_such_path",
            format!("no admin endpoint at {}", req.path),
            "",
        );
    }
    let method = if req.method == "HEAD" {
        "GET"
    } else {
        req.method
    };
    match matched.iter().find(|(r, _)| r.method == method) {
        Some((r, params)) => (r.handler)(state, req, params),
        None => {
            let mut allow: Vec<&str> = Vec::new();
            for (r, _) in &matched {
                if !allow.contains(&r.method) {
                    allow.push(r.method);
                }
            }
            let mut a = Answer::error(
                405,
                "method_not_allowed",
                format!("{} is not allowed on {}", req.method, req.path),
                "",
            );
            a.allow = Some(allow.join(", "));
            a
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_bind_kinds_and_ids() {
        assert_eq!(
            match_pattern("/admin/v1/{kind}/{id}", "/admin/v1/routes/r-1"),
            Some(Params {
                kind: Some("routes"),
                id: Some("r-1")
            })
        );
        assert_eq!(
            match_pattern("/admin/v1/{kind}/{id}", "/admin/v1/routes/"),
            None
        );
        assert_eq!(match_pattern("/admin/v1/{kind}", "/admin/v1/bogus"), None);
        assert_eq!(
            match_pattern("/admin/v1/{kind}", "/admin/v1/routes/x"),
            None
        );
        assert_eq!(
            match_pattern("/admin/v1/config", "/admin/v1/config"),
            Some(Params::default())
        );
        assert_eq!(match_pattern("/admin/v1/config", "/admin/v1/config/"), None);
        assert_eq!(match_pattern("/healthz", "/"), None);
    }

    #[test]
    fn fixed_paths_are_not_kinds() {
        for r in ROUTES {
            for seg in r.pattern.split('/') {
                assert!(
                    seg == "releases" || conf::store::kinds::kind_named(seg).is_none(),
                    "{} has a literal segment named like a kind",
                    r.pattern
                );
            }
        }
    }

    #[test]
    fn query_params() {
        let req = Req {
            method: "GET",
            path: "/",
            query: "a=1&limit=20&flag",
            body: b"",
            key: None,
            peer: "127.0.0.1:1".parse().unwrap(),
        };
        assert_eq!(req.query_param("limit"), Some("20"));
        assert_eq!(req.query_param("flag"), Some(""));
        assert_eq!(req.query_param("b"), None);
    }

    #[test]
    fn key_comparison() {
        assert!(same_key(b"abc", b"abc"));
        assert!(!same_key(b"abc", b"abd"));
        assert!(!same_key(b"abc", b"abcd"));
    }
}
