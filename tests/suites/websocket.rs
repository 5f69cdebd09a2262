//! WebSocket proxying (docs/websocket.md), end to end with the real binary: a Python
//! `websockets` echo server behind the gateway and a Python `websockets` client in front of
//! it (tests/suites/websocket/peer.py), plus raw peers framed with the gateway's codec for
//! what a library will not do (unmasked client frames, a wrong `Sec-WebSocket-Accept`).
//!
//! Needs `GATEHOUSE_PYTHON` pointing at a Python with `websockets` (tests/run-all.sh sets
//! it up); without it the tests fail, saying so.

use gatehouse_tests::backend::{Backend, Reply, Response};
use gatehouse_tests::client::{assert_gateway_error, Conn, Resp};
use gatehouse_tests::gateway::Gateway;
use protocols::websocket::{accept_key, parse_close, parse_header, write_frame, Opcode, Sender};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/suites/websocket/peer.py");
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn python() -> String {
    let py = std::env::var("GATEHOUSE_PYTHON").expect(
        "GATEHOUSE_PYTHON must name a Python with the `websockets` package (tests/run-all.sh sets it up)",
    );
    let ok = Command::new(&py)
        .args(["-c", "import websockets"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "{py} cannot import websockets (pip install websockets)");
    py
}

/// A Python process, killed when dropped.
struct Py {
    child: Child,
    stdin: Option<ChildStdin>,
    out: BufReader<ChildStdout>,
}

impl Py {
    fn spawn(args: &[&str]) -> Py {
        let mut child = Command::new(python())
            .arg(PEER)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn python");
        let stdin = child.stdin.take();
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Py { child, stdin, out }
    }

    fn line(&mut self) -> Value {
        let mut l = String::new();
        self.out.read_line(&mut l).expect("read peer");
        serde_json::from_str(&l).unwrap_or_else(|_| panic!("peer said {l:?}"))
    }

    fn cmd(&mut self, c: &str) -> Value {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{c}").expect("write peer");
        stdin.flush().expect("flush peer");
        self.line()
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python echo server; its address.
fn echo_server() -> (Py, SocketAddr) {
    echo_server_with(&["server"])
}

fn echo_server_with(args: &[&str]) -> (Py, SocketAddr) {
    let mut p = Py::spawn(args);
    let port = p.line().as_u64().expect("port") as u16;
    (p, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A Python client through the gateway, connected.
fn client(gw: &Gateway) -> Py {
    let mut c = Py::spawn(&["client", &format!("ws://{}/ws/echo", gw.addr)]);
    assert_eq!(c.line()["open"], true);
    c
}

fn config(upstream: SocketAddr, ws: &str) -> String {
    format!(
        "[[upstreams]]\nid = \"echo\"\nnodes = [{{ addr = \"{upstream}\" }}]\n\n\
         [[routes]]\nid = \"ws\"\npaths = [\"/ws/*\", \"/other\"]\nupstream = \"echo\"\n{ws}\n"
    )
}

fn scrape(gw: &Gateway) -> HashMap<String, f64> {
    let mut c = Conn::open(gw.admin);
    c.send(b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n")
        .unwrap();
    let r = c.read_response().unwrap();
    r.body_str()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn metric(gw: &Gateway, name: &str) -> f64 {
    scrape(gw).get(name).copied().unwrap_or(-1.0)
}

fn upgrade_request(path: &str, key: &str, version: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    )
}

/// A raw client: the answer head to its upgrade, then frames.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn upgrade(addr: SocketAddr, req: &str) -> (Raw, u16, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = Raw { s, buf: Vec::new() };
        let end = loop {
            if let Some(i) = raw.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(raw.fill(), "closed before an answer");
        };
        let head = String::from_utf8_lossy(&raw.buf[..end]).to_string();
        raw.buf.drain(..end);
        let status = head[9..12].parse().unwrap();
        (raw, status, head)
    }

    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 65536];
        match self.s.read(&mut tmp) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
        }
    }

    /// The next frame from the server: opcode and payload; None when the connection ended.
    fn frame(&mut self) -> Option<(Opcode, Vec<u8>)> {
        loop {
            if let Ok(Some(h)) = parse_header(&self.buf, Sender::Server, 0) {
                let end = h.header_len + h.payload_len as usize;
                if self.buf.len() >= end {
                    let p = self.buf[h.header_len..end].to_vec();
                    self.buf.drain(..end);
                    return Some((h.opcode, p));
                }
            }
            if !self.fill() {
                return None;
            }
        }
    }

    fn send(&mut self, op: Opcode, payload: &[u8], mask: Option<[u8; 4]>) {
        let mut out = Vec::new();
        write_frame(&mut out, true, op, payload, mask);
        self.s.write_all(&out).unwrap();
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn a_thousand_messages_echo_both_ways_and_metrics_count_the_tunnel() {
    let (_server, up) = echo_server();
    let gw = Gateway::start(&config(up, ""));
    let mut c = client(&gw);
    assert_eq!(metric(&gw, "gatehouse_websocket_tunnels_open"), 1.0);
    // Text and binary, small, 64 KiB and more, and fragmented both ways.
    assert_eq!(c.cmd("echo 1000")["echoed"], 1000);
    drop(c.stdin.take()); // the client closes (close handshake), then exits
    let _ = c.child.wait();
    assert!(gatehouse_tests::wait_until(Duration::from_secs(5), || {
        metric(&gw, "gatehouse_websocket_tunnels_open") == 0.0
    }));
    let m = scrape(&gw);
    assert_eq!(m["gatehouse_websocket_tunnels_total"], 1.0);
    // 1,000 messages, 100 of them fragmented (the library sends three fragments and an
    // empty final frame), and the close.
    for dir in ["client_to_upstream", "upstream_to_client"] {
        let frames = m[&format!("gatehouse_websocket_frames_total{{direction=\"{dir}\"}}")];
        assert_eq!(frames, 1301.0, "{dir}");
        let bytes = m[&format!("gatehouse_websocket_bytes_total{{direction=\"{dir}\"}}")];
        assert!(bytes > 10_000_000.0, "{dir}: {bytes}");
    }
    assert_eq!(
        m[r#"gatehouse_requests_total{route="ws",upstream="echo",class="1xx"}"#],
        1.0
    );
}

#[test]
fn permessage_deflate_frames_pass_when_negotiated() {
    let (_server, up) = echo_server_with(&["server", "deflate"]);
    let gw = Gateway::start(&config(up, ""));
    let mut c = Py::spawn(&["client", &format!("ws://{}/ws/echo", gw.addr), "deflate"]);
    let open = c.line();
    assert!(open["extensions"]
        .as_str()
        .is_some_and(|e| e.starts_with("permessage-deflate")));
    // Compressed frames carry RSV1: allowed because the 101 negotiated the extension.
    assert_eq!(c.cmd("echo 100")["echoed"], 100);
    assert_eq!(metric(&gw, "gatehouse_websocket_tunnels_open"), 1.0);
}

#[test]
fn refused_upgrades_never_open_a_tunnel() {
    for status in [403u16, 200] {
        let up = Backend::start(move |_| Reply::Respond(Response::new(status, "no tunnel")));
        let gw = Gateway::start(&config(up.addr(), ""));
        let mut conn = Conn::open(gw.addr);
        conn.send(upgrade_request("/ws/x", KEY, "13").as_bytes())
            .unwrap();
        let r = conn.read_response().unwrap();
        assert_eq!((r.status, r.body_str().as_str()), (status, "no tunnel"));
        // The upstream saw the upgrade fields; the client's connection goes on as HTTP.
        let req = &up.requests()[0];
        assert_eq!(req.header("upgrade"), Some("websocket"));
        conn.send(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let r = conn.read_response().unwrap();
        assert_eq!((r.status, r.body_str().as_str()), (status, "no tunnel"));
        assert_eq!(metric(&gw, "gatehouse_websocket_tunnels_total"), 0.0);
    }
}

/// An upstream that answers every upgrade with 101 and the given accept value, then sends a
/// text frame (which must never reach the client).
fn fake_101(accept: Option<String>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let accept = accept.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut tmp) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
                let mut out = String::from(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
                );
                if let Some(a) = &accept {
                    out.push_str(&format!("Sec-WebSocket-Accept: {a}\r\n"));
                }
                out.push_str("\r\n");
                let mut bytes = out.into_bytes();
                write_frame(&mut bytes, true, Opcode::Text, b"leak", None);
                let _ = s.write_all(&bytes);
                let _ = s.read(&mut tmp);
            });
        }
    });
    addr
}

#[test]
fn a_101_without_the_right_accept_is_a_502() {
    let right = String::from_utf8(accept_key(KEY.as_bytes()).to_vec()).unwrap();
    let wrong = String::from_utf8(accept_key(b"AAAAAAAAAAAAAAAAAAAAAA==").to_vec()).unwrap();
    for accept in [Some(wrong), None] {
        let gw = Gateway::start(&config(fake_101(accept), ""));
        let (mut raw, status, head) = Raw::upgrade(gw.addr, &upgrade_request("/ws/x", KEY, "13"));
        assert_eq!(status, 502, "{head}");
        // The error body, then the end: no frame of the upstream's comes through.
        while raw.fill() {}
        assert!(!String::from_utf8_lossy(&raw.buf).contains("leak"));
        assert_eq!(metric(&gw, "gatehouse_websocket_tunnels_total"), 0.0);
    }
    // The same upstream with the right accept does get a tunnel.
    let gw = Gateway::start(&config(fake_101(Some(right)), ""));
    let (mut raw, status, head) = Raw::upgrade(gw.addr, &upgrade_request("/ws/x", KEY, "13"));
    assert_eq!(status, 101, "{head}");
    assert!(header(&head, "x-request-id").is_some());
    assert_eq!(
        header(&head, "sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(raw.frame(), Some((Opcode::Text, b"leak".to_vec())));
}

#[test]
fn bad_upgrade_requests_are_answered_by_the_gateway() {
    let up = Backend::start(|_| Reply::Respond(Response::ok("reached")));
    let gw = Gateway::start(&config(up.addr(), ""));
    let ask = |req: String| -> Resp {
        let mut c = Conn::open(gw.addr);
        c.send(req.as_bytes()).unwrap();
        c.read_response().unwrap()
    };
    let missing_key =
        upgrade_request("/ws/x", KEY, "13").replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), "");
    assert_gateway_error(&ask(missing_key), 400, "bad_request");
    assert_gateway_error(
        &ask(upgrade_request("/ws/x", "c2hvcnQ=", "13")),
        400,
        "bad_request",
    );
    let r = ask(upgrade_request("/ws/x", KEY, "8"));
    assert_gateway_error(&r, 400, "bad_request");
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    let post = upgrade_request("/ws/x", KEY, "13").replace("GET", "POST");
    assert_gateway_error(&ask(post), 400, "bad_request");
    assert_eq!(up.request_count(), 0);
}

#[test]
fn a_tunnel_lives_through_100_config_changes() {
    let (_server, up) = echo_server();
    let gw = Gateway::start(&config(up, ""));
    let mut c = client(&gw);
    let mut api = Conn::open(gw.admin);
    for i in 0..100 {
        let body = format!(
            "{{\"paths\": [\"/extra/{i}\"], \"upstream\": \"echo\", \"websocket\": {{\"idle_timeout_ms\": {}}}}}",
            1000 + i
        );
        let req = format!(
            "PUT /admin/v1/routes/extra HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        api.send(req.as_bytes()).unwrap();
        let r = api.read_response().unwrap();
        assert!(r.status == 200 || r.status == 201, "{}", r.body_str());
    }
    assert_eq!(c.cmd("echo 20")["echoed"], 20);
    assert_eq!(metric(&gw, "gatehouse_websocket_tunnels_open"), 1.0);
}

#[test]
fn a_silent_tunnel_is_closed_after_its_idle_timeout() {
    let (mut server, up) = echo_server();
    let gw = Gateway::start(&config(up, "websocket = { idle_timeout_ms = 600 }"));
    let mut c = client(&gw);
    let t = Instant::now();
    assert_eq!(c.cmd("wait")["closed"], 1001);
    assert!(t.elapsed() >= Duration::from_millis(500));
    assert_eq!(server.line()["server_closed"], 1001);
    assert!(gatehouse_tests::wait_until(Duration::from_secs(5), || {
        metric(&gw, "gatehouse_websocket_tunnels_open") == 0.0
    }));
}

#[test]
fn keepalive_pings_keep_an_idle_client_connected() {
    let (_server, up) = echo_server();
    let gw = Gateway::start(&config(
        up,
        "websocket = { idle_timeout_ms = 1500, ping_interval_ms = 300 }",
    ));
    let mut c = client(&gw);
    // Over two idle timeouts of silence from the application: the client's pongs keep it open.
    assert_eq!(c.cmd("sleep 4")["slept"], true);
    assert_eq!(c.cmd("echo 10")["echoed"], 10);
    // A raw client that does not answer pings sees them, then the idle close.
    let (mut raw, status, _) = Raw::upgrade(gw.addr, &upgrade_request("/ws/x", KEY, "13"));
    assert_eq!(status, 101);
    assert_eq!(raw.frame(), Some((Opcode::Ping, b"gatehouse".to_vec())));
    let close = loop {
        match raw.frame() {
            Some((Opcode::Ping, _)) => continue,
            other => break other,
        }
    };
    let (op, payload) = close.expect("a close frame");
    assert_eq!(op, Opcode::Close);
    assert_eq!(parse_close(&payload).unwrap().unwrap().0, 1001);
}

#[test]
fn sigterm_sends_close_1001_to_both_sides() {
    let (mut server, up) = echo_server();
    let mut gw = Gateway::start(&config(up, ""));
    let mut c = client(&gw);
    assert_eq!(c.cmd("echo 3")["echoed"], 3);
    let stdin = c.stdin.as_mut().unwrap();
    writeln!(stdin, "wait").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    gw.sigterm();
    assert_eq!(c.line()["closed"], 1001);
    assert_eq!(server.line()["server_closed"], 1001);
    let st = gw
        .wait_exit(Duration::from_secs(10))
        .expect("gateway exits");
    assert!(st.success(), "{st:?}");
}

#[test]
fn an_unmasked_client_frame_gets_close_1002() {
    let (mut server, up) = echo_server();
    let gw = Gateway::start(&config(up, ""));
    let (mut raw, status, _) = Raw::upgrade(gw.addr, &upgrade_request("/ws/x", KEY, "13"));
    assert_eq!(status, 101);
    raw.send(Opcode::Text, b"masked", Some([1, 2, 3, 4]));
    assert_eq!(raw.frame(), Some((Opcode::Text, b"masked".to_vec())));
    raw.send(Opcode::Text, b"bare", None);
    let (op, payload) = raw.frame().expect("a close frame");
    assert_eq!(op, Opcode::Close);
    let (code, reason) = parse_close(&payload).unwrap().unwrap();
    assert_eq!((code, reason), (1002, "unmasked_client_frame"));
    assert_eq!(server.line()["server_closed"], 1002);
    // Then the connection ends.
    assert_eq!(raw.frame(), None);
    assert!(gatehouse_tests::wait_until(Duration::from_secs(5), || {
        metric(&gw, "gatehouse_websocket_tunnels_open") == 0.0
    }));
}
