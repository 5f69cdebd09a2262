//! The `decrypt` module through the real binary: an app's AES-256-GCM request body reaches
//! the upstream as plaintext, and the answer comes back sealed for the app.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use gatehouse_tests::backend::Backend;
use gatehouse_tests::client::{assert_gateway_error, Conn};
use gatehouse_tests::gateway::Gateway;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn key() -> LessSafeKey {
    let raw = B64.decode(KEY_B64).unwrap();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &raw).unwrap())
}

fn seal(aad: &str, nonce: [u8; 12], plain: &[u8]) -> String {
    let mut buf = plain.to_vec();
    key()
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad.as_bytes()),
            &mut buf,
        )
        .unwrap();
    let mut raw = nonce.to_vec();
    raw.extend_from_slice(&buf);
    B64.encode(raw)
}

fn open(aad: &str, text: &[u8]) -> Vec<u8> {
    let raw = B64.decode(text).expect("base64 answer");
    let (nonce, rest) = raw.split_at(12);
    let mut buf = rest.to_vec();
    let plain = key()
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce).unwrap(),
            Aad::from(aad.as_bytes()),
            &mut buf,
        )
        .expect("the answer opens with the app's key");
    plain.to_vec()
}

fn gateway(up: &Backend) -> Gateway {
    Gateway::start(&format!(
        "[[upstreams]]\nid = \"up\"\nnodes = [{{ addr = \"{}\" }}]\n\
         [[modules]]\nid = \"crypto\"\nkind = \"decrypt\"\nkeys = {{ app1 = \"{KEY_B64}\" }}\n\
         [[routes]]\nid = \"pay\"\npaths = [\"/pay\"]\nupstream = \"up\"\nmodules = [\"crypto\"]\n",
        up.addr()
    ))
}

fn post(gw: &Gateway, app: &str, body: &str, chunked: bool) -> gatehouse_tests::client::Resp {
    let mut c = Conn::open(gw.addr);
    let req = if chunked {
        let (a, b) = body.split_at(body.len() / 2);
        format!(
            "POST /pay HTTP/1.1\r\nHost: h\r\nX-App-Id: {app}\r\nTransfer-Encoding: chunked\r\n\r\n\
             {:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        )
    } else {
        format!(
            "POST /pay HTTP/1.1\r\nHost: h\r\nX-App-Id: {app}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    c.send(req.as_bytes()).unwrap();
    c.read_response().unwrap()
}

#[test]
fn request_is_decrypted_for_the_upstream_and_the_answer_sealed_for_the_app() {
    let up = Backend::echo();
    let gw = gateway(&up);
    for chunked in [false, true] {
        let plain = br#"{"amount":100,"currency":"EUR"}"#;
        let r = post(&gw, "app1", &seal("req:app1", [9; 12], plain), chunked);
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; charset=us-ascii")
        );
        // The upstream saw plaintext with an exact Content-Length and no chunking.
        let seen = up.requests().pop().unwrap();
        assert_eq!(seen.body, plain);
        assert!(seen.headers.iter().any(
            |(k, v)| k.eq_ignore_ascii_case("content-length") && v == &plain.len().to_string()
        ));
        assert!(!seen
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding")));
        // The echo comes back sealed for the app, bound to the response direction.
        assert_eq!(open("resp:app1", &r.body), plain);
    }
}

#[test]
fn bad_ciphertext_and_unknown_apps_never_reach_the_upstream() {
    let up = Backend::echo();
    let gw = gateway(&up);
    let good = seal("req:app1", [7; 12], b"hello");
    // Tampered: flip a character of the ciphertext.
    let mut bad = good.clone().into_bytes();
    bad[20] = if bad[20] == b'A' { b'B' } else { b'A' };
    let r = post(&gw, "app1", std::str::from_utf8(&bad).unwrap(), false);
    assert_eq!(r.status, 400, "{}", r.body_str());
    // A response replayed as a request does not open (the AAD names the direction).
    let r = post(&gw, "app1", &seal("resp:app1", [7; 12], b"hello"), false);
    assert_eq!(r.status, 400);
    let r = post(&gw, "nobody", &good, false);
    assert_gateway_error(&r, 401, "auth_failed");
    assert_eq!(up.request_count(), 0);
}
