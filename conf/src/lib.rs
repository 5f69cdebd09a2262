//! conf layer of Gatehouse: the config model, its whole-config validation and the route
//! matcher built from it.
//!
//! - [`model`]: serde structs for the TOML file and the admin API JSON bodies.
//! - [`mod@validate`]: `Config::validate`, every problem with its field path.
//! - [`pattern`]: syntax of hosts, paths and methods, shared by validation and the router.
//! - [`router`]: the per-request route lookup (no allocation, cost independent of route count).
//! - [`store`]: where resources survive restarts (a state directory, written atomically), the
//!   audit log, and the rule joining the store with the file.
//!
//! I/O here is reading the file in [`load`] and the store's files; snapshots and publication
//! live in the layers that own threads and sockets.

pub mod access_log;
pub mod error;
pub mod model;
pub mod pattern;
pub mod release;
pub mod resilience;
pub mod router;
pub mod store;
pub mod thrift;
pub mod tls;
pub mod validate;

pub use error::{parse_json, ConfigError};
pub use model::{
    Admin, Config, ConsumerSpec, Limits, ModuleSpec, Node, Route, Server, Settings, Store,
    StoreKind, Upstream, WebSocketRoute, MODULE_KINDS,
};
pub use router::{RouteMatch, Router, MAX_PARAMS};
pub use thrift::{
    ArgSource, Service, ServiceFile, ThriftProtocol, ThriftTransport, ThriftUpstream,
    UnknownFields, UpstreamProtocol,
};

use std::path::Path;

impl Config {
    /// Parses a TOML document (no validation). A parse failure is one error naming the field
    /// (`routes[0]`, for an unknown key in the first route) and the line it is on.
    pub fn from_toml_str(text: &str) -> Result<Config, Vec<ConfigError>> {
        error::parse_toml(text).map_err(|e| vec![e])
    }
}

/// Reads, parses and validates the config file at `path`: the config, or every problem found.
pub fn load(path: impl AsRef<Path>) -> Result<Config, Vec<ConfigError>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError::new(
            path.display().to_string(),
            format!("cannot read: {e}"),
        )]
    })?;
    let mut config = Config::from_toml_str(&text)?;
    read_service_paths(&mut config, path.parent().unwrap_or(Path::new(".")))?;
    let errors = config.validate();
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

/// Reads the `path` of every `[[services]]` file (relative to `base`, the config file's
/// directory) into its `text`, so the config holds the IDL itself from here on (the admin
/// API shows and stores text, never a path on this machine).
fn read_service_paths(config: &mut Config, base: &Path) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    for (i, s) in config.services.iter_mut().enumerate() {
        for (j, f) in s.files.iter_mut().enumerate() {
            let (None, Some(p)) = (&f.text, &f.path) else {
                continue;
            };
            match std::fs::read_to_string(base.join(p)) {
                Ok(text) => {
                    f.text = Some(text);
                    f.path = None;
                }
                Err(e) => errors.push(ConfigError::new(
                    format!("services[{i}].files[{j}].path"),
                    format!("cannot read {p:?}: {e}"),
                )),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
