//! The `circuit_breaker` stage: one breaker per route using the module (a route has one
//! upstream, so per route and upstream), refusing calls with 503 while it is open and
//! recording each upstream answer (5xx = failure) to decide when to open and close.
//!
//! Breakers are per worker core, as the engine is designed (no sharing, no atomics). They live
//! in a thread-local table rather than in `CoreState` because `Stage::on_response` is not
//! given the core state; a worker thread is a core, so the table is the same thing reached
//! another way. The table belongs to one pipeline generation: a new config version starts
//! with fresh (closed) breakers, and the answers of requests begun on an older version are not
//! recorded. Touching the table takes no lock and allocates only on the first request of a
//! new version.

use super::{mono_ns, read, under, Built, Carry, Form};
use crate::context::Context;
use crate::modules::breaker::{Breaker, BreakerConfig, BreakerPolicy};
use crate::pipeline::{CoreState, Phase};
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use conf::{ConfigError, Settings};
use protocols::error::ErrorKind;
use std::cell::RefCell;

pub(super) fn compile(s: &Settings, at: &str) -> Result<Built, Vec<ConfigError>> {
    let cfg: BreakerConfig = read(s, at).map_err(|e| vec![e])?;
    let policy = BreakerPolicy::compile(&cfg).map_err(|e| under(at, e))?;
    Ok((
        "circuit_breaker",
        Phase::Breaker,
        Form::Breaker(policy),
        Carry::None,
    ))
}

/// This thread's breakers for one pipeline generation, by slot.
#[derive(Default)]
struct Table {
    generation: u64,
    breakers: Vec<Option<Breaker>>,
}

thread_local! {
    static BREAKERS: RefCell<Table> = RefCell::new(Table::default());
}

/// The breaker of one route (made by the pipeline for each route using the module).
pub struct BreakerStage {
    policy: BreakerPolicy,
    generation: u64,
    slot: usize,
}

impl BreakerStage {
    pub(crate) fn new(policy: BreakerPolicy, generation: u64, slot: usize) -> BreakerStage {
        BreakerStage {
            policy,
            generation,
            slot,
        }
    }

    /// Runs `f` on this thread's breaker, made on first use; None for a stage of an older
    /// generation than the table's (its requests are not counted any more).
    fn with<T>(&self, f: impl FnOnce(&mut Breaker) -> T) -> Option<T> {
        BREAKERS.with(|t| {
            let mut t = t.try_borrow_mut().ok()?;
            if self.generation > t.generation {
                t.generation = self.generation;
                t.breakers.clear();
            } else if self.generation < t.generation {
                return None;
            }
            if t.breakers.len() <= self.slot {
                t.breakers.resize(self.slot + 1, None);
            }
            let b = t.breakers.get_mut(self.slot)?;
            Some(f(b.get_or_insert_with(|| Breaker::new(self.policy))))
        })
    }
}

fn now_ms() -> u64 {
    mono_ns() / 1_000_000
}

impl Stage for BreakerStage {
    fn kind(&self) -> &'static str {
        "circuit_breaker"
    }

    fn on_request(
        &self,
        _ctx: &mut Context,
        _req: &Request,
        _snap: &Snapshot,
        _core: &mut CoreState,
    ) -> Flow {
        match self.with(|b| b.allow(now_ms())) {
            Some(false) => Flow::Respond(Reject::new(ErrorKind::CircuitOpen)),
            _ => Flow::Continue,
        }
    }

    fn on_response(&self, ctx: &mut Context) {
        let ok = ctx.status < 500;
        self.with(|b| b.record(now_ms(), ok));
    }
}

#[cfg(test)]
mod tests {
    use crate::stages::testutil::{rejected, Harness};
    use crate::Flow;
    use protocols::error::ErrorKind;

    const CONFIG: &str = r#"
[[modules]]
id = "cb"
kind = "circuit_breaker"
consecutive_failures = 3
failure_rate = 0
open_ms = 100

[[routes]]
id = "a"
paths = ["/a"]
upstream = "u"
modules = ["cb"]

[[routes]]
id = "b"
paths = ["/b"]
upstream = "u"
modules = ["cb"]
"#;

    /// Sends a request to `path`; when it passes, the upstream answers `status`.
    fn call(h: &mut Harness, path: &str, status: u16) -> Flow {
        let mut o = h.get(&format!("GET {path} HTTP/1.1\nHost: a\n"));
        if o.flow == Flow::Continue {
            o.ctx.status = status;
            h.snap.pipeline.on_response(&mut o.ctx);
        }
        o.flow
    }

    #[test]
    fn opens_after_failures_per_route_and_closes_after_a_good_probe() {
        let mut h = Harness::new(CONFIG);
        for _ in 0..3 {
            assert_eq!(call(&mut h, "/a", 502), Flow::Continue);
        }
        let o = h.get("GET /a HTTP/1.1\nHost: a\n");
        assert_eq!(rejected(&o).kind, ErrorKind::CircuitOpen);
        // The other route has its own breaker.
        assert_eq!(call(&mut h, "/b", 200), Flow::Continue);
        std::thread::sleep(std::time::Duration::from_millis(120));
        assert_eq!(call(&mut h, "/a", 200), Flow::Continue); // the probe
        assert_eq!(call(&mut h, "/a", 200), Flow::Continue);
    }

    #[test]
    fn a_new_version_starts_closed_and_ignores_old_answers() {
        let mut h1 = Harness::new(CONFIG);
        for _ in 0..3 {
            call(&mut h1, "/a", 500);
        }
        assert_ne!(call(&mut h1, "/a", 200), Flow::Continue);
        let mut h2 = Harness::new(CONFIG);
        assert_eq!(call(&mut h2, "/a", 200), Flow::Continue);
        // Answers of the old version change nothing now.
        for _ in 0..5 {
            call(&mut h1, "/a", 500);
        }
        assert_eq!(call(&mut h2, "/a", 200), Flow::Continue);
    }
}
