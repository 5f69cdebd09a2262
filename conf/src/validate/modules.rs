//! Module and consumer checks that need no knowledge of a kind's fields: ids, duplicates,
//! known kinds, and the references routes make to modules.
//!
//! A kind's own fields are checked by the business layer when it compiles the module (it owns
//! their types); everything that only needs names is checked here, so `gatehouse check` and the
//! admin API report reference problems with the same paths as every other config error.

use super::Errors;
use crate::model::{ConsumerSpec, ModuleSpec, Route, MODULE_KINDS};
use std::collections::{HashMap, HashSet};

/// Checks `[[modules]]` entries; returns id → (index, global) of the modules with a valid,
/// unique id, for the route checks.
pub(super) fn check_modules<'a>(
    e: &mut Errors,
    modules: &'a [ModuleSpec],
) -> HashMap<&'a str, (usize, bool)> {
    let mut ids: HashMap<&str, (usize, bool)> = HashMap::new();
    for (i, m) in modules.iter().enumerate() {
        let p = format!("modules[{i}]");
        e.id(&format!("{p}.id"), &m.id);
        if !m.id.is_empty() {
            if let Some((j, _)) = ids.get(m.id.as_str()) {
                e.push(
                    format!("{p}.id"),
                    format!("duplicate id {:?} (also modules[{j}])", m.id),
                );
            } else {
                ids.insert(m.id.as_str(), (i, m.global));
            }
        }
        if !MODULE_KINDS.contains(&m.kind.as_str()) {
            e.push(
                format!("{p}.kind"),
                format!(
                    "unknown module kind {:?} (known: {})",
                    m.kind,
                    MODULE_KINDS.join(", ")
                ),
            );
        }
    }
    ids
}

/// Checks `[[consumers]]` ids (their credentials are checked by the business layer).
pub(super) fn check_consumers(e: &mut Errors, consumers: &[ConsumerSpec]) {
    let mut ids: HashSet<&str> = HashSet::new();
    for (i, c) in consumers.iter().enumerate() {
        let p = format!("consumers[{i}].id");
        e.id(&p, &c.id);
        if !c.id.is_empty() && !ids.insert(c.id.as_str()) {
            e.push(p, format!("duplicate id {:?}", c.id));
        }
    }
}

/// Each `routes[i].modules[j]` names an existing, non-global module, at most once per route.
pub(super) fn check_route_modules(
    e: &mut Errors,
    routes: &[Route],
    modules: &HashMap<&str, (usize, bool)>,
) {
    for (i, r) in routes.iter().enumerate() {
        for (j, id) in r.modules.iter().enumerate() {
            let p = format!("routes[{i}].modules[{j}]");
            match modules.get(id.as_str()) {
                None => e.push(p, format!("no module named {id:?}")),
                Some((k, true)) => e.push(
                    p,
                    format!(
                        "module {id:?} (modules[{k}]) is global and already applies to every \
                         route"
                    ),
                ),
                Some(_) => {
                    if let Some(first) = r.modules[..j].iter().position(|x| x == id) {
                        e.push(
                            p,
                            format!("{id:?} is listed twice (also routes[{i}].modules[{first}])"),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, ConfigError};

    fn errors(text: &str) -> Vec<String> {
        let base = "[[upstreams]]\nid = \"u\"\nnodes = [{ addr = \"127.0.0.1:9001\" }]\n";
        let c = Config::from_toml_str(&format!("{base}{text}"))
            .unwrap_or_else(|e| panic!("parse failed: {e:?}"));
        c.validate().iter().map(ConfigError::to_string).collect()
    }

    #[test]
    fn modules_consumers_and_references_are_valid() {
        let errs = errors(
            r#"
            [[modules]]
            id = "edge"
            kind = "ip_list"
            global = true
            deny = ["203.0.113.0/24"]
            [[modules]]
            id = "limit"
            kind = "rate_limit"
            rate = 5
            [[consumers]]
            id = "acme"
            key_auth = { key = "0123456789abcdef" }
            [[routes]]
            id = "r"
            paths = ["/*"]
            upstream = "u"
            modules = ["limit"]
            "#,
        );
        assert!(errs.is_empty(), "{errs:#?}");
    }

    #[test]
    fn every_reference_problem_is_named() {
        let errs = errors(
            r#"
            [[modules]]
            id = "a"
            kind = "waf"
            [[modules]]
            id = "a"
            kind = "waf"
            [[modules]]
            id = "g"
            kind = "cors"
            global = true
            [[modules]]
            id = "bad id"
            kind = "firewall"
            [[consumers]]
            id = "c"
            [[consumers]]
            id = "c"
            [[routes]]
            id = "r0"
            paths = ["/a"]
            upstream = "u"
            [[routes]]
            id = "r1"
            paths = ["/b"]
            upstream = "u"
            modules = ["x", "g", "a", "a"]
            "#,
        );
        let want = [
            "modules[1].id: duplicate id \"a\" (also modules[0])",
            "modules[3].id: invalid id \"bad id\" (letters, digits, '_', '.' and '-' only)",
            "consumers[1].id: duplicate id \"c\"",
            "routes[1].modules[0]: no module named \"x\"",
            "routes[1].modules[1]: module \"g\" (modules[2]) is global and already applies to \
             every route",
            "routes[1].modules[3]: \"a\" is listed twice (also routes[1].modules[2])",
        ];
        for w in want {
            assert!(errs.iter().any(|e| e == w), "missing {w:?} in {errs:#?}");
        }
        assert!(
            errs.iter()
                .any(|e| e.starts_with("modules[3].kind: unknown module kind \"firewall\"")),
            "{errs:#?}"
        );
        assert_eq!(errs.len(), want.len() + 1, "{errs:#?}");
    }
}
