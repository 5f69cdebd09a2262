//! Pure codecs, no I/O. Everything here works on byte slices handed in by the access layer, so
//! it can be unit-tested byte by byte and fuzzed without sockets.

pub mod error;
pub mod http1;
pub mod thrift;
pub mod websocket;
