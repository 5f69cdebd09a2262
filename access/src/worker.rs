//! One worker: a thread with its own poll, listeners, sessions, upstream pool, timers and
//! buffer arena. Workers share nothing but the config snapshot (an `Arc` swapped through
//! their inboxes) and never take a lock on the request path.

use crate::http::{self, Env, Outcome};
use crate::session::{CoreSnap, Exchange, Phase, Session};
use crate::stats::{RouteTable, WorkerStats};
use business::{CoreState, Snapshot};
use components::HttpPool;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll};
use protocols::http1::{Limits, RequestHead, ResponseHead};
use reactor::timer::Entry;
use reactor::{BufPool, Clock, Inbox, InboxSender, Kind, TimerWheel, Token};
use slab::Slab;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Size of one pooled buffer: a request or response direction streams through one.
pub const BUF_SIZE: usize = 16 * 1024;
/// Buffers kept warm per worker.
const MAX_FREE_BUFS: usize = 4096;
/// How often idle upstream connections are swept (ms).
const SWEEP_EVERY_MS: u64 = 1000;
/// How long accepting stays paused after accept(2) failed (out of descriptors, say) before
/// it is tried again: long enough not to spin on a listener that stays ready, short enough
/// that the backlog drains soon after descriptors free up.
const ACCEPT_BACKOFF_MS: u64 = 100;
/// Shortest time between two "accept failed" lines on stderr.
const ACCEPT_WARN_EVERY_MS: u64 = 10_000;
/// When the memory guard starts shedding, idle connections are closed, except those that
/// moved bytes this recently (see `tick`).
const SHED_IDLE_GRACE_MS: u64 = 1000;

/// Work sent to a worker from another thread.
pub enum Task {
    /// Serve new requests with this config version; the sender, if any, hears the
    /// worker's id once it does.
    Swap(Arc<Snapshot>, Option<std::sync::mpsc::Sender<usize>>),
    /// Stop accepting, finish in-flight requests, exit within the drain time.
    Stop,
    /// Like `Stop` after an upgrade handed the listeners over: idle keep-alive connections
    /// are not closed at once but answered once more with `Connection: close`
    /// (access/LIFECYCLE.md, "Upgrade").
    Drain,
}

pub struct Worker {
    id: usize,
    poll: Poll,
    inbox: Inbox<Task>,
    listeners: Vec<TcpListener>,
    /// For each listener (same index): for HTTPS, its client-certificate policy
    /// (`ServerTls::configs` index).
    tls_listener: Vec<Option<usize>>,
    /// Accepting is paused: at `server.max_connections`, or backing off after an accept
    /// error. New connections wait in the kernel's backlog meanwhile.
    accept_paused: bool,
    /// When a paused accept is tried again even if no session ends (0 = only when one ends).
    accept_retry_at: u64,
    accept_warned_at: u64,
    /// The memory guard's verdict at the last tick (see `overload.rs`).
    shedding: bool,
    last_tick: u64,
    sessions: Slab<Session>,
    pool: HttpPool,
    thrift: crate::thrift::ThriftCore,
    bufs: BufPool,
    clock: Clock,
    wheel: TimerWheel,
    snap: CoreSnap,
    core: CoreState,
    limits: Limits,
    req_head: Box<RequestHead>,
    resp_head: Box<ResponseHead>,
    free_ex: Vec<Box<Exchange>>,
    rid_prefix: u64,
    rid_counter: u64,
    stopping: bool,
    stop_deadline: u64,
    ready: Vec<(Token, bool, bool, bool)>,
    again: Vec<usize>,
    expired: Vec<Entry>,
    tasks: Vec<Task>,
    last_sweep: u64,
    unix_secs: u64,
    stats: Arc<WorkerStats>,
    routes: Arc<RouteTable>,
    log: crate::access_log::WorkerLog,
}

fn parse_limits(snap: &Snapshot) -> Limits {
    let l = &snap.config.limits;
    Limits {
        max_request_line: l.max_request_line,
        max_head_bytes: l.max_header_bytes,
        max_headers: l.max_headers,
    }
}

/// A random per-worker prefix for generated request ids.
fn random_prefix(id: usize) -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_usize(id);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

impl Worker {
    /// Creates a worker serving `listeners` (already bound; HTTPS ones with their client
    /// policy) with `snap`.
    pub fn new(
        id: usize,
        listeners: Vec<(std::net::TcpListener, Option<usize>)>,
        snap: Arc<Snapshot>,
    ) -> io::Result<Worker> {
        let poll = Poll::new()?;
        let inbox = Inbox::new(poll.registry(), Token::WAKER.into())?;
        let mut ls = Vec::with_capacity(listeners.len());
        let tls_listener = listeners.iter().map(|(_, tls)| *tls).collect();
        for (i, (l, _)) in listeners.into_iter().enumerate() {
            let mut l = TcpListener::from_std(l);
            poll.registry().register(
                &mut l,
                Token::new(Kind::Listener, i).into(),
                Interest::READABLE,
            )?;
            ls.push(l);
        }
        let mut clock = Clock::new();
        let now = clock.update();
        let core = CoreState::for_snapshot(&snap);
        let (stats, routes) = WorkerStats::register(id, &snap);
        let limits = parse_limits(&snap);
        let log = crate::access_log::WorkerLog::new(id, &snap.config.log);
        if snap.config.server.max_memory_mb > 0 {
            crate::overload::start_memory_sampler();
        }
        Ok(Worker {
            id,
            poll,
            inbox,
            listeners: ls,
            tls_listener,
            accept_paused: false,
            accept_retry_at: 0,
            accept_warned_at: 0,
            shedding: false,
            last_tick: now,
            sessions: Slab::with_capacity(1024),
            pool: HttpPool::new(),
            thrift: crate::thrift::ThriftCore::new(),
            bufs: BufPool::new(BUF_SIZE, MAX_FREE_BUFS),
            clock,
            wheel: TimerWheel::new(now),
            snap: Rc::new(snap),
            core,
            limits,
            req_head: Box::new(RequestHead::new()),
            resp_head: Box::new(ResponseHead::new()),
            free_ex: Vec::new(),
            rid_prefix: random_prefix(id),
            rid_counter: 0,
            stopping: false,
            stop_deadline: 0,
            ready: Vec::with_capacity(1024),
            again: Vec::with_capacity(64),
            expired: Vec::with_capacity(1024),
            tasks: Vec::with_capacity(8),
            last_sweep: now,
            unix_secs: 0,
            stats,
            routes,
            log,
        })
    }

    pub fn sender(&self) -> InboxSender<Task> {
        self.inbox.sender()
    }

    /// Runs the loop until stopped and drained.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = self.clock.now();
            let timeout = if self.again.is_empty() {
                let most = if self.needs_tick() {
                    crate::overload::MEM_CHECK_MS
                } else {
                    SWEEP_EVERY_MS
                };
                self.wheel.next_timeout(now, most)
            } else {
                0
            };
            if let Err(e) = self
                .poll
                .poll(&mut events, Some(Duration::from_millis(timeout)))
            {
                if e.kind() != io::ErrorKind::Interrupted {
                    eprintln!("gatehouse: worker {}: poll failed: {e}", self.id);
                    return;
                }
            }
            self.clock.update();
            self.unix_secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            self.ready.clear();
            for e in events.iter() {
                let readable = e.is_readable() || e.is_read_closed() || e.is_error();
                let writable = e.is_writable() || e.is_write_closed() || e.is_error();
                self.ready.push((
                    Token::from(e.token()),
                    readable,
                    writable,
                    e.is_read_closed(),
                ));
            }
            for i in 0..self.ready.len() {
                let (token, r, w, hup) = self.ready[i];
                self.dispatch(token, r, w, hup);
            }
            if !self.again.is_empty() {
                let again = std::mem::take(&mut self.again);
                for &sid in &again {
                    self.drive(sid);
                }
                let mut again = again;
                again.clear();
                if self.again.is_empty() {
                    self.again = again;
                }
            }
            self.run_timers();
            // Sessions whose Thrift calls ended; driving one may end others (a freed place
            // sends a queued call, a failed write fails its connection's calls).
            for _ in 0..4 {
                let ready = self.thrift.tick(self.poll.registry(), self.clock.now());
                let idle = ready.is_empty();
                for &sid in &ready {
                    self.drive(sid);
                }
                self.thrift.done(ready);
                if idle {
                    break;
                }
            }
            let now = self.clock.now();
            if now >= self.last_tick + crate::overload::MEM_CHECK_MS {
                self.last_tick = now;
                self.tick(now);
            }
            if now >= self.last_sweep + SWEEP_EVERY_MS {
                self.last_sweep = now;
                let timeout = self
                    .snap
                    .upstreams
                    .iter()
                    .map(|u| u.idle_timeout_ms)
                    .max()
                    .unwrap_or(60_000);
                self.pool.sweep(self.poll.registry(), now, timeout);
                let p = self.pool.stats();
                self.stats.pool_idle.set(p.idle as u64);
                self.stats.pool_busy.set(p.busy as u64);
                self.stats.pool_connects.set(p.connects);
            }
            if self.stopping && (self.sessions.is_empty() || now >= self.stop_deadline) {
                self.pool.close_idle(self.poll.registry());
                self.thrift.pool.close_all(self.poll.registry());
                self.stats.unregister();
                return;
            }
        }
    }

    fn dispatch(&mut self, token: Token, readable: bool, writable: bool, rdhup: bool) {
        match token.kind() {
            Kind::Listener => self.accept(token.index()),
            Kind::Client => {
                let sid = token.index();
                if let Some(s) = self.sessions.get_mut(sid) {
                    s.readable |= readable;
                    s.writable |= writable;
                    s.rdhup |= rdhup;
                    self.drive(sid);
                }
            }
            Kind::Upstream if crate::thrift::owns(token.index()) => self.thrift.on_event(
                self.poll.registry(),
                token.index(),
                readable,
                writable,
                rdhup,
                self.clock.now(),
            ),
            Kind::Upstream => {
                if let Some(owner) = self.pool.on_event(
                    self.poll.registry(),
                    token.index(),
                    readable,
                    writable,
                    rdhup,
                ) {
                    self.drive(owner);
                }
            }
            Kind::Reserved => self.run_tasks(),
        }
    }

    fn accept(&mut self, li: usize) {
        if self.accept_paused {
            // A listener event while paused: the connection waits in the backlog until a
            // session ends or the back-off passes (`tick`).
            return;
        }
        let max = self.snap.config.server.max_connections;
        loop {
            if self.sessions.len() >= max {
                // Connections wait in the kernel's queue until a session ends.
                self.accept_paused = true;
                return;
            }
            let Some(l) = self.listeners.get(li) else {
                return;
            };
            match l.accept() {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let now = self.clock.now();
                    let stream = if let Some(policy) = self.tls_listener.get(li).copied().flatten()
                    {
                        match crate::tls::accept(stream, &self.snap, policy, now) {
                            Some(s) => s,
                            // No certificate in this version: nothing to answer with.
                            None => continue,
                        }
                    } else {
                        crate::transport::ClientStream::plain(stream)
                    };
                    let mut stream = stream;
                    let entry = self.sessions.vacant_entry();
                    let sid = entry.key();
                    let token = Token::new(Kind::Client, sid);
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut stream,
                            token.into(),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        continue;
                    }
                    let mut s = Session::new(stream, peer, now);
                    // A new connection must send its first head within the header timeout.
                    s.head_started = now;
                    s.deadline = now + self.snap.config.limits.header_timeout_ms;
                    s.timer_at = s.deadline;
                    self.wheel.schedule(sid, s.deadline);
                    entry.insert(s);
                    self.stats.accepted.inc();
                    self.stats.sessions.set(self.sessions.len() as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the connection stays in the backlog and the
                    // listener stays ready, so retrying now would spin. Pause; a closing
                    // session or the back-off retries.
                    let now = self.clock.now();
                    if self.accept_warned_at == 0
                        || now >= self.accept_warned_at + ACCEPT_WARN_EVERY_MS
                    {
                        self.accept_warned_at = now.max(1);
                        eprintln!(
                            "gatehouse: worker {}: accept failed: {e}; pausing accept for {ACCEPT_BACKOFF_MS} ms",
                            self.id
                        );
                    }
                    self.accept_paused = true;
                    self.accept_retry_at = now + ACCEPT_BACKOFF_MS;
                    return;
                }
            }
        }
    }

    fn drive(&mut self, sid: usize) {
        let Some(s) = self.sessions.get_mut(sid) else {
            return;
        };
        let mut env = Env {
            registry: self.poll.registry(),
            pool: &mut self.pool,
            bufs: &self.bufs,
            now: self.clock.now(),
            snap: &self.snap,
            core: &mut self.core,
            limits: &self.limits,
            req_head: &mut self.req_head,
            resp_head: &mut self.resp_head,
            free_ex: &mut self.free_ex,
            rid_prefix: self.rid_prefix,
            rid_counter: &mut self.rid_counter,
            stopping: self.stopping,
            sid,
            unix_secs: self.unix_secs,
            now_us: self.clock.now_us(),
            stats: &self.stats,
            routes: &self.routes,
            thrift: &mut self.thrift,
            log: &mut self.log,
            shedding: self.shedding,
        };
        let outcome = http::drive(s, &mut env);
        self.after(sid, outcome);
    }

    fn after(&mut self, sid: usize, outcome: Outcome) {
        match outcome {
            Outcome::Close => self.close_session(sid),
            Outcome::Again => {
                self.again.push(sid);
                self.arm(sid);
            }
            Outcome::Open => self.arm(sid),
        }
    }

    /// Makes sure the wheel holds an entry no later than the session's deadline.
    fn arm(&mut self, sid: usize) {
        if let Some(s) = self.sessions.get_mut(sid) {
            if s.timer_at == 0 || s.deadline < s.timer_at {
                s.timer_at = s.deadline;
                self.wheel.schedule(sid, s.deadline);
            }
        }
    }

    fn close_session(&mut self, sid: usize) {
        if self.sessions.contains(sid) {
            let mut s = self.sessions.remove(sid);
            let _ = self.poll.registry().deregister(&mut s.stream);
            self.stats.sessions.set(self.sessions.len() as u64);
        }
        if self.accept_paused
            && !self.stopping
            && self.sessions.len() < self.snap.config.server.max_connections
        {
            self.resume_accept();
        }
    }

    fn resume_accept(&mut self) {
        self.accept_paused = false;
        self.accept_retry_at = 0;
        for li in 0..self.listeners.len() {
            self.accept(li);
        }
    }

    /// Whether the loop must wake every `MEM_CHECK_MS` even with nothing else to do.
    fn needs_tick(&self) -> bool {
        self.snap.config.server.max_memory_mb > 0 || self.accept_retry_at > 0
    }

    /// Every `MEM_CHECK_MS`: the memory guard's verdict, and a backed-off accept.
    fn tick(&mut self, now: u64) {
        let limit = self.snap.config.server.max_memory_mb;
        let over = crate::overload::over_memory(limit);
        if over != self.shedding {
            self.shedding = over;
            self.stats.shedding.set(u64::from(over));
            eprintln!(
                "gatehouse: worker {}: resident memory {} MiB is {} server.max_memory_mb = {limit}: {}",
                self.id,
                crate::overload::rss_bytes() >> 20,
                if over { "over" } else { "back under" },
                if over {
                    "answering new requests 503 and closing idle connections"
                } else {
                    "serving again"
                }
            );
            if over {
                // Idle keep-alive connections hold descriptors and kernel buffers for
                // requests that would be refused anyway. One whose request is already in
                // the socket is left to get its 503 (closing it would reset the client);
                // a peek per idle connection, once per transition. So is one that moved
                // bytes within the last `SHED_IDLE_GRACE_MS` (a connection just accepted,
                // whose request is on its way, or one just answered): its next request gets
                // the 503 and the close.
                let mut peek = [0u8; 1];
                let idle: Vec<usize> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| {
                        s.is_idle()
                            && now.saturating_sub(s.client_activity) >= SHED_IDLE_GRACE_MS
                            && s.stream
                                .peek(&mut peek)
                                .is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock)
                    })
                    .map(|(k, _)| k)
                    .collect();
                for sid in idle {
                    self.close_session(sid);
                }
            }
        }
        if self.accept_paused
            && self.accept_retry_at > 0
            && now >= self.accept_retry_at
            && !self.stopping
            && self.sessions.len() < self.snap.config.server.max_connections
        {
            self.resume_accept();
        }
    }

    fn run_timers(&mut self) {
        let now = self.clock.now();
        self.expired.clear();
        self.wheel.expire(now, &mut self.expired);
        for i in 0..self.expired.len() {
            let Entry {
                token: sid,
                deadline,
            } = self.expired[i];
            let Some(s) = self.sessions.get_mut(sid) else {
                continue;
            };
            if s.timer_at != deadline {
                continue; // a stale entry; a sooner one exists or already fired
            }
            s.timer_at = 0;
            if s.deadline > now {
                self.arm(sid);
                continue;
            }
            let mut env = Env {
                registry: self.poll.registry(),
                pool: &mut self.pool,
                bufs: &self.bufs,
                now,
                snap: &self.snap,
                core: &mut self.core,
                limits: &self.limits,
                req_head: &mut self.req_head,
                resp_head: &mut self.resp_head,
                free_ex: &mut self.free_ex,
                rid_prefix: self.rid_prefix,
                rid_counter: &mut self.rid_counter,
                stopping: self.stopping,
                sid,
                unix_secs: self.unix_secs,
                now_us: self.clock.now_us(),
                stats: &self.stats,
                routes: &self.routes,
                thrift: &mut self.thrift,
                log: &mut self.log,
                shedding: self.shedding,
            };
            let outcome = http::on_timeout(s, &mut env);
            self.after(sid, outcome);
        }
    }

    fn run_tasks(&mut self) {
        self.inbox.drain_into(&mut self.tasks);
        let tasks = std::mem::take(&mut self.tasks);
        for task in tasks {
            match task {
                Task::Swap(snap, done) => {
                    self.core = CoreState::for_snapshot(&snap);
                    self.limits = parse_limits(&snap);
                    self.routes = self.stats.swap(&snap, &self.routes);
                    self.snap = Rc::new(snap);
                    if let Some(done) = done {
                        let _ = done.send(self.id);
                    }
                }
                Task::Stop => self.begin_stop(true),
                Task::Drain => self.begin_stop(false),
            }
        }
    }

    fn begin_stop(&mut self, close_idle: bool) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.stop_deadline = self.clock.now() + self.snap.config.server.drain_timeout_ms;
        for mut l in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut l);
        }
        // Busy connections close after their current answer. Idle keep-alive ones close now
        // on a stop; after an upgrade they may still send a request (closing would race
        // with it), which is answered with `Connection: close`.
        if !close_idle {
            return;
        }
        let idle: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.is_idle())
            .map(|(k, _)| k)
            .collect();
        for sid in idle {
            self.close_session(sid);
        }
        // WebSocket tunnels have no "current answer" to finish: driven now, they send close
        // 1001 to both sides and end.
        for (sid, s) in self.sessions.iter() {
            if s.phase == Phase::Tunnel {
                self.again.push(sid);
            }
        }
    }
}
