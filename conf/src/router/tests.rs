//! Router tests: one per precedence rule, host handling, the no-allocation promise, and a
//! 10,000-route table whose lookups do the same work as a one-route table.

use super::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts heap allocations per thread, so a test can show `find` makes none.
struct CountingAlloc;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn route(id: &str, hosts: &[&str], paths: &[&str], methods: &[&str]) -> Route {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    Route {
        id: id.to_string(),
        hosts: strings(hosts),
        paths: strings(paths),
        methods: strings(methods),
        upstream: "u".to_string(),
        ..Route::default()
    }
}

/// Looks up and returns (route id, params as name=value, prefix_len), or None.
fn lookup(
    routes: &[Route],
    r: &Router,
    host: &str,
    method: &str,
    path: &str,
) -> Option<(String, Vec<String>, usize)> {
    let mut m = RouteMatch::default();
    if !r.find(host.as_bytes(), method.as_bytes(), path.as_bytes(), &mut m) {
        return None;
    }
    let params = (0..m.n_params)
        .map(|i| {
            let name = r.param_name(m.route, m.params[i].0);
            let value = m.param_value(path.as_bytes(), i).unwrap_or_default();
            format!("{name}={}", String::from_utf8_lossy(value))
        })
        .collect();
    Some((routes[m.route].id.clone(), params, m.prefix_len))
}

fn id_of(routes: &[Route], r: &Router, host: &str, method: &str, path: &str) -> Option<String> {
    lookup(routes, r, host, method, path).map(|(id, _, _)| id)
}

#[test]
fn exact_beats_prefix() {
    let routes = [
        route("prefix", &[], &["/api/*"], &[]),
        route("exact", &[], &["/api/users"], &[]),
    ];
    let r = Router::build(&routes);
    assert_eq!(
        id_of(&routes, &r, "", "GET", "/api/users").as_deref(),
        Some("exact")
    );
    assert_eq!(
        id_of(&routes, &r, "", "GET", "/api/users/1").as_deref(),
        Some("prefix")
    );
    assert_eq!(
        id_of(&routes, &r, "", "GET", "/api/user").as_deref(),
        Some("prefix")
    );
}

#[test]
fn static_segment_beats_param_and_backtracks() {
    let routes = [
        route("param", &[], &["/users/{id}"], &[]),
        route("me", &[], &["/users/me"], &[]),
        route("settings", &[], &["/users/{id}/settings"], &[]),
        route("profile", &[], &["/users/me/profile"], &[]),
    ];
    let r = Router::build(&routes);
    let got = lookup(&routes, &r, "", "GET", "/users/me");
    assert_eq!(got, Some(("me".into(), vec![], 0)));
    let got = lookup(&routes, &r, "", "GET", "/users/42");
    assert_eq!(got, Some(("param".into(), vec!["id=42".into()], 0)));
    // The static branch `me` has no `settings`: the matcher goes back and takes {id}.
    let got = lookup(&routes, &r, "", "GET", "/users/me/settings");
    assert_eq!(got, Some(("settings".into(), vec!["id=me".into()], 0)));
    assert_eq!(
        id_of(&routes, &r, "", "GET", "/users/me/profile").as_deref(),
        Some("profile")
    );
    assert_eq!(id_of(&routes, &r, "", "GET", "/users/7/profile"), None);
}

#[test]
fn params_capture_offsets_and_names_per_route() {
    let routes = [route(
        "r",
        &[],
        &["/orgs/{org}/repos/{repo}", "/repos/{repo}/{tag}"],
        &[],
    )];
    let r = Router::build(&routes);
    let path = "/orgs/acme/repos/gate%2Fhouse";
    let mut m = RouteMatch::default();
    assert!(r.find(b"", b"GET", path.as_bytes(), &mut m));
    assert_eq!(m.params(), &[(0, 6, 4), (1, 17, 12)]);
    assert_eq!(r.param_name(0, 0), "org");
    assert_eq!(r.param_name(0, 1), "repo");
    // Names are shared across the route's paths: {repo} keeps index 1, {tag} is 2.
    let got = lookup(&routes, &r, "", "GET", "/repos/x/v1");
    assert_eq!(
        got,
        Some(("r".into(), vec!["repo=x".into(), "tag=v1".into()], 0))
    );
    assert!(r.find(b"", b"GET", b"/repos/x/v1", &mut m));
    assert_eq!(m.params()[0].0, 1);
    assert_eq!(m.params()[1].0, 2);
    assert_eq!(r.param_name(0, 9), "");
    assert_eq!(r.param_name(5, 0), "");
    // A param never matches an empty segment.
    assert_eq!(id_of(&routes, &r, "", "GET", "/repos//v1"), None);
}

#[test]
fn longest_prefix_wins_and_root_prefix_matches_all() {
    let routes = [
        route("all", &[], &["/*"], &[]),
        route("api", &[], &["/api/*"], &[]),
        route("v1", &[], &["/api/v1/*"], &[]),
    ];
    let r = Router::build(&routes);
    let cases = [
        ("/", "all", 0),
        ("/x", "all", 0),
        ("/apix", "all", 0),
        ("/api", "api", 4),
        ("/api/", "api", 4),
        ("/api/x/y", "api", 4),
        ("/api/v1", "v1", 7),
        ("/api/v1/", "v1", 7),
        ("/api/v1/a/b", "v1", 7),
        ("/api/v10", "api", 4),
    ];
    for (path, want, prefix_len) in cases {
        let got = lookup(&routes, &r, "", "GET", path);
        assert_eq!(got, Some((want.to_string(), vec![], prefix_len)), "{path}");
    }
}

#[test]
fn root_and_trailing_slash_are_exact_paths() {
    let routes = [
        route("root", &[], &["/"], &[]),
        route("users", &[], &["/users"], &[]),
        route("users-slash", &[], &["/users/"], &[]),
    ];
    let r = Router::build(&routes);
    assert_eq!(id_of(&routes, &r, "", "GET", "/").as_deref(), Some("root"));
    assert_eq!(
        id_of(&routes, &r, "", "GET", "/users").as_deref(),
        Some("users")
    );
    assert_eq!(
        id_of(&routes, &r, "", "GET", "/users/").as_deref(),
        Some("users-slash")
    );
    assert_eq!(id_of(&routes, &r, "", "GET", "//"), None);
    assert_eq!(id_of(&routes, &r, "", "GET", ""), None);
    assert_eq!(id_of(&routes, &r, "", "OPTIONS", "*"), None);
}

#[test]
fn listed_method_beats_any_method() {
    let routes = [
        route("any", &[], &["/items"], &[]),
        route("post", &[], &["/items"], &["POST", "PUT"]),
        route("get-only", &[], &["/only"], &["GET"]),
        route("fallback", &[], &["/*"], &["GET", "DELETE"]),
    ];
    let r = Router::build(&routes);
    assert_eq!(
        id_of(&routes, &r, "", "POST", "/items").as_deref(),
        Some("post")
    );
    assert_eq!(
        id_of(&routes, &r, "", "PUT", "/items").as_deref(),
        Some("post")
    );
    assert_eq!(
        id_of(&routes, &r, "", "GET", "/items").as_deref(),
        Some("any")
    );
    assert_eq!(
        id_of(&routes, &r, "", "PATCH", "/items").as_deref(),
        Some("any")
    );
    // Methods are case-sensitive tokens.
    assert_eq!(
        id_of(&routes, &r, "", "post", "/items").as_deref(),
        Some("any")
    );
    // An exact path whose methods do not fit falls through to the prefixes.
    assert_eq!(
        id_of(&routes, &r, "", "DELETE", "/only").as_deref(),
        Some("fallback")
    );
    assert_eq!(id_of(&routes, &r, "", "POST", "/only"), None);
}

#[test]
fn static_leaf_without_the_method_backtracks_to_param() {
    let routes = [
        route("me-get", &[], &["/users/me"], &["GET"]),
        route("id-post", &[], &["/users/{id}"], &["POST"]),
    ];
    let r = Router::build(&routes);
    assert_eq!(
        id_of(&routes, &r, "", "GET", "/users/me").as_deref(),
        Some("me-get")
    );
    assert_eq!(
        id_of(&routes, &r, "", "POST", "/users/me").as_deref(),
        Some("id-post")
    );
}

#[test]
fn host_tables_exact_then_wildcard_then_any() {
    let routes = [
        route("any", &[], &["/*"], &[]),
        route("wild", &["*.example.com"], &["/*"], &[]),
        route("deep-wild", &["*.b.example.com"], &["/deep"], &[]),
        route("exact", &["API.example.com"], &["/v1/*"], &[]),
        route("v6", &["[::1]"], &["/*"], &[]),
        route("ip", &["10.0.0.1"], &["/*"], &[]),
    ];
    let r = Router::build(&routes);
    let id = |host: &str, path: &str| id_of(&routes, &r, host, "GET", path);
    assert_eq!(id("api.example.com", "/v1/x").as_deref(), Some("exact"));
    assert_eq!(
        id("API.Example.COM:8080", "/v1/x").as_deref(),
        Some("exact")
    );
    assert_eq!(id("api.example.com.", "/v1").as_deref(), Some("exact"));
    // The exact host has no route for /v2: fall through to the wildcard, then any host.
    assert_eq!(id("api.example.com", "/v2").as_deref(), Some("wild"));
    assert_eq!(id("a.example.com", "/x").as_deref(), Some("wild"));
    assert_eq!(id("a.b.example.com", "/x").as_deref(), Some("wild"));
    // Longest suffix first, and it falls through to the shorter one when it has no route.
    assert_eq!(id("a.b.example.com", "/deep").as_deref(), Some("deep-wild"));
    assert_eq!(
        id("x.y.b.example.com:1", "/deep").as_deref(),
        Some("deep-wild")
    );
    assert_eq!(id("b.example.com", "/deep").as_deref(), Some("wild"));
    // A wildcard needs at least one label in front.
    assert_eq!(id("example.com", "/x").as_deref(), Some("any"));
    assert_eq!(id(".example.com", "/x").as_deref(), Some("any"));
    assert_eq!(id("[::1]:8080", "/x").as_deref(), Some("v6"));
    assert_eq!(id("[::1]", "/x").as_deref(), Some("v6"));
    assert_eq!(id("10.0.0.1:80", "/x").as_deref(), Some("ip"));
    assert_eq!(id("", "/x").as_deref(), Some("any"));
    assert_eq!(id("[::1", "/x").as_deref(), Some("any"));
    let long = format!("{}.example.com", "a".repeat(250));
    assert_eq!(id(&long, "/x").as_deref(), Some("any"));
    let just_fits = format!("{}.example.com", "a".repeat(MAX_HOST_LEN - 12));
    assert_eq!(id(&just_fits, "/x").as_deref(), Some("wild"));
}

#[test]
fn without_any_host_route_unknown_hosts_do_not_match() {
    let routes = [route("a", &["a.com"], &["/*"], &[])];
    let r = Router::build(&routes);
    assert_eq!(
        id_of(&routes, &r, "A.com", "GET", "/").as_deref(),
        Some("a")
    );
    assert_eq!(id_of(&routes, &r, "b.com", "GET", "/"), None);
    assert_eq!(id_of(&routes, &r, "", "GET", "/"), None);
}

#[test]
fn unvalidated_input_never_panics_and_first_claim_wins() {
    let routes = [
        route(
            "first",
            &[],
            &["/dup", "bad path", "/x/{1}"],
            &["GET", "get"],
        ),
        route("second", &[], &["/dup"], &["GET"]),
        route("bad-hosts", &["a.com:80", "*x"], &["/*"], &[]),
    ];
    let r = Router::build(&routes);
    assert_eq!(
        id_of(&routes, &r, "", "GET", "/dup").as_deref(),
        Some("first")
    );
    assert_eq!(id_of(&routes, &r, "", "get", "/dup"), None);
    // A route whose hosts are all invalid serves no host rather than every host.
    assert_eq!(id_of(&routes, &r, "a.com", "GET", "/z"), None);
}

#[test]
fn find_does_not_allocate() {
    let routes = [
        route("wild", &["*.example.com"], &["/a/{x}/b/{y}"], &["GET"]),
        route("any", &[], &["/api/*"], &[]),
    ];
    let r = Router::build(&routes);
    let mut m = RouteMatch::default();
    let before = ALLOCS.with(Cell::get);
    let mut hits = 0;
    for (host, path) in [
        (&b"X.Example.COM:443"[..], &b"/a/1/b/2"[..]),
        (b"nope.org", b"/api/v1/users"),
        (b"[::1]:80", b"/nothing/here"),
    ] {
        hits += usize::from(r.find(host, b"GET", path, &mut m));
    }
    assert_eq!(ALLOCS.with(Cell::get), before, "find allocated");
    assert_eq!(hits, 2);
    // The counter does see allocations on this thread.
    let boxed = std::hint::black_box(Box::new(hits));
    assert_eq!(ALLOCS.with(Cell::get), before + 1);
    drop(boxed);
}

/// Trie nodes visited by one lookup, and whether it matched.
fn visits(r: &Router, host: &str, method: &str, path: &str) -> (bool, u32) {
    let mut m = RouteMatch::default();
    let mut n = 0;
    let hit = r.find_counted(
        host.as_bytes(),
        method.as_bytes(),
        path.as_bytes(),
        &mut m,
        &mut n,
    );
    (hit, n)
}

#[test]
fn ten_thousand_routes_cost_the_same_as_one() {
    const N: usize = 10_000;
    let make = |i: usize| {
        let host = format!("h{}.example.com", i % 100);
        let path = format!("/svc{i}/items/{{id}}");
        let prefix = format!("/static{i}/*");
        let mut r = route(&format!("r{i}"), &[&host], &[&path], &["GET"]);
        if i.is_multiple_of(2) {
            r.hosts.push(format!("*.w{}.example.com", i % 50));
            r.paths.push(prefix);
        }
        r
    };
    let mut big: Vec<Route> = (0..N).map(make).collect();
    big.push(route("any", &[], &["/*"], &[]));
    let big_router = Router::build(&big);
    let small: Vec<Route> = vec![make(0), route("any", &[], &["/*"], &[])];
    let small_router = Router::build(&small);
    let (_, exact_one) = visits(&small_router, "h0.example.com", "GET", "/svc0/items/7");
    let (_, prefix_one) = visits(&small_router, "h0.example.com", "GET", "/static0/a/b");
    let (_, wild_one) = visits(&small_router, "x.w0.example.com", "GET", "/svc0/items/7");
    let (_, miss_one) = visits(&small_router, "h0.example.com", "GET", "/svc0/other/7");

    let mut m = RouteMatch::default();
    for i in 0..N {
        let host = format!("H{}.Example.com:8080", i % 100);
        let path = format!("/svc{i}/items/{i}x");
        assert!(big_router.find(host.as_bytes(), b"GET", path.as_bytes(), &mut m));
        assert_eq!(m.route, i);
        assert_eq!(
            m.param_value(path.as_bytes(), 0),
            Some(format!("{i}x").as_bytes())
        );
        assert_eq!(big_router.param_name(i, m.params[0].0), "id");
        // Same work as in the one-route table, for hits, prefix hits and misses alike.
        let (hit, n) = visits(&big_router, &host, "GET", &path);
        assert!(hit);
        assert_eq!(n, exact_one, "exact lookup {i}");
        if i.is_multiple_of(2) {
            let host = format!("h{}.example.com", i % 100);
            let path = format!("/static{i}/a/b");
            assert!(big_router.find(host.as_bytes(), b"GET", path.as_bytes(), &mut m));
            assert_eq!((m.route, m.prefix_len), (i, format!("/static{i}").len()));
            assert_eq!(visits(&big_router, &host, "GET", &path), (true, prefix_one));
            let wild = format!("x.w{}.example.com", i % 50);
            let path = format!("/svc{i}/items/7");
            assert!(big_router.find(wild.as_bytes(), b"GET", path.as_bytes(), &mut m));
            assert_eq!(m.route, i);
            assert_eq!(visits(&big_router, &wild, "GET", &path), (true, wild_one));
        }
        let miss = format!("/svc{i}/other/7");
        assert!(big_router.find(host.as_bytes(), b"GET", miss.as_bytes(), &mut m));
        assert_eq!(m.route, N, "misses fall through to the any-host route");
        assert_eq!(visits(&big_router, &host, "GET", &miss), (true, miss_one));
    }
    // And the work is bounded by the path's depth: a 3-segment exact hit touches one node per
    // segment plus the leaf, nothing proportional to N.
    assert_eq!(exact_one, 4);
}
