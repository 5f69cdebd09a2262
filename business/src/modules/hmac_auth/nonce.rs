//! The replay cache of hmac_auth: remembers each `(key id, nonce)` until the request's `Date`
//! could no longer pass the clock-skew check, so a captured request cannot be sent again.
//!
//! Shared by every core without locks: a fixed table of `AtomicU64` slots grouped in buckets of
//! eight (one cache line). A slot packs a 40-bit fingerprint of a keyed SipHash of the nonce with
//! the low 24 bits of its expiry second; zero is empty, and an expired slot counts as free, so
//! there is no sweeper. Memory is exactly `8 bytes x capacity`, allocated once at compile time.
//!
//! Insertion claims the first free slot of the bucket with a compare-and-swap of the exact value
//! it saw. Two requests racing with the same nonce scan the same bucket and so aim at the same
//! first free slot: one swap wins, the loser rescans and finds the winner's fingerprint.
//!
//! When a bucket has no free slot, the policy decides: `reject` (default) refuses the request
//! (fail closed, replay protection never weakens), `evict_oldest` overwrites the entry closest
//! to expiry (availability first; that one nonce could then be replayed until its date goes
//! stale). Fingerprints are 40 bits and keyed per process, so a false "replayed" needs a
//! collision within one 8-slot bucket: about 8 in 2^40 per request.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::modules::key_auth::common::AuthError;

const BUCKET: usize = 8;
const TIME_BITS: u32 = 24;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
/// An expiry further than this ahead (mod 2^24 s, ~97 days) is read as "in the past"; the
/// configured skew is capped far below it.
const HORIZON: u64 = 1 << (TIME_BITS - 1);
/// Compare-and-swap attempts before giving up under contention (fail closed).
const ATTEMPTS: usize = 4;

/// What to do when a nonce's bucket is full of live entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    Reject,
    EvictOldest,
}

/// A bounded, lock-free set of recently seen nonces.
#[derive(Debug)]
pub struct NonceCache {
    slots: Box<[AtomicU64]>,
    bucket_mask: usize,
    hasher: RandomState,
    when_full: WhenFull,
}

impl NonceCache {
    /// A cache of at least `max_entries` slots (rounded up to a power of two, at least one
    /// bucket).
    pub fn new(max_entries: usize, when_full: WhenFull) -> Self {
        let capacity = max_entries.max(BUCKET).next_power_of_two();
        let slots = (0..capacity).map(|_| AtomicU64::new(0)).collect();
        Self {
            slots,
            bucket_mask: capacity / BUCKET - 1,
            hasher: RandomState::new(),
            when_full,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn when_full(&self) -> WhenFull {
        self.when_full
    }

    /// Records the nonce until `expires` (unix seconds), or refuses it as `Replayed` when it is
    /// live already, or `ReplayCacheFull` per the policy.
    pub fn check_and_insert(
        &self,
        key_id: &[u8],
        nonce: &[u8],
        now: u64,
        expires: u64,
    ) -> Result<(), AuthError> {
        let h = self.hasher.hash_one((key_id, nonce));
        // Bucket from the low bits, fingerprint from the high 40: independent parts of the hash.
        // The top bit is forced on so a stored value is never 0 (empty).
        let fingerprint = (h >> TIME_BITS) | 1 << (63 - TIME_BITS);
        let new = fingerprint << TIME_BITS | (expires & TIME_MASK);
        let start = (h as usize & self.bucket_mask) * BUCKET;
        let bucket = self
            .slots
            .get(start..start + BUCKET)
            .ok_or(AuthError::ReplayCacheFull)?;
        let now = now & TIME_MASK;

        for _ in 0..ATTEMPTS {
            let mut free = None;
            let mut oldest: Option<(usize, u64, u64)> = None;
            for (i, slot) in bucket.iter().enumerate() {
                let v = slot.load(Ordering::Acquire);
                match remaining(v, now) {
                    Some(left) => {
                        if v >> TIME_BITS == fingerprint {
                            return Err(AuthError::Replayed);
                        }
                        if oldest.is_none_or(|(_, _, l)| left < l) {
                            oldest = Some((i, v, left));
                        }
                    }
                    None if free.is_none() => free = Some((i, v)),
                    None => {}
                }
            }
            let (i, seen) = match (free, oldest) {
                (Some(f), _) => f,
                (None, Some((i, v, _))) if self.when_full == WhenFull::EvictOldest => (i, v),
                _ => return Err(AuthError::ReplayCacheFull),
            };
            let Some(slot) = bucket.get(i) else { break };
            if slot
                .compare_exchange(seen, new, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Ok(());
            }
        }
        Err(AuthError::ReplayCacheFull)
    }
}

/// Seconds a slot value stays live after `now`, or `None` when empty or expired.
fn remaining(v: u64, now: u64) -> Option<u64> {
    if v == 0 {
        return None;
    }
    let left = (v & TIME_MASK).wrapping_sub(now) & TIME_MASK;
    (left != 0 && left < HORIZON).then_some(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn replays_are_caught_until_expiry() {
        let c = NonceCache::new(1024, WhenFull::Reject);
        assert_eq!(c.capacity(), 1024);
        assert!(c.check_and_insert(b"k", b"n1", 1000, 1300).is_ok());
        assert_eq!(
            c.check_and_insert(b"k", b"n1", 1200, 1500),
            Err(AuthError::Replayed)
        );
        assert!(
            c.check_and_insert(b"other", b"n1", 1200, 1500).is_ok(),
            "per key id"
        );
        assert!(
            c.check_and_insert(b"k", b"n1", 1300, 1600).is_ok(),
            "expired at 1300"
        );
    }

    #[test]
    fn full_buckets_follow_the_policy() {
        // One bucket only, so the ninth live nonce finds no room.
        let reject = NonceCache::new(1, WhenFull::Reject);
        let evict = NonceCache::new(1, WhenFull::EvictOldest);
        for i in 0..8u64 {
            let n = i.to_be_bytes();
            assert!(reject.check_and_insert(b"k", &n, 0, 100 + i).is_ok());
            assert!(evict.check_and_insert(b"k", &n, 0, 100 + i).is_ok());
        }
        assert_eq!(
            reject.check_and_insert(b"k", b"x", 0, 500),
            Err(AuthError::ReplayCacheFull)
        );
        assert!(evict.check_and_insert(b"k", b"x", 0, 500).is_ok());
        // The oldest (expiry 100) was evicted; the others are still remembered.
        assert!(evict
            .check_and_insert(b"k", &0u64.to_be_bytes(), 0, 100)
            .is_ok());
        assert_eq!(
            evict.check_and_insert(b"k", &7u64.to_be_bytes(), 0, 107),
            Err(AuthError::Replayed)
        );
        // Once time passes, slots free themselves.
        assert!(reject.check_and_insert(b"k", b"x", 200, 500).is_ok());
    }

    #[test]
    fn time_wraps_cleanly() {
        let c = NonceCache::new(64, WhenFull::Reject);
        let now = (1 << 24) - 10; // expiry wraps past the 24-bit boundary
        assert!(c.check_and_insert(b"k", b"n", now, now + 100).is_ok());
        assert_eq!(
            c.check_and_insert(b"k", b"n", now + 50, now + 150),
            Err(AuthError::Replayed)
        );
        assert!(c.check_and_insert(b"k", b"n", now + 100, now + 200).is_ok());
    }

    #[test]
    fn racing_threads_accept_a_nonce_once() {
        let c = Arc::new(NonceCache::new(4096, WhenFull::Reject));
        for round in 0..50u64 {
            let wins = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let (c, wins) = (c.clone(), wins.clone());
                    std::thread::spawn(move || {
                        if c.check_and_insert(b"k", &round.to_be_bytes(), 0, 60)
                            .is_ok()
                        {
                            wins.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(wins.load(Ordering::Relaxed), 1, "round {round}");
        }
    }
}
