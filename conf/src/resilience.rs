//! Upstream resilience settings: active health checks, passive outlier ejection, the
//! balancer, and the retry budget of an upstream; a route's retry policy. Plain serde
//! structs with documented defaults (docs/resilience.md), kept apart from `model.rs` so the
//! upstream and route structs only gain one field per concept.

use crate::model::{Route, Upstream};
use crate::validate::Errors;
use serde::{Deserialize, Serialize};

/// How a node of an upstream is chosen (`balancer = ...` on the upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalancerKind {
    /// Smooth weighted round-robin.
    #[default]
    RoundRobin,
    /// Power of two random choices on requests in flight.
    LeastRequest,
    /// A ring of virtual nodes hashed by `hash_key`.
    ConsistentHash,
}

impl BalancerKind {
    pub fn is_round_robin(&self) -> bool {
        *self == BalancerKind::RoundRobin
    }
}

/// What the consistent-hash balancer hashes, parsed from `hash_key`:
/// `"client_ip"`, `"header:NAME"` or `"cookie:NAME"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    ClientIp,
    Header(String),
    Cookie(String),
}

impl HashKey {
    /// Parses the `hash_key` field; `None` for anything else (a validation error).
    pub fn parse(s: &str) -> Option<HashKey> {
        if s == "client_ip" {
            return Some(HashKey::ClientIp);
        }
        let (kind, name) = s.split_once(':')?;
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.!#$%&'*+^`|~".contains(&b));
        match kind {
            "header" if ok => Some(HashKey::Header(name.to_string())),
            "cookie" if ok => Some(HashKey::Cookie(name.to_string())),
            _ => None,
        }
    }
}

/// The kind of an active health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// `GET path` over a fresh connection; healthy when the status is expected.
    #[default]
    Http,
    /// Healthy when a TCP connection opens within the timeout.
    Tcp,
    /// A Thrift call of `method` with no arguments on a fresh connection (Thrift upstreams):
    /// healthy when a reply or an exception message with the call's sequence id comes back.
    Thrift,
}

/// `[upstreams.health_check]`: active checks, run from the gateway's control thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheck {
    pub kind: CheckKind,
    /// Path of the HTTP check.
    pub path: String,
    /// `Host` of the HTTP check; empty = the node's address.
    pub host: String,
    /// Statuses that count as healthy; empty = any 2xx or 3xx.
    pub expected_statuses: Vec<u16>,
    /// Method called by a Thrift check (`kind = "thrift"`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// Service name of a multiplexed Thrift server: the check calls `NAME:method`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub multiplexed_name: String,
    pub interval_ms: u64,
    /// Limit of one check (connect, send, whole answer).
    pub timeout_ms: u64,
    /// Consecutive successes that bring an unhealthy node back.
    pub healthy_threshold: u32,
    /// Consecutive failures that mark a healthy node unhealthy.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            kind: CheckKind::Http,
            path: "/".to_string(),
            host: String::new(),
            expected_statuses: Vec::new(),
            method: String::new(),
            multiplexed_name: String::new(),
            interval_ms: 5_000,
            timeout_ms: 1_000,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

impl HealthCheck {
    /// Whether `status` counts as healthy.
    pub fn expects(&self, status: u16) -> bool {
        if self.expected_statuses.is_empty() {
            (200..400).contains(&status)
        } else {
            self.expected_statuses.contains(&status)
        }
    }
}

/// `[upstreams.outlier]`: passive checks from real traffic. A node is ejected after
/// `consecutive_failures` failures in a row, or when its failure rate over `window_ms` passes
/// `error_rate_percent` (with at least `min_requests` in the window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outlier {
    /// 0 turns the consecutive rule off.
    pub consecutive_failures: u32,
    /// 0 turns the rate rule off.
    pub error_rate_percent: u32,
    pub window_ms: u64,
    pub min_requests: u32,
    /// Whether 5xx answers count as failures (connect failures, resets and timeouts always do).
    pub count_5xx: bool,
    /// The first ejection lasts this long; the n-th lasts n times as long ...
    pub base_ejection_ms: u64,
    /// ... up to this.
    pub max_ejection_ms: u64,
    /// Never more than this share of the upstream's nodes is ejected at once (at least one
    /// node may be when it is above 0).
    pub max_ejection_percent: u32,
}

impl Default for Outlier {
    fn default() -> Self {
        Outlier {
            consecutive_failures: 5,
            error_rate_percent: 0,
            window_ms: 10_000,
            min_requests: 20,
            count_5xx: false,
            base_ejection_ms: 30_000,
            max_ejection_ms: 300_000,
            max_ejection_percent: 50,
        }
    }
}

/// `[upstreams.retry_budget]`: retries to an upstream may be at most `percent` of its
/// requests over the last 10 seconds, plus `min_per_sec` a second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryBudget {
    pub percent: u32,
    pub min_per_sec: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            percent: 20,
            min_per_sec: 3,
        }
    }
}

/// Checks the resilience fields of upstream `u` (field paths under `p`).
pub(crate) fn check_upstream(e: &mut Errors, p: &str, u: &Upstream) {
    match (&u.hash_key, u.balancer) {
        (Some(k), BalancerKind::ConsistentHash) if HashKey::parse(k).is_none() => e.push(
            format!("{p}.hash_key"),
            "must be \"client_ip\", \"header:NAME\" or \"cookie:NAME\"",
        ),
        (None, BalancerKind::ConsistentHash) => e.push(
            format!("{p}.hash_key"),
            "the consistent_hash balancer needs a hash_key",
        ),
        (Some(_), b) if b != BalancerKind::ConsistentHash => e.push(
            format!("{p}.hash_key"),
            "only for balancer = \"consistent_hash\"",
        ),
        _ => {}
    }
    // Thrift upstreams take health checks, outlier ejection, fail_open and backup nodes;
    // their calls are balanced round-robin only (no key to hash, and no in-flight counts).
    if !u.protocol.is_http() && !u.balancer.is_round_robin() {
        e.push(
            format!("{p}.balancer"),
            "Thrift upstreams are balanced round_robin only",
        );
    }
    if let Some(h) = &u.health_check {
        let hp = format!("{p}.health_check");
        match (u.protocol.is_http(), h.kind) {
            (true, CheckKind::Thrift) => e.push(
                format!("{hp}.kind"),
                "\"thrift\" checks are for Thrift upstreams",
            ),
            (false, CheckKind::Http) => e.push(
                format!("{hp}.kind"),
                "Thrift upstreams are checked with kind = \"thrift\" or \"tcp\"",
            ),
            _ => {}
        }
        let name_ok = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if h.kind == CheckKind::Thrift && (h.method.is_empty() || !name_ok(&h.method)) {
            e.push(
                format!("{hp}.method"),
                "a Thrift check needs the method to call (visible ASCII, no ':')",
            );
        }
        if !name_ok(&h.multiplexed_name) {
            e.push(
                format!("{hp}.multiplexed_name"),
                "must hold visible ASCII only, no ':'",
            );
        }
        if h.kind != CheckKind::Thrift && !(h.method.is_empty() && h.multiplexed_name.is_empty()) {
            e.push(
                format!("{hp}.method"),
                "method and multiplexed_name are for kind = \"thrift\"",
            );
        }
    }
    if !u.nodes.is_empty() && u.nodes.iter().all(|n| n.backup) {
        e.push(
            format!("{p}.nodes"),
            "at least one node must not be a backup",
        );
    }
    if let Some(h) = &u.health_check {
        let hp = format!("{p}.health_check");
        e.range(&format!("{hp}.interval_ms"), h.interval_ms, 100, 3_600_000);
        e.range(&format!("{hp}.timeout_ms"), h.timeout_ms, 10, 60_000);
        e.range(
            &format!("{hp}.healthy_threshold"),
            h.healthy_threshold,
            1,
            100,
        );
        e.range(
            &format!("{hp}.unhealthy_threshold"),
            h.unhealthy_threshold,
            1,
            100,
        );
        if h.kind == CheckKind::Http {
            if !h.path.starts_with('/') || !h.path.bytes().all(|b| b.is_ascii_graphic()) {
                e.push(
                    format!("{hp}.path"),
                    "must start with '/' and hold visible ASCII only",
                );
            }
            if !h.host.bytes().all(|b| b.is_ascii_graphic()) {
                e.push(format!("{hp}.host"), "must hold visible ASCII only");
            }
        }
        for (i, s) in h.expected_statuses.iter().enumerate() {
            e.range(&format!("{hp}.expected_statuses[{i}]"), *s, 100, 599);
        }
    }
    if let Some(o) = &u.outlier {
        let op = format!("{p}.outlier");
        e.range(
            &format!("{op}.consecutive_failures"),
            o.consecutive_failures,
            0,
            10_000,
        );
        e.range(
            &format!("{op}.error_rate_percent"),
            o.error_rate_percent,
            0,
            100,
        );
        e.range(&format!("{op}.window_ms"), o.window_ms, 100, 3_600_000);
        e.range(&format!("{op}.min_requests"), o.min_requests, 1, 1_000_000);
        e.range(
            &format!("{op}.base_ejection_ms"),
            o.base_ejection_ms,
            1,
            86_400_000,
        );
        e.range(
            &format!("{op}.max_ejection_ms"),
            o.max_ejection_ms,
            o.base_ejection_ms,
            86_400_000,
        );
        e.range(
            &format!("{op}.max_ejection_percent"),
            o.max_ejection_percent,
            0,
            100,
        );
    }
    let bp = format!("{p}.retry_budget");
    e.range(&format!("{bp}.percent"), u.retry_budget.percent, 0, 100);
    e.range(
        &format!("{bp}.min_per_sec"),
        u.retry_budget.min_per_sec,
        0,
        100_000,
    );
}

/// Checks the retry fields of route `r` (field paths under `p`).
pub(crate) fn check_route(e: &mut Errors, p: &str, r: &Route) {
    e.range(&format!("{p}.retries"), r.retries, 0, 10);
    if r.try_timeout_ms > 0 {
        e.timeout(&format!("{p}.try_timeout_ms"), r.try_timeout_ms);
    }
    if r.timeout_ms > 0 {
        e.timeout(&format!("{p}.timeout_ms"), r.timeout_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_keys_parse() {
        assert_eq!(HashKey::parse("client_ip"), Some(HashKey::ClientIp));
        assert_eq!(
            HashKey::parse("header:X-User"),
            Some(HashKey::Header("X-User".into()))
        );
        assert_eq!(
            HashKey::parse("cookie:sid"),
            Some(HashKey::Cookie("sid".into()))
        );
        for bad in ["", "header:", "ip", "cookie:a b", "query:x"] {
            assert_eq!(HashKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn expected_statuses_default_to_2xx_3xx() {
        let h = HealthCheck::default();
        assert!(h.expects(200) && h.expects(302) && !h.expects(500) && !h.expects(404));
        let h = HealthCheck {
            expected_statuses: vec![204],
            ..HealthCheck::default()
        };
        assert!(h.expects(204) && !h.expects(200));
    }

    fn errors(upstream: &str, route: &str) -> Vec<String> {
        let text = format!(
            "[[upstreams]]\nid = \"u\"\nnodes = [{{ addr = \"127.0.0.1:9001\" }}, \
             {{ addr = \"127.0.0.1:9002\", backup = true }}]\n{upstream}\n\
             [[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"u\"\n{route}\n"
        );
        let config = crate::Config::from_toml_str(&text).expect("parses");
        config.validate().into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn resilience_fields_are_validated() {
        assert!(errors("", "").is_empty());
        let full = "balancer = \"consistent_hash\"\nhash_key = \"cookie:sid\"\nfail_open = true\n\
                    [upstreams.health_check]\nkind = \"tcp\"\n[upstreams.outlier]\n\
                    error_rate_percent = 50\n[upstreams.retry_budget]\npercent = 10\n";
        assert!(errors(full, "retries = 3\ntry_timeout_ms = 100").is_empty());
        assert_eq!(
            errors("balancer = \"consistent_hash\"", ""),
            ["upstreams[0].hash_key"]
        );
        assert_eq!(
            errors("balancer = \"consistent_hash\"\nhash_key = \"query:x\"", ""),
            ["upstreams[0].hash_key"]
        );
        assert_eq!(
            errors("hash_key = \"client_ip\"", ""),
            ["upstreams[0].hash_key"]
        );
        assert_eq!(
            errors(
                "[upstreams.health_check]\npath = \"x\"\ninterval_ms = 1",
                ""
            ),
            [
                "upstreams[0].health_check.interval_ms",
                "upstreams[0].health_check.path"
            ]
        );
        assert_eq!(
            errors("[upstreams.outlier]\nmax_ejection_percent = 101", ""),
            ["upstreams[0].outlier.max_ejection_percent"]
        );
        assert_eq!(errors("", "retries = 11"), ["routes[0].retries"]);
        assert_eq!(
            errors(
                "[upstreams.health_check]\nkind = \"thrift\"\nmethod = \"ping\"",
                ""
            ),
            ["upstreams[0].health_check.kind"]
        );
        assert_eq!(
            errors("[upstreams.health_check]\nmethod = \"ping\"", ""),
            ["upstreams[0].health_check.method"]
        );
    }

    fn thrift_errors(upstream: &str) -> Vec<String> {
        let text = format!(
            "[[upstreams]]\nid = \"u\"\nprotocol = \"thrift\"\nnodes = \
             [{{ addr = \"127.0.0.1:9001\" }}, {{ addr = \"127.0.0.1:9002\", backup = true }}]\n\
             {upstream}\n"
        );
        let config = crate::Config::from_toml_str(&text).expect("parses");
        config.validate().into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn thrift_upstreams_take_checks_ejection_and_fail_open_but_no_other_balancer() {
        let full = "fail_open = true\n[upstreams.health_check]\nkind = \"thrift\"\n\
                    method = \"ping\"\nmultiplexed_name = \"Svc\"\n[upstreams.outlier]\n";
        assert!(thrift_errors(full).is_empty(), "{:?}", thrift_errors(full));
        assert!(thrift_errors("[upstreams.health_check]\nkind = \"tcp\"").is_empty());
        assert_eq!(
            thrift_errors("[upstreams.health_check]\nkind = \"http\""),
            ["upstreams[0].health_check.kind"]
        );
        assert_eq!(
            thrift_errors("[upstreams.health_check]\nkind = \"thrift\""),
            ["upstreams[0].health_check.method"]
        );
        assert_eq!(
            thrift_errors(
                "[upstreams.health_check]\nkind = \"thrift\"\nmethod = \"a:b\"\n\
                 multiplexed_name = \"x y\""
            ),
            [
                "upstreams[0].health_check.method",
                "upstreams[0].health_check.multiplexed_name"
            ]
        );
        assert_eq!(
            thrift_errors("balancer = \"least_request\""),
            ["upstreams[0].balancer"]
        );
    }
}
