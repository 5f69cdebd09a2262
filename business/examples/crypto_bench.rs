//! Micro-benchmarks of the auth and crypto engines: times N iterations of each per-request
//! operation with `std::time::Instant` and prints ns/op. No harness crate needed:
//!
//!     cargo run --release -p business --example crypto_bench [-- SECONDS_PER_CASE]
//!
//! Figures go to docs/modules/decrypt.md. Each case runs the engine's public per-request call
//! exactly as a stage would, on inputs prepared outside the timed loop.

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use business::modules::crypto_box::decrypt::PLAINTEXT_OFFSET;
use business::modules::crypto_box::decrypt::{BodyEncoding, Decrypt, DecryptConfig};
use business::modules::crypto_box::sign_check::{AppSigner, SignCheck, SignCheckConfig};
use business::modules::hmac_auth::date::format_http_date;
use business::modules::hmac_auth::{HmacAuth, HmacAuthConfig};
use business::modules::jwt::keys::{p256_point_to_pem, SigAlgorithm};
use business::modules::jwt::{Jwt, JwtConfig};
use business::modules::key_auth::common::{RequestView, B64_STD, B64_URL};
use business::modules::key_auth::consumer::{
    Consumer, ConsumerIndex, HmacCredential, JwtCredential,
};
use ring::aead::{self, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use ring::{digest, hmac};

const RSA_PKCS8: &[u8] = include_bytes!("../src/modules/jwt/testdata/rsa2048_pkcs8.der");
const RSA_PEM: &str = include_str!("../src/modules/jwt/testdata/rsa2048_pub.pem");
const SECRET: &str = "bench-secret-0123456789abcdef0123456789";
const NOW: u64 = 1_700_000_000;

struct Req {
    method: &'static str,
    target: &'static str,
    headers: Vec<(&'static str, Vec<u8>)>,
}

impl RequestView for Req {
    fn method(&self) -> &[u8] {
        self.method.as_bytes()
    }
    fn target(&self) -> &[u8] {
        self.target.as_bytes()
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Nanoseconds this thread has spent on a CPU (Linux schedstat), so figures stay meaningful on
/// a shared, oversubscribed machine where wall time includes waiting for a core.
fn cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Per-call cost: on-CPU ns when available, else wall ns.
#[derive(Clone, Copy)]
struct Cost {
    wall: f64,
    cpu: Option<f64>,
}

impl std::ops::Sub for Cost {
    type Output = Cost;
    fn sub(self, rhs: Cost) -> Cost {
        Cost {
            wall: self.wall - rhs.wall,
            cpu: self.cpu.zip(rhs.cpu).map(|(a, b)| a - b),
        }
    }
}

/// Runs `f` repeatedly for about `budget` and returns its cost per call.
fn time(budget: Duration, mut f: impl FnMut(u64)) -> Cost {
    for i in 0..32 {
        f(i);
    }
    let mut iters = 0u64;
    let cpu0 = cpu_ns();
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..64 {
            f(iters);
            iters += 1;
        }
    }
    let wall = start.elapsed().as_nanos() as f64 / iters as f64;
    let cpu = cpu0
        .zip(cpu_ns())
        .map(|(a, b)| (b - a) as f64 / iters as f64);
    Cost { wall, cpu }
}

fn report(name: &str, c: Cost) {
    let cpu = c.cpu.map_or("n/a".to_string(), |v| format!("{v:.0}"));
    println!(
        "{name:<36} {cpu:>9} ns/op on-CPU {:>9.0} ns/op wall",
        c.wall
    );
}

fn consumer(id: &str, jwt: JwtCredential) -> Consumer {
    Consumer {
        id: id.into(),
        username: None,
        headers: Default::default(),
        key_auth: None,
        jwt: Some(jwt),
        hmac_auth: None,
    }
}

fn mint(header: &str, claims: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let signed = format!("{}.{}", B64_URL.encode(header), B64_URL.encode(claims));
    let sig = sign(signed.as_bytes());
    format!("{signed}.{}", B64_URL.encode(sig))
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let budget = Duration::from_secs_f64(secs);
    let rng = SystemRandom::new();

    // JWT consumers, one per algorithm.
    let es_alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let es_pkcs8 = EcdsaKeyPair::generate_pkcs8(es_alg, &rng).expect("ec key");
    let es = EcdsaKeyPair::from_pkcs8(es_alg, es_pkcs8.as_ref(), &rng).expect("ec key");
    let rsa = RsaKeyPair::from_pkcs8(RSA_PKCS8).expect("rsa key");
    let cred = |algorithm, key: Option<&str>, public_key: Option<String>| JwtCredential {
        algorithm,
        key: key.map(Into::into),
        public_key,
        issuer: None,
    };
    let mut hmac_consumer = consumer("hs", cred(SigAlgorithm::HS256, Some(SECRET), None));
    hmac_consumer.hmac_auth = Some(HmacCredential {
        key_id: "bench".into(),
        secret: SECRET.into(),
    });
    let consumers = vec![
        hmac_consumer,
        consumer("rs", cred(SigAlgorithm::RS256, None, Some(RSA_PEM.into()))),
        consumer(
            "es",
            cred(
                SigAlgorithm::ES256,
                None,
                Some(p256_point_to_pem(es.public_key().as_ref())),
            ),
        ),
    ];
    let idx = ConsumerIndex::compile(&consumers).expect("consumers");
    let mut cfg = JwtConfig::default();
    cfg.claims_to_headers
        .insert("sub".into(), "X-User-Id".into());
    let jwt = Jwt::compile(&cfg).expect("jwt");
    let claims = |who: &str| format!(r#"{{"key":"{who}","sub":"user-42","exp":{}}}"#, NOW + 3600);
    let hs_key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let tokens = [
        (
            "jwt HS256 verify",
            mint(r#"{"alg":"HS256"}"#, &claims("hs"), |m| {
                hmac::sign(&hs_key, m).as_ref().to_vec()
            }),
        ),
        (
            "jwt RS256 verify (2048-bit)",
            mint(r#"{"alg":"RS256"}"#, &claims("rs"), |m| {
                let mut sig = vec![0; rsa.public().modulus_len()];
                rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, m, &mut sig)
                    .expect("sign");
                sig
            }),
        ),
        (
            "jwt ES256 verify",
            mint(r#"{"alg":"ES256"}"#, &claims("es"), |m| {
                es.sign(&rng, m).expect("sign").as_ref().to_vec()
            }),
        ),
    ];
    let mut scratch = vec![0u8; jwt.scratch_len()];
    for (name, token) in &tokens {
        let ns = time(budget, |_| {
            let m = jwt
                .verify_token(token.as_bytes(), &idx, NOW, &mut scratch)
                .expect("valid");
            black_box(m.claim_headers().count());
        });
        report(name, ns);
    }

    // sign_check HS256 over a 1 KiB body.
    let body = vec![b'x'; 1024];
    let mut sc_cfg = SignCheckConfig::default();
    sc_cfg.apps.insert(
        "app1".into(),
        AppSigner {
            algorithm: SigAlgorithm::HS256,
            secret: Some(SECRET.into()),
            public_key: None,
        },
    );
    let sc = SignCheck::compile(&sc_cfg).expect("sign_check");
    let d = B64_STD.encode(digest::digest(&digest::SHA256, &body));
    let msg = format!("{NOW}\nPOST\n/v1/pay\n{d}");
    let sig = B64_STD.encode(hmac::sign(&hs_key, msg.as_bytes()));
    let sc_req = Req {
        method: "POST",
        target: "/v1/pay",
        headers: vec![
            ("x-app-id", b"app1".to_vec()),
            ("x-timestamp", NOW.to_string().into_bytes()),
            ("x-signature", sig.into_bytes()),
        ],
    };
    report(
        "sign_check HS256, 1 KiB body",
        time(budget, |_| sc.verify(&sc_req, &body, NOW).expect("valid")),
    );

    // hmac_auth: every request needs its own nonce, so sign a batch up front.
    let ha = HmacAuth::compile(&HmacAuthConfig {
        max_entries: 1 << 22,
        ..HmacAuthConfig::default()
    })
    .expect("hmac_auth");
    let date = format_http_date(NOW).to_vec();
    let batch: Vec<Req> = (0..100_000u32)
        .map(|i| {
            let nonce = format!("nonce-{i:016}");
            let line = format!(
                "(request-target): get /v1/items?id=7\ndate: {}\nx-nonce: {nonce}",
                String::from_utf8_lossy(&date)
            );
            let sig = B64_STD.encode(hmac::sign(&hs_key, line.as_bytes()));
            let auth = format!(
                r#"hmac-auth-v1 keyId="bench",algorithm="hmac-sha256",headers="(request-target) date x-nonce",signature="{sig}""#
            );
            Req {
                method: "GET",
                target: "/v1/items?id=7",
                headers: vec![
                    ("authorization", auth.into_bytes()),
                    ("date", date.clone()),
                    ("x-nonce", nonce.into_bytes()),
                ],
            }
        })
        .collect();
    // One pass over the batch: every nonce is new, so this is the accept path end to end.
    let cpu0 = cpu_ns();
    let start = Instant::now();
    for req in &batch {
        assert!(ha.authenticate(req, &idx, NOW, false).is_ok());
    }
    let n = batch.len() as f64;
    let ns = Cost {
        wall: start.elapsed().as_nanos() as f64 / n,
        cpu: cpu0.zip(cpu_ns()).map(|(a, b)| (b - a) as f64 / n),
    };
    report("hmac_auth verify + nonce insert", ns);

    // AES-256-GCM, both encodings, 1 KiB and 64 KiB.
    let key = [7u8; 32];
    for encoding in [BodyEncoding::Binary, BodyEncoding::Base64] {
        let mut dc = DecryptConfig {
            encoding,
            ..DecryptConfig::default()
        };
        dc.keys.insert("app1".into(), B64_STD.encode(key));
        let dec = Decrypt::compile(&dc).expect("decrypt");
        let req = Req {
            method: "POST",
            target: "/",
            headers: vec![("x-app-id", b"app1".to_vec())],
        };
        let app = dec.app_key(&req).expect("app");
        for size in [1024usize, 64 * 1024] {
            let sealing = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("key"));
            let nonce = [3u8; 12];
            let mut text = vec![0x5au8; size];
            sealing
                .seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    aead::Aad::from(b"req:app1"),
                    &mut text,
                )
                .expect("seal");
            let mut wire = nonce.to_vec();
            wire.extend(text);
            if encoding == BodyEncoding::Base64 {
                wire = B64_STD.encode(&wire).into_bytes();
            }
            // Decrypting in place consumes the buffer, so each iteration restores it; the
            // restore copy is timed alone and subtracted.
            let mut buf = wire.clone();
            let copy = time(budget / 4, |_| {
                buf.copy_from_slice(&wire);
                black_box(&mut buf);
            });
            let open = time(budget, |_| {
                buf.copy_from_slice(&wire);
                black_box(dec.open_request(app, &mut buf).expect("open").len());
            });
            let label = format!("decrypt {encoding:?} {} KiB", size / 1024).to_lowercase();
            report(&label, open - copy);
            let mut frame = vec![0u8; dec.sealed_len(size)];
            let seal = time(budget, |_| {
                frame[PLAINTEXT_OFFSET..PLAINTEXT_OFFSET + size].fill(0x5a);
                black_box(dec.seal_response(app, &mut frame, size).expect("seal"));
            });
            let label = format!("encrypt response {encoding:?} {} KiB", size / 1024);
            report(&label.to_lowercase(), seal);
        }
    }
}
