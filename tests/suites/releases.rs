//! Gray releases through the real binary (docs/releases.md): a route release by header match
//! with promote and rollback, a 10% split over 10,000 requests that sticks per key with its
//! per-side counters, a module release, and the guard rolling back a candidate that answers
//! 500s (recorded in the audit log); a running release survives a restart.

use gatehouse_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

/// A keep-alive admin client.
struct Api(Conn);

impl Api {
    fn open(g: &Gateway) -> Api {
        Api(Conn::open(g.admin))
    }

    fn call(&mut self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.0.send(raw.as_bytes()).expect("send to admin");
        let r = self
            .0
            .read_response_for(method)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (r.status, r.json().unwrap_or(Value::Null))
    }
}

/// Two backends answering with their name: `stable` behind upstream `up` and route `api`
/// (`/api/*`, with a header module), `next` behind upstream `next` for candidates. Two
/// workers, so every check covers the summing of per-core counters.
fn setup(next: Backend) -> (Gateway, Backend, Backend) {
    let stable = named("stable");
    let g = Gateway::start(&config("{state_dir}", &stable, &next));
    (g, stable, next)
}

fn config(state_dir: &str, stable: &Backend, next: &Backend) -> String {
    format!(
        "[server]\nworkers = 2\nlisten = [\"{{listen}}\"]\nstate_dir = \"{state_dir}\"\n\
         [admin]\nlisten = \"{{admin}}\"\n\
         [[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{}\" }}]\n\
         [[upstreams]]\nid = \"next\"\nnodes = [{{ addr = \"{}\" }}]\n\
         [[modules]]\nid = \"tag\"\nkind = \"headers\"\nrequest_set = {{ X-V = \"1\" }}\n\
         [[routes]]\nid = \"api\"\npaths = [\"/api/*\"]\nupstream = \"up\"\nmodules = [\"tag\"]\n\
         [[routes]]\nid = \"other\"\npaths = [\"/other\"]\nupstream = \"up\"\n",
        stable.addr(),
        next.addr()
    )
}

fn named(name: &'static str) -> Backend {
    Backend::start(move |r| {
        let v = r.header("x-v").unwrap_or("-").to_string();
        Reply::Respond(Response::ok(format!("{name} {v}")))
    })
}

/// `GET path` with extra header lines on a keep-alive connection → (status, body).
fn get_with(c: &mut Conn, path: &str, extra: &str) -> (u16, String) {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes())
        .expect("send");
    let r = c.read_response().expect("answer");
    (r.status, r.body_str())
}

fn candidate_route() -> Value {
    json!({"paths": ["/api/*"], "upstream": "next", "modules": ["tag"]})
}

fn audit(api: &mut Api) -> Vec<Value> {
    let (s, v) = api.call("GET", "/admin/v1/audit?limit=50", "");
    assert_eq!(s, 200, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_header_release_of_a_route_is_promoted_or_rolled_back_at_once() {
    let (g, _stable, _next) = setup(named("next"));
    let mut api = Api::open(&g);
    let mut c = Conn::open(g.addr);

    // Refusals first: an absent target, a candidate that changes what the route matches.
    let (s, v) = api.call(
        "PUT",
        "/admin/v1/releases/bad",
        &json!({"target": "routes/nope", "candidate": {}, "split": {"header": "X"}}).to_string(),
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("dangling_reference")),
        "{v}"
    );
    assert_eq!(v["error"]["field"], "target");
    let (s, v) = api.call(
        "PUT",
        "/admin/v1/releases/bad",
        &json!({"target": "routes/api", "candidate": {"paths": ["/x"], "upstream": "next"},
                "split": {"header": "X"}})
        .to_string(),
    );
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("candidate.paths")),
        "{v}"
    );
    let (s, v) = api.call(
        "PUT",
        "/admin/v1/releases/bad",
        &json!({"target": "routes/api", "candidate": candidate_route(),
                "split": {"percent": 10, "header": "X"}})
        .to_string(),
    );
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("split")),
        "{v}"
    );

    let body = json!({
        "target": "routes/api",
        "candidate": candidate_route(),
        "split": {"header": "X-Canary", "values": ["on"]}
    })
    .to_string();
    let (s, v) = api.call("PUT", "/admin/v1/releases/canary", &body);
    assert_eq!(s, 201, "{v}");
    let started = v["version"].as_u64().expect("version");
    assert_eq!(
        v["candidate"]["id"], "api",
        "the candidate carries the target's id: {v}"
    );

    // Both sides live at once, on the same keep-alive connection.
    assert_eq!(
        get_with(&mut c, "/api/a", "X-Canary: on\r\n"),
        (200, "next 1".into())
    );
    assert_eq!(get_with(&mut c, "/api/a", ""), (200, "stable 1".into()));
    assert_eq!(
        get_with(&mut c, "/api/a", "X-Canary: off\r\n"),
        (200, "stable 1".into())
    );
    assert_eq!(
        get_with(&mut c, "/other", "X-Canary: on\r\n"),
        (200, "stable -".into())
    );

    let (s, v) = api.call("GET", "/admin/v1/releases/canary", "");
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["state"].as_str(), v["since_version"].as_u64()),
        (Some("running"), Some(started))
    );
    assert_eq!(v["counters"]["candidate"]["requests"], 1, "{v}");
    assert_eq!(v["counters"]["stable"]["requests"], 2, "{v}");
    assert_eq!(v["counters"]["stable"]["classes"]["2xx"], 2, "{v}");
    // Listed like any resource, and in the whole config.
    let (_, list) = api.call("GET", "/admin/v1/releases", "");
    assert_eq!(list["items"][0]["id"], "canary", "{list}");

    // Rollback: one version, the release gone, the stable route serves everyone.
    let (s, v) = api.call("POST", "/admin/v1/releases/canary/rollback", "");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "rolled_back");
    assert_eq!(v["version"].as_u64(), Some(started + 1));
    assert_eq!(
        v["counters"]["candidate"]["requests"], 1,
        "final counts are kept: {v}"
    );
    assert_eq!(
        get_with(&mut c, "/api/a", "X-Canary: on\r\n"),
        (200, "stable 1".into())
    );
    let (s, v) = api.call("GET", "/admin/v1/releases/canary", "");
    assert_eq!((s, v["state"].as_str()), (200, Some("rolled_back")), "{v}");
    let (s, _) = api.call("POST", "/admin/v1/releases/canary/rollback", "");
    assert_eq!(s, 404, "nothing left to roll back");
    let (_, list) = api.call("GET", "/admin/v1/releases", "");
    assert_eq!(list["items"], json!([]));

    // Again, then promote: the route becomes the candidate, in one version.
    let (s, v) = api.call("PUT", "/admin/v1/releases/canary", &body);
    assert_eq!(s, 201, "{v}");
    let (s, v) = api.call("GET", "/admin/v1/releases/canary", "");
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("running")),
        "a new start: {v}"
    );
    assert_eq!(
        get_with(&mut c, "/api/b", "X-Canary: on\r\n"),
        (200, "next 1".into())
    );
    let (s, v) = api.call("POST", "/admin/v1/releases/canary/promote", "");
    assert_eq!(s, 200, "{v}");
    let promoted = v["version"].as_u64().expect("version");
    assert_eq!(v["state"], "promoted");
    assert_eq!(get_with(&mut c, "/api/b", ""), (200, "next 1".into()));
    let (s, route) = api.call("GET", "/admin/v1/routes/api", "");
    assert_eq!(
        (s, route["upstream"].as_str()),
        (200, Some("next")),
        "{route}"
    );
    assert_eq!(route["version"].as_u64(), Some(promoted));
    let (_, list) = api.call("GET", "/admin/v1/releases", "");
    assert_eq!(list["items"], json!([]));

    // While a route is under release, deleting it (or an upstream its candidate uses) is
    // refused, and a DELETE of the release is a rollback.
    let back = json!({"target": "routes/api",
                      "candidate": {"paths": ["/api/*"], "upstream": "up"},
                      "split": {"ips": ["127.0.0.0/8"]}})
    .to_string();
    let (s, v) = api.call("PUT", "/admin/v1/releases/back", &back);
    assert_eq!(s, 201, "{v}");
    assert_eq!(get_with(&mut c, "/api/c", ""), (200, "stable -".into()));
    let (s, v) = api.call("DELETE", "/admin/v1/routes/api", "");
    assert_eq!(s, 409, "{v}");
    let (s, _) = api.call("DELETE", "/admin/v1/releases/back", "");
    assert_eq!(s, 204);
    assert_eq!(get_with(&mut c, "/api/c", ""), (200, "next 1".into()));

    let items = audit(&mut api);
    let last = items.last().expect("audit records");
    assert_eq!(
        (last["kind"].as_str(), last["id"].as_str()),
        (Some("releases"), Some("back"))
    );
    assert!(items
        .iter()
        .any(|r| r["path"] == "/admin/v1/releases/canary/promote"));
}

#[test]
fn a_ten_percent_split_holds_over_10000_requests_and_sticks_per_key() {
    let (g, stable, next) = setup(named("next"));
    let mut api = Api::open(&g);
    let body = json!({
        "target": "routes/api",
        "candidate": candidate_route(),
        "split": {"percent": 10, "by": "header", "name": "X-User"}
    })
    .to_string();
    let (s, v) = api.call("PUT", "/admin/v1/releases/ten", &body);
    assert_eq!(s, 201, "{v}");

    // Several connections, so both workers take a share.
    let mut conns: Vec<Conn> = (0..4).map(|_| Conn::open(g.addr)).collect();
    let mut side = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let c = &mut conns[i % 4];
        let (s, b) = get_with(c, "/api/x", &format!("X-User: user-{i}\r\n"));
        assert_eq!(s, 200, "{b}");
        side.push(b.starts_with("next"));
    }
    let on_candidate = side.iter().filter(|c| **c).count();
    assert!(
        (800..=1200).contains(&on_candidate),
        "{on_candidate} of 10,000 on the candidate (10% ± 2 points)"
    );
    // Every key sticks: the same users again, on other connections, land on the same side.
    for i in (0..10_000).step_by(50) {
        let c = &mut conns[(i + 1) % 4];
        let (_, b) = get_with(c, "/api/y", &format!("X-User: user-{i}\r\n"));
        assert_eq!(b.starts_with("next"), side[i], "user-{i} changed sides");
    }
    // No key: stable.
    let (_, b) = get_with(&mut conns[0], "/api/z", "");
    assert!(b.starts_with("stable"), "{b}");

    let again = 10_000 / 50;
    let again_cand = (0..10_000).step_by(50).filter(|i| side[*i]).count();
    let want_cand = on_candidate + again_cand;
    let want_stable = 10_000 + again + 1 - want_cand;
    // The counters are summed over both workers; the last answers may still be settling.
    let settled = wait_until(Duration::from_secs(5), || {
        let (_, v) = api.call("GET", "/admin/v1/releases/ten", "");
        v["counters"]["candidate"]["requests"] == want_cand
            && v["counters"]["stable"]["requests"] == want_stable
    });
    let (_, v) = api.call("GET", "/admin/v1/releases/ten", "");
    assert!(settled, "want {want_cand}/{want_stable}: {v}");
    let cand = &v["counters"]["candidate"];
    assert_eq!(cand["classes"]["2xx"], want_cand, "{v}");
    assert_eq!(cand["errors"], 0);
    let hist_total: u64 = cand["histogram"]
        .as_array()
        .expect("histogram")
        .iter()
        .map(|b| b["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(hist_total as usize, want_cand, "{v}");
    assert!(cand["latency_ms"]["p99"].as_f64().is_some(), "{v}");
    assert_eq!(next.request_count(), want_cand);
    assert_eq!(stable.request_count(), want_stable);
    // The same counts in /metrics.
    let (s, text) = {
        let mut c = Conn::open(g.admin);
        c.send(b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n")
            .expect("send");
        let r = c.read_response().expect("metrics");
        (r.status, r.body_str())
    };
    assert_eq!(s, 200);
    let line = format!(
        "gatehouse_release_requests_total{{release=\"ten\",side=\"candidate\",class=\"2xx\"}} {want_cand}"
    );
    assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
}

#[test]
fn a_module_release_runs_the_candidate_module_on_its_share() {
    let (g, _stable, _next) = setup(named("next"));
    let mut api = Api::open(&g);
    let mut c = Conn::open(g.addr);
    // A candidate that does not compile as its kind is refused, named under `candidate`.
    let (s, v) = api.call(
        "PUT",
        "/admin/v1/releases/tag2",
        &json!({"target": "modules/tag", "candidate": {"kind": "headers", "request_set": 5},
                "split": {"header": "X"}})
        .to_string(),
    );
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("candidate.request_set")),
        "{v}"
    );
    let body = json!({
        "target": "modules/tag",
        "candidate": {"kind": "headers", "request_set": {"X-V": "2"}},
        "split": {"cookie": "beta", "values": ["yes"]}
    })
    .to_string();
    let (s, v) = api.call("PUT", "/admin/v1/releases/tag2", &body);
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        get_with(&mut c, "/api/a", "Cookie: beta=yes\r\n"),
        (200, "stable 2".into())
    );
    assert_eq!(
        get_with(&mut c, "/api/a", "Cookie: beta=no\r\n"),
        (200, "stable 1".into())
    );
    // One release per target (and per route).
    let (s, v) = api.call("PUT", "/admin/v1/releases/tag3", &body);
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("target")),
        "{v}"
    );
    let (s, v) = api.call("GET", "/admin/v1/releases/tag2", "");
    assert_eq!(s, 200);
    assert_eq!(v["counters"]["candidate"]["requests"], 1, "{v}");
    assert_eq!(v["counters"]["stable"]["requests"], 1, "{v}");
    let (s, v) = api.call("POST", "/admin/v1/releases/tag2/promote", "");
    assert_eq!(s, 200, "{v}");
    assert_eq!(get_with(&mut c, "/api/a", ""), (200, "stable 2".into()));
    let (_, m) = api.call("GET", "/admin/v1/modules/tag", "");
    assert_eq!(m["request_set"]["X-V"], "2", "{m}");
}

#[test]
fn the_guard_rolls_back_a_candidate_that_answers_500s() {
    let failing = Backend::start(|_| Reply::Respond(Response::new(500, "boom")));
    let (g, _stable, _failing) = setup(failing);
    let mut api = Api::open(&g);
    let body = json!({
        "target": "routes/api",
        "candidate": candidate_route(),
        "split": {"percent": 50, "by": "header", "name": "X-User"},
        "guard": {"window_ms": 2000, "min_requests": 20, "error_rate_margin": 10,
                  "interval_ms": 100}
    })
    .to_string();
    let (s, v) = api.call("PUT", "/admin/v1/releases/risky", &body);
    assert_eq!(s, 201, "{v}");

    let mut c = Conn::open(g.addr);
    let mut i = 0;
    let mut saw_500 = false;
    let rolled_back = wait_until(Duration::from_secs(15), || {
        for _ in 0..20 {
            let (s, _) = get_with(&mut c, "/api/x", &format!("X-User: u{i}\r\n"));
            saw_500 |= s == 500;
            i += 1;
        }
        let (_, v) = api.call("GET", "/admin/v1/releases/risky", "");
        v["state"] == "rolled_back"
    });
    let (_, v) = api.call("GET", "/admin/v1/releases/risky", "");
    assert!(saw_500, "the candidate was live before the guard fired");
    assert!(rolled_back, "the guard did not fire: {v}");
    assert_eq!(v["ended_by"], "guard", "{v}");
    assert!(
        v["reason"].as_str().unwrap_or("").contains("5xx rate"),
        "{v}"
    );
    // Everyone is on the stable side again.
    for j in 0..50 {
        let (s, b) = get_with(&mut c, "/api/x", &format!("X-User: u{j}\r\n"));
        assert_eq!((s, b.as_str()), (200, "stable 1"));
    }
    let items = audit(&mut api);
    let rec = items
        .iter()
        .rev()
        .find(|r| r["id"] == "risky")
        .expect("an audit record of the rollback");
    assert_eq!(rec["who"], "guard", "{rec}");
    assert_eq!(rec["path"], "/admin/v1/releases/risky/rollback");
    assert!(g.stderr().contains("guard rolled back release risky"));
}

#[test]
fn a_running_release_survives_a_restart() {
    let (stable, next) = (named("stable"), named("next"));
    let state = TempDir::new("releases-restart");
    let dir = state.0.join("state").display().to_string();
    let g = Gateway::start(&config(&dir, &stable, &next));
    let mut api = Api::open(&g);
    let body = json!({"target": "routes/api", "candidate": candidate_route(),
                      "split": {"header": "X-Canary"}})
    .to_string();
    let (s, v) = api.call("PUT", "/admin/v1/releases/kept", &body);
    assert_eq!(s, 201, "{v}");
    drop(api);
    drop(g);

    let g = Gateway::start(&config(&dir, &stable, &next));
    let mut api = Api::open(&g);
    let (s, v) = api.call("GET", "/admin/v1/releases/kept", "");
    assert_eq!((s, v["state"].as_str()), (200, Some("running")), "{v}");
    assert_eq!(
        v["counters"]["candidate"]["requests"], 0,
        "counters start again: {v}"
    );
    let mut c = Conn::open(g.addr);
    assert_eq!(
        get_with(&mut c, "/api/a", "X-Canary: 1\r\n"),
        (200, "next 1".into())
    );
    assert_eq!(get_with(&mut c, "/api/a", ""), (200, "stable 1".into()));
}
