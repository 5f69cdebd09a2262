//! The Thrift parts of the config model: the `[[services]]` resource (IDL files), the wire
//! settings of a Thrift upstream, and the route fields that turn an HTTP request into a call.
//!
//! Kept apart from `model.rs` because they form one feature with its own defaults; the
//! fields themselves sit on [`crate::Upstream`] and [`crate::Route`] (so one resource stays one
//! object in the admin API) and every one is optional, so HTTP-only configs serialize exactly
//! as before. IDL text is parsed by the business layer (which owns the parser); here are only
//! the checks that need no parser. Rules for users: docs/config.md and docs/thrift.md.

use serde::{Deserialize, Serialize};

/// What an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1, proxied as is (the default).
    #[default]
    Http,
    /// Thrift RPC: routes name a service and method; requests are JSON, converted per the IDL.
    Thrift,
}

impl UpstreamProtocol {
    pub fn is_http(&self) -> bool {
        *self == UpstreamProtocol::Http
    }
}

/// The Thrift protocol (encoding) a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThriftProtocol {
    #[default]
    Binary,
    Compact,
}

/// How Thrift messages are delimited on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThriftTransport {
    /// A 4-byte length before each message.
    #[default]
    Framed,
    /// Messages back to back (TBufferedTransport).
    Buffered,
}

/// What to do with JSON members or request parameters that name no field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownFields {
    #[default]
    Reject,
    Ignore,
}

/// `[[services]]`: a set of Thrift IDL files. Routes to Thrift upstreams name one by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: String,
    /// The .thrift files; `include`s are resolved among them only.
    pub files: Vec<ServiceFile>,
    /// Name of the main file (its services are reachable by plain name); default: the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<String>,
    /// Default protocol for upstreams that do not set `thrift_protocol`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thrift_protocol: Option<ThriftProtocol>,
    /// Default transport for upstreams that do not set `transport`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<ThriftTransport>,
}

impl Service {
    /// The main file's name (the first file when `main` is not set).
    pub fn main_file(&self) -> &str {
        match &self.main {
            Some(m) => m,
            None => self.files.first().map_or("", |f| f.name.as_str()),
        }
    }
}

/// One IDL file: its name (what `include` statements refer to) and its text, or, in the
/// config file only, a `path` read when the file is loaded (relative to the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Defaults of the Thrift upstream fields (docs/config.md lists them).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1;
pub const DEFAULT_MAX_CONNECTIONS: usize = 4;
pub const DEFAULT_MAX_PENDING: usize = 1024;
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The Thrift settings of an upstream with their defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThriftUpstream {
    /// `None` when neither the upstream nor the route's service sets it: binary.
    pub protocol: Option<ThriftProtocol>,
    pub transport: Option<ThriftTransport>,
    pub max_in_flight: usize,
    pub max_connections: usize,
    pub max_pending: usize,
    pub max_message_bytes: usize,
}

/// Where a Thrift argument is taken from, parsed from `"path.NAME"`, `"query.NAME"` or
/// `"header.NAME"` in a route's `args` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgSource<'a> {
    /// A `{NAME}` capture of the route's path.
    Path(&'a str),
    /// A query parameter (first occurrence, percent-decoded).
    Query(&'a str),
    /// A request header (first occurrence, any case).
    Header(&'a str),
}

impl<'a> ArgSource<'a> {
    /// Parses an `args` value; the error says what is expected.
    pub fn parse(s: &'a str) -> Result<ArgSource<'a>, String> {
        let bad = || {
            format!(
                "invalid source {s:?} (expected \"path.NAME\", \"query.NAME\" or \"header.NAME\")"
            )
        };
        let (kind, name) = s.split_once('.').ok_or_else(bad)?;
        if name.is_empty() || name.len() > 128 || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad());
        }
        match kind {
            "path" => Ok(ArgSource::Path(name)),
            "query" => Ok(ArgSource::Query(name)),
            "header" => Ok(ArgSource::Header(name)),
            _ => Err(bad()),
        }
    }
}
