//! Validation tests: each rule reported with its exact path, and all problems at once.

use crate::{Config, ConfigError};

const BASE: &str = r#"
[[upstreams]]
id = "demo"
nodes = [{ addr = "127.0.0.1:9001" }]
"#;

fn errors(extra: &str) -> Vec<String> {
    let text = format!("{BASE}{extra}");
    let c = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("parse failed: {e:?}"));
    c.validate().iter().map(ConfigError::to_string).collect()
}

fn assert_has(errs: &[String], want: &str) {
    assert!(
        errs.iter().any(|e| e == want),
        "missing {want:?} in {errs:#?}"
    );
}

#[test]
fn default_and_sample_configs_are_valid() {
    assert!(Config::default().validate().is_empty());
    let errs = errors(
        r#"
        [[routes]]
        id = "api"
        hosts = ["API.example.com", "*.example.org", "[::1]"]
        paths = ["/users/{id}", "/api/*"]
        methods = ["GET", "POST"]
        upstream = "demo"
        max_body_bytes = 1048576
        [[routes]]
        id = "all"
        paths = ["/*", "/"]
        upstream = "demo"
        "#,
    );
    assert!(errs.is_empty(), "{errs:#?}");
}

#[test]
fn examples_from_the_brief() {
    let errs = errors(
        r#"
        [limits]
        max_headers = 0
        [[upstreams]]
        id = "other"
        nodes = [{ addr = "127.0.0.1:1" }, { addr = "1.2.3" }]
        [[routes]]
        id = "api"
        paths = ["/a"]
        upstream = "demo"
        [[routes]]
        id = "api"
        paths = ["/b"]
        upstream = "demo"
        [[routes]]
        id = "r2"
        paths = ["/c"]
        upstream = "x"
        "#,
    );
    assert_has(&errs, "limits.max_headers: must be between 1 and 256");
    assert_has(
        &errs,
        "upstreams[1].nodes[1].addr: invalid socket address \"1.2.3\"",
    );
    assert_has(&errs, "routes[1].id: duplicate id \"api\"");
    assert_has(&errs, "routes[2].upstream: no upstream named \"x\"");
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

#[test]
fn every_number_is_range_checked() {
    let errs = errors(
        r#"
        [server]
        workers = 5000
        max_connections = 0
        drain_timeout_ms = 99999999
        max_memory_mb = 99999999999
        upgrade_timeout_ms = 0
        [limits]
        max_request_line = 10
        max_header_bytes = 10
        max_headers = 257
        header_timeout_ms = 0
        idle_timeout_ms = 0
        body_timeout_ms = 0
        send_timeout_ms = 0
        max_body_bytes = 99999999999999
        [[upstreams]]
        id = "u"
        nodes = [{ addr = "127.0.0.1:1", weight = 0 }, { addr = "127.0.0.1:2", weight = 1001 }]
        connect_timeout_ms = 0
        read_timeout_ms = 0
        max_idle = 10001
        idle_timeout_ms = 0
        max_requests = 0
        [[routes]]
        id = "r"
        paths = ["/"]
        upstream = "u"
        max_body_bytes = 99999999999999
        max_concurrent = 0
        "#,
    );
    for path in [
        "server.workers",
        "server.max_connections",
        "server.drain_timeout_ms",
        "server.max_memory_mb",
        "server.upgrade_timeout_ms",
        "limits.max_request_line",
        "limits.max_header_bytes",
        "limits.max_headers",
        "limits.header_timeout_ms",
        "limits.idle_timeout_ms",
        "limits.body_timeout_ms",
        "limits.send_timeout_ms",
        "limits.max_body_bytes",
        "upstreams[1].nodes[0].weight",
        "upstreams[1].nodes[1].weight",
        "upstreams[1].connect_timeout_ms",
        "upstreams[1].read_timeout_ms",
        "upstreams[1].max_idle",
        "upstreams[1].idle_timeout_ms",
        "upstreams[1].max_requests",
        "routes[0].max_body_bytes",
        "routes[0].max_concurrent",
    ] {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("{path}: must be between"))),
            "no range error for {path} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 22, "{errs:#?}");
}

#[test]
fn addresses_and_listeners() {
    let errs = errors(
        r#"
        [server]
        listen = ["0.0.0.0:8080", "127.0.0.1:8080", "nope", "127.0.0.1:0", "127.0.0.1:0"]
        state_dir = ""
        [admin]
        listen = "127.0.0.1:8080"
        api_key = "has space"
        [[upstreams]]
        id = "u"
        nodes = [{ addr = "10.0.0.1:80" }, { addr = "10.0.0.1:80" }, { addr = "0.0.0.0:80" }, { addr = "10.0.0.2:0" }]
        "#,
    );
    assert_has(
        &errs,
        "server.listen[1]: \"127.0.0.1:8080\" overlaps server.listen[0]",
    );
    assert_has(&errs, "server.listen[2]: invalid socket address \"nope\"");
    assert_has(&errs, "server.state_dir: must not be empty");
    assert_has(
        &errs,
        "admin.listen: \"127.0.0.1:8080\" overlaps server.listen[0]",
    );
    assert_has(
        &errs,
        "admin.api_key: must be visible ASCII characters without spaces",
    );
    assert_has(
        &errs,
        "upstreams[1].nodes[1].addr: duplicate of upstreams[1].nodes[0].addr",
    );
    assert!(errs
        .iter()
        .any(|e| e.starts_with("upstreams[1].nodes[2].addr: ")));
    assert!(errs
        .iter()
        .any(|e| e.starts_with("upstreams[1].nodes[3].addr: ")));
    assert_eq!(errs.len(), 8, "{errs:#?}");

    let errs = errors("[server]\nlisten = []\n[[upstreams]]\nid = \"e\"\nnodes = []\n");
    assert_has(&errs, "server.listen: must list at least one address");
    assert_has(&errs, "upstreams[1].nodes: must list at least one node");
}

#[test]
fn store_settings() {
    assert_has(
        &errors("[store]\nendpoints = [\"http://a:2379\"]\n"),
        "store.endpoints: only used with kind = \"etcd\"",
    );
    assert_has(
        &errors("[store]\nkind = \"etcd\"\n"),
        "store.endpoints: kind = \"etcd\" needs at least one endpoint",
    );
    let errs = errors(
        "[store]\nkind = \"etcd\"\nendpoints = [\"http://10.0.0.1:2379\", \"etcd-2:2379\", \
         \"ftp://x:1\", \"a\", \"b:0\"]\nprefix = \"gh\"\n",
    );
    assert!(
        !errs.iter().any(|e| e.starts_with("store.endpoints[0]")),
        "{errs:#?}"
    );
    assert!(
        !errs.iter().any(|e| e.starts_with("store.endpoints[1]")),
        "{errs:#?}"
    );
    for i in 2..5 {
        assert!(errs
            .iter()
            .any(|e| e.starts_with(&format!("store.endpoints[{i}]: invalid"))));
    }
    assert!(errs
        .iter()
        .any(|e| e.starts_with("store.prefix: must start with '/'")));
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

#[test]
fn ids_must_be_well_formed_and_unique() {
    let errs = errors(
        r#"
        [[upstreams]]
        id = "demo"
        nodes = [{ addr = "127.0.0.1:1" }]
        [[upstreams]]
        id = "bad id"
        nodes = [{ addr = "127.0.0.1:1" }]
        [[upstreams]]
        id = ""
        nodes = [{ addr = "127.0.0.1:1" }]
        [[routes]]
        id = "demo"
        paths = ["/"]
        upstream = "demo"
        [[routes]]
        id = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        paths = ["/x"]
        upstream = "demo"
        "#,
    );
    assert_has(&errs, "upstreams[1].id: duplicate id \"demo\"");
    assert!(errs
        .iter()
        .any(|e| e.starts_with("upstreams[2].id: invalid id \"bad id\"")));
    assert_has(&errs, "upstreams[3].id: must not be empty");
    assert_has(&errs, "routes[1].id: must be at most 64 characters");
    // A route may share an id with an upstream: ids are unique within their kind.
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

#[test]
fn route_syntax_errors_name_each_item() {
    let errs = errors(
        r#"
        [[routes]]
        id = "r"
        hosts = ["a.com", "A.COM", "*.b.com", "c.*.com", "d.com:80"]
        paths = ["/ok", "nope", "/a/{1}", "/x/*/y", "/ok", "/v/{id}", "/v/{name}"]
        methods = ["GET", "get", "GET", "BAD METHOD"]
        upstream = ""
        [[routes]]
        id = "s"
        paths = []
        upstream = "demo"
        strip_prefix = true
        [[routes]]
        id = "t"
        paths = ["/p/*", "/q"]
        upstream = "demo"
        strip_prefix = true
        "#,
    );
    for (path, start) in [
        ("routes[0].hosts[1]", "duplicate of routes[0].hosts[0]"),
        ("routes[0].hosts[3]", "host \"c.*.com\": a wildcard"),
        (
            "routes[0].hosts[4]",
            "host \"d.com:80\" must not contain a port",
        ),
        ("routes[0].paths[1]", "path \"nope\" must start with '/'"),
        ("routes[0].paths[2]", "invalid parameter name \"1\""),
        ("routes[0].paths[3]", "'*' is only allowed"),
        ("routes[0].paths[4]", "same path as routes[0].paths[0]"),
        ("routes[0].paths[6]", "same path as routes[0].paths[5]"),
        ("routes[0].methods[1]", "method \"get\" must be upper case"),
        ("routes[0].methods[2]", "duplicate of routes[0].methods[0]"),
        ("routes[0].methods[3]", "invalid method"),
        ("routes[0].upstream", "must name an upstream"),
        ("routes[1].paths", "must list at least one path"),
        ("routes[2].paths[1]", "strip_prefix needs prefix paths"),
    ] {
        let want = format!("{path}: {start}");
        assert!(
            errs.iter().any(|e| e.starts_with(&want)),
            "missing {want:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 14, "{errs:#?}");
}

#[test]
fn overlapping_routes_conflict_and_name_both() {
    let errs = errors(
        r#"
        [[routes]]
        id = "a"
        hosts = ["x.com"]
        paths = ["/users/{id}", "/api/*"]
        methods = ["GET", "POST"]
        upstream = "demo"
        [[routes]]
        id = "b"
        hosts = ["X.com", "y.com"]
        paths = ["/users/{name}"]
        methods = ["POST"]
        upstream = "demo"
        [[routes]]
        id = "c"
        hosts = ["x.com"]
        paths = ["/api/*", "/users/{id}"]
        upstream = "demo"
        [[routes]]
        id = "d"
        paths = ["/*"]
        upstream = "demo"
        [[routes]]
        id = "e"
        paths = ["/*"]
        upstream = "demo"
        "#,
    );
    assert_has(
        &errs,
        "routes[1].paths[0]: conflicts with routes[0].paths[0] (route \"a\"): both match host \
         \"x.com\", path \"/users/{}\" and method POST",
    );
    assert_has(
        &errs,
        "routes[4].paths[0]: conflicts with routes[3].paths[0] (route \"d\"): both match any \
         host, path \"/*\" and any method",
    );
    // Route c accepts any method: routes listing methods beat it, so it does not conflict.
    assert_eq!(errs.len(), 2, "{errs:#?}");
}

#[test]
fn wildcard_and_exact_hosts_do_not_conflict() {
    let errs = errors(
        r#"
        [[routes]]
        id = "a"
        hosts = ["*.x.com"]
        paths = ["/"]
        upstream = "demo"
        [[routes]]
        id = "b"
        hosts = ["a.x.com"]
        paths = ["/"]
        upstream = "demo"
        [[routes]]
        id = "c"
        hosts = ["*.X.COM"]
        paths = ["/"]
        upstream = "demo"
        "#,
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with("routes[2].paths[0]: conflicts with routes[0].paths[0]"));
    assert!(errs[0].contains("host \"*.x.com\""), "{errs:#?}");
}

#[test]
fn parse_errors_name_the_field_and_line() {
    let e = Config::from_toml_str("[server]\nworkers = 1\n\n[[routes]]\nid = \"r\"\npaths = []\nupstream = \"u\"\nmethodz = []\n")
        .unwrap_err();
    assert_eq!(e.len(), 1);
    // The path names the unknown key itself.
    assert_eq!(e[0].path, "routes[0].methodz");
    assert!(e[0].message.contains("unknown field `methodz`"), "{}", e[0]);
    assert!(e[0].message.contains("line 8"), "{}", e[0]);

    let e = Config::from_toml_str("[limits]\nmax_headers = \"many\"\n").unwrap_err();
    assert_eq!(e[0].path, "limits.max_headers");
    assert!(e[0].message.contains("line 2"), "{}", e[0]);

    let e = Config::from_toml_str("[server\n").unwrap_err();
    assert_eq!(e[0].path, "");
    assert!(
        e[0].message
            .starts_with("invalid TOML at line 1, column 8: "),
        "{}",
        e[0]
    );
    assert!(
        !e[0].message.contains('\n'),
        "one line per problem: {}",
        e[0]
    );

    let e = Config::from_toml_str("[[routes]]\nid = \"r\"\npaths = [\"/\"]\n").unwrap_err();
    assert_eq!(e[0].path, "routes[0]");
    assert!(
        e[0].message.contains("missing field `upstream`"),
        "{}",
        e[0]
    );
}

#[test]
fn json_bodies_get_field_paths_too() {
    let e =
        crate::parse_json::<crate::Route>(r#"{"id":"r","paths":[1],"upstream":"u"}"#, "routes[3]")
            .unwrap_err();
    assert_eq!(e.path, "routes[3].paths[0]");
    let e = crate::parse_json::<crate::Route>(r#"{"id":"r","paths":[],"upstream":"u","x":1}"#, "")
        .unwrap_err();
    assert_eq!(e.path, "x");
    assert!(e.message.contains("unknown field `x`"), "{e}");
    let e = crate::parse_json::<crate::Route>(r#"{"id":"r","paths":[],"upstream":"u"} x"#, "")
        .unwrap_err();
    assert!(e.message.starts_with("invalid JSON"), "{e}");
    let r = crate::parse_json::<crate::Route>(r#"{"id":"r","paths":["/"],"upstream":"u"}"#, "");
    assert_eq!(r.map(|r| r.id), Ok("r".to_string()));
}

#[test]
fn load_reads_parses_and_validates() {
    let dir = std::env::temp_dir().join(format!("gatehouse-conf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        format!("{BASE}[[routes]]\nid = \"r\"\npaths = [\"/\"]\nupstream = \"demo\"\n"),
    )
    .unwrap();
    assert_eq!(crate::load(&good).unwrap().routes.len(), 1);
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[limits]\nmax_headers = 0\n[server]\nworkers = 9999\n",
    )
    .unwrap();
    assert_eq!(crate::load(&bad).unwrap_err().len(), 2);
    let missing = crate::load(dir.join("missing.toml")).unwrap_err();
    assert!(
        missing[0].message.starts_with("cannot read"),
        "{}",
        missing[0]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn websocket_knobs_are_range_checked() {
    let route = |ws: &str| {
        errors(&format!(
            "[[routes]]\nid = \"ws\"\npaths = [\"/ws/*\"]\nupstream = \"demo\"\nwebsocket = {ws}\n"
        ))
    };
    assert!(route("{ }").is_empty());
    assert!(route("{ idle_timeout_ms = 5000, ping_interval_ms = 1000 }").is_empty());
    assert_has(
        &route("{ idle_timeout_ms = 10 }"),
        "routes[0].websocket.idle_timeout_ms: must be between 100 and 86400000",
    );
    assert_has(
        &route("{ idle_timeout_ms = 1000, ping_interval_ms = 1000 }"),
        "routes[0].websocket.ping_interval_ms: must be between 100 and 999",
    );
    let c = Config::from_toml_str(&format!(
        "{BASE}[[routes]]\nid = \"ws\"\npaths = [\"/ws/*\"]\nupstream = \"demo\"\nwebsocket = {{ }}\n"
    ))
    .unwrap();
    let ws = c.routes[0].websocket.unwrap();
    assert_eq!((ws.idle_timeout_ms, ws.ping_interval_ms), (60_000, 0));
}
