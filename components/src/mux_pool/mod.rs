//! The multiplexed pool of Thrift connections, one per worker: several calls in flight on
//! each connection, replies matched by sequence id and method name, in any order.
//!
//! Per node (address + protocol + transport) the pool keeps at most `max_connections`
//! connections, each with at most `max_in_flight` calls in flight. A call is a slot in the
//! pool's call slab holding its message; it waits in the node's queue (bounded by
//! `max_pending`) until a connection has room, is then copied into that connection's write
//! buffer with the connection's own sequence id, and its reply is copied back into the
//! slot with the caller's id restored. The caller polls the slot and frees it; freeing a
//! call still in flight (a timeout, a client gone) frees its place on the connection at
//! once, and its reply, if it ever comes, is recognised as late and dropped.
//!
//! Threading: a pool belongs to one worker and every operation on it runs on that worker's
//! thread: the session that makes a call is on the same core as the connection it uses
//! (each worker has its own pool and connections per node), so no call ever crosses cores
//! and nothing here takes a lock. A component on another thread that wanted to call would
//! post a task to the owning worker's inbox; none does today. States and who frees what:
//! `LIFECYCLE.md` beside this file.
//!
//! Sequence ids: slot `idx` of a connection's in-flight table with generation `gen` is
//! sent as `gen << bits | idx` (`bits` = enough for the table). A reply names its slot
//! directly (no search) and the generation tells a current reply from a late one (an older
//! generation, or the current one after the slot was freed) and from one never issued.

#[cfg(test)]
mod alloc_tests;
mod conn;
#[cfg(test)]
mod tests;

use crate::tls::client::UpTls;
use conn::Conn;
use mio::Registry;
use protocols::thrift::codec::{self, Limits, MessageType, Protocol, Transport};
use protocols::thrift::ThriftError;
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::ops::Range;

/// Mux connections use `Token(Kind::Upstream, TOKEN_BASE + slot)`, far above any slot of
/// the HTTP pool, so the worker tells the two pools apart with one comparison.
pub const TOKEN_BASE: usize = 1 << (usize::BITS - 4);

/// Whether an `Upstream` token index belongs to a mux connection.
pub fn is_mux_token(index: usize) -> bool {
    index >= TOKEN_BASE
}

/// First reconnect delay after a failed connect; doubled per failure up to the maximum.
const BACKOFF_MIN_MS: u64 = 100;
const BACKOFF_MAX_MS: u64 = 5000;
/// How often `sweep` really looks (connect timeouts, idle connections, backoff expiry).
const SWEEP_EVERY_MS: u64 = 100;
/// A call message buffer larger than this is given back when the call is freed.
const MSG_KEEP: usize = 1 << 20;

/// Which connections a call may use: same address, protocol, transport and TLS settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeKey {
    pub addr: SocketAddr,
    pub protocol: Protocol,
    pub transport: Transport,
    /// The upstream's `UpTls::key`, 0 for plain TCP: connections made with other TLS
    /// settings (another CA, another name) are never shared. `submit` sets it from the
    /// TLS settings it is given.
    pub tls: u64,
}

/// The bounds of a node, from its upstream's config (the latest call's settings win).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSettings {
    /// Calls in flight per connection (1 for servers answering one call at a time).
    pub max_in_flight: usize,
    /// Connections per node (per worker).
    pub max_connections: usize,
    /// Calls that may wait for room; beyond, `submit` answers `Overloaded`.
    pub max_pending: usize,
    pub connect_timeout_ms: u64,
    /// A connection with nothing in flight for this long is closed.
    pub idle_timeout_ms: u64,
    /// Bounds on replies (`max_frame` bounds a whole message).
    pub limits: Limits,
}

/// A call in the pool, valid until [`MuxPool::finish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallId {
    slot: u32,
    gen: u32,
}

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// No connection could be made (refused, timed out, or the node is in its reconnect
    /// backoff with no connection left). The call was not sent.
    Connect,
    /// Every connection is at its in-flight bound and the wait queue is full.
    Overloaded,
    /// The connection closed or failed before the reply came (the call may have run).
    Closed,
    /// The reply stream broke a rule (oversized or negative frame, unreadable message): the
    /// connection was closed.
    Protocol(ThriftError),
    /// The reply with this call's sequence id named another method.
    WrongMethod,
    /// A reply came with a sequence id the connection never issued while this was its only
    /// call in flight (an out-of-step server, as Apache clients report it).
    BadSequenceId,
    /// The message handed in is not a Thrift call (or is larger than `max_frame`).
    BadCall(ThriftError),
}

/// Where a call stands.
#[derive(Debug, PartialEq, Eq)]
pub enum CallPoll<'a> {
    Pending,
    /// The reply message, frame prefix included when framed, with the caller's sequence id.
    Reply(&'a [u8]),
    /// A oneway call whose bytes were all written.
    Sent,
    Failed(CallError),
}

/// Counters for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MuxStats {
    pub calls: u64,
    pub replies: u64,
    pub connects: u64,
    pub connect_failures: u64,
    /// Replies for calls already freed (timed out, abandoned): dropped.
    pub late_replies: u64,
    /// Replies whose sequence id was never issued on their connection: dropped.
    pub unknown_replies: u64,
    pub wrong_method: u64,
    /// Connections closed because their reply stream broke a rule.
    pub stream_errors: u64,
    pub open_connections: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    /// Handed out by `begin_call`; the caller is writing the message.
    Building,
    Queued,
    InFlight {
        conn: u32,
        idx: u32,
    },
    /// A oneway call in a connection's write buffer.
    Writing {
        conn: u32,
    },
    Replied,
    Sent,
    Failed(CallError),
}

struct Call {
    gen: u32,
    state: State,
    owner: usize,
    node: u32,
    caller_seqid: i32,
    oneway: bool,
    /// The method name inside `msg` while the call is out.
    name: Range<usize>,
    /// The call message; then the reply.
    msg: Vec<u8>,
}

struct Node {
    key: NodeKey,
    settings: NodeSettings,
    /// The client settings its connections are made with (docs/tls.md); `None` = plain.
    tls: Option<UpTls>,
    conns: Vec<u32>,
    queue: VecDeque<u32>,
    backoff_ms: u64,
    backoff_until: u64,
}

/// The pool. See the module docs.
pub struct MuxPool {
    calls: Vec<Call>,
    free_calls: Vec<u32>,
    conns: Slab<Conn>,
    nodes: Vec<Node>,
    node_index: HashMap<NodeKey, u32>,
    ready: Vec<usize>,
    stats: MuxStats,
    next_sweep: u64,
}

/// Ends call `slot` with `state` (if it is still out) and queues its owner for a drive.
fn complete(calls: &mut [Call], ready: &mut Vec<usize>, slot: u32, state: State) {
    if let Some(call) = calls.get_mut(slot as usize) {
        if matches!(
            call.state,
            State::Queued | State::InFlight { .. } | State::Writing { .. }
        ) {
            call.state = state;
            ready.push(call.owner);
        }
    }
}

impl Default for MuxPool {
    fn default() -> Self {
        MuxPool::new()
    }
}

impl MuxPool {
    pub fn new() -> MuxPool {
        MuxPool {
            calls: Vec::new(),
            free_calls: Vec::new(),
            conns: Slab::new(),
            nodes: Vec::new(),
            node_index: HashMap::new(),
            ready: Vec::with_capacity(64),
            stats: MuxStats::default(),
            next_sweep: 0,
        }
    }

    /// Takes a call slot; write the whole call message (frame prefix included when framed)
    /// into the returned buffer, then [`submit`](Self::submit) it or [`finish`](Self::finish)
    /// it. The buffer keeps its capacity from earlier calls.
    pub fn begin_call(&mut self) -> (CallId, &mut Vec<u8>) {
        let slot = match self.free_calls.pop() {
            Some(s) => s,
            None => {
                self.calls.push(Call {
                    gen: 0,
                    state: State::Free,
                    owner: 0,
                    node: 0,
                    caller_seqid: 0,
                    oneway: false,
                    name: 0..0,
                    msg: Vec::new(),
                });
                (self.calls.len() - 1) as u32
            }
        };
        let call = &mut self.calls[slot as usize];
        call.state = State::Building;
        call.msg.clear();
        (
            CallId {
                slot,
                gen: call.gen,
            },
            &mut call.msg,
        )
    }

    fn call_mut(&mut self, id: CallId) -> Option<&mut Call> {
        self.calls
            .get_mut(id.slot as usize)
            .filter(|c| c.gen == id.gen && c.state != State::Free)
    }

    /// Sends a built call to a node: at once on a connection with room, else after the
    /// calls queued before it, over TLS when `tls` is set. `owner` is reported by
    /// [`take_ready`](Self::take_ready) when the call ends. An error ends the call (it still
    /// needs `finish`).
    #[allow(clippy::too_many_arguments)] // one call, its destination and its owner
    pub fn submit(
        &mut self,
        registry: &Registry,
        now: u64,
        id: CallId,
        key: NodeKey,
        settings: &NodeSettings,
        tls: Option<&UpTls>,
        owner: usize,
    ) -> Result<(), CallError> {
        let key = NodeKey {
            tls: tls.map_or(0, |t| t.key),
            ..key
        };
        let node = self.node_for(key, settings, tls);
        let Some(call) = self.call_mut(id) else {
            return Err(CallError::Closed);
        };
        if call.state != State::Building {
            return Err(CallError::Closed);
        }
        call.owner = owner;
        call.node = node;
        let checked = if call.msg.len() > settings.limits.max_frame + 4 {
            Err(ThriftError::FrameTooLarge {
                claimed: call.msg.len(),
                max: settings.limits.max_frame,
            })
        } else {
            codec::read_message_header(key.protocol, key.transport, &call.msg, &settings.limits)
        };
        let header = match checked {
            Ok(h) if matches!(h.mtype, MessageType::Call | MessageType::Oneway) => Ok(h),
            Ok(_) => Err(ThriftError::Unexpected("not a call")),
            Err(e) => Err(e),
        };
        let header = match header {
            Ok(h) => h,
            Err(e) => {
                call.state = State::Failed(CallError::BadCall(e));
                return Err(CallError::BadCall(e));
            }
        };
        call.caller_seqid = header.seqid;
        call.oneway = header.mtype == MessageType::Oneway;
        call.name = header.name;
        call.state = State::Queued;
        self.stats.calls += 1;
        self.nodes[node as usize].queue.push_back(id.slot);
        self.pump(registry, now, node);
        let n = &self.nodes[node as usize];
        if self.calls[id.slot as usize].state != State::Queued {
            return match self.calls[id.slot as usize].state {
                State::Failed(e) => Err(e),
                _ => Ok(()),
            };
        }
        // Still waiting: refuse rather than queue past the bound, or wait on nothing.
        let err = if n.conns.is_empty() {
            Some(CallError::Connect)
        } else if n.queue.len() > n.settings.max_pending {
            Some(CallError::Overloaded)
        } else {
            None
        };
        if let Some(e) = err {
            self.unqueue(node, id.slot);
            self.calls[id.slot as usize].state = State::Failed(e);
            return Err(e);
        }
        Ok(())
    }

    /// Where call `id` stands. A stale id reads as failed.
    pub fn poll(&self, id: CallId) -> CallPoll<'_> {
        let Some(call) = self.calls.get(id.slot as usize).filter(|c| c.gen == id.gen) else {
            return CallPoll::Failed(CallError::Closed);
        };
        match call.state {
            State::Replied => CallPoll::Reply(&call.msg),
            State::Sent => CallPoll::Sent,
            State::Failed(e) => CallPoll::Failed(e),
            State::Free => CallPoll::Failed(CallError::Closed),
            _ => CallPoll::Pending,
        }
    }

    /// Makes a call that failed on connect ([`CallError::Connect`]: none of it was written)
    /// submittable again, message unchanged, so the caller can send it to another node.
    /// False (and nothing changes) for a call in any other state.
    pub fn rearm(&mut self, id: CallId) -> bool {
        match self.call_mut(id) {
            Some(call) if call.state == State::Failed(CallError::Connect) => {
                call.state = State::Building;
                true
            }
            _ => false,
        }
    }

    /// Frees call `id`, whatever its state: a queued call leaves the queue, a call in flight
    /// gives its place on the connection back at once (its reply will be dropped as late).
    pub fn finish(&mut self, registry: &Registry, now: u64, id: CallId) {
        let Some(call) = self.call_mut(id) else {
            return;
        };
        let state = call.state;
        let node = call.node;
        call.state = State::Free;
        call.gen = call.gen.wrapping_add(1);
        if call.msg.capacity() > MSG_KEEP {
            call.msg = Vec::new();
        }
        self.free_calls.push(id.slot);
        match state {
            State::Queued => self.unqueue(node, id.slot),
            State::InFlight { conn, idx } => {
                if let Some(c) = self.conns.get_mut(conn as usize) {
                    c.free_slot(idx);
                }
                self.pump(registry, now, node);
            }
            State::Writing { conn } => {
                if let Some(c) = self.conns.get_mut(conn as usize) {
                    c.oneways.retain(|(s, _)| *s != id.slot);
                }
            }
            _ => {}
        }
    }

    /// Moves the owners of calls that ended since the last call into `out` (cleared first):
    /// the worker drives those sessions. Owners may repeat.
    pub fn take_ready(&mut self, out: &mut Vec<usize>) {
        out.clear();
        std::mem::swap(out, &mut self.ready);
    }

    pub fn stats(&self) -> MuxStats {
        let mut s = self.stats;
        s.open_connections = self.conns.len();
        s
    }

    /// Calls waiting in node `key`'s queue (tests, metrics).
    pub fn queued(&self, key: &NodeKey) -> usize {
        self.node_index
            .get(key)
            .map_or(0, |&n| self.nodes[n as usize].queue.len())
    }

    /// Periodic work, cheap to call on every loop turn: connects that took too long fail,
    /// idle connections close, nodes whose backoff ended reconnect for their queued calls.
    pub fn sweep(&mut self, registry: &Registry, now: u64) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_EVERY_MS;
        let mut expired: Vec<(u32, bool)> = Vec::new();
        for (key, c) in self.conns.iter() {
            let Some(n) = self.nodes.get(c.node as usize) else {
                continue;
            };
            if !c.connected && now.saturating_sub(c.since) >= n.settings.connect_timeout_ms {
                expired.push((key as u32, true));
            } else if c.connected
                && c.is_idle()
                && now.saturating_sub(c.since) >= n.settings.idle_timeout_ms
            {
                expired.push((key as u32, false));
            }
        }
        for (key, connecting) in expired {
            if connecting {
                self.connect_failed(registry, now, key);
            } else {
                self.close_conn(registry, now, key, CallError::Closed);
            }
        }
        for n in 0..self.nodes.len() as u32 {
            let node = &self.nodes[n as usize];
            if !node.queue.is_empty() && now >= node.backoff_until {
                self.pump(registry, now, n);
            }
        }
    }

    /// Closes every connection, failing what is in flight (worker exit).
    pub fn close_all(&mut self, registry: &Registry) {
        for n in 0..self.nodes.len() as u32 {
            self.fail_queue(n, CallError::Closed);
        }
        let keys: Vec<u32> = self.conns.iter().map(|(k, _)| k as u32).collect();
        for k in keys {
            self.close_conn(registry, 0, k, CallError::Closed);
        }
    }

    fn node_for(&mut self, key: NodeKey, settings: &NodeSettings, tls: Option<&UpTls>) -> u32 {
        if let Some(&n) = self.node_index.get(&key) {
            let node = &mut self.nodes[n as usize];
            if node.settings != *settings {
                node.settings = *settings;
            }
            return n;
        }
        // Nodes live as long as the pool: one per (address, protocol, transport, TLS
        // settings) ever used, which only a config change adds to. The key tells TLS
        // settings apart, so the node keeps the first version's (equal) client config.
        let n = self.nodes.len() as u32;
        self.nodes.push(Node {
            key,
            settings: *settings,
            tls: tls.cloned(),
            conns: Vec::new(),
            queue: VecDeque::new(),
            backoff_ms: 0,
            backoff_until: 0,
        });
        self.node_index.insert(key, n);
        n
    }

    fn unqueue(&mut self, node: u32, slot: u32) {
        let q = &mut self.nodes[node as usize].queue;
        if let Some(pos) = q.iter().position(|&s| s == slot) {
            q.remove(pos);
        }
    }

    /// Ends a call and tells its owner.
    fn complete(&mut self, slot: u32, state: State) {
        complete(&mut self.calls, &mut self.ready, slot, state);
    }

    /// Gives queued calls of `node` to connections with room, opening connections as the
    /// bounds and the backoff allow.
    fn pump(&mut self, registry: &Registry, now: u64, node: u32) {
        loop {
            let n = &self.nodes[node as usize];
            let Some(&slot) = n.queue.front() else {
                return;
            };
            let oneway = self.calls[slot as usize].oneway;
            let bound = n.settings.max_in_flight;
            let mut best: Option<(u32, usize)> = None;
            for &k in &n.conns {
                if let Some(c) = self.conns.get(k as usize) {
                    let load = c.in_flight;
                    if (oneway || c.has_room(bound)) && best.is_none_or(|(_, l)| load < l) {
                        best = Some((k, load));
                    }
                }
            }
            let conn = match best {
                Some((k, _)) => k,
                None => {
                    if n.conns.len() >= n.settings.max_connections || now < n.backoff_until {
                        return;
                    }
                    match self.open(registry, now, node) {
                        Some(k) => k,
                        None => return,
                    }
                }
            };
            self.nodes[node as usize].queue.pop_front();
            self.assign(registry, now, slot, conn);
        }
    }

    fn open(&mut self, registry: &Registry, now: u64, node: u32) -> Option<u32> {
        let n = &self.nodes[node as usize];
        let entry = self.conns.vacant_entry();
        let key = entry.key() as u32;
        match Conn::connect(registry, n.key, n.settings, n.tls.as_ref(), node, key, now) {
            Ok(c) => {
                entry.insert(c);
                self.nodes[node as usize].conns.push(key);
                Some(key)
            }
            Err(_) => {
                self.stats.connect_failures += 1;
                self.backoff(now, node);
                self.fail_queue(node, CallError::Connect);
                None
            }
        }
    }

    fn backoff(&mut self, now: u64, node: u32) {
        let n = &mut self.nodes[node as usize];
        n.backoff_ms = (n.backoff_ms * 2).clamp(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
        n.backoff_until = now + n.backoff_ms;
    }

    /// Fails every queued call of `node` (its last connection is gone and it may not
    /// reconnect yet).
    fn fail_queue(&mut self, node: u32, err: CallError) {
        while let Some(slot) = self.nodes[node as usize].queue.pop_front() {
            self.complete(slot, State::Failed(err));
        }
    }

    /// Puts call `slot` on connection `conn` with a sequence id of the connection's own.
    fn assign(&mut self, registry: &Registry, now: u64, slot: u32, conn: u32) {
        let Some(c) = self.conns.get_mut(conn as usize) else {
            self.complete(slot, State::Failed(CallError::Closed));
            return;
        };
        let call = &mut self.calls[slot as usize];
        let (seq, idx) = if call.oneway {
            (0, None)
        } else {
            let (seq, idx) = c.take_slot(slot);
            (seq, Some(idx))
        };
        if let Err(e) = c.append(&call.msg, seq) {
            if let Some(idx) = idx {
                c.free_slot(idx);
            }
            self.complete(slot, State::Failed(CallError::BadCall(e)));
            return;
        }
        match idx {
            Some(idx) => call.state = State::InFlight { conn, idx },
            None => {
                c.oneways.push_back((slot, c.appended));
                call.state = State::Writing { conn };
            }
        }
        if c.connected {
            self.flush(registry, now, conn);
        }
    }
}
