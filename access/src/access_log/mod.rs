//! The access log: one JSON line per request (fields in docs/access-log.md), written by a
//! dedicated thread ([`Logger`]) to a file or to syslog.
//!
//! A worker fills a fixed-size [`Record`] where a request ends and copies it into its own
//! bounded queue, registered process-wide like the `/metrics` counters. The push never
//! blocks and never allocates: when the queue is full the line is dropped and counted in
//! `gatehouse_access_log_dropped_total`. The logger thread keeps draining even when its sink
//! is slow (a stalled syslog receiver costs dropped lines, not full queues); the lines it
//! drops are counted per worker in a counter only it writes, which the worker folds into its
//! own at its next push, so the metric keeps one writer.
//!
//! What a request's line needs is known at three moments: the head (method, host, path),
//! while the answer streams (body bytes), and the end (route, status, timings from the
//! exchange). The first two are staged per session slot in [`WorkerLog`], the hooks at the
//! end build the record. With `log.access = "off"` every hook returns at its first branch.

mod file;
mod json;
mod logger;
mod record;
mod syslog;

pub use json::write_json;
pub use logger::Logger;
pub use record::{Inline, Record, Source, MAX_HOST, MAX_METHOD, MAX_PATH};

use crate::http::Env;
use crate::session::{CoreSnap, Exchange, Phase, Session};
use crate::stats::WorkerStats;
use business::calls::MAX_CALLS;
use conf::access_log::{AccessSink, Log};
use crossbeam_queue::ArrayQueue;
use parking_lot::Mutex;
use protocols::error::ErrorKind;
use protocols::http1::RequestHead;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// A counter on its own cache line: the worker reads it on every push, the logger writes
/// it only when it drops a line.
#[repr(align(64))]
#[derive(Default)]
pub(crate) struct Padded(pub(crate) AtomicU64);

/// One worker's queue, shared with the logger thread.
pub(crate) struct Shared {
    pub(crate) worker: u16,
    pub(crate) queue: ArrayQueue<Record>,
    /// Lines of this worker the logger dropped (sink refused or lost them).
    pub(crate) sink_dropped: Padded,
}

/// Every worker's queue.
#[derive(Default)]
pub(crate) struct Hub {
    pub(crate) queues: Mutex<Vec<Arc<Shared>>>,
    /// Bumped when `queues` changes, so the logger re-reads it only then.
    pub(crate) generation: AtomicU64,
    pub(crate) running: AtomicBool,
}

pub(crate) fn hub() -> &'static Hub {
    static H: OnceLock<Hub> = OnceLock::new();
    H.get_or_init(Hub::default)
}

/// Forgets the queues of workers that have gone, once the logger emptied them.
pub(crate) fn prune() {
    let h = hub();
    let mut qs = h.queues.lock();
    let before = qs.len();
    // Held by the hub and the logger's copy only: the worker dropped its handle.
    qs.retain(|q| Arc::strong_count(q) > 2 || !q.queue.is_empty());
    if qs.len() != before {
        h.generation.fetch_add(1, Ordering::Release);
    }
}

/// What is known of a session's current request before it ends.
#[derive(Clone, Copy)]
struct Slot {
    /// Filled by the current request's head and not yet logged.
    live: bool,
    started_us: u64,
    head_bytes: u64,
    body_out: u64,
    method: Inline<MAX_METHOD>,
    host: Inline<MAX_HOST>,
    path: Inline<MAX_PATH>,
}

impl Slot {
    const EMPTY: Slot = Slot {
        live: false,
        started_us: 0,
        head_bytes: 0,
        body_out: 0,
        method: Inline::EMPTY,
        host: Inline::EMPTY,
        path: Inline::EMPTY,
    };
}

/// A worker's side of the access log: its queue and the per-session staging.
pub struct WorkerLog {
    shared: Option<Arc<Shared>>,
    worker: u16,
    /// By session slab key; grows to the worker's most concurrent sessions, then stays.
    slots: Vec<Slot>,
    /// Lines this worker dropped at push.
    dropped: u64,
    /// The total last written to `WorkerStats::log_dropped`.
    reported: u64,
}

impl WorkerLog {
    /// The log of worker `worker`: registers a queue of `cfg.queue_size` records unless the
    /// access log is off.
    pub fn new(worker: usize, cfg: &Log) -> WorkerLog {
        let worker = worker.min(u16::MAX as usize) as u16;
        let shared = (cfg.access != AccessSink::Off).then(|| {
            let s = Arc::new(Shared {
                worker,
                queue: ArrayQueue::new(cfg.queue_size.max(1)),
                sink_dropped: Padded::default(),
            });
            let h = hub();
            h.queues.lock().push(s.clone());
            h.generation.fetch_add(1, Ordering::Release);
            s
        });
        WorkerLog {
            shared,
            worker,
            slots: Vec::new(),
            dropped: 0,
            reported: 0,
        }
    }

    #[inline]
    pub fn is_on(&self) -> bool {
        self.shared.is_some()
    }

    /// A request head is complete in `buf` on session `sid`.
    #[inline]
    pub fn begin(&mut self, sid: usize, now_us: u64, head: &RequestHead, buf: &[u8]) {
        if !self.is_on() {
            return;
        }
        if sid >= self.slots.len() {
            self.slots.resize(sid + 1, Slot::EMPTY);
        }
        let Some(s) = self.slots.get_mut(sid) else {
            return;
        };
        s.live = true;
        s.started_us = now_us;
        s.head_bytes = head.head_len as u64;
        s.body_out = 0;
        s.method.set(head.method_span.get(buf));
        s.host.set(head.host.map_or(&[][..], |h| h.get(buf)));
        s.path.set(head.path.get(buf));
    }

    /// `n` more response body bytes were approved for the client of session `sid`.
    #[inline]
    pub fn sent(&mut self, sid: usize, n: usize) {
        if let Some(s) = self.slots.get_mut(sid) {
            s.body_out += n as u64;
        }
    }

    /// Moves the staged head of session `sid` into `r` when it belongs to the request being
    /// logged (`fresh`); returns when that request started.
    fn take(&mut self, sid: usize, fresh: bool, r: &mut Record) -> Option<u64> {
        let s = self.slots.get_mut(sid)?;
        if !(fresh && s.live) {
            return None;
        }
        s.live = false;
        r.method = s.method;
        r.host = s.host;
        r.path = s.path;
        r.bytes_in = s.head_bytes;
        r.bytes_out = s.body_out;
        Some(s.started_us)
    }

    /// Stamps and queues `r`; a full queue drops it. Publishes the worker's drop total.
    fn push(&mut self, r: &mut Record, stats: &WorkerStats) {
        let Some(sh) = &self.shared else { return };
        r.time_us = record::wall_us();
        r.worker = self.worker;
        if sh.queue.push(*r).is_err() {
            self.dropped += 1;
        }
        let total = self.dropped + sh.sink_dropped.0.load(Ordering::Relaxed);
        if total != self.reported {
            self.reported = total;
            stats.log_dropped.set(total);
        }
    }
}

/// Fields an exchange knows: ids, route, upstream, consumer, calls, upstream timing.
fn exchange_fields(r: &mut Record, ex: &Exchange, snap: &CoreSnap) {
    let ctx = &ex.ctx;
    r.request_id.set(ctx.request_id());
    r.client_ip = ctx.client_ip;
    if ctx.matched {
        if let Some(route) = snap.config.routes.get(ctx.route.route) {
            r.route.set(route.id.as_bytes());
        }
        if let Some(u) = snap.upstreams.get(ctx.upstream) {
            r.upstream.set(u.id.as_bytes());
        }
    }
    if let Some(c) = ctx.consumer.and_then(|i| snap.config.consumers.get(i)) {
        r.consumer.set(c.id.as_bytes());
    }
    if let Some(calls) = &ctx.calls {
        let n = calls.len().min(MAX_CALLS);
        r.calls[..n].copy_from_slice(&ctx.call_outcomes[..n]);
        r.calls_len = n as u8;
    }
    if ex.up_sent_us > 0 {
        r.upstream_addr = Some(ex.up_addr);
        if ex.resp_head_us > ex.up_sent_us {
            r.upstream_us = Some(ex.resp_head_us - ex.up_sent_us);
        }
    }
    r.bytes_in += ex.req_body_bytes;
    r.config_version = snap.version;
}

/// An exchange ended with an answer: relayed from the upstream (`finish_exchange`) or made
/// by a module without one (`Flow::Reply`).
pub fn finished(s: &Session, env: &mut Env, ex: &Exchange, status: u16) {
    if !env.log.is_on() {
        return;
    }
    let snap = ex.snap.as_ref().unwrap_or(env.snap);
    let mut r = Record::EMPTY;
    env.log.take(env.sid, true, &mut r);
    r.source = if ex.up_sent_us > 0 {
        Source::Upstream
    } else {
        Source::Module
    };
    r.status = status;
    r.peer = s.peer;
    exchange_fields(&mut r, ex, snap);
    r.retried = r.source == Source::Upstream && ex.retried;
    r.duration_us = env.now_us.saturating_sub(ex.started_us);
    env.log.push(&mut r, env.stats);
}

/// The gateway answered itself (`answer_field`). `rid` is the id the answer carries;
/// `had_exchange` says the caller passed the request's id, i.e. a request head was parsed.
pub fn answered(s: &Session, env: &mut Env, kind: ErrorKind, rid: &[u8], had_exchange: bool) {
    if !env.log.is_on() {
        return;
    }
    let mut r = Record::EMPTY;
    // A head was parsed for this answer when the caller had the request's id, or when the
    // session had gone past reading heads (body read, calls, proxying). Otherwise (a bad
    // head, a head timeout) the staged head, if any, is an earlier request's.
    let fresh = had_exchange || s.phase != Phase::Head;
    let started = env.log.take(env.sid, fresh, &mut r);
    r.source = Source::Gateway;
    r.status = kind.status();
    r.error = Some(kind);
    r.client_ip = s.peer.ip();
    r.peer = s.peer;
    r.config_version = env.snap.version;
    // Callers recycle the exchange just before answering: the free list's top still holds
    // its decisions (route, consumer, upstream) when its id is this answer's.
    let ex = env
        .free_ex
        .last()
        .filter(|ex| had_exchange && ex.ctx.request_id() == rid);
    if let Some(ex) = ex {
        exchange_fields(&mut r, ex, env.snap);
        r.duration_us = env.now_us.saturating_sub(ex.started_us);
    } else if let Some(t) = started {
        r.duration_us = env.now_us.saturating_sub(t);
    } else if s.head_started > 0 {
        r.duration_us = env.now.saturating_sub(s.head_started) * 1000;
    }
    r.request_id.set(rid);
    env.log.push(&mut r, env.stats);
}

/// A session closed with an exchange under way: the client or the upstream went away
/// before the answer was complete.
pub fn aborted(s: &Session, env: &mut Env, ex: &Exchange) {
    if !env.log.is_on() {
        return;
    }
    let snap = ex.snap.as_ref().unwrap_or(env.snap);
    let mut r = Record::EMPTY;
    env.log.take(env.sid, true, &mut r);
    r.source = Source::Aborted;
    r.status = if ex.resp_head_us > 0 {
        ex.ctx.status
    } else {
        0
    };
    r.peer = s.peer;
    exchange_fields(&mut r, ex, snap);
    r.duration_us = env.now_us.saturating_sub(ex.started_us);
    env.log.push(&mut r, env.stats);
}
