//! Node health of one upstream, shared by every core and the health-check control thread.
//!
//! Unlike the pools and balancer positions (one per core), health must be one truth for the
//! whole process: a node found dead by one worker, or by the active checker, is avoided by all.
//! So an upstream's [`UpstreamHealth`] is an `Arc`'d table of atomics, one [`NodeHealth`] per
//! node, held by every snapshot that has the same nodes (the table survives config changes that
//! leave the upstream's nodes alone). Writers: the control thread sets `check_down`; workers
//! report outcomes and eject outliers (`crate::outlier`). Readers: workers when picking. All
//! accesses are relaxed except the ejection deadline (release/acquire, so a node seen back is
//! seen with its reset counters); nothing on the request path locks or allocates.
//!
//! Times are [`clock_ms`]: one process-wide monotonic clock, since workers' own clocks differ.

use crate::outlier::OutlierPolicy;
use crate::retry_budget::RetryBudget;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::sync::OnceLock;
use std::time::Instant;

/// Milliseconds since the first call in this process, plus one (0 means "never" in deadlines).
pub fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// What metrics say of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Healthy,
    /// Out for a while after failing real traffic.
    Ejected,
    /// Failing its active checks.
    CheckFailed,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Healthy => "healthy",
            NodeState::Ejected => "ejected",
            NodeState::CheckFailed => "check_failed",
        }
    }
}

/// The shared state of one node.
#[derive(Debug, Default)]
pub struct NodeHealth {
    /// Set and cleared by the active checker.
    pub(crate) check_down: AtomicBool,
    /// `clock_ms` until which the node is ejected; 0 = never ejected.
    pub(crate) ejected_until: AtomicU64,
    /// How many ejections in a row (the next lasts one base longer); reset after a long
    /// clean spell.
    pub(crate) ejection_streak: AtomicU32,
    pub(crate) ejections_total: AtomicU64,
    pub(crate) consecutive_failures: AtomicU32,
    pub(crate) window_start: AtomicU64,
    pub(crate) window_requests: AtomicU32,
    pub(crate) window_failures: AtomicU32,
    /// Requests in flight on every core (least_request upstreams only).
    pub(crate) in_flight: AtomicU32,
}

/// The shared health table of one upstream's nodes.
#[derive(Debug)]
pub struct UpstreamHealth {
    pub(crate) nodes: Box<[NodeHealth]>,
    /// `backup = true` per node (fixed with the node list).
    backup: Box<[bool]>,
    /// Taken (never waited on) while deciding an ejection, so concurrent ejections from two
    /// cores cannot pass `max_ejection_percent` together.
    pub(crate) ejecting: AtomicBool,
    pub budget: RetryBudget,
    retries: AtomicU64,
    budget_exhausted: AtomicU64,
}

impl UpstreamHealth {
    /// A table for nodes with these backup flags, every node healthy.
    pub fn new(backup: &[bool]) -> UpstreamHealth {
        UpstreamHealth {
            nodes: backup.iter().map(|_| NodeHealth::default()).collect(),
            backup: backup.into(),
            ejecting: AtomicBool::new(false),
            budget: RetryBudget::default(),
            retries: AtomicU64::new(0),
            budget_exhausted: AtomicU64::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn is_backup(&self, node: usize) -> bool {
        self.backup.get(node).copied().unwrap_or(false)
    }

    /// Whether a table built for `backup` flags can stand for this one in a new snapshot.
    pub fn same_nodes(&self, backup: &[bool]) -> bool {
        *self.backup == *backup
    }

    /// Whether `node` may take traffic at `now` (neither failing checks nor ejected).
    pub fn is_up(&self, node: usize, now: u64) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|n| !n.check_down.load(Relaxed) && n.ejected_until.load(Acquire) <= now)
    }

    pub fn state(&self, node: usize, now: u64) -> NodeState {
        match self.nodes.get(node) {
            Some(n) if n.check_down.load(Relaxed) => NodeState::CheckFailed,
            Some(n) if n.ejected_until.load(Acquire) > now => NodeState::Ejected,
            _ => NodeState::Healthy,
        }
    }

    /// Set by the active checker.
    pub fn set_check_down(&self, node: usize, down: bool) {
        if let Some(n) = self.nodes.get(node) {
            n.check_down.store(down, Relaxed);
        }
    }

    pub fn ejections(&self, node: usize) -> u64 {
        self.nodes
            .get(node)
            .map_or(0, |n| n.ejections_total.load(Relaxed))
    }

    pub fn in_flight(&self, node: usize) -> u32 {
        self.nodes
            .get(node)
            .map_or(0, |n| n.in_flight.load(Relaxed))
    }

    /// A request to `node` started (least_request bookkeeping).
    pub fn begin(&self, node: usize) {
        if let Some(n) = self.nodes.get(node) {
            n.in_flight.fetch_add(1, Relaxed);
        }
    }

    /// A request begun with [`begin`](Self::begin) ended, however it ended.
    pub fn end(&self, node: usize) {
        if let Some(n) = self.nodes.get(node) {
            // Never below zero, even if a table was swapped under a request.
            let _ = n
                .in_flight
                .fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1));
        }
    }

    /// An exchange with `node` ended: `failed` for a connect failure, reset, timeout or (by
    /// policy) a 5xx. Returns whether this report ejected the node.
    pub fn report(&self, node: usize, failed: bool, policy: &OutlierPolicy, now: u64) -> bool {
        crate::outlier::report(self, node, failed, policy, now)
    }

    pub fn count_retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    pub fn count_budget_exhausted(&self) {
        self.budget_exhausted.fetch_add(1, Relaxed);
    }

    pub fn retries(&self) -> u64 {
        self.retries.load(Relaxed)
    }

    pub fn budget_exhausted(&self) -> u64 {
        self.budget_exhausted.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_down_and_ejection_both_take_a_node_out() {
        let h = UpstreamHealth::new(&[false, false, true]);
        let now = clock_ms();
        assert!(h.is_up(0, now) && h.is_up(2, now) && h.is_backup(2) && !h.is_backup(0));
        h.set_check_down(0, true);
        assert!(!h.is_up(0, now));
        assert_eq!(h.state(0, now), NodeState::CheckFailed);
        h.set_check_down(0, false);
        h.nodes[1].ejected_until.store(now + 1000, Release);
        assert_eq!(h.state(1, now), NodeState::Ejected);
        assert!(!h.is_up(1, now) && h.is_up(1, now + 1000));
        assert!(!h.is_up(7, now));
    }

    #[test]
    fn in_flight_never_goes_negative() {
        let h = UpstreamHealth::new(&[false]);
        h.begin(0);
        h.end(0);
        h.end(0);
        assert_eq!(h.in_flight(0), 0);
    }
}
