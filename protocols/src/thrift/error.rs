//! Errors of the Thrift wire codecs. Every variant is cheap (no heap): a malformed or hostile
//! message is common traffic for a gateway and must not cost an allocation to reject.

use std::fmt;

/// What went wrong while reading or writing Thrift bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThriftError {
    /// The bytes end before the message does; `needed` is the smallest total length (counted
    /// from the start of the buffer handed in) that could hold it. Only `codec::scan_message` and
    /// friends turn this into "need more"; elsewhere it means the message is cut short.
    Incomplete { needed: usize },
    /// A complete message (a frame, a reply handed to the JSON mapper) ended early.
    Truncated,
    /// A frame length, or a claim inside an unframed message, goes past `Limits::max_frame`.
    FrameTooLarge { claimed: usize, max: usize },
    /// A length or count on the wire is negative.
    NegativeSize(i32),
    /// A string or binary claims more than `Limits::max_string` bytes.
    StringTooLong { claimed: usize, max: usize },
    /// A list, set or map claims more than `Limits::max_container` elements.
    ContainerTooLarge { claimed: usize, max: usize },
    /// Structs and containers nest deeper than `Limits::max_depth`.
    DepthExceeded { max: usize },
    /// The message header carries an unknown protocol id or version.
    BadVersion,
    /// A type id that the protocol does not define.
    UnknownType(u8),
    /// A message type outside call/reply/exception/oneway.
    BadMessageType(u8),
    /// A varint longer than its integer type allows.
    VarintTooLong,
    /// A value does not fit its declared type (an i16 field id holding 70000, ...).
    OutOfRange,
    /// Compact protocol: the new sequence id needs a different number of varint bytes, so the
    /// message cannot be patched in place (use `codec::rewrite_seqid_into`).
    SeqidWidthChanged { old: u8, new: u8 },
    /// The JSON written from a reply would exceed `MappingPolicy::max_json_bytes`.
    JsonTooLarge { max: usize },
    /// The message is well formed but not what the caller expected (a reply for another
    /// method, a call where a reply was due, a field of the wrong type in a container, ...).
    Unexpected(&'static str),
}

impl fmt::Display for ThriftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Incomplete { needed } => write!(f, "message incomplete: need {needed} bytes"),
            Self::Truncated => f.write_str("message truncated"),
            Self::FrameTooLarge { claimed, max } => {
                write!(f, "message of {claimed} bytes exceeds the limit of {max}")
            }
            Self::NegativeSize(n) => write!(f, "negative size {n}"),
            Self::StringTooLong { claimed, max } => {
                write!(f, "string of {claimed} bytes exceeds the limit of {max}")
            }
            Self::ContainerTooLarge { claimed, max } => {
                write!(
                    f,
                    "container of {claimed} elements exceeds the limit of {max}"
                )
            }
            Self::DepthExceeded { max } => write!(f, "nesting deeper than {max}"),
            Self::BadVersion => f.write_str("bad protocol id or version"),
            Self::UnknownType(t) => write!(f, "unknown type id {t}"),
            Self::BadMessageType(t) => write!(f, "unknown message type {t}"),
            Self::VarintTooLong => f.write_str("varint too long"),
            Self::OutOfRange => f.write_str("value out of range for its type"),
            Self::SeqidWidthChanged { old, new } => {
                write!(
                    f,
                    "sequence id needs {new} varint bytes, the message has {old}"
                )
            }
            Self::JsonTooLarge { max } => write!(f, "JSON answer exceeds the limit of {max} bytes"),
            Self::Unexpected(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for ThriftError {}
