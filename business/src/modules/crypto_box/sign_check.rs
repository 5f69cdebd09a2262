//! `sign_check` module kind: verifies an app's signature over its request, so the upstream
//! knows the body came from the app unaltered and recently.
//!
//! The signed message (docs/modules/sign_check.md) is four lines joined by `\n`:
//! the `X-Timestamp` value (unix seconds), the method, the request target, and the standard
//! base64 of SHA-256(body). Signing the body's digest rather than the body lets the gateway
//! hash the body as it streams (`PendingSignature::update`) and keep the message in a small stack
//! buffer for every algorithm, including RSA and ECDSA where ring needs the message whole. The
//! timestamp is inside the signature and must be within `clock_skew_secs`, so an old body
//! cannot be replayed later; within the window a replay is possible (use hmac_auth's nonces
//! when that matters).
//!
//! Algorithms per app: HS256 (HMAC-SHA256, shared secret), RS256 (RSA PKCS#1 v1.5 SHA-256) and
//! ES256 (ECDSA P-256 SHA-256, 64-byte `r || s`), keys compiled once like JWT consumer keys.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use base64::Engine as _;
use ring::digest;
use serde::{Deserialize, Serialize};

use crate::modules::jwt::keys::{SigAlgorithm, VerifyKey, MAX_SIGNATURE};
use crate::modules::key_auth::common::{
    check_header_name, check_skew, decode_b64_into, is_token, parse_u64, trim_ows, within_skew,
    AuthError, CompileError, RequestView, B64_STD,
};

/// Ceiling of `max_target_bytes`: the message buffer lives on the stack.
pub const MAX_TARGET: usize = 8192;
/// Timestamp digits + method + base64 digest + separators.
const MESSAGE_OVERHEAD: usize = 20 + 1 + 16 + 1 + 1 + 44;
const MAX_SKEW_SECS: u64 = 3600;

/// One app's signing key: `secret` for HS256, `public_key` (PEM) for RS256/ES256.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSigner {
    pub algorithm: SigAlgorithm,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

impl fmt::Debug for AppSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSigner")
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("public_key", &self.public_key.is_some())
            .finish()
    }
}

/// `[[modules]]` settings of kind `sign_check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignCheckConfig {
    pub app_header: String,
    pub signature_header: String,
    pub timestamp_header: String,
    pub clock_skew_secs: u64,
    /// Longest request target (path and query) accepted into the signed message.
    pub max_target_bytes: usize,
    pub apps: BTreeMap<String, AppSigner>,
}

impl Default for SignCheckConfig {
    fn default() -> Self {
        Self {
            app_header: "X-App-Id".into(),
            signature_header: "X-Signature".into(),
            timestamp_header: "X-Timestamp".into(),
            clock_skew_secs: 300,
            max_target_bytes: 4096,
            apps: BTreeMap::new(),
        }
    }
}

/// A compiled sign_check module.
#[derive(Debug)]
pub struct SignCheck {
    app_header: String,
    signature_header: String,
    timestamp_header: String,
    skew: u64,
    max_target: usize,
    apps: HashMap<String, VerifyKey>,
}

/// A request whose head passed the cheap checks; feed it the body, then `finish`.
pub struct PendingSignature<'a> {
    key: &'a VerifyKey,
    body: digest::Context,
}

impl fmt::Debug for PendingSignature<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PendingSignature({:?})", self.key.algorithm())
    }
}

impl SignCheck {
    pub fn compile(cfg: &SignCheckConfig) -> Result<Self, Vec<CompileError>> {
        let mut errs = Vec::new();
        check_header_name("app_header", &cfg.app_header, &mut errs);
        check_header_name("signature_header", &cfg.signature_header, &mut errs);
        check_header_name("timestamp_header", &cfg.timestamp_header, &mut errs);
        check_skew(
            "clock_skew_secs",
            cfg.clock_skew_secs,
            MAX_SKEW_SECS,
            &mut errs,
        );
        if cfg.max_target_bytes == 0 || cfg.max_target_bytes > MAX_TARGET {
            let what = format!("must be 1 to {MAX_TARGET}");
            errs.push(CompileError::new("max_target_bytes", what));
        }
        if cfg.apps.is_empty() {
            errs.push(CompileError::new("apps", "at least one app is needed"));
        }
        let mut apps = HashMap::new();
        for (app, signer) in &cfg.apps {
            let field = format!("apps.{app}");
            if !is_token(app) {
                errs.push(CompileError::new(field, "app ids are token characters"));
                continue;
            }
            let secret = signer.secret.as_deref();
            match VerifyKey::compile(
                signer.algorithm,
                secret,
                signer.public_key.as_deref(),
                "secret",
            ) {
                Ok(key) => {
                    apps.insert(app.clone(), key);
                }
                Err(e) => errs.push(e.prefixed(&field)),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Self {
            app_header: cfg.app_header.to_ascii_lowercase(),
            signature_header: cfg.signature_header.to_ascii_lowercase(),
            timestamp_header: cfg.timestamp_header.to_ascii_lowercase(),
            skew: cfg.clock_skew_secs,
            max_target: cfg.max_target_bytes,
            apps,
        })
    }

    /// Checks the head at unix time `now`: known app, fresh timestamp, a signature present,
    /// a target that fits. The signature itself is checked by `PendingSignature::finish`.
    pub fn check_head<R: RequestView>(
        &self,
        req: &R,
        now: u64,
    ) -> Result<PendingSignature<'_>, AuthError> {
        let app = req.header(&self.app_header).ok_or(AuthError::UnknownApp)?;
        let app = std::str::from_utf8(trim_ows(app)).map_err(|_| AuthError::UnknownApp)?;
        let key = self.apps.get(app).ok_or(AuthError::UnknownApp)?;
        let ts = self.timestamp(req)?;
        if !within_skew(ts, now, self.skew) {
            return Err(AuthError::StaleTimestamp);
        }
        if req.header(&self.signature_header).is_none() {
            return Err(AuthError::MissingCredentials);
        }
        if req.target().len() > self.max_target || req.method().len() > 16 {
            return Err(AuthError::TooLarge);
        }
        Ok(PendingSignature {
            key,
            body: digest::Context::new(&digest::SHA256),
        })
    }

    /// Whole-body convenience: `check_head`, one `update`, `finish`.
    pub fn verify<R: RequestView>(&self, req: &R, body: &[u8], now: u64) -> Result<(), AuthError> {
        let mut pending = self.check_head(req, now)?;
        pending.update(body);
        pending.finish(self, req)
    }

    fn timestamp<R: RequestView>(&self, req: &R) -> Result<u64, AuthError> {
        let ts = req
            .header(&self.timestamp_header)
            .ok_or(AuthError::MissingClaim)?;
        parse_u64(trim_ows(ts)).ok_or(AuthError::MalformedCredentials)
    }
}

impl PendingSignature<'_> {
    pub fn update(&mut self, chunk: &[u8]) {
        self.body.update(chunk);
    }

    /// Builds the signed message on the stack and verifies the signature header against it.
    pub fn finish<R: RequestView>(self, module: &SignCheck, req: &R) -> Result<(), AuthError> {
        let digest = self.body.finish();
        let mut digest_b64 = [0u8; 44];
        let n = B64_STD
            .encode_slice(digest.as_ref(), &mut digest_b64)
            .map_err(|_| AuthError::BadSignature)?;
        let ts = trim_ows(
            req.header(&module.timestamp_header)
                .ok_or(AuthError::MissingClaim)?,
        );

        let mut msg = [0u8; MAX_TARGET + MESSAGE_OVERHEAD];
        let mut w = Writer {
            buf: &mut msg,
            at: 0,
        };
        for (i, part) in [
            ts,
            req.method(),
            req.target(),
            digest_b64.get(..n).unwrap_or(&[]),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                w.put(b"\n")?;
            }
            w.put(part)?;
        }
        let at = w.at;
        let message = msg.get(..at).ok_or(AuthError::TooLarge)?;

        let sig = req
            .header(&module.signature_header)
            .ok_or(AuthError::MissingCredentials)?;
        let mut sig_buf = [0u8; MAX_SIGNATURE];
        let sig = decode_b64_into(&B64_STD, trim_ows(sig), &mut sig_buf)
            .ok_or(AuthError::MalformedCredentials)?;
        if self.key.verify(message, sig) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

/// Appends into a fixed buffer, refusing what does not fit.
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), AuthError> {
        let end = self.at + bytes.len();
        self.buf
            .get_mut(self.at..end)
            .ok_or(AuthError::TooLarge)?
            .copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
