//! A deterministic byte stream for large bodies: byte `i` of every generated body is
//! `block[i % PERIOD]`, so a sender can produce gigabytes without holding them and a
//! receiver can verify every byte it gets, in any split, without holding them either.
//!
//! The period is prime so it never lines up with buffer or chunk sizes: a proxy that drops,
//! repeats or reorders a buffer's worth of bytes shows up as a mismatch.

use std::sync::OnceLock;

/// Length of the repeating block (a prime).
pub const PERIOD: usize = 65_521;

/// The block, stored twice over so any run of up to `PERIOD` bytes is one contiguous slice.
fn block() -> &'static [u8] {
    static BLOCK: OnceLock<Vec<u8>> = OnceLock::new();
    BLOCK.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut v = Vec::with_capacity(2 * PERIOD);
        for _ in 0..PERIOD {
            // xorshift64: cheap, and not a pattern any codec would compress or special-case.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push((x >> 32) as u8);
        }
        v.extend_from_within(..PERIOD);
        v
    })
}

/// The pattern bytes for positions `pos .. pos + len` where `len <= PERIOD`.
fn slice(pos: u64, len: usize) -> &'static [u8] {
    let start = (pos % PERIOD as u64) as usize;
    &block()[start..start + len]
}

/// Fills `out` with the pattern bytes starting at stream position `pos`.
pub fn fill(pos: u64, out: &mut [u8]) {
    let mut p = pos;
    for piece in out.chunks_mut(PERIOD) {
        piece.copy_from_slice(slice(p, piece.len()));
        p += piece.len() as u64;
    }
}

/// The first `len` bytes of the pattern, in memory (for small bodies).
pub fn bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill(0, &mut v);
    v
}

/// Checks a stream against the pattern as it goes by.
#[derive(Debug, Default, Clone)]
pub struct Verifier {
    /// Bytes seen so far.
    pub len: u64,
    /// Position of the first byte that did not match, if any.
    pub first_bad: Option<u64>,
}

impl Verifier {
    pub fn new() -> Verifier {
        Verifier::default()
    }

    pub fn feed(&mut self, data: &[u8]) {
        if self.first_bad.is_none() {
            let mut p = self.len;
            for piece in data.chunks(PERIOD) {
                if piece != slice(p, piece.len()) {
                    let at = piece
                        .iter()
                        .zip(slice(p, piece.len()))
                        .position(|(a, b)| a != b)
                        .unwrap_or(0);
                    self.first_bad = Some(p + at as u64);
                    break;
                }
                p += piece.len() as u64;
            }
        }
        self.len += data.len() as u64;
    }

    /// True when every byte seen matched.
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_split_verifies() {
        let data = bytes(3 * PERIOD + 17);
        for split in [1usize, 7, 4096, PERIOD, PERIOD + 1] {
            let mut v = Verifier::new();
            for piece in data.chunks(split) {
                v.feed(piece);
            }
            assert!(v.ok(), "split {split}");
            assert_eq!(v.len, data.len() as u64);
        }
    }

    #[test]
    fn a_changed_byte_is_found() {
        let mut data = bytes(2 * PERIOD);
        data[PERIOD + 5] ^= 1;
        let mut v = Verifier::new();
        v.feed(&data[..100]);
        v.feed(&data[100..]);
        assert_eq!(v.first_bad, Some(PERIOD as u64 + 5));
    }

    #[test]
    fn fill_matches_bytes_at_an_offset() {
        let all = bytes(PERIOD + 300);
        let mut part = vec![0; 300];
        fill(PERIOD as u64, &mut part);
        assert_eq!(&part[..], &all[PERIOD..]);
    }
}
