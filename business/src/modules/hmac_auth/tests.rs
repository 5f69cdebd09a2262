//! Tests of the hmac_auth engine. Requests are signed here the way docs/modules/hmac_auth.md
//! tells clients to: by building the signing string as text, independently of the engine's
//! streamed computation.

use base64::Engine as _;
use ring::{digest, hmac};
use serde::Deserialize;

use super::date::format_http_date;
use super::*;
use crate::modules::key_auth::common::B64_STD;
use crate::modules::key_auth::consumer::Consumer;
use crate::modules::key_auth::test_request::TestRequest;

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "acme-hmac-secret-0123456789abcdef0123";

#[derive(Deserialize)]
struct File {
    modules: Vec<HmacAuthConfig>,
    consumers: Vec<Consumer>,
}

// The example from docs/modules/hmac_auth.md.
const EXAMPLE: &str = r#"
[[modules]]
clock_skew_secs = 300
date_header = "date"
nonce_header = "x-nonce"
min_nonce_bytes = 16
max_nonce_bytes = 128
enforce_body_digest = true
required_headers = []
max_entries = 262144
when_full = "reject"

[[consumers]]
id = "acme"
hmac_auth = { key_id = "acme-hmac-1", secret = "acme-hmac-secret-0123456789abcdef0123" }
"#;

fn setup() -> (HmacAuth, ConsumerIndex) {
    let f: File = toml::from_str(EXAMPLE).unwrap();
    let m = HmacAuth::compile(&f.modules[0]).unwrap();
    (m, ConsumerIndex::compile(&f.consumers).unwrap())
}

/// A client: signs `names` of `req` with `secret` as documented.
fn sign(req: &mut TestRequest, names: &str, secret: &str) {
    let lines: Vec<String> = names
        .split(' ')
        .map(|n| {
            if n == "(request-target)" {
                format!(
                    "(request-target): {} {}",
                    req.method.to_lowercase(),
                    req.target
                )
            } else {
                let v = req
                    .header(n)
                    .map(|v| String::from_utf8_lossy(v).trim().to_string());
                format!("{n}: {}", v.unwrap_or_default())
            }
        })
        .collect();
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let sig = B64_STD.encode(hmac::sign(&key, lines.join("\n").as_bytes()));
    req.set(
        "Authorization",
        format!(
            r#"hmac-auth-v1 keyId="acme-hmac-1",algorithm="hmac-sha256",headers="{names}",signature="{sig}""#
        ),
    );
}

fn request(nonce: &str, body: Option<&[u8]>) -> TestRequest {
    let mut req = TestRequest::new("POST", "/orders?id=7")
        .with("Date", format_http_date(NOW - 5))
        .with("X-Nonce", nonce)
        .with("X-Custom", "  value 1 ");
    let mut names = "(request-target) date x-nonce x-custom".to_string();
    if let Some(body) = body {
        let d = digest::digest(&digest::SHA256, body);
        req.set("Digest", format!("SHA-256={}", B64_STD.encode(d)));
        names.push_str(" digest");
    }
    sign(&mut req, &names, SECRET);
    req
}

#[test]
fn valid_request_without_body() {
    let (m, idx) = setup();
    let req = request("nonce-0000000000001", None);
    let ok = m.authenticate(&req, &idx, NOW, false).unwrap();
    assert_eq!(ok.consumer.id, "acme");
    assert!(ok.body.is_none());
}

#[test]
fn valid_request_with_streamed_body() {
    let (m, idx) = setup();
    let body = b"{\"item\":42,\"qty\":3}";
    let req = request("nonce-0000000000002", Some(body));
    let ok = m.authenticate(&req, &idx, NOW, true).unwrap();
    let mut check = ok.body.unwrap();
    for chunk in body.chunks(5) {
        check.update(chunk);
    }
    assert!(check.finish().is_ok());
}

#[test]
fn digest_mismatch_and_missing_digest() {
    let (m, idx) = setup();
    let req = request("nonce-0000000000003", Some(b"original"));
    let mut check = m.authenticate(&req, &idx, NOW, true).unwrap().body.unwrap();
    check.update(b"swapped!");
    assert_eq!(check.finish(), Err(AuthError::DigestMismatch));
    let no_digest = request("nonce-0000000000004", None);
    assert_eq!(
        m.authenticate(&no_digest, &idx, NOW, true).unwrap_err(),
        AuthError::MissingDigest
    );
    // An unsigned Digest header counts as no digest.
    let mut unsigned = request("nonce-0000000000005", None);
    unsigned.set(
        "Digest",
        "SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
    );
    assert_eq!(
        m.authenticate(&unsigned, &idx, NOW, true).unwrap_err(),
        AuthError::MissingDigest
    );
}

#[test]
fn wrong_secret_and_tampering() {
    let (m, idx) = setup();
    let mut wrong = request("nonce-0000000000006", None);
    sign(
        &mut wrong,
        "(request-target) date x-nonce",
        "another-secret-0123456789abcdef0123",
    );
    assert_eq!(
        m.authenticate(&wrong, &idx, NOW, false).unwrap_err(),
        AuthError::BadSignature
    );

    let mut tampered = request("nonce-0000000000007", None);
    tampered.set("X-Custom", "value 2");
    assert_eq!(
        m.authenticate(&tampered, &idx, NOW, false).unwrap_err(),
        AuthError::BadSignature
    );

    let mut retargeted = request("nonce-0000000000008", None);
    retargeted.target = "/orders?id=8".into();
    assert_eq!(
        m.authenticate(&retargeted, &idx, NOW, false).unwrap_err(),
        AuthError::BadSignature
    );

    let mut method = request("nonce-0000000000009", None);
    method.method = "DELETE".into();
    assert_eq!(
        m.authenticate(&method, &idx, NOW, false).unwrap_err(),
        AuthError::BadSignature
    );

    // A tampered request must not burn the nonce: the genuine one still passes.
    let genuine = request("nonce-0000000000007", None);
    assert!(m.authenticate(&genuine, &idx, NOW, false).is_ok());
}

#[test]
fn stale_or_future_date() {
    let (m, idx) = setup();
    let req = request("nonce-0000000000010", None);
    assert_eq!(
        m.authenticate(&req, &idx, NOW + 306, false).unwrap_err(),
        AuthError::StaleTimestamp
    );
    assert_eq!(
        m.authenticate(&req, &idx, NOW - 400, false).unwrap_err(),
        AuthError::StaleTimestamp
    );
    assert!(m.authenticate(&req, &idx, NOW + 295, false).is_ok());
    let mut bad_date = request("nonce-0000000000011", None);
    bad_date.set("Date", "yesterday");
    sign(&mut bad_date, "(request-target) date x-nonce", SECRET);
    let err = m.authenticate(&bad_date, &idx, NOW, false).unwrap_err();
    assert_eq!(err, AuthError::MalformedCredentials);
}

#[test]
fn replayed_nonce_is_refused_across_versions() {
    let (m, idx) = setup();
    let req = request("nonce-0000000000012", None);
    assert!(m.authenticate(&req, &idx, NOW, false).is_ok());
    assert_eq!(
        m.authenticate(&req, &idx, NOW + 1, false).unwrap_err(),
        AuthError::Replayed
    );
    // A new config version with the same cache size keeps the memory of seen nonces.
    let cfg = HmacAuthConfig {
        clock_skew_secs: 200,
        ..HmacAuthConfig::default()
    };
    let next = HmacAuth::compile_after(&cfg, Some(&m)).unwrap();
    assert!(Arc::ptr_eq(next.nonce_cache(), m.nonce_cache()));
    assert_eq!(
        next.authenticate(&req, &idx, NOW + 2, false).unwrap_err(),
        AuthError::Replayed
    );
    let resized = HmacAuthConfig {
        max_entries: 4096,
        ..cfg
    };
    let fresh = HmacAuth::compile_after(&resized, Some(&m)).unwrap();
    assert!(!Arc::ptr_eq(fresh.nonce_cache(), m.nonce_cache()));
}

#[test]
fn missing_pieces() {
    let (m, idx) = setup();
    let run = |req: &TestRequest| m.authenticate(req, &idx, NOW, false).unwrap_err();

    let mut no_auth = request("nonce-0000000000013", None);
    no_auth.remove("Authorization");
    assert_eq!(run(&no_auth), AuthError::MissingCredentials);

    let mut other_scheme = request("nonce-0000000000014", None);
    other_scheme.set("Authorization", "Bearer abc");
    assert_eq!(run(&other_scheme), AuthError::MissingCredentials);

    let mut no_nonce_signed = request("nonce-0000000000015", None);
    sign(&mut no_nonce_signed, "(request-target) date", SECRET);
    assert_eq!(run(&no_nonce_signed), AuthError::MissingClaim);

    let mut no_nonce = request("nonce-0000000000016", None);
    no_nonce.remove("X-Nonce");
    assert_eq!(run(&no_nonce), AuthError::MissingClaim);

    let mut short_nonce = request("short", None);
    sign(&mut short_nonce, "(request-target) date x-nonce", SECRET);
    assert_eq!(run(&short_nonce), AuthError::MalformedCredentials);

    let mut no_date = request("nonce-0000000000017", None);
    no_date.remove("Date");
    assert_eq!(run(&no_date), AuthError::MissingClaim);

    let mut listed_absent = request("nonce-0000000000018", None);
    sign(
        &mut listed_absent,
        "(request-target) date x-nonce x-absent",
        SECRET,
    );
    assert_eq!(run(&listed_absent), AuthError::MissingClaim);

    let mut unknown_key = request("nonce-0000000000019", None);
    let auth = String::from_utf8(unknown_key.header("authorization").unwrap().to_vec()).unwrap();
    unknown_key.set("Authorization", auth.replace("acme-hmac-1", "nobody"));
    assert_eq!(run(&unknown_key), AuthError::UnknownConsumer);

    let mut sha1 = request("nonce-0000000000020", None);
    let auth = String::from_utf8(sha1.header("authorization").unwrap().to_vec()).unwrap();
    sha1.set("Authorization", auth.replace("hmac-sha256", "hmac-sha1"));
    assert_eq!(run(&sha1), AuthError::AlgorithmNotAllowed);
}

#[test]
fn authorization_syntax() {
    let ok = br#"hmac-auth-v1 keyId="k", algorithm="hmac-sha256",headers="date",signature="c2ln""#;
    let p = parse_authorization(ok).unwrap();
    assert_eq!(
        (p.key_id, p.headers, p.signature),
        (&b"k"[..], &b"date"[..], &b"c2ln"[..])
    );
    for bad in [
        &br#"hmac-auth-v1 keyId="k",algorithm="hmac-sha256",headers="date""#[..],
        br#"hmac-auth-v1 keyId="k",keyId="j",algorithm="a",headers="h",signature="s""#,
        br#"hmac-auth-v1 keyId=k,algorithm="a",headers="h",signature="s""#,
        br#"hmac-auth-v1 keyId="k" algorithm="a",headers="h",signature="s""#,
        br#"hmac-auth-v1 keyId="k\"",algorithm="a",headers="h",signature="s""#,
        br#"hmac-auth-v1 keyId="k",algorithm="a",headers="h",signature="s",extra="x""#,
        br#"hmac-auth-v1 keyId="k,algorithm="a",headers="h",signature="s"#,
    ] {
        let err = parse_authorization(bad).err();
        assert_eq!(
            err,
            Some(AuthError::MalformedCredentials),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(
        SignedHeaders::parse(b"date Date").is_err(),
        "lower case only"
    );
    assert!(SignedHeaders::parse(b"date date").is_err(), "no duplicates");
    let many = (0..17)
        .map(|i| format!("h{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(SignedHeaders::parse(many.as_bytes()).is_err());
    assert!(
        parse_digest(b"SHA-512=abc, sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
            .is_some()
    );
    assert!(parse_digest(b"SHA-256=AAAA").is_none());
}

#[test]
fn config_defaults_and_errors() {
    let cfg: HmacAuthConfig = toml::from_str("").unwrap();
    assert_eq!(cfg, HmacAuthConfig::default());
    let bad = HmacAuthConfig {
        clock_skew_secs: 99_999,
        nonce_header: "x nonce".into(),
        min_nonce_bytes: 4,
        max_entries: 10,
        ..HmacAuthConfig::default()
    };
    let errs = HmacAuth::compile(&bad).unwrap_err();
    let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "clock_skew_secs",
            "nonce_header",
            "min_nonce_bytes",
            "max_entries"
        ]
    );
    assert!(toml::from_str::<HmacAuthConfig>("when_full = \"drop\"").is_err());
}

#[test]
fn documented_worked_example_verifies() {
    let (m, idx) = setup();
    let now = 1_700_000_000; // Tue, 14 Nov 2023 22:13:20 GMT, 5 s after the example's date
    let req = TestRequest::new("POST", "/orders?id=7")
        .with("Date", "Tue, 14 Nov 2023 22:13:15 GMT")
        .with("X-Nonce", "6f1c2b7a9d3e4f50")
        .with("Digest", "SHA-256=vHlB39UT0/KDXUZX5Su9O9WV3NTPa+Ezu9WqOwubvZg=")
        .with(
            "Authorization",
            r#"hmac-auth-v1 keyId="acme-hmac-1",algorithm="hmac-sha256",headers="(request-target) date x-nonce digest",signature="DbEifnBCRd6BcFa5N0OWe34nqBC5a0xTYPxGtr1r4OY=""#,
        );
    let mut body = m.authenticate(&req, &idx, now, true).unwrap().body.unwrap();
    body.update(br#"{"item":42}"#);
    assert_eq!(body.finish(), Ok(()));
}

#[test]
fn documented_example_compiles() {
    let cfg: HmacAuthConfig = crate::modules::ip_list::tests::doc_example(
        "hmac_auth",
        include_str!("../../../../docs/modules/hmac_auth.md"),
    );
    assert_eq!(cfg, HmacAuthConfig::default());
    assert!(HmacAuth::compile(&cfg).is_ok());
}

#[test]
fn verification_and_body_check_do_not_allocate() {
    let (m, idx) = setup();
    let body = b"{\"item\":42}";
    let req = request("nonce-0000000000099", Some(body));
    let (n, ok) = crate::modules::ip_list::tests::allocations_during(|| {
        let mut check = m.authenticate(&req, &idx, NOW, true).ok()?.body?;
        check.update(body);
        check.finish().ok()
    });
    assert_eq!(ok, Some(()));
    assert_eq!(n, 0);
}
