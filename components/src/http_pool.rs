//! The exclusive keep-alive pool of HTTP/1.1 upstream connections, one per worker.
//!
//! A connection serves one request at a time. Between requests it waits on a per-node LIFO
//! stack (the most recently used connection is the warmest and the least likely to have been
//! closed by the upstream's own idle timer). Every connection keeps one slab slot and one
//! edge-triggered registration for its whole life, so moving between busy and idle costs no
//! syscall; an event on an idle connection means the peer closed it (or sent bytes nobody
//! asked for) and it is dropped at once. See `LIFECYCLE.md` beside this file.

use mio::net::TcpStream;
use mio::{Interest, Registry};
use reactor::{Kind, Token};
use slab::Slab;
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::SocketAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Non-blocking connect in progress, owned by a session.
    Connecting,
    /// Connected and owned by a session.
    Busy,
    /// Parked on its node's idle stack.
    Idle,
}

/// One upstream connection.
pub struct UpConn {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    pub state: ConnState,
    /// The session slot that owns it while `Connecting` or `Busy`.
    pub owner: usize,
    /// When it went idle (ms on the worker clock).
    pub idle_since: u64,
    /// Requests it has carried to completion; > 0 means a reuse.
    pub served: u32,
    /// Edge-triggered readiness, cleared when an operation returns `WouldBlock`.
    pub readable: bool,
    pub writable: bool,
    /// An event reported the peer's FIN (see the session's flag of the same name).
    pub rdhup: bool,
    /// TLS upstreams: the client connection over `stream` (docs/tls.md).
    pub tls: Option<Box<crate::tls::client::UpTlsConn>>,
    /// The `UpTls::key` it was made with, 0 for plain TCP: parked connections are reused
    /// only by requests with the same TLS settings.
    pub tls_key: u64,
}

impl UpConn {
    /// Checks a connection still `Connecting` after a readiness event: `Ok(true)` once
    /// connected (it becomes `Busy`), `Ok(false)` while still in progress, an error when the
    /// connect failed.
    pub fn finish_connect(&mut self) -> io::Result<bool> {
        if !self.writable && !self.readable {
            return Ok(false);
        }
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.state = ConnState::Busy;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                self.writable = false;
                self.readable = false;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub idle: usize,
    pub busy: usize,
    pub connects: u64,
    pub reuses: u64,
    pub closed_idle: u64,
}

pub struct HttpPool {
    conns: Slab<UpConn>,
    /// Parked connections by node address and TLS settings (`UpConn::tls_key`).
    idle: HashMap<(SocketAddr, u64), Vec<usize>>,
    stats: PoolStats,
}

/// What an acquire returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acquired {
    pub key: usize,
    /// The connection carried a request before (a failure on it may be a stale keep-alive).
    pub reused: bool,
}

impl HttpPool {
    pub fn new() -> HttpPool {
        HttpPool {
            conns: Slab::with_capacity(1024),
            idle: HashMap::new(),
            stats: PoolStats::default(),
        }
    }

    /// Takes the most recently parked live connection to `addr` (when `reuse`), or starts a
    /// new connect (with TLS when `tls`). Idle connections older than `idle_timeout_ms` are
    /// closed on the way.
    #[allow(clippy::too_many_arguments)]
    pub fn acquire(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        owner: usize,
        now: u64,
        idle_timeout_ms: u64,
        reuse: bool,
        tls: Option<&crate::tls::client::UpTls>,
    ) -> io::Result<Acquired> {
        let tls_key = tls.map_or(0, |t| t.key);
        while let Some(key) = self
            .idle
            .get_mut(&(addr, tls_key))
            .filter(|_| reuse)
            .and_then(|s| s.pop())
        {
            self.stats.idle -= 1;
            let fresh = self
                .conns
                .get(key)
                .is_some_and(|c| now.saturating_sub(c.idle_since) < idle_timeout_ms);
            if !fresh {
                self.remove_unparked(registry, key);
                self.stats.closed_idle += 1;
                continue;
            }
            if let Some(c) = self.conns.get_mut(key) {
                c.state = ConnState::Busy;
                c.owner = owner;
                self.stats.busy += 1;
                self.stats.reuses += 1;
                return Ok(Acquired { key, reused: true });
            }
        }
        let tls_conn = match tls {
            Some(t) => Some(Box::new(crate::tls::client::connect(t, addr)?)),
            None => None,
        };
        let mut stream = TcpStream::connect(addr)?;
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        registry.register(
            &mut stream,
            Token::new(Kind::Upstream, key).into(),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        // Small requests and answers must not wait for Nagle's timer.
        let _ = stream.set_nodelay(true);
        entry.insert(UpConn {
            stream,
            addr,
            state: ConnState::Connecting,
            owner,
            idle_since: now,
            served: 0,
            readable: false,
            writable: false,
            rdhup: false,
            tls: tls_conn,
            tls_key,
        });
        self.stats.busy += 1;
        self.stats.connects += 1;
        Ok(Acquired { key, reused: false })
    }

    pub fn get_mut(&mut self, key: usize) -> Option<&mut UpConn> {
        self.conns.get_mut(key)
    }

    pub fn get(&self, key: usize) -> Option<&UpConn> {
        self.conns.get(key)
    }

    /// Returns a connection after a complete exchange. It is parked if `reusable` and the
    /// node's stack has room; otherwise closed.
    pub fn release(
        &mut self,
        registry: &Registry,
        key: usize,
        now: u64,
        reusable: bool,
        max_idle: usize,
    ) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.state != ConnState::Idle {
            self.stats.busy -= 1;
        }
        let stack = self.idle.entry((c.addr, c.tls_key)).or_default();
        if !reusable || c.state != ConnState::Busy || stack.len() >= max_idle {
            self.remove_unparked(registry, key);
            return;
        }
        c.state = ConnState::Idle;
        c.idle_since = now;
        c.served += 1;
        stack.push(key);
        self.stats.idle += 1;
    }

    /// Closes a connection owned by a session (failure, or an exchange that cannot reuse it).
    pub fn discard(&mut self, registry: &Registry, key: usize) {
        if let Some(c) = self.conns.get(key) {
            if c.state == ConnState::Idle {
                self.unpark(key);
            } else {
                self.stats.busy -= 1;
            }
            self.remove_unparked(registry, key);
        }
    }

    /// Records readiness for a connection. Returns the owning session when it is busy; an
    /// idle connection is checked here and closed if the peer hung up or sent stray bytes.
    pub fn on_event(
        &mut self,
        registry: &Registry,
        key: usize,
        readable: bool,
        writable: bool,
        rdhup: bool,
    ) -> Option<usize> {
        let c = self.conns.get_mut(key)?;
        if readable {
            c.readable = true;
        }
        if rdhup {
            c.rdhup = true;
        }
        if writable {
            c.writable = true;
        }
        if c.state != ConnState::Idle {
            return Some(c.owner);
        }
        if c.readable {
            let alive = match c.tls.as_deref_mut() {
                None => {
                    let mut probe = [0u8; 1];
                    match c.stream.read(&mut probe) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(()),
                        _ => None,
                    }
                }
                // TLS may say things between requests (session tickets, key updates):
                // only plaintext, close_notify, EOF or an error end the connection.
                Some(t) => crate::tls::client::idle_check(t, &mut c.stream),
            };
            match alive {
                Some(()) => c.readable = false,
                // EOF, stray data or an error: the connection cannot carry a request.
                None => {
                    self.unpark(key);
                    self.remove_unparked(registry, key);
                    self.stats.closed_idle += 1;
                }
            }
        }
        None
    }

    /// Closes idle connections parked for `idle_timeout_ms` or longer.
    pub fn sweep(&mut self, registry: &Registry, now: u64, idle_timeout_ms: u64) {
        let mut expired = Vec::new();
        for stack in self.idle.values_mut() {
            // The stack is LIFO, so the oldest entries are at the bottom.
            let keep_from = stack
                .iter()
                .position(|&k| {
                    self.conns
                        .get(k)
                        .is_some_and(|c| now.saturating_sub(c.idle_since) < idle_timeout_ms)
                })
                .unwrap_or(stack.len());
            expired.extend(stack.drain(..keep_from));
        }
        for key in expired {
            self.stats.idle -= 1;
            self.stats.closed_idle += 1;
            self.remove_unparked(registry, key);
        }
    }

    /// Closes every idle connection (graceful stop).
    pub fn close_idle(&mut self, registry: &Registry) {
        let keys: Vec<usize> = self.idle.values_mut().flat_map(|s| s.drain(..)).collect();
        for key in keys {
            self.stats.idle -= 1;
            self.remove_unparked(registry, key);
        }
    }

    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// Connections parked for `addr`.
    pub fn idle_count(&self, addr: &SocketAddr) -> usize {
        self.idle
            .iter()
            .filter(|((a, _), _)| a == addr)
            .map(|(_, s)| s.len())
            .sum()
    }

    fn unpark(&mut self, key: usize) {
        if let Some(c) = self.conns.get(key) {
            if let Some(stack) = self.idle.get_mut(&(c.addr, c.tls_key)) {
                if let Some(pos) = stack.iter().position(|&k| k == key) {
                    stack.remove(pos);
                    self.stats.idle -= 1;
                }
            }
        }
    }

    fn remove_unparked(&mut self, registry: &Registry, key: usize) {
        if self.conns.contains(key) {
            let mut c = self.conns.remove(key);
            let _ = registry.deregister(&mut c.stream);
        }
    }
}

impl Default for HttpPool {
    fn default() -> Self {
        HttpPool::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    fn accept_all(l: &TcpListener, n: usize) -> Vec<std::net::TcpStream> {
        (0..n).map(|_| l.accept().unwrap().0).collect()
    }

    #[test]
    fn lifo_reuse_and_max_idle() {
        let poll = mio::Poll::new().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut pool = HttpPool::new();
        let a = pool
            .acquire(poll.registry(), addr, 1, 0, 1000, true, None)
            .unwrap();
        let b = pool
            .acquire(poll.registry(), addr, 2, 0, 1000, true, None)
            .unwrap();
        let c = pool
            .acquire(poll.registry(), addr, 3, 0, 1000, true, None)
            .unwrap();
        let _peers = accept_all(&l, 3);
        for k in [a.key, b.key, c.key] {
            pool.get_mut(k).unwrap().state = ConnState::Busy;
        }
        pool.release(poll.registry(), a.key, 10, true, 2);
        pool.release(poll.registry(), b.key, 20, true, 2);
        // The stack is full: the third is closed.
        pool.release(poll.registry(), c.key, 30, true, 2);
        assert_eq!(pool.idle_count(&addr), 2);
        assert!(pool.get(c.key).is_none());
        // LIFO: the last parked comes back first.
        let again = pool
            .acquire(poll.registry(), addr, 4, 40, 1000, true, None)
            .unwrap();
        assert_eq!(
            again,
            Acquired {
                key: b.key,
                reused: true
            }
        );
        assert_eq!(pool.stats().busy, 1);
        assert_eq!(pool.stats().idle, 1);
    }

    #[test]
    fn idle_timeout_and_peer_close() {
        let mut poll = mio::Poll::new().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut pool = HttpPool::new();
        let a = pool
            .acquire(poll.registry(), addr, 1, 0, 1000, true, None)
            .unwrap();
        let b = pool
            .acquire(poll.registry(), addr, 2, 0, 1000, true, None)
            .unwrap();
        let mut peers = accept_all(&l, 2);
        for k in [a.key, b.key] {
            pool.get_mut(k).unwrap().state = ConnState::Busy;
        }
        pool.release(poll.registry(), a.key, 0, true, 8);
        pool.release(poll.registry(), b.key, 500, true, 8);
        pool.sweep(poll.registry(), 1200, 1000);
        assert_eq!(pool.idle_count(&addr), 1, "the older one expired");
        // The peer of the survivor closes; the event finds it dead and drops it.
        peers.clear();
        let mut events = mio::Events::with_capacity(16);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pool.idle_count(&addr) > 0 && std::time::Instant::now() < deadline {
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            for e in events.iter() {
                let t = Token::from(e.token());
                pool.on_event(
                    poll.registry(),
                    t.index(),
                    e.is_readable() || e.is_read_closed(),
                    e.is_writable(),
                    e.is_read_closed(),
                );
            }
        }
        assert_eq!(pool.idle_count(&addr), 0);
    }
}
