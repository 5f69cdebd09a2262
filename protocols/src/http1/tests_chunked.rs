//! Chunked decoder: payload, extensions, trailers and every error, each fed whole, byte by
//! byte and split at every boundary, with the same outcome required each way.

use super::check::{decode_in_pieces, ChunkOutcome};
use super::*;

fn whole(input: &[u8]) -> ChunkOutcome {
    decode_in_pieces(&mut ChunkedDecoder::default(), input, || usize::MAX)
}

/// The outcome of `input` fed whole, checked equal for byte-by-byte feeding and for every
/// split into two pieces.
fn decode(input: &[u8]) -> ChunkOutcome {
    let one = whole(input);
    let bytes = decode_in_pieces(&mut ChunkedDecoder::default(), input, || 1);
    assert_eq!(bytes, one, "byte by byte");
    for k in 1..input.len() {
        let mut first = true;
        let mut dec = ChunkedDecoder::default();
        let two = decode_in_pieces(&mut dec, input, || {
            if std::mem::take(&mut first) {
                k
            } else {
                usize::MAX
            }
        });
        assert_eq!(two, one, "split {k}");
    }
    one
}

fn ok(input: &[u8], payload: &[u8], consumed: usize) {
    assert_eq!(decode(input), Ok((consumed, payload.to_vec(), true)));
}

#[test]
fn simple_body() {
    ok(b"5\r\nhello\r\n0\r\n\r\n", b"hello", 15);
    ok(b"0\r\n\r\n", b"", 5);
    ok(
        b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n",
        b"abc0123456789",
        28,
    );
    ok(
        b"a\r\n0123456789\r\nF\r\n0123456789abcde\r\n0\r\n\r\n",
        b"01234567890123456789abcde",
        40,
    );
    ok(b"0005\r\nhello\r\n000\r\n\r\n", b"hello", 20);
}

#[test]
fn stops_at_end_of_body() {
    // what follows belongs to the next message on the connection
    ok(b"1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n", b"x", 11);
    let mut dec = ChunkedDecoder::default();
    let p = dec.feed(b"0\r\n\r\nrest").unwrap_or(ChunkProgress {
        consumed: 99,
        data: 0..0,
        done: false,
    });
    assert_eq!((p.consumed, p.done), (5, true));
    assert!(dec.is_done());
    let p = dec.feed(b"more");
    assert_eq!(
        p,
        Ok(ChunkProgress {
            consumed: 0,
            data: 0..0,
            done: true
        })
    );
    dec.reset();
    assert!(!dec.is_done());
}

#[test]
fn one_data_run_per_call() {
    let mut dec = ChunkedDecoder::default();
    let input = b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n";
    let p = dec.feed(input);
    // first run, then the framing up to the next payload byte
    assert_eq!(
        p,
        Ok(ChunkProgress {
            consumed: 10,
            data: 3..5,
            done: false
        })
    );
    let p = dec.feed(&input[10..]);
    assert_eq!(
        p,
        Ok(ChunkProgress {
            consumed: 10,
            data: 0..3,
            done: true
        })
    );
}

#[test]
fn partial_input_is_not_done() {
    assert_eq!(decode(b"5\r\nhel"), Ok((6, b"hel".to_vec(), false)));
    assert_eq!(
        decode(b"5\r\nhello\r\n0\r\n\r"),
        Ok((14, b"hello".to_vec(), false))
    );
}

#[test]
fn extensions() {
    ok(b"5;name=value\r\nhello\r\n0\r\n\r\n", b"hello", 26);
    ok(
        b"5 ;a=\"q; \\\" x\";b\r\nhello\r\n0;last\r\n\r\n",
        b"hello",
        35,
    );
    ok(b"5\t;a\r\nhello\r\n0\r\n\r\n", b"hello", 18);
    assert_eq!(
        decode(b"5 \r\nhello\r\n0\r\n\r\n"),
        Err(ChunkError::BadSize)
    );
    assert_eq!(decode(b"5;a\x01\r\nhello\r\n"), Err(ChunkError::BadSize));
    assert_eq!(decode(b"5;a\x7f\r\nhello\r\n"), Err(ChunkError::BadSize));
}

#[test]
fn trailers() {
    ok(b"5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\n\r\n", b"hello", 31);
    assert_eq!(
        decode(b"0\r\nX: a\r\n b\r\n\r\n"),
        Err(ChunkError::BadTrailer)
    );
    assert_eq!(decode(b"0\r\nX : a\r\n\r\n"), Err(ChunkError::BadTrailer));
    assert_eq!(decode(b"0\r\n: a\r\n\r\n"), Err(ChunkError::BadTrailer));
    assert_eq!(decode(b"0\r\nNoColon\r\n\r\n"), Err(ChunkError::BadTrailer));
    assert_eq!(
        decode(b"0\r\nX: a\x00\r\n\r\n"),
        Err(ChunkError::BadTrailer)
    );
    assert_eq!(decode(b"0\r\nX: a\n\r\n"), Err(ChunkError::BadLineEnd));
    assert_eq!(decode(b"0\r\nX: a\r\r\n"), Err(ChunkError::BadLineEnd));
    assert_eq!(decode(b"0\r\n\n"), Err(ChunkError::BadLineEnd));
    assert_eq!(decode(b"0\r\n\rx"), Err(ChunkError::BadLineEnd));
}

#[test]
fn trailer_limit() {
    let input = b"0\r\nAb: cd\r\n\r\n"; // trailer field line is 8 bytes with its CRLF
    let run = |max| decode_in_pieces(&mut ChunkedDecoder::new(64, max), input, || 1);
    assert_eq!(run(8), Ok((13, vec![], true)));
    assert_eq!(run(7), Err(ChunkError::TrailerTooLarge));
}

#[test]
fn size_errors() {
    assert_eq!(decode(b"x\r\n"), Err(ChunkError::BadSize));
    assert_eq!(decode(b"\r\n"), Err(ChunkError::BadSize));
    assert_eq!(decode(b";a\r\n"), Err(ChunkError::BadSize));
    assert_eq!(decode(b"-1\r\n"), Err(ChunkError::BadSize));
    assert_eq!(decode(b"0x5\r\n"), Err(ChunkError::BadSize));
    assert_eq!(decode(b"5\nhello\r\n"), Err(ChunkError::BadLineEnd));
    assert_eq!(decode(b"5\rhello\r\n"), Err(ChunkError::BadLineEnd));
    assert_eq!(decode(b"ffffffffffffffff\r\n"), Ok((18, vec![], false)));
    assert_eq!(
        decode(b"10000000000000000\r\n"),
        Err(ChunkError::SizeOverflow)
    );
    assert_eq!(
        decode(b"00000000000000000001\r\nx\r\n0\r\n\r\n"),
        Ok((30, b"x".to_vec(), true))
    );
}

#[test]
fn data_must_end_with_crlf() {
    assert_eq!(decode(b"5\r\nhelloX\r\n"), Err(ChunkError::BadLineEnd));
    assert_eq!(decode(b"5\r\nhello\rX"), Err(ChunkError::BadLineEnd));
    assert_eq!(
        decode(b"5\r\nhello\n0\r\n\r\n"),
        Err(ChunkError::BadLineEnd)
    );
}

#[test]
fn line_limit() {
    let run = |input: &[u8], max| decode_in_pieces(&mut ChunkedDecoder::new(max, 64), input, || 3);
    assert_eq!(
        run(b"5;abc\r\nhello\r\n0\r\n\r\n", 5),
        Ok((19, b"hello".to_vec(), true))
    );
    assert_eq!(
        run(b"5;abcd\r\nhello\r\n0\r\n\r\n", 5),
        Err(ChunkError::LineTooLong)
    );
    assert_eq!(run(b"000000", 5), Err(ChunkError::LineTooLong));
}

#[test]
fn errors_are_sticky() {
    let mut dec = ChunkedDecoder::default();
    assert_eq!(dec.feed(b"z"), Err(ChunkError::BadSize));
    assert_eq!(dec.feed(b"0\r\n\r\n"), Err(ChunkError::BadSize));
    assert!(!dec.is_done());
}

#[test]
fn empty_input() {
    let mut dec = ChunkedDecoder::default();
    assert_eq!(
        dec.feed(b""),
        Ok(ChunkProgress {
            consumed: 0,
            data: 0..0,
            done: false
        })
    );
}
