//! Harness for the end-to-end suites: they start the real `gatehouse` binary ([`Gateway`])
//! against real loopback peers ([`Backend`]) and talk to it with a raw client ([`Conn`]), so
//! what they check is the behaviour a user or another program sees from outside.
//!
//! Everything is std threads and blocking sockets with timeouts: no async runtime and no
//! HTTP library between the test and the bytes, so malformed input can be sent and exact
//! framing observed.

pub mod backend;
pub mod client;
pub mod fault;
pub mod gateway;
pub mod pattern;
pub mod wire;

pub use backend::{Backend, BodySrc, Frame, Reply, Response};
pub use client::{assert_gateway_error, get, roundtrip, wait_until, Conn, Ending, Framing, Resp};
pub use fault::{FaultProxy, Faults, Reset};
pub use gateway::{bin, free_port, run_cmd, Gateway, TempDir};
pub use wire::Request;

use std::net::SocketAddr;

/// A config with one upstream `up` (at `backend`) and one catch-all route `all`.
///
/// `limits`, `upstream` and `route` are extra TOML lines for `[limits]`, the upstream and the
/// route (e.g. `"read_timeout_ms = 300"`).
pub fn one_route(backend: SocketAddr, limits: &str, upstream: &str, route: &str) -> String {
    format!(
        "[limits]\n{limits}\n\n\
         [[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{backend}\" }}]\n{upstream}\n\n\
         [[routes]]\nid = \"all\"\npaths = [\"/*\"]\nupstream = \"up\"\n{route}\n"
    )
}

/// A gateway in front of `backend` with one catch-all route and default limits.
pub fn gateway_for(backend: &Backend) -> Gateway {
    Gateway::start(&one_route(backend.addr(), "", "", ""))
}
