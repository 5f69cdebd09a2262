//! Overload protection through the real binary (docs/overload.md): slowloris heads, slow
//! bodies and slow readers are cut off by their timeouts while other clients keep being
//! served; in-flight caps per upstream and per route answer 503 at once; the memory guard
//! sheds; and upstream faults made by the fault proxy (resets, black holes, latency,
//! bandwidth, fragments) end in 502/504 or an aborted answer, never a hang.

use gatehouse_tests::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Every test here answers within a few seconds; this bounds a wrong one.
const ANSWER: Duration = Duration::from_secs(10);

/// Room for `n` descriptors in this process and in the gateways it starts (children inherit
/// the limit).
fn raise_nofile(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit with a properly initialised struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < n {
            lim.rlim_cur = n.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
    assert!(
        lim.rlim_cur >= n,
        "descriptor limit {} below {n}; raise the hard limit (ulimit -Hn)",
        lim.rlim_cur
    );
}

fn get_on(c: &mut Conn, path: &str) -> Resp {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .expect("send");
    c.read_response().expect("answer")
}

/// A connection is over once it reads end of stream or a reset (after any answer).
fn wait_closed(s: &mut TcpStream, until: Instant) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn a_thousand_slowloris_connections_are_cut_off_while_others_are_served() {
    raise_nofile(4096);
    let b = Backend::fixed("ok");
    let gw = Gateway::start(&one_route(b.addr(), "header_timeout_ms = 1000", "", ""));
    // Normal traffic on other connections the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic = {
        let (stop, served, failed, addr) = (stop.clone(), served.clone(), failed.clone(), gw.addr);
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let mut c = Conn::open(addr);
                for _ in 0..5 {
                    c.send(b"GET /n HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
                    match c.read_response() {
                        Ok(r) if r.status == 200 && r.body == b"ok" => {
                            served.fetch_add(1, Ordering::SeqCst)
                        }
                        _ => failed.fetch_add(1, Ordering::SeqCst),
                    };
                    thread::sleep(Duration::from_millis(10));
                }
            }
        })
    };
    // Half send a partial head and then a byte now and then; half send nothing at all.
    let mut lorises: Vec<(TcpStream, Instant)> = Vec::with_capacity(1000);
    for i in 0..1000 {
        let mut s = TcpStream::connect(gw.addr).expect("connect");
        let opened = Instant::now();
        if i % 2 == 0 {
            s.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n")
                .expect("partial head");
        }
        lorises.push((s, opened));
    }
    let tricklers: Vec<TcpStream> = lorises
        .iter()
        .step_by(2)
        .filter_map(|(s, _)| s.try_clone().ok())
        .collect();
    let trickle = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut tricklers = tricklers;
            for _ in 0..6 {
                for s in &mut tricklers {
                    let _ = s.write_all(b"X");
                }
                thread::sleep(Duration::from_millis(500));
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
        })
    };
    // Header timeout (1 s) + 1 s from each connection's start.
    let mut late = 0;
    for (s, opened) in &mut lorises {
        if !wait_closed(s, *opened + Duration::from_secs(2)) {
            late += 1;
        }
    }
    stop.store(true, Ordering::SeqCst);
    traffic.join().expect("traffic thread");
    trickle.join().expect("trickle thread");
    assert_eq!(late, 0, "{late} slowloris connections still open after 2 s");
    assert_eq!(failed.load(Ordering::SeqCst), 0, "normal requests failed");
    assert!(
        served.load(Ordering::SeqCst) >= 5,
        "too few normal requests served"
    );
    assert_eq!(get(gw.addr, "t", "/after").status, 200);
}

#[test]
fn a_slow_body_is_answered_408_after_the_body_timeout() {
    let b = Backend::echo();
    let gw = Gateway::start(&one_route(b.addr(), "body_timeout_ms = 1000", "", ""));
    let mut c = Conn::open(gw.addr);
    c.set_timeout(ANSWER);
    c.send(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf!")
        .expect("send");
    let t = Instant::now();
    let r = c.read_response().expect("an answer, not a hang");
    assert_gateway_error(&r, 408, "client_timeout");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(c.closes_within(Duration::from_secs(3)));
    // The upstream got a partial request whose connection was dropped; nothing completed.
    assert!(b.requests().iter().all(|q| !q.complete));
    assert_eq!(get(gw.addr, "t", "/ok").status, 200);
}

#[test]
fn a_slow_reader_is_closed_after_the_send_timeout_and_its_upstream_connection_dropped() {
    let len = 64u64 << 20;
    let b = Backend::start(move |_| Reply::Respond(Response::pattern(len)));
    let fp = FaultProxy::start(b.addr());
    let gw = Gateway::start(&one_route(fp.addr(), "send_timeout_ms = 1000", "", ""));
    let mut c = Conn::open(gw.addr);
    c.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let r = c.read_head("GET").expect("head");
    assert_eq!(r.status, 200);
    assert_eq!(fp.open(), 1);
    // The client reads nothing more: the gateway gives up and drops the upstream side too.
    assert!(
        wait_until(ANSWER, || fp.open() == 0),
        "the upstream connection of a cut-off exchange is still open"
    );
    let mut got = 0u64;
    c.set_timeout(Duration::from_secs(5));
    assert!(c.read_body(&r, |d| got += d.len() as u64).is_err());
    assert!(got < len);
    // Healthy afterwards, through a fresh upstream connection.
    let mut c = Conn::open(gw.addr);
    c.send(b"HEAD /big HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    assert_eq!(c.read_response_for("HEAD").expect("answer").status, 200);
}

/// A backend that holds `/hold` requests until `release` is set, counting them as they come.
fn holding_backend() -> (Backend, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let release = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicUsize::new(0));
    let (r2, h2) = (release.clone(), held.clone());
    let b = Backend::start(move |q| {
        if q.target.starts_with("/hold") {
            h2.fetch_add(1, Ordering::SeqCst);
            let end = Instant::now() + Duration::from_secs(20);
            while !r2.load(Ordering::SeqCst) && Instant::now() < end {
                thread::sleep(Duration::from_millis(5));
            }
        }
        Reply::Respond(Response::ok("done"))
    });
    (b, release, held)
}

/// Sends `GET path` on a new connection without reading the answer.
fn start_get(addr: SocketAddr, path: &str) -> Conn {
    let mut c = Conn::open(addr);
    c.set_timeout(Duration::from_secs(20));
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .expect("send");
    c
}

#[test]
fn the_upstream_cap_answers_503_at_once_and_lets_requests_through_again() {
    let (b, release, held) = holding_backend();
    let gw = Gateway::start(&one_route(b.addr(), "", "max_requests = 2", ""));
    let mut holders: Vec<Conn> = (0..2).map(|_| start_get(gw.addr, "/hold")).collect();
    assert!(wait_until(ANSWER, || held.load(Ordering::SeqCst) == 2));
    // Full: the third is refused while the two are still held.
    let r = get(gw.addr, "t", "/third");
    assert_gateway_error(&r, 503, "overloaded");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(!release.load(Ordering::SeqCst));
    assert!(
        b.requests().iter().all(|q| q.target != "/third"),
        "the refused request reached the backend"
    );
    release.store(true, Ordering::SeqCst);
    for c in &mut holders {
        let r = c.read_response().expect("held answer");
        assert_eq!((r.status, r.body_str().as_str()), (200, "done"));
    }
    // Places given back: two at once fit again.
    release.store(false, Ordering::SeqCst);
    let mut again: Vec<Conn> = (0..2).map(|_| start_get(gw.addr, "/hold-again")).collect();
    assert!(wait_until(ANSWER, || held.load(Ordering::SeqCst) == 4));
    release.store(true, Ordering::SeqCst);
    for c in &mut again {
        assert_eq!(c.read_response().expect("answer").status, 200);
    }
    assert_eq!(get(gw.addr, "t", "/free").status, 200);
}

#[test]
fn the_route_cap_counts_its_own_route_only() {
    let (b, release, held) = holding_backend();
    let gw = Gateway::start(&format!(
        "[[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{}\" }}]\n\n\
         [[routes]]\nid = \"capped\"\npaths = [\"/hold\", \"/capped\"]\nupstream = \"up\"\nmax_concurrent = 1\n\n\
         [[routes]]\nid = \"open\"\npaths = [\"/*\"]\nupstream = \"up\"\n",
        b.addr()
    ));
    let mut holder = start_get(gw.addr, "/hold");
    assert!(wait_until(ANSWER, || held.load(Ordering::SeqCst) == 1));
    assert_gateway_error(&get(gw.addr, "t", "/capped"), 503, "overloaded");
    // Another route to the same upstream is not affected.
    assert_eq!(get(gw.addr, "t", "/other").status, 200);
    release.store(true, Ordering::SeqCst);
    assert_eq!(holder.read_response().expect("held").status, 200);
    assert_eq!(get(gw.addr, "t", "/capped").status, 200);
}

#[test]
fn the_memory_guard_sheds_with_503_over_its_limit() {
    let b = Backend::fixed("ok");
    let server = |mb: u64| {
        format!(
            "[server]\nworkers = 1\nlisten = [\"{{listen}}\"]\nstate_dir = \"{{state_dir}}\"\n\
             max_memory_mb = {mb}\n\n{}",
            one_route(b.addr(), "", "", "")
        )
    };
    // 1 MiB: any process is over it.
    let gw = Gateway::start(&server(1));
    let mut last = None;
    assert!(wait_until(ANSWER, || {
        let r = get(gw.addr, "t", "/");
        let shed = r.status == 503;
        last = Some(r);
        shed
    }));
    let r = last.expect("an answer");
    assert_gateway_error(&r, 503, "overloaded");
    assert!(r.has_token("connection", "close"), "{:?}", r.headers);
    // Requests in the first check period (100 ms) went through; none does any more.
    let before = b.request_count();
    for _ in 0..5 {
        assert_gateway_error(&get(gw.addr, "t", "/"), 503, "overloaded");
    }
    assert_eq!(
        b.request_count(),
        before,
        "a shed request reached the backend"
    );
    let metrics = get(gw.admin, "t", "/metrics").body_str();
    assert!(
        metrics.contains("gatehouse_memory_shedding{worker=\"0\"} 1"),
        "{metrics}"
    );
    // A limit well above what the gateway uses does not shed.
    let gw = Gateway::start(&server(4096));
    thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        assert_eq!(get(gw.addr, "t", "/").status, 200);
    }
}

#[test]
fn connections_over_the_cap_wait_in_the_backlog_and_are_all_served() {
    let b = Backend::fixed("x");
    let gw = Gateway::start(&format!(
        "[server]\nworkers = 1\nlisten = [\"{{listen}}\"]\nstate_dir = \"{{state_dir}}\"\n\
         max_connections = 4\n\n{}",
        one_route(b.addr(), "", "", "")
    ));
    // 24 clients at once on a 4-connection worker: each is served in turn, none refused.
    let clients: Vec<_> = (0..24)
        .map(|i| {
            let addr = gw.addr;
            thread::spawn(move || {
                let mut c = Conn::open(addr);
                c.set_timeout(Duration::from_secs(20));
                c.send(
                    format!("GET /{i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
                )
                .expect("send");
                c.read_response().map(|r| r.status)
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().expect("client").expect("answer"), 200);
    }
}

// ------------------------------------------------------------ upstream faults (fault proxy)

fn gw_through(fp: &FaultProxy, upstream: &str) -> Gateway {
    Gateway::start(&one_route(fp.addr(), "", upstream, ""))
}

#[test]
fn resets_at_connect_and_after_the_request_are_502() {
    let b = Backend::fixed("ok");
    for reset in [
        Reset::AtConnect,
        Reset::AfterRequestBytes(10),
        Reset::AfterRequestBytes(0),
    ] {
        let fp = FaultProxy::with(
            b.addr(),
            Faults {
                reset,
                ..Faults::default()
            },
        );
        let gw = gw_through(&fp, "");
        let mut c = Conn::open(gw.addr);
        c.set_timeout(ANSWER);
        let r = get_on(&mut c, "/");
        assert_gateway_error(&r, 502, "upstream_failed");
        assert!(fp.resets() >= 1, "{reset:?}");
    }
    let fp = FaultProxy::with(
        b.addr(),
        Faults {
            close_after_request: true,
            ..Faults::default()
        },
    );
    let gw = gw_through(&fp, "");
    assert_gateway_error(&get(gw.addr, "t", "/"), 502, "upstream_failed");
    // The fault gone, the same gateway serves through the same proxy.
    fp.set(Faults::default());
    assert_eq!(get(gw.addr, "t", "/").body_str(), "ok");
}

#[test]
fn a_reset_mid_body_aborts_the_answer_without_a_hang() {
    let b = Backend::start(|_| Reply::Respond(Response::pattern(1 << 20)));
    let fp = FaultProxy::with(
        b.addr(),
        Faults {
            reset: Reset::AfterResponseBytes(4096),
            ..Faults::default()
        },
    );
    let gw = gw_through(&fp, "");
    let mut c = Conn::open(gw.addr);
    c.set_timeout(ANSWER);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    let r = c.read_head("GET").expect("head");
    assert_eq!(r.status, 200);
    let mut got = 0u64;
    let t = Instant::now();
    let res = c.read_body(&r, |d| got += d.len() as u64);
    assert!(res.is_err(), "a cut answer read as whole");
    assert!(got < 1 << 20);
    assert!(t.elapsed() < ANSWER);
}

#[test]
fn a_node_that_never_answers_is_504_within_the_read_timeout() {
    let b = Backend::fixed("ok");
    let fp = FaultProxy::with(
        b.addr(),
        Faults {
            blackhole: true,
            ..Faults::default()
        },
    );
    let gw = gw_through(&fp, "read_timeout_ms = 1000");
    let mut c = Conn::open(gw.addr);
    c.set_timeout(ANSWER);
    let t = Instant::now();
    let r = get_on(&mut c, "/");
    assert_gateway_error(&r, 504, "upstream_timeout");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(b.accepts(), 0);
}

#[test]
fn latency_bandwidth_and_fragments_still_give_correct_bodies() {
    let len = 256 * 1024;
    let b = Backend::start(move |q| match (q.method.as_str(), q.target.as_str()) {
        ("POST", _) => Reply::Echo,
        (_, "/small") => Reply::Respond(Response::pattern(4096)),
        _ => Reply::Respond(Response::pattern(len)),
    });
    // Upstream side: 20 ms per piece, 2 MB/s.
    let up = FaultProxy::with(
        b.addr(),
        Faults {
            latency: Duration::from_millis(20),
            bytes_per_sec: 2_000_000,
            ..Faults::default()
        },
    );
    let gw = gw_through(&up, "");
    // Client side: every byte in its own write, both ways (so a small answer there).
    let front = FaultProxy::with(
        gw.addr,
        Faults {
            fragment: true,
            ..Faults::default()
        },
    );
    for (addr, path) in [(gw.addr, "/p"), (front.addr(), "/small")] {
        let mut c = Conn::open(addr);
        c.set_timeout(ANSWER);
        c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .expect("send");
        let r = c.read_head("GET").expect("head");
        assert_eq!(r.status, 200);
        let mut v = pattern::Verifier::new();
        c.read_body(&r, |d| v.feed(d)).expect("body");
        assert!(v.ok(), "corrupted body through {addr}");
        let body = b"{\"fragmented\": true}";
        c.send(
            format!(
                "POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .expect("send");
        c.send(body).expect("body");
        let r = c.read_response().expect("echo");
        assert_eq!((r.status, r.body.as_slice()), (200, &body[..]));
    }
}
