//! Splits (shares, stickiness, keys, matches), the lists a release builds and where it
//! switches, the counters and the guard's decision.

use super::split::{fnv, FNV_OFFSET};
use super::*;
use crate::stage::Flow;
use crate::stages::testutil::Harness;
use crate::token::mint_hs256;
use conf::release::Guard;

/// A route `r` with a rate limit, and an upstream `v` for candidates.
const BASE: &str = r#"
[[upstreams]]
id = "v"
nodes = [{ addr = "127.0.0.1:10" }]
[[modules]]
id = "lim"
kind = "rate_limit"
rate = 1000000
burst = 1000000
[[routes]]
id = "r"
paths = ["/r/*"]
upstream = "u"
modules = ["lim"]
[[routes]]
id = "other"
paths = ["/other"]
upstream = "u"
"#;

fn with(release: &str) -> Harness {
    Harness::new(&format!("{BASE}{release}"))
}

fn side_of(h: &mut Harness, head: &str, peer: &str) -> Option<Side> {
    let o = h.run(head, peer, b"");
    assert_eq!(o.flow, Flow::Continue, "{head}");
    o.ctx.release.map(|m| m.side)
}

const ROUTE_RELEASE: &str = r#"
[[releases]]
id = "canary"
target = "routes/r"
candidate = { id = "r", paths = ["/r/*"], upstream = "v", max_body_bytes = 7 }
"#;

#[test]
fn a_header_match_sends_matching_requests_to_the_candidate_route() {
    let mut h = with(&format!(
        "{ROUTE_RELEASE}split = {{ header = \"X-Canary\", values = [\"on\"] }}\n"
    ));
    let o = h.get("GET /r/x HTTP/1.1\nHost: a\nX-Canary: on\n");
    assert_eq!(o.flow, Flow::Continue);
    assert_eq!(o.ctx.release.map(|m| m.side), Some(Side::Candidate));
    assert_eq!(h.snap.upstreams[o.ctx.upstream].id, "v");
    assert_eq!(o.ctx.max_body, 7);
    assert_eq!(
        h.snap.route_for(&o.ctx).and_then(|r| r.max_body_bytes),
        Some(7)
    );
    let o = h.get("GET /r/x HTTP/1.1\nHost: a\nX-Canary: off\n");
    assert_eq!(o.ctx.release.map(|m| m.side), Some(Side::Stable));
    assert_eq!(h.snap.upstreams[o.ctx.upstream].id, "u");
    assert_eq!(
        h.snap.route_for(&o.ctx).and_then(|r| r.max_body_bytes),
        None
    );
    // Other routes are not part of the release at all.
    let o = h.get("GET /other HTTP/1.1\nHost: a\nX-Canary: on\n");
    assert_eq!(o.ctx.release, None);
    // A route release decides right after routing; the candidate drops the rate limit.
    assert_eq!(
        h.snap.pipeline.candidate_kinds(0),
        Some((vec!["route", "upstream"], 1))
    );
    assert_eq!(
        h.snap.pipeline.kinds(0),
        ["route", "rate_limit", "upstream"]
    );
}

#[test]
fn a_percent_split_takes_its_share_and_sticks_per_key() {
    let mut h = with(&format!(
        "{ROUTE_RELEASE}split = {{ percent = 10, by = \"header\", name = \"X-User\" }}\n"
    ));
    let mut first = Vec::new();
    for i in 0..10_000 {
        first.push(side_of(
            &mut h,
            &format!("GET /r/a HTTP/1.1\nHost: a\nX-User: user-{i}\n"),
            "192.0.2.1",
        ));
    }
    let cand = first
        .iter()
        .filter(|s| **s == Some(Side::Candidate))
        .count();
    assert!(
        (800..=1200).contains(&cand),
        "{cand} of 10,000 on the candidate"
    );
    for (i, want) in first.iter().enumerate().step_by(97) {
        let again = side_of(
            &mut h,
            &format!("GET /r/b HTTP/1.1\nHost: a\nX-User: user-{i}\n"),
            "192.0.2.9",
        );
        assert_eq!(again, *want, "user-{i} changed sides");
    }
    // No key: the stable side.
    assert_eq!(
        side_of(&mut h, "GET /r/a HTTP/1.1\nHost: a\n", "192.0.2.1"),
        Some(Side::Stable)
    );
}

#[test]
fn raising_the_percentage_keeps_every_candidate_key_on_the_candidate() {
    let split = |p: u32| {
        format!("{ROUTE_RELEASE}split = {{ percent = {p}, by = \"header\", name = \"K\" }}\n")
    };
    let (mut five, mut twenty) = (with(&split(5)), with(&split(20)));
    let (mut n5, mut n20) = (0, 0);
    for i in 0..1000 {
        let head = format!("GET /r/a HTTP/1.1\nHost: a\nK: {i}\n");
        let a = side_of(&mut five, &head, "192.0.2.1") == Some(Side::Candidate);
        let b = side_of(&mut twenty, &head, "192.0.2.1") == Some(Side::Candidate);
        assert!(!a || b, "key {i} left the candidate when the share grew");
        n5 += usize::from(a);
        n20 += usize::from(b);
    }
    assert!(n5 > 20 && n20 > 3 * n5, "{n5} at 5%, {n20} at 20%");
}

#[test]
fn ip_cookie_claim_and_consumer_keys() {
    let mut h = with(&format!(
        "{ROUTE_RELEASE}split = {{ percent = 50, by = \"ip\" }}\n"
    ));
    let sides: Vec<_> = (1..=40)
        .map(|i| {
            side_of(
                &mut h,
                "GET /r/a HTTP/1.1\nHost: a\n",
                &format!("198.51.100.{i}"),
            )
        })
        .collect();
    assert!(sides.contains(&Some(Side::Candidate)) && sides.contains(&Some(Side::Stable)));
    for i in 1..=40 {
        let again = side_of(
            &mut h,
            "GET /r/q HTTP/1.1\nHost: a\n",
            &format!("198.51.100.{i}"),
        );
        assert_eq!(again, sides[i - 1]);
    }

    let mut h = with(&format!(
        "{ROUTE_RELEASE}split = {{ cookie = \"beta\", values = [\"yes\"] }}\n"
    ));
    let hit = "GET /r/a HTTP/1.1\nHost: a\nCookie: a=1; beta=yes ; c=3\n";
    assert_eq!(side_of(&mut h, hit, "192.0.2.1"), Some(Side::Candidate));
    let miss = "GET /r/a HTTP/1.1\nHost: a\nCookie: beta=no\nCookie: xbeta=yes\n";
    assert_eq!(side_of(&mut h, miss, "192.0.2.1"), Some(Side::Stable));

    let mut h = with(&format!(
        "{ROUTE_RELEASE}split = {{ percent = 50, by = \"jwt_claim\", name = \"sub\" }}\n"
    ));
    let mut seen = Vec::new();
    for i in 0..40 {
        let t = mint_hs256(b"whatever", &format!(r#"{{"sub":"user-{i}","n":[1,2]}}"#));
        let head = format!("GET /r/a HTTP/1.1\nHost: a\nAuthorization: Bearer {t}\n");
        let s = side_of(&mut h, &head, "192.0.2.1");
        assert_eq!(side_of(&mut h, &head, "192.0.2.77"), s, "claim is sticky");
        seen.push(s);
    }
    assert!(seen.contains(&Some(Side::Candidate)) && seen.contains(&Some(Side::Stable)));
    let no_claim = mint_hs256(b"k", r#"{"iss":"x"}"#);
    let head = format!("GET /r/a HTTP/1.1\nHost: a\nAuthorization: Bearer {no_claim}\n");
    assert_eq!(side_of(&mut h, &head, "192.0.2.1"), Some(Side::Stable));
    assert_eq!(
        side_of(
            &mut h,
            "GET /r/a HTTP/1.1\nHost: a\nAuthorization: Bearer x.!!!.y\n",
            "192.0.2.1"
        ),
        Some(Side::Stable)
    );

    let mut h = with(&format!(
        "{ROUTE_RELEASE}split = {{ ips = [\"203.0.113.0/24\"] }}\n"
    ));
    assert_eq!(
        side_of(&mut h, "GET /r/a HTTP/1.1\nHost: a\n", "203.0.113.9"),
        Some(Side::Candidate)
    );
    assert_eq!(
        side_of(&mut h, "GET /r/a HTTP/1.1\nHost: a\n", "192.0.2.1"),
        Some(Side::Stable)
    );
}

const KEYED: &str = r#"
[[modules]]
id = "keys"
kind = "key_auth"
[[modules]]
id = "per-consumer"
kind = "rate_limit"
rate = 1000
burst = 1000
key = "consumer"
[[consumers]]
id = "acme"
key_auth = { key = "acme-key-0123456789" }
[[consumers]]
id = "zed"
key_auth = { key = "zed-key-0123456789" }
[[routes]]
id = "k"
paths = ["/k"]
upstream = "u"
modules = ["keys", "per-consumer"]
[[routes]]
id = "open"
paths = ["/open"]
upstream = "u"
modules = ["per-consumer"]
"#;

#[test]
fn a_consumer_split_is_decided_after_authentication() {
    let release = "[[releases]]\nid = \"m\"\ntarget = \"modules/per-consumer\"\n\
         candidate = { id = \"per-consumer\", kind = \"rate_limit\", rate = 5, burst = 100, key = \"consumer\" }\n\
         split = { percent = 50, by = \"consumer\" }\n";
    let mut h = with(&format!("{KEYED}{release}"));
    let (kinds, at) = h.snap.pipeline.candidate_kinds(2).unwrap();
    assert_eq!(kinds, ["route", "key_auth", "rate_limit", "upstream"]);
    assert_eq!(at, 2, "decided after key_auth");
    let mut sides = Vec::new();
    for (key, who) in [
        ("acme-key-0123456789", "acme"),
        ("zed-key-0123456789", "zed"),
    ] {
        let head = format!("GET /k HTTP/1.1\nHost: a\napikey: {key}\n");
        let s = side_of(&mut h, &head, "192.0.2.1");
        assert_eq!(side_of(&mut h, &head, "198.51.100.1"), s, "{who} sticks");
        let want = if bucket(fnv(FNV_OFFSET, b"m"), who.as_bytes()) < 5000 {
            Side::Candidate
        } else {
            Side::Stable
        };
        assert_eq!(s, Some(want), "{who}");
        sides.push(s);
    }
    // A route using the module without authentication never knows a consumer: stable.
    assert_eq!(
        side_of(&mut h, "GET /open HTTP/1.1\nHost: a\n", "192.0.2.1"),
        Some(Side::Stable)
    );
    // A route release split by consumer needs the route to authenticate.
    let errs = Harness::errors(&format!(
        "{BASE}[[releases]]\nid = \"rr\"\ntarget = \"routes/r\"\n\
         candidate = {{ id = \"r\", paths = [\"/r/*\"], upstream = \"v\" }}\n\
         split = {{ percent = 50, by = \"consumer\" }}\n"
    ));
    assert!(
        errs.iter().any(
            |e| e.starts_with("releases[0].split.by: a split by consumer needs an auth module")
        ),
        "{errs:#?}"
    );
    // ... and to authenticate the same way on both sides.
    let errs = Harness::errors(&format!(
        "{BASE}{KEYED}[[releases]]\nid = \"rr\"\ntarget = \"routes/k\"\n\
         candidate = {{ id = \"k\", paths = [\"/k\"], upstream = \"v\", modules = [\"per-consumer\"] }}\n\
         split = {{ percent = 50, by = \"consumer\" }}\n"
    ));
    assert!(
        errs.iter()
            .any(|e| e.contains("must authenticate the same way on both sides")),
        "{errs:#?}"
    );
}

#[test]
fn a_module_release_switches_where_the_lists_part() {
    let mut h = with(
        "[[modules]]\nid = \"hdr\"\nkind = \"headers\"\nrequest_set = { X-V = \"1\" }\n\
         [[routes]]\nid = \"h\"\npaths = [\"/h\"]\nupstream = \"u\"\nmodules = [\"lim\", \"hdr\"]\n\
         [[releases]]\nid = \"m\"\ntarget = \"modules/hdr\"\n\
         candidate = { id = \"hdr\", kind = \"headers\", request_set = { X-V = \"2\" } }\n\
         split = { header = \"X-New\" }\n",
    );
    let (kinds, at) = h.snap.pipeline.candidate_kinds(2).unwrap();
    assert_eq!(kinds, ["route", "rate_limit", "headers", "upstream"]);
    assert_eq!(at, 2);
    assert!(
        h.snap.pipeline.candidate_kinds(0).is_none(),
        "route r does not use hdr"
    );
    let o = h.get("GET /h HTTP/1.1\nHost: a\nX-New: 1\n");
    assert_eq!(
        crate::stages::testutil::field(&o.ctx.upstream_headers, "X-V").as_deref(),
        Some("2")
    );
    let o = h.get("GET /h HTTP/1.1\nHost: a\n");
    assert_eq!(
        crate::stages::testutil::field(&o.ctx.upstream_headers, "X-V").as_deref(),
        Some("1")
    );
    assert_eq!(o.ctx.release.map(|m| m.side), Some(Side::Stable));
}

#[test]
fn one_release_per_route_and_candidate_errors_are_named_under_the_release() {
    let errs = Harness::errors(&format!(
        "{BASE}[[releases]]\nid = \"a\"\ntarget = \"routes/r\"\n\
         candidate = {{ id = \"r\", paths = [\"/r/*\"], upstream = \"v\" }}\nsplit = {{ header = \"X\" }}\n\
         [[releases]]\nid = \"b\"\ntarget = \"modules/lim\"\n\
         candidate = {{ id = \"lim\", kind = \"rate_limit\", rate = 3 }}\nsplit = {{ header = \"X\" }}\n"
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("releases[1].target: routes/r is already under release \"a\"")),
        "{errs:#?}"
    );
    let errs = Harness::errors(&format!(
        "{BASE}[[releases]]\nid = \"b\"\ntarget = \"modules/lim\"\n\
         candidate = {{ id = \"lim\", kind = \"rate_limit\", rate = -3 }}\nsplit = {{ ips = [\"10.0.0.0/33\"] }}\n"
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("releases[0].split.ips[0]")),
        "{errs:#?}"
    );
    let errs = Harness::errors(&format!(
        "{BASE}[[releases]]\nid = \"b\"\ntarget = \"modules/lim\"\n\
         candidate = {{ id = \"lim\", kind = \"rate_limit\", rate = -3 }}\nsplit = {{ header = \"X\" }}\n"
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("releases[0].candidate.rate")),
        "{errs:#?}"
    );
}

#[test]
fn a_split_request_allocates_nothing() {
    let mut h = with(&format!(
        "{ROUTE_RELEASE}split = {{ percent = 30, by = \"jwt_claim\", name = \"sub\" }}\n"
    ));
    let t = mint_hs256(b"k", r#"{"sub":"user-1","other":{"a":[1,"x"]}}"#);
    let head = format!("GET /r/a HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {t}\r\n\r\n");
    let mut parsed = protocols::http1::RequestHead::new();
    protocols::http1::parse_request(head.as_bytes(), &Default::default(), &mut parsed).unwrap();
    let req = crate::stage::Request {
        buf: head.as_bytes(),
        head: &parsed,
        peer: "192.0.2.1".parse().unwrap(),
        body: None,
        tls: false,
    };
    let mut ctx = crate::Context::new();
    let snap = h.snap.clone();
    let mut run = |ctx: &mut crate::Context| {
        ctx.reset(req.peer, 0, 0);
        let f = snap.pipeline.run(ctx, &req, &snap, &mut h.core);
        snap.pipeline.on_response(ctx);
        f
    };
    run(&mut ctx);
    let (n, f) = crate::modules::ip_list::tests::allocations_during(|| run(&mut ctx));
    assert_eq!(f, Flow::Continue);
    assert!(ctx.release.is_some());
    assert_eq!(n, 0, "allocations per request");
}

#[test]
fn histogram_buckets_cover_every_latency_in_order() {
    let mut last = 0;
    for us in [
        0u64,
        1,
        63,
        64,
        79,
        80,
        100,
        1000,
        12_345,
        1 << 26,
        (1 << 27) - 1,
        1 << 27,
        u64::MAX,
    ] {
        let b = bucket_of(us);
        assert!(b >= last && b < BUCKETS, "{us}");
        let (lo, hi) = bucket_range(b);
        assert!(
            b == BUCKETS - 1 || (lo <= us && us < hi),
            "{us} not in {lo}..{hi}"
        );
        last = b;
    }
    for b in 1..BUCKETS - 1 {
        assert_eq!(
            bucket_range(b).1,
            bucket_range(b + 1).0,
            "bucket {b} meets the next"
        );
    }
}

fn counted(stable: &[(u16, u64)], cand: &[(u16, u64)]) -> Totals {
    let c = ReleaseCounters::new("x", 1);
    for &(status, us) in stable {
        c.count(Side::Stable, status, us);
    }
    for &(status, us) in cand {
        c.count(Side::Candidate, status, us);
    }
    let mut t = Totals::default();
    c.add_to(&mut t);
    t
}

#[test]
fn counters_sum_subtract_and_give_quantiles() {
    let fast: Vec<(u16, u64)> = (0..99)
        .map(|_| (200, 1000))
        .chain([(503, 50_000)])
        .collect();
    let t = counted(&fast, &[(200, 2000), (500, 3000)]);
    let s = t.side(Side::Stable);
    assert_eq!((s.requests(), s.errors()), (100, 1));
    assert!((s.error_rate() - 0.01).abs() < 1e-9);
    let p50 = s.quantile_us(0.5).unwrap();
    assert!((896.0..=1152.0).contains(&p50), "{p50}");
    let p999 = s.quantile_us(0.999).unwrap();
    assert!(p999 > 40_000.0, "{p999}");
    let c = t.side(Side::Candidate);
    assert_eq!((c.requests(), c.errors(), c.classes[1]), (2, 1, 1));
    let later = {
        let mut x = t.clone();
        x.sides[1].classes[4] += 5;
        x
    };
    assert_eq!(later.since(&t).side(Side::Candidate).errors(), 5);
    assert_eq!(later.since(&t).side(Side::Stable).requests(), 0);
    let r = s.report();
    assert_eq!((r.requests, r.classes.c5xx), (100, 1));
    assert_eq!(r.histogram.iter().map(|b| b.count).sum::<u64>(), 100);
    // A worker's carried table continues the counts.
    let a = ReleaseCounters::new("x", 1);
    a.count(Side::Candidate, 500, 10);
    let b = ReleaseCounters::new("x", 1);
    b.carry(&a);
    b.count(Side::Candidate, 200, 10);
    let mut bt = Totals::default();
    b.add_to(&mut bt);
    assert_eq!(bt.side(Side::Candidate).requests(), 2);
}

#[test]
fn the_guard_judges_errors_and_latency_against_the_stable_side() {
    let g = Guard {
        min_requests: 10,
        error_rate_margin: 5.0,
        p99_margin_ms: Some(50),
        ..Guard::default()
    };
    let ok: Vec<(u16, u64)> = (0..100).map(|_| (200, 2000)).collect();
    let bad: Vec<(u16, u64)> = (0..20)
        .map(|i| (if i < 5 { 500 } else { 200 }, 2000))
        .collect();
    let why = judge(&g, &counted(&ok, &bad)).expect("25% vs 0% is over a 5-point margin");
    assert!(why.contains("5xx rate 25.00%"), "{why}");
    // Too few candidate requests to judge.
    assert_eq!(judge(&g, &counted(&ok, &bad[..5])), None);
    // Within the margin.
    let fine: Vec<(u16, u64)> = (0..100)
        .map(|i| (if i < 4 { 502 } else { 200 }, 2000))
        .collect();
    assert_eq!(judge(&g, &counted(&ok, &fine)), None);
    // Slow candidate.
    let slow: Vec<(u16, u64)> = (0..100).map(|_| (200, 200_000)).collect();
    let why = judge(&g, &counted(&ok, &slow)).expect("p99 200 ms vs 2 ms");
    assert!(why.contains("p99"), "{why}");
    let g_off = Guard {
        p99_margin_ms: None,
        ..g
    };
    assert_eq!(judge(&g_off, &counted(&ok, &slow)), None);
}
