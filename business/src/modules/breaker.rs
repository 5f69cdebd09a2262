//! circuit_breaker engine: stop calling an upstream (or route) that keeps failing, try it again
//! after a cool-down with a few probes, and resume when they succeed.
//!
//! States: `Closed` (calls flow; outcomes counted) → `Open` when, within the sliding window,
//! at least `min_requests` outcomes were seen and the share of failures reached
//! `failure_rate`, or when `consecutive_failures` failures came in a row. `Open` refuses every
//! call (the caller answers 503) until `open_ms` have passed; then `HalfOpen` lets
//! `half_open_probes` calls through. Any probe failing reopens at once; all of them succeeding
//! closes the breaker with a fresh window. A probe whose outcome never comes (the caller lost
//! the request) would wedge `HalfOpen`, so after another `open_ms` new probes are let through.
//!
//! The engine is pure: time is passed in (ms, monotonic) and the state is a plain struct
//! mutated through `&mut self`. The pipeline keeps one [`Breaker`] per route/upstream **per
//! core**: no sharing, no atomics, no locks. The price is that each core trips on its own
//! traffic (with N cores, a failing upstream is noticed after about `min_requests` failures
//! per core, and each core sends its own probes), which is the usual trade for share-nothing
//! workers and keeps the decision within a few nanoseconds.
//!
//! The window is ten buckets of `window_ms / 10` each, tagged with the bucket's epoch, so old
//! buckets expire by being out of date rather than by a sweep, and the state has a fixed size.

use conf::ConfigError;
use serde::Deserialize;

const BUCKETS: usize = 10;

/// The fields of a `circuit_breaker` module (`id` and `kind` are read by the caller).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Share of failed calls in the window that opens the breaker (0 < r <= 1; 0 = off).
    pub failure_rate: f64,
    /// Length of the sliding window, ms.
    pub window_ms: u64,
    /// Outcomes needed in the window before `failure_rate` applies.
    pub min_requests: u32,
    /// Failures in a row that open the breaker (0 = off).
    pub consecutive_failures: u32,
    /// Cool-down before probing, ms.
    pub open_ms: u64,
    /// Calls let through in half-open; all must succeed to close.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_rate: 0.5,
            window_ms: 10_000,
            min_requests: 20,
            consecutive_failures: 5,
            open_ms: 30_000,
            half_open_probes: 1,
        }
    }
}

/// The validated policy, copied into each per-core [`Breaker`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    failure_rate: f64,
    bucket_ms: u64,
    min_requests: u32,
    consecutive_failures: u32,
    open_ms: u64,
    probes: u32,
}

impl BreakerPolicy {
    pub fn compile(cfg: &BreakerConfig) -> Result<BreakerPolicy, ConfigError> {
        if !(cfg.failure_rate.is_finite() && (0.0..=1.0).contains(&cfg.failure_rate)) {
            return Err(ConfigError::new("failure_rate", "must be between 0 and 1"));
        }
        if cfg.failure_rate == 0.0 && cfg.consecutive_failures == 0 {
            return Err(ConfigError::new(
                "failure_rate",
                "failure_rate and consecutive_failures are both off; the breaker could never open",
            ));
        }
        if cfg.window_ms < BUCKETS as u64 {
            return Err(ConfigError::new(
                "window_ms",
                format!("must be at least {BUCKETS}"),
            ));
        }
        if cfg.open_ms == 0 {
            return Err(ConfigError::new("open_ms", "must be at least 1"));
        }
        if cfg.half_open_probes == 0 {
            return Err(ConfigError::new("half_open_probes", "must be at least 1"));
        }
        Ok(BreakerPolicy {
            failure_rate: cfg.failure_rate,
            bucket_ms: cfg.window_ms / BUCKETS as u64,
            min_requests: cfg.min_requests.max(1),
            consecutive_failures: cfg.consecutive_failures,
            open_ms: cfg.open_ms,
            probes: cfg.half_open_probes,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    epoch: u64,
    total: u32,
    failures: u32,
}

/// One breaker (one route/upstream on one core).
#[derive(Debug, Clone)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: BreakerState,
    window: [Bucket; BUCKETS],
    consecutive: u32,
    /// When the breaker opened, or when the current round of probes started.
    since_ms: u64,
    probes_sent: u32,
    probes_ok: u32,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Breaker {
        Breaker {
            policy,
            state: BreakerState::Closed,
            window: [Bucket::default(); BUCKETS],
            consecutive: 0,
            since_ms: 0,
            probes_sent: 0,
            probes_ok: 0,
        }
    }

    /// The state as of the last call (an `Open` breaker whose cool-down has passed turns
    /// `HalfOpen` on the next [`allow`](Self::allow)).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// May a call go out at `now_ms`? In half-open, a `true` is a probe whose outcome the
    /// caller must [`record`](Self::record).
    pub fn allow(&mut self, now_ms: u64) -> bool {
        if self.state == BreakerState::Open {
            if now_ms < self.since_ms.saturating_add(self.policy.open_ms) {
                return false;
            }
            self.start_probing(now_ms);
        }
        if self.state == BreakerState::HalfOpen {
            if self.probes_sent >= self.policy.probes {
                // Probes whose outcome never came must not wedge the breaker.
                if now_ms < self.since_ms.saturating_add(self.policy.open_ms) {
                    return false;
                }
                self.start_probing(now_ms);
            }
            self.probes_sent += 1;
        }
        true
    }

    /// Records the outcome of a call that [`allow`](Self::allow) let through.
    pub fn record(&mut self, now_ms: u64, ok: bool) {
        match self.state {
            BreakerState::Closed => {
                self.count(now_ms, ok);
                self.consecutive = if ok { 0 } else { self.consecutive + 1 };
                if self.should_trip(now_ms) {
                    self.open(now_ms);
                }
            }
            BreakerState::HalfOpen if !ok => self.open(now_ms),
            BreakerState::HalfOpen => {
                self.probes_ok += 1;
                if self.probes_ok >= self.policy.probes {
                    self.close();
                }
            }
            // Late outcomes of calls sent before the breaker opened say nothing new.
            BreakerState::Open => {}
        }
    }

    fn should_trip(&self, now_ms: u64) -> bool {
        let p = &self.policy;
        if p.consecutive_failures > 0 && self.consecutive >= p.consecutive_failures {
            return true;
        }
        if p.failure_rate == 0.0 {
            return false;
        }
        let epoch = now_ms / p.bucket_ms;
        let (total, failures) = self
            .window
            .iter()
            .filter(|b| b.epoch + BUCKETS as u64 > epoch && b.epoch <= epoch)
            .fold((0u64, 0u64), |(t, f), b| {
                (t + u64::from(b.total), f + u64::from(b.failures))
            });
        total >= u64::from(p.min_requests) && failures as f64 >= p.failure_rate * total as f64
    }

    fn count(&mut self, now_ms: u64, ok: bool) {
        let epoch = now_ms / self.policy.bucket_ms;
        let b = &mut self.window[(epoch % BUCKETS as u64) as usize];
        if b.epoch != epoch {
            *b = Bucket {
                epoch,
                total: 0,
                failures: 0,
            };
        }
        b.total = b.total.saturating_add(1);
        b.failures = b.failures.saturating_add(u32::from(!ok));
    }

    fn open(&mut self, now_ms: u64) {
        self.state = BreakerState::Open;
        self.since_ms = now_ms;
    }

    fn start_probing(&mut self, now_ms: u64) {
        self.state = BreakerState::HalfOpen;
        self.since_ms = now_ms;
        self.probes_sent = 0;
        self.probes_ok = 0;
    }

    fn close(&mut self) {
        self.state = BreakerState::Closed;
        self.window = [Bucket::default(); BUCKETS];
        self.consecutive = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(f: impl FnOnce(&mut BreakerConfig)) -> Breaker {
        let mut cfg = BreakerConfig::default();
        f(&mut cfg);
        Breaker::new(BreakerPolicy::compile(&cfg).unwrap())
    }

    #[test]
    fn consecutive_failures_open_it() {
        let mut b = breaker(|c| c.failure_rate = 0.0);
        for t in 0..4 {
            assert!(b.allow(t));
            b.record(t, false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.record(4, true); // a success resets the run
        for t in 5..9 {
            b.record(t, false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.record(9, false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow(10));
    }

    #[test]
    fn failure_rate_needs_min_requests() {
        let mut b = breaker(|c| {
            c.consecutive_failures = 0;
            c.min_requests = 10;
            c.failure_rate = 0.5;
        });
        // 4 failures of 4: rate 100 % but too few requests.
        for t in 0..4 {
            b.record(t, false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        for t in 4..9 {
            b.record(t, true);
        }
        assert_eq!(b.state(), BreakerState::Closed); // 4 of 9
        b.record(9, false); // 5 of 10 = 50 %
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let mut b = breaker(|c| {
            c.consecutive_failures = 0;
            c.min_requests = 4;
            c.window_ms = 1000;
        });
        b.record(0, false);
        b.record(10, false);
        b.record(20, false);
        // 1.5 s later the three failures are out of the window: 1 failure of 2 successes + 1.
        b.record(1500, true);
        b.record(1510, true);
        b.record(1520, true);
        b.record(1530, false);
        assert_eq!(b.state(), BreakerState::Closed);
        b.record(1540, false); // 2 of 5 = 40 %
        assert_eq!(b.state(), BreakerState::Closed);
        b.record(1550, false); // 3 of 6 = 50 %
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn cool_down_then_probe_success_closes() {
        let mut b = breaker(|c| {
            c.consecutive_failures = 1;
            c.open_ms = 100;
        });
        b.record(0, false);
        assert!(!b.allow(50));
        assert!(!b.allow(99));
        assert!(b.allow(100));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.allow(101), "only one probe");
        b.record(120, true);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow(121));
        // The old window was cleared: one failure trips again only through the threshold.
        b.record(122, true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn probe_failure_reopens_for_a_full_cool_down() {
        let mut b = breaker(|c| {
            c.consecutive_failures = 1;
            c.open_ms = 100;
        });
        b.record(0, false);
        assert!(b.allow(100));
        b.record(110, false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow(150));
        assert!(!b.allow(209));
        assert!(b.allow(210));
    }

    #[test]
    fn several_probes_must_all_succeed() {
        let mut b = breaker(|c| {
            c.consecutive_failures = 1;
            c.open_ms = 10;
            c.half_open_probes = 3;
        });
        b.record(0, false);
        assert!(b.allow(10) && b.allow(10) && b.allow(10));
        assert!(!b.allow(10));
        b.record(11, true);
        b.record(11, true);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.record(12, true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn lost_probes_do_not_wedge_half_open() {
        let mut b = breaker(|c| {
            c.consecutive_failures = 1;
            c.open_ms = 100;
        });
        b.record(0, false);
        assert!(b.allow(100)); // its outcome never comes
        assert!(!b.allow(150));
        assert!(b.allow(200));
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn late_outcomes_while_open_are_ignored() {
        let mut b = breaker(|c| {
            c.consecutive_failures = 1;
            c.open_ms = 100;
        });
        b.record(0, false);
        b.record(5, true);
        b.record(6, false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow(99));
        assert!(b.allow(100));
    }

    #[test]
    fn config_validation() {
        let bad = |f: fn(&mut BreakerConfig)| {
            let mut c = BreakerConfig::default();
            f(&mut c);
            BreakerPolicy::compile(&c).unwrap_err().path
        };
        assert_eq!(bad(|c| c.failure_rate = 1.5), "failure_rate");
        assert_eq!(bad(|c| c.failure_rate = f64::NAN), "failure_rate");
        assert_eq!(
            bad(|c| {
                c.failure_rate = 0.0;
                c.consecutive_failures = 0;
            }),
            "failure_rate"
        );
        assert_eq!(bad(|c| c.window_ms = 5), "window_ms");
        assert_eq!(bad(|c| c.open_ms = 0), "open_ms");
        assert_eq!(bad(|c| c.half_open_probes = 0), "half_open_probes");
        assert!(toml::from_str::<BreakerConfig>("cooldown = 3").is_err());
    }

    #[test]
    fn decisions_do_not_allocate() {
        let mut b = breaker(|c| c.consecutive_failures = 3);
        let (n, _) = crate::modules::ip_list::tests::allocations_during(|| {
            for t in 0..1000 {
                if b.allow(t) {
                    b.record(t, t % 3 != 0);
                }
            }
        });
        assert_eq!(n, 0);
    }

    #[test]
    fn documented_example_compiles() {
        let cfg: BreakerConfig = crate::modules::ip_list::tests::doc_example(
            "circuit_breaker",
            include_str!("../../../docs/modules/circuit_breaker.md"),
        );
        let p = BreakerPolicy::compile(&cfg).unwrap();
        assert_eq!(p.probes, 2);
    }
}
