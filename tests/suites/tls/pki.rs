//! Test PKI and a TLS client: a CA and leaf certificates made with rcgen at test time, and a
//! blocking rustls client that speaks HTTP/1.1 keep-alive over one connection.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};
use rustls::{SignatureScheme, SupportedProtocolVersion};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A certificate authority that signs the leaves.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    pub pem: String,
}

/// A leaf certificate and its key, as PEM and DER.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
    key_der: Vec<u8>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.self_signed(&key).expect("CA cert");
        Ca {
            pem: cert.pem(),
            cert,
            key,
        }
    }

    /// A leaf for `names` (its subjectAltName DNS names), CN = the first name.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
        p.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("sign");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }

    pub fn roots(&self) -> RootCertStore {
        let mut r = RootCertStore::empty();
        r.add(self.cert.der().clone()).expect("root");
        r
    }
}

impl Leaf {
    /// The `[[certificates]]` entry for this leaf (names from its SANs unless `snis`).
    pub fn toml(&self, id: &str, snis: &[&str], default: bool) -> String {
        let snis = if snis.is_empty() {
            String::new()
        } else {
            format!(
                "snis = [{}]\n",
                snis.iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!(
            "[[certificates]]\nid = \"{id}\"\ncert = \"\"\"{}\"\"\"\nkey = \"\"\"{}\"\"\"\n{snis}default = {default}\n\n",
            self.cert_pem, self.key_pem
        )
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any server certificate: for tests that look at *which* certificate came back
/// (the default certificate answers names it does not carry).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How a test client connects.
pub struct ClientOpts<'a> {
    /// Verify against these roots; `None` accepts any certificate.
    pub roots: Option<RootCertStore>,
    pub versions: &'a [&'static SupportedProtocolVersion],
    pub client_cert: Option<&'a Leaf>,
    pub sni: bool,
}

impl Default for ClientOpts<'_> {
    fn default() -> Self {
        ClientOpts {
            roots: None,
            versions: rustls::ALL_VERSIONS,
            client_cert: None,
            sni: true,
        }
    }
}

fn client_config(o: ClientOpts) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(o.versions)
        .expect("versions");
    let b = match o.roots {
        Some(r) => b.with_root_certificates(r),
        None => b
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider()))),
    };
    let mut c = match o.client_cert {
        Some(l) => b
            .with_client_auth_cert(
                vec![CertificateDer::from(l.der.clone())],
                PrivateKeyDer::try_from(l.key_der.clone()).expect("key"),
            )
            .expect("client cert"),
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    c.enable_sni = o.sni;
    Arc::new(c)
}

/// One HTTPS connection.
pub struct Https {
    s: StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

/// An answer: status, header fields, body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Https {
    /// Connects and completes the handshake, presenting `name` (as SNI when `opts.sni`).
    pub fn connect(addr: SocketAddr, name: &str, opts: ClientOpts) -> io::Result<Https> {
        let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
        let sn = ServerName::try_from(name.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut conn = ClientConnection::new(client_config(opts), sn)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)?;
        }
        Ok(Https {
            s: StreamOwned::new(conn, tcp),
            buf: Vec::new(),
        })
    }

    /// The leaf certificate the server presented (DER).
    pub fn leaf(&self) -> Vec<u8> {
        self.s
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default()
    }

    pub fn protocol(&self) -> Option<rustls::ProtocolVersion> {
        self.s.conn.protocol_version()
    }

    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.s.conn.alpn_protocol().map(|a| a.to_vec())
    }

    /// A keep-alive GET; the answer must carry Content-Length.
    pub fn get(&mut self, host: &str, path: &str) -> io::Result<Answer> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        self.s.write_all(req.as_bytes())?;
        self.s.flush()?;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = r.parse(&self.buf) {
                let status = r.code.unwrap_or(0);
                let headers: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while self.buf.len() < n + len {
                    self.fill()?;
                }
                let body = self.buf[n..n + len].to_vec();
                self.buf.drain(..n + len);
                return Ok(Answer {
                    status,
                    headers,
                    body,
                });
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut tmp = [0u8; 16 * 1024];
        let n = self.s.read(&mut tmp)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(())
    }
}

/// A loopback HTTPS backend serving `leaf`: every request on a keep-alive connection is
/// answered 200 with a body naming the SNI it saw and the request's path. Returns its
/// address and its count of accepted connections. Threads end with the test process.
pub fn tls_backend(leaf: &Leaf) -> (SocketAddr, Arc<AtomicUsize>) {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der.clone())],
            PrivateKeyDer::try_from(leaf.key_der.clone()).expect("key"),
        )
        .expect("server config");
    let config = Arc::new(config);
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = accepts.clone();
    std::thread::spawn(move || {
        for tcp in l.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let config = config.clone();
            std::thread::spawn(move || serve_tls(config, tcp));
        }
    });
    (addr, accepts)
}

fn serve_tls(config: Arc<rustls::ServerConfig>, tcp: TcpStream) {
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let mut s = StreamOwned::new(conn, tcp);
    let mut buf = Vec::new();
    loop {
        let mut tmp = [0u8; 4096];
        let n = match s.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&tmp[..n]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let path = head.split(' ').nth(1).unwrap_or("").to_string();
            let sni = s.conn.server_name().unwrap_or("-").to_string();
            let body = format!("tls sni={sni} path={path}");
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if s.write_all(resp.as_bytes())
                .and_then(|_| s.flush())
                .is_err()
            {
                return;
            }
        }
    }
}
