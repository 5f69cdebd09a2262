//! Active health checks, run from one control thread (never a worker): plain blocking
//! sockets with timeouts, one check at a time, each node at its upstream's interval.
//!
//! The thread is handed the targets of every published config version ([`Checker::update`]):
//! the upstreams' shared health tables with their nodes and check settings. A node's streak
//! of successes or failures is kept while its table stays the same (a config change that
//! leaves the upstream's nodes alone keeps the table, see `business::snapshot`). The verdict
//! goes into the table's `check_down` flag, which every worker reads when picking. An upstream
//! whose checks were removed gets all its nodes' flags cleared.
//!
//! HTTP and Thrift upstreams are watched alike; a Thrift upstream's check is a TCP connect or
//! a Thrift call ([`crate::health_check_thrift`]).
//!
//! An upstream with `tls = true` is checked over TLS with its own client settings (CA, server
//! name), so an HTTP check sees what a proxied request sees.
//!
//! Checks run one after another, so many silent nodes delay each other by up to a timeout
//! each; an interval is a lower bound.

use crate::health::UpstreamHealth;
use crate::health_check_thrift as thrift;
use crate::tls::client::UpTls;
use protocols::thrift::codec::{Protocol, Transport};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A TCP connection opens.
    Tcp,
    /// `GET path` answers with a status `expected` accepts (empty = 2xx/3xx).
    Http {
        path: String,
        host: String,
        expected: Vec<u16>,
    },
    /// A Thrift call of `name` (`Service:method` when multiplexed) with no arguments is
    /// answered in step (see [`crate::health_check_thrift`]).
    Thrift {
        name: String,
        protocol: Protocol,
        transport: Transport,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

/// One upstream to watch.
#[derive(Clone)]
pub struct Target {
    pub upstream: String,
    pub table: Arc<UpstreamHealth>,
    pub addrs: Vec<SocketAddr>,
    /// `None`: no active checks (the nodes' check flags are cleared).
    pub spec: Option<CheckSpec>,
    /// The upstream's TLS settings, when it speaks TLS.
    pub tls: Option<UpTls>,
}

enum Msg {
    Update(Vec<Target>),
    Stop,
}

/// The running checker thread.
pub struct Checker {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

/// A handle that passes new targets to the checker from any thread.
#[derive(Clone)]
pub struct CheckerHandle {
    tx: Sender<Msg>,
}

impl CheckerHandle {
    pub fn update(&self, targets: Vec<Target>) {
        let _ = self.tx.send(Msg::Update(targets));
    }
}

impl Checker {
    pub fn start(targets: Vec<Target>) -> std::io::Result<Checker> {
        let (tx, rx) = channel();
        let thread = std::thread::Builder::new()
            .name("gatehouse-health".into())
            .spawn(move || run(rx, targets))?;
        Ok(Checker {
            tx,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> CheckerHandle {
        CheckerHandle {
            tx: self.tx.clone(),
        }
    }

    /// Stops the thread (after the check under way, if any).
    pub fn stop(mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A node under watch.
struct Watched {
    table: Arc<UpstreamHealth>,
    node: usize,
    addr: SocketAddr,
    spec: CheckSpec,
    tls: Option<UpTls>,
    due: Instant,
    /// Positive: successes in a row; negative: failures in a row.
    streak: i64,
}

fn run(rx: Receiver<Msg>, targets: Vec<Target>) {
    let mut watched = adopt(Vec::new(), targets);
    loop {
        let now = Instant::now();
        for w in watched.iter_mut().filter(|w| w.due <= now) {
            let ok = check(w.addr, &w.spec, w.tls.as_ref());
            w.streak = match (ok, w.streak) {
                (true, s) if s > 0 => s.saturating_add(1),
                (true, _) => 1,
                (false, s) if s < 0 => s.saturating_sub(1),
                (false, _) => -1,
            };
            if w.streak >= w.spec.healthy_threshold as i64 {
                w.table.set_check_down(w.node, false);
            } else if -w.streak >= w.spec.unhealthy_threshold as i64 {
                w.table.set_check_down(w.node, true);
            }
            w.due = Instant::now() + w.spec.interval;
        }
        let next = watched.iter().map(|w| w.due).min();
        let wait = next.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(Msg::Update(t)) => watched = adopt(watched, t),
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// The watch list for `targets`, keeping streaks and due times of nodes whose table and
/// settings did not change; newly watched nodes are checked at once.
fn adopt(old: Vec<Watched>, targets: Vec<Target>) -> Vec<Watched> {
    let mut out = Vec::new();
    for t in targets {
        let Some(spec) = t.spec else {
            for node in 0..t.table.len() {
                t.table.set_check_down(node, false);
            }
            continue;
        };
        for (node, addr) in t.addrs.iter().enumerate() {
            let kept = old
                .iter()
                .find(|w| Arc::ptr_eq(&w.table, &t.table) && w.node == node && w.spec == spec);
            out.push(Watched {
                table: t.table.clone(),
                node,
                addr: *addr,
                spec: spec.clone(),
                tls: t.tls.clone(),
                due: kept.map_or_else(Instant::now, |w| w.due),
                streak: kept.map_or(0, |w| w.streak),
            });
        }
    }
    out
}

/// One check of `addr` (over TLS with `tls`); true when healthy.
pub fn check(addr: SocketAddr, spec: &CheckSpec, tls: Option<&UpTls>) -> bool {
    let deadline = Instant::now() + spec.timeout;
    let Ok(mut s) = TcpStream::connect_timeout(&addr, spec.timeout) else {
        return false;
    };
    if spec.probe == Probe::Tcp {
        return true;
    }
    let _ = s.set_nodelay(true);
    // The socket's timeouts are set through a second handle while the exchange borrows the
    // first (both name one socket, so they share its options).
    let Ok(ctl) = s.try_clone() else {
        return false;
    };
    let Some(t) = tls else {
        return exchange(&mut s, &ctl, addr, &spec.probe, deadline);
    };
    let Ok(mut conn) = rustls::ClientConnection::new(t.config.clone(), t.name_for(addr)) else {
        return false;
    };
    let mut stream = rustls::Stream::new(&mut conn, &mut s);
    exchange(&mut stream, &ctl, addr, &spec.probe, deadline)
}

/// The time left until `d`, `None` once it passed.
fn left(d: Instant) -> Option<Duration> {
    let l = d.saturating_duration_since(Instant::now());
    (!l.is_zero()).then_some(l)
}

/// The probe's exchange on an open connection `s`, within `deadline`.
fn exchange(
    s: &mut impl ReadWrite,
    ctl: &TcpStream,
    addr: SocketAddr,
    probe: &Probe,
    deadline: Instant,
) -> bool {
    match probe {
        Probe::Tcp => true,
        Probe::Http {
            path,
            host,
            expected,
        } => http_check(s, ctl, addr, path, host, expected, deadline),
        Probe::Thrift {
            name,
            protocol,
            transport,
        } => {
            let call = thrift::check_call(*protocol, *transport, name);
            let Some(l) = left(deadline) else {
                return false;
            };
            // Over TLS the write also runs the handshake, which reads: both timeouts apply.
            if call.is_empty()
                || ctl.set_write_timeout(Some(l)).is_err()
                || ctl.set_read_timeout(Some(l)).is_err()
                || s.write_all(&call).and_then(|_| s.flush()).is_err()
            {
                return false;
            }
            thrift::read_answer(s, *protocol, *transport, || {
                left(deadline).is_some_and(|l| ctl.set_read_timeout(Some(l)).is_ok())
            })
        }
    }
}

/// Sends the check's `GET` on `s` and reads the status, all within `deadline`; `ctl` is the
/// socket whose timeouts bound each read and write.
fn http_check(
    s: &mut impl ReadWrite,
    ctl: &TcpStream,
    addr: SocketAddr,
    path: &str,
    host: &str,
    expected: &[u16],
    deadline: Instant,
) -> bool {
    let Some(l) = left(deadline) else {
        return false;
    };
    // Over TLS the write also runs the handshake, which reads: both timeouts apply.
    if ctl.set_write_timeout(Some(l)).is_err() || ctl.set_read_timeout(Some(l)).is_err() {
        return false;
    }
    let mut req = Vec::with_capacity(128);
    req.extend_from_slice(b"GET ");
    req.extend_from_slice(path.as_bytes());
    req.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    if host.is_empty() {
        req.extend_from_slice(addr.to_string().as_bytes());
    } else {
        req.extend_from_slice(host.as_bytes());
    }
    req.extend_from_slice(b"\r\nUser-Agent: gatehouse-health-check\r\nConnection: close\r\n\r\n");
    if s.write_all(&req).is_err() {
        return false;
    }
    // The status line's first 12 bytes (`HTTP/1.1 200`) are all a verdict needs.
    let mut buf = [0u8; 12];
    let mut got = 0;
    while got < buf.len() {
        let Some(l) = left(deadline) else {
            return false;
        };
        if ctl.set_read_timeout(Some(l)).is_err() {
            return false;
        }
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    let status = match (
        buf.starts_with(b"HTTP/1."),
        std::str::from_utf8(&buf[9..12]),
    ) {
        (true, Ok(code)) => code.parse::<u16>().unwrap_or(0),
        _ => 0,
    };
    if expected.is_empty() {
        (200..400).contains(&status)
    } else {
        expected.contains(&status)
    }
}

/// A byte stream both ways: a socket, or a TLS stream on one.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn spec(probe: Probe) -> CheckSpec {
        CheckSpec {
            probe,
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(500),
            healthy_threshold: 1,
            unhealthy_threshold: 1,
        }
    }

    /// A one-shot HTTP server answering `status` to one request.
    fn serve_once(status: u16) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut c, _)) = l.accept() {
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf);
                let _ = write!(c, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
            }
        });
        addr
    }

    #[test]
    fn http_checks_read_the_status() {
        let http = Probe::Http {
            path: "/health".into(),
            host: String::new(),
            expected: Vec::new(),
        };
        assert!(check(serve_once(200), &spec(http.clone()), None));
        assert!(!check(serve_once(500), &spec(http), None));
        let only_204 = Probe::Http {
            path: "/".into(),
            host: "h".into(),
            expected: vec![204],
        };
        assert!(check(serve_once(204), &spec(only_204.clone()), None));
        assert!(!check(serve_once(200), &spec(only_204), None));
    }

    #[test]
    fn tcp_checks_connect_and_silent_servers_time_out() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        assert!(check(addr, &spec(Probe::Tcp), None));
        // Accepted by the kernel but never answered: the HTTP check fails in its timeout.
        let http = Probe::Http {
            path: "/".into(),
            host: String::new(),
            expected: Vec::new(),
        };
        let started = Instant::now();
        assert!(!check(addr, &spec(http), None));
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(l);
        assert!(!check(addr, &spec(Probe::Tcp), None));
    }
}
