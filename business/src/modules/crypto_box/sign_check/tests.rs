//! Tests of sign_check with signatures made here by ring the way docs/modules/sign_check.md
//! tells apps to: HMAC with a secret, RSA with the committed test key, ECDSA with a fresh key.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use ring::{digest, hmac};

use super::*;
use crate::modules::jwt::keys::p256_point_to_pem;
use crate::modules::key_auth::test_request::TestRequest;

const RSA_PKCS8: &[u8] = include_bytes!("../../jwt/testdata/rsa2048_pkcs8.der");
const RSA_PEM: &str = include_str!("../../jwt/testdata/rsa2048_pub.pem");
const SECRET: &str = "app1-signing-secret-0123456789abcdef";
const NOW: u64 = 1_700_000_000;

// The example from docs/modules/sign_check.md (PEM filled in below).
const EXAMPLE: &str = r#"
[[modules]]
app_header = "X-App-Id"
signature_header = "X-Signature"
timestamp_header = "X-Timestamp"
clock_skew_secs = 300
max_target_bytes = 4096
apps.app1 = { algorithm = "HS256", secret = "app1-signing-secret-0123456789abcdef" }
apps.app2 = { algorithm = "RS256", public_key = "RSA_PEM" }
"#;

#[derive(serde::Deserialize)]
struct File {
    modules: Vec<SignCheckConfig>,
}

fn setup() -> (SignCheck, EcdsaKeyPair) {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let es = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let mut cfg = toml::from_str::<File>(EXAMPLE).unwrap().modules.remove(0);
    cfg.apps.get_mut("app2").unwrap().public_key = Some(RSA_PEM.into());
    let es_signer = AppSigner {
        algorithm: SigAlgorithm::ES256,
        secret: None,
        public_key: Some(p256_point_to_pem(es.public_key().as_ref())),
    };
    cfg.apps.insert("app3".into(), es_signer);
    (SignCheck::compile(&cfg).unwrap(), es)
}

/// The documented message: timestamp, method, target, base64(sha256(body)).
fn message(ts: u64, method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let d = B64_STD.encode(digest::digest(&digest::SHA256, body));
    format!("{ts}\n{method}\n{target}\n{d}").into_bytes()
}

fn signed(app: &str, sig: Vec<u8>, ts: u64) -> TestRequest {
    TestRequest::new("POST", "/v1/pay?x=1")
        .with("X-App-Id", app)
        .with("X-Timestamp", ts.to_string())
        .with("X-Signature", B64_STD.encode(sig))
}

fn hmac_req(body: &[u8], ts: u64, secret: &str) -> TestRequest {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let sig = hmac::sign(&key, &message(ts, "POST", "/v1/pay?x=1", body));
    signed("app1", sig.as_ref().to_vec(), ts)
}

#[test]
fn valid_signatures_each_algorithm() {
    let (m, es) = setup();
    let body = b"{\"amount\":100}";
    assert_eq!(m.verify(&hmac_req(body, NOW, SECRET), body, NOW), Ok(()));

    let rsa = RsaKeyPair::from_pkcs8(RSA_PKCS8).unwrap();
    let mut sig = vec![0; rsa.public().modulus_len()];
    let msg = message(NOW, "POST", "/v1/pay?x=1", body);
    rsa.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        &msg,
        &mut sig,
    )
    .unwrap();
    assert_eq!(m.verify(&signed("app2", sig, NOW), body, NOW), Ok(()));

    let sig = es
        .sign(&SystemRandom::new(), &msg)
        .unwrap()
        .as_ref()
        .to_vec();
    let req = signed("app3", sig, NOW);
    // Streamed in chunks, as the stage feeds the body.
    let mut pending = m.check_head(&req, NOW).unwrap();
    for chunk in body.chunks(3) {
        pending.update(chunk);
    }
    assert_eq!(pending.finish(&m, &req), Ok(()));
}

#[test]
fn tampering_wrong_key_and_staleness() {
    let (m, _) = setup();
    let body = b"{\"amount\":100}";
    let req = hmac_req(body, NOW, SECRET);
    assert_eq!(
        m.verify(&req, b"{\"amount\":999}", NOW),
        Err(AuthError::BadSignature)
    );
    let mut moved = req.clone();
    moved.target = "/v1/refund?x=1".into();
    assert_eq!(m.verify(&moved, body, NOW), Err(AuthError::BadSignature));
    let mut later = req.clone();
    later.set("X-Timestamp", (NOW + 1).to_string());
    assert_eq!(
        m.verify(&later, body, NOW),
        Err(AuthError::BadSignature),
        "ts is signed"
    );
    let wrong = hmac_req(body, NOW, "another-secret-0123456789abcdef0123");
    assert_eq!(m.verify(&wrong, body, NOW), Err(AuthError::BadSignature));
    // The same request replayed after the window.
    assert_eq!(
        m.verify(&req, body, NOW + 301),
        Err(AuthError::StaleTimestamp)
    );
    assert_eq!(
        m.verify(&req, body, NOW - 301),
        Err(AuthError::StaleTimestamp)
    );
    assert_eq!(m.verify(&req, body, NOW + 300), Ok(()));
}

#[test]
fn missing_and_malformed_pieces() {
    let (m, _) = setup();
    let body = b"x";
    let good = hmac_req(body, NOW, SECRET);
    let mut unknown = good.clone();
    unknown.set("X-App-Id", "app9");
    assert_eq!(m.verify(&unknown, body, NOW), Err(AuthError::UnknownApp));
    let mut no_app = good.clone();
    no_app.remove("X-App-Id");
    assert_eq!(m.verify(&no_app, body, NOW), Err(AuthError::UnknownApp));
    let mut no_sig = good.clone();
    no_sig.remove("X-Signature");
    assert_eq!(
        m.verify(&no_sig, body, NOW),
        Err(AuthError::MissingCredentials)
    );
    let mut bad_b64 = good.clone();
    bad_b64.set("X-Signature", "not*base64");
    assert_eq!(
        m.verify(&bad_b64, body, NOW),
        Err(AuthError::MalformedCredentials)
    );
    let mut no_ts = good.clone();
    no_ts.remove("X-Timestamp");
    assert_eq!(m.verify(&no_ts, body, NOW), Err(AuthError::MissingClaim));
    let mut bad_ts = good.clone();
    bad_ts.set("X-Timestamp", "17e8");
    assert_eq!(
        m.verify(&bad_ts, body, NOW),
        Err(AuthError::MalformedCredentials)
    );
    let mut long = good.clone();
    long.target = format!("/{}", "a".repeat(5000));
    assert_eq!(m.verify(&long, body, NOW), Err(AuthError::TooLarge));
}

#[test]
fn config_defaults_and_errors() {
    let cfg: SignCheckConfig = toml::from_str("").unwrap();
    assert_eq!(cfg.signature_header, "X-Signature");
    assert_eq!(SignCheck::compile(&cfg).unwrap_err()[0].field, "apps");
    let mut bad = SignCheckConfig {
        max_target_bytes: 100_000,
        ..SignCheckConfig::default()
    };
    let weak = AppSigner {
        algorithm: SigAlgorithm::HS256,
        secret: Some("short".into()),
        public_key: None,
    };
    bad.apps.insert("weak".into(), weak);
    let errs = SignCheck::compile(&bad).unwrap_err();
    let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["max_target_bytes", "apps.weak.secret"]);
    assert!(
        !format!("{bad:?}").contains("short"),
        "secrets never printed"
    );
}

#[test]
fn documented_worked_example_verifies() {
    let (m, _) = setup();
    let req = TestRequest::new("POST", "/v1/pay?x=1")
        .with("X-App-Id", "app1")
        .with("X-Timestamp", "1700000000")
        .with(
            "X-Signature",
            "7T0BItKEvRU+M5IcSCQUGOp/ZlOdZ/d5Yim6YuA+o4w=",
        );
    assert_eq!(m.verify(&req, br#"{"amount":100}"#, NOW + 10), Ok(()));
}

#[test]
fn documented_example_compiles() {
    let mut cfg: SignCheckConfig = crate::modules::ip_list::tests::doc_example(
        "sign_check",
        include_str!("../../../../../docs/modules/sign_check.md"),
    );
    // The page shows `<PEM>` for the RS256 app; any real key goes there.
    cfg.apps.get_mut("app2").unwrap().public_key = Some(RSA_PEM.into());
    assert!(SignCheck::compile(&cfg).is_ok());
}

#[test]
fn hmac_and_ecdsa_checks_do_not_allocate() {
    let (m, es) = setup();
    let body = b"{\"amount\":100}";
    let hs = hmac_req(body, NOW, SECRET);
    let msg = message(NOW, "POST", "/v1/pay?x=1", body);
    let ec = signed(
        "app3",
        es.sign(&SystemRandom::new(), &msg)
            .unwrap()
            .as_ref()
            .to_vec(),
        NOW,
    );
    for req in [hs, ec] {
        let (n, ok) =
            crate::modules::ip_list::tests::allocations_during(|| m.verify(&req, body, NOW));
        assert_eq!(ok, Ok(()));
        assert_eq!(n, 0);
    }
}
