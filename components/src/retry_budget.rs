//! The retry budget of one upstream: retries may be at most `percent` of the requests of the
//! last [`WINDOW_SECS`] seconds, plus `min_per_sec` for each of those seconds, so that in an
//! outage retries add a bounded share of load instead of multiplying it.
//!
//! Ten one-second buckets of atomics, shared by every core like the rest of the upstream's
//! health table: a request adds one to its second's bucket (one relaxed add); a retry decision
//! sums the buckets. A bucket found holding an old second is reset by whoever sees it first;
//! a count racing with that reset may be lost, which errs on the side of fewer retries.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

pub const WINDOW_SECS: u64 = 10;

#[derive(Debug, Default)]
struct Bucket {
    /// The second (`clock_ms / 1000`) the counts are for.
    sec: AtomicU64,
    requests: AtomicU32,
    retries: AtomicU32,
}

#[derive(Debug, Default)]
pub struct RetryBudget {
    buckets: [Bucket; WINDOW_SECS as usize],
}

impl RetryBudget {
    fn bucket(&self, now_ms: u64) -> &Bucket {
        let sec = now_ms / 1000;
        let b = &self.buckets[(sec % WINDOW_SECS) as usize];
        let old = b.sec.load(Relaxed);
        if old != sec && b.sec.compare_exchange(old, sec, Relaxed, Relaxed).is_ok() {
            b.requests.store(0, Relaxed);
            b.retries.store(0, Relaxed);
        }
        b
    }

    /// A client request (not a retry) went to the upstream.
    pub fn on_request(&self, now_ms: u64) {
        self.bucket(now_ms).requests.fetch_add(1, Relaxed);
    }

    /// Takes one retry from the budget if there is room.
    pub fn try_retry(&self, now_ms: u64, percent: u32, min_per_sec: u32) -> bool {
        let sec = now_ms / 1000;
        let (mut requests, mut retries) = (0u64, 0u64);
        for b in &self.buckets {
            if sec.saturating_sub(b.sec.load(Relaxed)) < WINDOW_SECS {
                requests += b.requests.load(Relaxed) as u64;
                retries += b.retries.load(Relaxed) as u64;
            }
        }
        let allowed = requests * percent as u64 / 100 + min_per_sec as u64 * WINDOW_SECS;
        if retries >= allowed {
            return false;
        }
        self.bucket(now_ms).retries.fetch_add(1, Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_within_the_share_plus_the_floor() {
        let b = RetryBudget::default();
        let now = 50_000;
        for _ in 0..1000 {
            b.on_request(now);
        }
        let granted = (0..1000).filter(|_| b.try_retry(now, 20, 3)).count();
        assert_eq!(granted, 200 + 30);
    }

    #[test]
    fn old_seconds_fall_out_of_the_window() {
        let b = RetryBudget::default();
        for _ in 0..100 {
            b.on_request(1_000);
        }
        assert_eq!((0..100).filter(|_| b.try_retry(1_000, 10, 0)).count(), 10);
        // Still in the window nine seconds on; out of it eleven seconds on.
        assert!(!b.try_retry(10_999, 10, 0));
        assert!(!b.try_retry(12_000, 10, 0));
        assert_eq!((0..5).filter(|_| b.try_retry(12_000, 10, 1)).count(), 5);
    }
}
