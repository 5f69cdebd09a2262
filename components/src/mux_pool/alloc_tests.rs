//! The pool's steady state allocates nothing: after a warm-up, a thousand calls (build,
//! submit, replies read and matched, finish) through one connection with several in
//! flight, counted on this thread only (the test server's threads allocate freely).

use super::tests::{echo, server, settings, Harness};
use super::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if COUNTING.with(Cell::get) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn calls_in_steady_state_do_not_allocate() {
    let (p, t) = (Protocol::Compact, Transport::Framed);
    let srv = server(p, t, true, echo(p, t));
    let mut h = Harness::new();
    let k = NodeKey {
        addr: srv.addr,
        protocol: p,
        transport: t,
        tls: 0,
    };
    let s = settings(8, 1);
    let mut out: Vec<CallId> = Vec::with_capacity(64);
    let run = |h: &mut Harness, n: usize, out: &mut Vec<CallId>| {
        let mut done = 0;
        let mut sent = 0;
        while done < n {
            while out.len() < 16 && sent < n {
                out.push(h.call(k, &s, "echo", sent as i64, 1));
                sent += 1;
            }
            h.turn(Duration::from_millis(20));
            let mut i = 0;
            while i < out.len() {
                if h.pool.poll(out[i]) == CallPoll::Pending {
                    i += 1;
                } else {
                    assert!(matches!(h.pool.poll(out[i]), CallPoll::Reply(_)));
                    h.finish(out[i]);
                    out.swap_remove(i);
                    done += 1;
                }
            }
        }
    };
    run(&mut h, 500, &mut out);
    COUNTING.with(|c| c.set(true));
    run(&mut h, 1000, &mut out);
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCS.load(Ordering::Relaxed), 0);
}
