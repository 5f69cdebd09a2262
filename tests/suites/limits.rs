//! What one request may cost: request line, head size, field count, body size, and the head
//! and idle timeouts, at their defaults and at smaller configured values. A rejected request
//! never reaches the backend.

use gatehouse_tests::*;
use std::time::{Duration, Instant};

/// Asserts the backend saw no request at all (and, when `no_conn`, not even a connection).
fn nothing_forwarded(b: &Backend, no_conn: bool) {
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(b.request_count(), 0, "forwarded: {:?}", b.requests());
    if no_conn {
        assert_eq!(b.accepts(), 0, "the backend got a connection");
    }
}

/// Sends `raw` and expects the gateway's own `status`/`code` answer, then a close.
fn rejected(gw: &Gateway, raw: &[u8], status: u16, code: &str) {
    let mut c = Conn::open(gw.addr);
    // The gateway may answer before reading everything: a failed write is not a failure.
    let _ = c.send(raw);
    let r = c
        .read_response()
        .unwrap_or_else(|e| panic!("no {status} answer: {e}"));
    assert_gateway_error(&r, status, code);
    assert!(r.has_token("connection", "close"), "{:?}", r.headers);
    assert!(
        c.closes_within(Duration::from_secs(4)),
        "connection left open"
    );
}

fn ok(gw: &Gateway, raw: &[u8]) {
    let r = roundtrip(gw.addr, raw);
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.body_str());
}

fn request_line(path_len: usize) -> Vec<u8> {
    format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(path_len)).into_bytes()
}

/// A request whose head has `n` fields of `value_len` bytes besides Host.
fn many_fields(n: usize, value_len: usize) -> Vec<u8> {
    let mut s = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..n {
        s.push_str(&format!("X-F{i}: {}\r\n", "v".repeat(value_len)));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

#[test]
fn default_request_line_limit_is_8_kib() {
    let b = Backend::fixed("ok");
    let gw = gateway_for(&b);
    // "GET /" + path + " HTTP/1.1" = path + 14 bytes.
    ok(&gw, &request_line(8000));
    let before = b.request_count();
    rejected(&gw, &request_line(8192), 414, "uri_too_long");
    rejected(&gw, &request_line(100_000), 414, "uri_too_long");
    assert_eq!(b.request_count(), before);
}

#[test]
fn configured_request_line_limit() {
    let b = Backend::fixed("ok");
    let gw = Gateway::start(&one_route(b.addr(), "max_request_line = 256", "", ""));
    rejected(&gw, &request_line(300), 414, "uri_too_long");
    nothing_forwarded(&b, true);
    ok(&gw, &request_line(200));
}

#[test]
fn default_head_limit_is_64_kib() {
    let b = Backend::fixed("ok");
    let gw = gateway_for(&b);
    // 60 fields of 1000 bytes: about 60 KB, allowed.
    ok(&gw, &many_fields(60, 1000));
    let before = b.request_count();
    // 70 fields of 1000 bytes: over 64 KiB with fewer than 100 fields.
    rejected(&gw, &many_fields(70, 1000), 431, "headers_too_large");
    // One huge field.
    rejected(&gw, &many_fields(1, 70_000), 431, "headers_too_large");
    assert_eq!(b.request_count(), before);
}

#[test]
fn configured_head_limit() {
    let b = Backend::fixed("ok");
    let gw = Gateway::start(&one_route(b.addr(), "max_header_bytes = 2048", "", ""));
    rejected(&gw, &many_fields(3, 1000), 431, "headers_too_large");
    nothing_forwarded(&b, true);
    ok(&gw, &many_fields(1, 1000));
}

#[test]
fn default_field_count_limit_is_100() {
    let b = Backend::fixed("ok");
    let gw = gateway_for(&b);
    // Host + 99 = 100 fields.
    ok(&gw, &many_fields(99, 3));
    let before = b.request_count();
    rejected(&gw, &many_fields(100, 3), 431, "headers_too_large");
    rejected(&gw, &many_fields(500, 3), 431, "headers_too_large");
    assert_eq!(b.request_count(), before);
}

#[test]
fn configured_field_count_limit() {
    let b = Backend::fixed("ok");
    let gw = Gateway::start(&one_route(b.addr(), "max_headers = 10", "", ""));
    rejected(&gw, &many_fields(10, 3), 431, "headers_too_large");
    nothing_forwarded(&b, true);
    ok(&gw, &many_fields(9, 3));
}

#[test]
fn bodies_over_the_limit_are_413() {
    let b = Backend::echo();
    let cfg = format!(
        "[limits]\nmax_body_bytes = 1000\n\n\
         [[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{}\" }}]\n\n\
         [[routes]]\nid = \"small\"\npaths = [\"/small/*\"]\nupstream = \"up\"\nmax_body_bytes = 100\n\n\
         [[routes]]\nid = \"big\"\npaths = [\"/big/*\"]\nupstream = \"up\"\nmax_body_bytes = 100000\n\n\
         [[routes]]\nid = \"dflt\"\npaths = [\"/*\"]\nupstream = \"up\"\n",
        b.addr()
    );
    let gw = Gateway::start(&cfg);
    let post = |path: &str, n: usize| {
        let mut v =
            format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {n}\r\n\r\n").into_bytes();
        v.extend(std::iter::repeat_n(b'x', n));
        v
    };
    // Content-Length over the limit: refused from the head, nothing sent upstream.
    rejected(&gw, &post("/small/a", 101), 413, "body_too_large");
    rejected(&gw, &post("/d", 1001), 413, "body_too_large");
    rejected(&gw, &post("/big/a", 100_001), 413, "body_too_large");
    rejected(
        &gw,
        b"POST /d HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999\r\n\r\n",
        413,
        "body_too_large",
    );
    nothing_forwarded(&b, true);
    // At the limit: forwarded.
    ok(&gw, &post("/small/a", 100));
    ok(&gw, &post("/d", 1000));
    ok(&gw, &post("/big/a", 100_000));
    assert_eq!(b.request_count(), 3);
}

#[test]
fn chunked_bodies_over_the_limit_are_413_and_never_complete_upstream() {
    let b = Backend::echo();
    let gw = Gateway::start(&one_route(b.addr(), "max_body_bytes = 1000", "", ""));
    let chunked = |sizes: &[usize]| {
        let mut v = b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for &n in sizes {
            v.extend(format!("{n:x}\r\n").as_bytes());
            v.extend(std::iter::repeat_n(b'y', n));
            v.extend(b"\r\n");
        }
        v.extend(b"0\r\n\r\n");
        v
    };
    rejected(&gw, &chunked(&[600, 600]), 413, "body_too_large");
    rejected(&gw, &chunked(&[5000]), 413, "body_too_large");
    std::thread::sleep(Duration::from_millis(200));
    // The head may have been forwarded while the body streamed; a whole request never was.
    for q in b.requests() {
        assert!(
            !q.complete,
            "an over-limit body reached the upstream whole: {q:?}"
        );
    }
    let before = b.requests().len();
    ok(&gw, &chunked(&[500, 500]));
    let reqs = b.wait_requests(before + 1, Duration::from_secs(5));
    assert!(reqs
        .last()
        .is_some_and(|q| q.complete && q.body_len == 1000));
}

#[test]
fn a_partial_head_then_silence_is_408_and_closed() {
    let b = Backend::fixed("ok");
    let gw = Gateway::start(&one_route(b.addr(), "header_timeout_ms = 300", "", ""));
    let mut c = Conn::open(gw.addr);
    let t = Instant::now();
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n").expect("send");
    let r = c.read_response().expect("408");
    let took = t.elapsed();
    assert_gateway_error(&r, 408, "client_timeout");
    assert!(r.has_token("connection", "close"));
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1300),
        "408 after {took:?}"
    );
    assert!(
        c.closes_within(Duration::from_secs(4)),
        "connection left open"
    );
    // The timeout runs from the first byte: trickling bytes does not extend it.
    let mut c = Conn::open(gw.addr);
    let t = Instant::now();
    let mut got = None;
    for piece in [
        &b"GET / HT"[..],
        b"TP/1.1\r\n",
        b"Host: t\r\n",
        b"X-A: 1\r\n",
        b"X-B: 2\r\n",
    ] {
        let _ = c.send(piece);
        std::thread::sleep(Duration::from_millis(100));
        if t.elapsed() > Duration::from_millis(450) {
            break;
        }
    }
    if let Ok(r) = c.read_response() {
        got = Some(r);
    }
    let r = got.expect("408 for a trickled head");
    assert_gateway_error(&r, 408, "client_timeout");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    nothing_forwarded(&b, true);
}

#[test]
fn a_silent_new_connection_is_closed_after_the_header_timeout() {
    let b = Backend::fixed("ok");
    let gw = Gateway::start(&one_route(b.addr(), "header_timeout_ms = 300", "", ""));
    let mut c = Conn::open(gw.addr);
    let t = Instant::now();
    let e = c.ending(Duration::from_secs(3));
    assert!(
        matches!(e, Ending::Eof | Ending::Reset | Ending::Data(_)),
        "still open after {:?}",
        t.elapsed()
    );
    if let Ending::Data(d) = e {
        // If it says something, it is a 408.
        assert!(
            d.starts_with(b"HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(&d)
        );
    }
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let b = Backend::fixed("ok");
    let gw = Gateway::start(&one_route(b.addr(), "idle_timeout_ms = 500", "", ""));
    let mut c = Conn::open(gw.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    assert_eq!(c.read_response().expect("answer").status, 200);
    let t = Instant::now();
    // Still open well before the timeout...
    assert_eq!(c.ending(Duration::from_millis(150)), Ending::Open);
    // ...and closed silently after it.
    let e = c.ending(Duration::from_secs(3));
    assert!(
        matches!(e, Ending::Eof | Ending::Reset),
        "{e:?} after {:?}",
        t.elapsed()
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_millis(1600),
        "closed after {took:?}"
    );
}

#[test]
fn a_stalled_body_ends_the_exchange_within_the_body_timeout() {
    let b = Backend::echo();
    let gw = Gateway::start(&one_route(b.addr(), "body_timeout_ms = 300", "", ""));
    let mut c = Conn::open(gw.addr);
    let t = Instant::now();
    c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf!")
        .expect("send");
    // The client gets a 408 or a close, not a hang.
    match c.ending(Duration::from_secs(4)) {
        Ending::Eof | Ending::Reset => {}
        Ending::Data(d) => assert!(
            d.starts_with(b"HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(&d)
        ),
        Ending::Open => panic!("connection still open after {:?}", t.elapsed()),
    }
    assert!(
        t.elapsed() < Duration::from_millis(2000),
        "{:?}",
        t.elapsed()
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        b.requests().iter().all(|q| !q.complete),
        "{:?}",
        b.requests()
    );
}

#[test]
fn expect_100_continue_with_an_over_limit_body_gets_413_not_100() {
    let b = Backend::echo();
    let gw = Gateway::start(&one_route(b.addr(), "max_body_bytes = 1000", "", ""));
    let mut c = Conn::open(gw.addr);
    c.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
        .expect("send");
    let r = c.read_response().expect("answer");
    assert_gateway_error(&r, 413, "body_too_large");
    nothing_forwarded(&b, true);
}

#[test]
fn a_client_that_stops_reading_is_cut_off_after_the_send_timeout() {
    // 64 MiB answer; the client reads the head and then nothing.
    let len = 64u64 << 20;
    let b = Backend::start(move |_| Reply::Respond(Response::pattern(len)));
    let gw = Gateway::start(&one_route(b.addr(), "send_timeout_ms = 300", "", ""));
    let mut c = Conn::open(gw.addr);
    // A small receive window makes the stall come early.
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    let r = c.read_head("GET").expect("head");
    assert_eq!(r.framing, Framing::Length(len));
    std::thread::sleep(Duration::from_secs(2));
    // By now the gateway gave up on us: reading on gets part of the body, then the end.
    c.set_timeout(Duration::from_secs(5));
    let mut got = 0u64;
    let res = c.read_body(&r, |d| got += d.len() as u64);
    assert!(
        res.is_err(),
        "the whole {len} bytes arrived after a 2 s stall"
    );
    assert!(got < len);
    let hwm = gw.hwm_kib().unwrap_or(0);
    assert!(
        hwm < 64 * 1024,
        "gateway buffered the answer: VmHWM {hwm} KiB"
    );
}

#[test]
fn a_head_arriving_in_the_first_millisecond_still_times_out() {
    // A connection made as soon as the port accepts is served in the worker's first poll,
    // when its clock reads 0 ms: the header timeout must apply to it like to any other.
    for attempt in 0..6 {
        let mut gw = Gateway::spawn(&one_route(
            std::net::SocketAddr::from(([127, 0, 0, 1], 9)),
            "header_timeout_ms = 300",
            "",
            "",
        ))
        .expect("spawn");
        let s = gw.first_connection().expect("listening");
        let mut c = Conn::from_stream(s);
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n").expect("send");
        c.set_timeout(Duration::from_secs(3));
        let r = c
            .read_response()
            .unwrap_or_else(|e| panic!("attempt {attempt}: no 408 within 3 s: {e}"));
        assert_gateway_error(&r, 408, "client_timeout");
    }
}
