//! Unit tests of the waf engine: zero false positives on the ordinary-traffic corpus, each
//! built-in set against typical attacks and their encodings, custom rules, actions, counters.

use super::*;

mod attacks;

const ALL_SETS: [&str; 4] = ["sqli", "xss", "php_injection", "path_traversal"];

fn engine_from(toml_text: &str) -> WafEngine {
    let cfg: WafConfig = toml::from_str(toml_text).unwrap();
    WafEngine::compile(&cfg).unwrap()
}

/// Every built-in set, looking at every header too (stricter than the default targets).
pub(super) fn all_sets() -> WafEngine {
    engine_from(
        r#"sets = ["sqli", "xss", "php_injection", "path_traversal"]
set_targets = ["path", "query", "body", "headers"]"#,
    )
}

pub(super) struct Req<'a> {
    pub path: &'a [u8],
    pub query: &'a [u8],
    pub headers: &'a [(&'a [u8], &'a [u8])],
    pub body: &'a [u8],
}

pub(super) fn run<'e>(e: &'e WafEngine, s: &mut WafScratch, r: &Req<'_>) -> WafVerdict<'e> {
    let input = WafInput {
        path: r.path,
        query: r.query,
        headers: r.headers.iter().copied(),
        body: r.body,
    };
    e.check(&input, s)
}

/// Splits `/path?query` into its parts.
pub(super) fn target(t: &str) -> (&[u8], &[u8]) {
    match t.split_once('?') {
        Some((p, q)) => (p.as_bytes(), q.as_bytes()),
        None => (t.as_bytes(), b""),
    }
}

#[test]
fn the_corpus_of_ordinary_requests_has_zero_false_positives() {
    let e = all_sets();
    let mut s = e.scratch();
    let mut requests = 0;
    let mut failures = Vec::new();
    for line in include_str!("corpus.txt").lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        requests += 1;
        let verdict = if let Some(h) = line.strip_prefix("H ") {
            let (name, value) = h.split_once(": ").unwrap();
            let headers = [(name.as_bytes(), value.as_bytes())];
            run(
                &e,
                &mut s,
                &Req {
                    path: b"/",
                    query: b"",
                    headers: &headers,
                    body: b"",
                },
            )
        } else {
            let (method_target, body) = match line.split_once(" | ") {
                Some((m, b)) => (m, b),
                None => (line, ""),
            };
            let (_, t) = method_target.split_once(' ').unwrap();
            let (path, query) = target(t);
            run(
                &e,
                &mut s,
                &Req {
                    path,
                    query,
                    headers: &[],
                    body: body.as_bytes(),
                },
            )
        };
        if verdict.blocked.is_some() || verdict.logged > 0 {
            failures.push(format!("{line}\n    -> {verdict:?}"));
        }
    }
    assert!(requests >= 200, "corpus has {requests} requests");
    assert!(
        failures.is_empty(),
        "false positives:\n{}",
        failures.join("\n")
    );
}

#[test]
fn attacks_in_bodies_and_headers_are_blocked() {
    let e = all_sets();
    let mut s = e.scratch();
    let v = run(
        &e,
        &mut s,
        &Req {
            path: b"/api",
            query: b"",
            headers: &[],
            body: br#"{"q": "1' OR '1'='1"}"#,
        },
    );
    assert_eq!(
        v.blocked.map(|h| (h.rule, h.target)),
        Some(("sqli-tautology", Target::Body))
    );
    let v = run(
        &e,
        &mut s,
        &Req {
            path: b"/api",
            query: b"",
            headers: &[],
            body: b"comment=%3Cscript%3Ex%3C%2Fscript%3E",
        },
    );
    assert_eq!(v.blocked.map(|h| h.target), Some(Target::Body));
    let headers: [(&[u8], &[u8]); 2] = [
        (b"Accept", b"*/*"),
        (b"User-Agent", b"() { :; }; <?php system('id'); ?>"),
    ];
    let v = run(
        &e,
        &mut s,
        &Req {
            path: b"/",
            query: b"",
            headers: &headers,
            body: b"",
        },
    );
    assert_eq!(v.blocked.map(|h| h.target), Some(Target::Header));
}

#[test]
fn default_set_targets_skip_other_headers() {
    let e = engine_from(r#"sets = ["xss"]"#);
    let mut s = e.scratch();
    let other: [(&[u8], &[u8]); 1] = [(b"X-Note", b"<script>")];
    assert!(run(
        &e,
        &mut s,
        &Req {
            path: b"/",
            query: b"",
            headers: &other,
            body: b""
        }
    )
    .blocked
    .is_none());
    let cookie: [(&[u8], &[u8]); 1] = [(b"cookie", b"a=%3Cscript%3E")];
    assert!(run(
        &e,
        &mut s,
        &Req {
            path: b"/",
            query: b"",
            headers: &cookie,
            body: b""
        }
    )
    .blocked
    .is_some());
}

#[test]
fn only_the_body_prefix_is_read() {
    let e = engine_from("sets = [\"xss\"]\nbody_limit = 16");
    let mut s = e.scratch();
    let mut body = vec![b' '; 16];
    body.extend_from_slice(b"<script>");
    assert!(run(
        &e,
        &mut s,
        &Req {
            path: b"/",
            query: b"",
            headers: &[],
            body: &body
        }
    )
    .blocked
    .is_none());
    body.drain(..10);
    assert!(run(
        &e,
        &mut s,
        &Req {
            path: b"/",
            query: b"",
            headers: &[],
            body: &body
        }
    )
    .blocked
    .is_some());
}

#[test]
fn custom_rules_targets_actions_and_counters() {
    let e = engine_from(
        r#"
[[rules]]
id = "no-admin"
targets = ["path"]
regex = "^/admin"

[[rules]]
id = "bad-bot"
targets = ["header:user-agent"]
keywords = ["sqlmap", "nikto"]

[[rules]]
id = "watch-debug"
targets = ["query", "body"]
keywords = ["debug=1"]
action = "log"
"#,
    );
    let mut s = e.scratch();
    let r = |path: &'static [u8],
             query: &'static [u8],
             headers: &'static [(&'static [u8], &'static [u8])]| Req {
        path,
        query,
        headers,
        body: b"",
    };
    let v = run(&e, &mut s, &r(b"/admin/users", b"", &[]));
    assert_eq!(
        v.blocked,
        Some(WafHit {
            rule: "no-admin",
            target: Target::Path
        })
    );
    // A path rule does not look at the query.
    assert!(run(&e, &mut s, &r(b"/shop", b"next=/admin", &[]))
        .blocked
        .is_none());
    let v = run(&e, &mut s, &r(b"/", b"", &[(b"User-Agent", b"SQLMap/1.7")]));
    assert_eq!(v.blocked.map(|h| h.rule), Some("bad-bot"));
    assert!(run(&e, &mut s, &r(b"/", b"", &[(b"Referer", b"sqlmap")]))
        .blocked
        .is_none());
    // Log rules let the request pass and count once per request, raw and decoded alike.
    let v = run(&e, &mut s, &r(b"/", b"debug=1&debug%3D1", &[]));
    assert_eq!(v.blocked, None);
    assert_eq!(v.logged, 1);
    assert_eq!(
        v.first_logged,
        Some(WafHit {
            rule: "watch-debug",
            target: Target::Query
        })
    );
    let counts: Vec<_> = e.hit_counts().collect();
    assert_eq!(
        counts,
        vec![("no-admin", 1), ("bad-bot", 1), ("watch-debug", 1)]
    );
    assert_eq!(e.rule_count(), 3);
}

#[test]
fn rule_actions_override_builtin_rules() {
    let e = engine_from(
        r#"sets = ["sqli", "path_traversal"]
set_action = "log"
[rule_actions]
sqli-union-select = "block"
traversal-dotdot = "off"
"#,
    );
    let mut s = e.scratch();
    let v = run(
        &e,
        &mut s,
        &Req {
            path: b"/",
            query: b"x=1 union select 1",
            headers: &[],
            body: b"",
        },
    );
    assert_eq!(v.blocked.map(|h| h.rule), Some("sqli-union-select"));
    let v = run(
        &e,
        &mut s,
        &Req {
            path: b"/",
            query: b"x=sleep(5)",
            headers: &[],
            body: b"",
        },
    );
    assert_eq!((v.blocked, v.logged), (None, 1));
    let v = run(
        &e,
        &mut s,
        &Req {
            path: b"/a/../b",
            query: b"",
            headers: &[],
            body: b"",
        },
    );
    assert_eq!((v.blocked, v.logged), (None, 0));
}

#[test]
fn scratch_of_another_engine_is_rebuilt() {
    let a = engine_from(r#"sets = ["xss"]"#);
    let b = engine_from(r#"sets = ["sqli"]"#);
    let mut s = a.scratch();
    let v = run(
        &b,
        &mut s,
        &Req {
            path: b"/",
            query: b"x=1 union select 2",
            headers: &[],
            body: b"",
        },
    );
    assert!(v.blocked.is_some());
    let v = run(
        &a,
        &mut s,
        &Req {
            path: b"/",
            query: b"x=<script>",
            headers: &[],
            body: b"",
        },
    );
    assert!(v.blocked.is_some());
}

#[test]
fn config_errors_name_the_field() {
    let bad = |t: &str| {
        let cfg: WafConfig = toml::from_str(t).unwrap();
        WafEngine::compile(&cfg).unwrap_err().path
    };
    assert_eq!(bad(r#"sets = ["sqli", "nosuch"]"#), "sets[1]");
    assert_eq!(
        bad("sets = [\"sqli\"]\n[rule_actions]\nnosuch = \"off\""),
        "rule_actions.nosuch"
    );
    assert_eq!(
        bad("[[rules]]\nid = \"a\"\nregex = \"(\""),
        "rules[0].regex"
    );
    assert_eq!(
        bad("[[rules]]\nid = \"a\"\nregex = \"x*\""),
        "rules[0].regex"
    );
    assert_eq!(bad("[[rules]]\nid = \"a\""), "rules[0].regex");
    assert_eq!(
        bad("[[rules]]\nid = \"a\"\nkeywords = [\"\"]"),
        "rules[0].keywords"
    );
    assert_eq!(
        bad("[[rules]]\nid = \"a\"\nkeywords = [\"x\"]\ntargets = [\"cookie\"]"),
        "rules[0].targets"
    );
    assert_eq!(
        bad("[[rules]]\nid = \"a\"\nkeywords = [\"x\"]\ntargets = []"),
        "rules[0].targets"
    );
    assert_eq!(
        bad("[[rules]]\nid = \"a\"\nkeywords = [\"x\"]\n[[rules]]\nid = \"a\"\nkeywords = [\"y\"]"),
        "rules[1].id"
    );
    assert_eq!(
        bad("sets = [\"sqli\"]\n[[rules]]\nid = \"sqli-comment\"\nkeywords = [\"y\"]"),
        "rules[0].id"
    );
    assert_eq!(bad("set_targets = [\"nope\"]"), "set_targets");
    assert_eq!(bad("body_limit = 99999999"), "body_limit");
    assert_eq!(bad("decode_passes = 0"), "decode_passes");
    assert!(toml::from_str::<WafConfig>("set = []").is_err());
}

#[test]
fn documented_example_compiles() {
    let cfg: WafConfig = crate::modules::ip_list::tests::doc_example(
        "waf",
        include_str!("../../../../docs/modules/waf.md"),
    );
    let e = WafEngine::compile(&cfg).unwrap();
    let mut s = e.scratch();
    let v = run(
        &e,
        &mut s,
        &Req {
            path: b"/",
            query: b"q=1 union select 2",
            headers: &[],
            body: b"",
        },
    );
    assert!(v.blocked.is_some());
    assert!(e.rule_count() > ALL_SETS.len());
}

#[test]
fn checks_do_not_allocate_once_warm() {
    let e = all_sets();
    let mut s = e.scratch();
    let headers: [(&[u8], &[u8]); 2] = [
        (b"User-Agent", b"Mozilla/5.0 (X11; Linux x86_64)"),
        (b"Cookie", b"a=%7B%22b%22%3A1%7D"),
    ];
    let body = br#"{"query": "select a size", "note": "O'Brien%20"}"#;
    let req = Req {
        path: b"/api/v1/products/12345",
        query: b"q=union+jack+t-shirt&x=%2527",
        headers: &headers,
        body,
    };
    for _ in 0..3 {
        assert!(run(&e, &mut s, &req).blocked.is_none()); // warms the lazy DFA
    }
    let (n, v) = crate::modules::ip_list::tests::allocations_during(|| run(&e, &mut s, &req));
    assert!(v.blocked.is_none());
    assert_eq!(n, 0);
}
