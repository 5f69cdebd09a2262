//! `decrypt` module kind: AES-256-GCM decryption of request bodies and encryption of response
//! bodies with a key per app, the app named by a header (default `X-App-Id`).
//!
//! Wire format (docs/modules/decrypt.md): `nonce (12 bytes) || ciphertext || tag (16 bytes)`,
//! sent as standard base64 text (default, survives any client stack) or as raw bytes
//! (`encoding = "binary"`, `application/octet-stream`, 25% smaller). The AAD is `req:<app id>`
//! for requests and `resp:<app id>` for responses, so a captured response can never be
//! replayed as a request, nor one app's message passed off as another's.
//!
//! Both directions work in the caller's buffer: the body is base64-decoded and decrypted where
//! it lies, and a response is sealed and encoded in its own frame. Response nonces are 96 random
//! bits from the OS (`SystemRandom`); per NIST SP 800-38D that is sound for up to 2^32 messages
//! per key, so keys should be rotated (by a new module version) well before that.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use base64::Engine as _;
use ring::aead::{self, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::wire::{b64_decode_in_place, b64_encode_in_place, b64_len, Aad, Direction, MAX_APP_ID};
use crate::modules::key_auth::common::{
    check_header_name, is_token, trim_ows, AuthError, CompileError, RequestView, B64_STD,
};

/// Bytes of the GCM tag after the ciphertext.
pub const TAG_LEN: usize = 16;
/// Where a response's plaintext must sit in the frame handed to `seal_response`.
pub const PLAINTEXT_OFFSET: usize = NONCE_LEN;
/// Ceiling of `max_body_bytes`.
const MAX_BODY_CEILING: usize = 64 << 20;

/// How encrypted bodies travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    Base64,
    Binary,
}

/// `[[modules]]` settings of kind `decrypt`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecryptConfig {
    /// Header naming the app whose key applies.
    pub app_header: String,
    /// `base64` (default) or `binary`.
    pub encoding: BodyEncoding,
    /// Encrypt response bodies back to the app.
    pub encrypt_response: bool,
    /// Largest encrypted request body accepted, in wire bytes.
    pub max_body_bytes: usize,
    /// App id -> base64 of a 32-byte AES-256 key.
    pub keys: BTreeMap<String, String>,
}

impl Default for DecryptConfig {
    fn default() -> Self {
        Self {
            app_header: "X-App-Id".into(),
            encoding: BodyEncoding::Base64,
            encrypt_response: true,
            max_body_bytes: 1 << 20,
            keys: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for DecryptConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptConfig")
            .field("app_header", &self.app_header)
            .field("encoding", &self.encoding)
            .field("encrypt_response", &self.encrypt_response)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One app's compiled key.
pub struct AppKey {
    app: String,
    key: LessSafeKey,
}

impl AppKey {
    pub fn app(&self) -> &str {
        &self.app
    }
}

impl fmt::Debug for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppKey({})", self.app)
    }
}

/// A compiled decrypt module.
#[derive(Debug)]
pub struct Decrypt {
    app_header: String,
    encoding: BodyEncoding,
    encrypt_response: bool,
    max_body: usize,
    keys: HashMap<String, AppKey>,
    rng: SystemRandom,
}

impl Decrypt {
    pub fn compile(cfg: &DecryptConfig) -> Result<Self, Vec<CompileError>> {
        let mut errs = Vec::new();
        check_header_name("app_header", &cfg.app_header, &mut errs);
        if cfg.max_body_bytes == 0 || cfg.max_body_bytes > MAX_BODY_CEILING {
            let what = format!("must be 1 to {MAX_BODY_CEILING}");
            errs.push(CompileError::new("max_body_bytes", what));
        }
        if cfg.keys.is_empty() {
            errs.push(CompileError::new("keys", "at least one app key is needed"));
        }
        let mut keys = HashMap::new();
        for (app, b64) in &cfg.keys {
            let field = format!("keys.{app}");
            if app.len() > MAX_APP_ID || !is_token(app) {
                let what = format!("app ids are 1 to {MAX_APP_ID} token characters");
                errs.push(CompileError::new(field, what));
                continue;
            }
            let key = B64_STD
                .decode(b64.trim())
                .ok()
                .filter(|k| k.len() == 32)
                .and_then(|k| UnboundKey::new(&AES_256_GCM, &k).ok());
            match key {
                Some(k) => {
                    let key = LessSafeKey::new(k);
                    keys.insert(
                        app.clone(),
                        AppKey {
                            app: app.clone(),
                            key,
                        },
                    );
                }
                None => errs.push(CompileError::new(field, "must be base64 of 32 bytes")),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Self {
            app_header: cfg.app_header.to_ascii_lowercase(),
            encoding: cfg.encoding,
            encrypt_response: cfg.encrypt_response,
            max_body: cfg.max_body_bytes,
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// The key of the app the request names.
    pub fn app_key<R: RequestView>(&self, req: &R) -> Result<&AppKey, AuthError> {
        let app = req.header(&self.app_header).ok_or(AuthError::UnknownApp)?;
        let app = std::str::from_utf8(trim_ows(app)).map_err(|_| AuthError::UnknownApp)?;
        self.keys.get(app).ok_or(AuthError::UnknownApp)
    }

    /// Decrypts a whole request body where it lies and returns the plaintext, a sub-slice of
    /// `body`. On error the buffer's contents are unspecified.
    pub fn open_request<'b>(
        &self,
        app: &AppKey,
        body: &'b mut [u8],
    ) -> Result<&'b mut [u8], AuthError> {
        if body.len() > self.max_body {
            return Err(AuthError::BodyTooLarge);
        }
        open(app, self.encoding, Direction::Request, body)
    }

    /// Wire size of a sealed response of `plaintext_len` bytes: the frame size to allocate.
    /// Saturates at `usize::MAX` (which no frame can hold) instead of overflowing.
    pub fn sealed_len(&self, plaintext_len: usize) -> usize {
        let raw = plaintext_len.saturating_add(NONCE_LEN + TAG_LEN);
        match self.encoding {
            BodyEncoding::Base64 if raw > usize::MAX / 2 => usize::MAX,
            BodyEncoding::Base64 => b64_len(raw),
            BodyEncoding::Binary => raw,
        }
    }

    /// Seals a response in place. The plaintext must sit at
    /// `frame[PLAINTEXT_OFFSET..PLAINTEXT_OFFSET + plaintext_len]` and `frame` must hold
    /// `sealed_len(plaintext_len)` bytes; on success `frame[..returned]` is the wire body.
    pub fn seal_response(
        &self,
        app: &AppKey,
        frame: &mut [u8],
        plaintext_len: usize,
    ) -> Result<usize, AuthError> {
        if frame.len() < self.sealed_len(plaintext_len) {
            return Err(AuthError::EncryptFailed);
        }
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| AuthError::EncryptFailed)?;
        let aad =
            Aad::new(Direction::Response, app.app.as_bytes()).ok_or(AuthError::EncryptFailed)?;
        let (head, rest) = frame
            .split_at_mut_checked(NONCE_LEN)
            .ok_or(AuthError::EncryptFailed)?;
        head.copy_from_slice(&nonce);
        let (text, tail) = rest
            .split_at_mut_checked(plaintext_len)
            .ok_or(AuthError::EncryptFailed)?;
        let tag = app
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad.as_bytes()),
                text,
            )
            .map_err(|_| AuthError::EncryptFailed)?;
        tail.get_mut(..TAG_LEN)
            .ok_or(AuthError::EncryptFailed)?
            .copy_from_slice(tag.as_ref());
        let raw = NONCE_LEN + plaintext_len + TAG_LEN;
        match self.encoding {
            BodyEncoding::Binary => Ok(raw),
            BodyEncoding::Base64 => b64_encode_in_place(frame, raw).ok_or(AuthError::EncryptFailed),
        }
    }

    /// What a client does with a response: the inverse of `seal_response` (tests, demo client).
    pub fn open_response<'b>(
        &self,
        app: &AppKey,
        body: &'b mut [u8],
    ) -> Result<&'b mut [u8], AuthError> {
        open(app, self.encoding, Direction::Response, body)
    }

    /// Whether responses are to be encrypted.
    /// The key of a named app.
    pub fn key(&self, app: &str) -> Option<&AppKey> {
        self.keys.get(app)
    }

    /// Largest encrypted request body accepted (wire bytes).
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    pub fn encrypt_response(&self) -> bool {
        self.encrypt_response
    }

    /// The `Content-Type` of encrypted bodies.
    pub fn content_type(&self) -> &'static str {
        match self.encoding {
            BodyEncoding::Base64 => "text/plain; charset=us-ascii",
            BodyEncoding::Binary => "application/octet-stream",
        }
    }
}

fn open<'b>(
    app: &AppKey,
    encoding: BodyEncoding,
    direction: Direction,
    body: &'b mut [u8],
) -> Result<&'b mut [u8], AuthError> {
    let raw_len = match encoding {
        BodyEncoding::Binary => body.len(),
        BodyEncoding::Base64 => b64_decode_in_place(body).ok_or(AuthError::MalformedBody)?,
    };
    let raw = body.get_mut(..raw_len).ok_or(AuthError::MalformedBody)?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(AuthError::MalformedBody);
    }
    let (nonce, sealed) = raw.split_at_mut(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| AuthError::MalformedBody)?;
    let aad = Aad::new(direction, app.app.as_bytes()).ok_or(AuthError::DecryptFailed)?;
    app.key
        .open_in_place(nonce, aead::Aad::from(aad.as_bytes()), sealed)
        .map_err(|_| AuthError::DecryptFailed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::key_auth::test_request::TestRequest;

    // The example from docs/modules/decrypt.md.
    const EXAMPLE: &str = r#"
[[modules]]
app_header = "X-App-Id"
encoding = "base64"
encrypt_response = true
max_body_bytes = 1048576
keys = { app1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", app2 = "H4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4c=" }
"#;

    #[derive(Deserialize)]
    struct File {
        modules: Vec<DecryptConfig>,
    }

    fn module(encoding: BodyEncoding) -> Decrypt {
        let mut cfg = toml::from_str::<File>(EXAMPLE).unwrap().modules.remove(0);
        cfg.encoding = encoding;
        Decrypt::compile(&cfg).unwrap()
    }

    fn req(app: &str) -> TestRequest {
        TestRequest::new("POST", "/pay").with("X-App-Id", app)
    }

    /// A client sealing a request the documented way, with ring directly.
    fn client_seal(key: &[u8; 32], app: &str, plaintext: &[u8], encoding: BodyEncoding) -> Vec<u8> {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap());
        let nonce = [9u8; NONCE_LEN];
        let mut body = nonce.to_vec();
        let mut text = plaintext.to_vec();
        let aad = format!("req:{app}");
        let n = Nonce::assume_unique_for_key(nonce);
        key.seal_in_place_append_tag(n, aead::Aad::from(aad.as_bytes()), &mut text)
            .unwrap();
        body.extend(text);
        match encoding {
            BodyEncoding::Binary => body,
            BodyEncoding::Base64 => B64_STD.encode(body).into_bytes(),
        }
    }

    fn app1_key() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn request_round_trip_both_encodings_and_sizes() {
        for encoding in [BodyEncoding::Base64, BodyEncoding::Binary] {
            let m = module(encoding);
            let app = m.app_key(&req("app1")).unwrap();
            for size in [0, 1, 1024, 5000, 65_536] {
                let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
                let mut body = client_seal(&app1_key(), "app1", &plain, encoding);
                let opened = m.open_request(app, &mut body).unwrap();
                assert_eq!(opened, &plain[..], "{encoding:?} {size}");
            }
        }
    }

    #[test]
    fn response_round_trip_uses_fresh_nonces() {
        for encoding in [BodyEncoding::Base64, BodyEncoding::Binary] {
            let m = module(encoding);
            let app = m.app_key(&req("app2")).unwrap();
            let plain = b"{\"ok\":true,\"balance\":100}";
            let mut wires = Vec::new();
            for _ in 0..2 {
                let mut frame = vec![0u8; m.sealed_len(plain.len())];
                frame[PLAINTEXT_OFFSET..PLAINTEXT_OFFSET + plain.len()].copy_from_slice(plain);
                let n = m.seal_response(app, &mut frame, plain.len()).unwrap();
                assert_eq!(n, frame.len());
                wires.push(frame.clone());
                assert_eq!(m.open_response(app, &mut frame).unwrap(), plain);
            }
            assert_ne!(wires[0], wires[1], "random nonce per response");
            // Direction is bound: a response is not a valid request.
            let mut reflected = wires[0].clone();
            assert_eq!(
                m.open_request(app, &mut reflected),
                Err(AuthError::DecryptFailed)
            );
            let mut small = vec![0u8; 10];
            assert_eq!(
                m.seal_response(app, &mut small, 4),
                Err(AuthError::EncryptFailed)
            );
        }
    }

    #[test]
    fn tampered_wrong_key_unknown_app() {
        let m = module(BodyEncoding::Binary);
        let app1 = m.app_key(&req("app1")).unwrap();
        let app2 = m.app_key(&req("app2")).unwrap();
        let body = client_seal(&app1_key(), "app1", b"secret payload", BodyEncoding::Binary);
        for i in [0, 12, 20, body.len() - 1] {
            let mut tampered = body.clone();
            tampered[i] ^= 0x40;
            assert_eq!(
                m.open_request(app1, &mut tampered),
                Err(AuthError::DecryptFailed),
                "{i}"
            );
        }
        let mut other = body.clone();
        assert_eq!(
            m.open_request(app2, &mut other),
            Err(AuthError::DecryptFailed)
        );
        assert_eq!(m.app_key(&req("app3")).unwrap_err(), AuthError::UnknownApp);
        let no_header = TestRequest::new("POST", "/");
        assert_eq!(m.app_key(&no_header).unwrap_err(), AuthError::UnknownApp);
    }

    #[test]
    fn truncated_bad_base64_and_oversized() {
        let m = module(BodyEncoding::Base64);
        let app = m.app_key(&req("app1")).unwrap();
        let body = client_seal(&app1_key(), "app1", &[7u8; 30], BodyEncoding::Base64);
        let mut truncated = body[..body.len() - 8].to_vec();
        assert_eq!(
            m.open_request(app, &mut truncated),
            Err(AuthError::DecryptFailed)
        );
        let mut tiny = B64_STD.encode([0u8; 27]).into_bytes();
        assert_eq!(
            m.open_request(app, &mut tiny),
            Err(AuthError::MalformedBody)
        );
        let mut bad = body.clone();
        bad[3] = b'*';
        assert_eq!(m.open_request(app, &mut bad), Err(AuthError::MalformedBody));
        let mut empty = Vec::new();
        assert_eq!(
            m.open_request(app, &mut empty),
            Err(AuthError::MalformedBody)
        );
        let mut huge = vec![b'A'; (1 << 20) + 4];
        assert_eq!(m.open_request(app, &mut huge), Err(AuthError::BodyTooLarge));
        assert_eq!(AuthError::BodyTooLarge.status(), 413);
    }

    #[test]
    fn config_defaults_and_errors() {
        let cfg: DecryptConfig = toml::from_str("").unwrap();
        assert_eq!(cfg.app_header, "X-App-Id");
        assert_eq!(Decrypt::compile(&cfg).unwrap_err()[0].field, "keys");
        let mut bad = DecryptConfig::default();
        bad.keys.insert("short".into(), B64_STD.encode([0u8; 16]));
        bad.keys.insert("bad id".into(), B64_STD.encode([0u8; 32]));
        bad.keys.insert("notb64".into(), "###".into());
        let errs = Decrypt::compile(&bad).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["keys.bad id", "keys.notb64", "keys.short"]);
        assert!(!format!("{bad:?}").contains("AAAA"), "keys never printed");
        assert!(toml::from_str::<DecryptConfig>("encoding = \"hex\"").is_err());
    }

    #[test]
    fn documented_test_vector_opens() {
        let m = module(BodyEncoding::Base64);
        let app = m.app_key(&req("app1")).unwrap();
        let mut body = b"CQkJCQkJCQkJCQkJyDppVujqLdDzMwHJm+upfRnAMRcjRGEVO+zX7/Ax".to_vec();
        assert_eq!(
            m.open_request(app, &mut body).unwrap(),
            br#"{"amount":100}"#
        );
    }

    #[test]
    fn documented_example_compiles() {
        let cfg: DecryptConfig = crate::modules::ip_list::tests::doc_example(
            "decrypt",
            include_str!("../../../../docs/modules/decrypt.md"),
        );
        assert_eq!(cfg.keys.len(), 2);
        assert!(Decrypt::compile(&cfg).is_ok());
    }

    #[test]
    fn open_and_seal_do_not_allocate() {
        for encoding in [BodyEncoding::Base64, BodyEncoding::Binary] {
            let m = module(encoding);
            let app = m.app_key(&req("app1")).unwrap();
            let mut body = client_seal(&app1_key(), "app1", &[5u8; 4000], encoding);
            let mut frame = vec![0u8; m.sealed_len(4000)];
            let (n, ok) = crate::modules::ip_list::tests::allocations_during(|| {
                let opened = m.open_request(app, &mut body).map(|p| p.len());
                let sealed = m.seal_response(app, &mut frame, 4000);
                (opened, sealed.is_ok())
            });
            assert_eq!(ok, (Ok(4000), true));
            assert_eq!(n, 0, "{encoding:?}");
        }
    }
}
