//! Unit tests of the rate_limit engine: single-thread exactness, retry hints, a multi-thread
//! run on a simulated clock, bounded memory under a million keys, config validation.

use super::*;
use std::sync::atomic::AtomicU64;
use std::thread;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

fn limiter(rate: f64, burst: u64) -> RateLimiter {
    RateLimiter::compile(&RateLimitConfig {
        rate,
        burst,
        ..RateLimitConfig::default()
    })
    .unwrap()
}

fn allowed(d: RateDecision) -> bool {
    d == RateDecision::Allow
}

#[test]
fn burst_then_steady_rate_exactly() {
    let l = limiter(10.0, 5);
    let k = Some(&b"client"[..]);
    let t0 = 1000 * SEC;
    for _ in 0..5 {
        assert!(allowed(l.check(k, t0)));
    }
    assert_eq!(
        l.check(k, t0),
        RateDecision::Limited {
            retry_after_secs: 1
        }
    );
    // One interval later exactly one more passes.
    assert!(!allowed(l.check(k, t0 + 99 * MS)));
    assert!(allowed(l.check(k, t0 + 100 * MS)));
    assert!(!allowed(l.check(k, t0 + 100 * MS)));
    // Over 10 s of one attempt per millisecond: 10/s pass, exactly.
    let mut n = 0;
    for ms in 101..=10_100 {
        n += allowed(l.check(k, t0 + ms * MS)) as u32;
    }
    assert_eq!(n, 100);
}

#[test]
fn keys_are_independent() {
    let l = limiter(1.0, 1);
    assert!(allowed(l.check(Some(b"a"), SEC)));
    assert!(!allowed(l.check(Some(b"a"), SEC)));
    assert!(allowed(l.check(Some(b"b"), SEC)));
}

#[test]
fn idle_key_refills_to_full_burst_only() {
    let l = limiter(2.0, 3);
    let k = Some(&b"k"[..]);
    for _ in 0..3 {
        assert!(allowed(l.check(k, SEC)));
    }
    // A long pause gives back the burst, not more.
    let later = 3600 * SEC;
    for _ in 0..3 {
        assert!(allowed(l.check(k, later)));
    }
    assert!(!allowed(l.check(k, later)));
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    let l = limiter(0.1, 1); // one per 10 s
    let k = Some(&b"slow"[..]);
    assert!(allowed(l.check(k, SEC)));
    assert_eq!(
        l.check(k, SEC),
        RateDecision::Limited {
            retry_after_secs: 10
        }
    );
    assert_eq!(
        l.check(k, SEC + 500 * MS),
        RateDecision::Limited {
            retry_after_secs: 10
        }
    );
    assert_eq!(
        l.check(k, 2 * SEC),
        RateDecision::Limited {
            retry_after_secs: 9
        }
    );
    assert!(allowed(l.check(k, 11 * SEC)));
}

#[test]
fn long_periods_use_coarser_ticks_and_stay_exact() {
    // One per hour with a burst of 500: τ is beyond 2^40 ns, so ticks grow.
    let l = limiter(1.0 / 3600.0, 500);
    assert!(l.table.tick_shift > 0);
    let k = Some(&b"hourly"[..]);
    for _ in 0..500 {
        assert!(allowed(l.check(k, SEC)));
    }
    match l.check(k, SEC) {
        RateDecision::Limited { retry_after_secs } => {
            assert!((3599..=3601).contains(&retry_after_secs))
        }
        d => panic!("{d:?}"),
    }
    assert!(allowed(l.check(k, SEC + 3601 * SEC)));
}

#[test]
fn missing_keys_share_a_budget_or_pass() {
    let shared = limiter(1.0, 2);
    assert!(allowed(shared.check(None, SEC)));
    assert!(allowed(shared.check(None, SEC)));
    assert!(!allowed(shared.check(None, SEC)));
    let open = RateLimiter::compile(&RateLimitConfig {
        rate: 1.0,
        on_missing_key: MissingKey::Allow,
        ..RateLimitConfig::default()
    })
    .unwrap();
    for _ in 0..10 {
        assert!(allowed(open.check(None, SEC)));
    }
}

#[test]
fn threads_sharing_one_limiter_hold_the_node_rate() {
    // 4 threads, one simulated second in 10 µs steps handed out by a shared clock, 3 keys.
    let l = Arc::new(limiter(1000.0, 50));
    let clock = Arc::new(AtomicU64::new(0));
    let admitted = Arc::new(AtomicU64::new(0));
    let step = 10_000;
    let end = SEC;
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (l, clock, admitted) = (l.clone(), clock.clone(), admitted.clone());
            thread::spawn(move || loop {
                let now = clock.fetch_add(step, Ordering::Relaxed) + step;
                if now > end {
                    break;
                }
                for key in [&b"k1"[..], b"k2", b"k3"] {
                    if allowed(l.check(Some(key), 10 * SEC + now)) {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let want = 3.0 * (1000.0 + 50.0);
    let got = admitted.load(Ordering::Relaxed) as f64;
    assert!(
        (got - want).abs() <= want * 0.10,
        "admitted {got}, want about {want}"
    );
    // The GCRA never admits more than burst + rate × time.
    assert!(got <= want + 3.0, "admitted {got} > {want}");
}

#[test]
fn memory_stays_bounded_under_a_million_random_keys() {
    let l = limiter(1.0, 1);
    let cap = l.capacity();
    assert_eq!(cap, DEFAULT_TABLE_SLOTS);
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut hot_admitted = 0;
    let start = 100 * SEC;
    for i in 0..1_000_000u64 {
        // 100 µs apart: 100 s of traffic, ~10,000 keys active at any time.
        let now = start + i * 100_000;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let _ = l.check(Some(&x.to_le_bytes()), now);
        if i % 100 == 0 {
            hot_admitted += allowed(l.check(Some(b"hot"), now)) as u32;
        }
    }
    assert_eq!(l.capacity(), cap);
    assert!(l.active_keys(start + 100 * SEC) <= cap);
    // The hot key kept its state through the flood: ~1 per second over 100 s.
    assert!(
        (95..=105).contains(&hot_admitted),
        "hot admitted {hot_admitted}"
    );
}

#[test]
fn a_full_bucket_evicts_the_key_closest_to_idle() {
    let l = RateLimiter::compile(&RateLimitConfig {
        rate: 1.0,
        burst: 1,
        table_slots: 64,
        ..RateLimitConfig::default()
    })
    .unwrap();
    // 64 slots = 8 buckets; 1,000 keys at once overflow every bucket, yet nothing grows and
    // every new key is admitted (the limiter errs towards admitting).
    for i in 0..1000u32 {
        assert!(allowed(l.check(Some(&i.to_le_bytes()), SEC)));
    }
    assert_eq!(l.active_keys(SEC), 64);
    assert_eq!(l.active_keys(3 * SEC), 0);
}

#[test]
fn compile_reusing_keeps_state_when_compatible() {
    let a = limiter(1.0, 1);
    assert!(allowed(a.check(Some(b"k"), SEC)));
    let b = RateLimiter::compile_reusing(
        &RateLimitConfig {
            rate: 2.0,
            burst: 1,
            ..RateLimitConfig::default()
        },
        &a,
    )
    .unwrap();
    assert!(!allowed(b.check(Some(b"k"), SEC)));
    let c = RateLimiter::compile_reusing(
        &RateLimitConfig {
            rate: 1.0,
            table_slots: 128,
            ..RateLimitConfig::default()
        },
        &a,
    )
    .unwrap();
    assert!(allowed(c.check(Some(b"k"), SEC)));
}

#[test]
fn config_validation_names_fields() {
    let bad = |cfg: RateLimitConfig| RateLimiter::compile(&cfg).unwrap_err().path;
    let base = RateLimitConfig {
        rate: 10.0,
        ..RateLimitConfig::default()
    };
    assert_eq!(bad(RateLimitConfig::default()), "rate");
    assert_eq!(
        bad(RateLimitConfig {
            rate: f64::NAN,
            ..base.clone()
        }),
        "rate"
    );
    assert_eq!(
        bad(RateLimitConfig {
            burst: 0,
            ..base.clone()
        }),
        "burst"
    );
    assert_eq!(
        bad(RateLimitConfig {
            table_slots: 8,
            ..base.clone()
        }),
        "table_slots"
    );
    assert_eq!(
        bad(RateLimitConfig {
            key: KeyKind::Header,
            ..base.clone()
        }),
        "header"
    );
    assert_eq!(
        bad(RateLimitConfig {
            key: KeyKind::Header,
            header: Some("bad header".into()),
            ..base.clone()
        }),
        "header"
    );
    assert_eq!(
        bad(RateLimitConfig {
            header: Some("x-a".into()),
            ..base.clone()
        }),
        "header"
    );
    let ok = RateLimiter::compile(&RateLimitConfig {
        key: KeyKind::Header,
        header: Some("X-Api-Key".into()),
        ..base
    })
    .unwrap();
    assert_eq!(ok.key_kind(), KeyKind::Header);
    assert_eq!(ok.header_name(), Some("X-Api-Key"));
}

#[test]
fn ip_keys_fold_mapped_addresses() {
    let (mut a, mut b) = ([0; 16], [0; 16]);
    let v4: IpAddr = "10.1.2.3".parse().unwrap();
    let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
    assert_eq!(ip_key(v4, &mut a), ip_key(mapped, &mut b));
    assert_eq!(ip_key("2001:db8::1".parse().unwrap(), &mut a).len(), 16);
}

#[test]
fn documented_example_compiles() {
    let cfg: RateLimitConfig = crate::modules::ip_list::tests::doc_example(
        "rate_limit",
        include_str!("../../../../docs/modules/rate_limit.md"),
    );
    let l = RateLimiter::compile(&cfg).unwrap();
    assert_eq!(l.key_kind(), KeyKind::Consumer);
}

#[test]
fn checks_do_not_allocate() {
    let l = limiter(5.0, 2);
    let (n, _) = crate::modules::ip_list::tests::allocations_during(|| {
        for i in 0..100u64 {
            let _ = l.check(Some(&i.to_le_bytes()), SEC + i * MS);
            let _ = l.check(None, SEC + i * MS);
        }
    });
    assert_eq!(n, 0);
}
