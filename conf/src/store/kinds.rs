//! The resource kinds as data: which `Config` arrays are resources (`routes`, `upstreams`, ...),
//! which fields of one kind name resources of another, and the generic operations the store and
//! the admin API need on them (list, find, replace, remove, who refers to what).
//!
//! Everything goes through the serde form of [`Config`] (a JSON object whose resource arrays
//! are named like the kinds), so a new `Vec<_>` in the model becomes an admin resource by being
//! listed in [`KINDS`], and a new reference by one row in [`REFS`]; no code here names a
//! resource type.

use crate::error::{parse_json, ConfigError};
use crate::model::Config;
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// Every resource kind of CONTRACT.md, in the order their arrays appear in a config. A kind
/// is served only once the model has its array ([`active_kinds`]); the name is both the URL
/// segment (`/admin/v1/routes`) and the `Config` field (`config.routes`).
pub const KINDS: &[&str] = &[
    "upstreams",
    "services",
    "modules",
    "consumers",
    "routes",
    "certificates",
    "releases",
];

/// A field of one kind that names a resource of another kind by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ref {
    /// Kind holding the field.
    pub from: &'static str,
    /// Top-level field of that kind: a string id, an array of string ids, or an array of
    /// objects each with a string `id`.
    pub field: &'static str,
    /// Kind the id belongs to.
    pub to: &'static str,
}

/// Every cross-kind reference. A DELETE of a resource something here points at is refused
/// (409), and so is a PUT that would point at a missing resource. Rows for kinds the model
/// does not have yet are harmless: they match nothing.
pub const REFS: &[Ref] = &[
    Ref {
        from: "routes",
        field: "upstream",
        to: "upstreams",
    },
    Ref {
        from: "routes",
        field: "modules",
        to: "modules",
    },
    Ref {
        from: "routes",
        field: "service",
        to: "services",
    },
];

/// The resource arrays of a config, by kind: `{"routes": [{...}], "upstreams": [...]}`.
pub type Resources = Map<String, Value>;

/// The kinds of [`KINDS`] that the model has an array for, in [`KINDS`] order.
///
/// Found by asking the model itself (`Config` denies unknown fields, so `{"modules": []}`
/// parses only once `modules` exists), hence right whatever serde attributes the fields carry.
pub fn active_kinds() -> &'static [&'static str] {
    static ACTIVE: OnceLock<Vec<&'static str>> = OnceLock::new();
    ACTIVE.get_or_init(|| {
        KINDS
            .iter()
            .copied()
            .filter(|k| {
                let doc = format!("{{\"{k}\": []}}");
                serde_json::from_str::<Config>(&doc).is_ok()
            })
            .collect()
    })
}

/// The static name of an active kind, `None` for anything else (`config`, typos).
pub fn kind_named(name: &str) -> Option<&'static str> {
    active_kinds().iter().copied().find(|k| *k == name)
}

/// The resource arrays of `config`.
pub fn resources_of(config: &Config) -> Resources {
    let mut out = Map::new();
    // Serializing plain data structs cannot fail; an empty result would still be a valid set.
    if let Ok(Value::Object(mut all)) = serde_json::to_value(config) {
        for k in active_kinds() {
            let items = all.remove(*k).unwrap_or_else(|| Value::Array(Vec::new()));
            out.insert((*k).to_string(), items);
        }
    }
    out
}

/// `base` with its resource arrays replaced by `res` (kinds absent from `res` become empty).
/// Not validated: parse errors name the field (`routes[2].paths`), like the file's.
pub fn with_resources(base: &Config, res: &Resources) -> Result<Config, ConfigError> {
    let mut all = match serde_json::to_value(base) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for k in active_kinds() {
        let items = res
            .get(*k)
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new()));
        all.insert((*k).to_string(), items);
    }
    // Through text so that serde_path_to_error can name the failing field.
    let text = Value::Object(all).to_string();
    parse_json(&text, "")
}

/// The items of one kind (empty for a kind `res` does not hold).
pub fn items<'a>(res: &'a Resources, kind: &str) -> &'a [Value] {
    match res.get(kind) {
        Some(Value::Array(a)) => a,
        _ => &[],
    }
}

/// The `id` of a resource value, if it has a string one.
pub fn id_of(item: &Value) -> Option<&str> {
    item.get("id").and_then(Value::as_str)
}

/// Index and value of the resource `kind/id`.
pub fn find<'a>(res: &'a Resources, kind: &str, id: &str) -> Option<(usize, &'a Value)> {
    items(res, kind)
        .iter()
        .enumerate()
        .find(|(_, v)| id_of(v) == Some(id))
}

/// Replaces `kind/id` by `item` in place, or appends it; returns its index and whether it
/// existed.
pub fn upsert(res: &mut Resources, kind: &str, item: Value) -> (usize, bool) {
    let id = id_of(&item).map(str::to_string);
    let arr = res
        .entry(kind.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !arr.is_array() {
        *arr = Value::Array(Vec::new());
    }
    let Value::Array(list) = arr else {
        return (0, false);
    };
    match list
        .iter()
        .position(|v| id.is_some() && id_of(v) == id.as_deref())
    {
        Some(i) => {
            if let Some(slot) = list.get_mut(i) {
                *slot = item;
            }
            (i, true)
        }
        None => {
            list.push(item);
            (list.len() - 1, false)
        }
    }
}

/// Removes `kind/id`; returns whether it was there.
pub fn remove(res: &mut Resources, kind: &str, id: &str) -> bool {
    match res.get_mut(kind) {
        Some(Value::Array(list)) => {
            let before = list.len();
            list.retain(|v| id_of(v) != Some(id));
            list.len() != before
        }
        _ => false,
    }
}

/// The ids a reference field holds: a string, strings, or objects with an `id`.
fn ids_in(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().or_else(|| id_of(x)))
            .collect(),
        _ => Vec::new(),
    }
}

/// A resource that refers to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Referrer {
    /// Config path of the referring field: `routes[3].upstream`.
    pub path: String,
    pub kind: &'static str,
    pub id: String,
}

/// Every resource whose reference fields name `kind/id`.
pub fn referrers(res: &Resources, kind: &str, id: &str) -> Vec<Referrer> {
    let mut out = Vec::new();
    for r in REFS.iter().filter(|r| r.to == kind) {
        for (i, item) in items(res, r.from).iter().enumerate() {
            let named = item.get(r.field).map(ids_in).unwrap_or_default();
            if named.contains(&id) {
                out.push(Referrer {
                    path: format!("{}[{i}].{}", r.from, r.field),
                    kind: r.from,
                    id: id_of(item).unwrap_or("").to_string(),
                });
            }
        }
    }
    out
}

/// A reference from `item` (of `kind`) to a resource that `res` does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dangling {
    /// Field of `item` holding it.
    pub field: &'static str,
    pub to: &'static str,
    pub id: String,
}

/// The first reference of `item` (a resource of `kind`) to something absent from `res`.
pub fn dangling(res: &Resources, kind: &str, item: &Value) -> Option<Dangling> {
    for r in REFS.iter().filter(|r| r.from == kind) {
        let Some(v) = item.get(r.field) else {
            continue;
        };
        for id in ids_in(v) {
            // An empty id is a validation error of its own (400), not a reference.
            if !id.is_empty() && find(res, r.to, id).is_none() {
                return Some(Dangling {
                    field: r.field,
                    to: r.to,
                    id: id.to_string(),
                });
            }
        }
    }
    None
}

/// Parses one resource body of `kind` with the model's types, defaults filled in: the stored
/// form. Errors name the field relative to the body (`paths[1]`, `""` for the body itself).
pub fn canonical(kind: &str, body: &Value) -> Result<Value, ConfigError> {
    let prefix = format!("{kind}[0]");
    let text = serde_json::json!({ kind: [body] }).to_string();
    let config: Config = parse_json(&text, "").map_err(|mut e| {
        e.path = relative_path(&e.path, &prefix).unwrap_or_default();
        e
    })?;
    let mut res = resources_of(&config);
    match res.get_mut(kind) {
        Some(Value::Array(list)) if list.len() == 1 => Ok(list.swap_remove(0)),
        _ => Err(ConfigError::new(
            "",
            format!("{kind} is not a resource kind"),
        )),
    }
}

/// `path` relative to `prefix` (`routes[2].paths[0]` under `routes[2]` is `paths[0]`), or `None`
/// when `path` lies elsewhere.
pub fn relative_path(path: &str, prefix: &str) -> Option<String> {
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some(String::new())
    } else if let Some(r) = rest.strip_prefix('.') {
        Some(r.to_string())
    } else if rest.starts_with('[') {
        Some(rest.to_string())
    } else {
        None // `routes[2]` is not a prefix of `routes[23]`
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Config {
        Config::from_toml_str(
            "[[upstreams]]\nid = \"u\"\nnodes = [{ addr = \"127.0.0.1:9\" }]\n\
             [[upstreams]]\nid = \"v\"\nnodes = [{ addr = \"127.0.0.1:10\" }]\n\
             [[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"u\"\n",
        )
        .unwrap()
    }

    #[test]
    fn every_array_of_the_model_is_a_kind() {
        // A new resource array in the model must be listed in KINDS to be served.
        let Value::Object(all) = serde_json::to_value(Config::default()).unwrap() else {
            panic!("config is not an object");
        };
        for (k, v) in &all {
            if v.is_array() {
                assert!(KINDS.contains(&k.as_str()), "{k} is missing from KINDS");
                assert!(active_kinds().contains(&k.as_str()), "{k} not active");
            }
        }
        assert!(active_kinds().contains(&"routes") && active_kinds().contains(&"upstreams"));
        assert_eq!(kind_named("routes"), Some("routes"));
        assert_eq!(kind_named("server"), None);
        assert_eq!(kind_named("releases"), Some("releases"));
        assert_eq!(kind_named("bogus"), None);
    }

    #[test]
    fn refs_name_known_kinds() {
        for r in REFS {
            assert!(KINDS.contains(&r.from) && KINDS.contains(&r.to), "{r:?}");
        }
    }

    #[test]
    fn resources_round_trip_through_a_config() {
        let c = sample();
        let res = resources_of(&c);
        assert_eq!(items(&res, "routes").len(), 1);
        assert_eq!(items(&res, "upstreams").len(), 2);
        let mut base = c.clone();
        base.routes.clear();
        base.upstreams.clear();
        assert_eq!(with_resources(&base, &res).unwrap(), c);
    }

    #[test]
    fn with_resources_names_the_bad_field() {
        let mut res = resources_of(&sample());
        upsert(
            &mut res,
            "routes",
            json!({"id": "x", "paths": 5, "upstream": "u"}),
        );
        let e = with_resources(&Config::default(), &res).unwrap_err();
        assert_eq!(e.path, "routes[1].paths");
    }

    #[test]
    fn upsert_replaces_in_place_or_appends() {
        let mut res = resources_of(&sample());
        let (i, existed) = upsert(&mut res, "upstreams", json!({"id": "v", "nodes": []}));
        assert_eq!((i, existed), (1, true));
        assert_eq!(items(&res, "upstreams")[1]["nodes"], json!([]));
        let (i, existed) = upsert(&mut res, "upstreams", json!({"id": "w", "nodes": []}));
        assert_eq!((i, existed), (2, false));
        assert!(remove(&mut res, "upstreams", "w"));
        assert!(!remove(&mut res, "upstreams", "w"));
        assert!(find(&res, "upstreams", "w").is_none());
        assert_eq!(find(&res, "upstreams", "u").map(|(i, _)| i), Some(0));
    }

    #[test]
    fn referrers_and_dangling_references() {
        let res = resources_of(&sample());
        let who = referrers(&res, "upstreams", "u");
        assert_eq!(
            who,
            vec![Referrer {
                path: "routes[0].upstream".into(),
                kind: "routes",
                id: "r".into()
            }]
        );
        assert!(referrers(&res, "upstreams", "v").is_empty());
        assert!(referrers(&res, "routes", "r").is_empty());
        let bad = json!({"id": "r2", "paths": ["/x"], "upstream": "nope"});
        assert_eq!(
            dangling(&res, "routes", &bad),
            Some(Dangling {
                field: "upstream",
                to: "upstreams",
                id: "nope".into()
            })
        );
        let good = json!({"id": "r2", "paths": ["/x"], "upstream": "v"});
        assert_eq!(dangling(&res, "routes", &good), None);
        assert_eq!(ids_in(&json!(["a", {"id": "b"}, 3])), vec!["a", "b"]);
    }

    #[test]
    fn canonical_fills_defaults_and_names_fields_relative_to_the_body() {
        let v = canonical(
            "upstreams",
            &json!({"id": "u", "nodes": [{"addr": "1.2.3.4:5"}]}),
        )
        .unwrap();
        assert_eq!(v["nodes"][0]["weight"], json!(1));
        assert_eq!(v["max_idle"], json!(64));
        let e =
            canonical("routes", &json!({"id": "r", "paths": ["/"], "upstream": 7})).unwrap_err();
        assert_eq!(e.path, "upstream");
        let e =
            canonical("routes", &json!({"id": "r", "paths": [1], "upstream": "u"})).unwrap_err();
        assert_eq!(e.path, "paths[0]");
        let e = canonical("routes", &json!({"id": "r", "upstream": "u"})).unwrap_err();
        assert!(e.message.contains("paths"), "{e:?}");
        let e = canonical(
            "routes",
            &json!({"id": "r", "paths": [], "upstream": "u", "zz": 1}),
        )
        .unwrap_err();
        assert_eq!(e.path, "zz");
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_path("routes[2]", "routes[2]"), Some(String::new()));
        assert_eq!(
            relative_path("routes[2].a[1]", "routes[2]"),
            Some("a[1]".into())
        );
        assert_eq!(relative_path("routes[23].a", "routes[2]"), None);
        assert_eq!(relative_path("upstreams[2].a", "routes[2]"), None);
    }
}
