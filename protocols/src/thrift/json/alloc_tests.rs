//! Proof that the per-request paths do not allocate once the caller's buffers are warm:
//! JSON body -> Thrift call, reply -> JSON, and unframed end detection. A counting global
//! allocator (a pass-through to `System`) counts allocations per thread, so tests running in
//! parallel do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use serde_json::json;

use super::tests::{everything, idl, method};
use super::*;
use crate::thrift::codec::{message_end, strip_frame};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches no heap memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

#[test]
fn request_and_reply_paths_do_not_allocate() {
    let idl = idl();
    let policy = MappingPolicy::default();
    let echo = method(&idl, "echo");
    // serde_json needs a scratch buffer for strings with escapes; this body has none.
    let mut all = everything();
    all["str"] = json!("plain text");
    let body = serde_json::to_vec(&json!({"a": all})).unwrap();
    let result = serde_json::to_vec(&all).unwrap();
    for proto in [Protocol::Binary, Protocol::Compact] {
        let mut call = Vec::with_capacity(64 << 10);
        let mut reply = Vec::with_capacity(64 << 10);
        let mut json_out = Vec::with_capacity(64 << 10);
        encode_json_reply(
            &idl,
            echo,
            1,
            None,
            &result,
            &policy,
            proto,
            Transport::Framed,
            &mut reply,
        )
        .unwrap();
        let n = allocations(|| {
            for seqid in 0..10 {
                call.clear();
                encode_json_call(
                    &idl,
                    echo,
                    "echo",
                    seqid,
                    &body,
                    &[],
                    &policy,
                    proto,
                    Transport::Framed,
                    &mut call,
                )
                .unwrap();
                let unframed = strip_frame(Transport::Framed, &call).unwrap();
                assert!(
                    message_end(proto, Transport::Buffered, unframed, &policy.limits)
                        .unwrap()
                        .is_some()
                );
                json_out.clear();
                let kind = reply_to_json(
                    &idl,
                    echo,
                    proto,
                    strip_frame(Transport::Framed, &reply).unwrap(),
                    &policy,
                    &mut json_out,
                )
                .unwrap();
                assert_eq!(kind, ReplyKind::Success);
            }
        });
        assert_eq!(n, 0, "{proto:?}");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&json_out).unwrap(),
            all
        );
    }
}

#[test]
fn the_counter_sees_allocations() {
    assert!(allocations(|| drop(std::hint::black_box(vec![1u8; 10]))) >= 1);
}
