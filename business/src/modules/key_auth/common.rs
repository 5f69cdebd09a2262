//! Pieces shared by the authentication and crypto engines (`key_auth`, `jwt`, `hmac_auth`,
//! `crypto_box`): the compile-error and refusal types, the read-only request view the engines
//! inspect, and small allocation-free parsers (query parameters, cookies, base64 into bounded
//! buffers, decimal numbers, clock-skew windows).
//!
//! It lives under `key_auth` only because the module tree (`modules/mod.rs`) belongs to the
//! pipeline owner; nothing here is specific to API keys, and it can be hoisted as is.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

/// A problem found while compiling a config resource. `field` is relative to the resource
/// (`claims_to_headers.sub`, `keys.app1`); the config layer prefixes the resource's own path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub field: String,
    pub message: String,
}

impl CompileError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same problem seen from one level up (`jwt.key` -> `consumers[3].jwt.key`).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why an engine refused a request. Every variant is a fixed value with static text, so refusing
/// never allocates and `code()` is safe as a bounded metric label. The message deliberately
/// stays vague where detail would help an attacker (which part of a signature failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No credential where the module looks for one.
    MissingCredentials,
    /// A credential is present but cannot be parsed (bad base64, bad JSON, bad syntax).
    MalformedCredentials,
    /// A claim or header the scheme requires is absent.
    MissingClaim,
    /// The credential names no known consumer or app key.
    UnknownConsumer,
    /// Signature, HMAC or API key does not match.
    BadSignature,
    /// `alg: none`, or an algorithm this gateway does not accept.
    AlgorithmNotAllowed,
    /// The token's algorithm differs from the one configured for the consumer's key.
    AlgorithmMismatch,
    /// The token is past its `exp` (plus clock skew).
    Expired,
    /// `nbf` or `iat` lies in the future (beyond clock skew).
    NotYetValid,
    /// A `Date` or timestamp header is outside the allowed clock skew.
    StaleTimestamp,
    /// The nonce was already used within the replay window.
    Replayed,
    /// The replay cache has no room left; refusing keeps replay protection intact.
    ReplayCacheFull,
    /// A body was sent without the `Digest` header the module requires.
    MissingDigest,
    /// The body does not hash to the value in `Digest`.
    DigestMismatch,
    /// A credential or encrypted body exceeds its configured size limit.
    TooLarge,
    /// The app id header is missing or names no configured app.
    UnknownApp,
    /// The encrypted body is not in the documented wire format (bad base64, too short).
    MalformedBody,
    /// The encrypted body exceeds the module's `max_body_bytes`.
    BodyTooLarge,
    /// AES-GCM authentication failed: tampered ciphertext or wrong key.
    DecryptFailed,
    /// The response could not be sealed (buffer too small; should not happen in a wired stage).
    EncryptFailed,
}

impl AuthError {
    /// HTTP status the gateway answers with (CONTRACT.md: 401 auth failed, 400 bad request).
    pub fn status(self) -> u16 {
        match self {
            AuthError::MalformedBody | AuthError::DecryptFailed => 400,
            AuthError::BodyTooLarge => 413,
            AuthError::ReplayCacheFull => 429,
            AuthError::EncryptFailed => 500,
            _ => 401,
        }
    }

    /// Stable machine-readable code for the error body and metrics.
    pub fn code(self) -> &'static str {
        match self {
            AuthError::MissingCredentials => "credentials_missing",
            AuthError::MalformedCredentials => "credentials_malformed",
            AuthError::MissingClaim => "claim_missing",
            AuthError::UnknownConsumer => "consumer_unknown",
            AuthError::BadSignature => "signature_invalid",
            AuthError::AlgorithmNotAllowed => "alg_not_allowed",
            AuthError::AlgorithmMismatch => "alg_mismatch",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::StaleTimestamp => "timestamp_out_of_window",
            AuthError::Replayed => "nonce_replayed",
            AuthError::ReplayCacheFull => "replay_cache_full",
            AuthError::MissingDigest => "digest_missing",
            AuthError::DigestMismatch => "digest_mismatch",
            AuthError::TooLarge => "credentials_too_large",
            AuthError::UnknownApp => "app_unknown",
            AuthError::MalformedBody => "body_malformed",
            AuthError::BodyTooLarge => "body_too_large",
            AuthError::DecryptFailed => "decrypt_failed",
            AuthError::EncryptFailed => "encrypt_failed",
        }
    }

    /// Human-readable text for the error body.
    pub fn message(self) -> &'static str {
        match self {
            AuthError::MissingCredentials => "no credentials in the request",
            AuthError::MalformedCredentials => "credentials are malformed",
            AuthError::MissingClaim => "a required claim or signed header is missing",
            AuthError::UnknownConsumer | AuthError::BadSignature => "invalid credentials",
            AuthError::AlgorithmNotAllowed => "signature algorithm not allowed",
            AuthError::AlgorithmMismatch => "signature algorithm does not match the key",
            AuthError::Expired => "token expired",
            AuthError::NotYetValid => "token not yet valid",
            AuthError::StaleTimestamp => "request time outside the allowed window",
            AuthError::Replayed => "request replayed",
            AuthError::ReplayCacheFull => "too many signed requests, retry later",
            AuthError::MissingDigest => "body digest required",
            AuthError::DigestMismatch => "body does not match its digest",
            AuthError::TooLarge => "credentials too large",
            AuthError::UnknownApp => "unknown app",
            AuthError::MalformedBody => "encrypted body is malformed",
            AuthError::BodyTooLarge => "encrypted body too large",
            AuthError::DecryptFailed => "body could not be decrypted",
            AuthError::EncryptFailed => "response could not be encrypted",
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// The read-only view of a request head the engines need. The access layer implements it over
/// its parsed head, so engines stay free of I/O and of any particular HTTP representation.
pub trait RequestView {
    /// The method as received (`GET`).
    fn method(&self) -> &[u8];
    /// The request target as received: path plus `?query`, not decoded.
    fn target(&self) -> &[u8];
    /// The first value of a header, names compared ASCII case-insensitively.
    fn header(&self, name: &str) -> Option<&[u8]>;
}

/// Standard alphabet, padding optional: what app SDKs emit varies, and padding carries no
/// information, so being strict about it would only break clients.
pub const B64_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// URL-safe alphabet without padding, as RFC 7515 prescribes for JWS segments. Non-canonical
/// trailing bits are rejected (the crate default), so one signature has one spelling.
pub const B64_URL: GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Decodes base64 into `out` and returns the decoded prefix, or `None` when the input is invalid
/// or would not fit. Never allocates and never panics on hostile input.
pub fn decode_b64_into<'o>(
    engine: &GeneralPurpose,
    input: &[u8],
    out: &'o mut [u8],
) -> Option<&'o mut [u8]> {
    // Quick bound first so an oversized input is refused before any decoding work.
    if input.len() / 4 * 3 > out.len() + 3 {
        return None;
    }
    let n = engine.decode_slice(input, out).ok()?;
    out.get_mut(..n)
}

/// Strips optional whitespace (space, tab) from both ends, as HTTP allows around field values.
pub fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| *b != b' ' && *b != b'\t');
    let Some(start) = start else { return &[] };
    let end = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or(&[])
}

/// Finds a query parameter's raw (still percent-encoded) value in a request target.
pub fn query_param<'t>(target: &'t [u8], name: &str) -> Option<&'t [u8]> {
    let q = target.iter().position(|b| *b == b'?')?;
    let query = target.get(q + 1..)?;
    // A fragment never reaches a server, but a hostile client can still send one.
    let query = match query.iter().position(|b| *b == b'#') {
        Some(h) => query.get(..h)?,
        None => query,
    };
    query.split(|b| *b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(eq) => (pair.get(..eq)?, pair.get(eq + 1..)?),
            None => (pair, &[][..]),
        };
        (k == name.as_bytes()).then_some(v)
    })
}

/// Percent-decodes `src` into `out` (`+` is kept, since API keys are not form text). Returns
/// `None` on a bad escape or when `out` is too small.
pub fn percent_decode_into<'o>(src: &[u8], out: &'o mut [u8]) -> Option<&'o [u8]> {
    let mut w = 0;
    let mut i = 0;
    while i < src.len() {
        let b = *src.get(i)?;
        let byte = if b == b'%' {
            let hi = hex_val(*src.get(i + 1)?)?;
            let lo = hex_val(*src.get(i + 2)?)?;
            i += 3;
            hi << 4 | lo
        } else {
            i += 1;
            b
        };
        *out.get_mut(w)? = byte;
        w += 1;
    }
    out.get(..w)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Finds a cookie's value in a `Cookie` header (`a=1; b=2`).
pub fn cookie_value<'h>(cookie_header: &'h [u8], name: &str) -> Option<&'h [u8]> {
    cookie_header.split(|b| *b == b';').find_map(|part| {
        let part = trim_ows(part);
        let eq = part.iter().position(|b| *b == b'=')?;
        let (k, v) = (part.get(..eq)?, part.get(eq + 1..)?);
        (k == name.as_bytes()).then_some(trim_ows(v))
    })
}

/// Parses an unsigned decimal with no sign, spaces or leading `+`; `None` on overflow.
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 {
        return None;
    }
    v.iter().try_fold(0u64, |acc, b| {
        let d = b.checked_sub(b'0').filter(|d| *d < 10)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// True when `ts` lies within `skew` seconds of `now`, either side.
pub fn within_skew(ts: u64, now: u64, skew: u64) -> bool {
    ts.abs_diff(now) <= skew
}

/// RFC 9110 `token` characters: what a header name may contain.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// A header value we may forward: visible ASCII, space and tab, and no CR/LF that would let a
/// value smuggle a second header upstream.
pub fn is_safe_header_value(v: &[u8]) -> bool {
    v.iter()
        .all(|b| *b == b'\t' || (0x20..0x7f).contains(b) || *b >= 0x80)
}

/// Headers an engine must never set or copy: framing and routing belong to the gateway.
pub fn is_reserved_header(name: &str) -> bool {
    const RESERVED: [&str; 9] = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "x-consumer-id",
        "x-request-id",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// Checks a configured header name, with the field path to blame.
pub fn check_header_name(field: &str, name: &str, errs: &mut Vec<CompileError>) {
    if !is_token(name) {
        errs.push(CompileError::new(
            field,
            format!("`{name}` is not a valid header name"),
        ));
    }
}

/// Checks a configured clock skew against a ceiling that keeps replay windows meaningful.
pub fn check_skew(field: &str, skew: u64, max: u64, errs: &mut Vec<CompileError>) {
    if skew > max {
        errs.push(CompileError::new(
            field,
            format!("must be at most {max} seconds"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_found_raw() {
        let t = b"/a/b?x=1&apikey=k%2By&empty&z=#frag";
        assert_eq!(query_param(t, "apikey"), Some(&b"k%2By"[..]));
        assert_eq!(query_param(t, "empty"), Some(&b""[..]));
        assert_eq!(query_param(t, "z"), Some(&b""[..]));
        assert_eq!(query_param(t, "frag"), None);
        assert_eq!(query_param(b"/no-query", "x"), None);
    }

    #[test]
    fn percent_decoding_is_bounded_and_strict() {
        let mut out = [0u8; 8];
        assert_eq!(percent_decode_into(b"k%2By+", &mut out), Some(&b"k+y+"[..]));
        assert_eq!(percent_decode_into(b"%zz", &mut out), None);
        assert_eq!(percent_decode_into(b"%2", &mut out), None);
        assert_eq!(percent_decode_into(b"123456789", &mut out), None);
    }

    #[test]
    fn cookies_and_trimming() {
        let h = b"a=1; token = abc.def ;b=2";
        assert_eq!(cookie_value(h, "token"), None, "names are exact");
        assert_eq!(
            cookie_value(b"a=1; token=abc.def ;b=2", "token"),
            Some(&b"abc.def"[..])
        );
        assert_eq!(cookie_value(h, "b"), Some(&b"2"[..]));
        assert_eq!(trim_ows(b" \t x y \t"), b"x y");
        assert_eq!(trim_ows(b"   "), b"");
    }

    #[test]
    fn decimals_and_skew() {
        assert_eq!(parse_u64(b"1700000000"), Some(1_700_000_000));
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"99999999999999999999"), None);
        assert!(within_skew(100, 160, 60));
        assert!(!within_skew(100, 161, 60));
        assert!(within_skew(160, 100, 60));
    }

    #[test]
    fn base64_into_bounded_buffers() {
        let mut out = [0u8; 4];
        assert_eq!(
            decode_b64_into(&B64_STD, b"AQID", &mut out).as_deref(),
            Some(&[1u8, 2, 3][..])
        );
        assert_eq!(
            decode_b64_into(&B64_STD, b"AQI=", &mut out).as_deref(),
            Some(&[1u8, 2][..])
        );
        assert_eq!(
            decode_b64_into(&B64_STD, b"AQI", &mut out).as_deref(),
            Some(&[1u8, 2][..])
        );
        assert!(
            decode_b64_into(&B64_STD, b"AQIDBAUG", &mut out).is_none(),
            "too long"
        );
        assert!(decode_b64_into(&B64_STD, b"A!ID", &mut out).is_none());
        assert!(
            decode_b64_into(&B64_URL, b"AQI=", &mut out).is_none(),
            "no padding in JWS"
        );
    }

    #[test]
    fn header_checks() {
        assert!(is_token("X-User-Id"));
        assert!(!is_token("X User"));
        assert!(!is_token(""));
        assert!(is_safe_header_value(b"abc \t d"));
        assert!(!is_safe_header_value(b"a\r\nx: y"));
        assert!(is_reserved_header("Content-Length"));
        assert!(!is_reserved_header("x-user-id"));
        assert_eq!(AuthError::DecryptFailed.status(), 400);
        assert_eq!(AuthError::Expired.status(), 401);
    }
}
