//! Malformed requests: every head two parsers could read differently is refused by the
//! gateway itself with the CONTRACT status, `Connection: close` and a JSON error body, and
//! nothing of it reaches the upstream. Broken chunked bodies (whose head may already be on
//! its way) never reach the upstream as a complete request.

use gatehouse_tests::*;
use std::time::Duration;

/// One gateway and backend per test; `check` runs each case on a fresh connection.
struct Bench {
    b: Backend,
    gw: Gateway,
}

impl Bench {
    fn new() -> Bench {
        let b = Backend::echo();
        let gw = gateway_for(&b);
        Bench { b, gw }
    }

    /// Sends `raw`; expects `status`/`code`, a close, and nothing forwarded.
    fn check(&self, name: &str, raw: &[u8], status: u16, code: &str) {
        let mut c = Conn::open(self.gw.addr);
        let _ = c.send(raw);
        let r = c
            .read_response()
            .unwrap_or_else(|e| panic!("{name}: no answer: {e}"));
        assert_eq!(
            r.status,
            status,
            "{name}: got {} {:?} {}",
            r.status,
            r.headers,
            r.body_str()
        );
        assert_gateway_error(&r, status, code);
        assert!(
            r.has_token("connection", "close"),
            "{name}: {:?}",
            r.headers
        );
        assert!(c.closes_within(Duration::from_secs(4)), "{name}: left open");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            self.b.request_count(),
            0,
            "{name}: forwarded {:?}",
            self.b.requests()
        );
        assert_eq!(self.b.accepts(), 0, "{name}: the upstream got a connection");
    }
}

fn bad(b: &Bench, name: &str, raw: &str) {
    b.check(name, raw.as_bytes(), 400, "bad_request");
}

#[test]
fn framing_conflicts_are_400() {
    let b = Bench::new();
    bad(
        &b,
        "CL+TE",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    bad(
        &b,
        "TE+CL",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    );
    bad(
        &b,
        "smuggled GET behind CL+TE",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    bad(
        &b,
        "duplicate CL",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
    bad(
        &b,
        "CL list",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello!",
    );
    for v in [
        "abc",
        "-1",
        "+5",
        "5 5",
        "0x10",
        "",
        "99999999999999999999999",
    ] {
        bad(
            &b,
            &format!("bad CL {v:?}"),
            &format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {v}\r\n\r\nhello"),
        );
    }
    bad(
        &b,
        "TE chunked,gzip",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    );
    bad(
        &b,
        "TE chunked twice",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    bad(
        &b,
        "TE on HTTP/1.0",
        "POST / HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
}

#[test]
fn unknown_transfer_codings_are_501() {
    let b = Bench::new();
    for te in ["gzip", "gzip, chunked", "identity", "x-custom, chunked"] {
        b.check(
            &format!("TE {te}"),
            format!("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n")
                .as_bytes(),
            501,
            "unknown_transfer_coding",
        );
    }
}

#[test]
fn line_and_field_syntax_errors_are_400() {
    let b = Bench::new();
    bad(
        &b,
        "obs-fold",
        "GET / HTTP/1.1\r\nHost: t\r\nX-A: one\r\n two\r\n\r\n",
    );
    bad(
        &b,
        "obs-fold with tab",
        "GET / HTTP/1.1\r\nHost: t\r\nX-A: one\r\n\ttwo\r\n\r\n",
    );
    bad(&b, "bare LF everywhere", "GET / HTTP/1.1\nHost: t\n\n");
    bad(
        &b,
        "bare LF in a field",
        "GET / HTTP/1.1\r\nHost: t\nX-A: 1\r\n\r\n",
    );
    bad(&b, "bare CR", "GET / HTTP/1.1\r\nHost: t\rX-A: 1\r\n\r\n");
    bad(
        &b,
        "space before colon",
        "GET / HTTP/1.1\r\nHost : t\r\n\r\n",
    );
    bad(
        &b,
        "tab before colon",
        "GET / HTTP/1.1\r\nHost\t: t\r\n\r\n",
    );
    bad(
        &b,
        "control byte in a value",
        "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n",
    );
    bad(
        &b,
        "NUL in a value",
        "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n",
    );
    bad(
        &b,
        "bad field name",
        "GET / HTTP/1.1\r\nHost: t\r\nX(A): 1\r\n\r\n",
    );
    bad(&b, "no colon", "GET / HTTP/1.1\r\nHost: t\r\nX-A\r\n\r\n");
    bad(
        &b,
        "leading whitespace line",
        "GET / HTTP/1.1\r\n Host: t\r\n\r\n",
    );
    bad(
        &b,
        "control byte in target",
        "GET /a\x01b HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    bad(&b, "two spaces", "GET  / HTTP/1.1\r\nHost: t\r\n\r\n");
    bad(&b, "no version", "GET /\r\nHost: t\r\n\r\n");
}

#[test]
fn host_errors_are_400() {
    let b = Bench::new();
    bad(
        &b,
        "missing Host on 1.1",
        "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n",
    );
    bad(
        &b,
        "duplicate Host",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    );
    bad(
        &b,
        "duplicate identical Host",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
    );
    bad(&b, "Host list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n");
}

#[test]
fn other_protocol_versions_are_refused() {
    let b = Bench::new();
    for v in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTPS/1.1", "http/1.1"] {
        bad(
            &b,
            &format!("version {v}"),
            &format!("GET / {v}\r\nHost: t\r\n\r\n"),
        );
    }
}

/// A chunked request whose body breaks the chunked syntax: the client gets a 400 (or, if
/// the gateway cannot answer any more, a close), and the upstream never gets it whole.
fn bad_chunked(body: &str) {
    let b = Backend::echo();
    let gw = gateway_for(&b);
    let mut c = Conn::open(gw.addr);
    let head = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    let _ = c.send(format!("{head}{body}").as_bytes());
    match c.read_response() {
        Ok(r) => {
            assert_gateway_error(&r, 400, "bad_request");
            assert!(r.has_token("connection", "close"), "{:?}", r.headers);
            assert!(c.closes_within(Duration::from_secs(4)), "left open");
        }
        Err(e) => {
            // No answer: then the connection must have ended, not hung.
            assert!(
                e.kind() == std::io::ErrorKind::UnexpectedEof
                    || e.kind() == std::io::ErrorKind::ConnectionReset,
                "body {body:?}: {e}"
            );
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    for q in b.requests() {
        assert!(
            !q.complete,
            "body {body:?} reached the upstream whole: {q:?}"
        );
    }
}

#[test]
fn bad_chunk_size() {
    bad_chunked("zz\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn chunk_size_overflow() {
    bad_chunked("ffffffffffffffffff\r\nhello\r\n0\r\n\r\n");
    bad_chunked("10000000000000000\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn chunk_data_without_crlf() {
    bad_chunked("5\r\nhelloXX0\r\n\r\n");
}

#[test]
fn chunk_size_with_bare_lf() {
    bad_chunked("5\nhello\r\n0\r\n\r\n");
}

#[test]
fn negative_or_signed_chunk_size() {
    bad_chunked("-5\r\nhello\r\n0\r\n\r\n");
    bad_chunked("+5\r\nhello\r\n0\r\n\r\n");
}
