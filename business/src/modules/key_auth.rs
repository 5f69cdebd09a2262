//! key_auth engine: authenticates a request by an API key carried in a header (default
//! `apikey`) or, when enabled, a query parameter, and names the consumer that owns it. The stage
//! sends the consumer id upstream as `X-Consumer-Id` and the consumer's extra headers.
//!
//! Design: the lookup is a hash-map probe on SHA-256(key) followed by a constant-time compare
//! (see `consumer`), so timing reveals nothing about stored keys. The query parameter is off by
//! default because keys in URLs end up in access logs and browser history. No allocation per
//! request: a percent-encoded key is decoded into a stack buffer of `MAX_API_KEY` bytes.
//!
//! `common` and `consumer` are shared with the other auth engines; they sit here only because
//! the module tree is owned by the pipeline.

pub mod common;
pub mod consumer;

use serde::{Deserialize, Serialize};

use self::common::{
    check_header_name, percent_decode_into, query_param, trim_ows, AuthError, CompileError,
    RequestView,
};
use self::consumer::{CompiledConsumer, ConsumerIndex, MAX_API_KEY};

/// `[[modules]]` settings of kind `key_auth` (the `id`/`kind` fields are the config layer's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyAuthConfig {
    /// Header carrying the key.
    pub header: String,
    /// Query parameter carrying the key; unset means keys in URLs are not accepted.
    pub query_param: Option<String>,
    /// Remove the key from the request before it goes upstream.
    pub hide_credentials: bool,
}

impl Default for KeyAuthConfig {
    fn default() -> Self {
        Self {
            header: "apikey".into(),
            query_param: None,
            hide_credentials: true,
        }
    }
}

/// Where the key was found, so the stage can strip it when `hide_credentials` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Header,
    Query,
}

/// A successful key check.
#[derive(Debug)]
pub struct KeyAuthMatch<'a> {
    pub consumer: &'a CompiledConsumer,
    pub source: KeySource,
}

/// A compiled key_auth module.
#[derive(Debug, Clone)]
pub struct KeyAuth {
    header: String,
    query_param: Option<String>,
    hide_credentials: bool,
}

impl KeyAuth {
    pub fn compile(cfg: &KeyAuthConfig) -> Result<Self, Vec<CompileError>> {
        let mut errs = Vec::new();
        check_header_name("header", &cfg.header, &mut errs);
        if let Some(q) = &cfg.query_param {
            if q.is_empty()
                || q.bytes()
                    .any(|b| matches!(b, b'&' | b'=' | b'#' | b'?' | b'%'))
            {
                errs.push(CompileError::new(
                    "query_param",
                    "must be a plain parameter name",
                ));
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Self {
            header: cfg.header.to_ascii_lowercase(),
            query_param: cfg.query_param.clone(),
            hide_credentials: cfg.hide_credentials,
        })
    }

    /// Finds the key (header first, then query) and the consumer that owns it. A key present in
    /// the header is final: a bad header key is not retried with the query parameter.
    pub fn authenticate<'a, R: RequestView>(
        &self,
        req: &R,
        consumers: &'a ConsumerIndex,
    ) -> Result<KeyAuthMatch<'a>, AuthError> {
        if let Some(v) = req.header(&self.header) {
            let key = trim_ows(v);
            if key.is_empty() {
                return Err(AuthError::MissingCredentials);
            }
            let consumer = consumers
                .by_api_key(key)
                .ok_or(AuthError::UnknownConsumer)?;
            return Ok(KeyAuthMatch {
                consumer,
                source: KeySource::Header,
            });
        }
        let Some(name) = &self.query_param else {
            return Err(AuthError::MissingCredentials);
        };
        let raw = query_param(req.target(), name)
            .filter(|v| !v.is_empty())
            .ok_or(AuthError::MissingCredentials)?;
        let mut buf = [0u8; MAX_API_KEY];
        let key = percent_decode_into(raw, &mut buf).ok_or(AuthError::UnknownConsumer)?;
        let consumer = consumers
            .by_api_key(key)
            .ok_or(AuthError::UnknownConsumer)?;
        Ok(KeyAuthMatch {
            consumer,
            source: KeySource::Query,
        })
    }

    /// The header name (lower case) the key is read from.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// The query parameter the key may be read from, if enabled.
    pub fn query_param(&self) -> Option<&str> {
        self.query_param.as_deref()
    }

    /// Whether the stage should strip the key before forwarding.
    pub fn hide_credentials(&self) -> bool {
        self.hide_credentials
    }
}

/// A simple owned request for the engines' unit tests.
#[cfg(test)]
pub(crate) mod test_request {
    use super::common::RequestView;

    #[derive(Default, Clone)]
    pub struct TestRequest {
        pub method: String,
        pub target: String,
        pub headers: Vec<(String, Vec<u8>)>,
    }

    impl TestRequest {
        pub fn new(method: &str, target: &str) -> Self {
            Self {
                method: method.into(),
                target: target.into(),
                headers: Vec::new(),
            }
        }

        pub fn with(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
            self.set(name, value);
            self
        }

        pub fn set(&mut self, name: &str, value: impl AsRef<[u8]>) {
            self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            self.headers.push((name.into(), value.as_ref().to_vec()));
        }

        pub fn remove(&mut self, name: &str) {
            self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }
    }

    impl RequestView for TestRequest {
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
}

#[cfg(test)]
mod tests {
    use super::consumer::Consumer;
    use super::test_request::TestRequest;
    use super::*;

    #[derive(Deserialize)]
    struct File {
        modules: Vec<KeyAuthConfig>,
        consumers: Vec<Consumer>,
    }

    // The example from docs/modules/key_auth.md (minus the `id`/`kind` the config layer owns).
    const EXAMPLE: &str = r#"
[[modules]]
header = "apikey"
query_param = "apikey"
hide_credentials = true

[[consumers]]
id = "acme"
key_auth = { key = "acme-3f9c2a7d41b8e6f0" }
"#;

    fn setup() -> (KeyAuth, ConsumerIndex) {
        let f: File = toml::from_str(EXAMPLE).unwrap();
        let ka = KeyAuth::compile(&f.modules[0]).unwrap();
        (ka, ConsumerIndex::compile(&f.consumers).unwrap())
    }

    #[test]
    fn header_key_finds_consumer() {
        let (ka, idx) = setup();
        let req = TestRequest::new("GET", "/").with("ApiKey", " acme-3f9c2a7d41b8e6f0 ");
        let m = ka.authenticate(&req, &idx).unwrap();
        assert_eq!(
            (m.consumer.id.as_str(), m.source),
            ("acme", KeySource::Header)
        );
    }

    #[test]
    fn query_key_is_percent_decoded() {
        let (ka, idx) = setup();
        let req = TestRequest::new("GET", "/x?a=1&apikey=acme%2D3f9c2a7d41b8e6f0");
        let m = ka.authenticate(&req, &idx).unwrap();
        assert_eq!(
            (m.consumer.id.as_str(), m.source),
            ("acme", KeySource::Query)
        );
    }

    #[test]
    fn unknown_missing_and_disabled_query() {
        let (ka, idx) = setup();
        let unknown = TestRequest::new("GET", "/").with("apikey", "nope-nope-nope-nope");
        assert_eq!(
            ka.authenticate(&unknown, &idx).unwrap_err(),
            AuthError::UnknownConsumer
        );
        let missing = TestRequest::new("GET", "/?other=1");
        assert_eq!(
            ka.authenticate(&missing, &idx).unwrap_err(),
            AuthError::MissingCredentials
        );
        let empty = TestRequest::new("GET", "/").with("apikey", "");
        assert_eq!(
            ka.authenticate(&empty, &idx).unwrap_err(),
            AuthError::MissingCredentials
        );
        let long = TestRequest::new("GET", &format!("/?apikey={}", "a".repeat(400)));
        assert_eq!(
            ka.authenticate(&long, &idx).unwrap_err(),
            AuthError::UnknownConsumer
        );
        // Header wins and is final even when the query holds a good key.
        let both = TestRequest::new("GET", "/?apikey=acme-3f9c2a7d41b8e6f0")
            .with("apikey", "wrong-key-0000000");
        assert_eq!(
            ka.authenticate(&both, &idx).unwrap_err(),
            AuthError::UnknownConsumer
        );
        let header_only = KeyAuth::compile(&KeyAuthConfig::default()).unwrap();
        let q = TestRequest::new("GET", "/?apikey=acme-3f9c2a7d41b8e6f0");
        assert_eq!(
            header_only.authenticate(&q, &idx).unwrap_err(),
            AuthError::MissingCredentials
        );
        assert_eq!(AuthError::UnknownConsumer.status(), 401);
    }

    #[test]
    fn config_defaults_and_errors() {
        let cfg: KeyAuthConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, KeyAuthConfig::default());
        let bad = KeyAuthConfig {
            header: "bad header".into(),
            query_param: Some("a&b".into()),
            hide_credentials: false,
        };
        let errs = KeyAuth::compile(&bad).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["header", "query_param"]);
        assert!(toml::from_str::<KeyAuthConfig>("headr = \"x\"").is_err());
    }

    #[test]
    fn documented_example_compiles() {
        let cfg: KeyAuthConfig = crate::modules::ip_list::tests::doc_example(
            "key_auth",
            include_str!("../../../docs/modules/key_auth.md"),
        );
        assert_eq!(cfg.query_param.as_deref(), Some("apikey"));
        assert!(KeyAuth::compile(&cfg).is_ok());
    }

    #[test]
    fn per_request_path_does_not_allocate() {
        let (ka, idx) = setup();
        let header = TestRequest::new("GET", "/").with("apikey", "acme-3f9c2a7d41b8e6f0");
        let query = TestRequest::new("GET", "/x?apikey=acme%2D3f9c2a7d41b8e6f0");
        let none = TestRequest::new("GET", "/");
        let (n, ok) = crate::modules::ip_list::tests::allocations_during(|| {
            let a = ka.authenticate(&header, &idx).is_ok();
            let b = ka.authenticate(&query, &idx).is_ok();
            let c = ka.authenticate(&none, &idx).is_err();
            a && b && c
        });
        assert!(ok);
        assert_eq!(n, 0);
    }
}
