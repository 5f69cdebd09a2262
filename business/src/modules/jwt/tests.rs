//! Tests of the jwt engine with tokens minted here by ring: HS256 with a shared secret, RS256
//! with the committed test RSA key (testdata/), ES256 with a key generated per run.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use ring::{hmac, signature::KeyPair};
use serde::Deserialize;

use super::keys::p256_point_to_pem;
use super::*;
use crate::modules::key_auth::common::B64_URL;
use crate::modules::key_auth::consumer::Consumer;
use crate::modules::key_auth::test_request::TestRequest;

const RSA_PKCS8: &[u8] = include_bytes!("testdata/rsa2048_pkcs8.der");
const RSA_PEM: &str = include_str!("testdata/rsa2048_pub.pem");
const HS_SECRET: &str = "hs-secret-for-tests-0123456789abcdef";
const NOW: u64 = 1_700_000_000;

enum Signer {
    Hs(hmac::Key),
    Rs(RsaKeyPair),
    Es(EcdsaKeyPair),
}

impl Signer {
    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Signer::Hs(k) => hmac::sign(k, msg).as_ref().to_vec(),
            Signer::Rs(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .unwrap();
                sig
            }
            Signer::Es(k) => k.sign(&rng, msg).unwrap().as_ref().to_vec(),
        }
    }
}

fn mint(signer: &Signer, header: &str, claims: &str) -> String {
    let signed = format!("{}.{}", B64_URL.encode(header), B64_URL.encode(claims));
    let sig = signer.sign(signed.as_bytes());
    format!("{signed}.{}", B64_URL.encode(sig))
}

struct Fixture {
    jwt: Jwt,
    idx: ConsumerIndex,
    hs: Signer,
    rs: Signer,
    es: Signer,
}

#[derive(Deserialize)]
struct File {
    modules: Vec<JwtConfig>,
    consumers: Vec<Consumer>,
}

// The example from docs/modules/jwt.md; the PEM keys are filled in below.
const EXAMPLE: &str = r#"
[[modules]]
header = "Authorization"
cookie = "session"
consumer_claim = "key"
fallback_claim = "iss"
clock_skew_secs = 60
max_token_bytes = 8192
require_exp = true
claims_to_headers = { sub = "X-User-Id", tier = "X-Tier" }

[[consumers]]
id = "hs-app"
jwt = { algorithm = "HS256", key = "hs-secret-for-tests-0123456789abcdef" }

[[consumers]]
id = "rs-app"
jwt = { algorithm = "RS256", public_key = "RSA_PEM", issuer = "https://idp.example" }
"#;

fn fixture() -> Fixture {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let es = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let mut f: File = toml::from_str(EXAMPLE).unwrap();
    f.consumers[1].jwt.as_mut().unwrap().public_key = Some(RSA_PEM.into());
    let es_pem = p256_point_to_pem(es.public_key().as_ref());
    let es_consumer = format!(
        "id = \"es-app\"\njwt = {{ algorithm = \"ES256\", public_key = \"\"\"{es_pem}\"\"\" }}"
    );
    f.consumers.push(toml::from_str(&es_consumer).unwrap());
    Fixture {
        jwt: Jwt::compile(&f.modules[0]).unwrap(),
        idx: ConsumerIndex::compile(&f.consumers).unwrap(),
        hs: Signer::Hs(hmac::Key::new(hmac::HMAC_SHA256, HS_SECRET.as_bytes())),
        rs: Signer::Rs(RsaKeyPair::from_pkcs8(RSA_PKCS8).unwrap()),
        es: Signer::Es(es),
    }
}

const HS: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
const RS: &str = r#"{"alg":"RS256","typ":"JWT"}"#;
const ES: &str = r#"{"alg":"ES256"}"#;

fn claims(who: &str, exp: u64) -> String {
    format!(r#"{{"key":"{who}","sub":"user-7","tier":3,"exp":{exp},"iat":{NOW}}}"#)
}

impl Fixture {
    fn check(&self, token: &str) -> Result<String, AuthError> {
        let mut scratch = vec![0u8; self.jwt.scratch_len()];
        let m = self
            .jwt
            .verify_token(token.as_bytes(), &self.idx, NOW, &mut scratch)?;
        let headers: Vec<String> = m.claim_headers().map(|(h, v)| format!("{h}={v}")).collect();
        Ok(format!("{} {}", m.consumer.id, headers.join(",")))
    }
}

#[test]
fn valid_tokens_for_each_algorithm() {
    let f = fixture();
    let hs = mint(&f.hs, HS, &claims("hs-app", NOW + 300));
    assert_eq!(f.check(&hs).unwrap(), "hs-app X-User-Id=user-7,X-Tier=3");
    let rs_claims = format!(
        r#"{{"iss":"https://idp.example","sub":"u","exp":{}}}"#,
        NOW + 10
    );
    let rs = mint(&f.rs, RS, &rs_claims);
    assert_eq!(
        f.check(&rs).unwrap(),
        "rs-app X-User-Id=u",
        "found through `iss`"
    );
    let es = mint(&f.es, ES, &claims("es-app", NOW + 10));
    assert_eq!(f.check(&es).unwrap(), "es-app X-User-Id=user-7,X-Tier=3");
}

#[test]
fn times_are_checked_with_skew() {
    let f = fixture();
    let just_expired_within_skew = mint(&f.hs, HS, &claims("hs-app", NOW - 60));
    assert!(f.check(&just_expired_within_skew).is_ok());
    let expired = mint(&f.hs, HS, &claims("hs-app", NOW - 61));
    assert_eq!(f.check(&expired).unwrap_err(), AuthError::Expired);
    let nbf = format!(
        r#"{{"key":"hs-app","exp":{},"nbf":{}}}"#,
        NOW + 900,
        NOW + 61
    );
    assert_eq!(
        f.check(&mint(&f.hs, HS, &nbf)).unwrap_err(),
        AuthError::NotYetValid
    );
    let iat = format!(
        r#"{{"key":"hs-app","exp":{},"iat":{}}}"#,
        NOW + 900,
        NOW + 120
    );
    assert_eq!(
        f.check(&mint(&f.hs, HS, &iat)).unwrap_err(),
        AuthError::NotYetValid
    );
    let no_exp = mint(&f.hs, HS, r#"{"key":"hs-app"}"#);
    assert_eq!(f.check(&no_exp).unwrap_err(), AuthError::MissingClaim);
}

#[test]
fn tampering_is_detected() {
    let f = fixture();
    let cases = [
        (&f.hs, HS, "hs-app"),
        (&f.rs, RS, "https://idp.example"),
        (&f.es, ES, "es-app"),
    ];
    for (signer, head, who) in cases {
        let c = format!(r#"{{"key":"{who}","exp":{}}}"#, NOW + 10);
        let token = mint(signer, head, &c);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = c.replace(&(NOW + 10).to_string(), &(NOW + 99_999).to_string());
        let tampered_payload = format!("{}.{}.{}", parts[0], B64_URL.encode(forged), parts[2]);
        assert_eq!(
            f.check(&tampered_payload).unwrap_err(),
            AuthError::BadSignature,
            "{who}"
        );
        let mut sig = B64_URL.decode(parts[2]).unwrap();
        sig[5] ^= 1;
        let tampered_sig = format!("{}.{}.{}", parts[0], parts[1], B64_URL.encode(sig));
        assert_eq!(
            f.check(&tampered_sig).unwrap_err(),
            AuthError::BadSignature,
            "{who}"
        );
    }
}

#[test]
fn algorithm_must_be_the_consumers_and_never_none() {
    let f = fixture();
    // HS256 token for the RS256 consumer, keyed with the RSA public key bytes: key confusion.
    let confused = Signer::Hs(hmac::Key::new(hmac::HMAC_SHA256, RSA_PEM.as_bytes()));
    let token = mint(&confused, HS, &claims("https://idp.example", NOW + 10));
    assert_eq!(f.check(&token).unwrap_err(), AuthError::AlgorithmMismatch);
    let none = format!(
        "{}.{}.",
        B64_URL.encode(r#"{"alg":"none"}"#),
        B64_URL.encode(claims("hs-app", NOW + 10))
    );
    assert_eq!(f.check(&none).unwrap_err(), AuthError::MalformedCredentials);
    let none_with_sig = mint(&f.hs, r#"{"alg":"none"}"#, &claims("hs-app", NOW + 10));
    assert_eq!(
        f.check(&none_with_sig).unwrap_err(),
        AuthError::AlgorithmNotAllowed
    );
    let hs512 = mint(&f.hs, r#"{"alg":"HS512"}"#, &claims("hs-app", NOW + 10));
    assert_eq!(f.check(&hs512).unwrap_err(), AuthError::AlgorithmNotAllowed);
    let crit = mint(
        &f.hs,
        r#"{"alg":"HS256","crit":["exp"]}"#,
        &claims("hs-app", NOW + 10),
    );
    assert_eq!(f.check(&crit).unwrap_err(), AuthError::MalformedCredentials);
}

#[test]
fn unknown_consumer_and_missing_identity() {
    let f = fixture();
    let unknown = mint(&f.hs, HS, &claims("nobody", NOW + 10));
    assert_eq!(f.check(&unknown).unwrap_err(), AuthError::UnknownConsumer);
    let anonymous = mint(&f.hs, HS, &format!(r#"{{"exp":{}}}"#, NOW + 10));
    assert_eq!(f.check(&anonymous).unwrap_err(), AuthError::MissingClaim);
}

#[test]
fn malformed_and_oversized_tokens() {
    let f = fixture();
    let good = mint(&f.hs, HS, &claims("hs-app", NOW + 10));
    let parts: Vec<&str> = good.split('.').collect();
    for bad in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "..",
        &format!("{}.{}", parts[0], parts[1]),
        &format!("{}..{}", parts[0], parts[2]),
        &format!("{}.{}.{}", parts[0], "!!!", parts[2]),
        &format!("{}.{}.{}", B64_URL.encode("not json"), parts[1], parts[2]),
        &format!("{}.{}.{}", parts[0], B64_URL.encode("[1]"), parts[2]),
        &format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
    ] {
        assert_eq!(
            f.check(bad).unwrap_err(),
            AuthError::MalformedCredentials,
            "{bad:?}"
        );
    }
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], "@@@@");
    assert_eq!(f.check(&bad_sig).unwrap_err(), AuthError::BadSignature);
    let huge = format!(
        r#"{{"key":"hs-app","exp":{},"pad":"{}"}}"#,
        NOW + 10,
        "x".repeat(9000)
    );
    assert_eq!(
        f.check(&mint(&f.hs, HS, &huge)).unwrap_err(),
        AuthError::TooLarge
    );
    // A scratch buffer smaller than asked for is refused, not overrun.
    let mut tiny = [0u8; 8];
    let r = f.jwt.verify_token(good.as_bytes(), &f.idx, NOW, &mut tiny);
    assert!(r.is_err());
}

#[test]
fn token_sources() {
    let f = fixture();
    let token = mint(&f.hs, HS, &claims("hs-app", NOW + 10));
    let mut scratch = vec![0u8; f.jwt.scratch_len()];
    let run = |req: &TestRequest, scratch: &mut [u8]| {
        f.jwt
            .authenticate(req, &f.idx, NOW, scratch)
            .map(|m| m.consumer.id.clone())
    };
    let bearer = TestRequest::new("GET", "/").with("authorization", format!("bearer  {token}"));
    assert_eq!(run(&bearer, &mut scratch).unwrap(), "hs-app");
    let basic = TestRequest::new("GET", "/").with("Authorization", format!("Basic {token}"));
    assert_eq!(
        run(&basic, &mut scratch).unwrap_err(),
        AuthError::MissingCredentials
    );
    let cookie = TestRequest::new("GET", "/").with("Cookie", format!("a=1; session={token}"));
    assert_eq!(run(&cookie, &mut scratch).unwrap(), "hs-app");
    let none = TestRequest::new("GET", "/").with("Cookie", "a=1");
    assert_eq!(
        run(&none, &mut scratch).unwrap_err(),
        AuthError::MissingCredentials
    );
    let empty = TestRequest::new("GET", "/").with("Authorization", "Bearer ");
    assert_eq!(
        run(&empty, &mut scratch).unwrap_err(),
        AuthError::MissingCredentials
    );

    let custom = Jwt::compile(&JwtConfig {
        header: "X-Token".into(),
        ..JwtConfig::default()
    })
    .unwrap();
    let raw = TestRequest::new("GET", "/").with("x-token", &token);
    let m = custom
        .authenticate(&raw, &f.idx, NOW, &mut scratch)
        .unwrap();
    assert_eq!(m.consumer.id, "hs-app");
}

#[test]
fn config_defaults_and_errors() {
    let cfg: JwtConfig = toml::from_str("").unwrap();
    assert_eq!(cfg, JwtConfig::default());
    assert_eq!((cfg.clock_skew_secs, cfg.max_token_bytes), (60, 8192));
    let mut bad = JwtConfig {
        clock_skew_secs: 7200,
        max_token_bytes: 10,
        consumer_claim: String::new(),
        ..JwtConfig::default()
    };
    bad.claims_to_headers
        .insert("sub".into(), "Content-Length".into());
    bad.claims_to_headers
        .insert("x".into(), "bad header".into());
    let errs = Jwt::compile(&bad).unwrap_err();
    let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "consumer_claim",
            "clock_skew_secs",
            "max_token_bytes",
            "claims_to_headers.sub",
            "claims_to_headers.x"
        ]
    );
    assert!(toml::from_str::<JwtConfig>("algorithms = []").is_err());
}

#[test]
fn documented_example_compiles() {
    let cfg: JwtConfig = crate::modules::ip_list::tests::doc_example(
        "jwt",
        include_str!("../../../../docs/modules/jwt.md"),
    );
    assert_eq!(cfg.cookie.as_deref(), Some("session"));
    assert!(Jwt::compile(&cfg).is_ok());
}

#[test]
fn hs256_and_es256_verification_do_not_allocate() {
    // RS256 is left out: ring's RSA arithmetic allocates its big integers (documented).
    let f = fixture();
    let hs = mint(&f.hs, HS, &claims("hs-app", NOW + 300));
    let es = mint(&f.es, ES, &claims("es-app", NOW + 300));
    let mut scratch = vec![0u8; f.jwt.scratch_len()];
    for token in [hs, es] {
        let (n, copied) = crate::modules::ip_list::tests::allocations_during(|| {
            let m = f
                .jwt
                .verify_token(token.as_bytes(), &f.idx, NOW, &mut scratch);
            m.map(|m| m.claim_headers().count())
        });
        assert_eq!(copied, Ok(2));
        assert_eq!(n, 0);
    }
}
