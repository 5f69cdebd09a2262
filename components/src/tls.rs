//! TLS server settings built once per config version: the SNI certificate table and the
//! rustls `ServerConfig` that HTTPS connections of that version are made with.
//!
//! Everything costly (PEM parsing, key loading, the name tables) happens here, on the thread
//! that builds a config snapshot, never on a worker. A handshake then costs two hash lookups
//! at most whatever the number of certificates, and a connection keeps the `ServerConfig` it
//! started with, so replacing a certificate changes new handshakes only.

use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use std::collections::HashMap;
use std::sync::Arc;

pub use rustls;

pub mod client;
pub mod io;

/// The only application protocol spoken over TLS.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// A problem with a TLS input, named by its field (`certificates[3].key`, `tls.ciphers[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    pub field: String,
    pub message: String,
}

impl TlsError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> TlsError {
        TlsError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One `[[certificates]]` entry as text.
pub struct CertInput<'a> {
    pub cert: &'a str,
    pub key: &'a str,
    /// Explicit names; empty = the leaf's subjectAltName DNS names.
    pub snis: &'a [String],
    pub default: bool,
}

/// Client certificate policy of the HTTPS listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCerts {
    None,
    Optional,
    Required,
}

/// The `[tls]` handshake settings.
pub struct ServerSettings<'a> {
    /// `"1.2"` and/or `"1.3"` (checked by the config layer).
    pub versions: &'a [String],
    /// IANA suite names; empty = every suite of the provider.
    pub ciphers: &'a [String],
    /// Client-certificate policies, one server config each (HTTPS listeners pick theirs by
    /// index): the mode, the PEM bundle of client CAs, and the field naming that bundle.
    pub policies: &'a [ClientPolicy<'a>],
}

/// One client-certificate policy.
pub struct ClientPolicy<'a> {
    pub mode: ClientCerts,
    pub ca: &'a str,
    /// Config path of `ca` for errors (`tls.client_ca`).
    pub ca_field: String,
}

/// What one config version serves over HTTPS.
#[derive(Clone)]
pub struct ServerTls {
    /// One per client policy (same certificates), shared by every connection accepted on
    /// this version by the listeners of that policy.
    pub configs: Vec<Arc<ServerConfig>>,
    /// Loaded keys in `[[certificates]]` order, reused by the next version for entries
    /// whose PEM text did not change.
    pub keys: Vec<Arc<CertifiedKey>>,
}

/// Certificates by SNI name: exact names, then `*.suffix` wildcards (one label), then the
/// default.
#[derive(Debug, Default)]
pub struct SniTable {
    exact: HashMap<Box<str>, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.` (`example.com` for `*.example.com`).
    wild: HashMap<Box<str>, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniTable {
    /// The certificate for `sni` (already lowercase: rustls normalises the name).
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            if let Some(k) = self.exact.get(name) {
                return Some(k.clone());
            }
            if let Some((_, suffix)) = name.split_once('.') {
                if let Some(k) = self.wild.get(suffix) {
                    return Some(k.clone());
                }
            }
        }
        self.default.clone()
    }

    /// Adds a name unless an earlier certificate has it (first in list order wins).
    fn add(&mut self, name: &str, key: &Arc<CertifiedKey>) {
        let name = name.to_ascii_lowercase();
        let (map, name) = match name.strip_prefix("*.") {
            Some(suffix) => (&mut self.wild, suffix.to_string()),
            None => (&mut self.exact, name),
        };
        map.entry(name.into_boxed_str())
            .or_insert_with(|| key.clone());
    }
}

impl ResolvesServerCert for SniTable {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name())
    }
}

/// The ring provider restricted to `ciphers` (empty = all of ring's suites).
fn provider(ciphers: &[String]) -> Result<CryptoProvider, TlsError> {
    let mut p = ring::default_provider();
    if ciphers.is_empty() {
        return Ok(p);
    }
    let mut picked = Vec::with_capacity(ciphers.len());
    for (i, name) in ciphers.iter().enumerate() {
        match p
            .cipher_suites
            .iter()
            .find(|s| s.suite().as_str() == Some(name.as_str()))
        {
            Some(s) => picked.push(*s),
            None => {
                return Err(TlsError::new(
                    format!("tls.ciphers[{i}]"),
                    format!("unknown cipher suite {name:?} (see docs/tls.md)"),
                ))
            }
        }
    }
    p.cipher_suites = picked;
    Ok(p)
}

/// The protocol versions named by `versions`.
pub fn versions(versions: &[String]) -> Vec<&'static SupportedProtocolVersion> {
    let mut out = Vec::with_capacity(2);
    if versions.iter().any(|v| v == "1.3") {
        out.push(&rustls::version::TLS13);
    }
    if versions.iter().any(|v| v == "1.2") {
        out.push(&rustls::version::TLS12);
    }
    out
}

/// Every cipher suite name the gateway knows, for docs and error messages.
pub fn cipher_names() -> Vec<&'static str> {
    ring::default_provider()
        .cipher_suites
        .iter()
        .filter_map(|s| s.suite().as_str())
        .collect()
}

/// Parses a PEM chain: at least one certificate.
pub fn parse_chain(pem: &str, field: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut chain = Vec::new();
    for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        match c {
            Ok(c) => chain.push(c),
            Err(e) => return Err(TlsError::new(field, format!("bad PEM: {e}"))),
        }
    }
    if chain.is_empty() {
        return Err(TlsError::new(field, "no CERTIFICATE block in the PEM text"));
    }
    Ok(chain)
}

/// Loads one certificate entry: chain, key, and whether they belong together.
fn load_key(
    c: &CertInput,
    path: &str,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = parse_chain(c.cert, &format!("{path}.cert"))?;
    let key = PrivateKeyDer::from_pem_slice(c.key.as_bytes()).map_err(|e| {
        TlsError::new(
            format!("{path}.key"),
            format!("no usable PRIVATE KEY block: {e}"),
        )
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::new(format!("{path}.key"), format!("unusable key: {e}")))?;
    let ck = CertifiedKey::new(chain, signing);
    match ck.keys_match() {
        Ok(()) => Ok(Arc::new(ck)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(
            TlsError::new(format!("{path}.key"), "does not match the certificate"),
        ),
        Err(e) => Err(TlsError::new(
            format!("{path}.cert"),
            format!("unusable certificate: {e}"),
        )),
    }
}

/// The DNS names in the leaf certificate's subjectAltName extension.
fn san_names(key: &CertifiedKey) -> Vec<String> {
    let Some(leaf) = key.cert.first() else {
        return Vec::new();
    };
    match webpki::EndEntityCert::try_from(leaf) {
        Ok(ee) => ee.valid_dns_names().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    }
}

/// Builds the HTTPS settings of one config version. `prev` is the version being replaced:
/// its loaded keys are reused for entries whose text is unchanged (by index of `prev_certs`).
pub fn build_server(
    certs: &[CertInput],
    settings: &ServerSettings,
    prev: Option<(&[CertInput], &ServerTls)>,
) -> Result<ServerTls, Vec<TlsError>> {
    let mut errors = Vec::new();
    let provider = match provider(settings.ciphers) {
        Ok(p) => Arc::new(p),
        Err(e) => return Err(vec![e]),
    };
    let mut keys = Vec::with_capacity(certs.len());
    let mut table = SniTable::default();
    for (i, c) in certs.iter().enumerate() {
        let path = format!("certificates[{i}]");
        let reused = prev.and_then(|(pc, pt)| {
            pc.iter()
                .position(|p| p.cert == c.cert && p.key == c.key)
                .and_then(|j| pt.keys.get(j).cloned())
        });
        let key = match reused.map_or_else(|| load_key(c, &path, &provider), Ok) {
            Ok(k) => k,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if c.snis.is_empty() {
            let names = san_names(&key);
            if names.is_empty() && !c.default {
                errors.push(TlsError::new(
                    format!("{path}.snis"),
                    "the certificate has no DNS subjectAltName: list its names in snis",
                ));
            }
            for n in &names {
                table.add(n, &key);
            }
        } else {
            for n in c.snis {
                table.add(n, &key);
            }
        }
        if c.default {
            table.default = Some(key.clone());
        }
        keys.push(key);
    }
    let vers = versions(settings.versions);
    let table = Arc::new(table);
    let mut configs = Vec::with_capacity(settings.policies.len());
    for policy in settings.policies {
        let builder = match ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&vers)
        {
            Ok(b) => b,
            Err(e) => {
                errors.push(TlsError::new(
                    "tls.ciphers",
                    format!("no cipher suite for the chosen versions: {e}"),
                ));
                return Err(errors);
            }
        };
        let builder = match policy.mode {
            ClientCerts::None => builder.with_no_client_auth(),
            mode => match client_verifier(policy, mode, &provider) {
                Ok(v) => builder.with_client_cert_verifier(v),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            },
        };
        let mut config = builder.with_cert_resolver(table.clone());
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        configs.push(Arc::new(config));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ServerTls { configs, keys })
}

/// The CA bundle as a root store; `field` names it in errors.
pub fn root_store(pem: &str, field: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in parse_chain(pem, field)? {
        roots
            .add(c)
            .map_err(|e| TlsError::new(field, format!("unusable CA certificate: {e}")))?;
    }
    Ok(roots)
}

fn client_verifier(
    policy: &ClientPolicy,
    mode: ClientCerts,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let roots = root_store(policy.ca, &policy.ca_field)?;
    let mut b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if mode == ClientCerts::Optional {
        b = b.allow_unauthenticated();
    }
    b.build()
        .map_err(|e| TlsError::new(policy.ca_field.clone(), format!("{e}")))
}

#[cfg(test)]
mod tests;
