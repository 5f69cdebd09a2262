//! A fixed-capacity list of header fields owned by a context: what stages add to the
//! upstream request (user id from a JWT claim, a risk score), to the client's answer (CORS),
//! or to an answer the gateway makes itself (a redirect's `Location`).
//!
//! Bytes live in an inline array, so filling and clearing it per request never allocates;
//! a push that does not fit is refused and the caller answers 500 rather than dropping a
//! security-relevant field silently.

/// Bytes of names and values one list holds.
pub const HEADER_BYTES: usize = 2048;
/// Fields one list holds.
pub const MAX_FIELDS: usize = 24;

#[derive(Clone)]
pub struct HeaderBuf {
    bytes: [u8; HEADER_BYTES],
    used: usize,
    /// (start, name length, value length) into `bytes`.
    fields: [(u16, u16, u16); MAX_FIELDS],
    n: usize,
}

impl std::fmt::Debug for HeaderBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

impl HeaderBuf {
    pub const fn new() -> HeaderBuf {
        HeaderBuf {
            bytes: [0; HEADER_BYTES],
            used: 0,
            fields: [(0, 0, 0); MAX_FIELDS],
            n: 0,
        }
    }

    pub fn clear(&mut self) {
        self.used = 0;
        self.n = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn len(&self) -> usize {
        self.n
    }

    /// Adds a field; false when it does not fit or would break the message (CR, LF or NUL
    /// in a value, a name that is not a token).
    #[must_use]
    pub fn push(&mut self, name: &[u8], value: &[u8]) -> bool {
        let valid_name =
            !name.is_empty() && name.iter().all(|&b| b.is_ascii_graphic() && b != b':');
        let valid_value = value.iter().all(|&b| b != b'\r' && b != b'\n' && b != 0);
        let need = name.len() + value.len();
        if !valid_name || !valid_value || self.n >= MAX_FIELDS || self.used + need > HEADER_BYTES {
            return false;
        }
        let start = self.used;
        self.bytes[start..start + name.len()].copy_from_slice(name);
        self.bytes[start + name.len()..start + need].copy_from_slice(value);
        self.fields[self.n] = (start as u16, name.len() as u16, value.len() as u16);
        self.n += 1;
        self.used += need;
        true
    }

    /// The fields in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields[..self.n].iter().map(|&(s, nl, vl)| {
            let s = s as usize;
            let nl = nl as usize;
            (
                &self.bytes[s..s + nl],
                &self.bytes[s + nl..s + nl + vl as usize],
            )
        })
    }

    /// Whether a field of this name (any case) is present.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

impl Default for HeaderBuf {
    fn default() -> Self {
        HeaderBuf::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_iterate() {
        let mut h = HeaderBuf::new();
        assert!(h.push(b"X-User-Id", b"42"));
        assert!(h.push(b"X-Risk", b""));
        assert!(!h.push(b"Bad Name", b"x"));
        assert!(!h.push(b"X-Inject", b"a\r\nEvil: 1"));
        let v: Vec<_> = h.iter().collect();
        assert_eq!(
            v,
            vec![(&b"X-User-Id"[..], &b"42"[..]), (&b"X-Risk"[..], &b""[..])]
        );
        assert!(h.contains(b"x-user-id"));
        h.clear();
        assert!(h.is_empty());
    }

    #[test]
    fn bounded() {
        let mut h = HeaderBuf::new();
        let big = [b'a'; HEADER_BYTES];
        assert!(!h.push(b"X", &big));
        for i in 0..MAX_FIELDS {
            assert!(h.push(b"X", &[b'0' + (i % 10) as u8]));
        }
        assert!(!h.push(b"X", b"1"));
    }
}
