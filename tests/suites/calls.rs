//! Concurrent side-service calls (`auth_service`, `risk`, `device_fingerprint`) through the
//! real binary, against real loopback services.

use gatehouse_tests::backend::{Backend, Reply, Response};
use gatehouse_tests::client::{assert_gateway_error, get, Conn};
use gatehouse_tests::gateway::Gateway;
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Holds each arriving request until `n` have arrived (or `t` passes). A service answering
/// only then proves the calls were in flight together: called one after another, the first
/// would wait for companions that never come, time out and answer 500.
#[derive(Clone)]
struct Barrier {
    inner: Arc<(Mutex<usize>, Condvar)>,
    n: usize,
}

impl Barrier {
    fn new(n: usize) -> Barrier {
        Barrier {
            inner: Arc::new((Mutex::new(0), Condvar::new())),
            n,
        }
    }

    /// True when all arrived within `t`.
    fn arrive(&self, t: Duration) -> bool {
        let (m, cv) = &*self.inner;
        let mut count = m.lock();
        *count += 1;
        cv.notify_all();
        let deadline = Instant::now() + t;
        while *count < self.n {
            if cv.wait_until(&mut count, deadline).timed_out() {
                break;
            }
        }
        *count >= self.n
    }
}

fn service(barrier: Option<Barrier>, answer: Response) -> Backend {
    Backend::start(move |_req| match &barrier {
        Some(b) if !b.arrive(Duration::from_secs(3)) => Reply::Respond(Response::new(500, "alone")),
        _ => Reply::Respond(answer.clone()),
    })
}

fn config(up: &Backend, auth: &Backend, risk: &Backend, device: &Backend, extra: &str) -> String {
    format!(
        "[[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{}\" }}]\n\
         [[upstreams]]\nid = \"auth\"\nnodes = [{{ addr = \"{}\" }}]\n\
         [[upstreams]]\nid = \"risk\"\nnodes = [{{ addr = \"{}\" }}]\n\
         [[upstreams]]\nid = \"device\"\nnodes = [{{ addr = \"{}\" }}]\n\
         [[modules]]\nid = \"auth\"\nkind = \"auth_service\"\nupstream = \"auth\"\npath = \"/check\"\n\
         timeout_ms = 5000\ncopy_headers = [\"X-User-Id\"]\n\
         [[modules]]\nid = \"risk\"\nkind = \"risk\"\nupstream = \"risk\"\npath = \"/score\"\n\
         timeout_ms = 5000\ncopy_headers = [\"X-Risk-Score\"]\n\
         [[modules]]\nid = \"dev\"\nkind = \"device_fingerprint\"\nupstream = \"device\"\npath = \"/fp\"\n\
         timeout_ms = 5000\n{extra}\n\
         [[routes]]\nid = \"all\"\npaths = [\"/*\"]\nupstream = \"up\"\nmodules = [\"auth\", \"risk\", \"dev\"]\n",
        up.addr(),
        auth.addr(),
        risk.addr(),
        device.addr()
    )
}

#[test]
fn the_three_calls_are_in_flight_together_and_their_fields_reach_the_upstream() {
    let up = Backend::fixed("from upstream");
    let b = Barrier::new(3);
    let delay = Duration::from_millis(200);
    let auth = service(
        Some(b.clone()),
        Response::ok("")
            .header("X-User-Id", "u-42")
            .head_delay(delay),
    );
    let risk = service(
        Some(b.clone()),
        Response::ok("")
            .header("X-Risk-Score", "17")
            .head_delay(delay),
    );
    let device = service(Some(b), Response::ok("").head_delay(delay));
    let gw = Gateway::start(&config(&up, &auth, &risk, &device, ""));
    let t0 = Instant::now();
    let mut c = Conn::open(gw.addr);
    c.send(b"GET /orders?id=9 HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer t0k\r\nX-User-Id: forged\r\n\r\n")
        .unwrap();
    let r = c.read_response().unwrap();
    let took = t0.elapsed();
    assert_eq!(r.status, 200, "{}", r.body_str());
    eprintln!("three 200 ms checks took {took:?} in all");
    // Every service got the request identity and the forwarded credential.
    for s in [&auth, &risk, &device] {
        let reqs = s.requests();
        assert_eq!(reqs.len(), 1);
        let h = |n: &str| {
            reqs[0]
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(h("authorization").as_deref(), Some("Bearer t0k"));
        assert_eq!(h("x-original-uri").as_deref(), Some("/orders?id=9"));
        assert_eq!(h("x-original-method").as_deref(), Some("GET"));
        assert_eq!(
            h("x-request-id"),
            r.header("x-request-id").map(str::to_string)
        );
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    let uh = |n: &str| {
        seen[0]
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    // The service's X-User-Id replaces the client's forged one.
    assert_eq!(uh("x-user-id"), vec!["u-42".to_string()]);
    assert_eq!(uh("x-risk-score"), vec!["17".to_string()]);
}

#[test]
fn an_auth_refusal_answers_401_and_nothing_goes_upstream() {
    let up = Backend::fixed("x");
    let auth = service(None, Response::new(401, "no"));
    let risk = service(None, Response::ok(""));
    let device = service(None, Response::ok(""));
    let gw = Gateway::start(&config(&up, &auth, &risk, &device, ""));
    let r = get(gw.addr, "shop", "/a");
    assert_gateway_error(&r, 401, "auth_failed");
    assert_eq!(up.request_count(), 0);
}

#[test]
fn a_risk_refusal_answers_403() {
    let up = Backend::fixed("x");
    let auth = service(None, Response::ok(""));
    let risk = service(None, Response::new(403, "risky"));
    let device = service(None, Response::ok(""));
    let gw = Gateway::start(&config(&up, &auth, &risk, &device, ""));
    let r = get(gw.addr, "shop", "/a");
    assert_gateway_error(&r, 403, "forbidden");
    assert_eq!(up.request_count(), 0);
}

#[test]
fn failure_policies_open_and_closed() {
    // risk hangs past its timeout but fails open; the request goes through.
    let up = Backend::fixed("x");
    let auth = service(None, Response::ok(""));
    let risk = Backend::start(|_| Reply::Hang);
    let device = service(None, Response::ok(""));
    let cfg = config(&up, &auth, &risk, &device, "").replace(
        "path = \"/score\"\ntimeout_ms = 5000",
        "path = \"/score\"\ntimeout_ms = 300",
    );
    let gw = Gateway::start(&cfg);
    let t0 = Instant::now();
    let r = get(gw.addr, "shop", "/a");
    assert_eq!(r.status, 200);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "the call's timeout bounds the wait"
    );
    drop(gw);

    // auth hangs past its timeout and fails closed (the default for auth_service): 401.
    let up = Backend::fixed("x");
    let auth = Backend::start(|_| Reply::Hang);
    let risk = service(None, Response::ok(""));
    let device = service(None, Response::ok(""));
    let cfg = config(&up, &auth, &risk, &device, "").replace(
        "path = \"/check\"\ntimeout_ms = 5000",
        "path = \"/check\"\ntimeout_ms = 300",
    );
    let gw = Gateway::start(&cfg);
    let r = get(gw.addr, "shop", "/a");
    assert_gateway_error(&r, 401, "auth_failed");
    assert_eq!(up.request_count(), 0);

    // A service that is down: the device check fails open by default, so the request passes.
    let up = Backend::fixed("x");
    let auth = service(None, Response::ok(""));
    let risk = service(None, Response::ok(""));
    let device = Backend::fixed("gone");
    let dead = device.addr();
    drop(device);
    let cfg = format!(
        "[[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{}\" }}]\n\
         [[upstreams]]\nid = \"auth\"\nnodes = [{{ addr = \"{}\" }}]\n\
         [[upstreams]]\nid = \"risk\"\nnodes = [{{ addr = \"{}\" }}]\n\
         [[upstreams]]\nid = \"device\"\nnodes = [{{ addr = \"{dead}\" }}]\n\
         [[modules]]\nid = \"dev\"\nkind = \"device_fingerprint\"\nupstream = \"device\"\npath = \"/fp\"\n\
         [[routes]]\nid = \"all\"\npaths = [\"/*\"]\nupstream = \"up\"\nmodules = [\"dev\"]\n",
        up.addr(),
        auth.addr(),
        risk.addr()
    );
    let gw = Gateway::start(&cfg);
    assert_eq!(get(gw.addr, "shop", "/a").status, 200);
}

#[test]
fn check_connections_are_reused_across_requests() {
    let up = Backend::fixed("x");
    let auth = service(None, Response::ok(""));
    let risk = service(None, Response::ok(""));
    let device = service(None, Response::ok(""));
    let gw = Gateway::start(&config(&up, &auth, &risk, &device, ""));
    let mut c = Conn::open(gw.addr);
    for _ in 0..20 {
        c.send(b"GET /a HTTP/1.1\r\nHost: shop\r\n\r\n").unwrap();
        assert_eq!(c.read_response().unwrap().status, 200);
    }
    assert_eq!(auth.request_count(), 20);
    assert_eq!(
        auth.accepts(),
        1,
        "one keep-alive connection to the auth service"
    );
}

#[test]
fn more_call_modules_than_a_route_can_run_is_a_config_error() {
    let dir = gatehouse_tests::gateway::TempDir::new("calls");
    let mut text =
        String::from("[[upstreams]]\nid = \"s\"\nnodes = [{ addr = \"127.0.0.1:9\" }]\n");
    for i in 0..5 {
        text += &format!(
            "[[modules]]\nid = \"c{i}\"\nkind = \"risk\"\nupstream = \"s\"\npath = \"/x\"\n"
        );
    }
    text += "[[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"s\"\nmodules = [\"c0\", \"c1\", \"c2\", \"c3\", \"c4\"]\n";
    let path = dir.write("g.toml", &text);
    let out = gatehouse_tests::gateway::run_cmd(
        &["check", "--config", path.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("routes[0].modules: 5 call modules"), "{err}");
}
