//! The handlers of the admin routes: reads answer from the published snapshot without waiting
//! for a writer; PUT and DELETE turn the request into an [`Edit`] for [`State::change`].

use super::answer::Answer;
use super::router::{Params, Req};
use super::write::Edit;
use super::State;
use conf::store::kinds;
use serde_json::{json, Map, Value};

/// Audit records per page when `limit` is not given, and the most a page may hold.
const AUDIT_PAGE: usize = 100;
const AUDIT_PAGE_MAX: usize = 1000;

/// `resource` (an object) with the config `version` added.
pub fn with_version(resource: &Value, version: u64) -> Value {
    let mut v = resource.clone();
    if let Value::Object(m) = &mut v {
        m.insert("version".into(), json!(version));
    }
    v
}

fn kind_id<'a>(p: &Params<'a>) -> Option<(&'static str, &'a str)> {
    Some((p.kind?, p.id?))
}

fn not_found(kind: &str, id: &str) -> Answer {
    Answer::error(404, "not_found", format!("no {kind} named {id:?}"), "")
}

pub fn healthz(state: &State, _: &Req, _: &Params) -> Answer {
    let v = state.current().version;
    Answer::json(200, &json!({"status": "serving", "version": v}))
}

/// `/metrics`: every worker's counters, summed here on the admin thread, and the upstreams'
/// shared health tables.
pub fn metrics(state: &State, _: &Req, _: &Params) -> Answer {
    let mut o = crate::stats::render();
    crate::stats_health::render(&mut o, &state.current());
    Answer::text(200, o.into_bytes(), "text/plain; version=0.0.4")
}

pub fn config(state: &State, _: &Req, _: &Params) -> Answer {
    let snap = state.current();
    let mut v = serde_json::to_value(&snap.config).unwrap_or_else(|_| Value::Object(Map::new()));
    if let Value::Object(m) = &mut v {
        m.insert("version".into(), json!(snap.version));
    }
    Answer::json(200, &v)
}

pub fn audit(state: &State, req: &Req, _: &Params) -> Answer {
    let limit = match req.query_param("limit") {
        None => AUDIT_PAGE,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=AUDIT_PAGE_MAX).contains(&n) => n,
            _ => {
                return Answer::error(
                    400,
                    "invalid",
                    format!("must be a number from 1 to {AUDIT_PAGE_MAX}"),
                    "limit",
                )
            }
        },
    };
    let version = state.current().version;
    match state.store.read_audit(limit) {
        Ok(items) => Answer::json(200, &json!({"items": items, "version": version})),
        Err(e) => Answer::error(500, "store_failed", e.to_string(), ""),
    }
}

pub fn list(state: &State, _: &Req, p: &Params) -> Answer {
    let Some(kind) = p.kind else {
        return Answer::error(404, "no_such_path", "no kind", "");
    };
    let snap = state.current();
    let res = kinds::resources_of(&snap.config);
    Answer::json(
        200,
        &json!({"items": kinds::items(&res, kind), "version": snap.version}),
    )
}

pub fn get(state: &State, _: &Req, p: &Params) -> Answer {
    let Some((kind, id)) = kind_id(p) else {
        return Answer::error(404, "no_such_path", "no kind", "");
    };
    let snap = state.current();
    let res = kinds::resources_of(&snap.config);
    match kinds::find(&res, kind, id) {
        Some((_, v)) => Answer::json(200, &with_version(v, snap.version)),
        None => not_found(kind, id),
    }
}

/// A PUT body: UTF-8 JSON, an object, whose `id` is the path's (filled in when left out;
/// a different one is a 400). The path names the resource.
pub(super) fn body_object(req: &Req, id: &str) -> Result<Map<String, Value>, Answer> {
    let Ok(text) = std::str::from_utf8(req.body) else {
        return Err(Answer::error(
            400,
            "invalid_json",
            "the body is not UTF-8",
            "",
        ));
    };
    let body: Value = match conf::parse_json(text, "") {
        Ok(v) => v,
        Err(e) => return Err(Answer::error(400, "invalid_json", e.message, &e.path)),
    };
    let Value::Object(mut obj) = body else {
        return Err(Answer::error(
            400,
            "invalid",
            "the body must be a JSON object",
            "",
        ));
    };
    match obj.get("id") {
        None => {
            obj.insert("id".into(), json!(id));
        }
        Some(Value::String(s)) if s == id => {}
        Some(_) => {
            return Err(Answer::error(
                400,
                "invalid",
                format!("must equal the id in the path ({id:?})"),
                "id",
            ))
        }
    }
    Ok(obj)
}

pub fn put(state: &State, req: &Req, p: &Params) -> Answer {
    let Some((kind, id)) = kind_id(p) else {
        return Answer::error(404, "no_such_path", "no kind", "");
    };
    let obj = match body_object(req, id) {
        Ok(o) => o,
        Err(a) => return a,
    };
    match kinds::canonical(kind, &Value::Object(obj)) {
        Ok(item) => state.change(req, kind, id, Edit::Put(item)),
        Err(e) => Answer::error(400, "invalid", e.message, &e.path),
    }
}

pub fn delete(state: &State, req: &Req, p: &Params) -> Answer {
    match kind_id(p) {
        Some((kind, id)) => state.change(req, kind, id, Edit::Delete),
        None => Answer::error(404, "no_such_path", "no kind", ""),
    }
}

/// Pieces shared with the write path.
pub(super) fn absent(kind: &str, id: &str) -> Answer {
    not_found(kind, id)
}
