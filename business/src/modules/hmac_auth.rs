//! hmac_auth engine.
