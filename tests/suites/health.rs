//! Node health through the real binary: active HTTP and TCP checks take a node out and bring
//! it back, passive checks eject a node failing real traffic, and when every node is down the
//! upstream either fails open or answers 503 `no_healthy_upstream`.

use gatehouse_tests::*;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A config with upstream `up` over `nodes` (TOML node tables), extra upstream lines, and one
/// catch-all route with extra lines.
pub fn config(nodes: &[String], upstream: &str, route: &str) -> String {
    format!(
        "[[upstreams]]\nid = \"up\"\nnodes = [{}]\n{upstream}\n\n\
         [[routes]]\nid = \"all\"\npaths = [\"/*\"]\nupstream = \"up\"\n{route}\n",
        nodes.join(", ")
    )
}

fn node(a: SocketAddr) -> String {
    format!("{{ addr = \"{a}\" }}")
}

/// A backend answering its name, and `status` (changeable) on `/health`.
fn named(name: &'static str, status: Arc<AtomicU16>) -> Backend {
    Backend::start(move |r| {
        if r.target == "/health" {
            Reply::Respond(Response::new(status.load(Ordering::SeqCst), "h"))
        } else {
            Reply::Respond(Response::ok(name))
        }
    })
}

fn metrics(gw: &Gateway) -> String {
    get(gw.admin, "admin", "/metrics").body_str()
}

fn node_state(gw: &Gateway, addr: SocketAddr) -> String {
    let m = metrics(gw);
    let needle =
        format!("gatehouse_upstream_node_healthy{{upstream=\"up\",node=\"{addr}\",state=\"");
    m.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
        .to_string()
}

/// The bodies of `n` GETs, each on its own connection.
fn bodies(gw: &Gateway, n: usize) -> Vec<String> {
    (0..n).map(|_| get(gw.addr, "t", "/x").body_str()).collect()
}

const CHECK: &str = "[upstreams.health_check]\ninterval_ms = 100\ntimeout_ms = 500\n\
                     healthy_threshold = 2\nunhealthy_threshold = 2\n";

#[test]
fn an_http_check_takes_out_a_node_answering_500_and_brings_it_back() {
    let a_status = Arc::new(AtomicU16::new(200));
    let a = named("a", a_status.clone());
    let b = named("b", Arc::new(AtomicU16::new(200)));
    let gw = Gateway::start(&config(
        &[node(a.addr()), node(b.addr())],
        &format!("{CHECK}path = \"/health\"\n"),
        "",
    ));
    let both = bodies(&gw, 4);
    assert!(
        both.contains(&"a".into()) && both.contains(&"b".into()),
        "{both:?}"
    );
    a_status.store(500, Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(5), || node_state(&gw, a.addr())
            == "check_failed"),
        "{}",
        metrics(&gw)
    );
    assert!(bodies(&gw, 10).iter().all(|b| b == "b"));
    // The check went to the configured path, with a Host.
    let checks: Vec<_> = a
        .requests()
        .into_iter()
        .filter(|r| r.target == "/health")
        .collect();
    assert!(checks.len() >= 2 && checks[0].header("host").is_some());
    a_status.store(200, Ordering::SeqCst);
    assert!(wait_until(Duration::from_secs(5), || node_state(
        &gw,
        a.addr()
    ) == "healthy"));
    assert!(bodies(&gw, 4).contains(&"a".into()));
}

#[test]
fn a_tcp_check_follows_a_node_that_stops_and_restarts_listening() {
    let a = named("a", Arc::new(AtomicU16::new(200)));
    let a_addr = a.addr();
    let b = named("b", Arc::new(AtomicU16::new(200)));
    let gw = Gateway::start(&config(
        &[node(a_addr), node(b.addr())],
        &format!("{CHECK}kind = \"tcp\"\n"),
        "retries = 0",
    ));
    drop(a);
    assert!(wait_until(Duration::from_secs(5), || node_state(
        &gw, a_addr
    ) == "check_failed"));
    // With no retries, only the check keeps requests off the dead node.
    assert!(bodies(&gw, 10).iter().all(|b| b == "b"));
    // The same port listens again.
    let l = TcpListener::bind(a_addr).expect("rebind the node's port");
    let _a2 = Backend::serve(l, |_| Reply::Respond(Response::ok("a2")));
    assert!(wait_until(Duration::from_secs(5), || node_state(
        &gw, a_addr
    ) == "healthy"));
    assert!(bodies(&gw, 4).contains(&"a2".into()));
}

#[test]
fn passive_checks_eject_a_node_that_refuses_connections() {
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let b = named("b", Arc::new(AtomicU16::new(200)));
    let gw = Gateway::start(&config(
        &[node(dead), node(b.addr())],
        "[upstreams.outlier]\nconsecutive_failures = 2\nbase_ejection_ms = 60000\n",
        "retries = 0",
    ));
    let answers: Vec<u16> = (0..12).map(|_| get(gw.addr, "t", "/x").status).collect();
    let failed = answers.iter().filter(|s| **s == 502).count();
    assert_eq!(failed, 2, "{answers:?}");
    assert!(answers[6..].iter().all(|s| *s == 200), "{answers:?}");
    assert_eq!(node_state(&gw, dead), "ejected");
    let m = metrics(&gw);
    assert!(
        m.contains(&format!(
            "gatehouse_upstream_node_ejections_total{{upstream=\"up\",node=\"{dead}\"}} 1"
        )),
        "{m}"
    );
}

#[test]
fn with_every_node_down_the_upstream_answers_503_or_fails_open() {
    let status = Arc::new(AtomicU16::new(500));
    let a = named("a", status.clone());
    let b = named("b", status);
    let nodes = [node(a.addr()), node(b.addr())];
    let check = format!("{CHECK}path = \"/health\"\n");
    let closed = Gateway::start(&config(&nodes, &check, ""));
    let open = Gateway::start(&config(&nodes, &format!("fail_open = true\n{check}"), ""));
    for gw in [&closed, &open] {
        assert!(wait_until(Duration::from_secs(5), || {
            node_state(gw, a.addr()) == "check_failed" && node_state(gw, b.addr()) == "check_failed"
        }));
    }
    for _ in 0..3 {
        assert_gateway_error(&get(closed.addr, "t", "/x"), 503, "no_healthy_upstream");
        let r = get(open.addr, "t", "/x");
        assert_eq!(r.status, 200);
        assert!(["a", "b"].contains(&r.body_str().as_str()));
    }
}
