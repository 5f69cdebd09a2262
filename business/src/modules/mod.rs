//! Security and policy module engines: pure logic with no I/O, compiled once per config version
//! and shared read-only by every core. The pipeline stages (see `crate::stage`) wrap them.

pub mod breaker;
pub mod cors;
pub mod crypto_box;
pub mod hmac_auth;
pub mod ip_list;
pub mod jwt;
pub mod key_auth;
pub mod params;
pub mod rate_limit;
pub mod waf;
