use super::*;
use serde_json::json;

const BASE: &str = r#"
[[upstreams]]
id = "u"
nodes = [{ addr = "127.0.0.1:9" }]
[[upstreams]]
id = "v"
nodes = [{ addr = "127.0.0.1:10" }]
[[modules]]
id = "lim"
kind = "rate_limit"
rate = 5
[[modules]]
id = "gate"
kind = "ip_list"
global = true
deny = ["203.0.113.0/24"]
[[routes]]
id = "r"
paths = ["/r/*"]
upstream = "u"
modules = ["lim"]
[[routes]]
id = "s"
paths = ["/s"]
upstream = "u"
"#;

fn with_release(extra: &str) -> Vec<String> {
    let c = Config::from_toml_str(&format!("{BASE}{extra}")).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    check(&c).iter().map(|e| e.to_string()).collect()
}

fn has(errs: &[String], prefix: &str) {
    assert!(
        errs.iter().any(|e| e.starts_with(prefix)),
        "{prefix}: {errs:#?}"
    );
}

#[test]
fn a_route_release_with_a_header_split_is_valid() {
    let errs = with_release(
        r#"
[[releases]]
id = "canary"
target = "routes/r"
candidate = { id = "r", paths = ["/r/*"], upstream = "v", strip_prefix = true }
split = { header = "X-Canary", values = ["1"] }
guard = { window_ms = 5000 }
"#,
    );
    assert!(errs.is_empty(), "{errs:#?}");
}

#[test]
fn a_module_release_with_a_percent_split_is_valid() {
    let errs = with_release(
        r#"
[[releases]]
id = "m"
target = "modules/lim"
candidate = { id = "lim", kind = "rate_limit", rate = 50 }
split = { percent = 12.5, by = "header", name = "X-User" }
"#,
    );
    assert!(errs.is_empty(), "{errs:#?}");
}

#[test]
fn targets_must_exist_and_carry_one_release() {
    let errs = with_release(
        r#"
[[releases]]
id = "a"
target = "routes/missing"
candidate = { id = "missing", paths = ["/x"], upstream = "u" }
split = { ips = ["10.0.0.0/8"] }
[[releases]]
id = "b"
target = "upstreams/u"
candidate = {}
split = { ips = ["10.0.0.0/8"] }
[[releases]]
id = "c"
target = "routes/s"
candidate = { id = "s", paths = ["/s"], upstream = "v" }
split = { ips = ["10.0.0.0/8"] }
[[releases]]
id = "c"
target = "routes/s"
candidate = { id = "s", paths = ["/s"], upstream = "v" }
split = { ips = ["10.0.0.0/8"] }
"#,
    );
    has(&errs, "releases[0].target: no route named \"missing\"");
    has(&errs, "releases[1].target: must be");
    has(&errs, "releases[3].id: duplicate release id");
    has(
        &errs,
        "releases[3].target: routes/s is already under release \"c\"",
    );
}

#[test]
fn splits_take_exactly_one_mode_and_the_fields_it_needs() {
    let errs = with_release(
        r#"
[[releases]]
id = "a"
target = "routes/s"
candidate = { id = "s", paths = ["/s"], upstream = "v" }
split = { percent = 10, header = "X" }
[[releases]]
id = "b"
target = "routes/r"
candidate = { id = "r", paths = ["/r/*"], upstream = "v" }
split = { percent = 101, by = "cookie" }
[[releases]]
id = "c"
target = "modules/lim"
candidate = { id = "lim", kind = "rate_limit", rate = 6 }
split = { values = ["x"] }
"#,
    );
    has(&errs, "releases[0].split: takes only one");
    has(
        &errs,
        "releases[1].split.percent: must be between 0 and 100",
    );
    has(&errs, "releases[1].split.name: is required");
    has(&errs, "releases[2].split: needs one of");
    has(&errs, "releases[2].split.values: is only for");
}

#[test]
fn a_route_candidate_keeps_what_the_route_matches() {
    let errs = with_release(
        r#"
[[releases]]
id = "a"
target = "routes/r"
candidate = { id = "r", paths = ["/other"], methods = ["GET"], upstream = "v" }
split = { header = "X" }
"#,
    );
    has(&errs, "releases[0].candidate.paths: must equal the route's");
    has(
        &errs,
        "releases[0].candidate.methods: must equal the route's",
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
}

#[test]
fn candidates_are_read_as_their_kind_and_validated_as_promoted() {
    let errs = with_release(
        r#"
[[releases]]
id = "a"
target = "routes/r"
candidate = { id = "r", paths = ["/r/*"], upstream = "nope" }
split = { header = "X" }
[[releases]]
id = "b"
target = "routes/s"
candidate = { id = "s", paths = ["/s"], upstream = "u", bogus = 1 }
split = { header = "X" }
[[releases]]
id = "c"
target = "modules/lim"
candidate = { id = "other", kind = "rate_limit", rate = 6 }
split = { header = "X" }
"#,
    );
    has(&errs, "releases[0].candidate.upstream:");
    has(&errs, "releases[1].candidate.bogus:");
    has(&errs, "releases[2].candidate.id: must be the target's id");
}

#[test]
fn module_candidates_keep_kind_and_scope_and_global_ip_lists_are_refused() {
    let errs = with_release(
        r#"
[[releases]]
id = "a"
target = "modules/lim"
candidate = { id = "lim", kind = "waf", global = true }
split = { header = "X" }
[[releases]]
id = "b"
target = "modules/gate"
candidate = { id = "gate", kind = "ip_list", global = true, deny = ["198.51.100.0/24"] }
split = { header = "X" }
"#,
    );
    has(
        &errs,
        "releases[0].candidate.kind: must stay \"rate_limit\"",
    );
    has(&errs, "releases[0].candidate.global: must stay false");
    has(
        &errs,
        "releases[1].target: a global ip_list runs before routing",
    );
}

#[test]
fn guards_are_bounded() {
    let errs = with_release(
        r#"
[[releases]]
id = "a"
target = "routes/r"
candidate = { id = "r", paths = ["/r/*"], upstream = "v" }
split = { header = "X" }
guard = { window_ms = 10, min_requests = 0, error_rate_margin = 150.0, interval_ms = 5 }
"#,
    );
    for f in [
        "window_ms",
        "min_requests",
        "error_rate_margin",
        "interval_ms",
    ] {
        has(&errs, &format!("releases[0].guard.{f}:"));
    }
}

#[test]
fn targets_parse() {
    assert_eq!(parse_target("routes/a"), Some((TargetKind::Route, "a")));
    assert_eq!(
        parse_target("modules/m-1"),
        Some((TargetKind::Module, "m-1"))
    );
    assert_eq!(parse_target("routes/"), None);
    assert_eq!(parse_target("routes/a/b"), None);
    assert_eq!(parse_target("routes"), None);
    assert_eq!(parse_target("consumers/a"), None);
}

#[test]
fn releases_round_trip_through_json_and_toml() {
    let c = Config::from_toml_str(&format!(
        "{BASE}[[releases]]\nid = \"a\"\ntarget = \"routes/r\"\n\
         candidate = {{ id = \"r\", paths = [\"/r/*\"], upstream = \"v\" }}\n\
         split = {{ percent = 10, by = \"ip\" }}\n"
    ))
    .unwrap();
    let r = &c.releases[0];
    assert_eq!(r.candidate["upstream"], json!("v"));
    assert_eq!(r.split.by, Some(SplitKey::Ip));
    let back: Config = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    assert!(crate::store::kinds::active_kinds().contains(&"releases"));
}

#[test]
fn thrift_routes_cannot_be_released_yet() {
    let errs = with_release(
        r#"
[[upstreams]]
id = "t"
protocol = "thrift"
nodes = [{ addr = "127.0.0.1:11" }]
[[releases]]
id = "a"
target = "routes/s"
candidate = { id = "s", paths = ["/s"], upstream = "t" }
split = { header = "X" }
"#,
    );
    has(
        &errs,
        "releases[0].target: releases of Thrift routes are not supported yet",
    );
}
