//! Upstream connections and nodes: weighted balancing across nodes, `max_idle = 0`, the
//! idle timeout of pooled connections, and upstreams out of step (bytes after a HEAD answer,
//! two answers to one request) never leaking into another request's answer.

use gatehouse_tests::*;
use std::time::Duration;

fn get_on(c: &mut Conn, path: &str) -> Resp {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .expect("send");
    c.read_response().expect("answer")
}

#[test]
fn weighted_nodes_share_requests_by_weight() {
    let a = Backend::fixed("a");
    let b = Backend::fixed("b");
    let cfg = format!(
        "[[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{}\", weight = 3 }}, {{ addr = \"{}\", weight = 1 }}]\n\n\
         [[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"up\"\n",
        a.addr(),
        b.addr()
    );
    let gw = Gateway::start(&cfg);
    let mut c = Conn::open(gw.addr);
    let mut seq = String::new();
    for i in 0..40 {
        seq.push_str(&get_on(&mut c, &format!("/{i}")).body_str());
    }
    assert_eq!(
        (a.request_count(), b.request_count()),
        (30, 10),
        "sequence {seq}"
    );
    // Smooth: the light node is never starved for long.
    assert!(!seq.contains("aaaa"), "sequence {seq}");
}

#[test]
fn max_idle_zero_closes_upstream_connections_after_each_answer() {
    let b = Backend::fixed("x");
    let gw = Gateway::start(&one_route(b.addr(), "", "max_idle = 0", ""));
    let mut c = Conn::open(gw.addr);
    for i in 0..10 {
        assert_eq!(get_on(&mut c, &format!("/{i}")).status, 200);
    }
    assert_eq!(b.request_count(), 10);
    assert_eq!(b.accepts(), 10);
}

#[test]
fn idle_upstream_connections_are_closed_after_their_idle_timeout() {
    let b = Backend::fixed("x");
    let gw = Gateway::start(&one_route(b.addr(), "", "idle_timeout_ms = 200", ""));
    let mut c = Conn::open(gw.addr);
    assert_eq!(get_on(&mut c, "/1").status, 200);
    assert_eq!(get_on(&mut c, "/2").status, 200);
    assert_eq!(b.accepts(), 1);
    // Idle sweeps run about once a second.
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(get_on(&mut c, "/3").status, 200);
    assert_eq!(
        b.accepts(),
        2,
        "a connection idle past its timeout was reused"
    );
    let reqs = b.requests();
    assert_eq!(reqs[2].seq, 0, "{reqs:?}");
}

#[test]
fn a_body_after_a_head_answer_never_reaches_the_next_request() {
    let b = Backend::start(|q| {
        if q.method == "HEAD" {
            // Out of step: a body where none may be.
            Reply::RawKeep(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec())
        } else {
            Reply::Respond(Response::ok(format!("answer to {}", q.target)))
        }
    });
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    c.send(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let r = c.read_response_for("HEAD").expect("HEAD");
    assert_eq!(r.status, 200);
    for i in 0..3 {
        let r = get_on(&mut c, &format!("/g{i}"));
        assert_eq!(
            (r.status, r.body_str()),
            (200, format!("answer to /g{i}")),
            "a later answer was corrupted"
        );
    }
}

#[test]
fn a_second_unrequested_answer_never_reaches_the_next_request() {
    let b = Backend::start(|q| {
        if q.target == "/double" {
            Reply::RawKeep(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTALE"
                    .to_vec(),
            )
        } else {
            Reply::Respond(Response::ok(q.target.clone()))
        }
    });
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    assert_eq!(get_on(&mut c, "/double").body_str(), "first");
    for i in 0..3 {
        let r = get_on(&mut c, &format!("/n{i}"));
        assert_eq!(
            r.body_str(),
            format!("/n{i}"),
            "a stale answer was delivered"
        );
    }
    // Even with some delay, letting the stale answer arrive before the next request.
    let mut c = Conn::open(gw.addr);
    assert_eq!(get_on(&mut c, "/double").body_str(), "first");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get_on(&mut c, "/after").body_str(), "/after");
}

#[test]
fn interim_answers_are_relayed_before_the_final_one() {
    let b = Backend::start(|_| {
        Reply::RawKeep(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"
                .to_vec(),
        )
    });
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    let first = c.read_head("GET").expect("head");
    let fin = if first.status == 103 {
        assert!(first.header("link").is_some(), "{:?}", first.headers);
        c.read_response().expect("final")
    } else {
        // Dropping the 103 is allowed; the final answer must be intact either way.
        let mut r = first;
        let mut body = Vec::new();
        c.read_body(&r, |d| body.extend_from_slice(d))
            .expect("body");
        r.body = body;
        r
    };
    assert_eq!((fin.status, fin.body_str().as_str()), (200, "body"));
    assert!(fin.header("x-request-id").is_some());
}

#[test]
fn chunked_answers_with_trailers_pass_through() {
    let b = Backend::start(|_| {
        Reply::RawKeep(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
              3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n"
                .to_vec(),
        )
    });
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    for _ in 0..2 {
        let r = get_on(&mut c, "/");
        assert_eq!((r.status, r.body_str().as_str()), (200, "abcde"));
    }
}
