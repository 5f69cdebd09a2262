//! The auth stages through the pipeline: consumers found and named upstream, refusals, the
//! body checks of hmac_auth and sign_check, and consumer-keyed rate limits after auth.

use crate::modules::hmac_auth::date::format_http_date;
use crate::modules::key_auth::common::B64_STD;
use crate::stages::testutil::{field, rejected, Harness, Outcome};
use crate::token::mint_hs256;
use crate::Flow;
use base64::Engine as _;
use protocols::error::ErrorKind;
use ring::{digest, hmac};

const JWT_SECRET: &str = "acme-jwt-secret-0123456789abcdef0123";
const HMAC_SECRET: &str = "acme-hmac-secret-0123456789abcdef0123";
const APP_SECRET: &str = "app-secret-0123456789abcdef-0123456789";

fn config() -> String {
    format!(
        r#"
[[modules]]
id = "keys"
kind = "key_auth"

[[modules]]
id = "tokens"
kind = "jwt"
claims_to_headers = {{ sub = "X-User-Id", tier = "X-Tier" }}

[[modules]]
id = "signed"
kind = "hmac_auth"

[[modules]]
id = "app-sig"
kind = "sign_check"
apps = {{ shop = {{ algorithm = "HS256", secret = "{APP_SECRET}" }} }}

[[modules]]
id = "per-consumer"
kind = "rate_limit"
rate = 0.5
burst = 1
key = "consumer"

[[consumers]]
id = "acme"
headers = {{ X-Tier-Name = "gold" }}
key_auth = {{ key = "acme-key-0123456789" }}
jwt = {{ algorithm = "HS256", key = "{JWT_SECRET}" }}
hmac_auth = {{ key_id = "acme-hmac-1", secret = "{HMAC_SECRET}" }}

[[consumers]]
id = "other"
key_auth = {{ key = "other-key-0123456789" }}

[[routes]]
id = "k"
paths = ["/k"]
upstream = "u"
modules = ["keys"]

[[routes]]
id = "j"
paths = ["/j"]
upstream = "u"
modules = ["tokens"]

[[routes]]
id = "h"
paths = ["/h"]
upstream = "u"
modules = ["signed"]

[[routes]]
id = "s"
paths = ["/s"]
upstream = "u"
modules = ["app-sig"]

[[routes]]
id = "limited"
paths = ["/limited"]
upstream = "u"
modules = ["per-consumer", "keys"]
"#
    )
}

fn auth_failed(o: &Outcome) {
    assert_eq!(rejected(o).kind, ErrorKind::AuthFailed);
}

#[test]
fn key_auth_names_the_consumer_and_hides_the_key() {
    let mut h = Harness::new(&config());
    let o = h.get("GET /k HTTP/1.1\nHost: a\napikey: acme-key-0123456789\nX-Consumer-Id: forged\n");
    assert_eq!(o.flow, Flow::Continue);
    assert_eq!(o.ctx.consumer, Some(0));
    assert_eq!(
        field(&o.ctx.upstream_headers, "x-consumer-id").as_deref(),
        Some("acme")
    );
    assert_eq!(
        field(&o.ctx.upstream_headers, "X-Tier-Name").as_deref(),
        Some("gold")
    );
    assert!(o.ctx.upstream_remove.contains(b"ApiKey"));
    auth_failed(&h.get("GET /k HTTP/1.1\nHost: a\napikey: nope-nope-nope-nope\n"));
    auth_failed(&h.get("GET /k HTTP/1.1\nHost: a\n"));
}

#[test]
fn jwt_copies_claims_and_refuses_expired_or_tampered_tokens() {
    let mut h = Harness::new(&config());
    let now = h.unix_secs;
    let good = mint_hs256(
        JWT_SECRET.as_bytes(),
        &format!(
            r#"{{"key":"acme","sub":"user-7","tier":3,"exp":{}}}"#,
            now + 60
        ),
    );
    let o = h.get(&format!(
        "GET /j HTTP/1.1\nHost: a\nAuthorization: Bearer {good}\nX-User-Id: forged\n"
    ));
    assert_eq!(o.flow, Flow::Continue);
    assert_eq!(
        field(&o.ctx.upstream_headers, "X-User-Id").as_deref(),
        Some("user-7")
    );
    assert_eq!(
        field(&o.ctx.upstream_headers, "X-Tier").as_deref(),
        Some("3")
    );
    assert_eq!(
        field(&o.ctx.upstream_headers, "X-Consumer-Id").as_deref(),
        Some("acme")
    );
    // A token without a copied claim still removes the client's copy of that header.
    let no_tier = mint_hs256(
        JWT_SECRET.as_bytes(),
        &format!(r#"{{"key":"acme","sub":"u","exp":{}}}"#, now + 60),
    );
    let o = h.get(&format!(
        "GET /j HTTP/1.1\nHost: a\nAuthorization: Bearer {no_tier}\n"
    ));
    assert!(o.ctx.upstream_remove.contains(b"x-tier"));
    assert_eq!(field(&o.ctx.upstream_headers, "X-Tier"), None);

    let expired = mint_hs256(
        JWT_SECRET.as_bytes(),
        &format!(r#"{{"key":"acme","exp":{}}}"#, now - 3600),
    );
    auth_failed(&h.get(&format!(
        "GET /j HTTP/1.1\nHost: a\nAuthorization: Bearer {expired}\n"
    )));
    let mut tampered = good.clone().into_bytes();
    let dot = good.find('.').unwrap_or(0) + 3;
    tampered[dot] = if tampered[dot] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap_or_default();
    auth_failed(&h.get(&format!(
        "GET /j HTTP/1.1\nHost: a\nAuthorization: Bearer {tampered}\n"
    )));
    auth_failed(&h.get("GET /j HTTP/1.1\nHost: a\n"));
}

/// An hmac_auth request: signed Date, nonce, request target, and Digest when there is a body.
fn hmac_request(nonce: &str, now: u64, body: &[u8], secret: &str) -> String {
    let date = String::from_utf8_lossy(&format_http_date(now)).into_owned();
    let mut headers = format!("Host: a\nDate: {date}\nX-Nonce: {nonce}\n");
    let mut names = "(request-target) date x-nonce".to_string();
    let mut lines = vec![
        "(request-target): post /h?x=1".to_string(),
        format!("date: {date}"),
        format!("x-nonce: {nonce}"),
    ];
    if !body.is_empty() {
        let d = B64_STD.encode(digest::digest(&digest::SHA256, body));
        headers.push_str(&format!(
            "Digest: SHA-256={d}\nContent-Length: {}\n",
            body.len()
        ));
        names.push_str(" digest");
        lines.push(format!("digest: SHA-256={d}"));
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let sig = B64_STD.encode(hmac::sign(&key, lines.join("\n").as_bytes()));
    format!(
        "POST /h?x=1 HTTP/1.1\n{headers}Authorization: hmac-auth-v1 keyId=\"acme-hmac-1\",\
         algorithm=\"hmac-sha256\",headers=\"{names}\",signature=\"{sig}\"\n"
    )
}

#[test]
fn hmac_auth_checks_signature_nonce_and_body_digest() {
    let mut h = Harness::new(&config());
    let now = h.unix_secs;
    let req = hmac_request("nonce-000000000000001", now, b"", HMAC_SECRET);
    let o = h.run(&req, "192.0.2.1", b"");
    assert_eq!(o.flow, Flow::Continue);
    assert_eq!(
        field(&o.ctx.upstream_headers, "X-Consumer-Id").as_deref(),
        Some("acme")
    );
    auth_failed(&h.run(&req, "192.0.2.1", b"")); // replayed
    let bad = hmac_request(
        "nonce-000000000000002",
        now,
        b"",
        "wrong-secret-0123456789abcdef-01234",
    );
    auth_failed(&h.run(&bad, "192.0.2.1", b""));
    let stale = hmac_request("nonce-000000000000003", now - 3600, b"", HMAC_SECRET);
    auth_failed(&h.run(&stale, "192.0.2.1", b""));

    let body = br#"{"qty":2}"#;
    let signed = hmac_request("nonce-000000000000004", now, body, HMAC_SECRET);
    let o = h.run(&signed, "192.0.2.1", body);
    assert_eq!(o.flow, Flow::Continue);
    assert_eq!(o.asked, Some(usize::MAX));
    let swapped = hmac_request("nonce-000000000000005", now, body, HMAC_SECRET);
    auth_failed(&h.run(&swapped, "192.0.2.1", br#"{"qty":9}"#));
}

#[test]
fn sign_check_verifies_the_body() {
    let mut h = Harness::new(&config());
    let ts = h.unix_secs.to_string();
    let body = b"amount=10";
    let sign = |body: &[u8]| {
        let d = B64_STD.encode(digest::digest(&digest::SHA256, body));
        let msg = format!("{ts}\nPOST\n/s?o=1\n{d}");
        let key = hmac::Key::new(hmac::HMAC_SHA256, APP_SECRET.as_bytes());
        B64_STD.encode(hmac::sign(&key, msg.as_bytes()))
    };
    let head = |sig: &str| {
        format!(
            "POST /s?o=1 HTTP/1.1\nHost: a\nX-App-Id: shop\nX-Timestamp: {ts}\nX-Signature: {sig}\n\
             Content-Length: {}\n",
            body.len()
        )
    };
    assert_eq!(
        h.run(&head(&sign(body)), "192.0.2.1", body).flow,
        Flow::Continue
    );
    auth_failed(&h.run(&head(&sign(b"amount=99")), "192.0.2.1", body));
}

#[test]
fn consumer_rate_limits_count_per_consumer() {
    let mut h = Harness::new(&config());
    let acme = "GET /limited HTTP/1.1\nHost: a\napikey: acme-key-0123456789\n";
    let other = "GET /limited HTTP/1.1\nHost: a\napikey: other-key-0123456789\n";
    assert_eq!(h.get(acme).flow, Flow::Continue);
    assert_eq!(rejected(&h.get(acme)).kind, ErrorKind::RateLimited);
    assert_eq!(h.get(other).flow, Flow::Continue);
    // Unauthenticated requests are refused by auth before they count.
    auth_failed(&h.get("GET /limited HTTP/1.1\nHost: a\n"));
}

#[test]
fn credential_and_module_errors_name_their_path() {
    let errs = Harness::errors(
        "[[consumers]]\nid = \"a\"\njwt = { algorithm = \"HS256\", key = \"short\" }\n\
         [[consumers]]\nid = \"b\"\nkey_auth = { key = 5 }\n\
         [[modules]]\nid = \"k\"\nkind = \"key_auth\"\nquery_param = \"apikey\"\n\
         [[modules]]\nid = \"j\"\nkind = \"jwt\"\nclock_skew_secs = 99999\n",
    );
    for prefix in [
        "consumers[1].key_auth.key: invalid type",
        "modules[0].hide_credentials: ",
        "modules[1].clock_skew_secs: ",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(prefix)),
            "{prefix}: {errs:#?}"
        );
    }
    let errs = Harness::errors(
        "[[consumers]]\nid = \"a\"\njwt = { algorithm = \"HS256\", key = \"short\" }\n",
    );
    assert!(
        errs.iter().any(|e| e.starts_with("consumers[0].jwt.key: ")),
        "{errs:#?}"
    );
}
