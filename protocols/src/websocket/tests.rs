//! Every rule of the frame codec, fed whole and split at every byte boundary.

use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Raw frame bytes with full control over the encoding (including invalid ones).
fn raw(b0: u8, mask: Option<[u8; 4]>, len_bytes: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = vec![b0];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match len_bytes.len() {
        0 => v.push(m | payload.len() as u8),
        2 => {
            v.push(m | 126);
            v.extend_from_slice(len_bytes);
        }
        _ => {
            v.push(m | 127);
            v.extend_from_slice(len_bytes);
        }
    }
    if let Some(k) = mask {
        v.extend_from_slice(&k);
        let start = v.len();
        v.extend_from_slice(payload);
        apply_mask(&mut v[start..], k, 0);
    } else {
        v.extend_from_slice(payload);
    }
    v
}

fn frame(fin: bool, op: Opcode, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    write_frame(&mut v, fin, op, payload, mask);
    v
}

/// Parsing every prefix gives "need more" or the whole input's answer, never another one.
fn parse_all_splits(bytes: &[u8], from: Sender) -> Result<Option<FrameHeader>, FrameError> {
    let whole = parse_header(bytes, from, 0);
    for cut in 0..bytes.len() {
        let r = parse_header(&bytes[..cut], from, 0);
        assert!(
            r == Ok(None) || r == whole,
            "prefix {cut} of {bytes:?}: {r:?} vs {whole:?}"
        );
    }
    whole
}

#[test]
fn lengths_in_all_three_encodings() {
    for (len, header_len) in [
        (0usize, 2usize),
        (1, 2),
        (125, 2),
        (126, 4),
        (65535, 4),
        (65536, 10),
        (70000, 10),
    ] {
        let payload = vec![7u8; len];
        for (from, mask) in [(Sender::Client, Some(MASK)), (Sender::Server, None)] {
            let bytes = frame(true, Opcode::Binary, mask, &payload);
            let h = parse_all_splits(&bytes, from).unwrap().unwrap();
            let extra = if mask.is_some() { 4 } else { 0 };
            assert_eq!(h.header_len, header_len + extra, "len {len}");
            assert_eq!(h.payload_len, len as u64);
            assert_eq!(h.mask, mask);
            assert!(h.fin);
            assert_eq!(h.opcode, Opcode::Binary);
            assert_eq!(bytes.len(), h.header_len + len);
        }
    }
}

#[test]
fn every_opcode_round_trips() {
    for op in [
        Opcode::Continuation,
        Opcode::Text,
        Opcode::Binary,
        Opcode::Close,
        Opcode::Ping,
        Opcode::Pong,
    ] {
        assert_eq!(Opcode::from_bits(op.bits()), Some(op));
        let bytes = frame(true, op, None, b"");
        let h = parse_all_splits(&bytes, Sender::Server).unwrap().unwrap();
        assert_eq!(h.opcode, op);
    }
}

#[test]
fn reserved_bits_are_refused_unless_an_extension_allows_them() {
    for rsv in [0x40u8, 0x20, 0x10, 0x70] {
        let bytes = raw(0x82 | rsv, None, &[], b"x");
        assert_eq!(
            parse_all_splits(&bytes, Sender::Server),
            Err(FrameError::ReservedBits)
        );
        assert_eq!(
            parse_header(&bytes[..1], Sender::Server, 0),
            Err(FrameError::ReservedBits),
            "refused with one byte in hand"
        );
    }
    let bytes = raw(0xC2, None, &[], b"x");
    let h = parse_header(&bytes, Sender::Server, 0x40).unwrap().unwrap();
    assert_eq!(h.rsv, 0x40);
    let bytes = raw(0xE2, None, &[], b"x");
    assert_eq!(
        parse_header(&bytes, Sender::Server, 0x40),
        Err(FrameError::ReservedBits)
    );
}

#[test]
fn unknown_opcodes_are_refused() {
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        let bytes = raw(0x80 | op, None, &[], b"");
        assert_eq!(
            parse_all_splits(&bytes, Sender::Server),
            Err(FrameError::UnknownOpcode(op))
        );
    }
}

#[test]
fn control_frames_are_short_and_whole() {
    for op in [Opcode::Close, Opcode::Ping, Opcode::Pong] {
        let bytes = raw(op.bits(), Some(MASK), &[], b"");
        assert_eq!(
            parse_all_splits(&bytes, Sender::Client),
            Err(FrameError::ControlFragmented)
        );
        let bytes = raw(0x80 | op.bits(), None, &[0, 126], &[0u8; 126]);
        assert_eq!(
            parse_all_splits(&bytes, Sender::Server),
            Err(FrameError::ControlTooLong)
        );
        let bytes = raw(0x80 | op.bits(), None, &[], &[1u8; 125]);
        assert!(parse_all_splits(&bytes, Sender::Server).unwrap().is_some());
    }
}

#[test]
fn masking_follows_the_sender() {
    let unmasked = frame(true, Opcode::Text, None, b"hi");
    assert_eq!(
        parse_all_splits(&unmasked, Sender::Client),
        Err(FrameError::Unmasked)
    );
    let masked = frame(true, Opcode::Text, Some(MASK), b"hi");
    assert_eq!(
        parse_all_splits(&masked, Sender::Server),
        Err(FrameError::Masked)
    );
}

#[test]
fn lengths_must_be_minimal_and_fit_63_bits() {
    let bytes = raw(0x82, None, &[0, 125], &[0u8; 125]);
    assert_eq!(
        parse_all_splits(&bytes, Sender::Server),
        Err(FrameError::LengthNotMinimal)
    );
    let bytes = raw(0x82, None, &[0, 0, 0, 0, 0, 0, 0xff, 0xff], b"");
    assert_eq!(
        parse_all_splits(&bytes, Sender::Server),
        Err(FrameError::LengthNotMinimal)
    );
    let bytes = raw(0x82, None, &[0x80, 0, 0, 0, 0, 0, 0, 1], b"");
    assert_eq!(
        parse_all_splits(&bytes, Sender::Server),
        Err(FrameError::LengthTooLarge)
    );
    let bytes = raw(
        0x82,
        None,
        &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        b"",
    );
    let h = parse_all_splits(&bytes, Sender::Server).unwrap().unwrap();
    assert_eq!(h.payload_len, u64::MAX >> 1);
}

#[test]
fn unmasking_in_pieces_equals_unmasking_whole() {
    let plain: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let mut masked = plain.clone();
    apply_mask(&mut masked, MASK, 0);
    assert_ne!(masked, plain);
    for cut in 0..masked.len() {
        let mut m = masked.clone();
        let (a, b) = m.split_at_mut(cut);
        apply_mask(a, MASK, 0);
        apply_mask(b, MASK, cut as u64);
        assert_eq!(m, plain, "cut {cut}");
    }
}

#[test]
fn close_payloads() {
    assert_eq!(parse_close(b""), Ok(None));
    assert_eq!(parse_close(&[3]), Err(CloseError::Truncated));
    assert_eq!(parse_close(&[0x03, 0xe8]), Ok(Some((1000, ""))));
    assert_eq!(parse_close(b"\x03\xeabye"), Ok(Some((1002, "bye"))));
    for ok in [1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
        assert!(parse_close(&ok.to_be_bytes()).is_ok(), "{ok}");
    }
    for bad in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        assert_eq!(
            parse_close(&bad.to_be_bytes()),
            Err(CloseError::BadCode(bad))
        );
    }
    assert_eq!(parse_close(b"\x03\xe8\xff"), Err(CloseError::BadReason));
}

#[test]
fn written_control_frames_parse_back() {
    for mask in [None, Some(MASK)] {
        let from = if mask.is_some() {
            Sender::Client
        } else {
            Sender::Server
        };
        let mut out = Vec::new();
        write_close(&mut out, 1001, &"é".repeat(100), mask);
        let h = parse_header(&out, from, 0).unwrap().unwrap();
        assert_eq!(h.opcode, Opcode::Close);
        assert!(h.payload_len <= 125);
        let mut p = out[h.header_len..].to_vec();
        if let Some(k) = h.mask {
            apply_mask(&mut p, k, 0);
        }
        let (code, reason) = parse_close(&p).unwrap().unwrap();
        assert_eq!(code, 1001);
        assert!(reason.chars().all(|c| c == 'é'));

        let mut out = Vec::new();
        write_control(&mut out, Opcode::Ping, &[9u8; 200], mask);
        let h = parse_header(&out, from, 0).unwrap().unwrap();
        assert_eq!((h.opcode, h.payload_len), (Opcode::Ping, 125));
        assert_eq!(out.len(), h.header_len + 125);
    }
}

#[test]
fn accept_key_matches_the_rfc_example() {
    let key = b"dGhlIHNhbXBsZSBub25jZQ==";
    assert!(key_is_valid(key));
    assert_eq!(&accept_key(key), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert!(accept_matches(key, b" s3pPLMBiTxaQ9kYGzzhZRbK+xOo= "));
    assert!(!accept_matches(key, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOp="));
    assert!(!accept_matches(
        b"AAAAAAAAAAAAAAAAAAAAAA==",
        b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    ));
}

#[test]
fn keys_must_be_16_bytes_of_base64() {
    assert!(key_is_valid(b"AAAAAAAAAAAAAAAAAAAAAA=="));
    for bad in [
        &b""[..],
        b"dGhlIHNhbXBsZSBub25jZQ",    // unpadded
        b"dGhlIHNhbXBsZSBub25jZQ===", // 25 characters
        b"dGhlIHNhbXBsZSBub25jZ!==",  // not base64
        b"dGhlIHNhbXBsZSBub25jZWU=",  // 17 bytes
        b"dGhlIHNhbXBsZSBub25jZWVl",  // 18 bytes
    ] {
        assert!(!key_is_valid(bad), "{:?}", String::from_utf8_lossy(bad));
    }
}

/// A conversation: a fragmented text message with a ping between its fragments, a large
/// binary message, a pong, a close.
fn conversation(mask: Option<[u8; 4]>) -> (Vec<u8>, u64) {
    let mut v = Vec::new();
    v.extend(frame(false, Opcode::Text, mask, b"hel"));
    v.extend(frame(true, Opcode::Ping, mask, b"p"));
    v.extend(frame(false, Opcode::Continuation, mask, b"lo "));
    v.extend(frame(true, Opcode::Continuation, mask, b"world"));
    v.extend(frame(true, Opcode::Binary, mask, &[5u8; 70_000]));
    v.extend(frame(true, Opcode::Pong, mask, b""));
    let mut c = Vec::new();
    write_close(&mut c, 1000, "done", mask);
    v.extend(c);
    (v, 7)
}

/// Feeds `bytes` cut at `cut` (and then consumed as a relay would), returning what was
/// approved in total, the frames counted and the error if any.
fn feed(
    bytes: &[u8],
    cuts: &[usize],
    from: Sender,
) -> (usize, u64, Option<FrameError>, FrameTracker) {
    let mut t = FrameTracker::new(from, 0);
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut approved = 0;
    let mut frames = 0;
    for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
        buf.extend_from_slice(&bytes[fed..end]);
        fed = end;
        let mut fwd = 0;
        let tr = t.approve(&buf, &mut fwd);
        assert_eq!(tr.bytes, fwd);
        frames += tr.frames;
        if let Some(e) = tr.error {
            assert_eq!(frames, t.frames());
            return (approved + fwd, frames, Some(e), t);
        }
        approved += fwd;
        buf.drain(..fwd);
    }
    (approved, frames, None, t)
}

#[test]
fn tracker_approves_a_conversation_split_anywhere() {
    for (from, mask) in [(Sender::Client, Some(MASK)), (Sender::Server, None)] {
        let (bytes, n) = conversation(mask);
        let mut trailing = bytes.clone();
        trailing.extend(frame(true, Opcode::Text, mask, b"after close"));
        // Every single split point, and byte-by-byte.
        let mut cases: Vec<Vec<usize>> = (0..bytes.len()).step_by(97).map(|c| vec![c]).collect();
        cases.extend((0..40).map(|c| vec![c]));
        cases.extend((bytes.len() - 40..bytes.len()).map(|c| vec![c]));
        cases.push((1..bytes.len()).collect());
        for cuts in cases {
            let (approved, frames, err, t) = feed(&bytes, &cuts, from);
            assert_eq!(err, None);
            assert_eq!(
                approved,
                bytes.len(),
                "cuts {:?}",
                &cuts[..cuts.len().min(3)]
            );
            assert_eq!(frames, n);
            assert!(t.close_seen() && t.at_boundary());
            assert_eq!(t.pongs(), 1);
            // Nothing after the close is approved.
            let (approved, _, err, _) = feed(&trailing, &cuts, from);
            assert_eq!((approved, err), (bytes.len(), None));
        }
    }
}

#[test]
fn tracker_refuses_bad_sequences_split_anywhere() {
    let m = Some(MASK);
    let ok = frame(true, Opcode::Text, m, b"fine");
    let cases: Vec<(Vec<u8>, FrameError)> = vec![
        (
            frame(true, Opcode::Continuation, m, b"x"),
            FrameError::UnexpectedContinuation,
        ),
        (
            [
                frame(false, Opcode::Text, m, b"a"),
                frame(true, Opcode::Binary, m, b"b"),
            ]
            .concat(),
            FrameError::ExpectedContinuation,
        ),
        (frame(true, Opcode::Text, None, b"x"), FrameError::Unmasked),
        (raw(0x83, m, &[], b""), FrameError::UnknownOpcode(3)),
        (raw(0x89 | 0x40, m, &[], b""), FrameError::ReservedBits),
        (
            raw(0x88, m, &[], &[3]),
            FrameError::BadClose(CloseError::Truncated),
        ),
        (
            raw(0x88, m, &[], &1005u16.to_be_bytes()),
            FrameError::BadClose(CloseError::BadCode(1005)),
        ),
        (
            raw(0x88, m, &[], b"\x03\xe8\xc3"),
            FrameError::BadClose(CloseError::BadReason),
        ),
    ];
    for (bad, want) in cases {
        let bytes = [ok.clone(), bad.clone()].concat();
        for cut in 0..=bytes.len() {
            let (approved, _, err, _) = feed(&bytes, &[cut], Sender::Client);
            assert_eq!(err, Some(want), "cut {cut}");
            // Everything before the offending frame went on; nothing of it did.
            assert!(approved <= bytes.len() - bad.len() + frame_prefix(want));
            assert!(approved >= ok.len());
        }
    }
}

/// How much of a bad stream's last frames may legitimately have been approved before the
/// violation shows (a frame opening a message that the next one breaks).
fn frame_prefix(e: FrameError) -> usize {
    match e {
        FrameError::ExpectedContinuation => frame(false, Opcode::Text, Some(MASK), b"a").len(),
        _ => 0,
    }
}

#[test]
fn frames_before_a_violation_count_whole_or_split() {
    // Found by fuzzing: a frame approved in the same call that then met a violation was
    // not counted when fed whole, and was when split.
    let bytes = [
        frame(false, Opcode::Text, Some(MASK), b"abc"),
        raw(0x89 | 0x40, Some(MASK), &[], b""),
    ]
    .concat();
    for cut in 0..=bytes.len() {
        let (_, frames, err, _) = feed(&bytes, &[cut], Sender::Client);
        assert_eq!(
            (frames, err),
            (1, Some(FrameError::ReservedBits)),
            "cut {cut}"
        );
    }
}

#[test]
fn stop_finishes_the_current_frame_only() {
    let a = frame(true, Opcode::Binary, None, &[1u8; 1000]);
    let b = frame(true, Opcode::Binary, None, b"next");
    let bytes = [a.clone(), b].concat();
    let mut t = FrameTracker::new(Sender::Server, 0);
    let mut fwd = 0;
    assert_eq!(t.approve(&bytes[..10], &mut fwd).error, None);
    assert_eq!(fwd, 10);
    assert!(!t.at_boundary());
    t.stop();
    let mut fwd2 = 0;
    assert_eq!(t.approve(&bytes[10..], &mut fwd2).error, None);
    assert_eq!(10 + fwd2, a.len());
    assert!(t.at_boundary());
}

#[test]
fn fuzz_seeds_track_the_same_whole_and_byte_by_byte() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/seeds/websocket_frames"
    );
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for from in [Sender::Client, Sender::Server] {
            let whole = feed(&bytes, &[], from);
            let cuts: Vec<usize> = (1..bytes.len()).collect();
            let split = feed(&bytes, &cuts, from);
            assert_eq!((whole.0, whole.1, whole.2), (split.0, split.1, split.2));
        }
        n += 1;
    }
    assert!(n >= 2);
}
