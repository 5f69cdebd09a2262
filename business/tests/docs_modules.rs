//! Every example in docs/modules/ is a real config: each page's ```toml blocks are loaded and
//! built into a snapshot the way the gateway loads its file (upstreams the example only names
//! are added, `<PEM>` placeholders get the repository's test key), so the pages cannot drift
//! from the syntax and the checks the code applies.

use business::Snapshot;
use conf::Config;

const TEST_PEM: &str = include_str!("../src/modules/jwt/testdata/rsa2048_pub.pem");

const PAGES: &[(&str, &str)] = &[
    ("README", include_str!("../../docs/modules/README.md")),
    ("ip_list", include_str!("../../docs/modules/ip_list.md")),
    ("params", include_str!("../../docs/modules/params.md")),
    ("waf", include_str!("../../docs/modules/waf.md")),
    (
        "rate_limit",
        include_str!("../../docs/modules/rate_limit.md"),
    ),
    ("key_auth", include_str!("../../docs/modules/key_auth.md")),
    ("jwt", include_str!("../../docs/modules/jwt.md")),
    ("hmac_auth", include_str!("../../docs/modules/hmac_auth.md")),
    (
        "sign_check",
        include_str!("../../docs/modules/sign_check.md"),
    ),
    ("consumers", include_str!("../../docs/modules/consumers.md")),
    ("cors", include_str!("../../docs/modules/cors.md")),
    ("headers", include_str!("../../docs/modules/headers.md")),
    ("redirect", include_str!("../../docs/modules/redirect.md")),
    (
        "circuit_breaker",
        include_str!("../../docs/modules/circuit_breaker.md"),
    ),
    ("decrypt", include_str!("../../docs/modules/decrypt.md")),
];

/// The ```toml blocks of a page, joined.
fn toml_blocks(page: &str) -> String {
    page.split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The example as a full config: every upstream a route names exists.
fn as_config(name: &str, block: &str) -> Config {
    let text = block.replace("<PEM>", &TEST_PEM.replace('\n', "\\n"));
    let mut root: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: not TOML: {e}"));
    let named: Vec<String> = root
        .get("routes")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("upstream")?.as_str().map(str::to_owned))
        .collect();
    let ups = root
        .entry("upstreams")
        .or_insert_with(|| toml::Value::Array(Vec::new()));
    if let Some(list) = ups.as_array_mut() {
        for (i, u) in named.iter().enumerate() {
            let defined = list
                .iter()
                .any(|x| x.get("id").and_then(|v| v.as_str()) == Some(u));
            if !defined {
                let node = format!("[[nodes]]\naddr = \"127.0.0.1:{}\"\n", 9000 + i);
                let mut t: toml::Table = toml::from_str(&node).unwrap_or_default();
                t.insert("id".into(), toml::Value::String(u.clone()));
                list.push(toml::Value::Table(t));
            }
        }
    }
    let text = toml::to_string(&root).unwrap_or_else(|e| panic!("{name}: {e}"));
    Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{name}: {e:?}\n{text}"))
}

#[test]
fn every_documented_example_loads_and_builds() {
    for (name, page) in PAGES {
        let block = toml_blocks(page);
        assert!(!block.trim().is_empty(), "{name}: no toml example");
        let config = as_config(name, &block);
        let result = Snapshot::build(config, 1);
        if let Err(errs) = result {
            panic!("{name}: the documented example does not build: {errs:#?}");
        }
    }
}

#[test]
fn every_kind_has_a_page_listed_in_the_index() {
    let index = PAGES[0].1;
    // The side-service call kinds are documented in business/src/calls.rs for now.
    let pending = ["auth_service", "risk", "device_fingerprint"];
    for kind in conf::MODULE_KINDS {
        assert!(
            pending.contains(kind) || PAGES.iter().any(|(n, _)| n == kind),
            "no page for kind {kind}"
        );
        assert!(
            index.contains(&format!("`{kind}`")),
            "README does not list {kind}"
        );
    }
}
