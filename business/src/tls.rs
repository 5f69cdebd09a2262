//! The HTTPS side of a snapshot: `[tls]` and `[[certificates]]` turned into the rustls
//! server settings the workers hand to new connections (see `components::tls`).

use crate::snapshot::Snapshot;
use components::tls::{
    build_server, CertInput, ClientCerts, ClientPolicy, ServerSettings, ServerTls,
};
use conf::tls::ClientAuth;
use conf::{Config, ConfigError};

fn inputs(config: &Config) -> Vec<CertInput<'_>> {
    config
        .certificates
        .iter()
        .map(|c| CertInput {
            cert: &c.cert,
            key: &c.key,
            snis: &c.snis,
            default: c.default,
        })
        .collect()
}

/// The server settings of `config`, `None` when it has no certificate (HTTPS listeners then
/// refuse connections). Keys of certificates unchanged since `prev` are not loaded again.
pub fn compile(
    config: &Config,
    prev: Option<&Snapshot>,
) -> Result<Option<ServerTls>, Vec<ConfigError>> {
    let t = &config.tls;
    let policies: Vec<ClientPolicy> = t
        .policies()
        .into_iter()
        .enumerate()
        .map(|(i, p)| ClientPolicy {
            mode: match p.auth {
                ClientAuth::None => ClientCerts::None,
                ClientAuth::Optional => ClientCerts::Optional,
                ClientAuth::Required => ClientCerts::Required,
            },
            ca: p.ca,
            ca_field: match i {
                0 => "tls.client_ca".to_string(),
                k => match t.listeners.get(k - 1).and_then(|l| l.client_ca.as_ref()) {
                    Some(_) => format!("tls.listeners[{}].client_ca", k - 1),
                    None => "tls.client_ca".to_string(),
                },
            },
        })
        .collect();
    let settings = ServerSettings {
        versions: &t.versions,
        ciphers: &t.ciphers,
        policies: &policies,
    };
    if config.certificates.is_empty() {
        return Ok(None);
    }
    let prev_inputs = prev.map(|p| inputs(&p.config));
    let prev = match (&prev_inputs, prev.and_then(|p| p.tls.as_ref())) {
        (Some(i), Some(t)) => Some((&i[..], t)),
        _ => None,
    };
    build_server(&inputs(config), &settings, prev)
        .map(Some)
        .map_err(|e| {
            e.into_iter()
                .map(|e| ConfigError::new(e.field, e.message))
                .collect()
        })
}
