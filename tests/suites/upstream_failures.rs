//! Upstreams that fail: refused, reset, closed, silent, slow to connect, dying mid-answer,
//! answering garbage, and stale pooled connections. The client gets 502/504 from the
//! gateway (or, once an answer has started, an aborted connection — never a hang), and a
//! request is sent twice only when that is safe.

use gatehouse_tests::*;
use std::time::{Duration, Instant};

fn gw_with(b: std::net::SocketAddr, upstream: &str) -> Gateway {
    Gateway::start(&one_route(b, "", upstream, ""))
}

fn get_on(c: &mut Conn, path: &str) -> Resp {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .expect("send");
    c.read_response().expect("answer")
}

#[test]
fn connection_refused_is_502_and_the_client_connection_survives() {
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let gw = gw_with(dead, "");
    let mut c = Conn::open(gw.addr);
    let r = get_on(&mut c, "/a");
    assert_gateway_error(&r, 502, "upstream_failed");
    let r = get_on(&mut c, "/b");
    assert_gateway_error(&r, 502, "upstream_failed");
    // With a body the answer still comes (the body is not forwarded anywhere).
    c.send(b"POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
        .expect("send");
    assert_gateway_error(&c.read_response().expect("answer"), 502, "upstream_failed");
}

#[test]
fn reset_after_the_request_is_502() {
    let b = Backend::start(|_| Reply::Reset);
    let gw = gateway_for(&b);
    let r = get(gw.addr, "t", "/");
    assert_gateway_error(&r, 502, "upstream_failed");
    // A fresh connection failing is not retried.
    assert_eq!(b.request_count(), 1);
}

#[test]
fn close_without_an_answer_is_502() {
    let b = Backend::start(|_| Reply::Close);
    let gw = gateway_for(&b);
    let r = get(gw.addr, "t", "/");
    assert_gateway_error(&r, 502, "upstream_failed");
    assert_eq!(b.request_count(), 1);
}

#[test]
fn a_garbage_answer_is_502() {
    for raw in [
        &b"SSH-2.0-OpenSSH_9.6\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        // Framing a client could read differently: smuggling in the answer direction.
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    ] {
        let raw = raw.to_vec();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let b = Backend::start(move |_| Reply::Raw(raw.clone()));
        let gw = gateway_for(&b);
        let r = get(gw.addr, "t", "/");
        assert_eq!(
            r.status,
            502,
            "upstream answer {shown:?} gave {} {}",
            r.status,
            r.body_str()
        );
        assert_gateway_error(&r, 502, "upstream_failed");
    }
}

#[test]
fn an_oversized_upstream_head_is_502() {
    let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..200 {
        raw.extend(format!("X-Big-{i}: {}\r\n", "b".repeat(1000)).as_bytes());
    }
    raw.extend(b"Content-Length: 0\r\n\r\n");
    let b = Backend::start(move |_| Reply::Raw(raw.clone()));
    let gw = gateway_for(&b);
    let r = get(gw.addr, "t", "/");
    assert_gateway_error(&r, 502, "upstream_failed");
}

#[test]
fn a_silent_upstream_is_504_within_the_read_timeout() {
    let b = Backend::start(|_| Reply::Hang);
    let gw = gw_with(b.addr(), "read_timeout_ms = 300");
    let mut c = Conn::open(gw.addr);
    let t = Instant::now();
    let r = get_on(&mut c, "/");
    let took = t.elapsed();
    assert_gateway_error(&r, 504, "upstream_timeout");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1300),
        "504 after {took:?}"
    );
    // A timeout is never retried.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(b.request_count(), 1);
}

#[test]
fn a_slow_answer_within_the_read_timeout_is_relayed() {
    // The read timeout counts from the last byte, so a slow but steady body passes.
    let b = Backend::start(|_| {
        Reply::Respond(
            Response::ok(vec![b'z'; 10])
                .head_delay(Duration::from_millis(200))
                .paced(2, Duration::from_millis(150)),
        )
    });
    let gw = gw_with(b.addr(), "read_timeout_ms = 400");
    let r = get(gw.addr, "t", "/");
    assert_eq!((r.status, r.body_str().as_str()), (200, "zzzzzzzzzz"));
}

#[test]
fn a_connect_that_never_completes_is_504_within_the_connect_timeout() {
    let (listener, _fillers) = backend::full_backlog_listener();
    let addr = listener.local_addr().expect("addr");
    let gw = gw_with(addr, "connect_timeout_ms = 300");
    let t = Instant::now();
    let r = get(gw.addr, "t", "/");
    let took = t.elapsed();
    assert_gateway_error(&r, 504, "upstream_timeout");
    assert!(took < Duration::from_millis(1300), "504 after {took:?}");
}

/// The upstream dies after part of the body: the client sees the head and some body, then
/// the connection ends — promptly, and short of the announced length.
fn dies_mid_body(resp: Response, total: u64) {
    let b = Backend::start(move |_| Reply::Respond(resp.clone()));
    let gw = gw_with(b.addr(), "read_timeout_ms = 5000");
    let mut c = Conn::open(gw.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    let t = Instant::now();
    let r = c.read_head("GET").expect("head");
    assert_eq!(r.status, 200);
    let mut got = 0u64;
    let res = c.read_body(&r, |d| got += d.len() as u64);
    assert!(res.is_err(), "body looked complete ({got} bytes)");
    let e = res.err().map(|e| e.kind());
    assert!(
        matches!(
            e,
            Some(std::io::ErrorKind::UnexpectedEof) | Some(std::io::ErrorKind::ConnectionReset)
        ),
        "ended with {e:?} (a timeout means the gateway hung)"
    );
    assert!(got < total, "{got} of {total}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn upstream_reset_mid_body_aborts_the_client_connection() {
    dies_mid_body(Response::pattern(1_000_000).cut_after(100_000), 1_000_000);
}

#[test]
fn upstream_close_mid_length_body_aborts_the_client_connection() {
    dies_mid_body(Response::pattern(1_000_000).fin_after(100_000), 1_000_000);
}

#[test]
fn upstream_close_mid_chunked_body_aborts_the_client_connection() {
    dies_mid_body(
        Response::pattern(1_000_000)
            .chunked(10_000)
            .fin_after(100_000),
        1_000_000,
    );
}

/// Answers normally, but closes without answering the second request on any connection:
/// exactly what a pooled connection the upstream closed as the gateway reused it looks like.
fn stale_on_reuse() -> Backend {
    Backend::start(|q| {
        if q.seq == 1 {
            Reply::Close
        } else {
            Reply::Respond(Response::ok(q.target.clone()))
        }
    })
}

#[test]
fn a_get_on_a_stale_pooled_connection_is_retried_once() {
    let b = stale_on_reuse();
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    assert_eq!(get_on(&mut c, "/1").body_str(), "/1");
    let r = get_on(&mut c, "/2");
    assert_eq!((r.status, r.body_str().as_str()), (200, "/2"));
    let reqs = b.requests();
    let twos: Vec<_> = reqs.iter().filter(|q| q.target == "/2").collect();
    assert_eq!(twos.len(), 2, "{reqs:?}");
    assert_eq!(
        (twos[0].conn, twos[0].seq),
        (0, 1),
        "first try on the pooled connection"
    );
    assert_eq!(twos[1].seq, 0, "retry on a fresh connection");
    assert_eq!(b.accepts(), 2);
}

#[test]
fn a_post_on_a_stale_pooled_connection_is_not_sent_twice() {
    let b = stale_on_reuse();
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    assert_eq!(get_on(&mut c, "/1").status, 200);
    c.send(b"POST /pay HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n$10")
        .expect("send");
    let r = c.read_response().expect("answer");
    assert_gateway_error(&r, 502, "upstream_failed");
    std::thread::sleep(Duration::from_millis(200));
    let pays = b.requests().iter().filter(|q| q.target == "/pay").count();
    assert_eq!(pays, 1, "POST sent {pays} times");
    // Same for a bodyless POST and a bodyless PATCH: not idempotent, not retried.
    for m in ["POST", "PATCH"] {
        let mut c = Conn::open(gw.addr);
        assert_eq!(get_on(&mut c, "/warm").status, 200);
        c.send(format!("{m} /x{m} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n").as_bytes())
            .expect("send");
        let r = c.read_response().expect("answer");
        assert_eq!(r.status, 502, "{m}");
        std::thread::sleep(Duration::from_millis(100));
        let n = b
            .requests()
            .iter()
            .filter(|q| q.target == format!("/x{m}"))
            .count();
        assert_eq!(n, 1, "{m} sent {n} times");
    }
}

#[test]
fn upstream_closing_idle_connections_after_each_answer_never_fails_a_get() {
    // The natural race: the upstream closes right after answering (without saying so).
    let b = Backend::start(|q| Reply::Respond(Response::ok(q.target.clone()).close_after()));
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    for i in 0..30 {
        let r = get_on(&mut c, &format!("/{i}"));
        assert_eq!(
            (r.status, r.body_str()),
            (200, format!("/{i}")),
            "request {i}"
        );
    }
    // POSTs may fail with 502 in that race, but none is ever delivered twice.
    for i in 0..30 {
        c.send(format!("POST /p{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx").as_bytes())
            .expect("send");
        let r = c.read_response().expect("answer");
        assert!(r.status == 200 || r.status == 502, "POST {i}: {}", r.status);
        if r.status == 502 && r.has_token("connection", "close") {
            c = Conn::open(gw.addr);
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    for i in 0..30 {
        let n = b
            .requests()
            .iter()
            .filter(|q| q.target == format!("/p{i}"))
            .count();
        assert!(n <= 1, "POST /p{i} delivered {n} times");
    }
}
