//! HTTPS connections at accept: a rustls server connection made from the worker's current
//! config version (its certificates and settings; see docs/tls.md). The connection keeps
//! that version's settings for its whole life, so a certificate change affects new
//! handshakes only.

use crate::session::CoreSnap;
use crate::transport::ClientStream;
use components::tls::rustls::ServerConnection;
use mio::net::TcpStream;

/// A TLS client stream over `tcp`, or `None` when this version has no certificate (the
/// connection is then closed at once: there is nothing to answer a handshake with).
/// `policy` is the listener's client-certificate policy (an index into `ServerTls::configs`).
pub fn accept(tcp: TcpStream, snap: &CoreSnap, policy: usize, now: u64) -> Option<ClientStream> {
    let config = snap.tls.as_ref()?.configs.get(policy)?;
    let conn = ServerConnection::new(config.clone()).ok()?;
    let deadline = now + snap.config.tls.handshake_timeout_ms;
    Some(ClientStream::tls(tcp, conn, deadline))
}
