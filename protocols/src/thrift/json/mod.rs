//! JSON <-> Thrift, driven by the IDL, without an intermediate tree.
//!
//! In: the request body is stream-parsed by `serde_json` with a `DeserializeSeed` that knows
//! the expected Thrift type at every point and writes Thrift bytes as the JSON goes by
//! (`to_thrift.rs`). Out: the reply is read with the codec reader and JSON text is written
//! straight into the output buffer (`to_json.rs`). Neither side builds a `serde_json::Value`.
//!
//! The mapping rules (every type, maps with non-string keys, i64, binary, enums, unions,
//! required fields, exceptions) are in `docs/thrift.md`; [`MappingPolicy`] holds the knobs.

mod base64;
mod entry;
mod to_json;
mod to_thrift;

#[cfg(test)]
mod alloc_tests;
#[cfg(test)]
mod interop;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_reply;

use std::fmt;

use super::codec::{self, Limits, MessageType, Protocol, Transport};
use super::idl::{Idl, Method};
use super::ThriftError;

pub use entry::{json_to_args, json_to_result};
pub use to_json::{args_to_json, reply_to_json};

/// What to do with JSON object members that name no field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownFields {
    /// A 400 naming the field (default): typos do not silently drop data.
    Reject,
    /// Skip them (forward compatibility with newer clients).
    Ignore,
}

/// The knobs of the mapping; one per route, built with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingPolicy {
    /// Write i64 values as JSON strings (default true: above 2^53 a JSON number loses
    /// precision in browsers). Input always accepts a number or a string.
    pub i64_as_string: bool,
    pub unknown_fields: UnknownFields,
    /// Treat method arguments declared without `required`/`optional` as required (default
    /// true): Apache servers do not check arguments, and a missing one ends as an internal
    /// error on the server. Struct fields follow their declaration only.
    pub args_required_by_default: bool,
    /// `None` (default): the body is an object whose members are the arguments by name.
    /// `Some(arg)`: the whole body is the value of argument `arg`.
    pub body_arg: Option<String>,
    /// Bounds on strings, containers, nesting and the size of the written message.
    pub limits: Limits,
    /// Largest JSON answer written from one reply. Default 64 MiB: JSON can be far larger
    /// than compact Thrift (a 1-byte enum becomes its name), so `max_frame` alone does not
    /// bound it.
    pub max_json_bytes: usize,
}

impl Default for MappingPolicy {
    fn default() -> Self {
        Self {
            i64_as_string: true,
            unknown_fields: UnknownFields::Reject,
            args_required_by_default: true,
            body_arg: None,
            limits: Limits::default(),
            max_json_bytes: 64 << 20,
        }
    }
}

/// A request that does not fit the IDL: where (`req.items[2].id`, empty for the body as a
/// whole) and what. Maps to a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for MappingError {}

/// The `type` of a TApplicationException, as numbered by Apache Thrift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppExceptionKind {
    Unknown,
    UnknownMethod,
    InvalidMessageType,
    WrongMethodName,
    BadSequenceId,
    MissingResult,
    InternalError,
    ProtocolError,
    InvalidTransform,
    InvalidProtocol,
    UnsupportedClientType,
    Other(i32),
}

impl AppExceptionKind {
    pub fn from_i32(v: i32) -> Self {
        match v {
            0 => Self::Unknown,
            1 => Self::UnknownMethod,
            2 => Self::InvalidMessageType,
            3 => Self::WrongMethodName,
            4 => Self::BadSequenceId,
            5 => Self::MissingResult,
            6 => Self::InternalError,
            7 => Self::ProtocolError,
            8 => Self::InvalidTransform,
            9 => Self::InvalidProtocol,
            10 => Self::UnsupportedClientType,
            other => Self::Other(other),
        }
    }
}

/// What a reply turned out to be. The JSON written to `out` is the return value (`null` for
/// void) for `Success`, the exception struct for `DeclaredException`, nothing otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyKind<'i> {
    Success,
    /// An exception declared in the method's `throws`: the result field's name and the
    /// exception type's qualified name (`file.Type`), for mapping to an HTTP status.
    DeclaredException {
        field: &'i str,
        type_name: &'i str,
    },
    /// A TApplicationException from the server (unknown method, internal error, ...), or a
    /// non-void reply without a result (`MissingResult`, as Apache clients report it).
    ApplicationException {
        kind: AppExceptionKind,
        message: String,
    },
}

/// Writes a whole call message: frame prefix when framed, header (`Call`, or `Oneway` for
/// oneway methods), then the arguments from JSON. `service_method_name` is what goes on the
/// wire (`method`, or `Service:method` for a multiplexed server). On error `out` is left as
/// it was.
#[allow(clippy::too_many_arguments)]
pub fn encode_json_call(
    idl: &Idl,
    method: &Method,
    service_method_name: &str,
    seqid: i32,
    body: &[u8],
    extra: &[(&str, &str)],
    policy: &MappingPolicy,
    proto: Protocol,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Result<(), MappingError> {
    let mtype = if method.oneway {
        MessageType::Oneway
    } else {
        MessageType::Call
    };
    let start = codec::begin_message(proto, transport, service_method_name, mtype, seqid, out);
    if let Err(e) = json_to_args(idl, method, body, extra, policy, proto, out) {
        out.truncate(start);
        return Err(e);
    }
    codec::finish_message(transport, out, start, &policy.limits).map_err(|e| MappingError {
        path: String::new(),
        message: e.to_string(),
    })
}

/// Writes a whole reply message from JSON (see [`json_to_result`]), for Thrift servers built
/// on this crate. On error `out` is left as it was.
#[allow(clippy::too_many_arguments)]
pub fn encode_json_reply(
    idl: &Idl,
    method: &Method,
    seqid: i32,
    exception_field: Option<&str>,
    json: &[u8],
    policy: &MappingPolicy,
    proto: Protocol,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Result<(), MappingError> {
    let start = codec::begin_message(
        proto,
        transport,
        &method.name,
        MessageType::Reply,
        seqid,
        out,
    );
    if let Err(e) = json_to_result(idl, method, exception_field, json, policy, proto, out) {
        out.truncate(start);
        return Err(e);
    }
    Ok(codec::finish_message(
        transport,
        out,
        start,
        &policy.limits,
    )?)
}

impl From<ThriftError> for MappingError {
    fn from(e: ThriftError) -> Self {
        MappingError {
            path: String::new(),
            message: e.to_string(),
        }
    }
}
