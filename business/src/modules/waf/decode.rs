//! Percent-decoding into a caller-provided buffer, shared by the WAF (which matches raw and
//! decoded forms) and the params engine (which validates decoded query and path values).
//!
//! Decoding never makes input longer, so a buffer as long as the input always suffices and no
//! allocation is needed. Malformed escapes (`%zz`, a trailing `%4`) are kept as they are,
//! which is what most servers behind us do too.

/// Decodes `src` into the front of `out` and returns the decoded length: `%XX` becomes the
/// byte `XX`, and `+` becomes a space when `plus_as_space` (query strings and form bodies).
/// Stops early if `out` is shorter than the decoded text (callers size it to `src.len()`).
pub fn percent_decode(src: &[u8], plus_as_space: bool, out: &mut [u8]) -> usize {
    let mut i = 0;
    let mut n = 0;
    while let Some(&b) = src.get(i) {
        let (byte, used) = match b {
            b'%' => match (src.get(i + 1).and_then(hex), src.get(i + 2).and_then(hex)) {
                (Some(h), Some(l)) => (h << 4 | l, 3),
                _ => (b'%', 1),
            },
            b'+' if plus_as_space => (b' ', 1),
            _ => (b, 1),
        };
        let Some(slot) = out.get_mut(n) else { break };
        *slot = byte;
        n += 1;
        i += used;
    }
    n
}

/// [`percent_decode`] of `buf[..len]` into itself, for a further decoding pass: the write
/// position never passes the read position. Returns the new length.
pub fn percent_decode_in_place(buf: &mut [u8], len: usize, plus_as_space: bool) -> usize {
    let len = len.min(buf.len());
    let mut i = 0;
    let mut n = 0;
    while let Some(&b) = buf.get(i).filter(|_| i < len) {
        let (byte, used) = match b {
            b'%' if i + 2 < len => {
                match (buf.get(i + 1).and_then(hex), buf.get(i + 2).and_then(hex)) {
                    (Some(h), Some(l)) => (h << 4 | l, 3),
                    _ => (b'%', 1),
                }
            }
            b'+' if plus_as_space => (b' ', 1),
            _ => (b, 1),
        };
        if let Some(slot) = buf.get_mut(n) {
            *slot = byte;
        }
        n += 1;
        i += used;
    }
    n
}

/// True when [`percent_decode`] would change `src` (lets callers skip a second pass).
pub fn needs_decoding(src: &[u8], plus_as_space: bool) -> bool {
    src.iter()
        .any(|&b| b == b'%' || (plus_as_space && b == b'+'))
}

fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str, plus: bool) -> Vec<u8> {
        let mut buf = vec![0; s.len()];
        let n = percent_decode(s.as_bytes(), plus, &mut buf);
        buf.truncate(n);
        buf
    }

    #[test]
    fn decodes_escapes_and_plus() {
        assert_eq!(dec("a%20b%2Fc%2fd", false), b"a b/c/d");
        assert_eq!(dec("a+b", true), b"a b");
        assert_eq!(dec("a+b", false), b"a+b");
        assert_eq!(dec("%252e", false), b"%2e");
        assert_eq!(dec("%e2%82%ac", false), "€".as_bytes());
        assert_eq!(dec("%00", false), b"\0");
    }

    #[test]
    fn malformed_escapes_stay() {
        assert_eq!(dec("100%", false), b"100%");
        assert_eq!(dec("%4", false), b"%4");
        assert_eq!(dec("%zz%41", false), b"%zzA");
        assert_eq!(dec("%%41", false), b"%A");
    }

    #[test]
    fn short_buffer_stops_without_panicking() {
        let mut buf = [0u8; 2];
        assert_eq!(percent_decode(b"abcdef", false, &mut buf), 2);
        assert_eq!(&buf, b"ab");
        assert_eq!(percent_decode(b"", false, &mut buf), 0);
    }

    #[test]
    fn in_place_pass_matches_the_copying_one() {
        for s in [
            "%252e%252e%252f",
            "a%2Bb+c",
            "100%",
            "%4",
            "%41%4",
            "plain",
            "%%41",
        ] {
            let mut buf = s.as_bytes().to_vec();
            let n = percent_decode_in_place(&mut buf, s.len(), true);
            assert_eq!(&buf[..n], &dec(s, true)[..], "{s}");
        }
        let mut twice = b"%252e%252e%252f".to_vec();
        let n = percent_decode_in_place(&mut twice, 15, false);
        let n = percent_decode_in_place(&mut twice, n, false);
        assert_eq!(&twice[..n], b"../");
    }

    #[test]
    fn needs_decoding_spots_work() {
        assert!(needs_decoding(b"a%20", false));
        assert!(needs_decoding(b"a+b", true));
        assert!(!needs_decoding(b"a+b", false));
        assert!(!needs_decoding(b"plain", true));
    }
}
