//! Pipeline order (phases, globals, configured order), body asks and resumption across config
//! versions, and the promise that a warm pipeline allocates nothing per request.

use crate::context::Context;
use crate::stage::{Flow, Request};
use crate::stages::testutil::{now_unix, Harness, UPSTREAM};
use crate::token::mint_hs256;
use crate::{CoreState, Snapshot};
use protocols::http1::{parse_request, Limits, RequestHead};

#[test]
fn phases_order_the_stages_and_configured_order_holds_within_a_phase() {
    let h = Harness::new(
        r#"
[[modules]]
id = "deny"
kind = "ip_list"
global = true
deny = ["203.0.113.0/24"]
[[modules]]
id = "limit-all"
kind = "rate_limit"
global = true
rate = 1000
[[modules]]
id = "keys"
kind = "key_auth"
[[modules]]
id = "w"
kind = "waf"
sets = ["sqli"]
[[modules]]
id = "office"
kind = "ip_list"
allow = ["192.0.2.0/24"]
[[modules]]
id = "limit-route"
kind = "rate_limit"
rate = 5
[[modules]]
id = "cb"
kind = "circuit_breaker"
[[modules]]
id = "hdr"
kind = "headers"
request_set = { X-A = "1" }
[[routes]]
id = "r"
paths = ["/r"]
upstream = "u"
modules = ["cb", "hdr", "keys", "limit-route", "w", "office"]
[[routes]]
id = "plain"
paths = ["/plain"]
upstream = "u"
"#,
    );
    assert_eq!(
        h.snap.pipeline.kinds(0),
        [
            "ip_list",
            "route",
            "ip_list",
            "waf",
            "rate_limit",
            "rate_limit",
            "key_auth",
            "headers",
            "circuit_breaker",
            "upstream"
        ]
    );
    assert_eq!(
        h.snap.pipeline.kinds(1),
        ["ip_list", "route", "rate_limit", "upstream"]
    );
}

const BODY_CONFIG: &str = r#"
[[modules]]
id = "w"
kind = "waf"
sets = ["sqli"]
body_limit = 1024
[[modules]]
id = "p"
kind = "params"
max_body_bytes = 4096
[[modules.params]]
name = "qty"
in = "body"
type = "int"
[[routes]]
id = "r"
paths = ["/r"]
upstream = "u"
modules = ["p", "w"]
"#;

#[test]
fn one_body_read_serves_every_later_stage() {
    let mut h = Harness::new(BODY_CONFIG);
    let o = h.run(
        "POST /r HTTP/1.1\nHost: a\nContent-Length: 9\n",
        "192.0.2.1",
        br#"{"qty":1}"#,
    );
    assert_eq!((o.flow, o.asked), (Flow::Continue, Some(4096)));
    let o = h.run(
        "POST /r HTTP/1.1\nHost: a\nContent-Length: 9\n",
        "192.0.2.1",
        br#"{"qty":"x"}"#,
    );
    assert!(matches!(o.flow, Flow::Respond(_)));
    // No body, no ask.
    let o = h.get("GET /r HTTP/1.1\nHost: a\n");
    assert_eq!((o.flow, o.asked), (Flow::Continue, None));
}

fn parsed(text: &str) -> (Vec<u8>, RequestHead) {
    let buf = text.replace('\n', "\r\n").into_bytes();
    let mut head = RequestHead::new();
    parse_request(&buf, &Limits::default(), &mut head).unwrap();
    (buf, head)
}

#[test]
fn a_resume_token_of_another_version_starts_the_request_over() {
    let old = Harness::new(BODY_CONFIG);
    let new = Harness::new(&format!(
        "{BODY_CONFIG}[[modules]]\nid = \"deny\"\nkind = \"ip_list\"\nglobal = true\ndeny = [\"192.0.2.1\"]\n"
    ));
    let (buf, head) = parsed("POST /r HTTP/1.1\nHost: a\nContent-Length: 9\n\n");
    let peer = "192.0.2.1".parse().unwrap();
    let mut req = Request {
        buf: &buf,
        head: &head,
        peer,
        body: None,
        tls: false,
    };
    let mut ctx = Context::new();
    ctx.reset(peer, 0, 0);
    let mut core = CoreState::for_snapshot(&old.snap);
    assert_eq!(
        old.snap.pipeline.run(&mut ctx, &req, &old.snap, &mut core),
        Flow::NeedBody(4096)
    );
    // The body arrives after the config changed: the new version's global deny list must
    // still run, although it sits before the position the old version stopped at.
    req.body = Some(br#"{"qty":1}"#);
    let mut core = CoreState::for_snapshot(&new.snap);
    let flow = new.snap.pipeline.run(&mut ctx, &req, &new.snap, &mut core);
    assert!(matches!(flow, Flow::Respond(_)), "{flow:?}");
}

#[test]
fn a_warm_pipeline_allocates_nothing_per_request() {
    let secret = "alloc-test-secret-0123456789abcdef-0123";
    let config = format!(
        r#"{UPSTREAM}
[[modules]]
id = "edge"
kind = "ip_list"
global = true
deny = ["203.0.113.0/24"]
trusted_proxies = ["10.0.0.0/8"]
[[modules]]
id = "p"
kind = "params"
[[modules.params]]
name = "id"
in = "path"
type = "int"
[[modules.params]]
name = "page"
in = "query"
type = "int"
max = 50
[[modules.params]]
name = "qty"
in = "body"
type = "int"
[[modules]]
id = "w"
kind = "waf"
sets = ["sqli", "xss", "php_injection", "path_traversal"]
[[modules]]
id = "lim"
kind = "rate_limit"
rate = 1000000
burst = 1000000
[[modules]]
id = "jwt"
kind = "jwt"
claims_to_headers = {{ sub = "X-User-Id", n = "X-N" }}
[[modules]]
id = "cors"
kind = "cors"
allow_origins = ["https://shop.example.com"]
[[modules]]
id = "hdr"
kind = "headers"
request_set = {{ X-Env = "prod" }}
response_remove = ["Server"]
[[modules]]
id = "cb"
kind = "circuit_breaker"
[[consumers]]
id = "acme"
jwt = {{ algorithm = "HS256", key = "{secret}" }}
[[routes]]
id = "r"
paths = ["/items/{{id}}"]
upstream = "u"
modules = ["p", "w", "lim", "jwt", "cors", "hdr", "cb"]
"#
    );
    let snap = Snapshot::build(conf::Config::from_toml_str(&config).unwrap(), 1).unwrap();
    let mut core = CoreState::for_snapshot(&snap);
    let now = now_unix();
    let token = mint_hs256(
        secret.as_bytes(),
        &format!(
            r#"{{"key":"acme","sub":"user-7","n":12.5,"exp":{}}}"#,
            now + 600
        ),
    );
    let (buf, head) = parsed(&format!(
        "POST /items/42?page=3&q=blue+shoes HTTP/1.1\nHost: shop\nOrigin: https://shop.example.com\n\
         X-Forwarded-For: 198.51.100.4\nAuthorization: Bearer {token}\nContent-Length: 10\n\n"
    ));
    let peer = "10.0.0.1".parse().unwrap();
    let body = br#"{"qty": 3}"#;
    let req = Request {
        buf: &buf,
        head: &head,
        peer,
        body: Some(body),
        tls: false,
    };
    let mut ctx = Context::new();
    let run = |ctx: &mut Context, core: &mut CoreState| {
        ctx.reset(peer, 0, now);
        let flow = snap.pipeline.run(ctx, &req, &snap, core);
        ctx.status = 200;
        snap.pipeline.on_response(ctx);
        flow
    };
    assert_eq!(run(&mut ctx, &mut core), Flow::Continue); // warm-up
    let (n, flow) = crate::modules::ip_list::tests::allocations_during(|| run(&mut ctx, &mut core));
    assert_eq!(flow, Flow::Continue);
    assert_eq!(ctx.client_ip.to_string(), "198.51.100.4");
    assert_eq!(n, 0, "allocations per request");
}
