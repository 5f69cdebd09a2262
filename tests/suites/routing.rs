//! Routing seen from outside: which backend a request reaches by host, path and method,
//! the gateway's own 404, and strip_prefix rewriting the forwarded path.
//!
//! Each route points at its own backend answering with a label, so the answer body names
//! the route that matched.

use gatehouse_tests::*;
use std::time::Duration;

/// Backends answering with their label, and TOML upstreams `u_<label>` for them.
struct Labeled {
    backends: Vec<(String, Backend)>,
}

impl Labeled {
    fn new(labels: &[&str]) -> Labeled {
        Labeled {
            backends: labels
                .iter()
                .map(|l| (l.to_string(), Backend::fixed(l)))
                .collect(),
        }
    }

    fn upstreams(&self) -> String {
        self.backends
            .iter()
            .map(|(l, b)| {
                format!(
                    "[[upstreams]]\nid = \"u_{l}\"\nnodes = [{{ addr = \"{}\" }}]\n\n",
                    b.addr()
                )
            })
            .collect()
    }

    fn total_requests(&self) -> usize {
        self.backends.iter().map(|(_, b)| b.request_count()).sum()
    }
}

fn route(id: &str, hosts: &str, paths: &str, methods: &str, extra: &str) -> String {
    format!(
        "[[routes]]\nid = \"{id}\"\nhosts = [{hosts}]\npaths = [{paths}]\nmethods = [{methods}]\n\
         upstream = \"u_{id}\"\n{extra}\n\n"
    )
}

/// `method path` with `Host: host` (None: no Host field, HTTP/1.0) → (status, body).
fn ask(gw: &Gateway, method: &str, host: Option<&str>, path: &str) -> (u16, String) {
    let raw = match host {
        Some(h) => format!("{method} {path} HTTP/1.1\r\nHost: {h}\r\nContent-Length: 0\r\n\r\n"),
        None => format!("{method} {path} HTTP/1.0\r\n\r\n"),
    };
    let mut c = Conn::open(gw.addr);
    c.send(raw.as_bytes()).expect("send");
    let r = c.read_response_for(method).expect("answer");
    (r.status, r.body_str())
}

#[test]
fn hosts_exact_then_wildcard_then_any() {
    let l = Labeled::new(&["exact", "wild", "deep", "any"]);
    let cfg = format!(
        "{}{}{}{}{}",
        l.upstreams(),
        route("exact", "\"api.example.com\"", "\"/who\"", "", ""),
        route("wild", "\"*.example.com\"", "\"/who\"", "", ""),
        route("deep", "\"*.b.example.com\"", "\"/who\"", "", ""),
        route("any", "", "\"/who\"", "", ""),
    );
    let gw = Gateway::start(&cfg);
    let cases: &[(Option<&str>, &str)] = &[
        (Some("api.example.com"), "exact"),
        (Some("API.Example.COM"), "exact"),
        (Some("api.example.com:8080"), "exact"),
        (Some("api.example.com."), "exact"),
        (Some("x.example.com"), "wild"),
        (Some("a.x.example.com"), "wild"),
        (Some("a.b.example.com"), "deep"),
        (Some("example.com"), "any"),
        (Some("other.org"), "any"),
        (Some("127.0.0.1"), "any"),
        (None, "any"),
    ];
    for (host, want) in cases {
        assert_eq!(
            ask(&gw, "GET", *host, "/who"),
            (200, want.to_string()),
            "host {host:?}"
        );
    }
}

#[test]
fn a_host_table_without_the_path_falls_through() {
    let l = Labeled::new(&["exact", "any"]);
    let cfg = format!(
        "{}{}{}",
        l.upstreams(),
        route("exact", "\"api.example.com\"", "\"/only-exact\"", "", ""),
        route("any", "", "\"/*\"", "", ""),
    );
    let gw = Gateway::start(&cfg);
    assert_eq!(
        ask(&gw, "GET", Some("api.example.com"), "/only-exact"),
        (200, "exact".into())
    );
    assert_eq!(
        ask(&gw, "GET", Some("api.example.com"), "/elsewhere"),
        (200, "any".into())
    );
}

#[test]
fn paths_exact_params_and_prefixes() {
    let l = Labeled::new(&["root", "me", "param", "settings", "api", "v1", "enc"]);
    let cfg = format!(
        "{}{}{}{}{}{}{}{}",
        l.upstreams(),
        route("root", "", "\"/\"", "", ""),
        route("me", "", "\"/users/me/profile\"", "", ""),
        route("param", "", "\"/users/{id}\"", "", ""),
        route("settings", "", "\"/users/{id}/settings\"", "", ""),
        route("api", "", "\"/api/*\"", "", ""),
        route("v1", "", "\"/api/v1/*\"", "", ""),
        route("enc", "", "\"/a%20b\"", "", ""),
    );
    let gw = Gateway::start(&cfg);
    let h = Some("t");
    let cases: &[(&str, Option<&str>)] = &[
        ("/", Some("root")),
        ("/users/7", Some("param")),
        ("/users/7?x=/y", Some("param")),
        ("/users/me/profile", Some("me")),
        // The static branch leads nowhere: the {id} branch is tried.
        ("/users/me/settings", Some("settings")),
        ("/users/7/settings", Some("settings")),
        ("/api", Some("api")),
        ("/api/", Some("api")),
        ("/api/x/y", Some("api")),
        ("/api/v1", Some("v1")),
        ("/api/v1/z", Some("v1")),
        ("/a%20b", Some("enc")),
        // Misses: a {param} never matches an empty segment, trailing slash is distinct,
        // prefixes end at a segment boundary, percent-encodings are not decoded.
        ("/users/", None),
        ("/users", None),
        ("/users/7/", None),
        ("/apix", None),
        ("/a b", None),
        ("/a%20B", None),
        ("/nowhere", None),
    ];
    for (path, want) in cases {
        let (status, body) = if path.contains(' ') {
            // Not a valid request line at all; the gateway must not route it.
            let r = roundtrip(
                gw.addr,
                format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
            );
            (r.status, r.body_str())
        } else {
            ask(&gw, "GET", h, path)
        };
        match want {
            Some(w) => assert_eq!((status, body.as_str()), (200, *w), "path {path}"),
            None => assert!(
                status == 404 || status == 400,
                "path {path}: {status} {body}"
            ),
        }
    }
}

#[test]
fn methods_pick_routes_and_unlisted_methods_fall_through() {
    let l = Labeled::new(&["read", "other", "getonly"]);
    let cfg = format!(
        "{}{}{}{}",
        l.upstreams(),
        route("read", "", "\"/m\"", "\"GET\", \"HEAD\"", ""),
        route("other", "", "\"/m\"", "", ""),
        route("getonly", "", "\"/g\"", "\"GET\"", ""),
    );
    let gw = Gateway::start(&cfg);
    assert_eq!(ask(&gw, "GET", Some("t"), "/m"), (200, "read".into()));
    assert_eq!(ask(&gw, "HEAD", Some("t"), "/m"), (200, String::new()));
    assert_eq!(ask(&gw, "POST", Some("t"), "/m"), (200, "other".into()));
    assert_eq!(ask(&gw, "PROPFIND", Some("t"), "/m"), (200, "other".into()));
    assert_eq!(ask(&gw, "GET", Some("t"), "/g"), (200, "getonly".into()));
    let before = l.total_requests();
    let (status, _) = ask(&gw, "POST", Some("t"), "/g");
    assert_eq!(status, 404);
    // Methods are case-sensitive: `get` is another method, which /g does not accept.
    let (status, _) = ask(&gw, "get", Some("t"), "/g");
    assert_eq!(status, 404);
    assert_eq!(l.total_requests(), before, "a 404 reached a backend");
}

#[test]
fn no_route_is_a_json_404_with_a_request_id_and_keeps_the_connection() {
    let b = Backend::fixed("x");
    let cfg = format!(
        "[[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{}\" }}]\n\n\
         [[routes]]\nid = \"r\"\npaths = [\"/there\"]\nupstream = \"up\"\n",
        b.addr()
    );
    let gw = Gateway::start(&cfg);
    let mut c = Conn::open(gw.addr);
    c.send(b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let r = c.read_response().expect("404");
    assert_gateway_error(&r, 404, "no_route");
    assert!(!r.has_token("connection", "close"), "{:?}", r.headers);
    // A valid X-Request-Id from the client is the one the error names.
    c.send(b"GET /nowhere2 HTTP/1.1\r\nHost: t\r\nX-Request-Id: my-id.42\r\n\r\n")
        .expect("send");
    let r = c.read_response().expect("second 404");
    assert_gateway_error(&r, 404, "no_route");
    assert_eq!(r.header("x-request-id"), Some("my-id.42"));
    // The same connection still routes.
    c.send(b"GET /there HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let r = c.read_response().expect("200");
    assert_eq!((r.status, r.body_str().as_str()), (200, "x"));
    assert_eq!(b.request_count(), 1);

    // A 404 for a request with a body: the body is never forwarded.
    let mut c = Conn::open(gw.addr);
    c.send(b"POST /nowhere HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        .expect("send");
    let r = c.read_response().expect("404");
    assert_gateway_error(&r, 404, "no_route");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(b.request_count(), 1);
}

#[test]
fn strip_prefix_forwards_the_rest_of_the_path_with_the_query() {
    let b = Backend::fixed("ok");
    let cfg = format!(
        "[[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{}\" }}]\n\n\
         [[routes]]\nid = \"strip\"\npaths = [\"/api/*\"]\nupstream = \"up\"\nstrip_prefix = true\n\n\
         [[routes]]\nid = \"keep\"\npaths = [\"/keep/*\"]\nupstream = \"up\"\n",
        b.addr()
    );
    let gw = Gateway::start(&cfg);
    let cases = [
        ("/api/x/y", "/x/y"),
        ("/api/x/y?q=1&r=%20", "/x/y?q=1&r=%20"),
        ("/api", "/"),
        ("/api/", "/"),
        ("/api?z=1", "/?z=1"),
        ("/keep/x", "/keep/x"),
    ];
    for (i, (sent, want)) in cases.iter().enumerate() {
        let r = get(gw.addr, "t", sent);
        assert_eq!(r.status, 200, "{sent}");
        let reqs = b.wait_requests(i + 1, Duration::from_secs(5));
        assert_eq!(reqs[i].target, *want, "sent {sent}");
    }
}

#[test]
fn gateway_answers_follow_head_and_connection_rules() {
    let b = Backend::fixed("x");
    let cfg = format!(
        "[[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{}\" }}]\n\n\
         [[routes]]\nid = \"r\"\npaths = [\"/there\"]\nupstream = \"up\"\n",
        b.addr()
    );
    let gw = Gateway::start(&cfg);
    // HEAD: the 404 has no body, so the next answer on the connection parses cleanly.
    let mut c = Conn::open(gw.addr);
    c.send(b"HEAD /nowhere HTTP/1.1\r\nHost: t\r\n\r\nGET /there HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let r = c.read_response_for("HEAD").expect("HEAD 404");
    assert_eq!(r.status, 404);
    assert!(r.header("x-request-id").is_some());
    let r = c.read_response().expect("GET after HEAD 404");
    assert_eq!((r.status, r.body_str().as_str()), (200, "x"));
    // Connection: close from the client: answered, then closed.
    let mut c = Conn::open(gw.addr);
    c.send(b"GET /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send");
    let r = c.read_response().expect("404");
    assert_gateway_error(&r, 404, "no_route");
    assert!(r.has_token("connection", "close"), "{:?}", r.headers);
    assert!(c.closes_within(Duration::from_secs(3)));
    // HTTP/1.0 without keep-alive: answered, then closed.
    let mut c = Conn::open(gw.addr);
    c.send(b"GET /nowhere HTTP/1.0\r\n\r\n").expect("send");
    let r = c.read_response().expect("404");
    assert_gateway_error(&r, 404, "no_route");
    assert!(c.closes_within(Duration::from_secs(3)));
}

/// Dot-segments must not let a request be routed by one path and served as another: the
/// gateway rejects them, or routes and forwards the normalized path — never a raw `..`
/// through a route the normalized path would not take.
#[test]
fn dot_segments_cannot_escape_a_route() {
    let public = Backend::fixed("public");
    let private = Backend::fixed("private");
    let cfg = format!(
        "[[upstreams]]\nid = \"pub\"\nnodes = [{{ addr = \"{}\" }}]\n\n\
         [[upstreams]]\nid = \"priv\"\nnodes = [{{ addr = \"{}\" }}]\n\n\
         [[routes]]\nid = \"pub\"\npaths = [\"/public/*\"]\nupstream = \"pub\"\n\n\
         [[routes]]\nid = \"strip\"\npaths = [\"/s/*\"]\nupstream = \"pub\"\nstrip_prefix = true\n\n\
         [[routes]]\nid = \"priv\"\npaths = [\"/private/*\"]\nupstream = \"priv\"\n",
        public.addr(),
        private.addr()
    );
    let gw = Gateway::start(&cfg);
    for path in [
        "/public/../private/secret",
        "/public/./../private/secret",
        "/public/x/../../private/secret",
        "/s/../private/secret",
        "/s/..",
    ] {
        let r = get(gw.addr, "t", path);
        assert!(
            r.status == 400 || r.status == 404 || r.body_str() == "private",
            "{path}: {} {}",
            r.status,
            r.body_str()
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    for q in public.requests().iter().chain(private.requests().iter()) {
        let segs: Vec<&str> = q
            .target
            .split('?')
            .next()
            .unwrap_or("")
            .split('/')
            .collect();
        assert!(
            !segs.iter().any(|s| *s == ".." || *s == "."),
            "a dot-segment path was forwarded: {:?}",
            q.target
        );
    }
    assert!(
        public.requests().is_empty(),
        "routed by /public/* or /s/*: {:?}",
        public
            .requests()
            .iter()
            .map(|q| &q.target)
            .collect::<Vec<_>>()
    );
}

/// An absolute-form target names the host (RFC 9112 §3.2.2): the upstream must receive the
/// host the request was routed by, not a different Host field.
#[test]
fn absolute_form_targets_route_and_forward_one_and_the_same_host() {
    let public = Backend::fixed("public");
    let cfg = format!(
        "[[upstreams]]\nid = \"pub\"\nnodes = [{{ addr = \"{}\" }}]\n\n\
         [[routes]]\nid = \"pub\"\nhosts = [\"public.example\"]\npaths = [\"/*\"]\nupstream = \"pub\"\n",
        public.addr()
    );
    let gw = Gateway::start(&cfg);
    let r = roundtrip(
        gw.addr,
        b"GET http://public.example/x HTTP/1.1\r\nHost: internal.example\r\n\r\n",
    );
    if r.status == 200 {
        let q = &public.wait_requests(1, Duration::from_secs(5))[0];
        let host = q.header("host").unwrap_or("");
        assert!(
            host.eq_ignore_ascii_case("public.example"),
            "routed as public.example, forwarded with Host: {host}"
        );
        assert_eq!(q.target, "/x");
    } else {
        // Refusing a Host that disagrees with the target is fine too.
        assert_gateway_error(&r, 400, "bad_request");
    }
}
