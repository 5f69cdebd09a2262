//! Pre-scan of a message head: finds where the head ends and enforces what httparse is lenient
//! about or does not know. httparse accepts bare LF line ends and any number of leading empty
//! lines; both are request-smuggling material, so one memchr pass over the head rejects them,
//! along with obs-fold, and applies the size limits on partial input so an unfinished head is
//! refused as soon as it crosses a limit.

use memchr::memchr2;

use super::types::Limits;

/// Where the head is, when the scan found no fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Not finished; the start line begins at `start` (after at most one leading CRLF).
    Partial { start: usize },
    /// The head is `buf[..head_len]`, start line at `start`, ending with CRLFCRLF.
    Complete { start: usize, head_len: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// A framing fault, with its reason code.
    Bad(&'static str),
    /// The start line is longer than `max_request_line`.
    StartLineTooLong,
    /// No end of head within `max_head_bytes`.
    HeadTooLarge,
}

/// Scans `buf` from its beginning. Faults are reported as soon as the offending byte is in
/// `buf`; a head ending exactly at the limit is accepted.
pub(crate) fn scan_head(buf: &[u8], limits: &Limits) -> Result<Scan, ScanError> {
    let cap = limits.head_cap();
    let window = buf.get(..cap).unwrap_or(buf);
    // With `cap` bytes present and no end of head among them, the head can only be longer.
    let incomplete = |first_line: Option<usize>, start: usize| {
        if let Some(line_start) = first_line {
            let mut content = window.len().saturating_sub(line_start);
            if window.last() == Some(&b'\r') {
                content = content.saturating_sub(1);
            }
            if content > limits.max_request_line {
                return Err(ScanError::StartLineTooLong);
            }
        }
        if buf.len() >= cap {
            return Err(ScanError::HeadTooLarge);
        }
        Ok(Scan::Partial { start })
    };

    // RFC 9112 §2.2: ignore at least one empty line before the start line; we ignore exactly
    // one, since more are no client's habit, only a probe's.
    let start = match (window.first(), window.get(1)) {
        (Some(b'\r'), Some(b'\n')) => 2,
        (Some(b'\r'), None) => return incomplete(None, 0),
        (Some(b'\r'), Some(_)) => return Err(ScanError::Bad("bare_cr")),
        (Some(b'\n'), _) => return Err(ScanError::Bad("bare_lf")),
        _ => 0,
    };
    if start == 2 && matches!(window.get(2), Some(b'\r') | Some(b'\n')) {
        return Err(ScanError::Bad("leading_empty_lines"));
    }

    let mut line_start = start;
    let mut first_line = true;
    let mut pos = start;
    while let Some(i) = memchr2(b'\r', b'\n', window.get(pos..).unwrap_or(&[])) {
        let idx = pos + i;
        if window.get(idx) == Some(&b'\n') {
            return Err(ScanError::Bad("bare_lf"));
        }
        match window.get(idx + 1) {
            Some(b'\n') => {}
            Some(_) => return Err(ScanError::Bad("bare_cr")),
            None => break,
        }
        if first_line {
            if idx - line_start > limits.max_request_line {
                return Err(ScanError::StartLineTooLong);
            }
            if idx == line_start {
                return Err(ScanError::Bad("empty_start_line"));
            }
            first_line = false;
        } else if idx == line_start {
            return Ok(Scan::Complete {
                start,
                head_len: idx + 2,
            });
        }
        let after_start_line = line_start == start;
        line_start = idx + 2;
        pos = line_start;
        if let Some(b' ' | b'\t') = window.get(line_start) {
            // RFC 9112 §2.2 and §5.2: whitespace before the first field could hide a line
            // from other parsers; a continuation line (obs-fold) is refused likewise.
            return Err(ScanError::Bad(if after_start_line {
                "space_before_first_header"
            } else {
                "obs_fold"
            }));
        }
    }
    incomplete(first_line.then_some(line_start), start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(line: usize, head: usize) -> Limits {
        Limits {
            max_request_line: line,
            max_head_bytes: head,
            max_headers: 10,
        }
    }

    #[test]
    fn finds_end_of_head() {
        let buf = b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody";
        assert_eq!(
            scan_head(buf, &Limits::default()),
            Ok(Scan::Complete {
                start: 0,
                head_len: 24
            })
        );
        assert_eq!(
            scan_head(&buf[..23], &Limits::default()),
            Ok(Scan::Partial { start: 0 })
        );
    }

    #[test]
    fn one_leading_crlf_only() {
        let l = Limits::default();
        assert_eq!(
            scan_head(b"\r\nGET / HTTP/1.1\r\n\r\n", &l),
            Ok(Scan::Complete {
                start: 2,
                head_len: 20
            })
        );
        assert_eq!(scan_head(b"\r", &l), Ok(Scan::Partial { start: 0 }));
        assert_eq!(scan_head(b"\r\n", &l), Ok(Scan::Partial { start: 2 }));
        assert_eq!(
            scan_head(b"\r\n\r", &l),
            Err(ScanError::Bad("leading_empty_lines"))
        );
        assert_eq!(scan_head(b"\n", &l), Err(ScanError::Bad("bare_lf")));
        assert_eq!(scan_head(b"\rX", &l), Err(ScanError::Bad("bare_cr")));
    }

    #[test]
    fn bare_line_ends_and_folds() {
        let l = Limits::default();
        assert_eq!(
            scan_head(b"GET / HTTP/1.1\nHost: a\r\n\r\n", &l),
            Err(ScanError::Bad("bare_lf"))
        );
        assert_eq!(
            scan_head(b"GET / HTTP/1.1\r\nHost: a\rb", &l),
            Err(ScanError::Bad("bare_cr"))
        );
        assert_eq!(
            scan_head(b"GET / HTTP/1.1\r\nA: b\r\n c", &l),
            Err(ScanError::Bad("obs_fold"))
        );
        assert_eq!(
            scan_head(b"GET / HTTP/1.1\r\n\tA: b", &l),
            Err(ScanError::Bad("space_before_first_header"))
        );
    }

    #[test]
    fn start_line_limit_on_partial_and_complete_input() {
        let l = lim(5, 100);
        assert_eq!(scan_head(b"ABCDE\r", &l), Ok(Scan::Partial { start: 0 }));
        assert_eq!(scan_head(b"ABCDEF", &l), Err(ScanError::StartLineTooLong));
        assert_eq!(
            scan_head(b"ABCDEF\r\n\r\n", &l),
            Err(ScanError::StartLineTooLong)
        );
        assert_eq!(
            scan_head(b"ABCDE\r\n\r\n", &l),
            Ok(Scan::Complete {
                start: 0,
                head_len: 9
            })
        );
    }

    #[test]
    fn head_limit_is_inclusive() {
        let buf = b"ABC\r\nD: e\r\n\r\n"; // 13 bytes
        assert!(matches!(
            scan_head(buf, &lim(100, 13)),
            Ok(Scan::Complete { head_len: 13, .. })
        ));
        assert_eq!(scan_head(buf, &lim(100, 12)), Err(ScanError::HeadTooLarge));
        assert_eq!(
            scan_head(&buf[..12], &lim(100, 12)),
            Err(ScanError::HeadTooLarge)
        );
        assert_eq!(
            scan_head(&buf[..11], &lim(100, 12)),
            Ok(Scan::Partial { start: 0 })
        );
    }
}
