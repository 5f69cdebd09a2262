//! `gatehouse upgrade` against the real binary (docs/upgrade.md, access/LIFECYCLE.md
//! "Upgrade"): a new process takes the running one's sockets while clients keep sending
//! (keep-alive and new connections) and not one request fails or is refused; a request in
//! flight finishes on the old process with `Connection: close`; an idle keep-alive
//! connection gets one more answer, with `Connection: close`; a bad new config or a new
//! process that cannot start leaves the old one serving (admin included); a restart with a
//! changed config serves the change, and admin changes made before survive.

use gatehouse_tests::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Drain time of the old process in these tests.
const DRAIN_MS: u64 = 3000;

/// A config on the harness's placeholders with two workers, an upstream `up` at `backend`
/// and a route `api` for `/api/*`; `extra` goes at the end of `[server]`.
fn config(backend: SocketAddr, extra: &str) -> String {
    format!(
        "[server]\nworkers = 2\nlisten = [\"{{listen}}\"{extra}]\nstate_dir = \"{{state_dir}}\"\n\
         drain_timeout_ms = {DRAIN_MS}\nupgrade_timeout_ms = 10000\n\n\
         [admin]\nlisten = \"{{admin}}\"\n\n\
         [[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{backend}\" }}]\n\n\
         [[routes]]\nid = \"api\"\npaths = [\"/api/*\"]\nupstream = \"up\"\n"
    )
}

/// One admin request on a new connection → (status, JSON body or Null).
fn admin(g: &Gateway, method: &str, path: &str, body: &str) -> (u16, Value) {
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = roundtrip(g.admin, raw.as_bytes());
    (r.status, r.json().unwrap_or(Value::Null))
}

/// Upgrades `old` to `config`; panics with both stderrs if the new process does not serve.
fn upgrade(old: &Gateway, config: &str) -> Gateway {
    let mut new = old.spawn_upgrade(config).expect("spawn upgrade");
    if let Err(e) = new.wait_upgraded() {
        panic!("upgrade failed: {e}\n--- old stderr ---\n{}", old.stderr());
    }
    new
}

/// Waits for the old process to exit 0 within its drain time (plus start-up slack).
fn assert_drains_and_exits_0(old: &mut Gateway) {
    let st = old.wait_exit(Duration::from_millis(DRAIN_MS + 3000));
    assert!(
        st.is_some_and(|s| s.success()),
        "old process: {st:?}; stderr: {}",
        old.stderr()
    );
}

/// Results of the client threads.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
    /// Answers with `Connection: close` (the old process draining): not failures.
    closed: AtomicUsize,
    errors: parking_lot::Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock();
        if e.len() < 10 {
            e.push(what);
        }
    }
}

/// Sends `GET /api/n` on `conn` (opening one if needed) and counts the outcome; the
/// connection is kept only when the answer allows it.
fn one_request(addr: SocketAddr, conn: &mut Option<Conn>, n: usize, tally: &Tally) {
    let c = match conn {
        Some(c) => c,
        None => match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => conn.insert(Conn::from_stream(s)),
            Err(e) => return tally.fail(format!("connect: {e}")),
        },
    };
    let raw = format!("GET /api/{n} HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.send(raw.as_bytes()).and_then(|()| c.read_response());
    match r {
        Ok(r) if r.status == 200 && r.body_str() == "ok" => {
            tally.ok.fetch_add(1, Ordering::Relaxed);
            if r.has_token("connection", "close") {
                tally.closed.fetch_add(1, Ordering::Relaxed);
                *conn = None;
            }
        }
        Ok(r) => {
            tally.fail(format!("status {} body {:?}", r.status, r.body_str()));
            *conn = None;
        }
        Err(e) => {
            tally.fail(format!("request {n}: {e}"));
            *conn = None;
        }
    }
}

#[test]
fn steady_load_across_an_upgrade_loses_no_request_and_no_connection() {
    let b = Backend::fixed("ok");
    let cfg = config(b.addr(), "");
    let mut old = Gateway::start(&cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut threads = Vec::new();
    for t in 0..6 {
        let (stop, tally, addr) = (stop.clone(), tally.clone(), old.addr);
        // Even threads keep their connection alive; odd ones open one per request.
        let keep = t % 2 == 0;
        threads.push(std::thread::spawn(move || {
            let mut conn = None;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                one_request(addr, &mut conn, n, &tally);
                if !keep {
                    conn = None;
                }
                n += 1;
                // Keep-alive clients pause now and then, so some sit idle at the switch.
                if keep && n % 7 == 0 {
                    std::thread::sleep(Duration::from_millis(3));
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = tally.ok.load(Ordering::Relaxed);
    let new = upgrade(&old, &cfg);
    assert_drains_and_exits_0(&mut old);
    let at_exit = tally.ok.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    let ok = tally.ok.load(Ordering::Relaxed);
    assert_eq!(
        tally.failed.load(Ordering::Relaxed),
        0,
        "failures: {:?}\n--- old ---\n{}\n--- new ---\n{}",
        tally.errors.lock(),
        old.stderr(),
        new.stderr()
    );
    assert!(before > 0 && ok > at_exit, "{before} / {at_exit} / {ok}");
    // The keep-alive clients' connections on the old process were told to close.
    assert!(tally.closed.load(Ordering::Relaxed) > 0);
    assert!(
        new.stderr()
            .contains(&format!("taking over from pid {}", old.pid())),
        "{}",
        new.stderr()
    );
    assert_eq!(get(new.addr, "x", "/api/after").status, 200);
}

#[test]
fn in_flight_and_idle_keep_alive_connections_end_with_connection_close() {
    let b = Backend::start(|req| {
        let r = Response::ok("ok");
        if req.target.starts_with("/api/slow") {
            Reply::Respond(r.head_delay(Duration::from_millis(1000)))
        } else {
            Reply::Respond(r)
        }
    });
    let cfg = config(b.addr(), "");
    let mut old = Gateway::start(&cfg);
    let mut idle = Conn::open(old.addr);
    idle.send(b"GET /api/first HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let r = idle.read_response().expect("first answer");
    assert_eq!(r.status, 200);
    assert!(!r.has_token("connection", "close"));
    let mut busy = Conn::open(old.addr);
    busy.send(b"GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    // The slow request is on its way upstream when the upgrade happens.
    std::thread::sleep(Duration::from_millis(100));
    let new = upgrade(&old, &cfg);

    let r = busy.read_response().expect("the in-flight answer");
    assert_eq!((r.status, r.body_str().as_str()), (200, "ok"));
    assert!(
        r.has_token("connection", "close"),
        "{:?}",
        r.header("connection")
    );
    assert!(busy.closes_within(Duration::from_secs(2)));

    // The idle connection is still open on the old process: one more answer, then close.
    idle.send(b"GET /api/second HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let r = idle
        .read_response()
        .expect("the idle connection's next answer");
    assert_eq!(r.status, 200);
    assert!(
        r.has_token("connection", "close"),
        "{:?}",
        r.header("connection")
    );
    assert!(idle.closes_within(Duration::from_secs(2)));

    assert_drains_and_exits_0(&mut old);
    assert_eq!(get(new.addr, "x", "/api/after").status, 200);
}

#[test]
fn a_bad_new_config_or_a_failed_start_leaves_the_old_process_serving() {
    let b = Backend::fixed("ok");
    let cfg = config(b.addr(), "");
    let old = Gateway::start(&cfg);

    // A config that does not validate: refused before the old process is asked.
    let bad = cfg.replace("workers = 2", "workers = 2\nmax_connections = 0");
    let mut new = old.spawn_upgrade(&bad).expect("spawn");
    let st = new.wait_exit(Duration::from_secs(10));
    assert_eq!(st.and_then(|s| s.code()), Some(2), "{}", new.stderr());
    assert!(
        new.stderr().contains("server.max_connections"),
        "{}",
        new.stderr()
    );

    // A valid config whose new admin address is taken: the new process fails after the
    // old one paused its admin API and passed its sockets; it says so and exits non-zero.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = squatter.local_addr().expect("addr");
    let clash = cfg.replace("listen = \"{admin}\"", &format!("listen = \"{taken}\""));
    let mut new = old.spawn_upgrade(&clash).expect("spawn");
    let st = new.wait_exit(Duration::from_secs(10));
    assert!(st.is_some_and(|s| !s.success()), "{st:?}: {}", new.stderr());
    assert!(new.stderr().contains("cannot listen"), "{}", new.stderr());
    assert!(
        wait_until(Duration::from_secs(5), || old
            .stderr()
            .contains("serving on")),
        "{}",
        old.stderr()
    );

    // The old process serves unchanged: data plane and admin changes alike.
    assert_eq!(get(old.addr, "x", "/api/still").status, 200);
    let route = json!({"paths": ["/extra/*"], "upstream": "up"}).to_string();
    let (s, v) = admin(&old, "PUT", "/admin/v1/routes/extra", &route);
    assert_eq!(s, 201, "{v}");
    assert!(wait_until(Duration::from_secs(2), || get(
        old.addr, "x", "/extra/1"
    )
    .status
        == 200));
    assert!(old.exited().is_none());
}

#[test]
fn a_restart_with_a_changed_config_serves_it_and_admin_changes_survive() {
    let b = Backend::fixed("ok");
    let cfg = config(b.addr(), "");
    let mut old = Gateway::start(&cfg);
    // An admin change on the old process, acknowledged before the upgrade.
    let route = json!({"paths": ["/made/*"], "upstream": "up"}).to_string();
    let (s, v) = admin(&old, "PUT", "/admin/v1/routes/made", &route);
    assert_eq!(s, 201, "{v}");

    // The new config listens on one more address and has tighter limits.
    let second = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let changed =
        config(b.addr(), &format!(", \"{second}\"")) + "\n[limits]\nmax_request_line = 200\n";
    let new = upgrade(&old, &changed);
    assert_drains_and_exits_0(&mut old);

    assert_eq!(get(new.addr, "x", "/api/1").status, 200);
    assert_eq!(get(second, "x", "/api/2").status, 200);
    let long = format!("/api/{}", "a".repeat(300));
    assert_eq!(get(new.addr, "x", &long).status, 414);
    // The admin change survived, in the store and on the data plane.
    assert_eq!(get(new.addr, "x", "/made/1").status, 200);
    let (s, v) = admin(&new, "GET", "/admin/v1/routes/made", "");
    assert_eq!(s, 200, "{v}");
    // The admin API of the new process takes changes.
    let route = json!({"paths": ["/later/*"], "upstream": "up"}).to_string();
    let (s, v) = admin(&new, "PUT", "/admin/v1/routes/later", &route);
    assert_eq!(s, 201, "{v}");
    assert!(wait_until(Duration::from_secs(2), || get(
        new.addr, "x", "/later/1"
    )
    .status
        == 200));

    // And the new process can itself be upgraded (it took over the control socket).
    let mut newer = upgrade(&new, &changed);
    let mut new = new;
    assert_drains_and_exits_0(&mut new);
    assert_eq!(get(newer.addr, "x", "/later/2").status, 200);
    newer.sigterm();
    assert!(newer
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
}

/// Whether `pid` is gone (or a zombie nobody reaped yet: it serves nothing either).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

#[test]
fn sigusr2_makes_the_running_process_start_the_upgrade_itself() {
    let b = Backend::fixed("ok");
    let mut old = Gateway::start(&config(b.addr(), ""));
    let route = json!({"paths": ["/made/*"], "upstream": "up"}).to_string();
    assert_eq!(admin(&old, "PUT", "/admin/v1/routes/made", &route).0, 201);
    old.signal(libc::SIGUSR2);
    // The old process's stderr is the new one's too: it names the new pid.
    let mut new_pid = None;
    assert!(wait_until(Duration::from_secs(10), || {
        new_pid = old
            .stderr()
            .split("upgrade (pid ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|p| p.parse::<i32>().ok());
        new_pid.is_some()
    }));
    let new_pid = new_pid.unwrap_or(0);
    assert_drains_and_exits_0(&mut old);
    assert!(
        old.stderr()
            .contains(&format!("process {new_pid} serves; draining")),
        "{}",
        old.stderr()
    );
    assert_eq!(get(old.addr, "x", "/made/1").status, 200);
    assert_eq!(admin(&old, "GET", "/admin/v1/routes/made", "").0, 200);
    // The new process is no child of this test: stop it by its pid.
    // SAFETY: kill(2) on the pid the gateway reported for the process it started.
    unsafe {
        libc::kill(new_pid, libc::SIGTERM);
    }
    assert!(wait_until(Duration::from_secs(10), || gone(new_pid)));
}

#[test]
fn a_new_process_that_never_says_ready_is_given_up_and_admin_changes_resume() {
    let b = Backend::fixed("ok");
    let cfg =
        config(b.addr(), "").replace("upgrade_timeout_ms = 10000", "upgrade_timeout_ms = 1000");
    let old = Gateway::start(&cfg);
    let sock = access::handover::socket_path(&old.dir.0.join("state"));
    // A stand-in for a new process that takes the sockets and then hangs.
    let taken = access::handover::take_over(&sock, Duration::from_secs(5)).expect("take over");
    assert_eq!(taken.old_pid as u32, old.pid());
    assert_eq!(taken.data.len(), 2, "one listening socket per worker");
    assert!(taken.data.iter().all(|(a, _)| *a == old.addr));
    assert!(taken.admin.is_some() && taken.lock.is_some() && taken.control.is_some());
    // Paused: the data plane serves, admin changes are refused with a reason to retry.
    assert_eq!(get(old.addr, "x", "/api/paused").status, 200);
    let route = json!({"paths": ["/extra/*"], "upstream": "up"}).to_string();
    let refused = roundtrip(
        old.admin,
        format!(
            "PUT /admin/v1/routes/extra HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{route}",
            route.len()
        )
        .as_bytes(),
    );
    // The admin listener is not accepting while paused, so this connection waited in its
    // queue until the old process gave up (1 s) and then made the change; either answer
    // says what happened, and the change is made by the end.
    assert!(
        refused.status == 201 || refused.status == 503,
        "{}",
        refused.status
    );
    assert!(wait_until(Duration::from_secs(5), || old
        .stderr()
        .contains("not ready within server.upgrade_timeout_ms")));
    // Saying ready now is too late: the old process told us it goes on alone.
    let verdict = taken.ready();
    assert!(verdict.is_err(), "a late ready was accepted");
    let (s, v) = admin(&old, "PUT", "/admin/v1/routes/extra", &route);
    assert!(s == 200 || s == 201, "{s} {v}");
    assert!(wait_until(Duration::from_secs(2), || get(
        old.addr, "x", "/extra/1"
    )
    .status
        == 200));
}
