//! Proxying seen from both ends: the fields the upstream receives and the client gets back,
//! hop-by-hop removal, upstream keep-alive reuse, pipelining, and every framing (chunked,
//! HEAD, 204/304, close-delimited, 100-continue, HTTP/1.0) passing through intact.

use gatehouse_tests::*;
use std::time::Duration;

fn send(c: &mut Conn, raw: &str) {
    c.send(raw.as_bytes()).expect("send");
}

/// Every answer relayed from an upstream carries a request id of the gateway's own.
fn has_request_id(r: &Resp) -> &str {
    let rid = r
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-Id in {:?}", r.headers));
    assert!(!rid.is_empty());
    rid
}

#[test]
fn upstream_receives_forwarding_fields_and_the_request_id() {
    let b = Backend::start(|_| Reply::Respond(Response::ok("ok").header("X-Request-Id", "theirs")));
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    // A valid id is kept; the client's X-Real-IP / X-Forwarded-Proto are replaced.
    send(
        &mut c,
        "GET /a HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 10.1.2.3\r\nX-Real-IP: 6.6.6.6\r\n\
         X-Forwarded-Proto: https\r\nX-Request-Id: abc-123_x.y:z\r\n\r\n",
    );
    let r = c.read_response().expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.headers_named("x-request-id"), vec!["abc-123_x.y:z"]);
    let q = &b.wait_requests(1, Duration::from_secs(5))[0];
    assert_eq!(
        q.headers_named("x-forwarded-for"),
        vec!["10.1.2.3, 127.0.0.1"]
    );
    assert_eq!(q.headers_named("x-real-ip"), vec!["127.0.0.1"]);
    assert_eq!(q.headers_named("x-forwarded-proto"), vec!["http"]);
    assert_eq!(q.headers_named("x-request-id"), vec!["abc-123_x.y:z"]);

    // Several X-Forwarded-For fields are joined in order; an invalid id is replaced.
    send(
        &mut c,
        "GET /b HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n\
         X-Request-Id: has space\r\n\r\n",
    );
    let r = c.read_response().expect("answer");
    let rid = has_request_id(&r).to_string();
    assert_ne!(rid, "has space");
    let q = &b.wait_requests(2, Duration::from_secs(5))[1];
    assert_eq!(
        q.headers_named("x-forwarded-for"),
        vec!["1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"]
    );
    assert_eq!(q.headers_named("x-request-id"), vec![rid.as_str()]);

    // No id at all: one is generated, and it differs per request.
    send(&mut c, "GET /c HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response().expect("answer");
    let rid2 = has_request_id(&r).to_string();
    assert_ne!(rid2, rid);
    let q = &b.wait_requests(3, Duration::from_secs(5))[2];
    assert_eq!(q.headers_named("x-request-id"), vec![rid2.as_str()]);
    assert_eq!(q.headers_named("x-forwarded-for"), vec!["127.0.0.1"]);
    // The client's Host is kept.
    assert_eq!(q.header("host"), Some("t"));
}

#[test]
fn hop_by_hop_fields_are_removed_both_ways() {
    let b = Backend::start(|_| {
        Reply::Respond(
            Response::ok("ok")
                .header("Connection", "X-Secret")
                .header("X-Secret", "s")
                .header("Keep-Alive", "timeout=5")
                .header("X-Visible", "v"),
        )
    });
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    send(
        &mut c,
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n\
         Keep-Alive: timeout=9\r\nTE: trailers\r\nUpgrade: websocket\r\nX-Keep: 2\r\n\r\n",
    );
    let r = c.read_response().expect("answer");
    assert_eq!(r.status, 200);
    for gone in ["x-secret", "keep-alive"] {
        assert!(
            r.header(gone).is_none(),
            "{gone} reached the client: {:?}",
            r.headers
        );
    }
    assert!(
        r.headers_named("connection")
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains("x-secret")),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("x-visible"), Some("v"));
    let q = &b.wait_requests(1, Duration::from_secs(5))[0];
    for gone in ["x-drop", "keep-alive", "te", "upgrade"] {
        assert!(
            q.header(gone).is_none(),
            "{gone} reached the upstream: {}",
            q.head_str()
        );
    }
    assert!(
        q.headers_named("connection")
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains("x-drop")),
        "{}",
        q.head_str()
    );
    assert_eq!(q.header("x-keep"), Some("2"));
}

#[test]
fn one_upstream_connection_serves_many_sequential_requests() {
    let b = Backend::fixed("hello");
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    for i in 0..100 {
        send(&mut c, &format!("GET /{i} HTTP/1.1\r\nHost: t\r\n\r\n"));
        let r = c.read_response().expect("answer");
        assert_eq!(
            (r.status, r.body_str().as_str()),
            (200, "hello"),
            "request {i}"
        );
    }
    assert_eq!(b.request_count(), 100);
    assert_eq!(b.accepts(), 1, "upstream connection not reused");
    drop(c);
    // New client connections, one after another, still find the parked connection.
    for j in 0..5 {
        let mut c = Conn::open(gw.addr);
        for i in 0..10 {
            send(&mut c, &format!("GET /{j}/{i} HTTP/1.1\r\nHost: t\r\n\r\n"));
            assert_eq!(c.read_response().expect("answer").status, 200);
        }
    }
    assert_eq!(b.request_count(), 150);
    assert!(
        b.accepts() <= 2,
        "{} upstream connections for 150 sequential requests",
        b.accepts()
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let b = Backend::start(|q| {
        if q.method == "POST" {
            Reply::Echo
        } else {
            Reply::Respond(Response::ok(q.target.clone()))
        }
    });
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    send(
        &mut c,
        "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n\
         POST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\ntwo\
         GET /3 HTTP/1.1\r\nHost: t\r\n\r\n\
         POST /4 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nfo\r\n2\r\nur\r\n0\r\n\r\n\
         GET /5 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    for want in ["/1", "two", "/3", "four", "/5"] {
        let r = c.read_response().expect("answer");
        assert_eq!((r.status, r.body_str().as_str()), (200, want));
        has_request_id(&r);
    }
    // Nothing more: each request was answered exactly once.
    assert_eq!(c.ending(Duration::from_millis(200)), Ending::Open);
    assert_eq!(b.request_count(), 5);
}

#[test]
fn chunked_bodies_pass_through_intact_both_ways() {
    let payload = pattern::bytes(100_000);
    let p2 = payload.clone();
    let b = Backend::start(move |q| {
        if q.method == "POST" {
            Reply::Echo
        } else {
            Reply::Respond(Response::ok(p2.clone()).chunked(777))
        }
    });
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    // Request: uneven chunks, a chunk extension, a trailer.
    let mut raw = b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut pos = 0;
    for (i, size) in [1usize, 4095, 16384, 30000, 49520].iter().enumerate() {
        let ext = if i == 1 { ";name=val" } else { "" };
        raw.extend_from_slice(format!("{size:x}{ext}\r\n").as_bytes());
        raw.extend_from_slice(&payload[pos..pos + size]);
        raw.extend_from_slice(b"\r\n");
        pos += size;
    }
    assert_eq!(pos, payload.len());
    raw.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    c.send(&raw).expect("send");
    let r = c.read_response().expect("echo");
    assert_eq!(r.status, 200);
    assert!(
        r.body == payload,
        "echoed body differs ({} bytes)",
        r.body.len()
    );
    let q = &b.wait_requests(1, Duration::from_secs(5))[0];
    assert!(q.complete && q.body_is_pattern && q.body_len == payload.len() as u64);
    assert!(q.has_chunked_te(), "{}", q.head_str());
    assert!(q.header("content-length").is_none());

    // Response: chunked from the upstream, intact at the client.
    send(&mut c, "GET /down HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response().expect("chunked answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, Framing::Chunked);
    assert!(
        r.body == payload,
        "chunked body differs ({} bytes)",
        r.body.len()
    );
    // The connection is still usable afterwards.
    send(
        &mut c,
        "POST /again HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(c.read_response().expect("answer").body_str(), "hi");
}

#[test]
fn head_204_and_304_answers_have_no_body() {
    let b = Backend::start(|q| match q.target.as_str() {
        "/204" => Reply::Respond(Response::new(204, "").bare()),
        "/304" => Reply::Respond(Response::new(304, "").bare().header("ETag", "\"v1\"")),
        _ => Reply::Respond(Response::ok("eleven char")),
    });
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    send(&mut c, "HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response_for("HEAD").expect("HEAD answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("11"));
    has_request_id(&r);
    send(&mut c, "GET /204 HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response().expect("204");
    assert_eq!(r.status, 204);
    has_request_id(&r);
    send(
        &mut c,
        "GET /304 HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"v1\"\r\n\r\n",
    );
    let r = c.read_response().expect("304");
    assert_eq!((r.status, r.header("etag")), (304, Some("\"v1\"")));
    // If any of those had leaked a body, this answer would be misread.
    send(&mut c, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response().expect("GET after bodiless answers");
    assert_eq!((r.status, r.body_str().as_str()), (200, "eleven char"));
    assert_eq!(c.ending(Duration::from_millis(200)), Ending::Open);
    assert_eq!(b.accepts(), 1);
}

#[test]
fn a_close_delimited_answer_reaches_the_client_which_is_then_closed() {
    let b = Backend::start(|_| Reply::Respond(Response::pattern(300_000).close_delimited()));
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    send(&mut c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response().expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 300_000);
    let mut v = pattern::Verifier::new();
    v.feed(&r.body);
    assert!(v.ok(), "body corrupted at {:?}", v.first_bad);
    has_request_id(&r);
    if r.framing != Framing::UntilClose {
        // Re-framed for the client: then the connection must still end, as announced.
        assert!(r.has_token("connection", "close"), "{:?}", r.headers);
        assert!(c.closes_within(Duration::from_secs(3)));
    }
}

#[test]
fn expect_100_continue_gets_a_continue_then_the_answer() {
    let b = Backend::echo();
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    send(
        &mut c,
        "POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    c.set_timeout(Duration::from_secs(3));
    let first = c
        .read_head("POST")
        .expect("100 Continue before the body is sent");
    assert_eq!(first.status, 100);
    c.set_timeout(client::READ_TIMEOUT);
    send(&mut c, "hello");
    let r = c.read_response().expect("final answer");
    assert_eq!((r.status, r.body_str().as_str()), (200, "hello"));
    has_request_id(&r);
    // The next request on the connection is unaffected.
    send(
        &mut c,
        "POST /f HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok",
    );
    assert_eq!(c.read_response().expect("answer").body_str(), "ok");
}

#[test]
fn http_1_0_clients_get_close_by_default_and_keep_alive_on_request() {
    let b = Backend::fixed("old");
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    send(&mut c, "GET /a HTTP/1.0\r\n\r\n");
    let r = c.read_response().expect("answer");
    assert_eq!((r.status, r.body_str().as_str()), (200, "old"));
    has_request_id(&r);
    assert!(
        r.framing != Framing::Chunked,
        "chunked to an HTTP/1.0 client"
    );
    assert!(
        c.closes_within(Duration::from_secs(3)),
        "1.0 connection left open"
    );

    let mut c = Conn::open(gw.addr);
    send(
        &mut c,
        "GET /b HTTP/1.0\r\nConnection: keep-alive\r\nHost: t\r\n\r\n",
    );
    let r = c.read_response().expect("answer");
    assert_eq!(r.status, 200);
    assert!(r.has_token("connection", "keep-alive"), "{:?}", r.headers);
    send(&mut c, "GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c
        .read_response()
        .expect("second answer on a 1.0 keep-alive connection");
    assert_eq!(r.body_str(), "old");
}

#[test]
fn http_1_0_client_gets_a_chunked_upstream_answer_unchunked() {
    let b = Backend::start(|_| Reply::Respond(Response::pattern(50_000).chunked(1000)));
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    send(&mut c, "GET /a HTTP/1.0\r\n\r\n");
    let r = c.read_response().expect("answer");
    assert_eq!(r.status, 200);
    assert!(
        r.framing != Framing::Chunked,
        "chunked to an HTTP/1.0 client: {:?}",
        r.headers
    );
    assert_eq!(r.body, pattern::bytes(50_000));
}

#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    let b = Backend::start(|_| {
        Reply::Respond(Response::ok("late but whole").head_delay(Duration::from_millis(100)))
    });
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    send(&mut c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    c.stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let r = c.read_response().expect("answer after the client's FIN");
    assert_eq!((r.status, r.body_str().as_str()), (200, "late but whole"));
    assert!(c.closes_within(Duration::from_secs(3)));
}

#[test]
fn head_answers_with_chunked_or_length_fields_end_at_the_head() {
    let b = Backend::start(|q| {
        if q.target == "/chunked" {
            Reply::Respond(Response::ok("abc").chunked(10))
        } else {
            Reply::Respond(Response::ok("abcdef"))
        }
    });
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    for path in ["/chunked", "/len", "/chunked"] {
        send(&mut c, &format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        c.set_timeout(Duration::from_secs(3));
        let r = c.read_response_for("HEAD").expect("HEAD answer");
        assert_eq!(r.status, 200, "{path}");
    }
    c.set_timeout(client::READ_TIMEOUT);
    send(&mut c, "GET /len HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read_response().expect("GET").body_str(), "abcdef");
}

#[test]
fn upstream_connection_close_answers_are_not_reused_and_never_fail() {
    let b = Backend::start(|q| {
        Reply::Respond(
            Response::ok(q.target.clone())
                .header("Connection", "close")
                .close_after(),
        )
    });
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    for i in 0..20 {
        let r = {
            send(&mut c, &format!("GET /{i} HTTP/1.1\r\nHost: t\r\n\r\n"));
            c.read_response().expect("answer")
        };
        assert_eq!((r.status, r.body_str()), (200, format!("/{i}")));
        // The upstream's close is its own business: the client connection stays.
        assert!(!r.has_token("connection", "close"), "{:?}", r.headers);
    }
    assert_eq!(b.request_count(), 20, "a request was retried");
    assert_eq!(b.accepts(), 20);
}

#[test]
fn request_bodies_of_any_method_pass_intact() {
    let b = Backend::echo();
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    for (m, body) in [
        ("GET", "q=1"),
        ("POST", ""),
        ("PUT", "put-body"),
        ("DELETE", "x"),
    ] {
        send(
            &mut c,
            &format!(
                "{m} /b HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        let r = c.read_response().expect("answer");
        assert_eq!((r.status, r.body_str().as_str()), (200, body), "{m}");
    }
    let reqs = b.wait_requests(4, Duration::from_secs(5));
    assert!(reqs.iter().all(|q| q.complete));
}

#[test]
fn an_upstream_answering_before_the_body_is_read_reaches_the_client() {
    // An upstream that refuses an upload from its head (401) and closes.
    let b =
        Backend::start(|_| Reply::Early(Response::new(401, "no").header("Connection", "close")));
    let gw = Gateway::start(&one_route(b.addr(), "", "", "max_body_bytes = 10000000"));
    let mut c = Conn::open(gw.addr);
    send(
        &mut c,
        "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 4000000\r\n\r\n",
    );
    let writer = {
        let mut s = c.stream.try_clone().expect("clone");
        std::thread::spawn(move || {
            use std::io::Write;
            let chunk = vec![b'u'; 64 * 1024];
            for _ in 0..61 {
                if s.write_all(&chunk).is_err() {
                    return;
                }
            }
        })
    };
    let r = c.read_response().expect("the upstream's early answer");
    assert_eq!((r.status, r.body_str().as_str()), (401, "no"));
    let _ = writer.join();
}

#[test]
fn a_client_connection_close_ends_the_client_side_only() {
    let b = Backend::fixed("bye");
    let gw = gateway_for(&b);
    for _ in 0..3 {
        let mut c = Conn::open(gw.addr);
        send(
            &mut c,
            "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        let r = c.read_response().expect("answer");
        assert_eq!(r.body_str(), "bye");
        assert!(r.has_token("connection", "close"), "{:?}", r.headers);
        assert!(c.closes_within(Duration::from_secs(3)));
    }
    // The client's close is not passed on: one upstream connection served all three.
    assert_eq!(b.accepts(), 1);
    assert!(b.requests().iter().all(|q| q.keep_alive()));
}

#[test]
fn an_over_long_request_id_is_replaced() {
    let b = Backend::fixed("ok");
    let gw = gateway_for(&b);
    let long = "a".repeat(65);
    let r = roundtrip(
        gw.addr,
        format!("GET / HTTP/1.1\r\nHost: t\r\nX-Request-Id: {long}\r\n\r\n").as_bytes(),
    );
    let rid = has_request_id(&r).to_string();
    assert_ne!(rid, long);
    let ok64 = "b".repeat(64);
    let r = roundtrip(
        gw.addr,
        format!("GET / HTTP/1.1\r\nHost: t\r\nX-Request-Id: {ok64}\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.header("x-request-id"), Some(ok64.as_str()));
    let reqs = b.wait_requests(2, Duration::from_secs(5));
    assert_eq!(reqs[0].header("x-request-id"), Some(rid.as_str()));
}
