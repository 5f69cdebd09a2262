//! The pool over TLS against an in-process rustls server on loopback (a CA and leaf made by
//! rcgen): calls multiplexed on one verified connection, and a certificate that does not
//! verify failing like a refused connect (calls fail `Connect`, the node backs off).

use super::*;
use crate::tls::client::build_client;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// A CA (its PEM) and a server config for a leaf it signed for `thrift.test`.
fn pki() -> (String, Arc<ServerConfig>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["thrift.test".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    (ca.pem(), Arc::new(config))
}

/// `server`'s echo, over TLS; counts accepted TCP connections.
fn tls_server(
    p: Protocol,
    t: Transport,
    config: Arc<ServerConfig>,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = conns.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = s.set_nodelay(true);
            let Ok(conn) = ServerConnection::new(config.clone()) else {
                continue;
            };
            let h = echo(p, t);
            let moved = AtomicUsize::new(0);
            std::thread::spawn(move || {
                serve_conn(StreamOwned::new(conn, s), p, t, false, &*h, &moved)
            });
        }
    });
    (addr, conns)
}

#[test]
fn calls_multiplex_on_one_verified_tls_connection() {
    let (p, t) = (Protocol::Compact, Transport::Framed);
    let (ca, config) = pki();
    let (addr, conns) = tls_server(p, t, config);
    let mut h = Harness::new();
    let up = build_client("upstreams[0]", Some(&ca), Some("thrift.test"), false).unwrap();
    h.tls = Some(up.clone());
    let k = key(addr, p, t);
    let s = settings(8, 1);
    let ids: Vec<CallId> = (0..64)
        .map(|i| h.call(k, &s, "echo", i * 7, i as i32))
        .collect();
    assert!(h.run_until(Duration::from_secs(10), |pool| pending(pool, &ids)));
    for (i, id) in ids.iter().enumerate() {
        let CallPoll::Reply(msg) = h.pool.poll(*id) else {
            panic!("call {i}: {:?}", h.pool.poll(*id));
        };
        assert_eq!(read_reply(p, t, msg), (i as i32, i as i64 * 7));
        h.finish(*id);
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1);
    assert_eq!(h.pool.stats().connects, 1);
    // The node is keyed by the TLS settings: plain calls to the same address are another
    // node, with a connection of their own (which the TLS server refuses to talk to).
    let tls_key = NodeKey { tls: up.key, ..k };
    assert_eq!(h.pool.node_index.len(), 1);
    assert!(h.pool.node_index.contains_key(&tls_key));
    h.tls = None;
    let plain = h.call(k, &s, "echo", 1, 0);
    assert!(h.run_until(Duration::from_secs(10), |pool| pool.poll(plain)
        != CallPoll::Pending));
    assert!(matches!(h.pool.poll(plain), CallPoll::Failed(_)));
    assert_eq!(h.pool.node_index.len(), 2);
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[test]
fn a_certificate_that_does_not_verify_is_a_failed_connect() {
    let (p, t) = (Protocol::Binary, Transport::Framed);
    let (_, config) = pki();
    let (other_ca, _) = pki();
    let (addr, conns) = tls_server(p, t, config);
    let mut h = Harness::new();
    h.tls =
        Some(build_client("upstreams[0]", Some(&other_ca), Some("thrift.test"), false).unwrap());
    let k = key(addr, p, t);
    let s = settings(4, 2);
    let ids: Vec<CallId> = (0..3).map(|v| h.call(k, &s, "echo", v, 0)).collect();
    assert!(h.run_until(Duration::from_secs(5), |pool| pending(pool, &ids)));
    for id in ids {
        assert_eq!(h.pool.poll(id), CallPoll::Failed(CallError::Connect));
        h.finish(id);
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1);
    let st = h.pool.stats();
    assert_eq!(
        (st.connects, st.connect_failures, st.open_connections),
        (0, 1, 0)
    );
    // Within the backoff: refused at once, without another handshake.
    let (b, r) = h.call_kind(k, &s, "echo", 9, 0, false);
    assert_eq!(r, Err(CallError::Connect));
    h.finish(b);
    assert_eq!(h.pool.stats().connect_failures, 1);
}
