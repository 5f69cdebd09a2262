//! Thrift binary/compact codecs, IDL loading and JSON mapping.

pub mod codec;
pub mod error;
pub mod idl;
pub mod json;

pub use error::ThriftError;
