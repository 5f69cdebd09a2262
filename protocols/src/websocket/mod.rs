//! WebSocket (RFC 6455) for a proxy: the pieces a tunnel needs to check what passes through
//! it without owning the conversation.
//!
//! - [`frame`]: frame headers (parse, validate, write), masking, close payloads;
//! - [`tracker`]: follows one direction of a byte stream frame by frame, approving bytes for
//!   forwarding (payload bytes are only counted, never copied) and stopping at the first
//!   protocol violation;
//! - [`handshake`]: the opening handshake's key check and `Sec-WebSocket-Accept`.
//!
//! Everything is pure: byte slices in, results out, so every rule is unit-tested at every
//! split point and fuzzed (fuzz/fuzz_targets/websocket_frames.rs).

pub mod frame;
pub mod handshake;
pub mod tracker;

#[cfg(test)]
mod tests;

pub use frame::{
    apply_mask, parse_close, parse_header, write_close, write_control, write_frame, CloseError,
    FrameError, FrameHeader, Opcode, Sender, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN,
};
pub use handshake::{accept_key, accept_matches, key_is_valid, ACCEPT_LEN};
pub use tracker::{FrameTracker, Tracked};
