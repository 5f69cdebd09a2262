//! TLS to upstreams: the rustls client settings of one upstream, built with its config
//! version (off the workers), and the per-connection state the pool keeps.
//!
//! Certificates are always verified: against the upstream's own CA bundle, else the
//! system's (Debian's `ca-certificates` file, read once; no network is needed for either).

use super::{parse_chain, TlsError, ALPN_HTTP11};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

/// Where the system's CA bundle is (Debian, Ubuntu, Alpine).
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The TLS settings of one upstream.
#[derive(Clone, Debug)]
pub struct UpTls {
    pub config: Arc<ClientConfig>,
    /// SNI and verified name; `None` = each node's IP address.
    pub name: Option<ServerName<'static>>,
    /// Tells parked connections of different TLS settings apart (never 0, which is
    /// plain TCP).
    pub key: u64,
}

impl UpTls {
    /// The name a connection to `addr` presents and verifies.
    pub fn name_for(&self, addr: SocketAddr) -> ServerName<'static> {
        self.name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()))
    }
}

/// A TLS upstream connection's state beside its socket.
pub struct UpTlsConn {
    pub conn: ClientConnection,
    pub tcp_eof: bool,
}

fn system_roots() -> Option<Arc<RootCertStore>> {
    static ROOTS: OnceLock<Option<Arc<RootCertStore>>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let text = std::fs::read_to_string(SYSTEM_CA_FILE).ok()?;
            let mut roots = RootCertStore::empty();
            for c in parse_chain(&text, "").ok()? {
                // A bundle may hold certificates webpki cannot use; skip those.
                let _ = roots.add(c);
            }
            (!roots.is_empty()).then(|| Arc::new(roots))
        })
        .clone()
}

/// Builds an upstream's TLS settings; `path` (`upstreams[2]`) prefixes error fields.
/// `http` offers ALPN `http/1.1` (HTTP upstreams); Thrift has no ALPN name, so a Thrift
/// upstream offers none.
pub fn build_client(
    path: &str,
    ca: Option<&str>,
    server_name: Option<&str>,
    http: bool,
) -> Result<UpTls, TlsError> {
    let roots = match ca {
        Some(pem) => Arc::new(super::root_store(pem, &format!("{path}.tls_ca"))?),
        None => system_roots().ok_or_else(|| {
            TlsError::new(
                format!("{path}.tls_ca"),
                format!("no CA bundle: set tls_ca (no system bundle at {SYSTEM_CA_FILE})"),
            )
        })?,
    };
    let name = match server_name {
        Some(n) => Some(
            ServerName::try_from(n.to_string())
                .map_err(|e| TlsError::new(format!("{path}.tls_server_name"), format!("{e}")))?,
        ),
        None => None,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new(format!("{path}.tls"), format!("{e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if http {
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    }
    let mut h = DefaultHasher::new();
    (ca, server_name, http).hash(&mut h);
    Ok(UpTls {
        config: Arc::new(config),
        name,
        key: h.finish() | 1,
    })
}

/// A new client connection for a connect to `addr`.
pub fn connect(tls: &UpTls, addr: SocketAddr) -> std::io::Result<UpTlsConn> {
    let conn = ClientConnection::new(tls.config.clone(), tls.name_for(addr))
        .map_err(std::io::Error::other)?;
    Ok(UpTlsConn {
        conn,
        tcp_eof: false,
    })
}

/// Reads what arrived on a parked TLS connection: `Some(())` while it can still carry a
/// request (the socket is drained and no plaintext came), `None` when it must be closed.
pub fn idle_check(t: &mut UpTlsConn, tcp: &mut mio::net::TcpStream) -> Option<()> {
    use std::io::BufRead;
    loop {
        match t.conn.read_tls(tcp) {
            Ok(0) => return None,
            Ok(_) => {
                t.conn.process_new_packets().ok()?;
                match t.conn.reader().fill_buf() {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    _ => return None,
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}
