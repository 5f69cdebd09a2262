//! Passive health: outlier ejection from the outcomes of real requests.
//!
//! Every core reports each exchange's outcome into the shared table ([`crate::health`]). A
//! node is ejected after `consecutive` failures in a row, or when its failure rate over a
//! window passes `rate_percent` (with enough requests to judge). The n-th ejection in a row
//! lasts `base_ms * n`, capped at `max_ms`; the node comes back by itself when the time is up
//! (nothing has to run for that: pickers compare the deadline with the clock). At most
//! `max_percent` of the upstream's nodes (and at least one, when it is above 0) are out at
//! once. The counters are approximate under races between cores (a window reset may lose a
//! report), which only shifts an ejection by a request; the ejection cap is exact.

use crate::health::UpstreamHealth;
use std::sync::atomic::Ordering::*;

/// The ejection rules of one upstream (from `[upstreams.outlier]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierPolicy {
    /// 0 = off.
    pub consecutive: u32,
    /// 0 = off.
    pub rate_percent: u32,
    pub window_ms: u64,
    pub min_requests: u32,
    pub base_ms: u64,
    pub max_ms: u64,
    pub max_percent: u32,
}

impl OutlierPolicy {
    /// No ejection at all (an upstream without `[upstreams.outlier]`).
    pub const OFF: OutlierPolicy = OutlierPolicy {
        consecutive: 0,
        rate_percent: 0,
        window_ms: 10_000,
        min_requests: 1,
        base_ms: 0,
        max_ms: 0,
        max_percent: 0,
    };

    pub fn is_off(&self) -> bool {
        self.max_percent == 0 || (self.consecutive == 0 && self.rate_percent == 0)
    }

    /// How many of `nodes` may be ejected at once.
    pub fn cap(&self, nodes: usize) -> usize {
        if self.max_percent == 0 || nodes == 0 {
            return 0;
        }
        (nodes * self.max_percent as usize / 100).max(1)
    }
}

pub(crate) fn report(
    h: &UpstreamHealth,
    node: usize,
    failed: bool,
    p: &OutlierPolicy,
    now: u64,
) -> bool {
    if p.is_off() {
        return false;
    }
    let Some(n) = h.nodes.get(node) else {
        return false;
    };
    // The rate window: whoever sees it expired starts the next one.
    let start = n.window_start.load(Relaxed);
    if now.saturating_sub(start) >= p.window_ms
        && n.window_start
            .compare_exchange(start, now, Relaxed, Relaxed)
            .is_ok()
    {
        n.window_requests.store(0, Relaxed);
        n.window_failures.store(0, Relaxed);
    }
    if p.rate_percent > 0 {
        n.window_requests.fetch_add(1, Relaxed);
    }
    if !failed {
        // Only write when there is something to clear: a healthy node's line stays shared.
        if n.consecutive_failures.load(Relaxed) != 0 {
            n.consecutive_failures.store(0, Relaxed);
        }
        return false;
    }
    let streak = n.consecutive_failures.fetch_add(1, Relaxed) + 1;
    let mut trip = p.consecutive > 0 && streak >= p.consecutive;
    if p.rate_percent > 0 {
        let failures = n.window_failures.fetch_add(1, Relaxed) as u64 + 1;
        let requests = n.window_requests.load(Relaxed) as u64;
        trip |=
            requests >= p.min_requests as u64 && failures * 100 >= p.rate_percent as u64 * requests;
    }
    if !trip || n.ejected_until.load(Acquire) > now {
        return false;
    }
    eject(h, node, p, now)
}

/// Ejects `node` unless the cap is reached or another core is deciding an ejection right now
/// (the next failure tries again).
fn eject(h: &UpstreamHealth, node: usize, p: &OutlierPolicy, now: u64) -> bool {
    if h.ejecting
        .compare_exchange(false, true, Acquire, Relaxed)
        .is_err()
    {
        return false;
    }
    let out = h
        .nodes
        .iter()
        .filter(|n| n.ejected_until.load(Acquire) > now)
        .count();
    let done = match h.nodes.get(node) {
        Some(n) if out < p.cap(h.nodes.len()) => {
            let last_end = n.ejected_until.load(Relaxed);
            // A node clean for a whole max_ms since its last ejection starts over at one base.
            let streak = if last_end > 0 && now.saturating_sub(last_end) < p.max_ms {
                n.ejection_streak.load(Relaxed).saturating_add(1)
            } else {
                1
            };
            n.ejection_streak.store(streak, Relaxed);
            n.ejections_total.fetch_add(1, Relaxed);
            n.consecutive_failures.store(0, Relaxed);
            n.window_requests.store(0, Relaxed);
            n.window_failures.store(0, Relaxed);
            let span = p.base_ms.saturating_mul(streak as u64).min(p.max_ms);
            n.ejected_until.store(now + span, Release);
            true
        }
        _ => false,
    };
    h.ejecting.store(false, Release);
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> OutlierPolicy {
        OutlierPolicy {
            consecutive: 3,
            rate_percent: 0,
            window_ms: 1000,
            min_requests: 10,
            base_ms: 100,
            max_ms: 250,
            max_percent: 50,
        }
    }

    #[test]
    fn consecutive_failures_eject_for_a_growing_time() {
        let h = UpstreamHealth::new(&[false; 4]);
        let p = policy();
        let mut now = 1000;
        assert!(!h.report(0, true, &p, now));
        assert!(!h.report(0, true, &p, now));
        assert!(h.report(0, true, &p, now));
        assert!(!h.is_up(0, now) && !h.is_up(0, now + 99) && h.is_up(0, now + 100));
        // Back, fails again: twice as long, then capped.
        now += 100;
        for _ in 0..3 {
            h.report(0, true, &p, now);
        }
        assert!(!h.is_up(0, now + 199) && h.is_up(0, now + 200));
        now += 200;
        for _ in 0..3 {
            h.report(0, true, &p, now);
        }
        assert!(!h.is_up(0, now + 249) && h.is_up(0, now + 250));
        assert_eq!(h.ejections(0), 3);
        // Long clean spell: back to one base.
        now += 250 + 1000;
        for _ in 0..3 {
            h.report(0, true, &p, now);
        }
        assert!(h.is_up(0, now + 100));
    }

    #[test]
    fn a_success_breaks_the_streak() {
        let h = UpstreamHealth::new(&[false; 2]);
        let p = policy();
        for _ in 0..10 {
            assert!(!h.report(0, true, &p, 5));
            assert!(!h.report(0, true, &p, 5));
            assert!(!h.report(0, false, &p, 5));
        }
        assert!(h.is_up(0, 5));
    }

    #[test]
    fn never_more_than_max_percent_out() {
        let h = UpstreamHealth::new(&[false; 4]);
        let p = policy();
        for node in 0..4 {
            for _ in 0..3 {
                h.report(node, true, &p, 10);
            }
        }
        let out = (0..4).filter(|&n| !h.is_up(n, 10)).count();
        assert_eq!(out, 2);
        // One node of one: at least one may go.
        let h = UpstreamHealth::new(&[false]);
        for _ in 0..3 {
            h.report(0, true, &p, 10);
        }
        assert!(!h.is_up(0, 10));
        let off = OutlierPolicy {
            max_percent: 0,
            ..p
        };
        let h = UpstreamHealth::new(&[false]);
        for _ in 0..10 {
            assert!(!h.report(0, true, &off, 10));
        }
    }

    #[test]
    fn error_rate_ejects_once_enough_requests_are_seen() {
        let h = UpstreamHealth::new(&[false; 2]);
        let p = OutlierPolicy {
            consecutive: 0,
            rate_percent: 50,
            min_requests: 10,
            ..policy()
        };
        // Alternating: never 2 in a row, but a 50% rate.
        let mut ejected = false;
        for i in 0..10 {
            ejected |= h.report(0, i % 2 == 1, &p, 10);
            assert_eq!(ejected, i >= 9, "request {i}");
        }
        // A new window forgets the old counts.
        assert!(!h.report(1, true, &p, 10));
        for _ in 0..20 {
            assert!(!h.report(1, false, &p, 2000));
        }
    }
}
