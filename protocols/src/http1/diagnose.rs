//! Error-path only: turns scan faults and httparse's coarse errors into the codec's error kinds
//! with a precise reason code ("space_before_colon" rather than "bad header name"), so logs and
//! metrics say what a peer got wrong. Runs once per refused head, never on the happy path.

use memchr::memchr;

use super::header::is_tchar;
use super::scan::ScanError;
use super::types::HeadError;

pub(crate) fn scan_error_request(e: ScanError) -> HeadError {
    match e {
        ScanError::Bad(r) => HeadError::BadRequest(r),
        ScanError::StartLineTooLong => HeadError::UriTooLong,
        ScanError::HeadTooLarge => HeadError::HeadersTooLarge,
    }
}

pub(crate) fn scan_error_response(e: ScanError) -> HeadError {
    HeadError::BadResponse(match e {
        ScanError::Bad(r) => r,
        ScanError::StartLineTooLong => "status_line_too_long",
        ScanError::HeadTooLarge => "head_too_large",
    })
}

/// `buf[start..]` is the request line onward.
pub(crate) fn httparse_request_error(e: httparse::Error, buf: &[u8], start: usize) -> HeadError {
    let head = buf.get(start..).unwrap_or(&[]);
    HeadError::BadRequest(match e {
        httparse::Error::TooManyHeaders => return HeadError::HeadersTooLarge,
        httparse::Error::Token => {
            let line = head.split(|&b| b == b'\r').next().unwrap_or(&[]);
            let method = line.split(|&b| b == b' ').next().unwrap_or(&[]);
            if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
                "bad_method"
            } else {
                "bad_target"
            }
        }
        httparse::Error::Version => "bad_version",
        httparse::Error::HeaderName => header_name_fault(head),
        httparse::Error::HeaderValue => "bad_header_value",
        httparse::Error::NewLine | httparse::Error::Status => "bad_request_line",
    })
}

/// `buf[start..]` is the status line onward.
pub(crate) fn httparse_response_error(e: httparse::Error, buf: &[u8], start: usize) -> HeadError {
    let head = buf.get(start..).unwrap_or(&[]);
    HeadError::BadResponse(match e {
        httparse::Error::TooManyHeaders => "too_many_headers",
        httparse::Error::Version => "bad_version",
        httparse::Error::Status => "bad_status",
        httparse::Error::HeaderName => header_name_fault(head),
        httparse::Error::HeaderValue => "bad_header_value",
        httparse::Error::Token | httparse::Error::NewLine => "bad_status_line",
    })
}

/// Finds the first field line whose name is faulty and says how. Lines end in CRLF here
/// (the scan has refused anything else before httparse ran).
fn header_name_fault(head: &[u8]) -> &'static str {
    let mut rest = match memchr(b'\n', head) {
        Some(i) => head.get(i + 1..).unwrap_or(&[]),
        None => return "bad_header_name",
    };
    while !rest.is_empty() {
        let p = rest.iter().position(|&b| !is_tchar(b));
        match p.and_then(|p| rest.get(p).map(|&b| (p, b))) {
            Some((0, b':')) => return "empty_header_name",
            Some((_, b':')) => {}
            Some((_, b' ' | b'\t')) => return "space_before_colon",
            Some((_, b'\r')) | None => {}
            Some(_) => return "bad_header_name",
        }
        rest = match memchr(b'\n', rest) {
            Some(i) => rest.get(i + 1..).unwrap_or(&[]),
            None => break,
        };
    }
    "bad_header_name"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_name_faults() {
        assert_eq!(
            header_name_fault(b"GET / HTTP/1.1\r\nA: b\r\nX : y\r\n"),
            "space_before_colon"
        );
        assert_eq!(
            header_name_fault(b"GET / HTTP/1.1\r\n: y\r\n"),
            "empty_header_name"
        );
        assert_eq!(
            header_name_fault(b"GET / HTTP/1.1\r\nA\x01B: y\r\n"),
            "bad_header_name"
        );
        assert_eq!(header_name_fault(b"GET"), "bad_header_name");
    }
}
