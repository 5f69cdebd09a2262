//! Thrift binary/compact codecs, IDL loading and JSON mapping.

pub mod codec;
pub mod error;

pub use error::ThriftError;
