//! HTTPS end to end (docs/tls.md), against the real binary: SNI selection among 1,000
//! certificates (exact names beat wildcards, a default for the rest), openssl s_client with
//! TLS 1.3 and a TLS 1.2-only ECDHE suite, a certificate replaced through the admin API while
//! a keep-alive connection stays open, bad PEM answered 400 naming the field, handshake
//! garbage and stalled handshakes closed, mutual TLS, the redirect module sending plain
//! HTTP to the HTTPS listener, TLS upstreams (a rustls loopback backend), and a WebSocket
//! tunnel over HTTPS (the WebSocket suite's Python peers; needs `GATEHOUSE_PYTHON`).

#[path = "tls/pki.rs"]
mod pki;

use gatehouse_tests::*;
use pki::{Ca, ClientOpts, Https, Leaf};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A gateway config with an HTTPS listener on `tls` in front of `backend`, plus `extra`
/// (certificates, `[tls]` keys after the listen line, modules).
fn config(backend: SocketAddr, tls: SocketAddr, tls_keys: &str, extra: &str) -> String {
    format!(
        "[server]\nworkers = 2\nlisten = [\"{{listen}}\"]\nstate_dir = \"{{state_dir}}\"\n\
         drain_timeout_ms = 1000\n\n[admin]\nlisten = \"{{admin}}\"\n\n\
         [tls]\nlisten = [\"{tls}\"]\n{tls_keys}\n\n\
         [[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{backend}\" }}]\n\n\
         [[routes]]\nid = \"all\"\npaths = [\"/*\"]\nupstream = \"up\"\n\n{extra}"
    )
}

fn tls_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Waits until the HTTPS listener accepts (it opens with the plain one).
fn wait_tls(g: &Gateway, addr: SocketAddr) {
    let ok = wait_until(Duration::from_secs(10), || {
        g.stderr().contains(&format!("serving HTTPS on {addr}"))
    });
    assert!(ok, "no HTTPS listener: {}", g.stderr());
}

fn connect(addr: SocketAddr, name: &str) -> Https {
    Https::connect(addr, name, ClientOpts::default())
        .unwrap_or_else(|e| panic!("handshake for {name}: {e}"))
}

#[test]
fn sni_picks_among_1000_certificates_exact_beats_wildcard_and_default_catches_the_rest() {
    let t = Instant::now();
    let ca = Ca::new("Test CA");
    let leaves: Vec<Leaf> = (0..1000)
        .map(|i| ca.leaf(&[&format!("host{i}.sni.test")]))
        .collect();
    let wild = ca.leaf(&["*.wild.test"]);
    let exact = ca.leaf(&["exact.wild.test"]);
    let default = ca.leaf(&["default.test"]);
    let mut certs = String::new();
    // The wildcard comes first: order must not matter, exact names win.
    certs.push_str(&wild.toml("wild", &[], false));
    for (i, l) in leaves.iter().enumerate() {
        certs.push_str(&l.toml(&format!("c{i}"), &[], false));
    }
    certs.push_str(&exact.toml("exact", &[], false));
    certs.push_str(&default.toml("default", &[], true));
    eprintln!("made 1,003 certificates in {:?}", t.elapsed());
    let backend = Backend::fixed("hello");
    let tls = tls_addr();
    let g = Gateway::start(&config(backend.addr(), tls, "", &certs));
    wait_tls(&g, tls);
    eprintln!("gateway up after {:?}", t.elapsed());

    for i in [0usize, 1, 499, 998, 999] {
        let name = format!("host{i}.sni.test");
        // Verified against the CA for the name asked: the right certificate, fully valid.
        let mut c = Https::connect(
            tls,
            &name,
            ClientOpts {
                roots: Some(ca.roots()),
                ..ClientOpts::default()
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.leaf(), leaves[i].der, "certificate for {name}");
        assert_eq!(c.alpn().as_deref(), Some(&b"http/1.1"[..]));
        let a = c.get(&name, "/x").expect("GET");
        assert_eq!((a.status, a.body.as_slice()), (200, &b"hello"[..]));
        assert!(a.header("x-request-id").is_some());
    }
    assert_eq!(connect(tls, "exact.wild.test").leaf(), exact.der);
    assert_eq!(connect(tls, "other.wild.test").leaf(), wild.der);
    assert_eq!(
        connect(tls, "EXACT.wild.test").leaf(),
        exact.der,
        "names are caseless"
    );
    // A wildcard covers one label: deeper names and the bare suffix get the default.
    assert_eq!(connect(tls, "a.b.wild.test").leaf(), default.der);
    assert_eq!(connect(tls, "wild.test").leaf(), default.der);
    assert_eq!(connect(tls, "nobody.example").leaf(), default.der);
    let no_sni = Https::connect(
        tls,
        "nobody.example",
        ClientOpts {
            sni: false,
            ..ClientOpts::default()
        },
    )
    .expect("handshake without SNI");
    assert_eq!(no_sni.leaf(), default.der);

    // The upstream hears that the request came over TLS.
    let mut c = connect(tls, "host5.sni.test");
    assert_eq!(c.get("host5.sni.test", "/proto").expect("GET").status, 200);
    let reqs = backend.wait_requests(1, Duration::from_secs(5));
    let last = reqs
        .iter()
        .rev()
        .find(|r| r.target == "/proto")
        .expect("request at the backend");
    assert_eq!(last.header("x-forwarded-proto"), Some("https"));
    // Plain HTTP on the same gateway still says http.
    let r = get(g.addr, "plain.test", "/plain");
    assert_eq!(r.status, 200);
    let reqs = backend.wait_requests(reqs.len() + 1, Duration::from_secs(5));
    let plain = reqs.iter().find(|r| r.target == "/plain").expect("plain");
    assert_eq!(plain.header("x-forwarded-proto"), Some("http"));
    eprintln!("done after {:?}", t.elapsed());
}

/// Runs `openssl s_client` with `args`, sending `input`; returns stdout and stderr.
fn s_client(addr: SocketAddr, args: &[&str], input: &[u8]) -> (String, String) {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl must be installed (tests/run-all.sh installs Debian's openssl)");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(input);
    }
    let end = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let _ = child.wait();
    (out, err)
}

#[test]
fn openssl_clients_verify_and_tls12_only_clients_still_connect() {
    let ca = Ca::new("Test CA");
    let site = ca.leaf(&["site.test"]);
    let dir = TempDir::new("tls-openssl");
    let ca_file = dir.write("ca.pem", &ca.pem);
    let ca_file = ca_file.display().to_string();
    let backend = Backend::fixed("over-tls");
    let tls = tls_addr();
    let g = Gateway::start(&config(
        backend.addr(),
        tls,
        "",
        &site.toml("site", &[], true),
    ));
    wait_tls(&g, tls);
    let req = b"GET /o HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n";
    let (out, err) = s_client(
        tls,
        &[
            "-servername",
            "site.test",
            "-CAfile",
            &ca_file,
            "-verify_return_error",
            "-quiet",
        ],
        req,
    );
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "stdout: {out}\nstderr: {err}"
    );
    assert!(out.ends_with("over-tls"), "{out}");
    // TLS 1.2 only, with an ECDHE suite: what an older client offers.
    let (out, err) = s_client(
        tls,
        &[
            "-servername",
            "site.test",
            "-CAfile",
            &ca_file,
            "-verify_return_error",
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "-brief",
        ],
        b"",
    );
    assert!(err.contains("Protocol version: TLSv1.2"), "{err}\n{out}");
    assert!(err.contains("ECDHE-ECDSA-AES128-GCM-SHA256"), "{err}");
    assert!(err.contains("Verification: OK"), "{err}");
    let c = Https::connect(
        tls,
        "site.test",
        ClientOpts {
            versions: &[&rustls::version::TLS12],
            ..ClientOpts::default()
        },
    )
    .expect("rustls TLS 1.2");
    assert_eq!(c.protocol(), Some(rustls::ProtocolVersion::TLSv1_2));
}

/// An admin request; returns status and JSON body.
fn admin(g: &Gateway, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = roundtrip(g.admin, raw.as_bytes());
    (r.status, r.json().unwrap_or(serde_json::Value::Null))
}

#[test]
fn a_replaced_certificate_serves_new_handshakes_while_open_connections_keep_going() {
    let ca = Ca::new("Test CA");
    let old = ca.leaf(&["swap.test"]);
    let new = ca.leaf(&["swap.test"]);
    let backend = Backend::fixed("ok");
    let tls = tls_addr();
    let g = Gateway::start(&config(
        backend.addr(),
        tls,
        "",
        &old.toml("swap", &[], true),
    ));
    wait_tls(&g, tls);
    let mut open = connect(tls, "swap.test");
    assert_eq!(open.leaf(), old.der);
    assert_eq!(open.get("swap.test", "/1").expect("GET").status, 200);

    let body = serde_json::json!({"cert": new.cert_pem, "key": new.key_pem, "default": true});
    let (st, v) = admin(&g, "PUT", "/admin/v1/certificates/swap", &body.to_string());
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["id"], "swap");
    // The open connection keeps its session and serves on.
    for i in 0..3 {
        let a = open
            .get("swap.test", &format!("/after{i}"))
            .expect("GET on the open connection");
        assert_eq!(a.status, 200);
    }
    assert_eq!(connect(tls, "swap.test").leaf(), new.der);

    // A second certificate by explicit SNI name, then deleted again.
    let extra = ca.leaf(&["not-used.test"]);
    let body =
        serde_json::json!({"cert": extra.cert_pem, "key": extra.key_pem, "snis": ["named.test"]});
    let (st, v) = admin(&g, "PUT", "/admin/v1/certificates/named", &body.to_string());
    assert_eq!(st, 201, "{v}");
    assert_eq!(connect(tls, "named.test").leaf(), extra.der);
    assert_eq!(
        connect(tls, "not-used.test").leaf(),
        new.der,
        "snis replace the SANs"
    );
    let (st, _) = admin(&g, "DELETE", "/admin/v1/certificates/named", "");
    assert_eq!(st, 204);
    assert_eq!(connect(tls, "named.test").leaf(), new.der);

    // Bad input: 400 naming the field; nothing changes.
    let other = ca.leaf(&["x.test"]);
    let cases = [
        (
            serde_json::json!({"cert": "garbage", "key": new.key_pem}),
            "cert",
        ),
        (
            serde_json::json!({"cert": new.cert_pem, "key": "garbage"}),
            "key",
        ),
        (
            serde_json::json!({"cert": new.cert_pem, "key": other.key_pem}),
            "key",
        ),
        (
            serde_json::json!({"cert": new.cert_pem, "key": new.key_pem, "snis": ["a b"]}),
            "snis[0]",
        ),
    ];
    for (body, field) in cases {
        let (st, v) = admin(&g, "PUT", "/admin/v1/certificates/swap", &body.to_string());
        assert_eq!(st, 400, "{v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    assert_eq!(connect(tls, "swap.test").leaf(), new.der);
    assert_eq!(open.get("swap.test", "/last").expect("GET").status, 200);
}

/// Reads until the server closes; returns how long that took, or `None` if it did not
/// within `t`.
fn closed_within(s: &mut TcpStream, t: Duration) -> Option<Duration> {
    let start = Instant::now();
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 4096];
    while start.elapsed() < t {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn garbage_and_stalled_handshakes_are_closed() {
    let ca = Ca::new("Test CA");
    let site = ca.leaf(&["site.test"]);
    let backend = Backend::fixed("ok");
    let tls = tls_addr();
    let g = Gateway::start(&config(
        backend.addr(),
        tls,
        "handshake_timeout_ms = 400",
        &site.toml("site", &[], true),
    ));
    wait_tls(&g, tls);
    // Not TLS at all: refused with an alert at once.
    let mut s = TcpStream::connect(tls).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    assert!(closed_within(&mut s, Duration::from_secs(5)).is_some());
    // Silent, or a record header and nothing more: closed by the handshake timeout (the
    // header timeout is 15 s).
    for start in [&b""[..], &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01][..]] {
        let mut s = TcpStream::connect(tls).expect("connect");
        s.write_all(start).expect("write");
        let took = closed_within(&mut s, Duration::from_secs(5)).expect("closed by the timeout");
        assert!(took >= Duration::from_millis(300), "closed after {took:?}");
    }
    // A megabyte of garbage costs a bounded read, then the connection.
    let mut s = TcpStream::connect(tls).expect("connect");
    let junk = vec![0x16u8; 1 << 20];
    let _ = s.write_all(&junk);
    assert!(closed_within(&mut s, Duration::from_secs(5)).is_some());
    // The gateway serves on.
    let mut c = connect(tls, "site.test");
    assert_eq!(c.get("site.test", "/").expect("GET").status, 200);
    assert!(!g.stderr().contains("panicked"));
}

#[test]
fn mutual_tls_per_listener_required_refuses_clients_without_a_certificate() {
    let ca = Ca::new("Test CA");
    let client_ca = Ca::new("Client CA");
    let site = ca.leaf(&["site.test"]);
    let good = client_ca.leaf(&["client.test"]);
    let stranger = Ca::new("Other CA").leaf(&["client.test"]);
    let backend = Backend::fixed("ok");
    // `open` asks for no certificate; `tls` requires one (`[[tls.listeners]]`).
    let open = tls_addr();
    let tls = tls_addr();
    let keys = format!(
        "\n[[tls.listeners]]\naddr = \"{tls}\"\nclient_auth = \"required\"\n\
         client_ca = \"\"\"{}\"\"\"",
        client_ca.pem
    );
    let g = Gateway::start(&config(
        backend.addr(),
        open,
        &keys,
        &site.toml("site", &[], true),
    ));
    wait_tls(&g, tls);
    let mut plain = connect(open, "site.test");
    assert_eq!(
        plain
            .get("site.test", "/m")
            .expect("no client cert needed")
            .status,
        200
    );
    let with = |cert: Option<&Leaf>| {
        Https::connect(
            tls,
            "site.test",
            ClientOpts {
                client_cert: cert,
                ..ClientOpts::default()
            },
        )
        .and_then(|mut c| c.get("site.test", "/m"))
    };
    assert_eq!(
        with(Some(&good))
            .expect("client with a CA-signed cert")
            .status,
        200
    );
    assert!(
        with(None).is_err(),
        "a client without a certificate got an answer"
    );
    assert!(
        with(Some(&stranger)).is_err(),
        "a client with a stranger's certificate got in"
    );
}

#[test]
fn redirect_sends_plain_http_to_the_https_listener() {
    let ca = Ca::new("Test CA");
    let site = ca.leaf(&["site.test"]);
    let backend = Backend::fixed("secure");
    let tls = tls_addr();
    let modules = format!(
        "[[modules]]\nid = \"force\"\nkind = \"redirect\"\nto_https = true\nhttps_port = {}\nglobal = true\n\n{}",
        tls.port(),
        site.toml("site", &[], true)
    );
    let g = Gateway::start(&config(backend.addr(), tls, "", &modules));
    wait_tls(&g, tls);
    let r = get(g.addr, "site.test", "/account?x=1");
    assert_eq!(r.status, 301);
    let loc = r.header("location").expect("Location").to_string();
    assert_eq!(loc, format!("https://site.test:{}/account?x=1", tls.port()));
    // Following it: the same request over TLS is not redirected again.
    let mut c = connect(tls, "site.test");
    let a = c.get("site.test", "/account?x=1").expect("GET");
    assert_eq!((a.status, a.body.as_slice()), (200, &b"secure"[..]));
}

#[test]
fn tls_upstreams_are_verified_with_their_ca_and_server_name() {
    let ca = Ca::new("Backend CA");
    let backend_leaf = ca.leaf(&["backend.test"]);
    let (backend, accepts) = pki::tls_backend(&backend_leaf);
    let stranger_ca = Ca::new("Stranger CA");
    let quote = |pem: &str| format!("\"\"\"{pem}\"\"\"");
    let cfg = format!(
        "[server]\nworkers = 1\nlisten = [\"{{listen}}\"]\nstate_dir = \"{{state_dir}}\"\n\n\
         [admin]\nlisten = \"{{admin}}\"\n\n\
         [[upstreams]]\nid = \"secure\"\nnodes = [{{ addr = \"{backend}\" }}]\ntls = true\n\
         tls_server_name = \"backend.test\"\ntls_ca = {}\n\n\
         [[upstreams]]\nid = \"wrong-ca\"\nnodes = [{{ addr = \"{backend}\" }}]\ntls = true\n\
         tls_server_name = \"backend.test\"\ntls_ca = {}\n\n\
         [[upstreams]]\nid = \"wrong-name\"\nnodes = [{{ addr = \"{backend}\" }}]\ntls = true\n\
         tls_server_name = \"other.test\"\ntls_ca = {}\n\n\
         [[routes]]\nid = \"s\"\npaths = [\"/s/*\"]\nupstream = \"secure\"\n\n\
         [[routes]]\nid = \"c\"\npaths = [\"/c/*\"]\nupstream = \"wrong-ca\"\n\n\
         [[routes]]\nid = \"n\"\npaths = [\"/n/*\"]\nupstream = \"wrong-name\"\n",
        quote(&ca.pem),
        quote(&stranger_ca.pem),
        quote(&ca.pem)
    );
    let g = Gateway::start(&cfg);
    // Keep-alive to the gateway and, through the pool, to the TLS upstream.
    let mut c = Conn::open(g.addr);
    for i in 0..5 {
        c.send(format!("GET /s/{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .expect("send");
        let r = c.read_response().expect("answer");
        assert_eq!(r.status, 200);
        assert_eq!(r.body_str(), format!("tls sni=backend.test path=/s/{i}"));
    }
    // One worker, sequential requests: one TLS connection carried all five.
    assert_eq!(accepts.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A certificate from an unknown CA, or for another name: 502, never a plaintext leak.
    assert_gateway_error(&get(g.addr, "a", "/c/x"), 502, "upstream_failed");
    assert_gateway_error(&get(g.addr, "a", "/n/x"), 502, "upstream_failed");
}

#[test]
fn https_listeners_and_certificates_pass_through_an_upgrade() {
    let ca = Ca::new("Upgrade CA");
    let leaf = ca.leaf(&["up.test"]);
    let backend = Backend::fixed("hello");
    let tls = tls_addr();
    // A drain long enough that the kept connection is never closed for idleness here.
    let cfg = config(backend.addr(), tls, "", &leaf.toml("up", &[], true))
        .replace("drain_timeout_ms = 1000", "drain_timeout_ms = 4000");
    let mut old = Gateway::start(&cfg);
    wait_tls(&old, tls);
    // A keep-alive HTTPS connection to the old process, open across the handover.
    let mut kept = connect(tls, "up.test");
    assert_eq!(kept.get("up.test", "/before").expect("answer").status, 200);
    let mut new = old.spawn_upgrade(&cfg).expect("spawn upgrade");
    if let Err(e) = new.wait_upgraded() {
        panic!("upgrade failed: {e}\n--- old stderr ---\n{}", old.stderr());
    }
    // The kept connection is still served by the old process, which ends it: its answer
    // says close, or, when the drain reached the worker just after it, the next one does
    // (or the drain's end closes the connection).
    let r = kept
        .get("up.test", "/during")
        .expect("answer while draining");
    assert_eq!(r.status, 200);
    if r.header("connection") != Some("close") {
        if let Ok(r) = kept.get("up.test", "/during-2") {
            assert_eq!((r.status, r.header("connection")), (200, Some("close")));
        }
    }
    drop(kept);
    let st = old.wait_exit(Duration::from_secs(15));
    assert!(
        st.is_some_and(|s| s.success()),
        "old: {st:?}: {}",
        old.stderr()
    );
    // New handshakes on the same address are the new process's, with the same certificate.
    for i in 0..5 {
        let mut c = connect(tls, "up.test");
        let r = c.get("up.test", &format!("/after/{i}")).expect("answer");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    }
    assert!(
        new.stderr().contains(&format!("serving HTTPS on {tls}")),
        "{}",
        new.stderr()
    );
}

#[test]
fn active_http_checks_of_tls_upstreams_speak_tls() {
    let ca = Ca::new("Backend CA");
    let (backend, accepts) = pki::tls_backend(&ca.leaf(&["backend.test"]));
    let stranger_ca = Ca::new("Stranger CA");
    let quote = |pem: &str| format!("\"\"\"{pem}\"\"\"");
    let checked = |id: &str, ca_pem: &str| {
        format!(
            "[[upstreams]]\nid = \"{id}\"\nnodes = [{{ addr = \"{backend}\" }}]\ntls = true\n\
             tls_server_name = \"backend.test\"\ntls_ca = {}\n\
             [upstreams.health_check]\nkind = \"http\"\npath = \"/healthz\"\n\
             interval_ms = 100\ntimeout_ms = 1000\nunhealthy_threshold = 1\n\n\
             [[routes]]\nid = \"{id}\"\npaths = [\"/{id}/*\"]\nupstream = \"{id}\"\n\n",
            quote(ca_pem)
        )
    };
    let cfg = format!(
        "[server]\nworkers = 1\nlisten = [\"{{listen}}\"]\nstate_dir = \"{{state_dir}}\"\n\n{}{}",
        checked("good", &ca.pem),
        checked("bad", &stranger_ca.pem)
    );
    let g = Gateway::start(&cfg);
    // A check that cannot verify the node's certificate fails like a proxied request would,
    // and takes the node out.
    assert!(
        wait_until(Duration::from_secs(10), || get(g.addr, "a", "/bad/x")
            .status
            == 503),
        "the unverifiable node was never taken out"
    );
    assert_gateway_error(&get(g.addr, "a", "/bad/x"), 503, "no_healthy_upstream");
    // Checks run every 100 ms: wait for several more, then the verified node must still be up.
    let seen = accepts.load(std::sync::atomic::Ordering::SeqCst);
    assert!(wait_until(Duration::from_secs(10), || {
        accepts.load(std::sync::atomic::Ordering::SeqCst) >= seen + 4
    }));
    let r = get(g.addr, "a", "/good/x");
    assert_eq!(r.status, 200, "a verified TLS check keeps the node up");
    assert_eq!(r.body_str(), "tls sni=backend.test path=/good/x");
}

/// `tests/suites/websocket/peer.py` (the WebSocket suite's real peers) under the Python of
/// `GATEHOUSE_PYTHON`, trusting `ca_file` for TLS.
fn ws_peer(
    args: &[&str],
    ca_file: &std::path::Path,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
    std::process::ChildStdin,
) {
    let py = std::env::var("GATEHOUSE_PYTHON").expect(
        "GATEHOUSE_PYTHON must name a Python with the `websockets` package (tests/run-all.sh sets it up)",
    );
    let peer = concat!(env!("CARGO_MANIFEST_DIR"), "/suites/websocket/peer.py");
    let mut child = Command::new(py)
        .arg(peer)
        .args(args)
        .env("SSL_CERT_FILE", ca_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the Python WebSocket peer");
    let out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let stdin = child.stdin.take().expect("stdin");
    (child, out, stdin)
}

fn peer_line(out: &mut std::io::BufReader<std::process::ChildStdout>) -> serde_json::Value {
    use std::io::BufRead;
    let mut l = String::new();
    out.read_line(&mut l).expect("read peer");
    serde_json::from_str(&l).unwrap_or_else(|_| panic!("peer said {l:?}"))
}

#[test]
fn websocket_tunnels_run_over_https() {
    let ca = Ca::new("Test CA");
    // Python verifies the name it dialled: the loopback IP, served as the default certificate.
    let site = ca.leaf(&["127.0.0.1"]);
    let dir = TempDir::new("tls-ws");
    let ca_file = dir.write("ca.pem", &ca.pem);
    let (mut server, mut server_out, _server_in) = ws_peer(&["server"], &ca_file);
    let port = peer_line(&mut server_out).as_u64().expect("port") as u16;
    let echo = SocketAddr::from(([127, 0, 0, 1], port));
    let tls = tls_addr();
    let g = Gateway::start(&config(echo, tls, "", &site.toml("site", &[], true)));
    wait_tls(&g, tls);
    let url = format!("wss://127.0.0.1:{}/ws/echo", tls.port());
    let (mut client, mut out, mut stdin) = ws_peer(&["client", &url], &ca_file);
    assert_eq!(peer_line(&mut out)["open"], true);
    writeln!(stdin, "echo 200").expect("command");
    stdin.flush().expect("flush");
    assert_eq!(peer_line(&mut out)["echoed"], 200);
    let _ = client.kill();
    let _ = client.wait();
    let _ = server.kill();
    let _ = server.wait();
}
