//! `/metrics` on the admin listener: values match the requests sent, summed over workers.

use gatehouse_tests::backend::{Backend, Reply, Response};
use gatehouse_tests::client::{get, Conn};
use gatehouse_tests::gateway::Gateway;
use std::collections::HashMap;

fn scrape(gw: &Gateway) -> HashMap<String, f64> {
    let mut c = Conn::open(gw.admin);
    c.send(b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n")
        .unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));
    r.body_str()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Scrapes until `ready` holds (bounded): a worker counts a request just after its last
/// byte is written, so a scrape sent the moment the client has its answer can come first.
fn scrape_when(
    gw: &Gateway,
    ready: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let m = scrape(gw);
        if ready(&m) || std::time::Instant::now() > end {
            return m;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn counters_match_the_requests_sent() {
    let up = Backend::start(|req| {
        if req.target.starts_with("/missing") {
            Reply::Respond(Response::new(404, "nope"))
        } else {
            Reply::Respond(Response::ok("fine"))
        }
    });
    let cfg = format!(
        "[server]\nworkers = 2\nlisten = [\"{{listen}}\"]\nstate_dir = \"{{state_dir}}\"\n\
         [admin]\nlisten = \"{{admin}}\"\n\
         [[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{}\" }}]\n\
         [[routes]]\nid = \"shop\"\npaths = [\"/shop/*\", \"/missing/*\"]\nupstream = \"up\"\n",
        up.addr()
    );
    let gw = Gateway::start(&cfg);
    // Spread over several connections so both workers take a share.
    for i in 0..30 {
        let r = get(gw.addr, "h", &format!("/shop/{i}"));
        assert_eq!(r.status, 200);
    }
    for _ in 0..5 {
        assert_eq!(get(gw.addr, "h", "/missing/x").status, 404);
    }
    for _ in 0..3 {
        assert_eq!(get(gw.addr, "h", "/elsewhere").status, 404);
    }
    let m = scrape_when(&gw, |m| {
        m.get(r#"gatehouse_request_duration_seconds_count{route="shop"}"#) == Some(&35.0)
    });
    let v = |k: &str| m.get(k).copied().unwrap_or_else(|| panic!("no series {k}"));
    assert_eq!(
        v(r#"gatehouse_requests_total{route="shop",upstream="up",class="2xx"}"#),
        30.0
    );
    assert_eq!(
        v(r#"gatehouse_requests_total{route="shop",upstream="up",class="4xx"}"#),
        5.0
    );
    assert_eq!(
        v(r#"gatehouse_gateway_answers_total{code="no_route"}"#),
        3.0
    );
    assert_eq!(
        v(r#"gatehouse_request_duration_seconds_count{route="shop"}"#),
        35.0
    );
    assert_eq!(
        v(r#"gatehouse_request_duration_seconds_bucket{route="shop",le="+Inf"}"#),
        35.0
    );
    assert_eq!(
        v(r#"gatehouse_upstream_duration_seconds_count{route="shop"}"#),
        35.0
    );
    assert!(v("gatehouse_config_version") >= 1.0);
    let accepted: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("gatehouse_connections_accepted_total"))
        .map(|(_, v)| v)
        .sum();
    // One connection per request, plus the harness's readiness probe.
    assert!((38.0..=39.0).contains(&accepted), "{accepted}");
}

#[test]
fn route_counters_survive_a_config_change_and_labels_follow_the_config() {
    let up = Backend::fixed("ok");
    let gw = Gateway::start(&format!(
        "[[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{}\" }}]\n\
         [[routes]]\nid = \"a\"\npaths = [\"/a/*\"]\nupstream = \"up\"\n",
        up.addr()
    ));
    for _ in 0..4 {
        assert_eq!(get(gw.addr, "h", "/a/1").status, 200);
    }
    // Add a route through the admin API; route "a" keeps its counts.
    let body = r#"{"id":"b","paths":["/b/*"],"upstream":"up"}"#;
    let mut c = Conn::open(gw.admin);
    c.send(format!("PUT /admin/v1/routes/b HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).unwrap();
    assert_eq!(c.read_response().unwrap().status, 201);
    assert_eq!(get(gw.addr, "h", "/b/1").status, 200);
    assert_eq!(get(gw.addr, "h", "/a/2").status, 200);
    let m = scrape_when(&gw, |m| {
        m.get(r#"gatehouse_requests_total{route="a",upstream="up",class="2xx"}"#) == Some(&5.0)
    });
    assert_eq!(
        m[r#"gatehouse_requests_total{route="a",upstream="up",class="2xx"}"#],
        5.0
    );
    assert_eq!(
        m[r#"gatehouse_requests_total{route="b",upstream="up",class="2xx"}"#],
        1.0
    );
    assert!(m["gatehouse_config_version"] >= 2.0);
    // Request data never becomes a label.
    assert!(!m.keys().any(|k| k.contains("/a/1")));
}
