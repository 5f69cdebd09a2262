//! Many things at once: concurrent keep-alive clients, long pipelines (forwarded and
//! answered by the gateway itself, with a client that reads late), and answers staying in
//! request order when the upstream is slow or failing.

use gatehouse_tests::*;
use std::time::Duration;

#[test]
fn concurrent_keep_alive_clients_all_get_their_own_answers() {
    let b = Backend::start(|q| Reply::Respond(Response::ok(q.target.clone())));
    let gw = gateway_for(&b);
    let addr = gw.addr;
    let threads: Vec<_> = (0..32)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                for i in 0..25 {
                    let path = format!("/t{t}/r{i}");
                    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                        .expect("send");
                    let r = c.read_response().expect("answer");
                    assert_eq!((r.status, r.body_str()), (200, path));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    assert_eq!(b.request_count(), 32 * 25);
    assert!(
        b.accepts() <= 32,
        "{} upstream connections for 32 clients",
        b.accepts()
    );
}

#[test]
fn a_long_pipeline_is_forwarded_and_answered_in_order() {
    let b = Backend::start(|q| Reply::Respond(Response::ok(q.target.clone())));
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    let n = 500;
    let mut raw = String::new();
    for i in 0..n {
        raw.push_str(&format!("GET /{i} HTTP/1.1\r\nHost: t\r\n\r\n"));
    }
    c.send(raw.as_bytes()).expect("send");
    for i in 0..n {
        let r = c.read_response().expect("answer");
        assert_eq!((r.status, r.body_str()), (200, format!("/{i}")));
    }
    assert_eq!(b.request_count(), n);
}

#[test]
fn a_long_pipeline_of_gateway_answers_to_a_late_reader_is_complete() {
    // 2000 pipelined 404s (about 500 KB of answers) while the client reads nothing for a
    // while: the gateway must pause and resume, not drop or reorder answers.
    let b = Backend::fixed("x");
    let cfg = format!(
        "[[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{}\" }}]\n\n\
         [[routes]]\nid = \"r\"\npaths = [\"/ok\"]\nupstream = \"up\"\n",
        b.addr()
    );
    let gw = Gateway::start(&cfg);
    let mut c = Conn::open(gw.addr);
    let n = 2000;
    let mut raw = String::new();
    for i in 0..n {
        let path = if i % 100 == 99 { "/ok" } else { "/nowhere" };
        raw.push_str(&format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nX-Request-Id: r{i}\r\n\r\n"
        ));
    }
    let writer = {
        let mut s = c.stream.try_clone().expect("clone");
        std::thread::spawn(move || {
            use std::io::Write;
            s.write_all(raw.as_bytes())
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..n {
        let r = c
            .read_response()
            .unwrap_or_else(|e| panic!("answer {i}: {e}"));
        let want = if i % 100 == 99 { 200 } else { 404 };
        assert_eq!(r.status, want, "answer {i}");
        assert_eq!(r.header("x-request-id"), Some(format!("r{i}").as_str()));
    }
    writer.join().expect("writer").expect("write");
    assert_eq!(b.request_count(), n / 100);
}

#[test]
fn a_slow_answer_holds_back_the_pipelined_ones_behind_it() {
    let b = Backend::start(|q| {
        let r = Response::ok(q.target.clone());
        if q.target == "/slow" {
            Reply::Respond(r.head_delay(Duration::from_millis(400)))
        } else {
            Reply::Respond(r)
        }
    });
    let cfg = format!(
        "[[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{}\" }}]\n\n\
         [[routes]]\nid = \"r\"\npaths = [\"/slow\", \"/fast\"]\nupstream = \"up\"\n",
        b.addr()
    );
    let gw = Gateway::start(&cfg);
    let mut c = Conn::open(gw.addr);
    c.send(
        b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /fast HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .expect("send");
    let r = c.read_response().expect("first");
    assert_eq!((r.status, r.body_str().as_str()), (200, "/slow"));
    assert_gateway_error(&c.read_response().expect("second"), 404, "no_route");
    let r = c.read_response().expect("third");
    assert_eq!((r.status, r.body_str().as_str()), (200, "/fast"));
}

#[test]
fn a_failed_upstream_in_a_pipeline_keeps_the_order() {
    let live = Backend::start(|q| Reply::Respond(Response::ok(q.target.clone())));
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let cfg = format!(
        "[[upstreams]]\nid = \"live\"\nnodes = [{{ addr = \"{}\" }}]\n\n\
         [[upstreams]]\nid = \"dead\"\nnodes = [{{ addr = \"{dead}\" }}]\n\n\
         [[routes]]\nid = \"live\"\npaths = [\"/live/*\"]\nupstream = \"live\"\n\n\
         [[routes]]\nid = \"dead\"\npaths = [\"/dead/*\"]\nupstream = \"dead\"\n",
        live.addr()
    );
    let gw = Gateway::start(&cfg);
    let mut c = Conn::open(gw.addr);
    let order = ["/live/1", "/dead/2", "/live/3", "/dead/4", "/live/5"];
    let raw: String = order
        .iter()
        .map(|p| format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n"))
        .collect();
    c.send(raw.as_bytes()).expect("send");
    for p in order {
        let r = c.read_response().expect("answer");
        if p.starts_with("/dead") {
            assert_gateway_error(&r, 502, "upstream_failed");
        } else {
            assert_eq!((r.status, r.body_str().as_str()), (200, p));
        }
    }
}

#[test]
fn many_short_connections_do_not_leak() {
    let b = Backend::fixed("x");
    let gw = gateway_for(&b);
    let before = gw.rss_kib().unwrap_or(0);
    for i in 0..400 {
        // Alternate: a clean request, a client that vanishes mid-head, mid-body, and before
        // reading its answer.
        let mut c = Conn::open(gw.addr);
        match i % 4 {
            0 => {
                c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    .expect("send");
                assert_eq!(c.read_response().expect("answer").status, 200);
            }
            1 => {
                let _ = c.send(b"GET / HTTP/1.1\r\nHo");
            }
            2 => {
                let _ = c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc");
            }
            _ => {
                let _ = c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
            }
        }
    }
    // The gateway still serves, and its memory did not grow with the connections.
    assert_eq!(get(gw.addr, "t", "/").status, 200);
    let after = gw.rss_kib().unwrap_or(0);
    eprintln!("RSS before {before} KiB, after 400 short connections {after} KiB");
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
}
