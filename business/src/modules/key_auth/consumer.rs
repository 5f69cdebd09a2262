//! Consumers: the `[[consumers]]` config resource (who may call, with which credentials) and the
//! `ConsumerIndex` compiled from all of them once per config version, which gives the auth
//! engines O(1) lookups by API key, JWT identity and HMAC key id.
//!
//! Secrets are turned into ring keys at compile time and never compared with `==`: API keys are
//! found through the SHA-256 of the presented key (so the hash-map probe only learns a digest)
//! and then confirmed with a constant-time comparison.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use ring::{digest, hmac};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::common::{check_header_name, is_reserved_header, is_safe_header_value, CompileError};
use crate::modules::jwt::keys::{SigAlgorithm, VerifyKey};

/// Longest API key accepted (config and requests alike); longer presented keys are refused
/// before hashing.
pub const MAX_API_KEY: usize = 256;

/// A `[[consumers]]` entry as configured.
#[derive(Clone, PartialEq, Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Extra headers sent upstream once the consumer is authenticated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_auth: Option<KeyAuthCredential>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtCredential>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_auth: Option<HmacCredential>,
}

/// `key_auth = { key = "..." }`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAuthCredential {
    pub key: String,
}

/// `jwt = { algorithm = "HS256", key = "..." }` or `{ algorithm = "RS256", public_key = "PEM" }`.
/// `issuer` is the identity a token names the consumer by (see `ConsumerIndex::by_jwt_identity`);
/// it defaults to the consumer id.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtCredential {
    pub algorithm: SigAlgorithm,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// `hmac_auth = { key_id = "...", secret = "..." }`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacCredential {
    pub key_id: String,
    pub secret: String,
}

// Hand-written Debug so a stray `{:?}` in a log line never prints a secret.
impl fmt::Debug for KeyAuthCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyAuthCredential")
            .field("key", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for JwtCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtCredential")
            .field("algorithm", &self.algorithm)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("public_key", &self.public_key.is_some())
            .field("issuer", &self.issuer)
            .finish()
    }
}

impl fmt::Debug for HmacCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacCredential")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The part of a consumer the pipeline needs after authentication.
#[derive(Debug)]
pub struct CompiledConsumer {
    /// Position in the index (what `Context::consumer` holds; see `ConsumerIndex::by_index`).
    pub index: usize,
    pub id: String,
    pub username: Option<String>,
    /// Headers to add upstream, validated at compile time.
    pub headers: Vec<(String, String)>,
}

/// All consumers of one config version, indexed for the auth engines.
#[derive(Debug, Default)]
pub struct ConsumerIndex {
    consumers: Vec<CompiledConsumer>,
    by_id: HashMap<String, usize>,
    /// SHA-256(api key) -> (consumer, the key itself for the constant-time confirmation).
    by_api_key: HashMap<[u8; 32], (usize, Box<[u8]>)>,
    by_jwt_identity: HashMap<String, (usize, VerifyKey)>,
    by_hmac_key_id: HashMap<String, (usize, hmac::Key)>,
}

impl ConsumerIndex {
    /// Validates every consumer and builds the index. Error fields are `consumers[i].…`.
    pub fn compile(consumers: &[Consumer]) -> Result<Self, Vec<CompileError>> {
        let mut idx = ConsumerIndex::default();
        let mut errs = Vec::new();
        for (i, c) in consumers.iter().enumerate() {
            let at = format!("consumers[{i}]");
            let before = errs.len();
            idx.add(c, &mut errs);
            for e in errs.iter_mut().skip(before) {
                *e = std::mem::replace(e, CompileError::new("", "")).prefixed(&at);
            }
        }
        if errs.is_empty() {
            Ok(idx)
        } else {
            Err(errs)
        }
    }

    fn add(&mut self, c: &Consumer, errs: &mut Vec<CompileError>) {
        let slot = self.consumers.len();
        if c.id.is_empty() {
            errs.push(CompileError::new("id", "must not be empty"));
        }
        if self.by_id.insert(c.id.clone(), slot).is_some() {
            errs.push(CompileError::new(
                "id",
                format!("duplicate consumer id `{}`", c.id),
            ));
        }
        for (name, value) in &c.headers {
            let field = format!("headers.{name}");
            check_header_name(&field, name, errs);
            if is_reserved_header(name) {
                errs.push(CompileError::new(
                    &field,
                    "this header is set by the gateway",
                ));
            }
            if !is_safe_header_value(value.as_bytes()) {
                errs.push(CompileError::new(
                    &field,
                    "value contains control characters",
                ));
            }
        }
        if let Some(k) = &c.key_auth {
            self.add_api_key(slot, k, errs);
        }
        if let Some(j) = &c.jwt {
            let identity = j.issuer.clone().unwrap_or_else(|| c.id.clone());
            match VerifyKey::compile(
                j.algorithm,
                j.key.as_deref(),
                j.public_key.as_deref(),
                "key",
            ) {
                Ok(key) => {
                    if self
                        .by_jwt_identity
                        .insert(identity.clone(), (slot, key))
                        .is_some()
                    {
                        let what = format!("JWT identity `{identity}` is used by another consumer");
                        errs.push(CompileError::new("jwt.issuer", what));
                    }
                }
                Err(e) => errs.push(e.prefixed("jwt")),
            }
        }
        if let Some(h) = &c.hmac_auth {
            if h.key_id.is_empty() {
                errs.push(CompileError::new("hmac_auth.key_id", "must not be empty"));
            }
            if h.secret.len() < 32 {
                errs.push(CompileError::new(
                    "hmac_auth.secret",
                    "needs at least 32 bytes",
                ));
            }
            let key = hmac::Key::new(hmac::HMAC_SHA256, h.secret.as_bytes());
            if self
                .by_hmac_key_id
                .insert(h.key_id.clone(), (slot, key))
                .is_some()
            {
                let what = format!("key id `{}` is used by another consumer", h.key_id);
                errs.push(CompileError::new("hmac_auth.key_id", what));
            }
        }
        self.consumers.push(CompiledConsumer {
            index: slot,
            id: c.id.clone(),
            username: c.username.clone(),
            headers: c
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
    }

    fn add_api_key(&mut self, slot: usize, k: &KeyAuthCredential, errs: &mut Vec<CompileError>) {
        let key = k.key.as_bytes();
        if key.len() < 16 || key.len() > MAX_API_KEY {
            let what = format!("API keys need 16 to {MAX_API_KEY} bytes");
            errs.push(CompileError::new("key_auth.key", what));
            return;
        }
        if !is_safe_header_value(key) || key.contains(&b' ') {
            errs.push(CompileError::new(
                "key_auth.key",
                "must be printable, without spaces",
            ));
        }
        let entry = (slot, key.to_vec().into_boxed_slice());
        if self.by_api_key.insert(sha256(key), entry).is_some() {
            errs.push(CompileError::new(
                "key_auth.key",
                "the same key is used by another consumer",
            ));
        }
    }

    /// The consumer owning an API key. Hash first (the map only ever sees a digest), then a
    /// constant-time comparison so a digest collision cannot authenticate.
    pub fn by_api_key(&self, presented: &[u8]) -> Option<&CompiledConsumer> {
        if presented.is_empty() || presented.len() > MAX_API_KEY {
            return None;
        }
        let (slot, key) = self.by_api_key.get(&sha256(presented))?;
        if bool::from(key.as_ref().ct_eq(presented)) {
            self.consumers.get(*slot)
        } else {
            None
        }
    }

    /// The consumer a JWT names, with its verification key. The identity is the consumer's
    /// `jwt.issuer` when set, else its `id`; the JWT engine looks it up with the value of the
    /// configured claim (`key`, falling back to `iss`).
    pub fn by_jwt_identity(&self, identity: &str) -> Option<(&CompiledConsumer, &VerifyKey)> {
        let (slot, key) = self.by_jwt_identity.get(identity)?;
        Some((self.consumers.get(*slot)?, key))
    }

    /// The consumer owning an HMAC key id, with its HMAC-SHA256 key.
    pub fn by_hmac_key_id(&self, key_id: &str) -> Option<(&CompiledConsumer, &hmac::Key)> {
        let (slot, key) = self.by_hmac_key_id.get(key_id)?;
        Some((self.consumers.get(*slot)?, key))
    }

    /// A consumer by its position (`CompiledConsumer::index`).
    pub fn by_index(&self, index: usize) -> Option<&CompiledConsumer> {
        self.consumers.get(index)
    }

    /// A consumer by its id.
    pub fn get(&self, id: &str) -> Option<&CompiledConsumer> {
        self.consumers.get(*self.by_id.get(id)?)
    }

    pub fn len(&self) -> usize {
        self.consumers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.consumers.is_empty()
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_EXAMPLE: &str = r#"
[[consumers]]
id = "acme"
username = "Acme Corp"
headers = { X-Tier = "gold" }
key_auth = { key = "acme-3f9c2a7d41b8e6f0" }
jwt = { algorithm = "HS256", key = "acme-jwt-secret-0123456789abcdef0123", issuer = "acme-issuer" }
hmac_auth = { key_id = "acme-hmac-1", secret = "acme-hmac-secret-0123456789abcdef0123" }

[[consumers]]
id = "beta"
key_auth = { key = "beta-77aa10c3de55f012" }
"#;

    #[derive(Deserialize)]
    struct File {
        consumers: Vec<Consumer>,
    }

    fn index() -> ConsumerIndex {
        let f: File = toml::from_str(DOC_EXAMPLE).unwrap();
        ConsumerIndex::compile(&f.consumers).unwrap()
    }

    #[test]
    fn documented_example_compiles_and_looks_up() {
        let idx = index();
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.by_api_key(b"acme-3f9c2a7d41b8e6f0").unwrap().id, "acme");
        assert_eq!(idx.by_api_key(b"beta-77aa10c3de55f012").unwrap().id, "beta");
        assert!(idx.by_api_key(b"acme-3f9c2a7d41b8e6f1").is_none());
        assert!(idx.by_api_key(b"").is_none());
        let (c, key) = idx.by_jwt_identity("acme-issuer").unwrap();
        assert_eq!(
            (c.id.as_str(), key.algorithm()),
            ("acme", SigAlgorithm::HS256)
        );
        assert!(
            idx.by_jwt_identity("acme").is_none(),
            "issuer replaces the id"
        );
        assert_eq!(idx.by_hmac_key_id("acme-hmac-1").unwrap().0.id, "acme");
        assert_eq!(
            idx.get("acme").unwrap().headers,
            vec![("X-Tier".into(), "gold".into())]
        );
    }

    #[test]
    fn duplicates_and_bad_values_name_their_field() {
        let mut f: File = toml::from_str(DOC_EXAMPLE).unwrap();
        f.consumers[1].key_auth = f.consumers[0].key_auth.clone();
        f.consumers[1]
            .headers
            .insert("Content-Length".into(), "1".into());
        f.consumers[1]
            .headers
            .insert("X-Bad".into(), "a\r\nb".into());
        let errs = ConsumerIndex::compile(&f.consumers).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"consumers[1].key_auth.key"), "{errs:?}");
        assert!(
            fields.contains(&"consumers[1].headers.Content-Length"),
            "{errs:?}"
        );
        assert!(fields.contains(&"consumers[1].headers.X-Bad"), "{errs:?}");
    }

    #[test]
    fn weak_secrets_are_refused() {
        let toml_text = r#"
[[consumers]]
id = "weak"
key_auth = { key = "short" }
jwt = { algorithm = "HS256", key = "short" }
hmac_auth = { key_id = "k", secret = "short" }
"#;
        let f: File = toml::from_str(toml_text).unwrap();
        let errs = ConsumerIndex::compile(&f.consumers).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "consumers[0].key_auth.key",
                "consumers[0].jwt.key",
                "consumers[0].hmac_auth.secret"
            ]
        );
    }

    #[test]
    fn unknown_fields_are_rejected_and_debug_hides_secrets() {
        let bad = "[[consumers]]\nid = \"x\"\nkey_auth = { key = \"k\", extra = 1 }\n";
        assert!(toml::from_str::<File>(bad).is_err());
        let f: File = toml::from_str(DOC_EXAMPLE).unwrap();
        let dbg = format!("{:?}", f.consumers[0]);
        assert!(!dbg.contains("acme-3f9c2a7d41b8e6f0") && !dbg.contains("acme-jwt-secret"));
    }

    #[test]
    fn consumers_page_example_compiles() {
        let doc = include_str!("../../../../docs/modules/consumers.md");
        let block = doc
            .split("```toml\n")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        let f: File = toml::from_str(block).unwrap();
        let idx = ConsumerIndex::compile(&f.consumers).unwrap();
        let (c, key) = idx.by_jwt_identity("https://idp.example").unwrap();
        assert_eq!(
            (c.id.as_str(), key.algorithm()),
            ("mobile", SigAlgorithm::RS256)
        );
    }
}
