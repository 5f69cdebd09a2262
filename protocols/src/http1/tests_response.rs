//! Response-head rules (framing by status and request method, keep-alive, conflicts), each
//! accepted case checked at every byte split.

use super::tests_request::txt;
use super::*;

fn accept_for(input: &[u8], method: Method) -> Box<ResponseHead> {
    let l = Limits::default();
    let mut full = Box::new(ResponseHead::new());
    assert_eq!(
        parse_response(input, &l, method, &mut full),
        Ok(Parsed::Complete)
    );
    assert_eq!(full.head_len, input.len());
    let mut part = Box::new(ResponseHead::new());
    for k in 0..input.len() {
        let r = parse_response(&input[..k], &l, method, &mut part);
        assert_eq!(r, Ok(Parsed::Partial), "split {k}");
    }
    let mut longer = input.to_vec();
    longer.extend_from_slice(b"body\r\n\r\n");
    assert_eq!(
        parse_response(&longer, &l, method, &mut part),
        Ok(Parsed::Complete)
    );
    assert_eq!(*part, *full);
    full
}

fn accept(input: &[u8]) -> Box<ResponseHead> {
    accept_for(input, Method::Get)
}

fn reject(input: &[u8], code: &'static str) {
    let l = Limits::default();
    let mut h = Box::new(ResponseHead::new());
    let err = Err(HeadError::BadResponse(code));
    assert_eq!(parse_response(input, &l, Method::Get, &mut h), err);
    for k in 0..input.len() {
        let r = parse_response(&input[..k], &l, Method::Get, &mut h);
        assert!(r == Ok(Parsed::Partial) || r == err, "split {k}: {r:?}");
    }
}

#[test]
fn content_length_response() {
    let b = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\n";
    let h = accept(b);
    assert_eq!((h.status, h.minor_version), (200, 1));
    assert_eq!(txt(b, h.reason), "OK");
    assert_eq!(h.body, BodyKind::Length(12));
    assert!(h.keep_alive);
    assert_eq!(
        h.find(HeaderKind::ContentType).map(|f| txt(b, f.value)),
        Some("text/plain")
    );
    assert!(h.find_name(b, b"CONTENT-LENGTH").is_some());
}

#[test]
fn chunked_response() {
    let h = accept(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(h.body, BodyKind::Chunked);
    // a coding other than chunked last: the body runs to the close (RFC 9112 §6.3)
    let h = accept(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_eq!((h.body, h.keep_alive), (BodyKind::CloseDelimited, false));
    reject(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "chunked_not_last",
    );
    reject(
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "transfer_encoding_http10",
    );
}

#[test]
fn close_delimited_without_length() {
    let h = accept(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n");
    assert_eq!((h.body, h.keep_alive), (BodyKind::CloseDelimited, false));
}

#[test]
fn bodiless_statuses_and_head() {
    for s in [
        "100 Continue",
        "101 Switching Protocols",
        "204 No Content",
        "304 Not Modified",
    ] {
        let r = format!("HTTP/1.1 {s}\r\nContent-Length: 10\r\n\r\n");
        assert_eq!(accept(r.as_bytes()).body, BodyKind::None, "{s}");
    }
    let b = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    assert_eq!(accept_for(b, Method::Head).body, BodyKind::None);
    let b = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(accept_for(b, Method::Head).body, BodyKind::None);
    let b = b"HTTP/1.1 200 Connection established\r\n\r\n";
    let h = accept_for(b, Method::Connect);
    assert_eq!((h.body, h.keep_alive), (BodyKind::None, true));
}

#[test]
fn interim_responses() {
    let b = b"HTTP/1.1 100 Continue\r\n\r\n";
    let h = accept(b);
    assert_eq!((h.status, h.head_len), (100, b.len()));
    assert!(h.is_interim());
    let b = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let h = accept(b);
    assert!(!h.is_interim());
    assert_eq!(h.upgrade.map(|s| txt(b, s)), Some("websocket"));
    assert!(h.find(HeaderKind::SecWebSocketAccept).is_some());
    // the caller parses the real answer after the interim head
    let mut two = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
    two.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let mut h = Box::new(ResponseHead::new());
    let l = Limits::default();
    assert_eq!(
        parse_response(&two, &l, Method::Post, &mut h),
        Ok(Parsed::Complete)
    );
    let rest = &two[h.head_len..];
    assert_eq!(
        parse_response(rest, &l, Method::Post, &mut h),
        Ok(Parsed::Complete)
    );
    assert_eq!((h.status, h.body), (200, BodyKind::Length(0)));
}

#[test]
fn length_conflicts() {
    reject(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "content_length_with_transfer_encoding",
    );
    reject(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "conflicting_content_length",
    );
    reject(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
        "conflicting_content_length",
    );
    reject(
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "bad_content_length",
    );
    // identical duplicates are one length (RFC 9110 §8.6)
    let h = accept(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\n");
    assert_eq!(h.body, BodyKind::Length(3));
}

#[test]
fn keep_alive_rules() {
    let h = accept(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert!(!h.keep_alive);
    let h = accept(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert!(!h.keep_alive);
    let h = accept(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
    assert!(h.keep_alive);
    let h = accept(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n");
    assert!(!h.keep_alive, "close-delimited body forces a close");
}

#[test]
fn status_line() {
    let b = b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n";
    let h = accept(b);
    assert_eq!((h.status, h.reason.len), (404, 0));
    let b = b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n";
    assert!(accept(b).reason.is_empty());
    let b = b"HTTP/1.1 200 Tr\xe8s bien\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(accept(b).reason.get(b), b"Tr\xe8s bien");
    reject(b"HTTP/1.1 20 OK\r\n\r\n", "bad_status");
    reject(b"HTTP/1.1 2000 OK\r\n\r\n", "bad_status");
    reject(b"HTTP/1.1 099 OK\r\n\r\n", "bad_status");
    reject(b"HTTP/2.0 200 OK\r\n\r\n", "bad_version");
    reject(b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "bare_lf");
    reject(b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "obs_fold");
    reject(b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n", "space_before_colon");
    reject(b"HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n", "bad_header_value");
}

#[test]
fn response_limits() {
    let l = Limits {
        max_request_line: 10,
        max_head_bytes: 64,
        max_headers: 1,
    };
    let mut h = Box::new(ResponseHead::new());
    let r = parse_response(b"HTTP/1.1 200 OK\r\n\r\n", &l, Method::Get, &mut h);
    assert_eq!(r, Err(HeadError::BadResponse("status_line_too_long")));
    let l = Limits {
        max_request_line: 100,
        ..l
    };
    let r = parse_response(
        b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n",
        &l,
        Method::Get,
        &mut h,
    );
    assert_eq!(r, Err(HeadError::BadResponse("too_many_headers")));
    let big = [b'x'; 80];
    let mut b = b"HTTP/1.1 200 OK\r\nA: ".to_vec();
    b.extend_from_slice(&big);
    let r = parse_response(&b, &l, Method::Get, &mut h);
    assert_eq!(r, Err(HeadError::BadResponse("head_too_large")));
}
