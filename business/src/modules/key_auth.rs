//! key_auth engine.
