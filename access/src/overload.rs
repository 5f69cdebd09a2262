//! Overload protection on the request path: the node-wide in-flight caps of routes and
//! upstreams, and the memory guard. Both answer 503 `overloaded` at once instead of letting
//! work queue (docs/overload.md has every limit, its knob and its answer).
//!
//! The memory guard's measuring half is a control thread that reads `/proc/self/statm` every
//! [`MEM_CHECK_MS`] into one process-wide atomic; workers compare that figure with their limit
//! on their own periodic tick (`worker.rs`), so the request path reads a plain `bool` and never
//! a file.

use crate::http::{answer, Env, Step};
use crate::session::{CoreSnap, Exchange, Phase, Session};
use business::admission::Full;
use business::stage::FieldName;
use protocols::error::ErrorKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::Duration;

/// How often the control thread samples the resident set, and workers look at the sample.
pub const MEM_CHECK_MS: u64 = 100;
/// `Retry-After` seconds on an `overloaded` answer: a short back-off for well-behaved clients.
const RETRY_AFTER_S: u64 = 1;

/// The process's resident set in bytes at the last sample (0 before the first).
static RSS_BYTES: AtomicU64 = AtomicU64::new(0);

/// Starts the sampling thread once per process (later calls do nothing).
pub fn start_memory_sampler() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        sample();
        let spawned = std::thread::Builder::new()
            .name("gatehouse-mem".into())
            .spawn(|| loop {
                std::thread::sleep(Duration::from_millis(MEM_CHECK_MS));
                sample();
            });
        if let Err(e) = spawned {
            eprintln!("gatehouse: cannot start the memory guard's sampler: {e}");
        }
    });
}

/// Reads the resident page count from `/proc/self/statm` (its second field).
fn sample() {
    let Ok(text) = std::fs::read_to_string("/proc/self/statm") else {
        return;
    };
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if page > 0 { page as u64 } else { 4096 };
    RSS_BYTES.store(pages.saturating_mul(page), Ordering::Relaxed);
}

/// The last resident-set sample in bytes.
pub fn rss_bytes() -> u64 {
    RSS_BYTES.load(Ordering::Relaxed)
}

/// Whether the process is over `limit_mb` MiB (never when the guard is off, `limit_mb` 0).
pub fn over_memory(limit_mb: u64) -> bool {
    limit_mb > 0 && rss_bytes() > limit_mb.saturating_mul(1 << 20)
}

/// Takes the request's places under its route's and upstream's caps; the answer to give
/// when one is full.
pub(crate) fn admit(
    ex: &mut Exchange,
    snap: &CoreSnap,
) -> Option<(ErrorKind, Option<u64>, Option<FieldName>)> {
    if !ex.held.is_empty() {
        return None;
    }
    match snap.admission.acquire(ex.ctx.route.route, ex.ctx.upstream) {
        Ok(held) => {
            if !held.is_empty() {
                // The places are given back against this version when the exchange ends,
                // whichever path ends it.
                ex.held = held;
                ex.snap = Some(snap.clone());
            }
            None
        }
        Err(Full::Route | Full::Upstream) => {
            Some((ErrorKind::Overloaded, Some(RETRY_AFTER_S), None))
        }
    }
}

/// Gives back the places an ending exchange held.
pub(crate) fn release(ex: &mut Exchange) {
    if ex.held.is_empty() {
        return;
    }
    if let Some(snap) = ex.snap.as_ref() {
        snap.admission.release(ex.held);
    }
    ex.held = business::admission::Held::NONE;
}

/// The memory guard is on: answer the request 503 without running the pipeline, and close
/// the connection so its buffers go back to the pool.
pub(crate) fn shed(s: &mut Session, env: &mut Env) -> Step {
    let head_only = env.req_head.method == protocols::http1::Method::Head;
    if let Some(cin) = s.cin.as_mut() {
        let n = env.req_head.head_len.min(cin.len());
        bytes::Buf::advance(&mut **cin, n);
    }
    answer(
        s,
        env,
        ErrorKind::Overloaded,
        None,
        true,
        head_only,
        Some(RETRY_AFTER_S),
    );
    s.phase = Phase::Closing;
    Step::Progress
}
