//! Health of Thrift upstreams through the real binary: active `kind = "thrift"` checks take a
//! stopped node out and bring it back, every node down is a 503 `no_healthy_upstream`, and a
//! call refused on connect is sent to the other node (and the refusing node is ejected).
//!
//! Peers: real loopback Thrift servers (binary protocol, framed transport) written here so
//! they can be stopped and started again on the same port. Each answers `hello` with its own
//! name and the check's `ping` with a TApplicationException (UnknownMethod), which a check
//! counts as healthy: the server is alive and answering. The peer named `closer` reads a
//! `hello` call and closes the connection without answering.

#[path = "thrift/raw.rs"]
#[allow(dead_code)]
mod raw;

use gatehouse_tests::client::{assert_gateway_error, get, Resp};
use gatehouse_tests::gateway::Gateway;
use raw::{string_reply, Msg};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const GREETER: &str = "service Greeter { string hello(1: string name) }";

/// A Thrift server on a fixed port that can be stopped (listener and connections closed)
/// and started again.
struct Peer {
    addr: SocketAddr,
    name: &'static str,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Calls of `hello` served, over every start.
    hellos: Arc<AtomicUsize>,
}

impl Peer {
    fn start(name: &'static str) -> Peer {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut p = Peer {
            addr: l.local_addr().expect("addr"),
            name,
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
            hellos: Arc::new(AtomicUsize::new(0)),
        };
        p.serve(l);
        p
    }

    fn serve(&mut self, l: TcpListener) {
        l.set_nonblocking(true).expect("nonblocking");
        self.stop = Arc::new(AtomicBool::new(false));
        let (stop, name, hellos) = (self.stop.clone(), self.name, self.hellos.clone());
        self.thread = Some(std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        let (stop, hellos) = (stop.clone(), hellos.clone());
                        conns.push(std::thread::spawn(move || answer(s, name, &stop, &hellos)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            drop(l);
            for c in conns {
                let _ = c.join();
            }
        }));
    }

    /// Closes the listener and every connection; connects are refused from now on.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Listens again on the same port.
    fn restart(&mut self) {
        let l = TcpListener::bind(self.addr).expect("bind the same port again");
        self.serve(l);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves one connection: framed binary calls until the peer closes it or it is stopped.
fn answer(mut s: TcpStream, name: &str, stop: &AtomicBool, hellos: &AtomicUsize) {
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => return,
        }
        while let Some((method, seqid, len)) = call_header(&buf) {
            buf.drain(..len);
            let out = if method == "hello" {
                hellos.fetch_add(1, Ordering::SeqCst);
                if name == "closer" {
                    // Read the call, then close without a reply.
                    return;
                }
                string_reply("hello", seqid, name)
            } else {
                // TApplicationException { 1: message, 2: type = UNKNOWN_METHOD (1) }
                Msg::header(&method, 3, seqid)
                    .field(11, 1)
                    .string("unknown method")
                    .field(8, 2)
                    .i32(1)
                    .stop()
                    .framed()
            };
            if s.write_all(&out).is_err() {
                return;
            }
        }
    }
}

/// The method name, sequence id and whole length of the first framed strict-binary call in
/// `buf`, once it is all there.
fn call_header(buf: &[u8]) -> Option<(String, i32, usize)> {
    let be = |at: usize| Some(u32::from_be_bytes(buf.get(at..at + 4)?.try_into().ok()?));
    let total = 4 + be(0)? as usize;
    if buf.len() < total {
        return None;
    }
    let name_len = be(8)? as usize;
    let name = String::from_utf8_lossy(buf.get(12..12 + name_len)?).into_owned();
    Some((name, be(12 + name_len)? as i32, total))
}

const CHECK: &str = "[upstreams.health_check]\nkind = \"thrift\"\nmethod = \"ping\"\n\
                     interval_ms = 100\ntimeout_ms = 300\nhealthy_threshold = 1\n\
                     unhealthy_threshold = 2\n";

fn config(nodes: &[SocketAddr], upstream_extra: &str) -> String {
    let nodes: Vec<String> = nodes
        .iter()
        .map(|a| format!("{{ addr = \"{a}\" }}"))
        .collect();
    format!(
        r#"
[[upstreams]]
id = "greeter"
protocol = "thrift"
read_timeout_ms = 2000
nodes = [{}]
{upstream_extra}

[[services]]
id = "greeter"
files = [{{ name = "greeter.thrift", text = '''{GREETER}''' }}]

[[routes]]
id = "hello"
paths = ["/hello/{{name}}"]
upstream = "greeter"
service = "greeter"
method = "hello"
"#,
        nodes.join(", ")
    )
}

fn hello(g: &Gateway) -> Resp {
    get(g.addr, "t", "/hello/ann")
}

/// The state the gateway's metrics give node `addr` of the Thrift upstream.
fn node_state(g: &Gateway, addr: SocketAddr) -> String {
    let m = get(g.admin, "admin", "/metrics").body_str();
    let needle =
        format!("gatehouse_upstream_node_healthy{{upstream=\"greeter\",node=\"{addr}\",state=\"");
    m.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
        .to_string()
}

fn wait_state(g: &Gateway, addr: SocketAddr, state: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    while node_state(g, addr) != state {
        assert!(
            Instant::now() < end,
            "{addr} never became {state}: {}",
            node_state(g, addr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_thrift_check_takes_a_stopped_node_out_and_brings_it_back() {
    let a = Peer::start("a");
    let mut b = Peer::start("b");
    let g = Gateway::start(&config(&[a.addr, b.addr], CHECK));
    // Both up (the check's call is answered with a TApplicationException: still healthy).
    wait_state(&g, a.addr, "healthy");
    let names: Vec<String> = (0..4).map(|_| hello(&g).body_str()).collect();
    assert!(names.iter().any(|n| n.contains("\"a\"")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("\"b\"")), "{names:?}");

    b.stop();
    wait_state(&g, b.addr, "check_failed");
    assert_eq!(node_state(&g, a.addr), "healthy");
    let served = b.hellos.load(Ordering::SeqCst);
    for _ in 0..20 {
        let r = hello(&g);
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(r.body_str(), "\"a\"");
    }
    assert_eq!(b.hellos.load(Ordering::SeqCst), served);

    b.restart();
    wait_state(&g, b.addr, "healthy");
    let names: Vec<String> = (0..4).map(|_| hello(&g).body_str()).collect();
    assert!(names.iter().any(|n| n == "\"b\""), "{names:?}");
}

#[test]
fn every_node_down_is_a_503_no_healthy_upstream_unless_fail_open() {
    let mut a = Peer::start("a");
    let mut b = Peer::start("b");
    let g = Gateway::start(&config(&[a.addr, b.addr], CHECK));
    wait_state(&g, a.addr, "healthy");
    a.stop();
    b.stop();
    wait_state(&g, a.addr, "check_failed");
    wait_state(&g, b.addr, "check_failed");
    assert_gateway_error(&hello(&g), 503, "no_healthy_upstream");

    // fail_open: every node may be tried; the call then fails on connect (502).
    let open = Gateway::start(&config(
        &[a.addr, b.addr],
        &format!("fail_open = true\n{CHECK}"),
    ));
    wait_state(&open, a.addr, "check_failed");
    wait_state(&open, b.addr, "check_failed");
    a.restart();
    // Still check_failed for a moment; fail_open sends the call anyway, and it is answered.
    let r = hello(&open);
    assert_eq!((r.status, r.body_str()), (200, "\"a\"".to_string()));
}

#[test]
fn a_call_refused_on_connect_goes_to_the_other_node_and_the_refuser_is_ejected() {
    let live = Peer::start("live");
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let outlier = "[upstreams.outlier]\nconsecutive_failures = 2\nbase_ejection_ms = 60000\n";
    let g = Gateway::start(&config(&[dead, live.addr], outlier));
    for _ in 0..12 {
        let r = hello(&g);
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(r.body_str(), "\"live\"");
    }
    assert_eq!(live.hellos.load(Ordering::SeqCst), 12, "each call ran once");
    wait_state(&g, dead, "ejected");
    assert_eq!(node_state(&g, live.addr), "healthy");
    let m = get(g.admin, "admin", "/metrics").body_str();
    assert!(
        m.lines().any(
            |l| l.starts_with("gatehouse_upstream_retries_total{upstream=\"greeter\"}")
                && !l.ends_with(" 0")
        ),
        "no retry counted"
    );
}

#[test]
fn a_call_written_to_a_connection_is_never_sent_again() {
    let closer = Peer::start("closer");
    let good = Peer::start("good");
    let g = Gateway::start(&config(
        &[closer.addr, good.addr],
        "retry_budget = { percent = 100 }",
    ));
    let (mut failed, mut ok) = (0, 0);
    for _ in 0..6 {
        let r = hello(&g);
        if r.status == 200 {
            assert_eq!(r.body_str(), "\"good\"");
            ok += 1;
        } else {
            assert_gateway_error(&r, 502, "upstream_failed");
            failed += 1;
        }
    }
    // Round-robin: half of the calls went to the closer, which read each one; none of them
    // went on to the good node.
    assert!(failed > 0 && ok > 0, "failed {failed}, ok {ok}");
    assert_eq!(closer.hellos.load(Ordering::SeqCst), failed);
    assert_eq!(good.hellos.load(Ordering::SeqCst), ok);
}

#[test]
fn a_tcp_check_works_on_a_thrift_upstream() {
    let a = Peer::start("a");
    let mut b = Peer::start("b");
    let tcp = "[upstreams.health_check]\nkind = \"tcp\"\ninterval_ms = 100\ntimeout_ms = 300\n\
               healthy_threshold = 1\nunhealthy_threshold = 1\n";
    let g = Gateway::start(&config(&[a.addr, b.addr], tcp));
    b.stop();
    wait_state(&g, b.addr, "check_failed");
    for _ in 0..6 {
        assert_eq!(hello(&g).body_str(), "\"a\"");
    }
}
