//! Thrift binary/compact codecs, IDL loading and JSON mapping.
