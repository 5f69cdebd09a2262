//! The multiplexed pool against in-process Thrift servers on loopback: in-order and
//! shuffling servers, both protocols and transports, timeouts, late and hostile replies,
//! dead connections, backoff and bounds.

use super::*;
#[path = "tls_tests.rs"]
mod tls;
use mio::{Events, Poll};
use protocols::thrift::codec::{encode_call, encode_message, Reader, Scan, TType};
use reactor::Token;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a test server does with one call (its seqid, method name, i64 argument): the
/// bytes to write back (empty: nothing), and a pause before writing them.
type Handler = dyn Fn(i32, &str, i64) -> (Vec<u8>, u64) + Send + Sync;

fn limits() -> Limits {
    Limits {
        max_frame: 1 << 20,
        ..Limits::default()
    }
}

pub(super) fn settings(in_flight: usize, conns: usize) -> NodeSettings {
    NodeSettings {
        max_in_flight: in_flight,
        max_connections: conns,
        max_pending: 10_000,
        connect_timeout_ms: 1000,
        idle_timeout_ms: 60_000,
        limits: limits(),
    }
}

/// A reply `{0: v}` to `name` with `seqid`.
fn reply(p: Protocol, t: Transport, name: &str, seqid: i32, v: i64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message::<ThriftError>(
        p,
        t,
        name,
        MessageType::Reply,
        seqid,
        &limits(),
        &mut out,
        |w| {
            let s = w.struct_begin();
            w.field_begin(TType::I64, 0);
            w.i64(v);
            w.struct_end(s);
            Ok(())
        },
    )
    .unwrap();
    out
}

/// The i64 result and seqid of a reply.
fn read_reply(p: Protocol, t: Transport, msg: &[u8]) -> (i32, i64) {
    let body = codec::strip_frame(t, msg).unwrap();
    let mut r = Reader::new(p, body, limits());
    let h = r.read_message_header().unwrap();
    r.read_struct_begin().unwrap();
    let (ty, id) = r.read_field_begin().unwrap().unwrap();
    assert_eq!((ty, id), (TType::I64, 0));
    (h.seqid, r.read_i64().unwrap())
}

/// Serves Thrift calls on loopback; `shuffle` answers every call read in one go in a
/// scrambled order (a server processing a connection's calls concurrently).
pub(super) struct Server {
    pub(super) addr: SocketAddr,
    conns: Arc<AtomicUsize>,
    /// Replies written in another order than their calls came.
    reordered: Arc<AtomicUsize>,
}

pub(super) fn server(p: Protocol, t: Transport, shuffle: bool, handler: Arc<Handler>) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let reordered = Arc::new(AtomicUsize::new(0));
    let (counter, moved) = (conns.clone(), reordered.clone());
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let (h, moved) = (handler.clone(), moved.clone());
            let _ = s.set_nodelay(true);
            std::thread::spawn(move || serve_conn(s, p, t, shuffle, &*h, &moved));
        }
    });
    Server {
        addr,
        conns,
        reordered,
    }
}

fn serve_conn(
    mut s: impl Read + Write,
    p: Protocol,
    t: Transport,
    shuffle: bool,
    h: &Handler,
    reordered: &AtomicUsize,
) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        let mut replies: Vec<(usize, (Vec<u8>, u64))> = Vec::new();
        while let Ok(Scan::Complete(len)) = codec::scan_message(p, t, &buf[start..], &limits()) {
            let msg = &buf[start..start + len];
            let body = codec::strip_frame(t, msg).unwrap();
            let mut r = Reader::new(p, body, limits());
            let hd = r.read_message_header().unwrap();
            let name = std::str::from_utf8(&body[hd.name.clone()])
                .unwrap()
                .to_string();
            r.read_struct_begin().unwrap();
            let v = match r.read_field_begin().unwrap() {
                Some((TType::I64, 1)) => r.read_i64().unwrap(),
                _ => 0,
            };
            replies.push((replies.len(), h(hd.seqid, &name, v)));
            start += len;
        }
        buf.drain(..start);
        if shuffle {
            for i in (1..replies.len()).rev() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                replies.swap(i, (rng % (i as u64 + 1)) as usize);
            }
            let moved = replies
                .iter()
                .enumerate()
                .filter(|(i, r)| *i != r.0)
                .count();
            reordered.fetch_add(moved, Ordering::Relaxed);
        }
        let mut out = Vec::new();
        for (_, (bytes, pause)) in replies {
            if pause > 0 {
                if s.write_all(&out).is_err() {
                    return;
                }
                out.clear();
                std::thread::sleep(Duration::from_millis(pause));
            }
            if bytes == b"CLOSE" {
                return;
            }
            out.extend_from_slice(&bytes);
        }
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

/// Echoes the argument back to every call, in order.
pub(super) fn echo(p: Protocol, t: Transport) -> Arc<Handler> {
    Arc::new(move |seq, name: &str, v| (reply(p, t, name, seq, v), 0))
}

/// The pool plus a poll loop and a clock, as a worker would run them.
pub(super) struct Harness {
    poll: Poll,
    events: Events,
    pub(super) pool: MuxPool,
    ready: Vec<usize>,
    start: Instant,
    /// Run the pool's periodic sweep on each turn (as the worker does).
    sweep: bool,
    /// TLS settings calls are submitted with (`tls_tests`).
    tls: Option<UpTls>,
}

impl Harness {
    pub(super) fn new() -> Harness {
        Harness {
            poll: Poll::new().unwrap(),
            events: Events::with_capacity(256),
            pool: MuxPool::new(),
            ready: Vec::new(),
            start: Instant::now(),
            sweep: true,
            tls: None,
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    /// Builds and submits a call carrying `v`, with caller seqid `seq`.
    pub(super) fn call(
        &mut self,
        key: NodeKey,
        s: &NodeSettings,
        name: &str,
        v: i64,
        seq: i32,
    ) -> CallId {
        self.call_kind(key, s, name, v, seq, false).0
    }

    fn call_kind(
        &mut self,
        key: NodeKey,
        s: &NodeSettings,
        name: &str,
        v: i64,
        seq: i32,
        oneway: bool,
    ) -> (CallId, Result<(), CallError>) {
        let (id, buf) = self.pool.begin_call();
        encode_call::<ThriftError>(
            key.protocol,
            key.transport,
            name,
            seq,
            oneway,
            &limits(),
            buf,
            |w| {
                let st = w.struct_begin();
                w.field_begin(TType::I64, 1);
                w.i64(v);
                w.struct_end(st);
                Ok(())
            },
        )
        .unwrap();
        let now = self.now();
        let r = self
            .pool
            .submit(self.poll.registry(), now, id, key, s, self.tls.as_ref(), 7);
        (id, r)
    }

    /// Runs the loop until `done` holds or `t` passes.
    fn run_until(&mut self, t: Duration, mut done: impl FnMut(&MuxPool) -> bool) -> bool {
        let end = Instant::now() + t;
        while Instant::now() < end {
            if done(&self.pool) {
                return true;
            }
            self.turn(Duration::from_millis(20));
        }
        done(&self.pool)
    }

    pub(super) fn turn(&mut self, t: Duration) {
        self.poll.poll(&mut self.events, Some(t)).unwrap();
        let now = self.now();
        for e in self.events.iter() {
            let tok = Token::from(e.token());
            assert!(is_mux_token(tok.index()));
            self.pool.on_event(
                self.poll.registry(),
                tok.index(),
                e.is_readable() || e.is_read_closed() || e.is_error(),
                e.is_writable() || e.is_write_closed() || e.is_error(),
                e.is_read_closed(),
                now,
            );
        }
        if self.sweep {
            self.pool.sweep(self.poll.registry(), now);
        }
        self.pool.take_ready(&mut self.ready);
    }

    pub(super) fn finish(&mut self, id: CallId) {
        let now = self.now();
        self.pool.finish(self.poll.registry(), now, id);
    }
}

fn key(addr: SocketAddr, p: Protocol, t: Transport) -> NodeKey {
    NodeKey {
        addr,
        protocol: p,
        transport: t,
        tls: 0,
    }
}

fn pending(pool: &MuxPool, ids: &[CallId]) -> bool {
    ids.iter().all(|&id| pool.poll(id) != CallPoll::Pending)
}

const COMBOS: [(Protocol, Transport); 4] = [
    (Protocol::Binary, Transport::Framed),
    (Protocol::Binary, Transport::Buffered),
    (Protocol::Compact, Transport::Framed),
    (Protocol::Compact, Transport::Buffered),
];

#[test]
fn calls_round_trip_with_the_callers_seqid_in_every_protocol_and_transport() {
    for (p, t) in COMBOS {
        let srv = server(p, t, false, echo(p, t));
        let mut h = Harness::new();
        let k = key(srv.addr, p, t);
        let s = settings(1, 2);
        // Caller ids of every compact varint width, and negative ones.
        let seqs = [0, 5, 200, 70_000, 1 << 29, -1, i32::MIN, i32::MAX];
        let ids: Vec<CallId> = (0..40)
            .map(|i| h.call(k, &s, "echo", i as i64 * 1_000_003, seqs[i % seqs.len()]))
            .collect();
        assert!(h.run_until(Duration::from_secs(10), |pool| pending(pool, &ids)));
        for (i, id) in ids.iter().enumerate() {
            let CallPoll::Reply(msg) = h.pool.poll(*id) else {
                panic!("{p:?}/{t:?} call {i}: {:?}", h.pool.poll(*id));
            };
            assert_eq!(
                read_reply(p, t, msg),
                (seqs[i % seqs.len()], i as i64 * 1_000_003)
            );
            h.finish(*id);
        }
        assert!(
            srv.conns.load(Ordering::SeqCst) <= 2,
            "max_connections holds"
        );
        assert_eq!(h.pool.stats().replies, 40);
    }
}

#[test]
fn a_reply_that_frees_a_place_sends_the_next_queued_call_at_once() {
    let (p, t) = (Protocol::Binary, Transport::Framed);
    let srv = server(p, t, false, echo(p, t));
    let mut h = Harness::new();
    h.sweep = false; // no periodic help: only replies may move the queue
    let k = key(srv.addr, p, t);
    let ids: Vec<CallId> = (0..5)
        .map(|v| h.call(k, &settings(1, 1), "echo", v, 0))
        .collect();
    assert_eq!(h.pool.queued(&k), 4);
    assert!(h.run_until(Duration::from_secs(5), |pool| pending(pool, &ids)));
    assert!(ids
        .iter()
        .all(|id| matches!(h.pool.poll(*id), CallPoll::Reply(_))));
}

#[test]
fn shuffled_replies_on_multiplexed_connections_are_never_misrouted() {
    // 1,000,000 calls in release builds; a tenth in debug builds (unoptimised codecs on
    // both sides of loopback would take minutes), same code path.
    let total: i64 = if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    };
    let (p, t) = (Protocol::Compact, Transport::Framed);
    let srv = server(p, t, true, echo(p, t));
    let mut h = Harness::new();
    let k = key(srv.addr, p, t);
    let s = settings(64, 2);
    let window = 256;
    let mut out: Vec<(CallId, i64)> = Vec::with_capacity(window);
    let (mut sent, mut ok, mut misrouted) = (0i64, 0i64, 0i64);
    let deadline = Instant::now() + Duration::from_secs(600);
    while ok + misrouted < total {
        assert!(Instant::now() < deadline, "stalled at {ok}");
        while out.len() < window && sent < total {
            let v = sent * 7919 + 13;
            let id = h.call(k, &s, "echo", v, (sent % 100_000) as i32);
            out.push((id, v));
            sent += 1;
        }
        h.turn(Duration::from_millis(50));
        let mut i = 0;
        while i < out.len() {
            let (id, v) = out[i];
            match h.pool.poll(id) {
                CallPoll::Pending => i += 1,
                CallPoll::Reply(msg) => {
                    let (seq, got) = read_reply(p, t, msg);
                    if got == v && i64::from(seq) == ((v - 13) / 7919) % 100_000 {
                        ok += 1;
                    } else {
                        misrouted += 1;
                    }
                    h.finish(id);
                    out.swap_remove(i);
                }
                other => panic!("call failed: {other:?}"),
            }
        }
    }
    assert_eq!(misrouted, 0);
    assert_eq!(ok, total);
    let moved = srv.reordered.load(Ordering::Relaxed) as i64;
    assert!(moved > total / 4, "only {moved} replies came out of order");
    let st = h.pool.stats();
    assert_eq!(
        (st.late_replies, st.unknown_replies, st.wrong_method),
        (0, 0, 0)
    );
}

#[test]
fn a_timed_out_call_frees_its_slot_and_its_late_reply_is_dropped() {
    let (p, t) = (Protocol::Binary, Transport::Framed);
    let slow: Arc<Handler> = Arc::new(move |seq, name: &str, v| {
        (reply(p, t, name, seq, v), if v == 1 { 300 } else { 0 })
    });
    let srv = server(p, t, false, slow);
    let mut h = Harness::new();
    let k = key(srv.addr, p, t);
    let s = settings(1, 1);
    let a = h.call(k, &s, "echo", 1, 11);
    h.run_until(Duration::from_millis(80), |_| false);
    h.finish(a); // the session's deadline passed
    let b = h.call(k, &s, "echo", 2, 22);
    assert!(h.run_until(Duration::from_secs(5), |pool| pool.poll(b)
        != CallPoll::Pending));
    let CallPoll::Reply(msg) = h.pool.poll(b) else {
        panic!("{:?}", h.pool.poll(b));
    };
    assert_eq!(read_reply(p, t, msg), (22, 2));
    assert_eq!(h.pool.stats().late_replies, 1);
    assert_eq!(srv.conns.load(Ordering::SeqCst), 1, "same connection");
}

#[test]
fn a_reply_naming_another_method_fails_only_its_call() {
    let (p, t) = (Protocol::Binary, Transport::Buffered);
    let liar: Arc<Handler> = Arc::new(move |seq, name: &str, v| {
        let name = if v == 7 { "other" } else { name };
        (reply(p, t, name, seq, v), 0)
    });
    let srv = server(p, t, true, liar);
    let mut h = Harness::new();
    let k = key(srv.addr, p, t);
    let s = settings(4, 1);
    let ids: Vec<CallId> = (5..10).map(|v| h.call(k, &s, "Svc:echo", v, 0)).collect();
    assert!(h.run_until(Duration::from_secs(5), |pool| pending(pool, &ids)));
    for (i, id) in ids.iter().enumerate() {
        match h.pool.poll(*id) {
            CallPoll::Failed(CallError::WrongMethod) => assert_eq!(i, 2),
            CallPoll::Reply(msg) => assert_eq!(read_reply(p, t, msg).1, 5 + i as i64),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(h.pool.stats().wrong_method, 1);
}

#[test]
fn a_reply_with_a_never_issued_seqid_fails_the_only_call_in_flight() {
    let (p, t) = (Protocol::Compact, Transport::Framed);
    let wrong: Arc<Handler> =
        Arc::new(move |seq, name: &str, v| (reply(p, t, name, seq.wrapping_add(1 << 20), v), 0));
    let srv = server(p, t, false, wrong);
    let mut h = Harness::new();
    let k = key(srv.addr, p, t);
    let a = h.call(k, &settings(1, 1), "echo", 1, 0);
    assert!(h.run_until(Duration::from_secs(5), |pool| pool.poll(a)
        != CallPoll::Pending));
    assert_eq!(h.pool.poll(a), CallPoll::Failed(CallError::BadSequenceId));
}

/// A server that answers value `v` with raw bytes from `bad`, others with a good reply.
fn hostile(p: Protocol, t: Transport, bad: fn(i32) -> Vec<u8>) -> Server {
    let h: Arc<Handler> = Arc::new(move |seq, name: &str, v| {
        if v == 666 {
            (bad(seq), 0)
        } else {
            (reply(p, t, name, seq, v), 0)
        }
    });
    server(p, t, false, h)
}

#[test]
fn oversized_negative_and_deep_replies_fail_their_call_and_the_pool_goes_on() {
    type Case = (Protocol, Transport, fn(i32) -> Vec<u8>);
    let cases: [Case; 4] = [
        // A frame claiming 2 GiB - 1.
        (Protocol::Binary, Transport::Framed, |_| {
            vec![0x7f, 0xff, 0xff, 0xff, 1, 2, 3]
        }),
        // A negative frame length.
        (Protocol::Compact, Transport::Framed, |_| {
            vec![0xff, 0xff, 0xff, 0xfe]
        }),
        // Unframed: a header, then 10,000 nested structs (the limit is 64).
        (Protocol::Binary, Transport::Buffered, |seq| {
            let mut out = Vec::new();
            let mut w = codec::Writer::new(Protocol::Binary, &mut out);
            w.message_begin("echo", MessageType::Reply, seq);
            for _ in 0..10_000 {
                out.extend_from_slice(&[12, 0, 1]);
            }
            out
        }),
        // Unframed: a string claiming 2 GiB.
        (Protocol::Binary, Transport::Buffered, |seq| {
            let mut out = Vec::new();
            let mut w = codec::Writer::new(Protocol::Binary, &mut out);
            w.message_begin("echo", MessageType::Reply, seq);
            out.extend_from_slice(&[11, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
            out
        }),
    ];
    for (p, t, bad) in cases {
        let srv = hostile(p, t, bad);
        let mut h = Harness::new();
        let k = key(srv.addr, p, t);
        let s = settings(1, 1);
        let a = h.call(k, &s, "echo", 666, 1);
        assert!(h.run_until(Duration::from_secs(5), |pool| pool.poll(a)
            != CallPoll::Pending));
        assert!(
            matches!(h.pool.poll(a), CallPoll::Failed(CallError::Protocol(_))),
            "{p:?}/{t:?}: {:?}",
            h.pool.poll(a)
        );
        h.finish(a);
        // The broken connection is gone; the next call gets a fresh one and succeeds.
        let b = h.call(k, &s, "echo", 5, 2);
        assert!(h.run_until(Duration::from_secs(5), |pool| pool.poll(b)
            != CallPoll::Pending));
        let CallPoll::Reply(msg) = h.pool.poll(b) else {
            panic!("{p:?}/{t:?}: {:?}", h.pool.poll(b));
        };
        assert_eq!(read_reply(p, t, msg), (2, 5));
        assert_eq!(h.pool.stats().stream_errors, 1);
    }
}

#[test]
fn a_dying_connection_fails_its_calls_and_the_next_call_reconnects() {
    let (p, t) = (Protocol::Binary, Transport::Framed);
    let closer: Arc<Handler> = Arc::new(move |seq, name: &str, v| {
        if v == 0 {
            (b"CLOSE".to_vec(), 0)
        } else {
            (reply(p, t, name, seq, v), 0)
        }
    });
    let srv = server(p, t, false, closer);
    let mut h = Harness::new();
    let k = key(srv.addr, p, t);
    let s = settings(8, 1);
    let ids: Vec<CallId> = [3, 0]
        .iter()
        .map(|&v| h.call(k, &s, "echo", v, 0))
        .collect();
    assert!(h.run_until(Duration::from_secs(5), |pool| pending(pool, &ids)));
    assert_eq!(h.pool.poll(ids[1]), CallPoll::Failed(CallError::Closed));
    let c = h.call(k, &s, "echo", 4, 9);
    assert!(h.run_until(Duration::from_secs(5), |pool| pool.poll(c)
        != CallPoll::Pending));
    assert!(matches!(h.pool.poll(c), CallPoll::Reply(_)));
    assert_eq!(srv.conns.load(Ordering::SeqCst), 2);
}

#[test]
fn refused_connects_back_off_then_retry() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut h = Harness::new();
    let k = key(addr, Protocol::Binary, Transport::Framed);
    let s = settings(1, 2);
    let a = h.call(k, &s, "echo", 1, 0);
    assert!(h.run_until(Duration::from_secs(5), |pool| pool.poll(a)
        != CallPoll::Pending));
    assert_eq!(h.pool.poll(a), CallPoll::Failed(CallError::Connect));
    assert_eq!(h.pool.stats().connect_failures, 1);
    // Within the backoff: refused at once, without a connect attempt.
    let (b, r) = h.call_kind(k, &s, "echo", 2, 0, false);
    assert_eq!(r, Err(CallError::Connect));
    assert_eq!(h.pool.poll(b), CallPoll::Failed(CallError::Connect));
    assert_eq!(h.pool.stats().connect_failures, 1);
    // After it, a real attempt again.
    std::thread::sleep(Duration::from_millis(BACKOFF_MIN_MS + 20));
    let c = h.call(k, &s, "echo", 3, 0);
    assert!(h.run_until(Duration::from_secs(5), |pool| pool.poll(c)
        != CallPoll::Pending));
    assert_eq!(h.pool.stats().connect_failures, 2);
}

#[test]
fn a_call_refused_on_connect_can_be_sent_to_another_node() {
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (p, t) = (Protocol::Binary, Transport::Framed);
    let srv = server(p, t, false, echo(p, t));
    let mut h = Harness::new();
    let s = settings(1, 2);
    let a = h.call(key(dead, p, t), &s, "echo", 5, 3);
    assert!(h.run_until(Duration::from_secs(5), |pool| pool.poll(a)
        != CallPoll::Pending));
    assert_eq!(h.pool.poll(a), CallPoll::Failed(CallError::Connect));
    assert!(h.pool.rearm(a));
    assert!(!h.pool.rearm(a), "only a failed connect is rearmed");
    let now = h.now();
    let r = h
        .pool
        .submit(h.poll.registry(), now, a, key(srv.addr, p, t), &s, None, 7);
    assert_eq!(r, Ok(()));
    assert!(h.run_until(Duration::from_secs(5), |pool| pool.poll(a)
        != CallPoll::Pending));
    let CallPoll::Reply(m) = h.pool.poll(a) else {
        panic!("{:?}", h.pool.poll(a));
    };
    let head = codec::read_message_header(p, t, m, &limits()).unwrap();
    assert_eq!((head.mtype, head.seqid), (MessageType::Reply, 3));
}

#[test]
fn the_wait_queue_is_bounded() {
    let (p, t) = (Protocol::Binary, Transport::Framed);
    let slow: Arc<Handler> = Arc::new(move |seq, name: &str, v| (reply(p, t, name, seq, v), 100));
    let srv = server(p, t, false, slow);
    let mut h = Harness::new();
    let k = key(srv.addr, p, t);
    let s = NodeSettings {
        max_pending: 2,
        ..settings(1, 1)
    };
    let ids: Vec<CallId> = (0..3).map(|v| h.call(k, &s, "echo", v, 0)).collect();
    assert_eq!(h.pool.queued(&k), 2);
    let (d, r) = h.call_kind(k, &s, "echo", 9, 0, false);
    assert_eq!(r, Err(CallError::Overloaded));
    h.finish(d);
    assert!(h.run_until(Duration::from_secs(5), |pool| pending(pool, &ids)));
    assert!(ids
        .iter()
        .all(|id| matches!(h.pool.poll(*id), CallPoll::Reply(_))));
}

#[test]
fn oneway_calls_end_when_written_and_hold_no_slot() {
    let (p, t) = (Protocol::Compact, Transport::Buffered);
    let srv = server(p, t, false, Arc::new(|_, _: &str, _| (Vec::new(), 0)));
    let mut h = Harness::new();
    let k = key(srv.addr, p, t);
    let s = settings(1, 1);
    let ids: Vec<CallId> = (0..5)
        .map(|v| h.call_kind(k, &s, "fire", v, 0, true).0)
        .collect();
    assert!(h.run_until(Duration::from_secs(5), |pool| pending(pool, &ids)));
    assert!(ids.iter().all(|id| h.pool.poll(*id) == CallPoll::Sent));
}

#[test]
fn a_bad_call_message_is_refused() {
    let mut h = Harness::new();
    let k = key(
        "127.0.0.1:9".parse().unwrap(),
        Protocol::Binary,
        Transport::Framed,
    );
    let (id, buf) = h.pool.begin_call();
    buf.extend_from_slice(&[0, 0, 0, 1, 0xff]);
    let now = h.now();
    let r = h
        .pool
        .submit(h.poll.registry(), now, id, k, &settings(1, 1), None, 1);
    assert!(matches!(r, Err(CallError::BadCall(_))));
    h.finish(id);
    assert_eq!(h.pool.stats().open_connections, 0);
}
