//! Frame headers (RFC 6455 §5.2): parsing with every check a relay can make from the header
//! alone, writing the gateway's own control frames, masking, and close payloads (§5.5.1, §7.4).
//!
//! Parsing reports an error as soon as the bytes that prove it are in: a bad first byte is
//! refused with one byte in hand, so a peer cannot hold a violation back by sending slowly.

use bytes::BufMut;

/// Longest frame header: 2 bytes, a 64-bit length, a 4-byte mask key.
pub const MAX_HEADER_LEN: usize = 14;
/// Control frames carry at most this many payload bytes (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The defined opcodes (§5.2, §11.8); the others are reserved and refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    pub fn from_bits(b: u8) -> Option<Opcode> {
        Some(match b {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    pub fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: short, unfragmented, allowed between a message's fragments.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// Which end sent the bytes: clients must mask every frame, servers must not (§5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    Client,
    Server,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1..3 as they sit in the first byte (`0x70` mask).
    pub rsv: u8,
    pub opcode: Opcode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes the header takes (2 to 14).
    pub header_len: usize,
}

/// A protocol violation: the tunnel ends with close code 1002.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// An RSV bit no negotiated extension defines.
    ReservedBits,
    UnknownOpcode(u8),
    /// A control frame over 125 bytes.
    ControlTooLong,
    /// A control frame without FIN.
    ControlFragmented,
    /// A client frame without a mask key.
    Unmasked,
    /// A server frame with a mask key.
    Masked,
    /// A length written in more bytes than it needs.
    LengthNotMinimal,
    /// A 64-bit length with its most significant bit set.
    LengthTooLarge,
    /// A continuation frame with no message open.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is still open.
    ExpectedContinuation,
    BadClose(CloseError),
}

impl FrameError {
    /// A short machine-readable reason (logs, close frame reasons).
    pub fn reason(self) -> &'static str {
        match self {
            FrameError::ReservedBits => "reserved_bits",
            FrameError::UnknownOpcode(_) => "unknown_opcode",
            FrameError::ControlTooLong => "control_frame_too_long",
            FrameError::ControlFragmented => "control_frame_fragmented",
            FrameError::Unmasked => "unmasked_client_frame",
            FrameError::Masked => "masked_server_frame",
            FrameError::LengthNotMinimal => "length_not_minimal",
            FrameError::LengthTooLarge => "length_too_large",
            FrameError::UnexpectedContinuation => "unexpected_continuation",
            FrameError::ExpectedContinuation => "expected_continuation",
            FrameError::BadClose(e) => e.reason(),
        }
    }
}

/// Parses the frame header at the start of `buf`. `Ok(None)`: more bytes are needed.
/// `rsv_allowed` holds the RSV bits a negotiated extension gave meaning to (0 for none).
pub fn parse_header(
    buf: &[u8],
    from: Sender,
    rsv_allowed: u8,
) -> Result<Option<FrameHeader>, FrameError> {
    let Some(&b0) = buf.first() else {
        return Ok(None);
    };
    let rsv = b0 & 0x70;
    if rsv & !rsv_allowed != 0 {
        return Err(FrameError::ReservedBits);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(FrameError::UnknownOpcode(b0 & 0x0F))?;
    if opcode.is_control() && !fin {
        return Err(FrameError::ControlFragmented);
    }
    let Some(&b1) = buf.get(1) else {
        return Ok(None);
    };
    let masked = b1 & 0x80 != 0;
    match (from, masked) {
        (Sender::Client, false) => return Err(FrameError::Unmasked),
        (Sender::Server, true) => return Err(FrameError::Masked),
        _ => {}
    }
    let len7 = b1 & 0x7F;
    if opcode.is_control() && len7 as usize > MAX_CONTROL_PAYLOAD {
        return Err(FrameError::ControlTooLong);
    }
    let (payload_len, at) = match len7 {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            let n = u16::from_be_bytes([b[0], b[1]]) as u64;
            if n < 126 {
                return Err(FrameError::LengthNotMinimal);
            }
            (n, 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(b);
            let n = u64::from_be_bytes(be);
            if n >> 63 != 0 {
                return Err(FrameError::LengthTooLarge);
            }
            if n <= u16::MAX as u64 {
                return Err(FrameError::LengthNotMinimal);
            }
            (n, 10)
        }
        n => (n as u64, 2),
    };
    let (mask, header_len) = if masked {
        let Some(k) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        (Some([k[0], k[1], k[2], k[3]]), at + 4)
    } else {
        (None, at)
    };
    Ok(Some(FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len,
        header_len,
    }))
}

/// XORs `data` with the mask key in place. `offset` is how far into the payload `data`
/// starts, so a payload can be unmasked piece by piece as it arrives.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: u64) {
    let start = (offset % 4) as usize;
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[(start + i) % 4];
    }
}

/// Writes a frame header for `len` payload bytes.
fn put_header(out: &mut impl BufMut, fin: bool, opcode: Opcode, len: u64, mask: Option<[u8; 4]>) {
    out.put_u8(if fin { 0x80 } else { 0 } | opcode.bits());
    let m = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.put_u8(m | len as u8);
    } else if len <= u16::MAX as u64 {
        out.put_u8(m | 126);
        out.put_u16(len as u16);
    } else {
        out.put_u8(m | 127);
        out.put_u64(len);
    }
    if let Some(k) = mask {
        out.put_slice(&k);
    }
}

/// Writes a whole frame (header and payload, masked when `mask` is set). Control payloads are
/// cut to 125 bytes so the frame is always valid.
pub fn write_frame(
    out: &mut impl BufMut,
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let payload = if opcode.is_control() {
        payload.get(..MAX_CONTROL_PAYLOAD).unwrap_or(payload)
    } else {
        payload
    };
    put_header(out, fin, opcode, payload.len() as u64, mask);
    match mask {
        None => out.put_slice(payload),
        Some(k) => {
            for (i, b) in payload.iter().enumerate() {
                out.put_u8(b ^ k[i % 4]);
            }
        }
    }
}

/// Writes a ping or pong (or any control frame) with `payload` (at most 125 bytes kept).
pub fn write_control(out: &mut impl BufMut, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) {
    write_frame(out, true, opcode, payload, mask);
}

/// Writes a close frame with a status code and a reason (cut so the payload fits 125 bytes,
/// at a character boundary).
pub fn write_close(out: &mut impl BufMut, code: u16, reason: &str, mask: Option<[u8; 4]>) {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    write_frame(out, true, Opcode::Close, &payload[..2 + end], mask);
}

/// What is wrong with a close frame's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseError {
    /// One byte: a code needs two.
    Truncated,
    /// A code that may not appear on the wire (1005, 1006, 1015, unassigned ranges).
    BadCode(u16),
    /// The reason is not UTF-8.
    BadReason,
}

impl CloseError {
    pub fn reason(self) -> &'static str {
        match self {
            CloseError::Truncated => "close_payload_truncated",
            CloseError::BadCode(_) => "close_code_invalid",
            CloseError::BadReason => "close_reason_not_utf8",
        }
    }
}

/// Parses an (unmasked) close payload: `None` when it is empty (no status, seen as 1005 by
/// the receiver), else the code and the reason.
pub fn parse_close(payload: &[u8]) -> Result<Option<(u16, &str)>, CloseError> {
    match payload {
        [] => Ok(None),
        [_] => Err(CloseError::Truncated),
        [a, b, rest @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            // §7.4.1 and the IANA registry: 1000-1003 and 1007-1014 are defined for the wire,
            // 3000-4999 are for libraries and applications; the rest are reserved or
            // (1005, 1006, 1015) must never be sent.
            let ok = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !ok {
                return Err(CloseError::BadCode(code));
            }
            let reason = std::str::from_utf8(rest).map_err(|_| CloseError::BadReason)?;
            Ok(Some((code, reason)))
        }
    }
}
