//! The command line and the process lifecycle of CONTRACT.md: `--version`, `check` exit
//! codes and `path: message` lines, bad flags, a busy port, graceful stop on SIGTERM and
//! SIGINT, and `gatehouse demo` serving the curl lines it prints.

use gatehouse_tests::*;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CMD_TIMEOUT: Duration = Duration::from_secs(20);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn no_panic(stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "panic: {stderr}"
    );
}

#[test]
fn version_prints_one_line() {
    let out = run_cmd(&["--version"], CMD_TIMEOUT);
    assert!(out.status.success(), "{:?}", out.status);
    let s = text(&out.stdout);
    assert_eq!(s.lines().count(), 1, "{s:?}");
    assert!(s.starts_with("gatehouse "), "{s:?}");
}

#[test]
fn check_accepts_a_good_config() {
    let dir = TempDir::new("check");
    let p = dir.write(
        "good.toml",
        "[[upstreams]]\nid = \"u\"\nnodes = [{ addr = \"127.0.0.1:9\" }]\n\n\
         [[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"u\"\n",
    );
    let out = run_cmd(
        &["check", "--config", &p.display().to_string()],
        CMD_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // An empty file is a valid config too.
    let p = dir.write("empty.toml", "");
    let out = run_cmd(
        &["check", "--config", &p.display().to_string()],
        CMD_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn check_reports_every_problem_as_path_colon_message_and_exits_2() {
    let dir = TempDir::new("check");
    let p = dir.write(
        "bad.toml",
        "[limits]\nmax_headers = 0\n\n\
         [[upstreams]]\nid = \"u\"\nnodes = [{ addr = \"1.2.3\" }]\n\n\
         [[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"x\"\n",
    );
    let out = run_cmd(
        &["check", "--config", &p.display().to_string()],
        CMD_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    no_panic(&err);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    for want in [
        "routes[0].upstream: no upstream named \"x\"",
        "limits.max_headers: ",
        "upstreams[0].nodes[0].addr: ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "no {want:?} in {err}"
        );
    }
    for l in &lines {
        let (path, msg) = l
            .split_once(": ")
            .unwrap_or_else(|| panic!("not `path: message`: {l:?}"));
        assert!(
            !path.is_empty()
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c)),
            "bad path in {l:?}"
        );
        assert!(!msg.trim().is_empty(), "{l:?}");
    }
}

#[test]
fn check_and_run_refuse_unreadable_or_invalid_files_cleanly() {
    let dir = TempDir::new("check");
    let syntax = dir.write("syntax.toml", "[server\nworkers = 1\n");
    let unknown = dir.write(
        "unknown.toml",
        "[[routes]]\nid = \"r\"\npaths = [\"/\"]\nupstream = \"u\"\nmethodz = []\n",
    );
    let missing = dir.0.join("missing.toml");
    for cmd in ["check", "run"] {
        for p in [&syntax, &unknown, &missing] {
            let out = run_cmd(&[cmd, "--config", &p.display().to_string()], CMD_TIMEOUT);
            let err = text(&out.stderr);
            assert!(
                !out.status.success(),
                "{cmd} {}: {:?}",
                p.display(),
                out.status
            );
            no_panic(&err);
            assert!(
                !err.trim().is_empty(),
                "{cmd} {}: silent failure",
                p.display()
            );
        }
    }
    let out = run_cmd(
        &["check", "--config", &unknown.display().to_string()],
        CMD_TIMEOUT,
    );
    assert!(
        text(&out.stderr).contains("methodz"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_flags_fail_without_panicking() {
    for args in [
        &["--bogus"][..],
        &["run"],
        &["run", "--config"],
        &["frobnicate"],
        &["check"],
        &["demo", "--listen", "not-an-address"],
        &["run", "--config", "/dev/null", "--extra"],
    ] {
        let out = run_cmd(args, CMD_TIMEOUT);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = text(&out.stderr);
        no_panic(&err);
        assert!(!err.trim().is_empty(), "{args:?}: no message");
    }
}

fn config_on(listen: SocketAddr) -> String {
    format!(
        "[server]\nworkers = 1\nlisten = [\"{listen}\"]\nstate_dir = \"{{state_dir}}\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{}\"\n",
        free_port()
    )
}

#[test]
fn run_on_a_port_held_by_another_program_fails_clearly() {
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = holder.local_addr().expect("addr");
    let dir = TempDir::new("busy");
    let cfg = config_on(addr).replace("{state_dir}", &dir.0.display().to_string());
    let p = dir.write("gatehouse.toml", &cfg);
    let out = run_cmd(&["run", "--config", &p.display().to_string()], CMD_TIMEOUT);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    no_panic(&err);
    assert!(
        err.contains(&addr.to_string()),
        "message does not name {addr}: {err}"
    );
}

#[test]
fn run_on_a_port_held_by_another_gatehouse_fails_clearly() {
    // SO_REUSEPORT lets a gateway's own workers share a port; a second gateway process
    // must still not silently join the first one's port and take half its traffic.
    let first = Gateway::start("");
    let dir = TempDir::new("busy");
    let cfg = config_on(first.addr).replace("{state_dir}", &dir.0.display().to_string());
    let p = dir.write("gatehouse.toml", &cfg);
    let mut child = Command::new(bin())
        .args(["run", "--config", &p.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let end = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if Instant::now() > end {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.is_none() {
        // SAFETY: SIGTERM to our own child.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = child.wait();
    }
    let st = status.unwrap_or_else(|| panic!("a second gatehouse is serving {} too", first.addr));
    assert!(!st.success());
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let b = Backend::start(|_| {
        Reply::Respond(Response::ok("finished").head_delay(Duration::from_secs(1)))
    });
    let mut gw = gateway_for(&b);
    // An idle keep-alive connection, closed at once by the stop.
    let mut idle = Conn::open(gw.addr);
    idle.send(b"GET /warm HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    assert_eq!(idle.read_response().expect("warm-up").status, 200);

    let mut c = Conn::open(gw.addr);
    c.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    assert!(wait_until(Duration::from_secs(5), || b.request_count() >= 2));
    let t = Instant::now();
    gw.sigterm();
    assert!(
        idle.closes_within(Duration::from_secs(2)),
        "idle connection kept open"
    );
    // New connections are refused while the in-flight request finishes.
    std::thread::sleep(Duration::from_millis(200));
    let late = TcpStream::connect_timeout(&gw.addr, Duration::from_millis(500));
    assert!(late.is_err(), "a new connection was accepted after SIGTERM");
    let r = c.read_response().expect("the in-flight answer");
    assert_eq!((r.status, r.body_str().as_str()), (200, "finished"));
    assert!(r.has_token("connection", "close"), "{:?}", r.headers);
    assert!(c.closes_within(Duration::from_secs(2)));
    let st = gw
        .wait_exit(Duration::from_secs(5))
        .expect("gateway still running after its last request");
    assert_eq!(st.code(), Some(0), "{}", gw.stderr());
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(b.requests().iter().all(|q| q.target != "/late"));
}

#[test]
fn sigint_on_an_idle_gateway_exits_0_promptly() {
    let b = Backend::fixed("x");
    let mut gw = gateway_for(&b);
    assert_eq!(get(gw.addr, "t", "/").status, 200);
    // Past the start-up window (see the next test): this one is about SIGINT itself.
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    gw.signal(libc::SIGINT);
    let st = gw.wait_exit(Duration::from_secs(5)).expect("still running");
    assert_eq!(st.code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn sigterm_as_soon_as_the_port_accepts_is_still_graceful() {
    // A supervisor may stop a gateway the moment it is up: the signal must be handled
    // (drain, exit 0), not kill the process with the default disposition.
    for attempt in 0..10 {
        let mut gw = Gateway::spawn("").expect("spawn");
        gw.wait_accepting().expect("listening");
        gw.sigterm();
        let st = gw.wait_exit(Duration::from_secs(5)).expect("still running");
        assert_eq!(
            st.code(),
            Some(0),
            "attempt {attempt}: {st} (stderr: {:?})",
            gw.stderr()
        );
    }
}

/// Splits a printed shell line into words (single quotes only, as the demo prints).
fn shell_words(line: &str) -> Vec<String> {
    let line = line.split(" #").next().unwrap_or(line);
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for ch in line.chars() {
        match ch {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    words
}

/// Runs one printed `curl` line with the raw client.
fn run_curl(line: &str) -> Resp {
    let w = shell_words(line);
    assert_eq!(w.first().map(String::as_str), Some("curl"), "{line}");
    let (mut method, mut headers, mut data, mut url) = (None, Vec::new(), None, None);
    let mut i = 1;
    while i < w.len() {
        match w[i].as_str() {
            "-i" | "-s" | "-v" => {}
            "-X" => {
                i += 1;
                method = w.get(i).cloned();
            }
            "-H" => {
                i += 1;
                headers.extend(w.get(i).cloned());
            }
            "-d" | "--data" => {
                i += 1;
                data = w.get(i).cloned();
            }
            u if u.starts_with("http://") => url = Some(u.to_string()),
            other => panic!("unexpected curl argument {other:?} in {line}"),
        }
        i += 1;
    }
    let url = url.unwrap_or_else(|| panic!("no URL in {line}"));
    let rest = url.trim_start_matches("http://");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = authority.parse().expect("demo URL authority");
    let method = method.unwrap_or_else(|| if data.is_some() { "POST" } else { "GET" }.into());
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: curl\r\n");
    for h in &headers {
        raw.push_str(&format!("{h}\r\n"));
    }
    if let Some(d) = &data {
        if !headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("content-type"))
        {
            raw.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        raw.push_str(&format!("Content-Length: {}\r\n\r\n{d}", d.len()));
    } else {
        raw.push_str("\r\n");
    }
    roundtrip(addr, raw.as_bytes())
}

#[test]
fn demo_serves_the_curl_lines_it_prints() {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut child = Command::new(bin())
        .args([
            "demo",
            "--listen",
            &listen.to_string(),
            "--admin",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut printed = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => {
                let stop = l.contains("Ctrl-C");
                printed.push(l);
                if stop {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    let curls: Vec<String> = printed
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| l.starts_with("curl "))
        .collect();
    let results: Vec<(String, Resp)> = curls.iter().map(|l| (l.clone(), run_curl(l))).collect();
    // SAFETY: SIGTERM to our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let st = child.wait().expect("wait demo");
    assert!(curls.len() >= 3, "printed: {printed:#?}");
    assert!(
        printed.iter().any(|l| l.contains(&listen.to_string())),
        "{printed:#?}"
    );
    for (line, r) in &results {
        assert!(
            r.header("x-request-id").is_some(),
            "{line}: {:?}",
            r.headers
        );
        if line.contains("404") {
            assert_gateway_error(r, 404, "no_route");
        } else {
            // Lines that pass answer 2xx (a oneway Thrift call is a 202), with JSON.
            assert!(
                (200..300).contains(&r.status),
                "{line}: {} {}",
                r.status,
                r.body_str()
            );
            assert!(r.json().is_some(), "{line}: not JSON: {}", r.body_str());
        }
    }
    assert_eq!(st.code(), Some(0));
}

#[test]
fn a_request_longer_than_the_drain_timeout_does_not_hold_the_stop() {
    let b = Backend::start(|_| {
        Reply::Respond(Response::ok("too late").head_delay(Duration::from_secs(4)))
    });
    let cfg = format!(
        "[server]\nworkers = 1\nlisten = [\"{{listen}}\"]\nstate_dir = \"{{state_dir}}\"\n\
         drain_timeout_ms = 500\n\n{}",
        one_route(b.addr(), "", "read_timeout_ms = 10000", "")
    );
    let mut gw = Gateway::start(&cfg);
    let mut c = Conn::open(gw.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    assert!(wait_until(Duration::from_secs(5), || b.request_count() >= 1));
    let t = Instant::now();
    gw.sigterm();
    let st = gw
        .wait_exit(Duration::from_secs(3))
        .expect("drain timeout not applied");
    assert_eq!(st.code(), Some(0));
    assert!(
        t.elapsed() < Duration::from_millis(2000),
        "{:?}",
        t.elapsed()
    );
    // The client is not left hanging either.
    assert!(c.read_response().is_err());
}
