//! TLS settings: the `[tls]` table (HTTPS listeners, handshake limits, protocol versions,
//! cipher suites, client certificates) and the `[[certificates]]` resource (a PEM chain and
//! key with the SNI names it serves). docs/tls.md describes every field.
//!
//! Only the shape is checked here (names, ranges, SNI syntax, one default); the PEM text is
//! parsed, and the key matched against the certificate, where the TLS stack lives (the
//! snapshot build in `business`, through `components::tls`), so `gatehouse check` and every
//! admin change still see one whole validation.

use crate::validate::Errors;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;

/// The HTTPS address served when `[tls] listen` is not set and certificates exist at start
/// (CONTRACT.md).
pub const DEFAULT_TLS_LISTEN: &str = "127.0.0.1:8443";
/// Protocol versions accepted by default: TLS 1.2 keeps older clients working.
pub const VERSIONS: &[&str] = &["1.2", "1.3"];
/// Largest number of certificates (the SNI table is built per config version).
pub const MAX_CERTIFICATES: usize = 100_000;
/// Longest PEM text of one certificate chain or key.
pub const MAX_PEM_BYTES: usize = 256 * 1024;

/// Whether HTTPS clients must present a certificate (mutual TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// Asked for; a client without one is served, one with a bad one is refused.
    Optional,
    /// A client without a certificate signed by `client_ca` is refused in the handshake.
    Required,
}

/// `[tls]`: the HTTPS side of the data plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// HTTPS listeners (`SocketAddr` strings). Unset: [`DEFAULT_TLS_LISTEN`] when the config
    /// has certificates at start, none otherwise; `[]` turns HTTPS off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<Vec<String>>,
    /// Time a new connection has to finish its handshake; then it is closed.
    pub handshake_timeout_ms: u64,
    /// Protocol versions offered: any of `"1.2"`, `"1.3"`.
    pub versions: Vec<String>,
    /// Cipher suites by IANA name (`TLS13_AES_128_GCM_SHA256`,
    /// `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`, ...); empty = every suite the TLS stack has
    /// (all forward-secret: ECDHE key exchange, AEAD ciphers).
    pub ciphers: Vec<String>,
    /// Mutual TLS on every HTTPS listener.
    pub client_auth: ClientAuth,
    /// PEM bundle of the CAs that sign client certificates (needed unless `client_auth` is
    /// `"none"`).
    pub client_ca: String,
    /// More HTTPS listeners, each with its own client-certificate policy
    /// (`[[tls.listeners]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<TlsListener>,
}

/// `[[tls.listeners]]`: an HTTPS listener with its own mutual-TLS settings; unset fields
/// take `[tls]`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListener {
    pub addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<String>,
}

/// The client-certificate policy of one HTTPS listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientPolicy<'a> {
    pub auth: ClientAuth,
    pub ca: &'a str,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            listen: None,
            handshake_timeout_ms: 10_000,
            versions: VERSIONS.iter().map(|v| v.to_string()).collect(),
            ciphers: Vec::new(),
            client_auth: ClientAuth::None,
            client_ca: String::new(),
            listeners: Vec::new(),
        }
    }
}

impl Tls {
    /// The HTTPS addresses to bind, given whether the config has certificates, each with
    /// the index of its client policy in [`Tls::policies`] (0 for `listen`, 1 + k for
    /// `listeners[k]`).
    pub fn listen_addrs(&self, have_certificates: bool) -> Vec<(SocketAddr, usize)> {
        let mut out: Vec<(SocketAddr, usize)> = match &self.listen {
            Some(l) => l
                .iter()
                .filter_map(|a| a.parse().ok())
                .map(|a| (a, 0))
                .collect(),
            None if have_certificates && self.listeners.is_empty() => DEFAULT_TLS_LISTEN
                .parse()
                .into_iter()
                .map(|a| (a, 0))
                .collect(),
            None => Vec::new(),
        };
        for (k, l) in self.listeners.iter().enumerate() {
            if let Ok(a) = l.addr.parse() {
                out.push((a, 1 + k));
            }
        }
        out
    }

    /// Client-certificate policies: `[tls]`'s own, then one per `listeners` entry.
    pub fn policies(&self) -> Vec<ClientPolicy<'_>> {
        let mut out = vec![ClientPolicy {
            auth: self.client_auth,
            ca: &self.client_ca,
        }];
        for l in &self.listeners {
            out.push(ClientPolicy {
                auth: l.client_auth.unwrap_or(self.client_auth),
                ca: l.client_ca.as_deref().unwrap_or(&self.client_ca),
            });
        }
        out
    }
}

/// `[[certificates]]`: one certificate chain and its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub id: String,
    /// PEM: the leaf certificate first, then intermediates.
    pub cert: String,
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) matching the leaf certificate.
    pub key: String,
    /// Names this certificate is chosen for (`api.example.com`, `*.example.com`); empty =
    /// the DNS names of the leaf certificate's subjectAltName extension.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snis: Vec<String>,
    /// Served when the client sends no SNI or a name no certificate has. At most one
    /// certificate is the default; when none is marked, connections without a match fail
    /// the handshake.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
}

/// Checks `[tls]` and the certificates' shape.
/// Returns the HTTPS listen addresses that parsed, with their index.
pub(crate) fn check(e: &mut Errors, tls: &Tls, certs: &[Certificate]) -> Vec<(usize, SocketAddr)> {
    let mut addrs = Vec::new();
    if let Some(listen) = &tls.listen {
        for (i, a) in listen.iter().enumerate() {
            if let Some(a) = e.socket_addr(&format!("tls.listen[{i}]"), a) {
                addrs.push((i, a));
            }
        }
    }
    e.timeout("tls.handshake_timeout_ms", tls.handshake_timeout_ms);
    if tls.versions.is_empty() {
        e.push("tls.versions", "must name at least one version");
    }
    for (i, v) in tls.versions.iter().enumerate() {
        if !VERSIONS.contains(&v.as_str()) {
            e.push(
                format!("tls.versions[{i}]"),
                format!("unknown version {v:?} (\"1.2\" or \"1.3\")"),
            );
        }
    }
    if tls.client_auth != ClientAuth::None && tls.client_ca.trim().is_empty() {
        e.push("tls.client_ca", "required when client_auth is not \"none\"");
    }
    let listen_n = tls.listen.as_ref().map_or(0, Vec::len);
    for (k, l) in tls.listeners.iter().enumerate() {
        let p = format!("tls.listeners[{k}]");
        if let Some(a) = e.socket_addr(&format!("{p}.addr"), &l.addr) {
            if let Some((j, _)) = addrs.iter().find(|(_, b)| *b == a && a.port() != 0) {
                e.push(
                    format!("{p}.addr"),
                    format!("{a} is already HTTPS listener {j}"),
                );
            }
            addrs.push((listen_n + k, a));
        }
        let auth = l.client_auth.unwrap_or(tls.client_auth);
        let ca = l.client_ca.as_deref().unwrap_or(&tls.client_ca);
        if auth != ClientAuth::None && ca.trim().is_empty() {
            e.push(
                format!("{p}.client_ca"),
                "required when client_auth is not \"none\"",
            );
        }
    }
    if certs.len() > MAX_CERTIFICATES {
        e.push(
            "certificates",
            format!("at most {MAX_CERTIFICATES} certificates"),
        );
    }
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut defaults = 0;
    for (i, c) in certs.iter().enumerate() {
        let p = format!("certificates[{i}]");
        e.id(&format!("{p}.id"), &c.id);
        if ids.insert(&c.id, i).is_some() {
            e.push(format!("{p}.id"), format!("duplicate id {:?}", c.id));
        }
        for (field, text) in [("cert", &c.cert), ("key", &c.key)] {
            if text.len() > MAX_PEM_BYTES {
                e.push(
                    format!("{p}.{field}"),
                    format!("must be at most {MAX_PEM_BYTES} bytes"),
                );
            }
        }
        for (j, n) in c.snis.iter().enumerate() {
            if !sni_name_ok(n) {
                e.push(
                    format!("{p}.snis[{j}]"),
                    format!("invalid name {n:?} (a DNS name, or *.name for one label)"),
                );
            }
        }
        defaults += usize::from(c.default);
        if c.default && defaults > 1 {
            e.push(
                format!("{p}.default"),
                "only one certificate may be the default",
            );
        }
    }
    addrs
}

/// The config path of HTTPS listener `i` as [`check`] numbers them (`listen` first).
pub(crate) fn listener_path(tls: &Tls, i: usize) -> String {
    let n = tls.listen.as_ref().map_or(0, Vec::len);
    if i < n {
        format!("tls.listen[{i}]")
    } else {
        format!("tls.listeners[{}].addr", i - n)
    }
}

/// The TLS fields of an upstream (HTTP or Thrift): a DNS name or IP address to verify.
pub(crate) fn check_upstream(e: &mut Errors, p: &str, u: &crate::model::Upstream) {
    let set = u.tls_ca.is_some() || u.tls_server_name.is_some();
    if set && !u.tls {
        e.push(
            format!("{p}.tls"),
            "tls_ca and tls_server_name need tls = true",
        );
    }
    if let Some(n) = &u.tls_server_name {
        let ip = n.parse::<std::net::IpAddr>().is_ok();
        if !ip && (n.starts_with("*.") || !sni_name_ok(n)) {
            e.push(
                format!("{p}.tls_server_name"),
                format!("invalid name {n:?} (a DNS name or an IP address)"),
            );
        }
    }
}

/// A DNS name in ASCII, or `*.` followed by one (a wildcard covers exactly one label).
pub fn sni_name_ok(name: &str) -> bool {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    !rest.is_empty()
        && rest.len() <= 253
        && rest.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_names() {
        assert!(sni_name_ok("api.example.com"));
        assert!(sni_name_ok("*.example.com"));
        assert!(sni_name_ok("localhost"));
        for bad in [
            "", "*.", "*", "a..b", "a.*.b", "-a.b", "a b", "*.*.b", "é.com",
        ] {
            assert!(!sni_name_ok(bad), "{bad}");
        }
    }

    #[test]
    fn upstream_tls_fields() {
        let mut e = Errors::default();
        let plain_with_ca = crate::model::Upstream {
            tls_ca: Some("x".into()),
            ..Default::default()
        };
        check_upstream(&mut e, "upstreams[0]", &plain_with_ca);
        let bad_name = crate::model::Upstream {
            tls: true,
            tls_server_name: Some("*.wild.test".into()),
            ..Default::default()
        };
        check_upstream(&mut e, "upstreams[1]", &bad_name);
        let thrift = crate::model::Upstream {
            tls: true,
            protocol: crate::thrift::UpstreamProtocol::Thrift,
            ..Default::default()
        };
        check_upstream(&mut e, "upstreams[2]", &thrift); // valid: TLS to Thrift
        let ok = crate::model::Upstream {
            tls: true,
            tls_server_name: Some("10.0.0.1".into()),
            ..Default::default()
        };
        check_upstream(&mut e, "upstreams[3]", &ok);
        let paths: Vec<&str> = e.0.iter().map(|x| x.path.as_str()).collect();
        assert_eq!(paths, ["upstreams[0].tls", "upstreams[1].tls_server_name",]);
    }

    #[test]
    fn default_listen_only_with_certificates() {
        let t = Tls::default();
        assert!(t.listen_addrs(false).is_empty());
        assert_eq!(
            t.listen_addrs(true).iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![DEFAULT_TLS_LISTEN.parse().unwrap()]
        );
        let off = Tls {
            listen: Some(vec![]),
            ..Tls::default()
        };
        assert!(off.listen_addrs(true).is_empty());
    }

    #[test]
    fn shape_errors_name_fields() {
        let mut e = Errors::default();
        let cert = Certificate {
            id: "a".into(),
            cert: String::new(),
            key: String::new(),
            snis: vec!["bad name".into()],
            default: true,
        };
        let tls = Tls {
            versions: vec!["1.1".into()],
            client_auth: ClientAuth::Required,
            listeners: vec![TlsListener {
                addr: "127.0.0.1:9443".into(),
                client_auth: Some(ClientAuth::Optional),
                client_ca: None,
            }],
            ..Tls::default()
        };
        assert_eq!(
            tls.listen_addrs(true),
            vec![("127.0.0.1:9443".parse().unwrap(), 1)]
        );
        assert_eq!(tls.policies()[1].auth, ClientAuth::Optional);
        check(&mut e, &tls, &[cert.clone(), cert]);
        let paths: Vec<&str> = e.0.iter().map(|x| x.path.as_str()).collect();
        for p in [
            "tls.versions[0]",
            "tls.client_ca",
            "tls.listeners[0].client_ca",
            "certificates[0].snis[0]",
            "certificates[1].id",
            "certificates[1].default",
        ] {
            assert!(paths.contains(&p), "{p} missing from {paths:?}");
        }
    }
}
