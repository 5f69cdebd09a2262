//! The `[server]` table seen from outside: several workers sharing a port, several
//! listeners, `max_connections` pausing and resuming accepts, and a graceful stop with
//! several workers.

use gatehouse_tests::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn server(workers: usize, extra: &str) -> String {
    format!(
        "[server]\nworkers = {workers}\nlisten = [\"{{listen}}\"]\nstate_dir = \"{{state_dir}}\"\n\
         drain_timeout_ms = 5000\n{extra}\n\n"
    )
}

#[test]
fn several_workers_serve_concurrent_clients() {
    let b = Backend::start(|q| Reply::Respond(Response::ok(q.target.clone())));
    let gw = Gateway::start(&format!(
        "{}{}",
        server(2, ""),
        one_route(b.addr(), "", "", "")
    ));
    let addr = gw.addr;
    let threads: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..10 {
                    // A new connection each time, so the kernel spreads them over workers.
                    let path = format!("/{t}/{i}");
                    let r = get(addr, "t", &path);
                    assert_eq!((r.status, r.body_str()), (200, path));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client");
    }
    assert_eq!(b.request_count(), 160);
    // Each worker keeps its own pool: at most a few connections per worker.
    assert!(b.accepts() <= 32, "{} upstream connections", b.accepts());
}

#[test]
fn every_listener_serves() {
    let b = Backend::fixed("x");
    let second = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let cfg = format!(
        "[server]\nworkers = 1\nlisten = [\"{{listen}}\", \"{second}\"]\nstate_dir = \"{{state_dir}}\"\n\n{}",
        one_route(b.addr(), "", "", "")
    );
    let gw = Gateway::start(&cfg);
    assert_eq!(get(gw.addr, "t", "/").body_str(), "x");
    assert!(wait_until(Duration::from_secs(5), || {
        std::net::TcpStream::connect(second).is_ok()
    }));
    assert_eq!(get(second, "t", "/").body_str(), "x");
}

#[test]
fn max_connections_pauses_accepting_until_a_connection_ends() {
    let b = Backend::fixed("x");
    let gw = Gateway::start(&format!(
        "{}{}",
        server(1, "max_connections = 2"),
        one_route(b.addr(), "", "", "")
    ));
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = Conn::open(gw.addr);
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
        assert_eq!(c.read_response().expect("answer").status, 200);
        held.push(c);
    }
    // The third waits in the kernel's queue: no answer while two are open.
    let mut third = Conn::open(gw.addr);
    third
        .send(b"GET /third HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    assert_eq!(third.ending(Duration::from_millis(500)), Ending::Open);
    // One ends: the third is accepted and answered.
    drop(held.remove(0));
    let t = Instant::now();
    third.set_timeout(Duration::from_secs(3));
    let r = third
        .read_response()
        .expect("third answered after a slot freed");
    assert_eq!(r.status, 200);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // And the gateway keeps serving once the load is gone.
    drop(held);
    drop(third);
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..4 {
        assert_eq!(get(gw.addr, "t", "/").status, 200);
    }
}

#[test]
fn several_workers_stop_gracefully() {
    let b = Backend::start(|_| {
        Reply::Respond(Response::ok("done").head_delay(Duration::from_millis(600)))
    });
    let mut gw = Gateway::start(&format!(
        "{}{}",
        server(2, ""),
        one_route(b.addr(), "", "", "")
    ));
    std::thread::sleep(Duration::from_millis(200));
    let addr = gw.addr;
    let clients: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                c.send(format!("GET /{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                    .expect("send");
                c.read_response().map(|r| (r.status, r.body_str()))
            })
        })
        .collect();
    assert!(wait_until(Duration::from_secs(5), || b.request_count() >= 4));
    gw.sigterm();
    for c in clients {
        let r = c.join().expect("client");
        assert_eq!(r.expect("in-flight answer"), (200, "done".to_string()));
    }
    let st = gw.wait_exit(Duration::from_secs(5)).expect("still running");
    assert_eq!(st.code(), Some(0));
}
