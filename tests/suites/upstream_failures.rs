//! The `upstream_failures` end-to-end suite (being written; see tests/Cargo.toml).
