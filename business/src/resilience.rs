//! An upstream's health, balancing and retry settings in the form the data plane runs them,
//! built once per config version, and the node pick every HTTP request (and each of its
//! retries) goes through.
//!
//! The shared health table ([`UpstreamHealth`]) is taken over from the previous version when
//! the upstream keeps its id and exact node list, so a config change elsewhere neither
//! forgets an ejection nor resets the active checker's streaks; any change to the nodes
//! starts a fresh table (node indexes would no longer line up).

use crate::context::Context;
use crate::pipeline::CoreState;
use crate::snapshot::Snapshot;
use crate::stage::Request;
use components::balancer::{self, Choice, Kind};
use components::balancer_hash::{hash_bytes, mix, Ring};
use components::health::{clock_ms, UpstreamHealth};
use components::health_check::{CheckSpec, Probe, Target};
use components::outlier::OutlierPolicy;
use conf::resilience::{BalancerKind, CheckKind, HashKey};
use conf::{ThriftProtocol, ThriftTransport, Upstream};
use protocols::http1::HeaderKind;
use protocols::thrift::codec::{Protocol, Transport};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct UpstreamRes {
    pub health: Arc<UpstreamHealth>,
    pub kind: Kind,
    /// The ring of a consistent-hash upstream.
    pub ring: Option<Ring>,
    pub hash_key: Option<HashKey>,
    pub fail_open: bool,
    pub outlier: OutlierPolicy,
    /// 5xx answers count as failures for the outlier rules.
    pub count_5xx: bool,
    pub budget_percent: u32,
    pub budget_min_per_sec: u32,
    pub check: Option<CheckSpec>,
}

impl UpstreamRes {
    /// Asks the upstream's retry budget for one retry, counting the answer in the metrics
    /// (retries, or budget exhausted).
    pub fn take_retry(&self) -> bool {
        let ok =
            self.health
                .budget
                .try_retry(clock_ms(), self.budget_percent, self.budget_min_per_sec);
        if ok {
            self.health.count_retry();
        } else {
            self.health.count_budget_exhausted();
        }
        ok
    }

    /// The settings of `u` (whose nodes resolved to `addrs`), keeping `prev`'s health table
    /// when the node list is the same.
    pub fn build(u: &Upstream, addrs: &[SocketAddr], prev: Option<&Snapshot>) -> UpstreamRes {
        let backup: Vec<bool> = u.nodes.iter().map(|n| n.backup).collect();
        let health = prev
            .and_then(|p| p.upstreams.iter().find(|o| o.id == u.id))
            .filter(|o| o.addrs == addrs && o.res.health.same_nodes(&backup))
            .map(|o| o.res.health.clone())
            .unwrap_or_else(|| Arc::new(UpstreamHealth::new(&backup)));
        let kind = match u.balancer {
            BalancerKind::RoundRobin => Kind::RoundRobin,
            BalancerKind::LeastRequest => Kind::LeastRequest,
            BalancerKind::ConsistentHash => Kind::ConsistentHash,
        };
        let weights: Vec<u32> = u.nodes.iter().map(|n| n.weight).collect();
        let outlier = u
            .outlier
            .as_ref()
            .map_or(OutlierPolicy::OFF, |o| OutlierPolicy {
                consecutive: o.consecutive_failures,
                rate_percent: o.error_rate_percent,
                window_ms: o.window_ms,
                min_requests: o.min_requests,
                base_ms: o.base_ejection_ms,
                max_ms: o.max_ejection_ms,
                max_percent: o.max_ejection_percent,
            });
        let check = u.health_check.as_ref().map(|h| CheckSpec {
            probe: match h.kind {
                CheckKind::Tcp => Probe::Tcp,
                CheckKind::Thrift => thrift_probe(u, &h.method, &h.multiplexed_name),
                CheckKind::Http => Probe::Http {
                    path: h.path.clone(),
                    host: h.host.clone(),
                    expected: h.expected_statuses.clone(),
                },
            },
            interval: Duration::from_millis(h.interval_ms),
            timeout: Duration::from_millis(h.timeout_ms),
            healthy_threshold: h.healthy_threshold,
            unhealthy_threshold: h.unhealthy_threshold,
        });
        UpstreamRes {
            health,
            kind,
            ring: (kind == Kind::ConsistentHash).then(|| Ring::new(addrs, &weights)),
            hash_key: u.hash_key.as_deref().and_then(HashKey::parse),
            fail_open: u.fail_open,
            outlier,
            count_5xx: u.outlier.as_ref().is_some_and(|o| o.count_5xx),
            budget_percent: u.retry_budget.percent,
            budget_min_per_sec: u.retry_budget.min_per_sec,
            check,
        }
    }
}

/// The Thrift check of `u`: `method` (prefixed `multiplexed:` when set) in the upstream's
/// protocol and transport (binary and framed when the upstream does not say: a service's own
/// defaults are not the upstream's, as a check belongs to the upstream, not to a route).
fn thrift_probe(u: &Upstream, method: &str, multiplexed: &str) -> Probe {
    let t = u.thrift();
    Probe::Thrift {
        name: match multiplexed {
            "" => method.to_string(),
            m => format!("{m}:{method}"),
        },
        protocol: match t.protocol {
            Some(ThriftProtocol::Compact) => Protocol::Compact,
            _ => Protocol::Binary,
        },
        transport: match t.transport {
            Some(ThriftTransport::Buffered) => Transport::Buffered,
            _ => Transport::Framed,
        },
    }
}

/// What the active checker watches in `snap`: every upstream, HTTP or Thrift (those without
/// checks too, so their flags are cleared when checks are removed).
pub fn check_targets(snap: &Snapshot) -> Vec<Target> {
    snap.upstreams
        .iter()
        .map(|u| Target {
            upstream: u.id.clone(),
            table: u.res.health.clone(),
            addrs: u.addrs.clone(),
            spec: u.res.check.clone(),
            tls: u.tls.clone(),
        })
        .collect()
}

/// The hash of the request's balancing key, when its upstream hashes and the key is there.
pub fn request_key(res: &UpstreamRes, req: &Request, ctx: &Context) -> Option<u64> {
    match res.hash_key.as_ref()? {
        HashKey::ClientIp => Some(match ctx.client_ip {
            IpAddr::V4(a) => mix(u32::from(a) as u64),
            IpAddr::V6(a) => hash_bytes(&a.octets()),
        }),
        HashKey::Header(name) => {
            let h = req.head.find_name(req.buf, name.as_bytes())?;
            Some(hash_bytes(h.value.get(req.buf)))
        }
        HashKey::Cookie(name) => req
            .head
            .headers()
            .iter()
            .filter(|h| h.kind == HeaderKind::Cookie)
            .find_map(|h| {
                crate::modules::key_auth::common::cookie_value(h.value.get(req.buf), name)
            })
            .map(hash_bytes),
    }
}

/// Picks a node of upstream `upstream` not among `tried` (bit i = node i), or `None` when no
/// node may take the request.
pub fn pick(
    snap: &Snapshot,
    core: &mut CoreState,
    upstream: usize,
    key: Option<u64>,
    tried: u64,
) -> Option<usize> {
    let up = snap.upstreams.get(upstream)?;
    let wrr = core.balancers.get_mut(upstream)?;
    let choice = Choice {
        kind: up.res.kind,
        health: &up.res.health,
        ring: up.res.ring.as_ref(),
        key,
        fail_open: up.res.fail_open,
        tried,
        now: clock_ms(),
    };
    balancer::pick(wrr, &mut core.rng, &choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(nodes: &str, prev: Option<&Snapshot>, version: u64) -> Arc<Snapshot> {
        let text = format!(
            "[[upstreams]]\nid = \"u\"\nnodes = [{nodes}]\n\
             [[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"u\"\n"
        );
        let c = conf::Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e:?}"));
        Snapshot::build_next(c, version, prev).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn the_health_table_outlives_versions_that_keep_the_nodes() {
        let two = "{ addr = \"127.0.0.1:9001\" }, { addr = \"127.0.0.1:9002\" }";
        let v1 = snap(two, None, 1);
        v1.upstreams[0].res.health.set_check_down(1, true);
        let v2 = snap(two, Some(&v1), 2);
        assert!(Arc::ptr_eq(
            &v1.upstreams[0].res.health,
            &v2.upstreams[0].res.health
        ));
        assert!(!v2.upstreams[0].res.health.is_up(1, clock_ms()));
        // Another node list, or a node turned backup: a fresh table, every node up.
        let v3 = snap("{ addr = \"127.0.0.1:9001\" }", Some(&v2), 3);
        assert!(!Arc::ptr_eq(
            &v2.upstreams[0].res.health,
            &v3.upstreams[0].res.health
        ));
        let backup = "{ addr = \"127.0.0.1:9001\" }, { addr = \"127.0.0.1:9002\", backup = true }";
        let v4 = snap(backup, Some(&v2), 4);
        assert!(v4.upstreams[0].res.health.is_up(1, clock_ms()));
        assert!(v4.upstreams[0].res.health.is_backup(1));
    }
}
