//! The admin API without sockets: requests go straight to the router, with a real directory
//! store and a stand-in for the workers.

use super::router::Req;
use super::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Tmp(std::path::PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Fixture {
    state: State,
    published: Arc<AtomicUsize>,
    workers_ok: Arc<AtomicBool>,
    _dir: Tmp,
}

const BASE: &str = "[[upstreams]]\nid = \"u\"\nnodes = [{ addr = \"127.0.0.1:9\" }]\n\
                    [[routes]]\nid = \"r\"\npaths = [\"/a\"]\nupstream = \"u\"\n";

fn fixture(extra: &str) -> Fixture {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Tmp(std::env::temp_dir().join(format!(
        "gatehouse-admin-unit-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )));
    let text = format!(
        "[server]\nstate_dir = \"{}\"\n{extra}\n{BASE}",
        dir.0.display()
    );
    let config = Config::from_toml_str(&text).unwrap();
    let store = conf::store::open(&config).unwrap();
    let joined = conf::store::join(config, store.as_ref(), Snapshot::build).unwrap();
    let published = Arc::new(AtomicUsize::new(0));
    let workers_ok = Arc::new(AtomicBool::new(true));
    let (p, ok) = (published.clone(), workers_ok.clone());
    let publish: Publish = Box::new(move |_, _| {
        p.fetch_add(1, Ordering::SeqCst);
        ok.load(Ordering::SeqCst)
    });
    Fixture {
        state: State::new(joined.built, store, publish),
        published,
        workers_ok,
        _dir: dir,
    }
}

impl Fixture {
    fn ask_with(&self, method: &str, target: &str, body: &str, key: Option<&str>) -> (u16, Value) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let req = Req {
            method,
            path,
            query,
            body: body.as_bytes(),
            key: key.map(str::as_bytes),
            peer: "127.0.0.1:4000".parse().unwrap(),
        };
        let a = self.state.handle(&req);
        let v = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
        (a.status, v)
    }

    fn ask(&self, method: &str, target: &str, body: &str) -> (u16, Value) {
        self.ask_with(method, target, body, None)
    }
}

fn field(v: &Value) -> &str {
    v["error"]["field"].as_str().unwrap_or("<none>")
}

#[test]
fn create_read_replace_delete() {
    let f = fixture("");
    let (s, v) = f.ask("GET", "/admin/v1/routes", "");
    assert_eq!((s, v["version"].clone()), (200, json!(1)));
    assert_eq!(v["items"][0]["id"], "r");

    let (s, v) = f.ask(
        "PUT",
        "/admin/v1/routes/r2",
        r#"{"paths":["/b"],"upstream":"u"}"#,
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["id"], "r2");
    assert_eq!(v["version"], 2);
    assert_eq!(v["strip_prefix"], false, "defaults are filled in: {v}");
    assert_eq!(f.state.current().version, 2);
    assert_eq!(f.published.load(Ordering::SeqCst), 1);

    let (s, v) = f.ask("GET", "/admin/v1/routes/r2", "");
    assert_eq!(
        (s, v["version"].clone(), v["paths"][0].clone()),
        (200, json!(2), json!("/b"))
    );

    let body = r#"{"id":"r2","paths":["/c"],"upstream":"u"}"#;
    let (s, v) = f.ask("PUT", "/admin/v1/routes/r2", body);
    assert_eq!((s, v["version"].clone()), (200, json!(3)));
    // The same again changes nothing: no new version, nothing published.
    let (s, v) = f.ask("PUT", "/admin/v1/routes/r2", body);
    assert_eq!((s, v["version"].clone()), (200, json!(3)));
    assert_eq!(f.published.load(Ordering::SeqCst), 2);

    let (s, _) = f.ask("DELETE", "/admin/v1/routes/r2", "");
    assert_eq!(s, 204);
    let (s, v) = f.ask("GET", "/admin/v1/routes/r2", "");
    assert_eq!((s, v["error"]["code"].clone()), (404, json!("not_found")));
    let (s, _) = f.ask("DELETE", "/admin/v1/routes/r2", "");
    assert_eq!(s, 404);

    let (s, v) = f.ask("GET", "/admin/v1/config", "");
    assert_eq!((s, v["version"].clone()), (200, json!(4)));
    assert_eq!(v["routes"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["server"]["workers"], 0);

    // Every change is in the store and the audit log.
    let saved = f.state.store.load().unwrap().unwrap();
    assert_eq!(saved.version, 4);
    let audit = f.state.store.read_audit(10).unwrap();
    let seen: Vec<(&str, u64, u16)> = audit
        .iter()
        .map(|r| (r.method.as_str(), r.version, r.status))
        .collect();
    assert_eq!(
        seen,
        vec![("PUT", 2, 201), ("PUT", 3, 200), ("DELETE", 4, 204)]
    );
    assert_eq!(audit[0].path, "/admin/v1/routes/r2");
    assert_eq!(audit[0].who, "127.0.0.1:4000");
    let (s, v) = f.ask("GET", "/admin/v1/audit?limit=2", "");
    assert_eq!(s, 200);
    assert_eq!(v["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["items"][1]["version"], 4);
}

#[test]
fn invalid_bodies_name_the_field() {
    let f = fixture("");
    let cases: &[(&str, &str, &str)] = &[
        ("routes/x", r#"{"paths":"/b","upstream":"u"}"#, "paths"),
        (
            "routes/x",
            r#"{"paths":["/b"],"upstream":"u","methods":["get"]}"#,
            "methods[0]",
        ),
        ("routes/x", r#"{"paths":["b"],"upstream":"u"}"#, "paths[0]"),
        (
            "routes/x",
            r#"{"paths":["/b"],"upstream":"u","bogus":1}"#,
            "bogus",
        ),
        (
            "routes/x",
            r#"{"id":"y","paths":["/b"],"upstream":"u"}"#,
            "id",
        ),
        ("routes/x", r#"{"paths":["/b"],"upstream":"u""#, ""),
        ("routes/x", r#"[1]"#, ""),
        ("routes/bad id", r#"{"paths":["/b"],"upstream":"u"}"#, "id"),
        (
            "upstreams/v",
            r#"{"nodes":[{"addr":"nope"}]}"#,
            "nodes[0].addr",
        ),
        (
            "upstreams/v",
            r#"{"nodes":[{"addr":"127.0.0.1:1","weight":0}]}"#,
            "nodes[0].weight",
        ),
        // Conflicts with route r on the same path: reported on the new route.
        ("routes/x", r#"{"paths":["/a"],"upstream":"u"}"#, "paths[0]"),
        ("audit?limit=0", "", "limit"),
    ];
    for (target, body, want) in cases {
        let method = if target.starts_with("audit") {
            "GET"
        } else {
            "PUT"
        };
        let (s, v) = f.ask(method, &format!("/admin/v1/{target}"), body);
        assert_eq!(s, 400, "{target} {body}: {v}");
        assert_eq!(field(&v), *want, "{target} {body}: {v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(f.state.current().version, 1, "nothing was applied");
    assert_eq!(f.published.load(Ordering::SeqCst), 0);
}

#[test]
fn references_guard_deletes_and_puts() {
    let f = fixture("");
    let (s, v) = f.ask("DELETE", "/admin/v1/upstreams/u", "");
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "in_use");
    assert_eq!(field(&v), "routes[0].upstream");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("routes/r"),
        "{v}"
    );
    let (s, v) = f.ask(
        "PUT",
        "/admin/v1/routes/x",
        r#"{"paths":["/x"],"upstream":"nope"}"#,
    );
    assert_eq!((s, field(&v)), (409, "upstream"), "{v}");
    assert_eq!(v["error"]["code"], "dangling_reference");
    // Once nothing refers to it, the upstream goes.
    assert_eq!(f.ask("DELETE", "/admin/v1/routes/r", "").0, 204);
    assert_eq!(f.ask("DELETE", "/admin/v1/upstreams/u", "").0, 204);
    assert_eq!(f.state.current().version, 3);
}

#[test]
fn unknown_paths_methods_and_kinds() {
    let f = fixture("");
    for target in [
        "/admin/v1/bogus",
        "/admin/v1/routes/r/x",
        "/",
        "/admin/v2/routes",
    ] {
        let (s, v) = f.ask("GET", target, "");
        assert_eq!(
            (s, v["error"]["code"].clone()),
            (404, json!("no_such_path")),
            "{target}"
        );
    }
    let req = Req {
        method: "POST",
        path: "/admin/v1/routes/r",
        query: "",
        body: b"",
        key: None,
        peer: "127.0.0.1:1".parse().unwrap(),
    };
    let a = f.state.handle(&req);
    assert_eq!(a.status, 405);
    assert_eq!(a.allow.as_deref(), Some("GET, PUT, DELETE"));
    assert_eq!(f.ask("PUT", "/admin/v1/config", "{}").0, 405);
    assert_eq!(f.ask("HEAD", "/admin/v1/config", "").0, 200);
}

#[test]
fn the_key_guards_everything_but_healthz() {
    let f = fixture("[admin]\napi_key = \"s3cret\"\n");
    for target in ["/admin/v1/routes", "/admin/v1/config", "/admin/v1/nowhere"] {
        let (s, v) = f.ask("GET", target, "");
        assert_eq!(
            (s, v["error"]["code"].clone()),
            (401, json!("unauthorized")),
            "{target}"
        );
        assert_eq!(
            f.ask_with("GET", target, "", Some("s3cre")).0,
            401,
            "{target}"
        );
    }
    assert_eq!(
        f.ask_with("GET", "/admin/v1/routes", "", Some("s3cret")).0,
        200
    );
    assert_eq!(f.ask("GET", "/healthz", "").0, 200);
    let body = r#"{"paths":["/k"],"upstream":"u"}"#;
    assert_eq!(f.ask("PUT", "/admin/v1/routes/k", body).0, 401);
    assert_eq!(
        f.ask_with("PUT", "/admin/v1/routes/k", body, Some("s3cret"))
            .0,
        201
    );
    let audit = f.state.store.read_audit(10).unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].who.as_str(), audit[0].client.as_str()),
        ("api_key", "127.0.0.1:4000")
    );
}

#[test]
fn a_publish_not_confirmed_in_time_says_so_but_keeps_the_change() {
    let f = fixture("");
    f.workers_ok.store(false, Ordering::SeqCst);
    let (s, v) = f.ask(
        "PUT",
        "/admin/v1/routes/x",
        r#"{"paths":["/x"],"upstream":"u"}"#,
    );
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (503, json!("publish_timeout")),
        "{v}"
    );
    assert_eq!(f.state.current().version, 2);
    assert_eq!(f.state.store.load().unwrap().unwrap().version, 2);
}

#[test]
fn a_stopped_admin_refuses_changes() {
    let f = fixture("");
    f.state.writer.lock().stopped = true;
    let (s, v) = f.ask("DELETE", "/admin/v1/routes/r", "");
    assert_eq!((s, v["error"]["code"].clone()), (503, json!("stopping")));
    assert_eq!(f.ask("GET", "/admin/v1/routes/r", "").0, 200);
}

#[test]
fn a_frozen_admin_refuses_changes_with_upgrading_and_a_close_until_thawed() {
    let f = fixture("");
    f.state.writer.lock().frozen = true;
    let (s, v) = f.ask("DELETE", "/admin/v1/routes/r", "");
    assert_eq!((s, v["error"]["code"].clone()), (503, json!("upgrading")));
    assert_eq!(f.ask("GET", "/admin/v1/routes/r", "").0, 200);
    assert_eq!(f.state.current().version, 1);
    f.state.writer.lock().frozen = false;
    assert_eq!(f.ask("DELETE", "/admin/v1/routes/r", "").0, 204);
}
