//! Gray releases at run time (docs/releases.md).
//!
//! A release (`conf::release::ReleaseSpec`) targets a route or a module and carries a
//! candidate, a full alternative version of it. For every route the release touches, the
//! pipeline builds a second stage list in which the candidate replaces the target (the
//! candidate route's modules and upstream, or the candidate module's stage); both lists share
//! their stages up to the *switch*, the first place where they differ (or, for a route
//! release, right after route matching). When a request reaches the switch, the split
//! ([`SplitRule`]) picks the side and [`Context::release`](crate::Context) records it; from
//! there on the request walks that side's list, and the access layer counts its answer on
//! that side ([`ReleaseCounters`], one per release per core).
//!
//! Both sides are live at once and belong to one snapshot, so promoting (the candidate
//! replaces the target) and rolling back (the release is dropped) are ordinary config
//! changes: one new version, published to every core at once.
//!
//! [`judge`] is the auto-rollback guard's decision, a pure function of the counts over its
//! window; the admin thread samples the counters and acts on it.

mod build;
mod counters;
mod split;

pub(crate) use build::compile;

pub use counters::{
    bucket_of, bucket_range, ReleaseCounters, SideReport, SideTotals, Totals, BUCKETS,
};
pub use split::{bucket, SplitRule, MAX_JWT_PAYLOAD};

use conf::release::{Guard, TargetKind};

/// Which version of the target serves a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Stable = 0,
    Candidate = 1,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Stable => "stable",
            Side::Candidate => "candidate",
        }
    }
}

/// The release decision of one request: which release (index in the snapshot's
/// `pipeline.releases`) and which side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleaseMark {
    pub index: u16,
    pub side: Side,
}

/// Most releases one config may hold (the mark keeps the index in 16 bits).
pub const MAX_RELEASES: usize = 1024;

/// One release of a snapshot, compiled.
#[derive(Debug)]
pub struct ReleaseRt {
    pub id: String,
    pub kind: TargetKind,
    /// Index of the target in `config.routes` or `config.modules`.
    pub target: usize,
    pub split: SplitRule,
    /// Version at which the release was created or last changed: counters of an older
    /// `since` belong to an earlier experiment and are not carried.
    pub since: u64,
    pub guard: Option<Guard>,
}

/// Why the guard rolls a release back, or `None` to let it run. `window` is what both sides
/// counted over the guard's window.
pub fn judge(guard: &Guard, window: &Totals) -> Option<String> {
    let cand = window.side(Side::Candidate);
    let stable = window.side(Side::Stable);
    if cand.requests() < guard.min_requests {
        return None;
    }
    let (c, s) = (cand.error_rate() * 100.0, stable.error_rate() * 100.0);
    if c > s + guard.error_rate_margin {
        return Some(format!(
            "candidate 5xx rate {c:.2}% exceeds the stable side's {s:.2}% by more than \
             {} points ({} candidate requests in the window)",
            guard.error_rate_margin,
            cand.requests()
        ));
    }
    if let Some(margin) = guard.p99_margin_ms {
        // Latencies are only compared against a stable side that has enough data too.
        if stable.requests() >= guard.min_requests {
            if let (Some(cp), Some(sp)) = (cand.quantile_us(0.99), stable.quantile_us(0.99)) {
                let (cp, sp) = (cp / 1000.0, sp / 1000.0);
                if cp > sp + margin as f64 {
                    return Some(format!(
                        "candidate p99 {cp:.1} ms exceeds the stable side's {sp:.1} ms by \
                         more than {margin} ms"
                    ));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
