//! Wire helpers of the crypto_box engines: base64 decoding and encoding *in place* in the
//! caller's body buffer, so a 64 KiB body is never copied to a second buffer, and the AES-GCM
//! additional data that binds a message to its app and direction.
//!
//! Both directions go through a small stack chunk: decoding writes behind the read position
//! (3 bytes out per 4 in), encoding walks from the end (4 out per 3 in lands after the input),
//! so neither overwrites bytes it has not read yet.

use base64::Engine as _;

use crate::modules::key_auth::common::B64_STD;

/// Base64 characters per decode step (a multiple of 4) and raw bytes per encode step (3/4 of it).
const CHUNK_CHARS: usize = 1024;
const CHUNK_RAW: usize = CHUNK_CHARS / 4 * 3;

/// Longest app id: it is copied into a fixed AAD buffer.
pub const MAX_APP_ID: usize = 128;

/// Decodes standard base64 (padding optional, no whitespace) in place; returns the decoded
/// length, or `None` when the text is not valid base64.
pub fn b64_decode_in_place(buf: &mut [u8]) -> Option<usize> {
    let len = buf.len();
    let mut tmp = [0u8; CHUNK_CHARS];
    let (mut r, mut w) = (0, 0);
    while r < len {
        let n = (len - r).min(CHUNK_CHARS);
        let chunk = tmp.get_mut(..n)?;
        chunk.copy_from_slice(buf.get(r..r + n)?);
        // Padding may only end the whole text; the crate sees one chunk at a time.
        if r + n < len && chunk.contains(&b'=') {
            return None;
        }
        // w <= r, and 3/4 of n bytes written from w end before r + n: only read bytes change.
        w += B64_STD.decode_slice(&*chunk, buf.get_mut(w..)?).ok()?;
        r += n;
    }
    Some(w)
}

/// Length of the padded base64 text of `raw` bytes.
pub fn b64_len(raw: usize) -> usize {
    raw.div_ceil(3) * 4
}

/// Encodes `buf[..raw]` as padded standard base64 into `buf[..b64_len(raw)]`, in place; `None`
/// when `buf` is too short.
pub fn b64_encode_in_place(buf: &mut [u8], raw: usize) -> Option<usize> {
    let out_len = b64_len(raw);
    if buf.len() < out_len || raw == 0 {
        return (raw == 0).then_some(0);
    }
    let mut tmp = [0u8; CHUNK_RAW];
    // Last chunk first; chunk k's text starts at 4/3 of its input offset, never before it.
    let mut start = (raw - 1) / CHUNK_RAW * CHUNK_RAW;
    loop {
        let end = (start + CHUNK_RAW).min(raw);
        let chunk = tmp.get_mut(..end - start)?;
        chunk.copy_from_slice(buf.get(start..end)?);
        let out_at = start / 3 * 4;
        B64_STD.encode_slice(&*chunk, buf.get_mut(out_at..)?).ok()?;
        if start == 0 {
            return Some(out_len);
        }
        start -= CHUNK_RAW;
    }
}

/// Which way a message travels; part of the AAD so a response cannot be replayed as a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// AAD = `"req:"` or `"resp:"` followed by the app id, in a fixed buffer.
pub struct Aad {
    buf: [u8; 5 + MAX_APP_ID],
    len: usize,
}

impl Aad {
    pub fn new(direction: Direction, app_id: &[u8]) -> Option<Self> {
        let prefix: &[u8] = match direction {
            Direction::Request => b"req:",
            Direction::Response => b"resp:",
        };
        let mut aad = Aad {
            buf: [0; 5 + MAX_APP_ID],
            len: prefix.len() + app_id.len(),
        };
        aad.buf.get_mut(..prefix.len())?.copy_from_slice(prefix);
        aad.buf
            .get_mut(prefix.len()..aad.len)?
            .copy_from_slice(app_id);
        Some(aad)
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_round_trips_at_every_chunk_edge() {
        for raw in [0, 1, 2, 3, 767, 768, 769, 1535, 1536, 1537, 5000, 65_536] {
            let data: Vec<u8> = (0..raw).map(|i| (i * 7 + 3) as u8).collect();
            let mut buf = data.clone();
            buf.resize(b64_len(raw), 0);
            let n = b64_encode_in_place(&mut buf, raw).unwrap();
            assert_eq!(&buf[..n], B64_STD.encode(&data).as_bytes(), "encode {raw}");
            let m = b64_decode_in_place(&mut buf[..n]).unwrap();
            assert_eq!(&buf[..m], &data[..], "decode {raw}");
        }
    }

    #[test]
    fn decode_refuses_bad_text() {
        let mut inner_pad = B64_STD.encode([1u8; 700]).into_bytes(); // 936 chars, padded
        inner_pad.extend(B64_STD.encode([2u8; 300]).into_bytes());
        assert!(
            b64_decode_in_place(&mut inner_pad).is_none(),
            "padding mid-way"
        );
        assert!(b64_decode_in_place(&mut b"AAA*".to_vec()).is_none());
        assert!(b64_decode_in_place(&mut b"AAAA\r\nAAAA".to_vec()).is_none());
        assert_eq!(b64_decode_in_place(&mut b"AQID".to_vec()), Some(3));
        assert_eq!(
            b64_decode_in_place(&mut b"AQI".to_vec()),
            Some(2),
            "padding optional"
        );
    }

    #[test]
    fn encode_needs_room_and_aad_is_bounded() {
        let mut small = [0u8; 5];
        assert!(b64_encode_in_place(&mut small, 4).is_none());
        let aad = Aad::new(Direction::Response, b"app1").unwrap();
        assert_eq!(aad.as_bytes(), b"resp:app1");
        assert!(Aad::new(Direction::Request, &[b'a'; MAX_APP_ID + 2]).is_none());
    }
}
