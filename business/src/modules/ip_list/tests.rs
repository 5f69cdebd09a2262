//! Unit tests of the ip_list engine: parsing, merging, lookups at 100k entries, decisions and
//! the X-Forwarded-For walk.

use super::*;
use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn set(entries: &[&str]) -> IpSet {
    IpSet::parse(entries).unwrap()
}

/// xorshift64*: deterministic test data without a rand dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn single_addresses_and_cidrs() {
    let s = set(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1"]);
    assert!(s.contains(ip("10.0.0.0")));
    assert!(s.contains(ip("10.255.255.255")));
    assert!(!s.contains(ip("11.0.0.0")));
    assert!(!s.contains(ip("9.255.255.255")));
    assert!(s.contains(ip("192.168.1.7")));
    assert!(!s.contains(ip("192.168.1.8")));
    assert!(s.contains(ip("2001:db8:ffff::1")));
    assert!(!s.contains(ip("2001:db9::")));
    assert!(s.contains(ip("::1")));
    assert!(!s.contains(ip("::2")));
}

#[test]
fn edges_of_the_address_space() {
    let all4 = set(&["0.0.0.0/0"]);
    assert!(all4.contains(ip("0.0.0.0")));
    assert!(all4.contains(ip("255.255.255.255")));
    assert!(!all4.contains(ip("2001:db8::1")));
    let top = set(&["255.255.255.255", "255.255.255.254/31"]);
    assert_eq!(top.range_count(), 1);
    assert!(top.contains(ip("255.255.255.255")));
    let all6 = set(&["::/0"]);
    assert!(all6.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
    // ::/0 covers the mapped block, so every IPv4 client is in it too.
    assert!(all6.contains(ip("1.2.3.4")));
}

#[test]
fn overlapping_and_touching_entries_merge() {
    let s = set(&[
        "10.0.0.0/24",
        "10.0.1.0/24",
        "10.0.0.5",
        "10.0.0.0/16",
        "172.16.0.0/12",
    ]);
    assert_eq!(s.range_count(), 2);
    assert!(s.contains(ip("10.0.200.1")));
    assert!(s.contains(ip("172.31.255.255")));
    assert!(!s.contains(ip("172.32.0.0")));
}

#[test]
fn empty_set_contains_nothing() {
    let s = IpSet::default();
    assert!(s.is_empty());
    assert!(!s.contains(ip("0.0.0.0")));
    assert!(!s.contains(ip("::")));
}

#[test]
fn mapped_ipv6_is_ipv4() {
    let s = set(&["10.0.0.0/8"]);
    assert!(s.contains(ip("::ffff:10.1.2.3")));
    assert!(!s.contains(ip("::ffff:11.1.2.3")));
    // A mapped entry lands in the IPv4 table.
    let m = set(&["::ffff:192.168.0.0/112"]);
    assert!(m.contains(ip("192.168.3.4")));
    assert!(m.contains(ip("::ffff:192.168.3.4")));
    assert!(!m.contains(ip("192.169.0.0")));
}

#[test]
fn bad_entries_are_named() {
    assert_eq!(IpSet::parse(&["10.0.0.1", "nope"]).unwrap_err().0, 1);
    assert!(IpSet::parse(&["10.0.0.0/33"]).is_err());
    assert!(IpSet::parse(&["10.0.0.0/-1"]).is_err());
    assert!(IpSet::parse(&["10.0.0.0/+8"]).is_err());
    assert!(IpSet::parse(&["::/129"]).is_err());
    assert!(IpSet::parse(&["10.0.0.0/"]).is_err());
    let (_, msg) = IpSet::parse(&["10.0.0.1/8"]).unwrap_err();
    assert!(msg.contains("network address"), "{msg}");
    assert!(IpSet::parse(&["2001:db8::1/32"]).is_err());
    assert!(IpSet::parse(&[" 10.0.0.0/8 "]).is_ok());
}

#[test]
fn hundred_thousand_entries_match_a_brute_force_model() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut entries = Vec::new();
    let mut hosts = HashSet::new();
    let mut nets24 = HashSet::new();
    let mut hosts6 = HashSet::new();
    let mut nets64 = HashSet::new();
    for i in 0..100_000u32 {
        let r = rng.next();
        match i % 4 {
            0 | 1 => {
                let a = r as u32;
                hosts.insert(a);
                entries.push(Ipv4Addr::from(a).to_string());
            }
            2 => {
                let a = (r as u32) & 0xffff_ff00;
                nets24.insert(a >> 8);
                entries.push(format!("{}/24", Ipv4Addr::from(a)));
            }
            _ => {
                let a = (u128::from(r) << 64) | u128::from(rng.next());
                if r & 1 == 0 {
                    hosts6.insert(a);
                    entries.push(Ipv6Addr::from(a).to_string());
                } else {
                    nets64.insert(r);
                    entries.push(format!("{}/64", Ipv6Addr::from(u128::from(r) << 64)));
                }
            }
        }
    }
    let s = IpSet::parse(&entries).unwrap();
    // Probe both configured addresses (hits) and random ones (mostly misses).
    let mut hits = 0;
    for (n, e) in entries.iter().enumerate().step_by(7) {
        let base = e.split('/').next().unwrap();
        assert!(s.contains(ip(base)), "entry {n} {e} missing");
        hits += 1;
    }
    assert!(hits > 10_000);
    for _ in 0..200_000 {
        let a = rng.next() as u32;
        let want = hosts.contains(&a) || nets24.contains(&(a >> 8));
        assert_eq!(
            s.contains(IpAddr::V4(Ipv4Addr::from(a))),
            want,
            "{}",
            Ipv4Addr::from(a)
        );
        let hi = rng.next();
        let b = (u128::from(hi) << 64) | u128::from(rng.next());
        let want6 = hosts6.contains(&b) || nets64.contains(&hi);
        assert_eq!(s.contains(IpAddr::V6(Ipv6Addr::from(b))), want6);
    }
    // Neighbours of /24 networks sit exactly on range edges.
    for &n in nets24.iter().take(2000) {
        let first = n << 8;
        assert!(s.contains(IpAddr::V4(Ipv4Addr::from(first | 0xff))));
        let below = first.wrapping_sub(1);
        let want = hosts.contains(&below) || nets24.contains(&(below >> 8));
        assert_eq!(s.contains(IpAddr::V4(Ipv4Addr::from(below))), want);
    }
}

fn engine(allow: &[&str], deny: &[&str], trusted: &[&str]) -> IpListEngine {
    let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
    IpListEngine::compile(&IpListConfig {
        allow: v(allow),
        deny: v(deny),
        trusted_proxies: v(trusted),
        ..IpListConfig::default()
    })
    .unwrap()
}

#[test]
fn decisions() {
    let open = engine(&[], &[], &[]);
    assert_eq!(open.check(ip("8.8.8.8")), IpVerdict::Allow);

    let deny_only = engine(&[], &["203.0.113.0/24"], &[]);
    assert_eq!(deny_only.check(ip("203.0.113.9")), IpVerdict::Denied);
    assert_eq!(deny_only.check(ip("203.0.114.9")), IpVerdict::Allow);

    let allow_only = engine(&["10.0.0.0/8"], &[], &[]);
    assert_eq!(allow_only.check(ip("10.2.3.4")), IpVerdict::Allow);
    assert_eq!(allow_only.check(ip("::ffff:10.2.3.4")), IpVerdict::Allow);
    assert_eq!(allow_only.check(ip("11.2.3.4")), IpVerdict::NotAllowed);
    assert_eq!(allow_only.check(ip("2001:db8::1")), IpVerdict::NotAllowed);

    // Deny wins over allow.
    let both = engine(&["10.0.0.0/8"], &["10.6.6.6"], &[]);
    assert_eq!(both.check(ip("10.6.6.6")), IpVerdict::Denied);
    assert_eq!(both.check(ip("10.6.6.7")), IpVerdict::Allow);
}

#[test]
fn compile_names_the_bad_field() {
    let cfg = IpListConfig {
        deny: vec!["1.2.3.4".into(), "1.2.3.4/99".into()],
        ..IpListConfig::default()
    };
    assert_eq!(IpListEngine::compile(&cfg).unwrap_err().path, "deny[1]");
    let cfg = IpListConfig {
        max_forwarded_hops: 0,
        ..IpListConfig::default()
    };
    assert_eq!(
        IpListEngine::compile(&cfg).unwrap_err().path,
        "max_forwarded_hops"
    );
}

#[test]
fn untrusted_peer_is_the_client() {
    let trusted = set(&["10.0.0.0/8"]);
    let xff = Some(&b"1.1.1.1"[..]);
    assert_eq!(client_ip(ip("8.8.8.8"), xff, &trusted), ip("8.8.8.8"));
    assert_eq!(client_ip(ip("10.0.0.1"), None, &trusted), ip("10.0.0.1"));
}

#[test]
fn walk_skips_trusted_hops_right_to_left() {
    let trusted = set(&["10.0.0.0/8", "2001:db8::/32"]);
    let peer = ip("10.0.0.1");
    let cases: &[(&str, &str)] = &[
        ("1.1.1.1", "1.1.1.1"),
        ("1.1.1.1, 10.0.0.2", "1.1.1.1"),
        // A client-supplied left part is ignored: the first untrusted hop from the right wins.
        ("6.6.6.6, 1.1.1.1, 10.0.0.2", "1.1.1.1"),
        ("6.6.6.6,1.1.1.1,2001:db8::5", "1.1.1.1"),
        // Every entry trusted: the leftmost one.
        ("10.9.9.9, 10.0.0.2", "10.9.9.9"),
        // Malformed entries stop the walk at the last good address.
        ("1.1.1.1, garbage, 10.0.0.2", "10.0.0.2"),
        ("1.1.1.1, unknown", "10.0.0.1"),
        ("1.1.1.1, ", "10.0.0.1"),
        ("", "10.0.0.1"),
        ("1.1.1.1,,10.0.0.3", "10.0.0.3"),
        // Ports and brackets.
        ("1.1.1.1:5555", "1.1.1.1"),
        ("[2606:4700::1]:443, 10.0.0.2", "2606:4700::1"),
        ("[2606:4700::1]", "2606:4700::1"),
        ("1.1.1.1:notaport", "10.0.0.1"),
        ("[2606:4700::1]x", "10.0.0.1"),
        // Mapped addresses come back as IPv4 and are checked as IPv4.
        ("::ffff:1.1.1.1", "1.1.1.1"),
        ("1.1.1.1, ::ffff:10.0.0.7", "1.1.1.1"),
    ];
    for (xff, want) in cases {
        assert_eq!(
            client_ip(peer, Some(xff.as_bytes()), &trusted),
            ip(want),
            "xff {xff:?}"
        );
    }
    // A mapped peer is recognised as the trusted proxy it is.
    assert_eq!(
        client_ip(ip("::ffff:10.0.0.1"), Some(b"1.1.1.1"), &trusted),
        ip("1.1.1.1")
    );
    assert_eq!(
        client_ip(ip("::ffff:8.8.8.8"), None, &trusted),
        ip("8.8.8.8")
    );
}

#[test]
fn walk_is_bounded() {
    let trusted = set(&["10.0.0.0/8"]);
    let xff = "1.1.1.1, 10.0.0.5, 10.0.0.4, 10.0.0.3, 10.0.0.2";
    let peer = ip("10.0.0.1");
    assert_eq!(
        client_ip_bounded(peer, Some(xff.as_bytes()), &trusted, 5),
        ip("1.1.1.1")
    );
    assert_eq!(
        client_ip_bounded(peer, Some(xff.as_bytes()), &trusted, 2),
        ip("10.0.0.3")
    );
    let e = engine(&[], &[], &["10.0.0.0/8"]);
    assert_eq!(e.client_ip(peer, Some(xff.as_bytes())), ip("1.1.1.1"));
    assert!(e.trusted_proxies().contains(peer));
}

#[test]
fn config_parses_from_toml_with_defaults_and_rejects_unknown_fields() {
    let cfg: IpListConfig = toml::from_str("deny = [\"1.2.3.4\"]").unwrap();
    assert_eq!(cfg.max_forwarded_hops, DEFAULT_MAX_FORWARDED_HOPS);
    assert_eq!(cfg.deny, vec!["1.2.3.4".to_string()]);
    assert!(toml::from_str::<IpListConfig>("denny = []").is_err());
}

/// The `[[modules]]` table of the first ```toml block of `docs/modules/<page>.md`, with its
/// `id` and `kind` removed (the caller's keys), after checking `kind`. Shared by the engines'
/// tests so every documented example is parsed and compiled.
pub(crate) fn doc_example<T: serde::de::DeserializeOwned>(page: &str, doc: &str) -> T {
    let block = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("{page}: no toml block"));
    let mut root: toml::Table = toml::from_str(block).unwrap_or_else(|e| panic!("{page}: {e}"));
    let modules = root.remove("modules").expect("[[modules]]");
    let mut table = modules.as_array().expect("array")[0]
        .as_table()
        .expect("table")
        .clone();
    assert!(table.remove("id").is_some(), "{page}: id");
    assert_eq!(
        table
            .remove("kind")
            .and_then(|k| k.as_str().map(str::to_owned))
            .as_deref(),
        Some(page)
    );
    toml::Value::Table(table)
        .try_into()
        .unwrap_or_else(|e| panic!("{page}: {e}"))
}

#[test]
fn documented_example_compiles() {
    let cfg: IpListConfig = doc_example(
        "ip_list",
        include_str!("../../../../docs/modules/ip_list.md"),
    );
    let e = IpListEngine::compile(&cfg).unwrap();
    assert_eq!(e.check(ip("203.0.113.7")), IpVerdict::Denied);
}

/// Counts heap allocations per thread, so tests can assert that an engine's per-request path
/// allocates nothing (other threads' tests running in parallel do not disturb the count).
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING_ALLOC: CountingAlloc = CountingAlloc;

/// Heap allocations made by this thread while `f` runs.
pub(crate) fn allocations_during<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.with(|c| c.get());
    let r = f();
    (ALLOCATIONS.with(|c| c.get()) - before, r)
}

#[test]
fn lookups_and_the_forwarded_walk_do_not_allocate() {
    let e = engine(
        &["10.0.0.0/8"],
        &["10.6.6.6"],
        &["10.0.0.0/8", "2001:db8::/32"],
    );
    let xff = b"6.6.6.6, [2606:4700::1]:443, 10.0.0.2";
    let (n, (v, c)) = allocations_during(|| {
        (
            e.check(ip("10.1.2.3")),
            e.client_ip(ip("10.0.0.1"), Some(xff)),
        )
    });
    assert_eq!((v, c), (IpVerdict::Allow, ip("2606:4700::1")));
    assert_eq!(n, 0);
}
