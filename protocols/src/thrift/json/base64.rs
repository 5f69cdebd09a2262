//! Base64 for Thrift `binary` in JSON, straight into the output buffer (no temporary):
//! standard alphabet with padding out; standard or URL-safe alphabet, padding optional, in.
//! Small enough that a dependency would not pay for itself.

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends the padded standard encoding of `input` to `out`.
pub(crate) fn encode(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len().div_ceil(3) * 4);
    let mut chunks = input.chunks_exact(3);
    for c in &mut chunks {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        for shift in [18, 12, 6, 0] {
            out.push(STD[(n >> shift) as usize & 63]);
        }
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[
                STD[(n >> 18) as usize & 63],
                STD[(n >> 12) as usize & 63],
                b'=',
                b'=',
            ]);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.extend_from_slice(&[
                STD[(n >> 18) as usize & 63],
                STD[(n >> 12) as usize & 63],
                STD[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

fn sextet(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    }))
}

/// Bytes that decoding `input` yields at most (to check limits before decoding).
pub(crate) fn decoded_len_max(input: &[u8]) -> usize {
    input.len() / 4 * 3 + 3
}

/// Appends the decoding of `input` to `out`. On error `out` may hold a partial decoding;
/// callers drop the whole message then.
pub(crate) fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    let data = match input {
        [rest @ .., b'=', b'='] => rest,
        [rest @ .., b'='] => rest,
        all => all,
    };
    if data.len() % 4 == 1 || (data.len() != input.len() && !input.len().is_multiple_of(4)) {
        return Err("invalid base64 length");
    }
    out.reserve(data.len() / 4 * 3 + 2);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut n = 0u32;
        for &b in c {
            n = (n << 6) | sextet(b).ok_or("invalid base64 character")?;
        }
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    let rest = chunks.remainder();
    let mut n = 0u32;
    for &b in rest {
        n = (n << 6) | sextet(b).ok_or("invalid base64 character")?;
    }
    match rest.len() {
        2 => {
            if n & 0xf != 0 {
                return Err("invalid base64 padding bits");
            }
            out.push((n >> 4) as u8);
        }
        3 => {
            if n & 0x3 != 0 {
                return Err("invalid base64 padding bits");
            }
            out.extend_from_slice(&[(n >> 10) as u8, (n >> 2) as u8]);
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(input: &[u8]) -> String {
        let mut out = Vec::new();
        encode(input, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn dec(input: &str) -> Result<Vec<u8>, &'static str> {
        let mut out = Vec::new();
        decode(input.as_bytes(), &mut out).map(|()| out)
    }

    #[test]
    fn rfc4648_vectors_both_ways() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(enc(plain.as_bytes()), coded);
            assert_eq!(dec(coded).unwrap(), plain.as_bytes());
            assert_eq!(dec(coded.trim_end_matches('=')).unwrap(), plain.as_bytes());
            assert!(decoded_len_max(coded.as_bytes()) >= plain.len());
        }
    }

    #[test]
    fn url_safe_accepted_and_garbage_rejected() {
        assert_eq!(dec("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(dec("+/8=").unwrap(), [0xfb, 0xff]);
        assert!(dec("Zg=").is_err());
        assert!(dec("Z").is_err());
        assert!(dec("Zm9v!").is_err());
        assert!(dec("Zh==").is_err());
        assert!(dec("Zm 9v").is_err());
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(dec(&enc(&all)).unwrap(), all);
    }
}
