//! The access log (docs/access-log.md): lines in a file match the requests sent, the file
//! rotates by size and is reopened on SIGUSR1, syslog messages arrive over UDP and TCP as
//! RFC 5424 (octet-counted on TCP), and a receiver that stops reading costs dropped lines
//! (counted at `/metrics`) but never a failed or stalled request.

use gatehouse_tests::backend::{Backend, Reply, Response};
use gatehouse_tests::client::{wait_until, Conn};
use gatehouse_tests::gateway::{Gateway, TempDir};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A backend answering `/shop/N` with N*10 bytes, `/shop/missing*` with 404, and
/// everything else with "ok".
fn backend() -> Backend {
    Backend::start(|req| {
        let t = req.target.as_str();
        if t.starts_with("/shop/missing") {
            return Reply::Respond(Response::new(404, "nope"));
        }
        match t
            .strip_prefix("/shop/")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => Reply::Respond(Response::ok(vec![b'b'; n * 10])),
            None => Reply::Respond(Response::ok("ok")),
        }
    })
}

fn config(up: SocketAddr, workers: usize, log: &str) -> String {
    format!(
        "[server]\nworkers = {workers}\nlisten = [\"{{listen}}\"]\nstate_dir = \"{{state_dir}}\"\n\
         drain_timeout_ms = 5000\n\
         [admin]\nlisten = \"{{admin}}\"\n\
         [log]\n{log}\n\
         [[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{up}\" }}]\n\
         [[modules]]\nid = \"moved\"\nkind = \"redirect\"\nlocation = \"https://new.example/v2\"\n\
         status = 308\n\
         [[modules]]\nid = \"no-local\"\nkind = \"ip_list\"\ndeny = [\"127.0.0.1\"]\n\
         [[routes]]\nid = \"shop\"\npaths = [\"/shop/*\"]\nupstream = \"up\"\n\
         [[routes]]\nid = \"old\"\npaths = [\"/v1/*\"]\nupstream = \"up\"\nmodules = [\"moved\"]\n\
         [[routes]]\nid = \"closed\"\npaths = [\"/closed/*\"]\nupstream = \"up\"\n\
         modules = [\"no-local\"]\n"
    )
}

fn file_log(path: &Path, extra: &str) -> String {
    format!("access = \"file\"\npath = \"{}\"\n{extra}", path.display())
}

/// The JSON lines of a log file (none if it does not exist).
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn by_id(lines: &[Value]) -> HashMap<String, Value> {
    lines
        .iter()
        .map(|v| {
            (
                v["request_id"].as_str().unwrap_or("").to_string(),
                v.clone(),
            )
        })
        .collect()
}

/// Sends `raw` on a new connection and returns the answer's status.
fn send(addr: SocketAddr, raw: &[u8]) -> u16 {
    let mut c = Conn::open(addr);
    c.send(raw).unwrap();
    c.read_response().unwrap().status
}

fn get_with_id(addr: SocketAddr, path: &str, id: &str) -> u16 {
    send(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: h\r\nX-Request-Id: {id}\r\n\r\n").as_bytes(),
    )
}

#[test]
fn file_lines_match_the_requests_sent() {
    let up = backend();
    let dir = TempDir::new("alog");
    let path = dir.0.join("access.log");
    let mut gw = Gateway::start(&config(up.addr(), 2, &file_log(&path, "")));
    // (request id, raw request, status, route, source, error, body bytes back)
    type Sent<'a> = (
        String,
        Vec<u8>,
        u16,
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        u64,
    );
    let mut sent: Vec<Sent> = Vec::new();
    for i in 0..20 {
        let id = format!("get-{i}");
        let raw =
            format!("GET /shop/{i} HTTP/1.1\r\nHost: shop.example\r\nX-Request-Id: {id}\r\n\r\n");
        sent.push((
            id,
            raw.into_bytes(),
            200,
            Some("shop"),
            "upstream",
            None,
            i * 10,
        ));
    }
    for i in 0..3 {
        let id = format!("missing-{i}");
        let raw = format!("GET /shop/missing{i} HTTP/1.1\r\nHost: h\r\nX-Request-Id: {id}\r\n\r\n");
        sent.push((id, raw.into_bytes(), 404, Some("shop"), "upstream", None, 4));
    }
    for i in 0..5 {
        let id = format!("post-{i}");
        let body = "p".repeat(100 * (i + 1));
        let raw = format!(
            "POST /shop/upload HTTP/1.1\r\nHost: h\r\nX-Request-Id: {id}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        sent.push((id, raw.into_bytes(), 200, Some("shop"), "upstream", None, 2));
    }
    for i in 0..3 {
        let id = format!("noroute-{i}");
        let raw = format!("GET /nowhere/{i} HTTP/1.1\r\nHost: h\r\nX-Request-Id: {id}\r\n\r\n");
        sent.push((
            id,
            raw.into_bytes(),
            404,
            None,
            "gateway",
            Some("no_route"),
            0,
        ));
    }
    for i in 0..2 {
        let id = format!("moved-{i}");
        let raw = format!("GET /v1/x HTTP/1.1\r\nHost: h\r\nX-Request-Id: {id}\r\n\r\n");
        sent.push((id, raw.into_bytes(), 308, Some("old"), "module", None, 0));
        let id = format!("closed-{i}");
        let raw = format!("GET /closed/x HTTP/1.1\r\nHost: h\r\nX-Request-Id: {id}\r\n\r\n");
        sent.push((
            id,
            raw.into_bytes(),
            403,
            Some("closed"),
            "gateway",
            Some("forbidden"),
            0,
        ));
    }
    for (id, raw, status, ..) in &sent {
        assert_eq!(send(gw.addr, raw), *status, "{id}");
    }
    let long = format!("/shop/{}", "a".repeat(600));
    assert_eq!(get_with_id(gw.addr, &long, "long"), 200);

    // A graceful stop writes out what is queued before the process exits.
    gw.sigterm();
    assert!(gw.wait_exit(Duration::from_secs(10)).is_some());
    let all = lines(&path);
    assert_eq!(all.len(), sent.len() + 1, "one line per request");
    let got = by_id(&all);
    let mut workers = std::collections::HashSet::new();
    for (id, raw, status, route, source, error, out) in &sent {
        let v = got.get(id).unwrap_or_else(|| panic!("no line for {id}"));
        let head = String::from_utf8_lossy(raw);
        let mut words = head.split(' ');
        let (method, target) = (words.next().unwrap(), words.next().unwrap());
        assert_eq!(v["method"], *method, "{v}");
        assert_eq!(v["path"], *target, "{v}");
        assert_eq!(v["path_truncated"], false);
        assert_eq!(v["status"], *status, "{v}");
        assert_eq!(v["route"].as_str(), *route, "{v}");
        assert_eq!(v["source"], *source, "{v}");
        assert_eq!(v["error"].as_str(), *error, "{v}");
        assert_eq!(v["client_ip"], "127.0.0.1");
        assert!(v["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert!(v["config_version"].as_u64().unwrap() >= 1);
        workers.insert(v["worker"].as_u64().unwrap());
        if *source == "upstream" {
            assert_eq!(v["upstream"], "up");
            assert_eq!(v["upstream_addr"], up.addr().to_string());
            assert!(v["upstream_us"].as_u64().is_some(), "{v}");
            assert_eq!(v["bytes_in"], raw.len() as u64, "head and body bytes: {v}");
            assert_eq!(v["bytes_out"], *out, "{v}");
            assert_eq!(
                v["host"],
                if id.starts_with("get") {
                    "shop.example"
                } else {
                    "h"
                }
            );
        } else {
            assert!(v["upstream_us"].is_null(), "{v}");
        }
        if *error == Some("forbidden") {
            assert!(v["error_detail"].is_string(), "the refusing rule: {v}");
        }
    }
    assert_eq!(workers.len(), 2, "both workers logged");
    let v = &got["long"];
    assert_eq!(v["path"].as_str().unwrap().len(), 512);
    assert_eq!(v["path_truncated"], true);
}

#[test]
fn the_file_rotates_by_size() {
    let up = backend();
    let dir = TempDir::new("alog-rot");
    let path = dir.0.join("access.log");
    let gw = Gateway::start(&config(
        up.addr(),
        1,
        &file_log(&path, "max_bytes = 4096\n"),
    ));
    let n = 40;
    for i in 0..n {
        assert_eq!(get_with_id(gw.addr, "/shop/1", &format!("rot-{i}")), 200);
    }
    let last = format!("rot-{}", n - 1);
    assert!(
        wait_until(Duration::from_secs(5), || by_id(&lines(&path))
            .contains_key(&last)),
        "the last request is in the current file"
    );
    let old = dir.0.join("access.log.1");
    let (cur, prev) = (lines(&path), lines(&old));
    assert!(!prev.is_empty(), "rotated to access.log.1");
    for f in [&path, &old] {
        assert!(std::fs::metadata(f).unwrap().len() <= 4096);
    }
    // One old file is kept: the newest lines survive, in order, without gaps.
    let ids: Vec<String> = prev
        .iter()
        .chain(&cur)
        .map(|v| v["request_id"].as_str().unwrap().to_string())
        .collect();
    let first: usize = ids[0].trim_start_matches("rot-").parse().unwrap();
    let expect: Vec<String> = (first..n).map(|i| format!("rot-{i}")).collect();
    assert_eq!(ids, expect);
}

#[test]
fn sigusr1_reopens_the_file() {
    let up = backend();
    let dir = TempDir::new("alog-usr1");
    let path = dir.0.join("access.log");
    let gw = Gateway::start(&config(up.addr(), 1, &file_log(&path, "max_bytes = 0\n")));
    for i in 0..3 {
        assert_eq!(get_with_id(gw.addr, "/shop/1", &format!("a-{i}")), 200);
    }
    assert!(wait_until(Duration::from_secs(5), || lines(&path).len() == 3));
    // What logrotate does: rename, then signal.
    let moved = dir.0.join("access.log.old");
    std::fs::rename(&path, &moved).unwrap();
    assert_eq!(get_with_id(gw.addr, "/shop/1", "b-0"), 200);
    assert!(wait_until(Duration::from_secs(5), || lines(&moved).len() == 4));
    gw.signal(libc::SIGUSR1);
    assert!(
        wait_until(Duration::from_secs(5), || path.exists()),
        "a new file is opened"
    );
    for i in 0..3 {
        assert_eq!(get_with_id(gw.addr, "/shop/1", &format!("c-{i}")), 200);
    }
    assert!(wait_until(Duration::from_secs(5), || lines(&path).len() == 3));
    let new_ids: Vec<Value> = lines(&path)
        .iter()
        .map(|v| v["request_id"].clone())
        .collect();
    assert_eq!(new_ids, ["c-0", "c-1", "c-2"]);
    assert_eq!(
        lines(&moved).len(),
        4,
        "nothing more went to the renamed file"
    );
    assert!(!gw.stderr().contains("panicked"), "{}", gw.stderr());
}

/// Splits an RFC 5424 message into its header fields and MSG.
fn rfc5424(msg: &str) -> (Vec<&str>, Value) {
    let parts: Vec<&str> = msg.splitn(8, ' ').collect();
    assert_eq!(parts.len(), 8, "{msg}");
    let json = serde_json::from_str(parts[7]).unwrap_or_else(|e| panic!("MSG {msg:?}: {e}"));
    (parts[..7].to_vec(), json)
}

fn check_header(h: &[&str], gw: &Gateway) {
    assert_eq!(h[0], "<158>1", "local3.info, version 1");
    assert!(h[1].ends_with('Z') && h[1].contains('T'), "{h:?}");
    assert!(!h[2].is_empty());
    assert_eq!(h[3], "gh-test");
    assert_eq!(h[4], gw.pid().to_string());
    assert_eq!(h[5], "access");
    assert_eq!(h[6], "-");
}

fn syslog_log(addr: &str) -> String {
    format!(
        "access = \"syslog\"\nsyslog = \"{addr}\"\nfacility = \"local3\"\napp_name = \"gh-test\"\n"
    )
}

#[test]
fn syslog_over_udp() {
    let up = backend();
    let r = UdpSocket::bind("127.0.0.1:0").unwrap();
    r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let addr = format!("udp:{}", r.local_addr().unwrap());
    let gw = Gateway::start(&config(up.addr(), 1, &syslog_log(&addr)));
    for i in 0..5 {
        assert_eq!(get_with_id(gw.addr, "/shop/2", &format!("udp-{i}")), 200);
    }
    let mut buf = [0u8; 8192];
    for i in 0..5 {
        let n = r.recv(&mut buf).expect("a datagram per line");
        let (h, v) = rfc5424(std::str::from_utf8(&buf[..n]).unwrap());
        check_header(&h, &gw);
        assert_eq!(v["request_id"], format!("udp-{i}"));
        assert_eq!(v["bytes_out"], 20);
    }
}

/// Reads octet-counted frames (`LEN SP MSG`) from `s` until `n` arrived.
fn read_frames(s: &mut TcpStream, n: usize) -> Vec<String> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut data = Vec::new();
    let mut frames = Vec::new();
    while frames.len() < n {
        let mut buf = [0u8; 4096];
        let k = s.read(&mut buf).expect("frames");
        assert!(k > 0, "receiver closed");
        data.extend_from_slice(&buf[..k]);
        while let Some(sp) = data.iter().position(|b| *b == b' ') {
            let len: usize = std::str::from_utf8(&data[..sp])
                .unwrap()
                .parse()
                .expect("MSG-LEN");
            if data.len() < sp + 1 + len {
                break;
            }
            frames.push(String::from_utf8(data[sp + 1..sp + 1 + len].to_vec()).unwrap());
            data.drain(..sp + 1 + len);
        }
    }
    assert!(data.is_empty(), "nothing between frames");
    frames
}

#[test]
fn syslog_over_tcp_is_octet_counted() {
    let up = backend();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("tcp:{}", l.local_addr().unwrap());
    let gw = Gateway::start(&config(up.addr(), 1, &syslog_log(&addr)));
    for i in 0..5 {
        assert_eq!(get_with_id(gw.addr, "/shop/3", &format!("tcp-{i}")), 200);
    }
    let (mut s, _) = l.accept().unwrap();
    let frames = read_frames(&mut s, 5);
    for (i, f) in frames.iter().enumerate() {
        let (h, v) = rfc5424(f);
        check_header(&h, &gw);
        assert_eq!(v["request_id"], format!("tcp-{i}"));
        assert_eq!(v["status"], 200);
    }
}

fn scrape_sum(gw: &Gateway, name: &str) -> f64 {
    let mut c = Conn::open(gw.admin);
    c.send(b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n")
        .unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200);
    r.body_str()
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// `total` requests over `conns` keep-alive connections; returns the time taken and the
/// requests that did not get a 200.
fn drive(addr: SocketAddr, total: usize, conns: usize) -> (Duration, usize) {
    let path = format!("/shop/1?pad={}", "q".repeat(200));
    let failed = Arc::new(Mutex::new(0usize));
    let t = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let failed = failed.clone();
            let req = format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes();
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                c.set_timeout(Duration::from_secs(5));
                for _ in 0..total / conns {
                    let ok =
                        c.send(&req).is_ok() && c.read_response().is_ok_and(|r| r.status == 200);
                    if !ok {
                        *failed.lock() += 1;
                        c = Conn::open(addr);
                        c.set_timeout(Duration::from_secs(5));
                    }
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let failed = *failed.lock();
    (t.elapsed(), failed)
}

#[test]
fn a_stalled_syslog_receiver_costs_lines_not_requests() {
    let up = backend();
    let total = 20_000;
    let buffer = "buffer_bytes = 65536\n";

    // Baseline: a receiver that reads everything.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("tcp:{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while s.read(&mut buf).is_ok_and(|n| n > 0) {}
            });
        }
    });
    let gw = Gateway::start(&config(up.addr(), 2, &(syslog_log(&addr) + buffer)));
    let (base, failed) = drive(gw.addr, total, 4);
    assert_eq!(failed, 0, "requests failed with a reading receiver");
    drop(gw);

    // A receiver that accepts and never reads: its window and our buffer fill, then lines
    // are dropped; requests go on at the same pace.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("tcp:{}", l.local_addr().unwrap());
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let h = held.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            h.lock().push(s);
        }
    });
    let gw = Gateway::start(&config(up.addr(), 2, &(syslog_log(&addr) + buffer)));
    let (stalled, failed) = drive(gw.addr, total, 4);
    assert_eq!(
        failed, 0,
        "no request may fail because the log receiver stalled"
    );
    assert!(
        !held.lock().is_empty(),
        "the logger connected to the receiver"
    );
    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    eprintln!(
        "{total} requests: {:.0} req/s with a reading syslog receiver, {:.0} req/s with a stalled one ({:.2}x)",
        rate(base),
        rate(stalled),
        rate(stalled) / rate(base)
    );
    let dropped = scrape_sum(&gw, "gatehouse_access_log_dropped_total{");
    eprintln!("access log lines dropped: {dropped}");
    assert!(dropped > 0.0, "dropped lines are counted");
}

#[test]
fn failed_and_cut_exchanges_have_lines() {
    let up = Backend::start(|req| {
        if req.target.starts_with("/shop/cut") {
            Reply::Respond(Response::pattern(100_000).fin_after(5000))
        } else {
            Reply::Close
        }
    });
    let dir = TempDir::new("alog-fail");
    let path = dir.0.join("access.log");
    let gw = Gateway::start(&config(up.addr(), 1, &file_log(&path, "")));
    assert_eq!(get_with_id(gw.addr, "/shop/closes", "closes"), 502);
    // The answer's head went out: the client sees a cut body, the log an aborted exchange.
    let mut c = Conn::open(gw.addr);
    c.send(b"GET /shop/cut HTTP/1.1\r\nHost: h\r\nX-Request-Id: cut\r\n\r\n")
        .unwrap();
    assert!(c.read_response().is_err(), "the body is cut short");
    assert!(wait_until(Duration::from_secs(5), || lines(&path).len() == 2));
    let got = by_id(&lines(&path));
    let v = &got["closes"];
    assert_eq!(v["source"], "gateway");
    assert_eq!(v["status"], 502);
    assert_eq!(v["error"], "upstream_failed");
    assert_eq!(v["error_detail"], "closed");
    assert_eq!(v["route"], "shop");
    assert_eq!(v["upstream_addr"], up.addr().to_string());
    let v = &got["cut"];
    assert_eq!(v["source"], "aborted");
    assert_eq!(v["status"], 200, "the status the client got");
    assert_eq!(v["route"], "shop");
    let out = v["bytes_out"].as_u64().unwrap();
    assert!(out > 0 && out <= 5000, "{v}");
}
