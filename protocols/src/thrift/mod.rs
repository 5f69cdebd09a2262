//! Thrift for the gateway, without I/O: wire codecs, IDL loaded at run time, and the
//! JSON <-> Thrift mapping that HTTP routes to Thrift upstreams use. Rules for users are in
//! `docs/thrift.md`; this is the map for developers.
//!
//! - [`codec`]: binary and compact protocols, framed and buffered transports, on slices and
//!   `Vec<u8>`. [`codec::scan_message`] / [`codec::message_end`] find where a message ends
//!   (framed: the prefix; unframed: header + skip, no copy), [`codec::read_message_header`]
//!   gives offsets of name and seqid, [`codec::rewrite_seqid`] swaps sequence ids in place
//!   for a multiplexed pool. Every length is checked against [`codec::Limits`] before use.
//! - [`idl`]: [`idl::Idl::build`] parses and resolves a set of uploaded .thrift files once per
//!   config version into an immutable `Arc<Idl>`; errors name file and line.
//! - [`json`]: [`json::encode_json_call`] / [`json::json_to_args`] stream a JSON body into a
//!   Thrift call; [`json::reply_to_json`] writes a reply as JSON text and says whether it was a
//!   success, a declared exception or a TApplicationException. The reverse pair
//!   ([`json::args_to_json`], [`json::encode_json_reply`]) serves Thrift servers built on this
//!   crate (the demo service) and the tests.
//!
//! Interop with Apache Thrift is checked byte for byte against vectors made by its Python
//! library (`testdata/interop.py`); the fuzz targets are in `fuzz/fuzz_targets/thrift_*.rs`.

pub mod codec;
pub mod error;
pub mod idl;
pub mod json;

pub use error::ThriftError;
