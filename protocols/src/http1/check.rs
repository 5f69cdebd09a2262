//! Property checks shared by the fuzz targets (`fuzz/`) and the seed regression test, so both
//! exercise exactly the same properties. They panic when a property is violated, which is how
//! a fuzzer learns of it: harness code, not for the data plane (hence `doc(hidden)`).

use super::{
    parse_request, parse_response, ChunkError, ChunkedDecoder, Limits, Method, Parsed, RequestHead,
    ResponseHead, Span,
};

/// Limits small enough for fuzz inputs to reach every limit path.
pub fn small_limits() -> Limits {
    Limits {
        max_request_line: 64,
        max_head_bytes: 256,
        max_headers: 4,
    }
}

fn within(span: Span, head_len: usize) {
    assert!(
        span.end() <= head_len,
        "span {span:?} beyond head {head_len}"
    );
}

/// Parsing `data` never panics; a Complete head parses the same from any longer prefix and
/// every shorter prefix is Partial; prefixes of partial input stay partial; and no prefix of
/// refused input is accepted. `split` picks the prefix (taken modulo `data.len() + 1`).
pub fn request_head(data: &[u8], split: usize) {
    for limits in [Limits::default(), small_limits()] {
        let mut full = RequestHead::new();
        let r = parse_request(data, &limits, &mut full);
        let k = split % (data.len() + 1);
        let prefix = data.get(..k).unwrap_or(data);
        let mut part = RequestHead::new();
        let rp = parse_request(prefix, &limits, &mut part);
        match r {
            Ok(Parsed::Complete) => {
                let h = full.head_len;
                assert!(h > 0 && h <= data.len());
                if k < h {
                    assert_eq!(rp, Ok(Parsed::Partial), "prefix {k} of head {h}");
                } else {
                    assert_eq!(rp, Ok(Parsed::Complete));
                    assert_eq!(part, full);
                }
                for s in [full.method_span, full.target, full.path] {
                    within(s, h);
                }
                for s in [full.query, full.host, full.upgrade].into_iter().flatten() {
                    within(s, h);
                }
                for f in full.headers() {
                    within(f.name, h);
                    within(f.value, h);
                    assert!(full.find_name(data, f.name.get(data)).is_some());
                }
            }
            Ok(Parsed::Partial) => assert_eq!(rp, Ok(Parsed::Partial), "prefix {k}"),
            Err(_) => assert_ne!(rp, Ok(Parsed::Complete), "prefix {k} of refused input"),
        }
    }
}

/// Same properties as [`request_head`] for responses; `split` also picks the request method.
pub fn response_head(data: &[u8], split: usize) {
    let method = [Method::Get, Method::Head, Method::Connect][split % 3];
    for limits in [Limits::default(), small_limits()] {
        let mut full = ResponseHead::new();
        let r = parse_response(data, &limits, method, &mut full);
        let k = split % (data.len() + 1);
        let prefix = data.get(..k).unwrap_or(data);
        let mut part = ResponseHead::new();
        let rp = parse_response(prefix, &limits, method, &mut part);
        match r {
            Ok(Parsed::Complete) => {
                let h = full.head_len;
                assert!(h > 0 && h <= data.len());
                if k < h {
                    assert_eq!(rp, Ok(Parsed::Partial), "prefix {k} of head {h}");
                } else {
                    assert_eq!(rp, Ok(Parsed::Complete));
                    assert_eq!(part, full);
                }
                within(full.reason, h);
                for f in full.headers() {
                    within(f.name, h);
                    within(f.value, h);
                }
            }
            Ok(Parsed::Partial) => assert_eq!(rp, Ok(Parsed::Partial), "prefix {k}"),
            Err(_) => assert_ne!(rp, Ok(Parsed::Complete), "prefix {k} of refused input"),
        }
    }
}

/// What a decoder made of a whole input: bytes consumed, payload, done; or the error.
pub type ChunkOutcome = Result<(usize, Vec<u8>, bool), ChunkError>;

/// Feeds `data` in pieces whose sizes come from `sizes` (each at least 1), calling `feed`
/// until each piece is consumed or the body is done.
pub fn decode_in_pieces(
    dec: &mut ChunkedDecoder,
    data: &[u8],
    mut sizes: impl FnMut() -> usize,
) -> ChunkOutcome {
    let mut off = 0;
    let mut payload = Vec::new();
    while off < data.len() && !dec.is_done() {
        let end = off.saturating_add(sizes().max(1)).min(data.len());
        let mut piece = data.get(off..end).unwrap_or(&[]);
        while !piece.is_empty() {
            let p = dec.feed(piece)?;
            assert!(p.consumed <= piece.len());
            assert!(p.data.end <= p.consumed && p.data.start <= p.data.end);
            assert!(p.consumed > 0 || p.done, "no progress on non-empty input");
            payload.extend_from_slice(piece.get(p.data.clone()).unwrap_or(&[]));
            off += p.consumed;
            piece = piece.get(p.consumed..).unwrap_or(&[]);
            if p.done {
                assert!(dec.is_done());
                return Ok((off, payload, true));
            }
        }
    }
    Ok((off, payload, dec.is_done()))
}

/// Feeding `data` whole and in pieces (sizes from a xorshift seeded with `seed`) gives the
/// same consumed count, payload, end and error, under default and small limits.
pub fn chunked(data: &[u8], seed: u64) {
    for (line, trailer) in [(4096, 16384), (8, 32)] {
        let whole = decode_in_pieces(&mut ChunkedDecoder::new(line, trailer), data, || usize::MAX);
        let mut x = seed | 1;
        let pieces = decode_in_pieces(&mut ChunkedDecoder::new(line, trailer), data, || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 16) as usize + 1
        });
        assert_eq!(whole, pieces, "seed {seed}");
        let bytes = decode_in_pieces(&mut ChunkedDecoder::new(line, trailer), data, || 1);
        assert_eq!(whole, bytes, "byte by byte");
    }
}
