//! A fault-injecting TCP proxy on loopback, for tests that need a bad network between two real
//! peers (the gateway and a backend, or a client and the gateway) without network namespaces,
//! `tc` or root.
//!
//! [`FaultProxy::start`] listens on a free loopback port and relays every connection to a
//! target; what goes wrong is described by [`Faults`] and can be changed at run time with
//! [`FaultProxy::set`]: pacing faults (latency, bandwidth, one-byte fragments) apply to
//! connections already open from their next piece on, connection faults (reset at connect,
//! black hole) to connections accepted afterwards, and the byte-count faults count from the
//! start of each connection.
//!
//! Std threads and blocking sockets: one thread per direction of each connection. Each socket
//! is shared by its two threads through an `Arc` (never `dup`ed), so an abort can set
//! `SO_LINGER 0` and wake the other thread with `shutdown(Read)`, and the last close sends a
//! real reset, not a FIN.

use crate::backend::set_linger_zero;
use parking_lot::Mutex;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

/// Pause between the bytes of a fragmented stream, so the receiver sees them in separate
/// reads rather than coalesced by its socket buffer.
const FRAGMENT_GAP: Duration = Duration::from_micros(300);
/// How long the proxy waits for the target to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a connection is reset (`SO_LINGER 0` and close, on both sides).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reset {
    #[default]
    Never,
    /// As soon as the connection is accepted, before the target is contacted.
    AtConnect,
    /// After this many request bytes (client to target) were forwarded.
    AfterRequestBytes(u64),
    /// After this many response bytes (target to client) were forwarded: mid-answer.
    AfterResponseBytes(u64),
}

/// What the proxy does to the traffic. `Faults::default()` relays faithfully.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every piece forwarded, in either direction, waits this long first.
    pub latency: Duration,
    /// Most bytes per second each direction of a connection forwards; 0 = unlimited.
    pub bytes_per_sec: u64,
    /// Forward one byte per write (with a short gap between bytes).
    pub fragment: bool,
    pub reset: Reset,
    /// Accept connections and read what they send, but never contact the target nor answer.
    pub blackhole: bool,
    /// Forward the request; when the answer's first bytes arrive, drop them and close both
    /// sides (FIN): the client sees its request taken and the connection closed unanswered.
    pub close_after_request: bool,
}

/// Counters of one proxy.
#[derive(Default)]
struct Shared {
    faults: Mutex<Faults>,
    accepted: AtomicUsize,
    open: AtomicUsize,
    resets: AtomicUsize,
    stop: AtomicBool,
    /// Every socket of live connections, to wake their threads when the proxy is dropped.
    sockets: Mutex<Vec<Weak<TcpStream>>>,
}

/// A running fault proxy; closes its listener and every connection on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Starts a proxy to `target` relaying faithfully until [`set`](Self::set) says otherwise.
    pub fn start(target: SocketAddr) -> FaultProxy {
        FaultProxy::with(target, Faults::default())
    }

    /// Starts a proxy to `target` with `faults` from the first connection on.
    pub fn with(target: SocketAddr, faults: Faults) -> FaultProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("fault bind: {e}"));
        let addr = l.local_addr().unwrap_or_else(|e| panic!("fault addr: {e}"));
        let shared = Arc::new(Shared {
            faults: Mutex::new(faults),
            ..Shared::default()
        });
        let s2 = shared.clone();
        thread::Builder::new()
            .name("fault-accept".into())
            .spawn(move || accept_loop(l, target, s2))
            .unwrap_or_else(|e| panic!("fault thread: {e}"));
        FaultProxy {
            addr,
            target,
            shared,
        }
    }

    /// The address clients (or the gateway's upstream config) should use.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Replaces the faults (see the module docs for when each takes effect).
    pub fn set(&self, faults: Faults) {
        *self.shared.faults.lock() = faults;
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.faults.lock().clone()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections whose relaying has not ended yet (either side still open).
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Connections the proxy reset on purpose.
    pub fn resets(&self) -> usize {
        self.shared.resets.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        for w in self.shared.sockets.lock().drain(..) {
            if let Some(s) = w.upgrade() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Decrements the open count when the last thread of a connection lets go of it.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One relayed connection, shared by its two threads.
struct Link {
    client: Arc<TcpStream>,
    target: Option<Arc<TcpStream>>,
    shared: Arc<Shared>,
    /// Set by the thread that aborts, so the other does not half-close (which sends a FIN).
    aborted: AtomicBool,
    _open: OpenGuard,
}

impl Link {
    /// Resets both sides: linger 0 now, the close when both threads have let go.
    fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        self.shared.resets.fetch_add(1, Ordering::SeqCst);
        for s in std::iter::once(&self.client).chain(self.target.as_ref()) {
            set_linger_zero(s);
            // Wakes the other thread's read without sending anything.
            let _ = s.shutdown(Shutdown::Read);
        }
    }

    /// Closes both sides in order (FIN).
    fn close(&self) {
        for s in std::iter::once(&self.client).chain(self.target.as_ref()) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(l: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    for c in l.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(c) = c else { continue };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let _ = c.set_nodelay(true);
        let f = shared.faults.lock().clone();
        if f.reset == Reset::AtConnect {
            shared.resets.fetch_add(1, Ordering::SeqCst);
            set_linger_zero(&c);
            drop(c);
            continue;
        }
        shared.open.fetch_add(1, Ordering::SeqCst);
        let guard = OpenGuard(shared.clone());
        let client = Arc::new(c);
        shared.sockets.lock().push(Arc::downgrade(&client));
        if f.blackhole {
            let _ = thread::Builder::new()
                .name("fault-hole".into())
                .spawn(move || swallow(&client, guard));
            continue;
        }
        let s2 = shared.clone();
        let _ = thread::Builder::new()
            .name("fault-conn".into())
            .spawn(move || relay(client, target, s2, guard));
    }
}

/// Reads and discards until the client closes or the proxy is dropped.
fn swallow(c: &TcpStream, _open: OpenGuard) {
    let mut buf = [0u8; 16 * 1024];
    while matches!((&*c).read(&mut buf), Ok(n) if n > 0) {}
}

fn relay(client: Arc<TcpStream>, target: SocketAddr, shared: Arc<Shared>, open: OpenGuard) {
    let up = match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
        Ok(u) => u,
        Err(_) => {
            set_linger_zero(&client);
            return;
        }
    };
    let _ = up.set_nodelay(true);
    let up = Arc::new(up);
    shared.sockets.lock().push(Arc::downgrade(&up));
    // Sockets of connections that ended: forget them now and then so the list stays short.
    shared.sockets.lock().retain(|w| w.strong_count() > 0);
    let link = Arc::new(Link {
        client,
        target: Some(up),
        shared,
        aborted: AtomicBool::new(false),
        _open: open,
    });
    let l2 = link.clone();
    let down = thread::Builder::new()
        .name("fault-down".into())
        .spawn(move || pump(&l2, Dir::Response));
    pump(&link, Dir::Request);
    if let Ok(h) = down {
        let _ = h.join();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Client to target.
    Request,
    /// Target to client.
    Response,
}

/// Forwards one direction until end of stream, applying the faults in force piece by piece.
fn pump(link: &Link, dir: Dir) {
    let Some(target) = link.target.as_ref() else {
        return;
    };
    let (from, to) = match dir {
        Dir::Request => (&*link.client, &**target),
        Dir::Response => (&**target, &*link.client),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut forwarded: u64 = 0;
    let started = Instant::now();
    loop {
        let n = match (&*from).read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if link.aborted.load(Ordering::SeqCst) {
            return;
        }
        let f = link.shared.faults.lock().clone();
        if dir == Dir::Response && f.close_after_request {
            link.close();
            return;
        }
        // How many of these bytes may pass before the connection is reset.
        let limit = match (f.reset, dir) {
            (Reset::AfterRequestBytes(k), Dir::Request)
            | (Reset::AfterResponseBytes(k), Dir::Response) => Some(k.saturating_sub(forwarded)),
            _ => None,
        };
        let pass = limit.map_or(n, |l| (l.min(n as u64)) as usize);
        if send(to, &buf[..pass], &f, &mut forwarded, started).is_err() {
            break;
        }
        if limit.is_some_and(|l| l <= n as u64) {
            // Give the bytes that passed a moment to leave before the reset overtakes them.
            thread::sleep(Duration::from_millis(20));
            link.abort();
            return;
        }
    }
    if !link.aborted.load(Ordering::SeqCst) {
        // Pass the end of stream on: the other direction may still be flowing.
        let _ = to.shutdown(Shutdown::Write);
    }
}

/// Writes `data` to `to` with the pacing faults: latency first, then fragments or pieces no
/// larger than a twentieth of a second's worth at the bandwidth limit.
fn send(
    mut to: &TcpStream,
    data: &[u8],
    f: &Faults,
    forwarded: &mut u64,
    started: Instant,
) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    if !f.latency.is_zero() {
        thread::sleep(f.latency);
    }
    let piece = if f.fragment {
        1
    } else if f.bytes_per_sec > 0 {
        ((f.bytes_per_sec / 20).max(1) as usize).min(data.len())
    } else {
        data.len()
    };
    for part in data.chunks(piece) {
        to.write_all(part)?;
        *forwarded += part.len() as u64;
        if f.bytes_per_sec > 0 {
            let due = Duration::from_secs_f64(*forwarded as f64 / f.bytes_per_sec as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                thread::sleep(wait);
            }
        }
        if f.fragment {
            thread::sleep(FRAGMENT_GAP);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server: every connection gets back what it sends, until it closes.
    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn connect(p: &FaultProxy) -> TcpStream {
        let c = TcpStream::connect(p.addr()).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5))).ok();
        c
    }

    /// Reads until `n` bytes or the end; the error kind if the read failed.
    fn read_n(c: &mut TcpStream, n: usize) -> (Vec<u8>, Option<io::ErrorKind>) {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < n {
            match c.read(&mut buf) {
                Ok(0) => return (got, None),
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) => return (got, Some(e.kind())),
            }
        }
        (got, None)
    }

    #[test]
    fn relays_faithfully_by_default_and_counts_connections() {
        let p = FaultProxy::start(echo_server());
        let mut c = connect(&p);
        c.write_all(b"hello").unwrap();
        assert_eq!(read_n(&mut c, 5).0, b"hello");
        assert_eq!((p.accepted(), p.open()), (1, 1));
        drop(c);
        assert!(crate::client::wait_until(Duration::from_secs(2), || p
            .open()
            == 0));
    }

    #[test]
    fn latency_bandwidth_and_fragments_keep_the_bytes_intact() {
        let p = FaultProxy::start(echo_server());
        for f in [
            Faults {
                latency: Duration::from_millis(50),
                ..Faults::default()
            },
            Faults {
                bytes_per_sec: 100_000,
                ..Faults::default()
            },
            Faults {
                fragment: true,
                ..Faults::default()
            },
        ] {
            p.set(f.clone());
            // One byte at a time is slow by design: a smaller stream for that case.
            let data = crate::pattern::bytes(if f.fragment { 2_000 } else { 20_000 });
            let mut c = connect(&p);
            let t = Instant::now();
            let d2 = data.clone();
            let mut w = c.try_clone().unwrap();
            let writer = thread::spawn(move || w.write_all(&d2));
            let (got, err) = read_n(&mut c, data.len());
            writer.join().unwrap().unwrap();
            assert_eq!(err, None, "{f:?}");
            assert!(got == data, "{f:?}: {} bytes back, corrupted", got.len());
            // 20 kB at 100 kB/s in pieces of 5 kB: the last piece leaves 0.15 s in at the
            // earliest; latency adds 50 ms each way.
            if f.bytes_per_sec > 0 {
                assert!(
                    t.elapsed() >= Duration::from_millis(150),
                    "{:?}",
                    t.elapsed()
                );
            }
            if !f.latency.is_zero() {
                assert!(
                    t.elapsed() >= Duration::from_millis(100),
                    "{:?}",
                    t.elapsed()
                );
            }
        }
    }

    #[test]
    fn resets_at_connect_and_after_byte_counts() {
        let p = FaultProxy::with(
            echo_server(),
            Faults {
                reset: Reset::AtConnect,
                ..Faults::default()
            },
        );
        let mut c = connect(&p);
        let _ = c.write_all(b"x");
        let (got, err) = read_n(&mut c, 1);
        assert!(got.is_empty());
        assert_eq!(err, Some(io::ErrorKind::ConnectionReset));

        p.set(Faults {
            reset: Reset::AfterResponseBytes(3),
            ..Faults::default()
        });
        let mut c = connect(&p);
        c.write_all(b"abcdef").unwrap();
        let (got, err) = read_n(&mut c, 6);
        assert_eq!(got, b"abc");
        assert_eq!(err, Some(io::ErrorKind::ConnectionReset));

        p.set(Faults {
            reset: Reset::AfterRequestBytes(2),
            ..Faults::default()
        });
        let mut c = connect(&p);
        c.write_all(b"abcdef").unwrap();
        let (got, err) = read_n(&mut c, 6);
        assert!(got.len() <= 2, "{got:?}");
        assert_eq!(err, Some(io::ErrorKind::ConnectionReset));
        assert_eq!(p.resets(), 3);
    }

    #[test]
    fn black_hole_and_close_after_request() {
        let p = FaultProxy::with(
            echo_server(),
            Faults {
                blackhole: true,
                ..Faults::default()
            },
        );
        let mut c = connect(&p);
        c.set_read_timeout(Some(Duration::from_millis(300))).ok();
        c.write_all(b"anyone?").unwrap();
        let (got, err) = read_n(&mut c, 1);
        assert!(got.is_empty());
        assert!(matches!(
            err,
            Some(io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
        ));
        assert_eq!(p.open(), 1);

        p.set(Faults {
            close_after_request: true,
            ..Faults::default()
        });
        let mut c = connect(&p);
        c.write_all(b"ping").unwrap();
        assert_eq!(read_n(&mut c, 4), (Vec::new(), None));
        drop(p);
    }
}
