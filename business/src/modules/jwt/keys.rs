//! Verification keys for signed credentials (JWT consumers, `sign_check` apps): HS256 secrets,
//! RS256 and ES256 public keys given as PEM, compiled once into ring key objects.
//!
//! ring wants raw key encodings (PKCS#1 `RSAPublicKey`, an uncompressed P-256 point), while
//! operators paste PEM `PUBLIC KEY` blocks (X.509 SubjectPublicKeyInfo). Unwrapping SPKI needs
//! only a handful of DER elements, so a small strict reader here is cheaper than a dependency and
//! runs only at compile time, never per request.

use ring::hmac;
use ring::signature::{self, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::modules::key_auth::common::{CompileError, B64_STD};

/// The signature algorithms Gatehouse accepts, named as in JWS (RFC 7518).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigAlgorithm {
    HS256,
    RS256,
    ES256,
}

impl SigAlgorithm {
    /// The JWS `alg` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SigAlgorithm::HS256 => "HS256",
            SigAlgorithm::RS256 => "RS256",
            SigAlgorithm::ES256 => "ES256",
        }
    }

    /// Parses a JWS `alg` value. Exact, case-sensitive match as RFC 7515 requires, so `none`,
    /// `None` and every algorithm we do not implement fall out here.
    pub fn from_jws(alg: &str) -> Option<Self> {
        match alg {
            "HS256" => Some(SigAlgorithm::HS256),
            "RS256" => Some(SigAlgorithm::RS256),
            "ES256" => Some(SigAlgorithm::ES256),
            _ => None,
        }
    }
}

/// Shortest HS256 secret accepted: RFC 7518 section 3.2 asks for at least the hash size.
pub const MIN_HMAC_SECRET: usize = 32;

/// Largest signature any accepted key produces: RSA up to 8192 bits (ring's ceiling).
pub const MAX_SIGNATURE: usize = 1024;

/// A compiled verification key.
#[derive(Debug)]
pub enum VerifyKey {
    Hs256(hmac::Key),
    Rs256(UnparsedPublicKey<Vec<u8>>),
    Es256(UnparsedPublicKey<Vec<u8>>),
}

impl VerifyKey {
    /// Builds a key from config: `secret` for HS256, `public_key` (PEM) for RS256/ES256. Field
    /// names in errors are `key` / `public_key`, matching the consumer and app config.
    pub fn compile(
        alg: SigAlgorithm,
        secret: Option<&str>,
        public_key: Option<&str>,
        secret_field: &str,
    ) -> Result<Self, CompileError> {
        match (alg, secret, public_key) {
            (SigAlgorithm::HS256, Some(s), None) => {
                if s.len() < MIN_HMAC_SECRET {
                    return Err(CompileError::new(
                        secret_field,
                        format!("HS256 secrets need at least {MIN_HMAC_SECRET} bytes"),
                    ));
                }
                Ok(VerifyKey::Hs256(hmac::Key::new(
                    hmac::HMAC_SHA256,
                    s.as_bytes(),
                )))
            }
            (SigAlgorithm::HS256, _, _) => Err(CompileError::new(
                secret_field,
                format!("HS256 needs `{secret_field}` (a shared secret) and no `public_key`"),
            )),
            (SigAlgorithm::RS256, None, Some(pem)) => {
                let der =
                    rsa_public_key_der(pem).map_err(|m| CompileError::new("public_key", m))?;
                Ok(VerifyKey::Rs256(UnparsedPublicKey::new(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    der,
                )))
            }
            (SigAlgorithm::ES256, None, Some(pem)) => {
                let point =
                    p256_public_point(pem).map_err(|m| CompileError::new("public_key", m))?;
                Ok(VerifyKey::Es256(UnparsedPublicKey::new(
                    &signature::ECDSA_P256_SHA256_FIXED,
                    point,
                )))
            }
            (_, _, _) => Err(CompileError::new(
                "public_key",
                format!(
                    "{} needs `public_key` (PEM) and no `{secret_field}`",
                    alg.as_str()
                ),
            )),
        }
    }

    pub fn algorithm(&self) -> SigAlgorithm {
        match self {
            VerifyKey::Hs256(_) => SigAlgorithm::HS256,
            VerifyKey::Rs256(_) => SigAlgorithm::RS256,
            VerifyKey::Es256(_) => SigAlgorithm::ES256,
        }
    }

    /// Checks `sig` over `msg`. Constant-time for HMAC (ring's `hmac::verify`). ES256 signatures
    /// are the fixed 64-byte `r || s` form that JWS uses.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            VerifyKey::Hs256(k) => hmac::verify(k, msg, sig).is_ok(),
            VerifyKey::Rs256(k) | VerifyKey::Es256(k) => k.verify(msg, sig).is_ok(),
        }
    }
}

/// DER tags we meet in public keys.
const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;
const NULL: u8 = 0x05;

const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Splits one DER element off `input`: `(tag, contents, rest)`. Definite lengths only, as DER
/// requires; at most 3 length bytes, far beyond any public key.
fn der_next(input: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
    const BAD: &str = "malformed DER";
    let (&tag, rest) = input.split_first().ok_or(BAD)?;
    let (&first, rest) = rest.split_first().ok_or(BAD)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 || rest.len() < n {
            return Err(BAD);
        }
        let (len_bytes, rest) = rest.split_at(n);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
        if len < 0x80 {
            return Err(BAD); // long form for a short length is not DER
        }
        (len, rest)
    };
    if rest.len() < len {
        return Err(BAD);
    }
    let (contents, rest) = rest.split_at(len);
    Ok((tag, contents, rest))
}

fn der_expect(input: &[u8], want: u8) -> Result<(&[u8], &[u8]), &'static str> {
    let (tag, contents, rest) = der_next(input)?;
    if tag != want {
        return Err("unexpected DER element");
    }
    Ok((contents, rest))
}

/// Decodes the single PEM block in `text`, returning its label and DER bytes.
fn pem_decode(text: &str) -> Result<(&str, Vec<u8>), &'static str> {
    let begin = text.find("-----BEGIN ").ok_or("no PEM `-----BEGIN` line")?;
    let after = text.get(begin + 11..).ok_or("truncated PEM")?;
    let label_end = after.find("-----").ok_or("bad PEM header line")?;
    let label = after.get(..label_end).ok_or("bad PEM header line")?;
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_len = after
        .get(body_start..)
        .and_then(|b| b.find(&end_marker))
        .ok_or("no matching PEM `-----END` line")?;
    let body = after
        .get(body_start..body_start + body_len)
        .ok_or("bad PEM")?;
    let b64: Vec<u8> = body.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    use base64::Engine as _;
    let der = B64_STD
        .decode(&b64)
        .map_err(|_| "PEM body is not valid base64")?;
    Ok((label, der))
}

/// A non-negative DER INTEGER's magnitude without its sign-padding zero.
fn unsigned_int(contents: &[u8]) -> Result<&[u8], &'static str> {
    match contents {
        [] => Err("empty INTEGER"),
        [0, rest @ ..] if !rest.is_empty() => Ok(rest),
        [b, ..] if b & 0x80 != 0 => Err("negative INTEGER"),
        _ => Ok(contents),
    }
}

/// Checks a PKCS#1 `RSAPublicKey` and its modulus size, which ring would otherwise only
/// reject at the first request.
fn check_rsa_public_key(der: &[u8]) -> Result<(), &'static str> {
    let (seq, rest) = der_expect(der, SEQUENCE)?;
    if !rest.is_empty() {
        return Err("trailing data after RSA key");
    }
    let (n, seq) = der_expect(seq, INTEGER)?;
    let (e, seq) = der_expect(seq, INTEGER)?;
    if !seq.is_empty() {
        return Err("unexpected data in RSA key");
    }
    let n = unsigned_int(n)?;
    unsigned_int(e)?;
    let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
    if !(2048..=8192).contains(&bits) {
        return Err("RSA modulus must be 2048 to 8192 bits");
    }
    Ok(())
}

/// The parts of a SubjectPublicKeyInfo we use.
struct Spki<'a> {
    oid: &'a [u8],
    /// The algorithm parameters element(s), still encoded.
    params: &'a [u8],
    key: &'a [u8],
}

/// Unwraps a SubjectPublicKeyInfo.
fn spki_parts(der: &[u8]) -> Result<Spki<'_>, &'static str> {
    let (spki, rest) = der_expect(der, SEQUENCE)?;
    if !rest.is_empty() {
        return Err("trailing data after public key");
    }
    let (alg_id, spki) = der_expect(spki, SEQUENCE)?;
    let (bits, spki) = der_expect(spki, BIT_STRING)?;
    if !spki.is_empty() {
        return Err("unexpected data in public key");
    }
    let (oid, params) = der_expect(alg_id, OID)?;
    // The first byte of a BIT STRING counts unused bits; keys are whole bytes.
    match bits.split_first() {
        Some((0, key)) => Ok(Spki { oid, params, key }),
        _ => Err("public key BIT STRING has unused bits"),
    }
}

/// PEM (`PUBLIC KEY` SPKI or `RSA PUBLIC KEY` PKCS#1) to the PKCS#1 DER ring verifies with.
pub fn rsa_public_key_der(pem: &str) -> Result<Vec<u8>, String> {
    let (label, der) = pem_decode(pem)?;
    let pkcs1 = match label {
        "RSA PUBLIC KEY" => der,
        "PUBLIC KEY" => {
            let Spki { oid, params, key } = spki_parts(&der)?;
            if oid != OID_RSA_ENCRYPTION {
                return Err("not an RSA public key".into());
            }
            if !params.is_empty() {
                let (p, rest) = der_expect(params, NULL)?;
                if !p.is_empty() || !rest.is_empty() {
                    return Err("RSA key parameters must be NULL".into());
                }
            }
            key.to_vec()
        }
        _ => return Err(format!("expected a `PUBLIC KEY` PEM block, got `{label}`")),
    };
    check_rsa_public_key(&pkcs1)?;
    Ok(pkcs1)
}

/// PEM `PUBLIC KEY` (SPKI, curve P-256) to the uncompressed point ring verifies with.
pub fn p256_public_point(pem: &str) -> Result<Vec<u8>, String> {
    let (label, der) = pem_decode(pem)?;
    if label != "PUBLIC KEY" {
        return Err(format!("expected a `PUBLIC KEY` PEM block, got `{label}`"));
    }
    let Spki { oid, params, key } = spki_parts(&der)?;
    if oid != OID_EC_PUBLIC_KEY {
        return Err("not an EC public key".into());
    }
    let (curve, rest) = der_expect(params, OID)?;
    if curve != OID_P256 || !rest.is_empty() {
        return Err("EC key is not on curve P-256".into());
    }
    if key.len() != 65 || key.first() != Some(&0x04) {
        return Err("P-256 key must be an uncompressed point".into());
    }
    Ok(key.to_vec())
}

/// Wraps an uncompressed P-256 point in SPKI PEM; tests and the bench use it to feed keys
/// generated by ring through the same path operators use.
pub fn p256_point_to_pem(point: &[u8]) -> String {
    use base64::Engine as _;
    // SEQUENCE { SEQUENCE { ecPublicKey, prime256v1 }, BIT STRING (0 unused bits, point) }
    let mut der = vec![0x30, 0x59, 0x30, 0x13, 0x06, 0x07];
    der.extend_from_slice(OID_EC_PUBLIC_KEY);
    der.extend_from_slice(&[0x06, 0x08]);
    der.extend_from_slice(OID_P256);
    der.extend_from_slice(&[0x03, 0x42, 0x00]);
    der.extend_from_slice(point);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        B64_STD.encode(der)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair};

    const RSA_PKCS8: &[u8] = include_bytes!("testdata/rsa2048_pkcs8.der");
    const RSA_SPKI_PEM: &str = include_str!("testdata/rsa2048_pub.pem");
    const RSA_PKCS1_PEM: &str = include_str!("testdata/rsa2048_pub_pkcs1.pem");

    #[test]
    fn rsa_spki_and_pkcs1_pem_match_the_private_key() {
        let pair = RsaKeyPair::from_pkcs8(RSA_PKCS8).unwrap();
        let want = pair.public().as_ref();
        assert_eq!(rsa_public_key_der(RSA_SPKI_PEM).unwrap(), want);
        assert_eq!(rsa_public_key_der(RSA_PKCS1_PEM).unwrap(), want);
    }

    #[test]
    fn rsa_key_verifies_what_the_private_key_signs() {
        let pair = RsaKeyPair::from_pkcs8(RSA_PKCS8).unwrap();
        let mut sig = vec![0; pair.public().modulus_len()];
        let rng = SystemRandom::new();
        pair.sign(&signature::RSA_PKCS1_SHA256, &rng, b"msg", &mut sig)
            .unwrap();
        let key = VerifyKey::compile(SigAlgorithm::RS256, None, Some(RSA_SPKI_PEM), "key").unwrap();
        assert!(key.verify(b"msg", &sig));
        assert!(!key.verify(b"msh", &sig));
    }

    #[test]
    fn p256_pem_round_trips_and_verifies() {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let pem = p256_point_to_pem(pair.public_key().as_ref());
        assert_eq!(p256_public_point(&pem).unwrap(), pair.public_key().as_ref());
        let sig = pair.sign(&rng, b"msg").unwrap();
        let key = VerifyKey::compile(SigAlgorithm::ES256, None, Some(&pem), "key").unwrap();
        assert!(key.verify(b"msg", sig.as_ref()));
        assert!(!key.verify(b"msg2", sig.as_ref()));
    }

    #[test]
    fn wrong_or_broken_keys_are_compile_errors() {
        assert!(
            p256_public_point(RSA_SPKI_PEM).is_err(),
            "RSA key given as EC"
        );
        assert!(rsa_public_key_der("no pem here").is_err());
        let broken = RSA_SPKI_PEM.replace("MIIB", "MIIC");
        assert!(rsa_public_key_der(&broken).is_err());
        let truncated = RSA_SPKI_PEM.replace("-----END PUBLIC KEY-----", "");
        assert!(rsa_public_key_der(&truncated).is_err());
        let short = VerifyKey::compile(SigAlgorithm::HS256, Some("short"), None, "key");
        assert_eq!(short.unwrap_err().field, "key");
        let both = VerifyKey::compile(SigAlgorithm::RS256, Some("x"), Some(RSA_SPKI_PEM), "key");
        assert_eq!(both.unwrap_err().field, "public_key");
        assert!(VerifyKey::compile(SigAlgorithm::ES256, None, None, "key").is_err());
    }

    #[test]
    fn jws_names_are_exact() {
        assert_eq!(SigAlgorithm::from_jws("RS256"), Some(SigAlgorithm::RS256));
        assert_eq!(SigAlgorithm::from_jws("none"), None);
        assert_eq!(SigAlgorithm::from_jws("hs256"), None);
        assert_eq!(SigAlgorithm::from_jws("HS512"), None);
    }
}
