//! hmac_auth engine: authenticates requests signed with a consumer's shared secret
//! (`Authorization: hmac-auth-v1 keyId=...,algorithm="hmac-sha256",headers=...,signature=...`),
//! with a fresh `Date`, a one-time nonce and, for bodies, a `Digest: SHA-256=` header checked
//! against the body as it streams. The exact scheme is in docs/modules/hmac_auth.md.
//!
//! Design choices:
//! - The signing string is never built: its pieces are fed straight into the HMAC context, so a
//!   request costs no allocation and no copy of its headers.
//! - Checks run cheapest first, and the nonce is recorded only after the signature verified, so
//!   unsigned traffic can neither fill the replay cache nor burn a legitimate client's nonce.
//! - A signed `Digest` binds the body to the signature; with `enforce_body_digest`, a request
//!   with a body must carry one, otherwise the body could be swapped in flight.
//! - The replay cache (`nonce`) is shared by all cores without locks, bounded by `max_entries`,
//!   and carried across config versions when its size and policy are unchanged.

pub mod date;
pub mod nonce;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use ring::{digest, hmac};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use self::date::parse_http_date;
use self::nonce::{NonceCache, WhenFull};
use crate::modules::key_auth::common::{
    check_header_name, check_skew, decode_b64_into, trim_ows, within_skew, AuthError, CompileError,
    RequestView, B64_STD,
};
use crate::modules::key_auth::consumer::{CompiledConsumer, ConsumerIndex};

/// The Authorization scheme name.
pub const SCHEME: &str = "hmac-auth-v1";
/// The only algorithm accepted.
pub const ALGORITHM: &str = "hmac-sha256";
/// The pseudo-header naming method and target in the signed list.
pub const REQUEST_TARGET: &str = "(request-target)";
/// Most headers one signature may cover; keeps the per-request work bounded.
pub const MAX_SIGNED_HEADERS: usize = 16;
/// Longest method accepted in the signing string.
const MAX_METHOD: usize = 16;
/// Largest skew accepted in config (the nonce window is twice the skew).
const MAX_SKEW_SECS: u64 = 3600;
/// Bounds of `max_entries`.
const ENTRIES_RANGE: std::ops::RangeInclusive<usize> = 1024..=(1 << 24);

/// `[[modules]]` settings of kind `hmac_auth`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HmacAuthConfig {
    /// Seconds the date header may differ from the gateway clock, either way.
    pub clock_skew_secs: u64,
    /// Header holding the request time (IMF-fixdate). Browsers cannot set `Date`; use e.g.
    /// `x-date` for them.
    pub date_header: String,
    /// Header holding the one-time nonce.
    pub nonce_header: String,
    /// Shortest and longest nonce accepted, in bytes.
    pub min_nonce_bytes: usize,
    pub max_nonce_bytes: usize,
    /// Requests with a body must sign a `Digest` header.
    pub enforce_body_digest: bool,
    /// Extra headers every signature must cover (lower case), besides the built-in ones.
    pub required_headers: Vec<String>,
    /// Replay-cache slots shared by all cores (8 bytes each, rounded up to a power of two).
    pub max_entries: usize,
    /// What to do when the replay cache has no room: `reject` or `evict_oldest`.
    pub when_full: WhenFull,
}

impl Default for HmacAuthConfig {
    fn default() -> Self {
        Self {
            clock_skew_secs: 300,
            date_header: "date".into(),
            nonce_header: "x-nonce".into(),
            min_nonce_bytes: 16,
            max_nonce_bytes: 128,
            enforce_body_digest: true,
            required_headers: Vec::new(),
            max_entries: 1 << 18,
            when_full: WhenFull::Reject,
        }
    }
}

/// A compiled hmac_auth module.
#[derive(Debug, Clone)]
pub struct HmacAuth {
    skew: u64,
    date_header: String,
    nonce_header: String,
    nonce_len: std::ops::RangeInclusive<usize>,
    enforce_body_digest: bool,
    required: Vec<String>,
    nonces: Arc<NonceCache>,
}

/// A verified request head. When `body` is set, feed every body chunk to it and call
/// `finish` at the end: the request is authentic only if that succeeds.
#[derive(Debug)]
pub struct HmacMatch<'a> {
    pub consumer: &'a CompiledConsumer,
    pub body: Option<BodyDigest>,
}

/// Incremental SHA-256 of a body, checked against the signed `Digest` header.
pub struct BodyDigest {
    ctx: digest::Context,
    expected: [u8; 32],
}

impl std::fmt::Debug for BodyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyDigest")
    }
}

impl BodyDigest {
    pub fn update(&mut self, chunk: &[u8]) {
        self.ctx.update(chunk);
    }

    pub fn finish(self) -> Result<(), AuthError> {
        let got = self.ctx.finish();
        if bool::from(got.as_ref().ct_eq(&self.expected)) {
            Ok(())
        } else {
            Err(AuthError::DigestMismatch)
        }
    }
}

/// The parameters of the Authorization header, borrowed from it.
struct Params<'r> {
    key_id: &'r [u8],
    algorithm: &'r [u8],
    headers: &'r [u8],
    signature: &'r [u8],
}

impl HmacAuth {
    /// Compiles a config with a fresh replay cache.
    pub fn compile(cfg: &HmacAuthConfig) -> Result<Self, Vec<CompileError>> {
        Self::compile_after(cfg, None)
    }

    /// Compiles a config, keeping the previous version's replay cache when its size and policy
    /// are unchanged: a config change must not let recently seen nonces be replayed.
    pub fn compile_after(
        cfg: &HmacAuthConfig,
        previous: Option<&HmacAuth>,
    ) -> Result<Self, Vec<CompileError>> {
        let mut errs = Vec::new();
        check_skew(
            "clock_skew_secs",
            cfg.clock_skew_secs,
            MAX_SKEW_SECS,
            &mut errs,
        );
        check_header_name("date_header", &cfg.date_header, &mut errs);
        check_header_name("nonce_header", &cfg.nonce_header, &mut errs);
        if cfg.min_nonce_bytes < 8 || cfg.min_nonce_bytes > cfg.max_nonce_bytes {
            errs.push(CompileError::new(
                "min_nonce_bytes",
                "must be 8 to max_nonce_bytes",
            ));
        }
        if cfg.max_nonce_bytes > 1024 {
            errs.push(CompileError::new("max_nonce_bytes", "must be at most 1024"));
        }
        for (i, h) in cfg.required_headers.iter().enumerate() {
            if h != REQUEST_TARGET {
                check_header_name(&format!("required_headers[{i}]"), h, &mut errs);
            }
        }
        if cfg.required_headers.len() + 4 > MAX_SIGNED_HEADERS {
            let what = format!("at most {} extra headers", MAX_SIGNED_HEADERS - 4);
            errs.push(CompileError::new("required_headers", what));
        }
        if !ENTRIES_RANGE.contains(&cfg.max_entries) {
            let what = format!("must be within {ENTRIES_RANGE:?}");
            errs.push(CompileError::new("max_entries", what));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let capacity = cfg.max_entries.next_power_of_two();
        let nonces = match previous {
            Some(p) if p.nonces.capacity() == capacity && p.nonces.when_full() == cfg.when_full => {
                p.nonces.clone()
            }
            _ => Arc::new(NonceCache::new(cfg.max_entries, cfg.when_full)),
        };
        let mut required: Vec<String> = [REQUEST_TARGET, &cfg.date_header, &cfg.nonce_header]
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        required.extend(cfg.required_headers.iter().map(|h| h.to_ascii_lowercase()));
        Ok(Self {
            skew: cfg.clock_skew_secs,
            date_header: cfg.date_header.to_ascii_lowercase(),
            nonce_header: cfg.nonce_header.to_ascii_lowercase(),
            nonce_len: cfg.min_nonce_bytes..=cfg.max_nonce_bytes,
            enforce_body_digest: cfg.enforce_body_digest,
            required,
            nonces,
        })
    }

    /// Verifies a request head at unix time `now`. `has_body` tells whether a body follows
    /// (non-zero `Content-Length` or chunked). On success the nonce is spent.
    pub fn authenticate<'a, R: RequestView>(
        &self,
        req: &R,
        consumers: &'a ConsumerIndex,
        now: u64,
        has_body: bool,
    ) -> Result<HmacMatch<'a>, AuthError> {
        let auth = req
            .header("authorization")
            .ok_or(AuthError::MissingCredentials)?;
        let params = parse_authorization(auth)?;
        if params.algorithm != ALGORITHM.as_bytes() {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let signed = SignedHeaders::parse(params.headers)?;
        if !self.required.iter().all(|r| signed.contains(r.as_bytes())) {
            return Err(AuthError::MissingClaim);
        }
        let digest_signed = signed.contains(b"digest");
        if has_body && self.enforce_body_digest && !digest_signed {
            return Err(AuthError::MissingDigest);
        }

        let date = req
            .header(&self.date_header)
            .ok_or(AuthError::MissingClaim)?;
        let date = parse_http_date(trim_ows(date)).ok_or(AuthError::MalformedCredentials)?;
        if !within_skew(date, now, self.skew) {
            return Err(AuthError::StaleTimestamp);
        }
        let nonce = trim_ows(
            req.header(&self.nonce_header)
                .ok_or(AuthError::MissingClaim)?,
        );
        if !self.nonce_len.contains(&nonce.len()) {
            return Err(AuthError::MalformedCredentials);
        }

        let key_id = std::str::from_utf8(params.key_id).map_err(|_| AuthError::UnknownConsumer)?;
        let (consumer, key) = consumers
            .by_hmac_key_id(key_id)
            .ok_or(AuthError::UnknownConsumer)?;
        let mut sig_buf = [0u8; 48];
        let sig = decode_b64_into(&B64_STD, params.signature, &mut sig_buf)
            .ok_or(AuthError::BadSignature)?;
        let tag = signing_tag(key, req, &signed)?;
        if !bool::from(tag.as_ref().ct_eq(sig)) {
            return Err(AuthError::BadSignature);
        }

        let body = if digest_signed {
            let header = req.header("digest").ok_or(AuthError::MissingDigest)?;
            let expected = parse_digest(header).ok_or(AuthError::MalformedCredentials)?;
            Some(BodyDigest {
                ctx: digest::Context::new(&digest::SHA256),
                expected,
            })
        } else {
            None
        };

        // The nonce lives as long as its date could still pass the skew check.
        let expires = date.saturating_add(self.skew).saturating_add(1);
        self.nonces
            .check_and_insert(params.key_id, nonce, now, expires)?;
        Ok(HmacMatch { consumer, body })
    }

    /// The replay cache, for metrics or to share with another module version.
    pub fn nonce_cache(&self) -> &Arc<NonceCache> {
        &self.nonces
    }
}

/// The signed header names, in order, borrowed from the Authorization header.
struct SignedHeaders<'r> {
    names: [&'r [u8]; MAX_SIGNED_HEADERS],
    len: usize,
}

impl<'r> SignedHeaders<'r> {
    /// Space-separated lower-case names, no duplicates, at most `MAX_SIGNED_HEADERS`.
    fn parse(list: &'r [u8]) -> Result<Self, AuthError> {
        let mut out = SignedHeaders {
            names: [&[]; MAX_SIGNED_HEADERS],
            len: 0,
        };
        for name in list.split(|b| *b == b' ').filter(|n| !n.is_empty()) {
            let canonical = name == REQUEST_TARGET.as_bytes()
                || name
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
            if !canonical || out.contains(name) {
                return Err(AuthError::MalformedCredentials);
            }
            let slot = out
                .names
                .get_mut(out.len)
                .ok_or(AuthError::MalformedCredentials)?;
            *slot = name;
            out.len += 1;
        }
        Ok(out)
    }

    fn iter(&self) -> impl Iterator<Item = &'r [u8]> + '_ {
        self.names.iter().take(self.len).copied()
    }

    fn contains(&self, name: &[u8]) -> bool {
        self.iter().any(|n| n == name)
    }
}

/// HMAC-SHA256 of the signing string, streamed: one line per signed name, joined with `\n`;
/// `(request-target): <lower-case method> <target>`, else `<name>: <trimmed value>`.
fn signing_tag<R: RequestView>(
    key: &hmac::Key,
    req: &R,
    signed: &SignedHeaders<'_>,
) -> Result<hmac::Tag, AuthError> {
    let mut ctx = hmac::Context::with_key(key);
    for (i, name) in signed.iter().enumerate() {
        if i > 0 {
            ctx.update(b"\n");
        }
        ctx.update(name);
        ctx.update(b": ");
        if name == REQUEST_TARGET.as_bytes() {
            let method = req.method();
            let mut lower = [0u8; MAX_METHOD];
            let lower = lower
                .get_mut(..method.len())
                .ok_or(AuthError::MalformedCredentials)?;
            for (l, m) in lower.iter_mut().zip(method) {
                *l = m.to_ascii_lowercase();
            }
            ctx.update(lower);
            ctx.update(b" ");
            ctx.update(req.target());
        } else {
            let name = std::str::from_utf8(name).map_err(|_| AuthError::MalformedCredentials)?;
            let value = req.header(name).ok_or(AuthError::MissingClaim)?;
            ctx.update(trim_ows(value));
        }
    }
    Ok(ctx.sign())
}

/// Parses `hmac-auth-v1 k1="v1",k2="v2"`. Values are quoted, without escapes; each of the four
/// parameters exactly once; nothing else.
fn parse_authorization(v: &[u8]) -> Result<Params<'_>, AuthError> {
    let v = trim_ows(v);
    let scheme_len = SCHEME.len();
    match (v.get(..scheme_len), v.get(scheme_len)) {
        (Some(s), Some(b' ')) if s.eq_ignore_ascii_case(SCHEME.as_bytes()) => {}
        _ => return Err(AuthError::MissingCredentials),
    }
    let mut rest = v.get(scheme_len..).unwrap_or(&[]);
    let (mut key_id, mut algorithm, mut headers, mut signature) = (None, None, None, None);
    loop {
        rest = trim_ows(rest);
        if rest.is_empty() {
            break;
        }
        let eq = rest
            .iter()
            .position(|b| *b == b'=')
            .ok_or(AuthError::MalformedCredentials)?;
        let name = rest.get(..eq).ok_or(AuthError::MalformedCredentials)?;
        let after = rest.get(eq + 1..).ok_or(AuthError::MalformedCredentials)?;
        let quoted = after
            .strip_prefix(b"\"")
            .ok_or(AuthError::MalformedCredentials)?;
        let close = quoted
            .iter()
            .position(|b| *b == b'"')
            .ok_or(AuthError::MalformedCredentials)?;
        let value = quoted.get(..close).ok_or(AuthError::MalformedCredentials)?;
        if value.iter().any(|b| *b == b'\\' || *b < 0x20) {
            return Err(AuthError::MalformedCredentials);
        }
        let slot = match name {
            b"keyId" => &mut key_id,
            b"algorithm" => &mut algorithm,
            b"headers" => &mut headers,
            b"signature" => &mut signature,
            _ => return Err(AuthError::MalformedCredentials),
        };
        if slot.replace(value).is_some() {
            return Err(AuthError::MalformedCredentials);
        }
        rest = trim_ows(quoted.get(close + 1..).unwrap_or(&[]));
        match rest.split_first() {
            None => break,
            Some((b',', tail)) => rest = tail,
            Some(_) => return Err(AuthError::MalformedCredentials),
        }
    }
    match (key_id, algorithm, headers, signature) {
        (Some(key_id), Some(algorithm), Some(headers), Some(signature)) => Ok(Params {
            key_id,
            algorithm,
            headers,
            signature,
        }),
        _ => Err(AuthError::MalformedCredentials),
    }
}

/// Finds `SHA-256=<base64>` in a `Digest` header (RFC 3230: comma-separated, names
/// case-insensitive).
fn parse_digest(v: &[u8]) -> Option<[u8; 32]> {
    v.split(|b| *b == b',').find_map(|part| {
        let part = trim_ows(part);
        let (name, value) = part.split_at_checked(8)?;
        if !name.eq_ignore_ascii_case(b"sha-256=") {
            return None;
        }
        let mut out = [0u8; 33];
        let decoded = decode_b64_into(&B64_STD, value, &mut out)?;
        <[u8; 32]>::try_from(&*decoded).ok()
    })
}
