//! The opening handshake's cryptography (RFC 6455 §4.2.1, §4.2.2): a valid
//! `Sec-WebSocket-Key` is the base64 of 16 bytes, and the server proves it read it by
//! answering `Sec-WebSocket-Accept: base64(SHA-1(key ++ GUID))`. The gateway checks the
//! upstream's proof before it opens a tunnel, so a server that did not really speak
//! WebSocket (or answered someone else's key) never gets one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The GUID the protocol appends to the key (§1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Length of an accept value: base64 of a 20-byte SHA-1 digest.
pub const ACCEPT_LEN: usize = 28;
/// Length of a valid key: base64 of 16 bytes, padded.
const KEY_LEN: usize = 24;

/// Whether `key` (the field value, surrounding whitespace already trimmed) is the padded
/// base64 encoding of exactly 16 bytes.
pub fn key_is_valid(key: &[u8]) -> bool {
    if key.len() != KEY_LEN {
        return false;
    }
    // 24 characters decode to at most 18 bytes; a valid key decodes to 16.
    let mut out = [0u8; 18];
    matches!(STANDARD.decode_slice(key, &mut out), Ok(16))
}

/// The `Sec-WebSocket-Accept` value for `key`.
pub fn accept_key(key: &[u8]) -> [u8; ACCEPT_LEN] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(GUID);
    let digest = ctx.finish();
    let mut out = [0u8; ACCEPT_LEN];
    // A 20-byte digest always encodes to 28 characters; the fallback keeps this total.
    if STANDARD.encode_slice(digest.as_ref(), &mut out).is_err() {
        out = [0u8; ACCEPT_LEN];
    }
    out
}

/// Whether `accept` (a field value) is the right answer to `key`.
pub fn accept_matches(key: &[u8], accept: &[u8]) -> bool {
    accept.trim_ascii() == accept_key(key)
}
