//! Request-head rules, each accepted case checked at every byte split and with bytes after the
//! head, each refused case checked for a consistent verdict on every prefix.

use super::*;

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).escape_debug().to_string()
}

pub(super) fn txt(buf: &[u8], s: Span) -> &str {
    std::str::from_utf8(s.get(buf)).unwrap_or("<utf8>")
}

/// `input` is exactly one head: it parses whole, every shorter prefix is Partial, and bytes
/// after it (body, next request) change nothing.
pub(super) fn accept_with(input: &[u8], limits: &Limits) -> Box<RequestHead> {
    let mut full = Box::new(RequestHead::new());
    let r = parse_request(input, limits, &mut full);
    assert_eq!(r, Ok(Parsed::Complete), "{}", show(input));
    assert_eq!(full.head_len, input.len(), "{}", show(input));
    let mut part = Box::new(RequestHead::new());
    for k in 0..input.len() {
        let r = parse_request(&input[..k], limits, &mut part);
        assert_eq!(r, Ok(Parsed::Partial), "split {k}: {}", show(input));
    }
    let mut longer = input.to_vec();
    longer.extend_from_slice(b"body\n\r\x00GET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        parse_request(&longer, limits, &mut part),
        Ok(Parsed::Complete)
    );
    assert_eq!(*part, *full);
    full
}

fn accept(input: &[u8]) -> Box<RequestHead> {
    accept_with(input, &Limits::default())
}

/// Refused with `err`; no prefix is accepted or refused for another reason.
pub(super) fn reject_with(input: &[u8], limits: &Limits, err: HeadError) {
    let mut h = Box::new(RequestHead::new());
    assert_eq!(
        parse_request(input, limits, &mut h),
        Err(err),
        "{}",
        show(input)
    );
    for k in 0..input.len() {
        let r = parse_request(&input[..k], limits, &mut h);
        assert!(
            r == Ok(Parsed::Partial) || r == Err(err),
            "split {k}: {r:?} for {}",
            show(input)
        );
    }
}

fn reject(input: &[u8], err: HeadError) {
    reject_with(input, &Limits::default(), err);
}

/// Also refused as soon as byte `at` (the offending one) has arrived.
fn reject_at(input: &[u8], err: HeadError, at: usize) {
    reject(input, err);
    let mut h = Box::new(RequestHead::new());
    let r = parse_request(&input[..=at], &Limits::default(), &mut h);
    assert_eq!(r, Err(err), "prefix ..={at} of {}", show(input));
}

fn bad(code: &'static str) -> HeadError {
    HeadError::BadRequest(code)
}

#[test]
fn typical_get() {
    let b = b"GET /api/v1/users?id=7&x=y HTTP/1.1\r\nHost: api.example.com:8080\r\n\
User-Agent: curl/8.0\r\nAccept: */*\r\nX-Request-Id: abc\r\nCookie: a=b\r\n\r\n";
    let h = accept(b);
    assert_eq!(h.method, Method::Get);
    assert_eq!(txt(b, h.method_span), "GET");
    assert_eq!(txt(b, h.target), "/api/v1/users?id=7&x=y");
    assert_eq!(txt(b, h.path), "/api/v1/users");
    assert_eq!(h.query.map(|q| txt(b, q)), Some("id=7&x=y"));
    assert_eq!(h.minor_version, 1);
    assert_eq!(h.host.map(|s| txt(b, s)), Some("api.example.com:8080"));
    assert_eq!(h.body, BodyKind::None);
    assert!(h.keep_alive && !h.expect_continue && h.upgrade.is_none());
    assert_eq!(h.headers().len(), 5);
    let kinds: Vec<HeaderKind> = h.headers().iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            HeaderKind::Host,
            HeaderKind::Other,
            HeaderKind::Other,
            HeaderKind::XRequestId,
            HeaderKind::Cookie
        ]
    );
    assert!(h.headers().iter().all(|f| !f.hop_by_hop));
    let ua = h.find_name(b, b"user-agent").map(|f| txt(b, f.value));
    assert_eq!(ua, Some("curl/8.0"));
    assert_eq!(
        h.find(HeaderKind::Cookie).map(|f| txt(b, f.name)),
        Some("Cookie")
    );
    assert!(h.find(HeaderKind::Date).is_none());
    assert!(h.find_name(b, b"nope").is_none());
}

#[test]
fn values_are_trimmed_and_may_hold_tabs_and_obs_text() {
    let b = b"GET / HTTP/1.1\r\nHost:a\r\nX:  \t v \t x\t \r\nY:\r\nZ: caf\xc3\xa9\r\n\r\n";
    let h = accept(b);
    let vals: Vec<&[u8]> = h.headers().iter().map(|f| f.value.get(b)).collect();
    assert_eq!(vals, [&b"a"[..], b"v \t x", b"", b"caf\xc3\xa9"]);
}

#[test]
fn query_forms() {
    let h = accept(b"GET /a? HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(h.query.map(|q| q.len), Some(0));
    let h = accept(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(h.query, None);
}

#[test]
fn methods() {
    let cases: &[(&str, Method, bool)] = &[
        ("GET", Method::Get, true),
        ("HEAD", Method::Head, true),
        ("POST", Method::Post, false),
        ("PUT", Method::Put, true),
        ("DELETE", Method::Delete, true),
        ("OPTIONS", Method::Options, true),
        ("PATCH", Method::Patch, false),
        ("TRACE", Method::Trace, true),
        ("PROPFIND", Method::Other, false),
        ("get", Method::Other, false),
    ];
    for (m, want, idem) in cases {
        let req = format!("{m} / HTTP/1.1\r\nHost: h\r\n\r\n");
        let h = accept(req.as_bytes());
        assert_eq!(h.method, *want);
        assert_eq!(txt(req.as_bytes(), h.method_span), *m);
        assert_eq!(h.method.is_idempotent(), *idem);
    }
    assert!(!Method::Connect.is_idempotent());
}

#[test]
fn content_length_body() {
    let h = accept(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(h.body, BodyKind::Length(5));
    let h = accept(b"POST /p HTTP/1.1\r\nHost: h\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(h.body, BodyKind::Length(0));
    let h = accept(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n");
    assert_eq!(h.body, BodyKind::Length(u64::MAX));
}

#[test]
fn chunked_body() {
    let h = accept(b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.body, BodyKind::Chunked);
    let te = h.find(HeaderKind::TransferEncoding);
    assert!(te.is_some_and(|f| f.hop_by_hop));
    let h = accept(b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n");
    assert_eq!(h.body, BodyKind::Chunked);
}

#[test]
fn content_length_with_transfer_encoding() {
    let e = bad("content_length_with_transfer_encoding");
    reject(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        e,
    );
    reject(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        e,
    );
}

#[test]
fn content_length_duplicates_and_malformed() {
    reject(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        bad("duplicate_content_length"),
    );
    for v in [
        "",
        "abc",
        "+5",
        "-5",
        "5, 5",
        "5,5",
        "5 5",
        "0x5",
        "18446744073709551616",
        "1.0",
    ] {
        let req = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {v}\r\n\r\n");
        reject(req.as_bytes(), bad("bad_content_length"));
    }
}

#[test]
fn transfer_encoding_rules() {
    let req = |te: &str| format!("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {te}\r\n\r\n");
    reject(
        req("gzip, chunked").as_bytes(),
        HeadError::UnknownTransferCoding,
    );
    reject(req("gzip").as_bytes(), HeadError::UnknownTransferCoding);
    reject(req("identity").as_bytes(), HeadError::UnknownTransferCoding);
    reject(req("chunked, gzip").as_bytes(), bad("chunked_not_last"));
    reject(req("chunked, chunked").as_bytes(), bad("chunked_twice"));
    reject(
        req("chunked;ext=1").as_bytes(),
        bad("bad_transfer_encoding"),
    );
    reject(req("").as_bytes(), bad("bad_transfer_encoding"));
    reject(req("chunked,").as_bytes(), bad("chunked_not_last"));
    reject(req(",chunked").as_bytes(), bad("bad_transfer_encoding"));
    // spread over two fields, order matters
    reject(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
        bad("chunked_not_last"),
    );
    reject(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        HeadError::UnknownTransferCoding,
    );
}

#[test]
fn transfer_encoding_on_http10() {
    reject(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        bad("transfer_encoding_http10"),
    );
}

#[test]
fn obs_fold_and_whitespace_before_first_field() {
    reject_at(
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
        bad("obs_fold"),
        31,
    );
    reject_at(
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n",
        bad("obs_fold"),
        31,
    );
    reject_at(
        b"GET / HTTP/1.1\r\n Host: h\r\n\r\n",
        bad("space_before_first_header"),
        16,
    );
}

#[test]
fn bare_cr_and_lf_anywhere() {
    reject_at(b"GET / HTTP/1.1\nHost: h\r\n\r\n", bad("bare_lf"), 14);
    reject_at(b"GET / HTTP/1.1\r\nHost: h\n\r\n", bad("bare_lf"), 23);
    reject_at(b"GET / HTTP/1.1\r\nHost: h\r\n\n", bad("bare_lf"), 25);
    reject_at(
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n",
        bad("bare_lf"),
        29,
    );
    reject_at(b"GET / HTTP/1.1\rHost: h\r\n\r\n", bad("bare_cr"), 15);
    reject_at(b"GET / HTTP/1.1\r\nHost: h\rX\r\n\r\n", bad("bare_cr"), 24);
    reject_at(b"GET / HTTP/1.1\r\nHost: h\r\n\rX", bad("bare_cr"), 26);
    // A CR inside the target is refused by the target syntax as soon as it arrives, and as a
    // bare CR once the next byte shows it is not a line end: a 400 either way.
    let b = b"GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut h = Box::new(RequestHead::new());
    assert_eq!(
        parse_request(&b[..7], &Limits::default(), &mut h),
        Err(bad("bad_target"))
    );
    assert_eq!(
        parse_request(b, &Limits::default(), &mut h),
        Err(bad("bare_cr"))
    );
    reject_at(b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", bad("bare_lf"), 0);
}

#[test]
fn header_name_faults() {
    reject_at(
        b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        bad("space_before_colon"),
        20,
    );
    reject_at(
        b"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n",
        bad("space_before_colon"),
        20,
    );
    reject_at(
        b"GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n",
        bad("empty_header_name"),
        25,
    );
    reject_at(
        b"GET / HTTP/1.1\r\nHost: h\r\nX\x01Y: v\r\n\r\n",
        bad("bad_header_name"),
        26,
    );
    reject_at(
        b"GET / HTTP/1.1\r\nHost: h\r\nX\x7fY: v\r\n\r\n",
        bad("bad_header_name"),
        26,
    );
    reject(
        b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n",
        bad("bad_header_name"),
    );
    reject(
        b"GET / HTTP/1.1\r\nHost: h\r\nX(: v\r\n\r\n",
        bad("bad_header_name"),
    );
}

#[test]
fn control_bytes_in_values() {
    for c in [0x00u8, 0x01, 0x08, 0x0b, 0x1f, 0x7f] {
        let mut req = b"GET / HTTP/1.1\r\nHost: h\r\nX: a".to_vec();
        req.push(c);
        let at = req.len() - 1;
        req.extend_from_slice(b"b\r\n\r\n");
        reject_at(&req, bad("bad_header_value"), at);
    }
}

#[test]
fn host_rules() {
    reject(b"GET / HTTP/1.1\r\nX: y\r\n\r\n", bad("missing_host"));
    reject_at(
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        bad("duplicate_host"),
        35,
    );
    for v in [
        "a b", "a/b", "u@h", "h:99999", "h:", "h:x", "[::1", ":80", "h:0", "h\u{e9}",
    ] {
        let req = format!("GET / HTTP/1.1\r\nHost: {v}\r\n\r\n");
        reject(req.as_bytes(), bad("bad_host"));
    }
    for v in [
        "h",
        "h:80",
        "10.0.0.1:65535",
        "[::1]:8080",
        "xn--bcher-kva.example",
    ] {
        let req = format!("GET / HTTP/1.1\r\nHost: {v}\r\n\r\n");
        let h = accept(req.as_bytes());
        assert_eq!(h.host.map(|s| txt(req.as_bytes(), s)), Some(v));
    }
    // RFC 9112 §3.2: empty Host is what a client sends when the target has no authority.
    let b = b"GET / HTTP/1.1\r\nHost:\r\n\r\n";
    assert_eq!(accept(b).host.map(|s| s.len), Some(0));
}

#[test]
fn http10() {
    let h = accept(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!((h.minor_version, h.host, h.keep_alive), (0, None, false));
    let h = accept(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(h.keep_alive);
    let b = b"GET / HTTP/1.0\r\nHost: h\r\nExpect: 100-continue\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n";
    let h = accept(b);
    assert!(!h.expect_continue && h.upgrade.is_none());
    reject(b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n", bad("bad_host"));
}

#[test]
fn keep_alive_and_connection_options() {
    let h = accept(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert!(!h.keep_alive);
    let h = accept(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, CLOSE\r\n\r\n");
    assert!(!h.keep_alive);
    let h = accept(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: ,, keep-alive\r\n\r\n");
    assert!(h.keep_alive);
    reject(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: a b\r\n\r\n",
        bad("bad_connection"),
    );

    let b = b"GET / HTTP/1.1\r\nX-Before: 1\r\nHost: h\r\nConnection: x-before, X-After, host, content-length\r\n\
X-After: 2\r\nContent-Length: 0\r\nX-Other: 3\r\nKeep-Alive: timeout=5\r\n\r\n";
    let h = accept(b);
    let hop: Vec<(&str, bool)> = h
        .headers()
        .iter()
        .map(|f| (txt(b, f.name), f.hop_by_hop))
        .collect();
    assert_eq!(
        hop,
        [
            ("X-Before", true),
            ("Host", false),
            ("Connection", true),
            ("X-After", true),
            ("Content-Length", false),
            ("X-Other", false),
            ("Keep-Alive", true),
        ]
    );
    let many: String = (0..=MAX_CONNECTION_OPTIONS)
        .map(|i| format!("x{i},"))
        .collect();
    let req = format!("GET / HTTP/1.1\r\nHost: h\r\nConnection: {many}\r\n\r\n");
    reject(req.as_bytes(), bad("too_many_connection_options"));
}

#[test]
fn expect_continue() {
    let h =
        accept(b"PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nExpect: 100-Continue\r\n\r\n");
    assert!(h.expect_continue);
    let h = accept(b"PUT /u HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n");
    assert!(!h.expect_continue);
}

#[test]
fn websocket_upgrade() {
    let b =
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let h = accept(b);
    assert_eq!(h.upgrade.map(|s| txt(b, s)), Some("websocket"));
    assert!(h
        .find(HeaderKind::SecWebSocketKey)
        .is_some_and(|f| !f.hop_by_hop));
    assert!(h.find(HeaderKind::Upgrade).is_some_and(|f| f.hop_by_hop));
    let h = accept(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n");
    assert!(h.upgrade.is_none());
}

#[test]
fn one_leading_empty_line() {
    let h = accept(b"\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(h.head_len, 30);
    assert_eq!(h.target, Span { start: 6, len: 2 });
    reject_at(
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        bad("leading_empty_lines"),
        2,
    );
}

#[test]
fn absolute_form() {
    let b = b"GET http://api.example.com:81/a/b?c=d HTTP/1.1\r\nHost: other\r\n\r\n";
    let h = accept(b);
    assert_eq!(h.host.map(|s| txt(b, s)), Some("api.example.com:81"));
    assert_eq!(txt(b, h.path), "/a/b");
    assert_eq!(h.query.map(|s| txt(b, s)), Some("c=d"));
    let b = b"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n";
    let h = accept(b);
    assert!(h.path.is_empty() && h.query.is_none());
    for t in [
        "https://h/",
        "ftp://h/",
        "http:///x",
        "http://u@h/",
        "h/x",
        "http//h/",
    ] {
        let req = format!("GET {t} HTTP/1.1\r\nHost: h\r\n\r\n");
        reject(req.as_bytes(), bad("bad_target"));
    }
    // the Host field is still required and checked (RFC 9112 §3.2)
    reject(b"GET http://h/ HTTP/1.1\r\n\r\n", bad("missing_host"));
}

#[test]
fn other_target_forms() {
    let b = b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(txt(b, accept(b).path), "*");
    let b = b"CONNECT h:443 HTTP/1.1\r\nHost: proxy\r\n\r\n";
    let h = accept(b);
    assert_eq!(h.method, Method::Connect);
    assert_eq!(h.host.map(|s| txt(b, s)), Some("h:443"));
    assert!(h.path.is_empty() && h.query.is_none());
    reject_at(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", bad("bad_target"), 15);
    reject_at(
        b"CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n",
        bad("bad_target"),
        20,
    );
    reject_at(
        b"GET /a#f HTTP/1.1\r\nHost: h\r\n\r\n",
        bad("bad_target"),
        18,
    );
    reject(
        "GET /é HTTP/1.1\r\nHost: h\r\n\r\n".as_bytes(),
        bad("bad_target"),
    );
}

#[test]
fn request_line_syntax() {
    reject_at(b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", bad("bad_target"), 4);
    reject_at(b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n", bad("bad_version"), 6);
    reject_at(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", bad("bad_version"), 13);
    reject_at(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", bad("bad_version"), 11);
    reject_at(b"GET / http/1.1\r\nHost: h\r\n\r\n", bad("bad_version"), 6);
    reject_at(
        b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
        bad("bad_request_line"),
        14,
    );
    reject(b"GET /\r\n\r\n", bad("bad_target"));
    reject_at(b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", bad("bad_method"), 1);
    reject_at(b" GET / HTTP/1.1\r\nHost: h\r\n\r\n", bad("bad_method"), 0);
    reject_at(b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", bad("bad_method"), 3);
}

#[test]
fn head_is_reusable() {
    let mut h = Box::new(RequestHead::new());
    let a = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n\r\n";
    let b = b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(
        parse_request(a, &Limits::default(), &mut h),
        Ok(Parsed::Complete)
    );
    assert_eq!(
        parse_request(b, &Limits::default(), &mut h),
        Ok(Parsed::Complete)
    );
    assert_eq!(*h, *accept(b));
    assert_eq!(
        (h.body, h.keep_alive, h.headers().len()),
        (BodyKind::None, true, 1)
    );
}

#[test]
fn error_status_codes() {
    assert_eq!(bad("x").status(), 400);
    assert_eq!(HeadError::UriTooLong.status(), 414);
    assert_eq!(HeadError::HeadersTooLarge.status(), 431);
    assert_eq!(HeadError::UnknownTransferCoding.status(), 501);
    assert_eq!(HeadError::BadResponse("x").status(), 502);
    assert_eq!(bad("bare_lf").to_string(), "bare_lf (400)");
}
