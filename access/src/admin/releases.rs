//! Gray releases over the admin API (docs/releases.md): start one (`PUT`), read its state and
//! per-side counters (`GET`), finish it (`POST .../promote`, `POST .../rollback`, `DELETE`),
//! and the guard that rolls one back by itself.
//!
//! A release is a resource of the config (kind `releases`), so starting, promoting and
//! rolling back are ordinary changes through [`State::change`] / [`State::change_with`]: one
//! new version, validated whole, saved, audited and published to every worker before the
//! answer. Promotion replaces the target with the candidate and drops the release in that one
//! version; rollback drops the release. Counters live in the workers' tables
//! (`crate::stats`) and are summed here when read.
//!
//! The guard is one thread on the admin side. Every release with a `guard` is sampled each
//! `interval_ms`; the counts over the last `window_ms` go to `business::release::judge`, and a
//! verdict rolls the release back through the same path as the API, audited with
//! `who = "guard"`. Finished releases (by either path) are remembered in memory, newest last,
//! so `GET` can still say what became of them.

use super::answer::Answer;
use super::handlers::{body_object, with_version};
use super::router::{Params, Req};
use super::write::{Edit, Origin};
use super::State;
use business::release::{judge, ReleaseRt, Side, Totals};
use business::Snapshot;
use conf::release::{parse_target, ROUTE_FIELDS_CANDIDATE_MAY_CHANGE};
use conf::store::{kinds, now_rfc3339, Resources};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Finished releases remembered for `GET` (the audit log keeps the full history).
pub const FINISHED_KEPT: usize = 64;

/// What became of finished releases, newest last.
#[derive(Default)]
pub struct Book(Mutex<VecDeque<Value>>);

impl Book {
    fn record(&self, v: Value) {
        let mut b = self.0.lock();
        let id = v.get("id").cloned();
        b.retain(|x| x.get("id") != id.as_ref());
        if b.len() >= FINISHED_KEPT {
            b.pop_front();
        }
        b.push_back(v);
    }

    fn find(&self, id: &str) -> Option<Value> {
        self.0
            .lock()
            .iter()
            .rev()
            .find(|v| v.get("id").and_then(Value::as_str) == Some(id))
            .cloned()
    }

    /// A release of this id runs again: its old outcome no longer describes it.
    fn forget(&self, id: &str) {
        self.0
            .lock()
            .retain(|v| v.get("id").and_then(Value::as_str) != Some(id));
    }
}

fn not_found(id: &str) -> Answer {
    Answer::error(404, "not_found", format!("no release named {id:?}"), "")
}

/// The counters of both sides of `rt`, summed over the workers.
fn counters(rt: &ReleaseRt) -> Totals {
    crate::stats::release_totals(&rt.id, rt.since)
}

fn report(t: &Totals) -> Value {
    json!({
        "stable": t.side(Side::Stable).report(),
        "candidate": t.side(Side::Candidate).report(),
    })
}

/// The running release `id` of `snap`, with its stored form.
fn running<'a>(snap: &'a Snapshot, id: &str) -> Option<(&'a ReleaseRt, Value)> {
    let i = snap.pipeline.releases.iter().position(|r| r.id == id)?;
    let stored = serde_json::to_value(snap.config.releases.get(i)?).ok()?;
    Some((snap.pipeline.releases.get(i)?, stored))
}

/// `GET /admin/v1/releases/{id}`: the release as stored, its state and both sides' counters.
pub fn get(state: &State, _: &Req, p: &Params) -> Answer {
    let id = p.id.unwrap_or("");
    let snap = state.current();
    match running(&snap, id) {
        Some((rt, stored)) => {
            let mut v = with_version(&stored, snap.version);
            if let Value::Object(m) = &mut v {
                m.insert("state".into(), json!("running"));
                m.insert("since_version".into(), json!(rt.since));
                m.insert("counters".into(), report(&counters(rt)));
            }
            Answer::json(200, &v)
        }
        None => match state.finished.find(id) {
            Some(v) => Answer::json(200, &with_version(&v, snap.version)),
            None => not_found(id),
        },
    }
}

/// `PUT /admin/v1/releases/{id}`: starts (or changes) a release. The target must exist
/// (409 otherwise); the candidate is read as the target's kind, its id filled in.
pub fn put(state: &State, req: &Req, p: &Params) -> Answer {
    let id = p.id.unwrap_or("");
    let mut obj = match body_object(req, id) {
        Ok(o) => o,
        Err(a) => return a,
    };
    let target = match obj.get("target") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Answer::error(400, "invalid", "must be a string", "target"),
        None => return Answer::error(400, "invalid", "missing field `target`", "target"),
    };
    let Some((kind, target_id)) = parse_target(&target) else {
        return Answer::error(
            400,
            "invalid",
            "must be \"routes/ID\" or \"modules/ID\"",
            "target",
        );
    };
    let snap = state.current();
    let res = kinds::resources_of(&snap.config);
    if kinds::find(&res, kind.kind(), target_id).is_none() {
        return Answer::error(
            409,
            "dangling_reference",
            format!("no {} named {target_id:?}", kind.kind()),
            "target",
        );
    }
    let candidate = match obj.remove("candidate") {
        Some(Value::Object(mut c)) => {
            match c.get("id") {
                None => {
                    c.insert("id".into(), json!(target_id));
                }
                Some(Value::String(s)) if s == target_id => {}
                Some(_) => {
                    return Answer::error(
                        400,
                        "invalid",
                        format!("must be the target's id ({target_id:?})"),
                        "candidate.id",
                    )
                }
            }
            match kinds::canonical(kind.kind(), &Value::Object(c)) {
                Ok(v) => v,
                Err(e) => {
                    let field = conf::release::under("candidate", &e.path);
                    return Answer::error(400, "invalid", e.message, &field);
                }
            }
        }
        Some(_) => return Answer::error(400, "invalid", "must be an object", "candidate"),
        None => {
            return Answer::error(
                400,
                "invalid",
                format!(
                    "missing field `candidate`: the whole new version of {target} (a route \
                     candidate may change {})",
                    ROUTE_FIELDS_CANDIDATE_MAY_CHANGE.join(", ")
                ),
                "candidate",
            )
        }
    };
    obj.insert("candidate".into(), candidate);
    match kinds::canonical("releases", &Value::Object(obj)) {
        Ok(item) => {
            let a = state.change(req, "releases", id, Edit::Put(item));
            if a.status < 300 {
                state.finished.forget(id);
            }
            a
        }
        Err(e) => Answer::error(400, "invalid", e.message, &e.path),
    }
}

/// How a release ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Promote,
    Rollback,
}

/// Ends release `id` in one new version: promotion puts the candidate in the target's place,
/// both drop the release. Returns the record of what happened.
fn finish(
    state: &State,
    origin: &Origin,
    id: &str,
    end: End,
    reason: Option<&str>,
) -> Result<Value, Answer> {
    let mut last: Option<(Value, Totals, u64)> = None;
    let edit = |snap: &Snapshot, res: &mut Resources| -> Result<(), Answer> {
        let (rt, stored) = running(snap, id).ok_or_else(|| not_found(id))?;
        if end == End::Promote {
            let (kind, _) = parse_target(stored["target"].as_str().unwrap_or(""))
                .ok_or_else(|| Answer::error(409, "conflict", "the target is invalid", "target"))?;
            kinds::upsert(res, kind.kind(), stored["candidate"].clone());
        }
        kinds::remove(res, "releases", id);
        // The counts as they stand when the release ends (later answers of requests begun
        // on it are not counted by anyone).
        last = Some((stored, counters(rt), rt.since));
        Ok(())
    };
    let invalid = |errors: Vec<conf::ConfigError>| {
        let (msg, field) = errors.first().map_or((String::new(), ""), |e| {
            (e.message.clone(), e.path.as_str())
        });
        Answer::error(
            409,
            "conflict",
            format!("the config after this would be invalid: {msg}"),
            field,
        )
    };
    let (_, version) = state.change_with(origin, ("releases", id, 200), edit, invalid)?;
    let Some((stored, totals, since)) = last else {
        return Err(not_found(id));
    };
    let mut v = stored;
    if let Value::Object(m) = &mut v {
        let word = match end {
            End::Promote => "promoted",
            End::Rollback => "rolled_back",
        };
        m.insert("state".into(), json!(word));
        m.insert("since_version".into(), json!(since));
        m.insert("ended_version".into(), json!(version));
        m.insert("ended_at".into(), json!(now_rfc3339()));
        m.insert("ended_by".into(), json!(origin.who));
        if let Some(r) = reason {
            m.insert("reason".into(), json!(r));
        }
        m.insert("counters".into(), report(&totals));
    }
    state.finished.record(v.clone());
    Ok(with_version(&v, version))
}

fn end_by_request(state: &State, req: &Req, p: &Params, end: End, status: u16) -> Answer {
    let id = p.id.unwrap_or("");
    let origin = Origin::of(req, &state.settings);
    match finish(state, &origin, id, end, None) {
        Ok(v) => {
            let version = v.get("version").and_then(Value::as_u64).unwrap_or(0);
            if status == 204 {
                Answer::empty(204).with_version(version)
            } else {
                Answer::json(status, &v).with_version(version)
            }
        }
        Err(a) => a,
    }
}

/// `POST /admin/v1/releases/{id}/promote`.
pub fn promote(state: &State, req: &Req, p: &Params) -> Answer {
    end_by_request(state, req, p, End::Promote, 200)
}

/// `POST /admin/v1/releases/{id}/rollback`.
pub fn rollback(state: &State, req: &Req, p: &Params) -> Answer {
    end_by_request(state, req, p, End::Rollback, 200)
}

/// `DELETE /admin/v1/releases/{id}`: a rollback answered like any DELETE.
pub fn delete(state: &State, req: &Req, p: &Params) -> Answer {
    end_by_request(state, req, p, End::Rollback, 204)
}

/// How often the guard thread wakes to see whether a release is due for a look.
const GUARD_TICK: Duration = Duration::from_millis(50);
/// Samples kept per release: the window is covered in this many steps at most.
const GUARD_SAMPLES: u32 = 32;

/// What the guard remembers of one release: counter samples, oldest first.
struct Watch {
    samples: VecDeque<(Instant, Totals)>,
    next: Instant,
}

/// Starts the guard thread.
pub fn start_guard(state: Arc<State>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("gatehouse-guard".into())
        .spawn(move || {
            let mut watches: HashMap<(String, u64), Watch> = HashMap::new();
            loop {
                std::thread::sleep(GUARD_TICK);
                guard_pass(&state, &mut watches, Instant::now());
            }
        })
}

/// One look at every guarded release that is due.
fn guard_pass(state: &State, watches: &mut HashMap<(String, u64), Watch>, now: Instant) {
    let snap = state.current();
    watches.retain(|(id, since), _| {
        snap.pipeline
            .releases
            .iter()
            .any(|r| r.id == *id && r.since == *since)
    });
    for rt in &snap.pipeline.releases {
        let Some(guard) = &rt.guard else { continue };
        let w = watches
            .entry((rt.id.clone(), rt.since))
            .or_insert_with(|| Watch {
                samples: VecDeque::new(),
                next: now,
            });
        if now < w.next {
            continue;
        }
        w.next = now + Duration::from_millis(guard.interval_ms);
        let window = Duration::from_millis(guard.window_ms);
        let spacing = window / GUARD_SAMPLES;
        let totals = counters(rt);
        if w.samples
            .back()
            .is_none_or(|(t, _)| now.duration_since(*t) >= spacing)
        {
            w.samples.push_back((now, totals.clone()));
        }
        // The baseline is the newest sample at or before the window's start (or the oldest
        // one while the release is younger than its window).
        while w.samples.len() > 1
            && w.samples
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= window)
        {
            w.samples.pop_front();
        }
        let Some((_, base)) = w.samples.front() else {
            continue;
        };
        if let Some(reason) = judge(guard, &totals.since(base)) {
            let origin = Origin {
                who: "guard".into(),
                client: String::new(),
                method: "POST".into(),
                path: format!("/admin/v1/releases/{}/rollback", rt.id),
            };
            match finish(state, &origin, &rt.id, End::Rollback, Some(&reason)) {
                Ok(_) => eprintln!("gatehouse: guard rolled back release {}: {reason}", rt.id),
                Err(a) => eprintln!(
                    "gatehouse: guard could not roll back release {} ({reason}): {}",
                    rt.id,
                    String::from_utf8_lossy(&a.body)
                ),
            }
        }
    }
}

/// Schemas of the release endpoints for the OpenAPI document.
pub fn schemas() -> Map<String, Value> {
    let mut m = Map::new();
    let side = json!({
        "type": "object",
        "properties": {
            "requests": {"type": "integer"},
            "errors": {"type": "integer", "description": "5xx answers"},
            "error_rate": {"type": "number"},
            "classes": {"type": "object", "additionalProperties": {"type": "integer"}},
            "latency_ms": {"type": "object", "properties": {
                "mean": {"type": "number", "nullable": true},
                "p50": {"type": "number", "nullable": true},
                "p90": {"type": "number", "nullable": true},
                "p99": {"type": "number", "nullable": true}
            }},
            "histogram": {"type": "array", "items": {"type": "object", "properties": {
                "le_us": {"type": "integer"}, "count": {"type": "integer"}
            }}}
        }
    });
    m.insert(
        "ReleaseState".into(),
        json!({
            "type": "object",
            "required": ["id", "target", "candidate", "split", "state", "version"],
            "additionalProperties": true,
            "description": "the release as stored (docs/releases.md), its state (running, \
                promoted, rolled_back) and each side's counters",
            "properties": {
                "id": {"type": "string"},
                "target": {"type": "string", "description": "routes/ID or modules/ID"},
                "candidate": {"type": "object"},
                "split": {"type": "object"},
                "guard": {"type": "object"},
                "state": {"type": "string", "enum": ["running", "promoted", "rolled_back"]},
                "since_version": {"type": "integer"},
                "ended_version": {"type": "integer"},
                "ended_by": {"type": "string"},
                "reason": {"type": "string"},
                "counters": {"type": "object", "properties": {
                    "stable": side.clone(), "candidate": side
                }},
                "version": {"type": "integer"}
            }
        }),
    );
    m
}
