//! Per-side counters of a release: answers by status class and a latency histogram, kept per
//! core by one writer (the worker) and summed by the admin thread.
//!
//! The histogram has four buckets per power of two from 64 µs to about 67 s, so a p99 read
//! from it is within about 12% of the true value (the guard compares p99s; the route
//! histograms of `/metrics` are too coarse for that). A bucket index is a few bit operations,
//! with no search.
//!
//! [`ReleaseCounters`] is what a worker writes; [`Totals`] is plain numbers, what the admin
//! thread adds up, subtracts (a window is "now minus then") and reports.

use super::Side;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Smallest power of two with buckets of its own: everything under 2^6 µs shares bucket 0.
const LOW_EXP: u32 = 6;
/// Largest: everything from 2^27 µs (~134 s) shares the last bucket.
const HIGH_EXP: u32 = 27;
const SUB: u32 = 4;
/// Histogram buckets.
pub const BUCKETS: usize = 1 + ((HIGH_EXP - LOW_EXP) * SUB) as usize + 1;

/// The bucket of a latency in µs.
#[inline]
pub fn bucket_of(us: u64) -> usize {
    if us < 1 << LOW_EXP {
        return 0;
    }
    let exp = 63 - us.leading_zeros();
    if exp >= HIGH_EXP {
        return BUCKETS - 1;
    }
    let sub = ((us >> (exp - 2)) & 3) as u32;
    (1 + (exp - LOW_EXP) * SUB + sub) as usize
}

/// The latencies bucket `i` holds: `[lo, hi)` in µs (the last one is open-ended; `hi` is
/// reported as its `lo` doubled).
pub fn bucket_range(i: usize) -> (u64, u64) {
    if i == 0 {
        return (0, 1 << LOW_EXP);
    }
    if i >= BUCKETS - 1 {
        return (1 << HIGH_EXP, 1 << (HIGH_EXP + 1));
    }
    let k = (i - 1) as u32;
    let exp = LOW_EXP + k / SUB;
    let sub = u64::from(k % SUB);
    let step = 1u64 << (exp - 2);
    ((4 + sub) * step, (5 + sub) * step)
}

/// A counter with one writer: a relaxed load and store, no locked instruction.
#[derive(Default, Debug)]
struct Cell(AtomicU64);

impl Cell {
    #[inline]
    fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
    fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
}

#[derive(Debug)]
struct SideCells {
    classes: [Cell; 5],
    hist: [Cell; BUCKETS],
    sum_us: Cell,
}

impl Default for SideCells {
    fn default() -> Self {
        SideCells {
            classes: Default::default(),
            hist: std::array::from_fn(|_| Cell::default()),
            sum_us: Cell::default(),
        }
    }
}

/// One worker's counters for one release, both sides.
#[derive(Debug)]
pub struct ReleaseCounters {
    /// The release's id and the version it started at (a changed release starts over).
    pub id: String,
    pub since: u64,
    sides: [SideCells; 2],
}

impl ReleaseCounters {
    pub fn new(id: &str, since: u64) -> ReleaseCounters {
        ReleaseCounters {
            id: id.to_string(),
            since,
            sides: Default::default(),
        }
    }

    /// Counts one answer of `side`. Only the owning worker calls this.
    #[inline]
    pub fn count(&self, side: Side, status: u16, latency_us: u64) {
        let s = &self.sides[side as usize];
        let class = (status / 100).clamp(1, 5) as usize - 1;
        s.classes[class].add(1);
        s.hist[bucket_of(latency_us)].add(1);
        s.sum_us.add(latency_us);
    }

    /// Takes over `from`'s counts (the same release in the worker's previous table). Only the
    /// owning worker calls this, before it counts anything here.
    pub fn carry(&self, from: &ReleaseCounters) {
        for (a, b) in self.sides.iter().zip(&from.sides) {
            for (x, y) in a.classes.iter().zip(&b.classes) {
                x.set(y.get());
            }
            for (x, y) in a.hist.iter().zip(&b.hist) {
                x.set(y.get());
            }
            a.sum_us.set(b.sum_us.get());
        }
    }

    /// Adds this worker's counts to `into`.
    pub fn add_to(&self, into: &mut Totals) {
        for (t, s) in into.sides.iter_mut().zip(&self.sides) {
            for (x, y) in t.classes.iter_mut().zip(&s.classes) {
                *x += y.get();
            }
            for (x, y) in t.hist.iter_mut().zip(&s.hist) {
                *x += y.get();
            }
            t.sum_us += s.sum_us.get();
        }
    }
}

/// Counts of one side, as numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideTotals {
    /// Answers by status class 1xx..5xx.
    pub classes: [u64; 5],
    pub hist: [u64; BUCKETS],
    pub sum_us: u64,
}

impl Default for SideTotals {
    fn default() -> Self {
        SideTotals {
            classes: [0; 5],
            hist: [0; BUCKETS],
            sum_us: 0,
        }
    }
}

impl SideTotals {
    pub fn requests(&self) -> u64 {
        self.classes.iter().sum()
    }

    /// 5xx answers (the upstream's and the gateway's own: 502, 503, 504).
    pub fn errors(&self) -> u64 {
        self.classes[4]
    }

    /// Share of 5xx answers, 0 when there were none.
    pub fn error_rate(&self) -> f64 {
        match self.requests() {
            0 => 0.0,
            n => self.errors() as f64 / n as f64,
        }
    }

    /// The `q` quantile of latency in µs (interpolated within its bucket), `None` without
    /// data.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let n: u64 = self.hist.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * n as f64).max(1.0);
        let mut below = 0u64;
        for (i, &c) in self.hist.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= rank {
                let (lo, hi) = bucket_range(i);
                let within = (rank - below as f64) / c as f64;
                return Some(lo as f64 + within * (hi - lo) as f64);
            }
            below += c;
        }
        None
    }

    pub fn mean_us(&self) -> Option<f64> {
        match self.requests() {
            0 => None,
            n => Some(self.sum_us as f64 / n as f64),
        }
    }

    /// `self - earlier` (counts only grow while a release runs; a lower value reads as 0).
    pub fn since(&self, earlier: &SideTotals) -> SideTotals {
        let mut d = self.clone();
        for (x, y) in d.classes.iter_mut().zip(&earlier.classes) {
            *x = x.saturating_sub(*y);
        }
        for (x, y) in d.hist.iter_mut().zip(&earlier.hist) {
            *x = x.saturating_sub(*y);
        }
        d.sum_us = d.sum_us.saturating_sub(earlier.sum_us);
        d
    }

    /// The report of `GET /admin/v1/releases/{id}`.
    pub fn report(&self) -> SideReport {
        let ms = |us: Option<f64>| us.map(|v| (v / 10.0).round() / 100.0);
        SideReport {
            requests: self.requests(),
            errors: self.errors(),
            error_rate: (self.error_rate() * 10_000.0).round() / 10_000.0,
            classes: Classes {
                c1xx: self.classes[0],
                c2xx: self.classes[1],
                c3xx: self.classes[2],
                c4xx: self.classes[3],
                c5xx: self.classes[4],
            },
            latency_ms: Latency {
                mean: ms(self.mean_us()),
                p50: ms(self.quantile_us(0.50)),
                p90: ms(self.quantile_us(0.90)),
                p99: ms(self.quantile_us(0.99)),
            },
            histogram: self
                .hist
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, &count)| {
                    let (_, hi) = bucket_range(i);
                    Bucket { le_us: hi, count }
                })
                .collect(),
        }
    }
}

/// Both sides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub sides: [SideTotals; 2],
}

impl Totals {
    pub fn side(&self, side: Side) -> &SideTotals {
        &self.sides[side as usize]
    }

    pub fn since(&self, earlier: &Totals) -> Totals {
        Totals {
            sides: [
                self.sides[0].since(&earlier.sides[0]),
                self.sides[1].since(&earlier.sides[1]),
            ],
        }
    }
}

/// One side as the admin API reports it.
#[derive(Debug, Serialize)]
pub struct SideReport {
    pub requests: u64,
    /// 5xx answers.
    pub errors: u64,
    pub error_rate: f64,
    pub classes: Classes,
    pub latency_ms: Latency,
    /// Non-empty buckets: answers with latency up to `le_us` (and above the previous bucket).
    pub histogram: Vec<Bucket>,
}

#[derive(Debug, Serialize)]
pub struct Classes {
    #[serde(rename = "1xx")]
    pub c1xx: u64,
    #[serde(rename = "2xx")]
    pub c2xx: u64,
    #[serde(rename = "3xx")]
    pub c3xx: u64,
    #[serde(rename = "4xx")]
    pub c4xx: u64,
    #[serde(rename = "5xx")]
    pub c5xx: u64,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Bucket {
    pub le_us: u64,
    pub count: u64,
}
