//! Access layer: the only crate that owns listeners. Per-core workers accept connections,
//! run HTTP/1.1 sessions (see `LIFECYCLE.md`), and hand parsed requests to the business
//! pipeline.

pub mod access_log;
pub mod admin;
pub mod body;
pub mod calls;
pub mod demo;
pub mod failover;
pub mod forward;
pub mod handover;
pub mod http;
pub mod io;
pub mod listener;
pub mod overload;
pub mod proxy;
pub mod seal;
pub mod server;
pub mod session;
pub mod stats;
pub mod stats_health;
pub mod thrift;
pub mod tls;
pub mod transport;
pub mod tunnel;
pub mod worker;
