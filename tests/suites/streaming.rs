//! The `streaming` end-to-end suite (being written; see tests/Cargo.toml).
