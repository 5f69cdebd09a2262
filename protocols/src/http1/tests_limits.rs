//! Request size limits (request line, head bytes, field count): exact limits accepted at every
//! split, one byte or field more refused, also while the head is still arriving.

use super::tests_request::{accept_with, reject_with};
use super::*;

#[test]
fn request_line_limit() {
    let l = Limits {
        max_request_line: 20,
        ..Limits::default()
    };
    let ok = b"GET /aaaaaa HTTP/1.1\r\nHost: h\r\n\r\n"; // line is exactly 20 bytes
    accept_with(ok, &l);
    let long = b"GET /aaaaaaa HTTP/1.1\r\nHost: h\r\n\r\n";
    reject_with(long, &l, HeadError::UriTooLong);
    let mut h = Box::new(RequestHead::new());
    // refused while the line is still arriving, once it is one byte too long
    assert_eq!(
        parse_request(&long[..21], &l, &mut h),
        Err(HeadError::UriTooLong)
    );
    assert_eq!(parse_request(&long[..20], &l, &mut h), Ok(Parsed::Partial));
}

#[test]
fn head_size_limit() {
    let b = b"GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789\r\n\r\n";
    let l = Limits {
        max_head_bytes: b.len(),
        ..Limits::default()
    };
    accept_with(b, &l);
    let l = Limits {
        max_head_bytes: b.len() - 1,
        ..Limits::default()
    };
    reject_with(b, &l, HeadError::HeadersTooLarge);
    let mut h = Box::new(RequestHead::new());
    assert_eq!(
        parse_request(&b[..b.len() - 1], &l, &mut h),
        Err(HeadError::HeadersTooLarge)
    );
}

#[test]
fn header_count_limit() {
    let l = Limits {
        max_headers: 3,
        ..Limits::default()
    };
    let ok = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    assert_eq!(accept_with(ok, &l).headers().len(), 3);
    let over = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    reject_with(over, &l, HeadError::HeadersTooLarge);
    let l = Limits {
        max_headers: 100_000,
        ..Limits::default()
    };
    let many: String = (0..MAX_HEADERS_CAP)
        .map(|i| format!("X{i}: v\r\n"))
        .collect();
    let req = format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n");
    let mut h = Box::new(RequestHead::new());
    assert_eq!(
        parse_request(req.as_bytes(), &l, &mut h),
        Err(HeadError::HeadersTooLarge)
    );
}
