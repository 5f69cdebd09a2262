//! jwt engine: verifies a JWS-signed JWT (HS256, RS256, ES256) from the `Authorization: Bearer`
//! header, another header or a cookie, finds the consumer it names, checks `exp`/`nbf`/`iat`
//! with clock skew, and returns the claims to copy to upstream headers.
//!
//! Design choices:
//! - The algorithm is decided by the consumer's configured key, never by the token: the header's
//!   `alg` must equal it (this closes the RS256-to-HS256 key confusion), and `none` or any other
//!   algorithm is refused before any key is touched.
//! - Claims are read before the signature is checked only to pick the consumer; every decision
//!   based on them (times, forwarded values) happens after the signature verified.
//! - Per request, base64 segments decode into a caller-provided scratch buffer (see
//!   `Jwt::scratch_len`) and the signature into a fixed stack buffer; JSON is read by visitors
//!   that borrow from the scratch (see `claims`). The only allocations are for strings with JSON
//!   escapes and for serde_json's error on malformed tokens.
//! - The token size is capped (`max_token_bytes`, 8 KiB) before any decoding.

pub mod claims;
pub mod keys;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use self::claims::{parse_claims, parse_header, ClaimValue, Wanted, MAX_CLAIM_HEADERS};
use self::keys::{SigAlgorithm, MAX_SIGNATURE};
use crate::modules::key_auth::common::{
    check_header_name, check_skew, cookie_value, decode_b64_into, is_reserved_header, trim_ows,
    AuthError, CompileError, RequestView, B64_URL,
};
use crate::modules::key_auth::consumer::{CompiledConsumer, ConsumerIndex};

/// Largest clock skew accepted in config: beyond an hour, `exp` stops meaning much.
const MAX_SKEW_SECS: u64 = 3600;
/// Bounds of `max_token_bytes`.
const TOKEN_BYTES_RANGE: std::ops::RangeInclusive<usize> = 256..=65536;

/// `[[modules]]` settings of kind `jwt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Header carrying the token. For `Authorization` the `Bearer` scheme is required; for any
    /// other header a `Bearer ` prefix is optional.
    pub header: String,
    /// Cookie carrying the token, tried when the header is absent.
    pub cookie: Option<String>,
    /// Claim whose value names the consumer (its `jwt.issuer`, else its id).
    pub consumer_claim: String,
    /// Claim tried when `consumer_claim` is absent; empty disables the fallback.
    pub fallback_claim: String,
    /// Seconds of clock difference tolerated on `exp`, `nbf` and `iat`.
    pub clock_skew_secs: u64,
    /// Longest token accepted, in bytes, before any decoding.
    pub max_token_bytes: usize,
    /// Refuse tokens without `exp`.
    pub require_exp: bool,
    /// Claims copied to upstream request headers: `{ sub = "X-User-Id" }`.
    pub claims_to_headers: BTreeMap<String, String>,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            header: "Authorization".into(),
            cookie: None,
            consumer_claim: "key".into(),
            fallback_claim: "iss".into(),
            clock_skew_secs: 60,
            max_token_bytes: 8192,
            require_exp: true,
            claims_to_headers: BTreeMap::new(),
        }
    }
}

/// A compiled jwt module.
#[derive(Debug, Clone)]
pub struct Jwt {
    header: String,
    bearer_required: bool,
    cookie: Option<String>,
    consumer_claim: String,
    fallback_claim: Option<String>,
    skew: i64,
    max_token: usize,
    require_exp: bool,
    /// `(claim, header)` pairs, at most `MAX_CLAIM_HEADERS`.
    claim_headers: Vec<(String, String)>,
}

/// A verified token: its consumer and the claims to forward.
#[derive(Debug)]
pub struct JwtMatch<'a, 's> {
    pub consumer: &'a CompiledConsumer,
    headers: &'a [(String, String)],
    values: [Option<ClaimValue<'s>>; MAX_CLAIM_HEADERS],
}

impl<'s> JwtMatch<'_, 's> {
    /// `(header name, value)` for each configured claim the token carried as a scalar.
    pub fn claim_headers(&self) -> impl Iterator<Item = (&str, &ClaimValue<'s>)> {
        self.headers
            .iter()
            .zip(self.values.iter())
            .filter_map(|((_, header), v)| Some((header.as_str(), v.as_ref()?)))
    }
}

impl Jwt {
    pub fn compile(cfg: &JwtConfig) -> Result<Self, Vec<CompileError>> {
        let mut errs = Vec::new();
        check_header_name("header", &cfg.header, &mut errs);
        if let Some(c) = &cfg.cookie {
            check_header_name("cookie", c, &mut errs);
        }
        if cfg.consumer_claim.is_empty() {
            errs.push(CompileError::new("consumer_claim", "must not be empty"));
        }
        check_skew(
            "clock_skew_secs",
            cfg.clock_skew_secs,
            MAX_SKEW_SECS,
            &mut errs,
        );
        if !TOKEN_BYTES_RANGE.contains(&cfg.max_token_bytes) {
            let what = format!("must be within {TOKEN_BYTES_RANGE:?}");
            errs.push(CompileError::new("max_token_bytes", what));
        }
        if cfg.claims_to_headers.len() > MAX_CLAIM_HEADERS {
            let what = format!("at most {MAX_CLAIM_HEADERS} claims can be copied");
            errs.push(CompileError::new("claims_to_headers", what));
        }
        for (claim, header) in &cfg.claims_to_headers {
            let field = format!("claims_to_headers.{claim}");
            check_header_name(&field, header, &mut errs);
            if is_reserved_header(header) || header.eq_ignore_ascii_case(&cfg.header) {
                errs.push(CompileError::new(field, "this header cannot carry a claim"));
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Self {
            bearer_required: cfg.header.eq_ignore_ascii_case("authorization"),
            header: cfg.header.to_ascii_lowercase(),
            cookie: cfg.cookie.clone(),
            consumer_claim: cfg.consumer_claim.clone(),
            fallback_claim: Some(cfg.fallback_claim.clone()).filter(|f| !f.is_empty()),
            skew: i64::try_from(cfg.clock_skew_secs).unwrap_or(i64::MAX),
            max_token: cfg.max_token_bytes,
            require_exp: cfg.require_exp,
            claim_headers: cfg
                .claims_to_headers
                .iter()
                .map(|(c, h)| (c.clone(), h.clone()))
                .collect(),
        })
    }

    /// The upstream headers claims may be copied to: the stage removes the client's own
    /// copies, so a token without the claim cannot leave a forged value in place.
    pub fn claim_header_names(&self) -> impl Iterator<Item = &str> {
        self.claim_headers.iter().map(|(_, h)| h.as_str())
    }

    /// Size of the scratch buffer `authenticate` needs: decoded segments are smaller than the
    /// token, so `max_token_bytes` always suffices.
    pub fn scratch_len(&self) -> usize {
        self.max_token
    }

    /// Extracts the token from the request and verifies it (see `verify_token`).
    pub fn authenticate<'a, 's, R: RequestView>(
        &'a self,
        req: &R,
        consumers: &'a ConsumerIndex,
        now: u64,
        scratch: &'s mut [u8],
    ) -> Result<JwtMatch<'a, 's>, AuthError> {
        let token = self.token(req)?;
        self.verify_token(token, consumers, now, scratch)
    }

    fn token<'r, R: RequestView>(&self, req: &'r R) -> Result<&'r [u8], AuthError> {
        if let Some(v) = req.header(&self.header) {
            let v = trim_ows(v);
            let token = match strip_bearer(v) {
                Some(t) => t,
                None if self.bearer_required => return Err(AuthError::MissingCredentials),
                None => v,
            };
            return Ok(token).filter_empty();
        }
        let cookie = self
            .cookie
            .as_deref()
            .ok_or(AuthError::MissingCredentials)?;
        let header = req.header("cookie").ok_or(AuthError::MissingCredentials)?;
        cookie_value(header, cookie)
            .ok_or(AuthError::MissingCredentials)
            .filter_empty()
    }

    /// Verifies a compact JWS token at unix time `now`. `scratch` must hold at least
    /// `scratch_len()` bytes; claim strings in the result borrow from it.
    pub fn verify_token<'a, 's>(
        &'a self,
        token: &[u8],
        consumers: &'a ConsumerIndex,
        now: u64,
        scratch: &'s mut [u8],
    ) -> Result<JwtMatch<'a, 's>, AuthError> {
        if token.len() > self.max_token {
            return Err(AuthError::TooLarge);
        }
        let Segments {
            head: head_b64,
            payload: payload_b64,
            sig: sig_b64,
            signed,
        } = split_token(token).ok_or(AuthError::MalformedCredentials)?;

        let head_room = (head_b64.len() / 4 + 1) * 3;
        let (head_buf, payload_buf) = scratch.split_at_mut(head_room.min(scratch.len()));
        let head_json =
            decode_b64_into(&B64_URL, head_b64, head_buf).ok_or(AuthError::MalformedCredentials)?;
        let header = parse_header(head_json).ok_or(AuthError::MalformedCredentials)?;
        let alg = SigAlgorithm::from_jws(&header.alg).ok_or(AuthError::AlgorithmNotAllowed)?;
        if header.crit.is_some() {
            return Err(AuthError::MalformedCredentials);
        }

        if payload_b64.len() / 4 * 3 > payload_buf.len() {
            return Err(AuthError::TooLarge);
        }
        let payload = decode_b64_into(&B64_URL, payload_b64, payload_buf)
            .ok_or(AuthError::MalformedCredentials)?;
        let wanted = Wanted {
            consumer_claim: &self.consumer_claim,
            fallback_claim: self.fallback_claim.as_deref(),
            copy: &self.claim_headers,
        };
        let claims = parse_claims(payload, &wanted).ok_or(AuthError::MalformedCredentials)?;

        let identity = claims
            .identity
            .as_deref()
            .or(claims.fallback.as_deref())
            .ok_or(AuthError::MissingClaim)?;
        let (consumer, key) = consumers
            .by_jwt_identity(identity)
            .ok_or(AuthError::UnknownConsumer)?;
        if key.algorithm() != alg {
            return Err(AuthError::AlgorithmMismatch);
        }

        let mut sig_buf = [0u8; MAX_SIGNATURE];
        let sig =
            decode_b64_into(&B64_URL, sig_b64, &mut sig_buf).ok_or(AuthError::BadSignature)?;
        if !key.verify(signed, sig) {
            return Err(AuthError::BadSignature);
        }

        self.check_times(claims.exp, claims.nbf, claims.iat, now)?;
        Ok(JwtMatch {
            consumer,
            headers: &self.claim_headers,
            values: claims.copied,
        })
    }

    fn check_times(
        &self,
        exp: Option<i64>,
        nbf: Option<i64>,
        iat: Option<i64>,
        now: u64,
    ) -> Result<(), AuthError> {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        match exp {
            Some(exp) if now > exp.saturating_add(self.skew) => return Err(AuthError::Expired),
            None if self.require_exp => return Err(AuthError::MissingClaim),
            _ => {}
        }
        let future = |t: Option<i64>| t.is_some_and(|t| t > now.saturating_add(self.skew));
        if future(nbf) || future(iat) {
            return Err(AuthError::NotYetValid);
        }
        Ok(())
    }
}

/// `Bearer <token>`, scheme case-insensitive (RFC 9110 11.1).
fn strip_bearer(v: &[u8]) -> Option<&[u8]> {
    let scheme = v.get(..7)?;
    if scheme.eq_ignore_ascii_case(b"bearer ") {
        v.get(7..).map(trim_ows)
    } else {
        None
    }
}

/// The segments of a compact JWS, still base64url, and the signed part `header.payload`.
struct Segments<'t> {
    head: &'t [u8],
    payload: &'t [u8],
    sig: &'t [u8],
    signed: &'t [u8],
}

/// Splits `h.p.s`. Exactly three non-empty segments: an empty signature is the `alg: none`
/// shape and is never valid here.
fn split_token(token: &[u8]) -> Option<Segments<'_>> {
    let first = token.iter().position(|b| *b == b'.')?;
    let second = first + 1 + token.get(first + 1..)?.iter().position(|b| *b == b'.')?;
    let head = token.get(..first)?;
    let payload = token.get(first + 1..second)?;
    let sig = token.get(second + 1..)?;
    if head.is_empty() || payload.is_empty() || sig.is_empty() || sig.contains(&b'.') {
        return None;
    }
    Some(Segments {
        head,
        payload,
        sig,
        signed: token.get(..second)?,
    })
}

/// Turns an empty credential into `MissingCredentials`.
trait FilterEmpty<'r> {
    fn filter_empty(self) -> Result<&'r [u8], AuthError>;
}

impl<'r> FilterEmpty<'r> for Result<&'r [u8], AuthError> {
    fn filter_empty(self) -> Result<&'r [u8], AuthError> {
        self.and_then(|t| {
            if t.is_empty() {
                Err(AuthError::MissingCredentials)
            } else {
                Ok(t)
            }
        })
    }
}
