//! rate_limit engine: GCRA (the leaky bucket as a single timestamp) over a fixed-size,
//! lock-free table shared by every worker core, so a configured rate holds for the whole node.
//!
//! # The algorithm
//!
//! Each key has a theoretical arrival time (TAT). With `T = 1/rate` and a tolerance
//! `τ = burst × T`, a request at `now` computes `new = max(TAT, now) + T`; it passes when
//! `new - now <= τ` and then stores `new`, else it is limited and must retry after
//! `new - τ - now`. A fresh key therefore passes `burst` requests at once and then one every
//! `T`; over a span `D` at most `burst + D × rate` pass. A limited request changes nothing.
//!
//! # The shared table
//!
//! One table per module version, reached through an `Arc` by every core: buckets of eight
//! `AtomicU64` slots, one cache line each. A slot packs a 22-bit tag (high bits of the key's
//! hash; 0 = empty) and the low 42 bits of the TAT in ticks. The key's hash (SipHash with a
//! per-process random key, so clients cannot aim collisions at one bucket) picks the bucket;
//! the tag finds the slot. An update is one compare-and-swap of the slot word; a lost race
//! rescans and recomputes, so concurrent requests for one key from several cores are decided
//! exactly as if they were serialised. No locks, no allocation after compile.
//!
//! Memory is fixed at `table_slots × 8` bytes whatever the traffic. A new key takes, in its
//! bucket, an empty slot or one whose bucket is full again (TAT in the past: its state is the
//! same as an absent key's, so nothing is lost), else the slot closest to being full again
//! (smallest TAT). Under a flood of distinct keys larger than the table, that last case resets
//! the least-limited keys of the bucket early: the limiter then errs towards admitting, never
//! towards refusing a key that did nothing. Size the table for the number of keys active
//! within `burst × T`.
//!
//! # Accuracy and its limits
//!
//! - Exact GCRA per key as long as the key keeps its slot (see above).
//! - Two keys with the same bucket and tag (odds 1 in 4 million per pair sharing a bucket)
//!   share one budget.
//! - Two cores inserting the same new key in the same instant may, in a rare interleaving,
//!   create two slots for it; the first one found is used from then on.
//! - Times are ticks of `2^s` ns, `s` the smallest shift that keeps `τ` under 2^40 ticks
//!   (`s = 0`, 1 ns ticks, unless `burst / rate` exceeds about 18 minutes). Only 42 bits of
//!   the TAT are stored, so a TAT is believed only when it lies in `[now, now + τ + 1 s]`;
//!   anything else is taken as "in the past". The extra second absorbs a `now` read late (a
//!   core preempted between reading the clock and deciding: without it, a late `now` would
//!   see a recent TAT as stale and move it backwards, admitting extra requests). A key idle
//!   for a multiple of 2^42 ticks (73 min at 1 ns ticks), give or take τ + 1 s, can thus look
//!   recently used and be limited for at most τ + 1 s: rare and bounded.
//! - After too many lost races in a row (64, unreachable in practice) the request passes.
//!
//! Time is passed in (`now_ns`, a monotonic clock common to all cores), which makes the engine
//! pure and lets tests run on a simulated clock.

use conf::ConfigError;
use serde::Deserialize;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Default table size: 64 Ki slots, 512 KiB; enough for ~50,000 keys active at once.
pub const DEFAULT_TABLE_SLOTS: usize = 1 << 16;
const MIN_TABLE_SLOTS: usize = 64;
const MAX_TABLE_SLOTS: usize = 1 << 26;
/// Fastest rate accepted: a 100 ns interval keeps the rounding error of `T` under 0.5 %.
const MAX_RATE: f64 = 1e7;
const MAX_BURST: u64 = 1_000_000_000;

const SLOTS_PER_BUCKET: usize = 8;
const TIME_BITS: u32 = 42;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
/// Largest τ in ticks, far below 2^42 so stale TATs are told from fresh ones.
const MAX_TOLERANCE_TICKS: u64 = 1 << 40;
const SKEW_NS: u64 = 1_000_000_000;
const MAX_ATTEMPTS: usize = 64;

/// What a request is counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// The client address (after the trusted-proxy rule).
    #[default]
    Ip,
    /// The matched route: one budget for all its callers.
    Route,
    /// The authenticated consumer id.
    Consumer,
    /// The value of the header named by `header`.
    Header,
}

/// What to do with a request whose key is absent (no consumer, no such header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MissingKey {
    /// Every keyless request shares one budget (safe: anonymous traffic stays bounded).
    #[default]
    Shared,
    /// Keyless requests are not limited by this module.
    Allow,
}

/// The fields of a `rate_limit` module (`id` and `kind` are read by the caller).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Sustained requests per second per key (> 0, fractions allowed: 0.5 = one per 2 s).
    pub rate: f64,
    /// Requests a fresh key may make at once (≥ 1).
    pub burst: u64,
    pub key: KeyKind,
    /// Header whose value is the key, when `key = "header"`.
    pub header: Option<String>,
    pub on_missing_key: MissingKey,
    /// Slots of the shared table (rounded up to a power of two).
    pub table_slots: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            rate: 0.0,
            burst: 1,
            key: KeyKind::Ip,
            header: None,
            on_missing_key: MissingKey::Shared,
            table_slots: DEFAULT_TABLE_SLOTS,
        }
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allow,
    /// Answer 429 with `Retry-After: retry_after_secs` (at least 1).
    Limited {
        retry_after_secs: u64,
    },
}

#[repr(align(64))]
struct Bucket([AtomicU64; SLOTS_PER_BUCKET]);

/// The node-wide state of one limiter: shared by all cores, fixed size.
struct Table {
    buckets: Box<[Bucket]>,
    hasher: RandomState,
    tick_shift: u32,
}

/// A compiled `rate_limit` module; cheap to share (`Arc` inside), safe to call from any core.
#[derive(Clone)]
pub struct RateLimiter {
    table: Arc<Table>,
    interval: u64,
    tolerance: u64,
    ahead_limit: u64,
    key: KeyKind,
    header: Option<Box<str>>,
    on_missing: MissingKey,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("interval_ticks", &self.interval)
            .field("tolerance_ticks", &self.tolerance)
            .field("slots", &self.capacity())
            .finish()
    }
}

impl RateLimiter {
    /// Validates the config and allocates a fresh table.
    pub fn compile(cfg: &RateLimitConfig) -> Result<RateLimiter, ConfigError> {
        Self::build(cfg, None)
    }

    /// Like [`compile`](Self::compile), but keeps `prev`'s table (and so every key's state)
    /// when its size and time unit fit the new config, so a config change does not hand every
    /// client a fresh burst.
    pub fn compile_reusing(
        cfg: &RateLimitConfig,
        prev: &RateLimiter,
    ) -> Result<RateLimiter, ConfigError> {
        Self::build(cfg, Some(prev))
    }

    fn build(
        cfg: &RateLimitConfig,
        prev: Option<&RateLimiter>,
    ) -> Result<RateLimiter, ConfigError> {
        if !(cfg.rate.is_finite() && cfg.rate > 0.0 && cfg.rate <= MAX_RATE) {
            return Err(ConfigError::new(
                "rate",
                format!("must be > 0 and <= {MAX_RATE}"),
            ));
        }
        if cfg.burst == 0 || cfg.burst > MAX_BURST {
            return Err(ConfigError::new(
                "burst",
                format!("must be 1..={MAX_BURST}"),
            ));
        }
        if !(MIN_TABLE_SLOTS..=MAX_TABLE_SLOTS).contains(&cfg.table_slots) {
            return Err(ConfigError::new(
                "table_slots",
                format!("must be {MIN_TABLE_SLOTS}..={MAX_TABLE_SLOTS}"),
            ));
        }
        let header = match (cfg.key, cfg.header.as_deref()) {
            (KeyKind::Header, Some(h)) if !h.is_empty() && h.bytes().all(is_token_byte) => {
                Some(h.into())
            }
            (KeyKind::Header, _) => {
                return Err(ConfigError::new(
                    "header",
                    "a header name is required when key = \"header\"",
                ))
            }
            (_, Some(_)) => {
                return Err(ConfigError::new(
                    "header",
                    "only used when key = \"header\"",
                ))
            }
            (_, None) => None,
        };
        let interval_ns = 1e9 / cfg.rate;
        let tolerance_ns = interval_ns * cfg.burst as f64;
        let mut shift = 0;
        while tolerance_ns / f64::from(1u32 << shift) >= MAX_TOLERANCE_TICKS as f64 {
            shift += 1;
        }
        let unit = f64::from(1u32 << shift);
        let interval = ((interval_ns / unit).round() as u64).max(1);
        let tolerance = interval.saturating_mul(cfg.burst);
        let slots = cfg.table_slots.next_power_of_two();
        let mut ahead_limit = tolerance + (SKEW_NS >> shift);
        let table = match prev {
            Some(p) if p.table.tick_shift == shift && p.capacity() == slots => {
                // TATs written under the old tolerance must still be believed.
                ahead_limit = ahead_limit.max(p.ahead_limit);
                p.table.clone()
            }
            _ => Arc::new(Table::new(slots / SLOTS_PER_BUCKET, shift)),
        };
        Ok(RateLimiter {
            table,
            interval,
            tolerance,
            ahead_limit,
            key: cfg.key,
            header,
            on_missing: cfg.on_missing_key,
        })
    }

    /// What the caller must extract as the key.
    pub fn key_kind(&self) -> KeyKind {
        self.key
    }

    /// The header to read when [`key_kind`](Self::key_kind) is `Header`.
    pub fn header_name(&self) -> Option<&str> {
        self.header.as_deref()
    }

    /// Decides for a request with key `key` (`None`: absent) at `now_ns` (monotonic, shared
    /// by all cores). Lock-free, allocation-free.
    pub fn check(&self, key: Option<&[u8]>, now_ns: u64) -> RateDecision {
        match (key, self.on_missing) {
            (Some(k), _) => self.check_hash(self.table.hasher.hash_one(k), now_ns),
            (None, MissingKey::Allow) => RateDecision::Allow,
            // A hash no real key produces in practice stands for "no key".
            (None, MissingKey::Shared) => self.check_hash(self.table.hasher.hash_one(()), now_ns),
        }
    }

    fn check_hash(&self, hash: u64, now_ns: u64) -> RateDecision {
        let now = now_ns >> self.table.tick_shift;
        let tag = match hash >> TIME_BITS {
            0 => 1,
            t => t,
        };
        let index = (hash as usize) & (self.table.buckets.len() - 1);
        let Some(bucket) = self.table.buckets.get(index) else {
            return RateDecision::Allow;
        };
        for _ in 0..MAX_ATTEMPTS {
            // Find the key, remembering the best slot to take if it is absent: the first
            // empty or idle slot, else the one with the smallest TAT.
            let mut victim: Option<(usize, u64, u64)> = None;
            let mut found = None;
            for (i, slot) in bucket.0.iter().enumerate() {
                let word = slot.load(Ordering::Relaxed);
                if word >> TIME_BITS == tag {
                    found = Some((i, word));
                    break;
                }
                let ahead = if word == 0 { 0 } else { self.ahead(word, now) };
                if victim.is_none_or(|(_, _, best)| ahead < best) {
                    victim = Some((i, word, ahead));
                }
            }
            let (i, old, ahead) = match found {
                Some((i, word)) => (i, word, self.ahead(word, now)),
                None => match victim {
                    Some((i, word, _)) => (i, word, 0),
                    None => return RateDecision::Allow,
                },
            };
            let new_ahead = ahead + self.interval;
            if new_ahead > self.tolerance {
                let wait_ticks = new_ahead - self.tolerance;
                let wait_ns = wait_ticks.saturating_mul(1 << self.table.tick_shift);
                return RateDecision::Limited {
                    retry_after_secs: wait_ns.div_ceil(1_000_000_000).max(1),
                };
            }
            let new = (tag << TIME_BITS) | (now.wrapping_add(new_ahead) & TIME_MASK);
            if bucket.0[i]
                .compare_exchange(old, new, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return RateDecision::Allow;
            }
        }
        RateDecision::Allow
    }

    /// How far the slot's TAT is ahead of `now`, 0 when it is in the past (or unbelievable).
    fn ahead(&self, word: u64, now: u64) -> u64 {
        let ahead = (word & TIME_MASK).wrapping_sub(now) & TIME_MASK;
        if ahead <= self.ahead_limit {
            ahead
        } else {
            0
        }
    }

    /// Slots in the table (fixed for the table's life).
    pub fn capacity(&self) -> usize {
        self.table.buckets.len() * SLOTS_PER_BUCKET
    }

    /// Slots holding a key whose bucket is not full again at `now_ns`: a gauge for metrics
    /// (a full table means `table_slots` is too small for the traffic). Scans the table.
    pub fn active_keys(&self, now_ns: u64) -> usize {
        let now = now_ns >> self.table.tick_shift;
        self.table
            .buckets
            .iter()
            .flat_map(|b| b.0.iter())
            .filter(|s| {
                let w = s.load(Ordering::Relaxed);
                w != 0 && self.ahead(w, now) > 0
            })
            .count()
    }
}

impl Table {
    fn new(buckets: usize, tick_shift: u32) -> Table {
        Table {
            buckets: (0..buckets)
                .map(|_| Bucket(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            hasher: RandomState::new(),
            tick_shift,
        }
    }
}

/// The key bytes of a client address, written into `buf` (no allocation); IPv4-mapped IPv6
/// addresses give the IPv4 key.
pub fn ip_key(ip: IpAddr, buf: &mut [u8; 16]) -> &[u8] {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            buf[..4].copy_from_slice(&v4.octets());
            &buf[..4]
        }
        IpAddr::V6(v6) => {
            *buf = v6.octets();
            &buf[..]
        }
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests;
