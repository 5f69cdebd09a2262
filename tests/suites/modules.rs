//! Modules end to end: the real gatehouse with `[[modules]]`/`[[consumers]]` from its TOML file,
//! a real loopback backend, and a raw client. Each module kind is checked for what passes, what
//! is refused (status, JSON error code, nothing reaching the backend) and what the backend sees
//! (identity headers, removed credentials). Tokens and signatures are made here with ring, the
//! way a client would, independently of the gateway's own code.

#[path = "modules/sign.rs"]
mod sign;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use gatehouse_tests::*;
use sign::{hmac_head, mint};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sign::{HMAC_SECRET, JWT_SECRET};

/// One upstream `up` at `backend`, then `rest` (modules, consumers, routes).
fn config(backend: SocketAddr, rest: &str) -> String {
    format!("[[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{backend}\" }}]\n\n{rest}")
}

/// A route `id` on `path` using `modules`.
fn route(id: &str, path: &str, modules: &[&str]) -> String {
    let list: Vec<String> = modules.iter().map(|m| format!("{m:?}")).collect();
    format!(
        "[[routes]]\nid = \"{id}\"\npaths = [\"{path}\"]\nupstream = \"up\"\nmodules = [{}]\n\n",
        list.join(", ")
    )
}

/// Sends a request (`\n` becomes CRLF; Host and the blank line are added) and reads the answer.
fn send(gw: &Gateway, head: &str, body: &[u8]) -> Resp {
    let mut raw = format!("{}Host: gw\n", head).replace('\n', "\r\n");
    if !body.is_empty() {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    roundtrip(gw.addr, &bytes)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `error.field` of a gateway error answer.
fn error_field(r: &Resp) -> Option<String> {
    r.json()?["error"]["field"].as_str().map(str::to_owned)
}

#[test]
fn ip_list_allows_denies_and_believes_only_trusted_proxies() {
    let b = Backend::fixed("ok");
    let rest = "[[modules]]\nid = \"edge\"\nkind = \"ip_list\"\nglobal = true\n\
                deny = [\"203.0.113.0/24\"]\ntrusted_proxies = [\"127.0.0.1\"]\n\n\
                [[modules]]\nid = \"office\"\nkind = \"ip_list\"\nallow = [\"10.0.0.0/8\"]\n\n"
        .to_string()
        + &route("open", "/open", &[])
        + &route("office", "/office", &["office"]);
    let gw = Gateway::start(&config(b.addr(), &rest));
    assert_eq!(send(&gw, "GET /open HTTP/1.1\n", b"").status, 200);
    // Through the trusted proxy (loopback), X-Forwarded-For names the client.
    let r = send(
        &gw,
        "GET /open HTTP/1.1\nX-Forwarded-For: 203.0.113.9\n",
        b"",
    );
    assert_gateway_error(&r, 403, "forbidden");
    // Denied before routing: even a path no route serves.
    let r = send(
        &gw,
        "GET /nowhere HTTP/1.1\nX-Forwarded-For: 203.0.113.9\n",
        b"",
    );
    assert_gateway_error(&r, 403, "forbidden");
    let r = send(
        &gw,
        "GET /open HTTP/1.1\nX-Forwarded-For: 198.51.100.4\n",
        b"",
    );
    assert_eq!(r.status, 200);
    // The route's allow list sees the same client address.
    assert_gateway_error(&send(&gw, "GET /office HTTP/1.1\n", b""), 403, "forbidden");
    let r = send(
        &gw,
        "GET /office HTTP/1.1\nX-Forwarded-For: 10.1.2.3\n",
        b"",
    );
    assert_eq!(r.status, 200);
    let seen = b.requests();
    assert_eq!(seen.len(), 3, "refused requests reached the backend");
    assert_eq!(seen[2].header("x-real-ip"), Some("10.1.2.3"));

    // Without trusted proxies, the header is not believed.
    let rest = "[[modules]]\nid = \"edge\"\nkind = \"ip_list\"\nglobal = true\n\
                deny = [\"203.0.113.0/24\"]\n\n"
        .to_string()
        + &route("open", "/open", &[]);
    let gw = Gateway::start(&config(b.addr(), &rest));
    let r = send(
        &gw,
        "GET /open HTTP/1.1\nX-Forwarded-For: 203.0.113.9\n",
        b"",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn params_refuse_each_type_with_400_naming_the_parameter() {
    let b = Backend::fixed("ok");
    let rest = r#"
[[modules]]
id = "p"
kind = "params"
[[modules.params]]
name = "id"
in = "path"
type = "int"
min = 1
[[modules.params]]
name = "page"
in = "query"
type = "int"
max = 100
[[modules.params]]
name = "sort"
in = "query"
type = "enum"
values = ["asc", "desc"]
[[modules.params]]
name = "x-ratio"
in = "header"
type = "number"
[[modules.params]]
name = "code"
in = "query"
type = "string"
pattern = "^[A-Z]{3}$"
[[modules.params]]
name = "qty"
in = "body"
type = "int"
required = true
[[modules.params]]
name = "gift"
in = "body"
type = "bool"
"#
    .to_string()
        + &route("items", "/items/{id}", &["p"]);
    let gw = Gateway::start(&config(b.addr(), &rest));
    let body = br#"{"qty": 2, "gift": true}"#;
    let ok = send(
        &gw,
        "POST /items/7?page=2&sort=asc&code=ABC HTTP/1.1\nX-Ratio: 0.5\n",
        body,
    );
    assert_eq!(ok.status, 200, "{}", ok.body_str());
    let cases: [(&str, &[u8], &str); 9] = [
        ("POST /items/x HTTP/1.1\n", body, "id"),
        ("POST /items/0 HTTP/1.1\n", body, "id"),
        ("POST /items/7?page=101 HTTP/1.1\n", body, "page"),
        ("POST /items/7?sort=up HTTP/1.1\n", body, "sort"),
        ("POST /items/7 HTTP/1.1\nX-Ratio: lots\n", body, "x-ratio"),
        ("POST /items/7?code=abcd HTTP/1.1\n", body, "code"),
        ("POST /items/7 HTTP/1.1\n", br#"{"qty": "2"}"#, "qty"),
        (
            "POST /items/7 HTTP/1.1\n",
            br#"{"qty": 1, "gift": "yes"}"#,
            "gift",
        ),
        ("POST /items/7 HTTP/1.1\n", br#"{"gift": false}"#, "qty"),
    ];
    for (head, body, field) in cases {
        let r = send(&gw, head, body);
        assert_gateway_error(&r, 400, "bad_parameter");
        assert_eq!(
            error_field(&r).as_deref(),
            Some(field),
            "{head}: {}",
            r.body_str()
        );
    }
    assert_eq!(b.request_count(), 1);
}

fn waf_gateway(b: &Backend) -> Gateway {
    let rest = "[[modules]]\nid = \"shield\"\nkind = \"waf\"\nglobal = true\n\
                sets = [\"sqli\", \"xss\", \"php_injection\", \"path_traversal\"]\n\n"
        .to_string()
        + &route("all", "/*", &[]);
    Gateway::start(&config(b.addr(), &rest))
}

#[test]
fn each_waf_set_blocks_its_attack() {
    let b = Backend::fixed("ok");
    let gw = waf_gateway(&b);
    let attacks: [(&str, &[u8]); 6] = [
        ("GET /search?q=1%27%20OR%20%271%27%3D%271 HTTP/1.1\n", b""),
        (
            "POST /login HTTP/1.1\nContent-Type: application/x-www-form-urlencoded\n",
            b"user=admin'--&pw=x",
        ),
        (
            "GET /p?name=%3Cscript%3Ealert(1)%3C%2Fscript%3E HTTP/1.1\n",
            b"",
        ),
        (
            "GET / HTTP/1.1\nReferer: javascript:alert(document.cookie)\n",
            b"",
        ),
        ("POST /upload HTTP/1.1\n", b"<?php system($_GET['c']); ?>"),
        ("GET /files/..%2f..%2fetc%2fpasswd HTTP/1.1\n", b""),
    ];
    for (head, body) in attacks {
        assert_gateway_error(&send(&gw, head, body), 403, "forbidden");
    }
    assert_eq!(b.request_count(), 0, "an attack reached the backend");
}

#[test]
fn the_waf_corpus_of_ordinary_requests_passes() {
    let b = Backend::fixed("ok");
    let gw = waf_gateway(&b);
    let corpus = include_str!("../../business/src/modules/waf/corpus.txt");
    let mut c = Conn::open(gw.addr);
    let mut n = 0;
    for line in corpus
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (head, body) = match line.strip_prefix("H ") {
            Some(h) => (format!("GET / HTTP/1.1\r\n{h}\r\n"), ""),
            None => {
                let (req, body) = line.split_once(" | ").unwrap_or((line, ""));
                (format!("{req} HTTP/1.1\r\n"), body)
            }
        };
        let raw = format!(
            "{head}Host: gw\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        c.send(raw.as_bytes()).expect("send");
        let r = c.read_response().expect("answer");
        assert_eq!(r.status, 200, "false positive: {line}: {}", r.body_str());
        n += 1;
    }
    assert!(n >= 200, "{n}");
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let b = Backend::fixed("ok");
    let rest = "[[modules]]\nid = \"lim\"\nkind = \"rate_limit\"\nrate = 0.5\nburst = 2\n\n"
        .to_string()
        + &route("all", "/*", &["lim"]);
    let gw = Gateway::start(&config(b.addr(), &rest));
    assert_eq!(send(&gw, "GET / HTTP/1.1\n", b"").status, 200);
    assert_eq!(send(&gw, "GET / HTTP/1.1\n", b"").status, 200);
    let r = send(&gw, "GET / HTTP/1.1\n", b"");
    assert_gateway_error(&r, 429, "rate_limited");
    let secs: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=2).contains(&secs), "{:?}", r.headers);
}

#[test]
fn rate_limit_holds_node_wide_across_two_workers() {
    const RATE: f64 = 200.0;
    const BURST: f64 = 20.0;
    let b = Backend::fixed("ok");
    let rest = format!(
        "[server]\nworkers = 2\nlisten = [\"{{listen}}\"]\nstate_dir = \"{{state_dir}}\"\n\n\
         [[modules]]\nid = \"lim\"\nkind = \"rate_limit\"\nrate = {RATE}\nburst = {BURST}\nkey = \"route\"\n\n{}",
        route("all", "/*", &["lim"])
    );
    let gw = Gateway::start(&config(b.addr(), &rest));
    let passed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let run_for = Duration::from_secs(3);
    let addr = gw.addr;
    // Several keep-alive connections: the kernel spreads them over both workers' listeners.
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let passed = passed.clone();
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                while start.elapsed() < run_for {
                    c.send(b"GET /x HTTP/1.1\r\nHost: gw\r\n\r\n")
                        .expect("send");
                    let r = c.read_response().expect("answer");
                    match r.status {
                        200 => {
                            passed.fetch_add(1, Ordering::Relaxed);
                        }
                        429 => {}
                        s => panic!("unexpected {s}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let expected = BURST + RATE * elapsed;
    let got = passed.load(Ordering::Relaxed) as f64;
    assert!(
        (got - expected).abs() <= 0.1 * expected,
        "{got} passed in {elapsed:.2}s, expected about {expected:.0}"
    );
}

#[test]
fn key_auth_names_the_consumer_and_keeps_the_key_from_the_upstream() {
    let b = Backend::fixed("ok");
    let rest = "[[modules]]\nid = \"keys\"\nkind = \"key_auth\"\n\n\
                [[consumers]]\nid = \"acme\"\nheaders = { X-Tier = \"gold\" }\n\
                key_auth = { key = \"acme-key-0123456789abc\" }\n\n"
        .to_string()
        + &route("all", "/*", &["keys"]);
    let gw = Gateway::start(&config(b.addr(), &rest));
    let r = send(
        &gw,
        "GET / HTTP/1.1\napikey: acme-key-0123456789abc\nX-Consumer-Id: forged\n",
        b"",
    );
    assert_eq!(r.status, 200);
    let seen = b.requests();
    assert_eq!(seen[0].headers_named("x-consumer-id"), ["acme"]);
    assert_eq!(seen[0].header("x-tier"), Some("gold"));
    assert_eq!(seen[0].header("apikey"), None);
    assert_gateway_error(
        &send(&gw, "GET / HTTP/1.1\napikey: wrong-key-0123456789\n", b""),
        401,
        "auth_failed",
    );
    assert_gateway_error(&send(&gw, "GET / HTTP/1.1\n", b""), 401, "auth_failed");
    assert_eq!(b.request_count(), 1);
}

#[test]
fn jwt_valid_expired_and_tampered_tokens() {
    let b = Backend::fixed("ok");
    let rest = format!(
        "[[modules]]\nid = \"tokens\"\nkind = \"jwt\"\nclaims_to_headers = {{ sub = \"X-User-Id\" }}\n\n\
         [[consumers]]\nid = \"app\"\njwt = {{ algorithm = \"HS256\", key = \"{JWT_SECRET}\" }}\n\n{}",
        route("all", "/*", &["tokens"])
    );
    let gw = Gateway::start(&config(b.addr(), &rest));
    let now = unix_now();
    let good = mint(&format!(
        r#"{{"key":"app","sub":"alice","exp":{}}}"#,
        now + 300
    ));
    let r = send(
        &gw,
        &format!("GET / HTTP/1.1\nAuthorization: Bearer {good}\nX-User-Id: mallory\n"),
        b"",
    );
    assert_eq!(r.status, 200);
    let seen = b.requests();
    assert_eq!(seen[0].headers_named("x-user-id"), ["alice"]);
    assert_eq!(seen[0].header("x-consumer-id"), Some("app"));

    let expired = mint(&format!(
        r#"{{"key":"app","sub":"alice","exp":{}}}"#,
        now - 3600
    ));
    let (head, rest) = good.split_at(good.find('.').unwrap_or(0) + 1);
    let other_claims = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"key":"app","sub":"admin","exp":{}}}"#,
        now + 300
    ));
    let tampered = format!(
        "{head}{other_claims}{}",
        &rest[rest.find('.').unwrap_or(0)..]
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(br#"{"key":"app"}"#)
    );
    for token in [expired, tampered, none] {
        let r = send(
            &gw,
            &format!("GET / HTTP/1.1\nAuthorization: Bearer {token}\n"),
            b"",
        );
        assert_gateway_error(&r, 401, "auth_failed");
    }
    assert_eq!(b.request_count(), 1);
}

#[test]
fn hmac_auth_valid_replayed_and_swapped_body() {
    let b = Backend::echo();
    let rest = format!(
        "[[modules]]\nid = \"signed\"\nkind = \"hmac_auth\"\n\n\
         [[consumers]]\nid = \"partner\"\nhmac_auth = {{ key_id = \"k1\", secret = \"{HMAC_SECRET}\" }}\n\n{}",
        route("all", "/*", &["signed"])
    );
    let gw = Gateway::start(&config(b.addr(), &rest));
    let body = br#"{"qty": 3}"#;
    let head = hmac_head("nonce-e2e-0000000001", body);
    let r = send(&gw, &head, body);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &body[..]),
        "{}",
        r.body_str()
    );
    assert_eq!(b.requests()[0].header("x-consumer-id"), Some("partner"));
    assert_gateway_error(&send(&gw, &head, body), 401, "auth_failed");
    let head = hmac_head("nonce-e2e-0000000002", body);
    assert_gateway_error(&send(&gw, &head, br#"{"qty": 9}"#), 401, "auth_failed");
    assert_eq!(b.request_count(), 1);
}

#[test]
fn cors_preflight_is_answered_at_the_gateway() {
    let b = Backend::start(|_| {
        Reply::Respond(Response::ok("ok").header("Access-Control-Allow-Origin", "*"))
    });
    let rest = "[[modules]]\nid = \"web\"\nkind = \"cors\"\nallow_origins = [\"https://shop.example.com\"]\n\
                allow_methods = [\"GET\", \"PUT\"]\nallow_headers = [\"Content-Type\"]\n\n"
        .to_string()
        + &route("all", "/*", &["web"]);
    let gw = Gateway::start(&config(b.addr(), &rest));
    let r = send(
        &gw,
        "OPTIONS /items HTTP/1.1\nOrigin: https://shop.example.com\nAccess-Control-Request-Method: PUT\n\
         Access-Control-Request-Headers: content-type\n",
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, PUT"));
    assert!(r.header("x-request-id").is_some());
    let r = send(&gw, "OPTIONS /items HTTP/1.1\nOrigin: https://evil.example\nAccess-Control-Request-Method: PUT\n", b"");
    assert_gateway_error(&r, 403, "forbidden");
    assert_eq!(b.request_count(), 0, "a preflight reached the backend");
    let r = send(
        &gw,
        "GET /items HTTP/1.1\nOrigin: https://shop.example.com\n",
        b"",
    );
    assert_eq!(
        r.headers_named("access-control-allow-origin"),
        ["https://shop.example.com"]
    );
    // The upstream's own `*` never reaches a disallowed origin.
    let r = send(
        &gw,
        "GET /items HTTP/1.1\nOrigin: https://evil.example\n",
        b"",
    );
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[test]
fn redirects_to_https_and_to_a_fixed_location() {
    let b = Backend::fixed("ok");
    let rest = "[[modules]]\nid = \"https\"\nkind = \"redirect\"\nto_https = true\n\n\
                [[modules]]\nid = \"moved\"\nkind = \"redirect\"\nlocation = \"https://new.example.com/v2\"\n\
                keep_path = true\nstatus = 308\n\n"
        .to_string()
        + &route("secure", "/secure/*", &["https"])
        + &route("old", "/old/*", &["moved"]);
    let gw = Gateway::start(&config(b.addr(), &rest));
    let r = roundtrip(
        gw.addr,
        b"GET /secure/a?x=1 HTTP/1.1\r\nHost: shop.example.com:8080\r\n\r\n",
    );
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://shop.example.com/secure/a?x=1")
    );
    let r = send(&gw, "GET /old/items?page=2 HTTP/1.1\n", b"");
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some("https://new.example.com/v2/old/items?page=2")
    );
    assert_eq!(b.request_count(), 0);
}

#[test]
fn headers_are_set_and_removed_both_ways() {
    let b = Backend::start(|_| {
        Reply::Respond(
            Response::ok("ok")
                .header("Server", "secret/1.0")
                .header("X-Frame-Options", "ALLOW"),
        )
    });
    let rest = "[[modules]]\nid = \"h\"\nkind = \"headers\"\nrequest_set = { X-Env = \"prod\" }\n\
                request_remove = [\"X-Debug\"]\nresponse_set = { X-Frame-Options = \"DENY\" }\n\
                response_remove = [\"Server\"]\n\n"
        .to_string()
        + &route("all", "/*", &["h"]);
    let gw = Gateway::start(&config(b.addr(), &rest));
    let r = send(&gw, "GET / HTTP/1.1\nX-Debug: 1\nX-Env: dev\n", b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("server"), None);
    assert_eq!(r.headers_named("x-frame-options"), ["DENY"]);
    let seen = &b.requests()[0];
    assert_eq!(seen.headers_named("x-env"), ["prod"]);
    assert_eq!(seen.header("x-debug"), None);
}

#[test]
fn circuit_breaker_opens_on_failures_and_closes_after_a_good_probe() {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f2 = failing.clone();
    let b = Backend::start(move |_| {
        let status = if f2.load(Ordering::SeqCst) { 500 } else { 200 };
        Reply::Respond(Response::new(status, "x"))
    });
    let rest = "[[modules]]\nid = \"cb\"\nkind = \"circuit_breaker\"\nconsecutive_failures = 3\n\
                failure_rate = 0\nopen_ms = 500\n\n"
        .to_string()
        + &route("all", "/*", &["cb"]);
    let gw = Gateway::start(&config(b.addr(), &rest));
    for _ in 0..3 {
        assert_eq!(send(&gw, "GET / HTTP/1.1\n", b"").status, 500);
    }
    assert_gateway_error(&send(&gw, "GET / HTTP/1.1\n", b""), 503, "circuit_open");
    assert_eq!(b.request_count(), 3, "an open breaker let a call through");
    failing.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(send(&gw, "GET / HTTP/1.1\n", b"").status, 200); // the probe
    for _ in 0..3 {
        assert_eq!(send(&gw, "GET / HTTP/1.1\n", b"").status, 200);
    }
}

#[test]
fn module_config_errors_are_reported_by_check_with_their_path() {
    let dir = TempDir::new("modcheck");
    let text = "[[upstreams]]\nid = \"up\"\nnodes = [{ addr = \"127.0.0.1:9\" }]\n\
                [[modules]]\nid = \"lim\"\nkind = \"rate_limit\"\nrate = 0\n\
                [[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"up\"\nmodules = [\"lim\", \"x\"]\n";
    let p = dir.write("g.toml", text);
    let out = run_cmd(
        &["check", "--config", &p.display().to_string()],
        Duration::from_secs(20),
    );
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("routes[0].modules[1]: no module named \"x\""),
        "{err}"
    );
    let text = text.replace(", \"x\"", "");
    let p = dir.write("g.toml", &text);
    let out = run_cmd(
        &["check", "--config", &p.display().to_string()],
        Duration::from_secs(20),
    );
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("modules[0].rate: must be > 0"), "{err}");
}
