//! One mux connection (socket, in-flight table, write and read buffers) and the pool's I/O
//! on it: readiness, writes, reading and matching replies, and failures.
//!
//! Buffers: a connection writes from one `Vec` that calls are appended to and reads into
//! one `Vec` that grows only as far as the message being received needs (bounded by
//! `max_frame`), and shrinks back once it is empty; complete replies are copied out to their
//! call's slot and the rest moved to the front. No allocation per call once warm.
//!
//! TLS (docs/tls.md): a connection to a TLS upstream wraps a rustls client over its
//! socket. Its handshake is part of connecting: driven by readiness events, bounded by
//! `connect_timeout_ms`, and a failure (a certificate that does not verify, an alert) is a
//! connect failure (queued calls fail as `Connect`, the node backs off). Once up, reads and
//! writes go through `tls::io` (the HTTP pool's helpers); plain connections keep their own
//! straight path.

use super::{complete, Call, CallError, MuxPool, NodeKey, NodeSettings, State, TOKEN_BASE};
use crate::tls::client::{UpTls, UpTlsConn};
use crate::tls::io as tls_io;
use mio::net::TcpStream;
use mio::{Interest, Registry};
use protocols::thrift::codec::{self, Limits, Protocol, Scan, Transport};
use protocols::thrift::ThriftError;
use reactor::{Kind, Token};
use std::collections::VecDeque;
use std::io::{self, Read, Write};

#[path = "conn_tls.rs"]
mod tls;

/// Read buffer size a connection starts with and keeps when idle.
const RBUF_MIN: usize = 16 * 1024;
/// Write buffer capacity kept once emptied.
const WBUF_KEEP: usize = 64 * 1024;
/// Replies with never-issued sequence ids a connection may send before it is closed as
/// out of step (so a peer streaming junk replies cannot keep a worker busy).
const MAX_UNKNOWN: u32 = 16;
const NONE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Slot {
    call: u32,
    gen: u32,
}

/// What a reply's sequence id names.
enum Match {
    Current { idx: u32, call: u32 },
    Late,
    Unknown,
}

pub(super) struct Conn {
    stream: TcpStream,
    /// TLS upstreams: the client connection over `stream`.
    tls: Option<Box<UpTlsConn>>,
    /// The TCP connect finished (a TLS connection is `connected` after its handshake).
    tcp_up: bool,
    pub(super) node: u32,
    protocol: Protocol,
    transport: Transport,
    limits: Limits,
    pub(super) connected: bool,
    readable: bool,
    writable: bool,
    rdhup: bool,
    /// Connect start, then the last time bytes moved (idle timeout).
    pub(super) since: u64,
    table: Vec<Slot>,
    bits: u32,
    gen_mask: u32,
    free: Vec<u32>,
    pub(super) in_flight: usize,
    wbuf: Vec<u8>,
    wsent: usize,
    /// Bytes ever appended / written, to tell when a oneway call is on the wire.
    pub(super) appended: u64,
    written: u64,
    /// Oneway calls in the write buffer: (call slot, `appended` after them).
    pub(super) oneways: VecDeque<(u32, u64)>,
    rbuf: Vec<u8>,
    rfilled: usize,
    unknown: u32,
}

impl Conn {
    pub(super) fn connect(
        registry: &Registry,
        key: NodeKey,
        settings: NodeSettings,
        tls: Option<&UpTls>,
        node: u32,
        slab_key: u32,
        now: u64,
    ) -> io::Result<Conn> {
        let tls = match tls {
            Some(t) => Some(Box::new(crate::tls::client::connect(t, key.addr)?)),
            None => None,
        };
        let mut stream = TcpStream::connect(key.addr)?;
        registry.register(
            &mut stream,
            Token::new(Kind::Upstream, TOKEN_BASE + slab_key as usize).into(),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let _ = stream.set_nodelay(true);
        let size = settings.max_in_flight.clamp(1, 1 << 16) as u32;
        let bits = u32::BITS - (size - 1).leading_zeros();
        Ok(Conn {
            stream,
            tls,
            tcp_up: false,
            node,
            protocol: key.protocol,
            transport: key.transport,
            limits: settings.limits,
            connected: false,
            readable: false,
            writable: false,
            rdhup: false,
            since: now,
            table: vec![Slot { call: NONE, gen: 0 }; size as usize],
            bits,
            gen_mask: (1u32 << (31 - bits)) - 1,
            free: (0..size).rev().collect(),
            in_flight: 0,
            wbuf: Vec::new(),
            wsent: 0,
            appended: 0,
            written: 0,
            oneways: VecDeque::new(),
            rbuf: vec![0; RBUF_MIN],
            rfilled: 0,
            unknown: 0,
        })
    }

    pub(super) fn has_room(&self, bound: usize) -> bool {
        self.in_flight < bound.min(self.table.len()) && !self.free.is_empty()
    }

    pub(super) fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.oneways.is_empty() && self.wsent == self.wbuf.len()
    }

    /// Reserves a table slot for `call`: its sequence id and index. Needs `has_room`.
    pub(super) fn take_slot(&mut self, call: u32) -> (i32, u32) {
        let idx = self.free.pop().unwrap_or(0);
        let slot = &mut self.table[idx as usize];
        slot.gen = slot.gen.wrapping_add(1) & self.gen_mask;
        slot.call = call;
        self.in_flight += 1;
        (((slot.gen << self.bits) | idx) as i32, idx)
    }

    pub(super) fn free_slot(&mut self, idx: u32) {
        if let Some(slot) = self.table.get_mut(idx as usize) {
            if slot.call != NONE {
                slot.call = NONE;
                self.free.push(idx);
                self.in_flight -= 1;
            }
        }
    }

    fn lookup(&self, seq: i32) -> Match {
        if seq < 0 {
            return Match::Unknown;
        }
        let seq = seq as u32;
        let idx = seq & ((1u32 << self.bits) - 1);
        let gen = seq >> self.bits;
        let Some(slot) = self.table.get(idx as usize) else {
            return Match::Unknown;
        };
        if slot.call != NONE && slot.gen == gen {
            return Match::Current {
                idx,
                call: slot.call,
            };
        }
        // Issued before (this generation after its call was freed, or an older one) reads
        // as late; a generation ahead of the slot's was never sent.
        let behind = slot.gen.wrapping_sub(gen) & self.gen_mask;
        if behind <= self.gen_mask / 2 {
            Match::Late
        } else {
            Match::Unknown
        }
    }

    /// Appends a call message with sequence id `seq` (frame length fixed when framed).
    pub(super) fn append(&mut self, msg: &[u8], seq: i32) -> Result<(), ThriftError> {
        let before = self.wbuf.len();
        codec::rewrite_seqid_into(
            self.protocol,
            self.transport,
            msg,
            seq,
            &self.limits,
            &mut self.wbuf,
        )?;
        self.appended += (self.wbuf.len() - before) as u64;
        Ok(())
    }

    /// Like `HttpPool`'s: `Ok(true)` once connected, `Ok(false)` while in progress.
    pub(super) fn check_connect(&mut self) -> io::Result<bool> {
        if !self.writable && !self.readable {
            return Ok(false);
        }
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                self.writable = false;
                self.readable = false;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// `method` of `Service:method` (or the whole name): a multiplexed server answers with
/// the plain name.
fn method_part(name: &[u8]) -> &[u8] {
    match name.iter().position(|&b| b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

impl MuxPool {
    /// Readiness of mux connection token `index` (see [`super::is_mux_token`]). Calls that end
    /// are reported through `take_ready`.
    pub fn on_event(
        &mut self,
        registry: &Registry,
        index: usize,
        readable: bool,
        writable: bool,
        rdhup: bool,
        now: u64,
    ) {
        let Some(key) = index.checked_sub(TOKEN_BASE) else {
            return;
        };
        let key = key as u32;
        let Some(c) = self.conns.get_mut(key as usize) else {
            return;
        };
        c.readable |= readable;
        c.writable |= writable;
        c.rdhup |= rdhup;
        if !c.connected {
            match c.check_up() {
                Ok(true) => {
                    c.connected = true;
                    c.since = now;
                    let node = c.node;
                    self.stats.connects += 1;
                    if let Some(n) = self.nodes.get_mut(node as usize) {
                        n.backoff_ms = 0;
                    }
                }
                Ok(false) => return,
                Err(_) => return self.connect_failed(registry, now, key),
            }
        }
        self.flush(registry, now, key);
        self.read(registry, now, key);
    }

    /// Writes what the connection has queued while the socket takes it.
    pub(super) fn flush(&mut self, registry: &Registry, now: u64, key: u32) {
        let Some(c) = self.conns.get_mut(key as usize) else {
            return;
        };
        if c.tls.is_some() && c.flush_tls(now).is_err() {
            return self.close_conn(registry, now, key, CallError::Closed);
        }
        while c.tls.is_none() && c.writable && c.wsent < c.wbuf.len() {
            let pending = c.wbuf.len() - c.wsent;
            match c.stream.write(&c.wbuf[c.wsent..]) {
                Ok(0) => return self.close_conn(registry, now, key, CallError::Closed),
                Ok(n) => {
                    c.wsent += n;
                    c.written += n as u64;
                    c.since = now;
                    if n < pending {
                        c.writable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close_conn(registry, now, key, CallError::Closed),
            }
        }
        if c.wsent == c.wbuf.len() {
            c.wbuf.clear();
            c.wsent = 0;
            if c.wbuf.capacity() > WBUF_KEEP {
                c.wbuf.shrink_to(WBUF_KEEP);
            }
        }
        while let Some(&(slot, end)) = c.oneways.front() {
            if end > c.written {
                break;
            }
            c.oneways.pop_front();
            complete(&mut self.calls, &mut self.ready, slot, State::Sent);
        }
    }

    /// Reads until the socket is drained, handing each complete reply to its call.
    fn read(&mut self, registry: &Registry, now: u64, key: u32) {
        loop {
            let Some(c) = self.conns.get_mut(key as usize) else {
                return;
            };
            if !c.readable {
                return;
            }
            if c.rfilled == c.rbuf.len() {
                // Only a message cut short needs more room; `process` bounds that need.
                let cap = c.limits.max_frame.saturating_add(4 + RBUF_MIN);
                if c.rbuf.len() >= cap {
                    return self.stream_error(registry, now, key, ThriftError::Truncated);
                }
                let grown = (c.rbuf.len() * 2).clamp(RBUF_MIN, cap);
                c.rbuf.resize(grown, 0);
            }
            let room = c.rbuf.len() - c.rfilled;
            let got = match c.tls.as_deref_mut() {
                None => c.stream.read(&mut c.rbuf[c.rfilled..]),
                Some(t) => tls_io::read_slice(
                    &mut t.conn,
                    &mut t.tcp_eof,
                    &mut c.stream,
                    &mut c.rbuf[c.rfilled..],
                ),
            };
            match got {
                Ok(0) => return self.close_conn(registry, now, key, CallError::Closed),
                Ok(n) => {
                    c.rfilled += n;
                    c.since = now;
                    if n < room && !c.rdhup {
                        c.readable = false;
                    }
                    if !self.process(registry, now, key) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.readable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close_conn(registry, now, key, CallError::Closed),
            }
        }
    }

    /// Handles every complete message in the read buffer; false when the connection was
    /// closed for a broken stream.
    fn process(&mut self, registry: &Registry, now: u64, key: u32) -> bool {
        let Some(c) = self.conns.get_mut(key as usize) else {
            return false;
        };
        let mut start = 0;
        let mut need = 0;
        let mut fatal = None;
        while start < c.rfilled {
            let pending = &c.rbuf[start..c.rfilled];
            match codec::scan_message(c.protocol, c.transport, pending, &c.limits) {
                Ok(Scan::Complete(n)) => {
                    deliver(
                        c,
                        &mut self.calls,
                        &mut self.ready,
                        &mut self.stats,
                        start,
                        n,
                    );
                    start += n;
                    if c.unknown > MAX_UNKNOWN {
                        fatal = Some(ThriftError::Unexpected("replies with unknown sequence ids"));
                        break;
                    }
                }
                Ok(Scan::NeedMore { at_least }) => {
                    need = at_least;
                    break;
                }
                Err(e) => {
                    fatal = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = fatal {
            // The message at `start` cannot be read past: fail its call (when its header
            // names one in flight) with the reason, and the connection with it.
            if let Ok(h) = codec::read_message_header(
                c.protocol,
                c.transport,
                &c.rbuf[start..c.rfilled],
                &c.limits,
            ) {
                if let Match::Current { idx, call } = c.lookup(h.seqid) {
                    c.free_slot(idx);
                    complete(
                        &mut self.calls,
                        &mut self.ready,
                        call,
                        State::Failed(CallError::Protocol(e)),
                    );
                }
            }
            self.stream_error(registry, now, key, e);
            return false;
        }
        c.rbuf.copy_within(start..c.rfilled, 0);
        c.rfilled -= start;
        if need > c.rbuf.len() {
            c.rbuf.resize(need, 0);
        } else if c.rfilled == 0 && c.rbuf.len() > RBUF_MIN {
            c.rbuf.truncate(RBUF_MIN);
            c.rbuf.shrink_to_fit();
        }
        // Replies freed places: calls waiting for one go now.
        let node = c.node;
        self.pump(registry, now, node);
        true
    }

    fn stream_error(&mut self, registry: &Registry, now: u64, key: u32, e: ThriftError) {
        self.stats.stream_errors += 1;
        self.close_conn(registry, now, key, CallError::Protocol(e));
    }

    /// A connect failed or took too long: back off, and fail what waited on it (and the
    /// node's queue when no connection is left).
    pub(super) fn connect_failed(&mut self, registry: &Registry, now: u64, key: u32) {
        let Some(node) = self.conns.get(key as usize).map(|c| c.node) else {
            return;
        };
        self.stats.connect_failures += 1;
        self.backoff(now, node);
        self.close_conn(registry, now, key, CallError::Connect);
        if self.nodes[node as usize].conns.is_empty() {
            self.fail_queue(node, CallError::Connect);
        }
    }

    /// Closes a connection; its calls in flight fail with `err`, queued calls of its node
    /// go to the node's other connections or a new one.
    pub(super) fn close_conn(&mut self, registry: &Registry, now: u64, key: u32, err: CallError) {
        if !self.conns.contains(key as usize) {
            return;
        }
        let mut c = self.conns.remove(key as usize);
        if let Some(t) = c.tls.as_deref_mut() {
            // Best effort: a peer that reads it sees an orderly end, not a cut.
            t.conn.send_close_notify();
            let _ = tls_io::flush(&mut t.conn, &mut c.stream);
        }
        let _ = registry.deregister(&mut c.stream);
        for slot in c.table.iter().filter(|s| s.call != NONE) {
            complete(
                &mut self.calls,
                &mut self.ready,
                slot.call,
                State::Failed(err),
            );
        }
        for &(slot, _) in &c.oneways {
            complete(
                &mut self.calls,
                &mut self.ready,
                slot,
                State::Failed(CallError::Closed),
            );
        }
        let node = c.node;
        if let Some(n) = self.nodes.get_mut(node as usize) {
            n.conns.retain(|&k| k != key);
        }
        // A connect failure leaves the node in backoff, so this opens nothing then.
        self.pump(registry, now, node);
    }
}

/// The reply at `rbuf[start..start + len]` of `c`: to its call (caller's id restored), or
/// dropped as late or unknown, or failing its call when it names another method.
fn deliver(
    c: &mut Conn,
    calls: &mut [Call],
    ready: &mut Vec<usize>,
    stats: &mut super::MuxStats,
    start: usize,
    len: usize,
) {
    let msg = &c.rbuf[start..start + len];
    let header = match codec::read_message_header(c.protocol, c.transport, msg, &c.limits) {
        Ok(h) => h,
        Err(e) => {
            // A whole frame whose header cannot be read: it belongs to the only call in
            // flight if there is one; otherwise to nobody we can name.
            stats.unknown_replies += 1;
            c.unknown += 1;
            if c.in_flight == 1 {
                if let Some(idx) = c.table.iter().position(|s| s.call != NONE) {
                    let call = c.table[idx].call;
                    c.free_slot(idx as u32);
                    complete(calls, ready, call, State::Failed(CallError::Protocol(e)));
                }
            }
            return;
        }
    };
    match c.lookup(header.seqid) {
        Match::Late => stats.late_replies += 1,
        Match::Unknown => {
            stats.unknown_replies += 1;
            c.unknown += 1;
            if c.in_flight == 1 {
                if let Some(idx) = c.table.iter().position(|s| s.call != NONE) {
                    let call = c.table[idx].call;
                    c.free_slot(idx as u32);
                    complete(calls, ready, call, State::Failed(CallError::BadSequenceId));
                }
            }
        }
        Match::Current { idx, call } => {
            let Some(k) = calls.get_mut(call as usize) else {
                c.free_slot(idx);
                return;
            };
            let sent_name = k.msg.get(k.name.clone()).unwrap_or_default();
            let got_name = msg.get(header.name.clone()).unwrap_or_default();
            let state = if method_part(sent_name) != method_part(got_name) {
                stats.wrong_method += 1;
                State::Failed(CallError::WrongMethod)
            } else {
                k.msg.clear();
                match codec::rewrite_seqid_into(
                    c.protocol,
                    c.transport,
                    msg,
                    k.caller_seqid,
                    &c.limits,
                    &mut k.msg,
                ) {
                    Ok(_) => {
                        stats.replies += 1;
                        State::Replied
                    }
                    Err(e) => State::Failed(CallError::Protocol(e)),
                }
            };
            c.free_slot(idx);
            complete(calls, ready, call, state);
        }
    }
}
