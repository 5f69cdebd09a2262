//! Thrift wire format on memory buffers: binary and compact protocols, framed and buffered
//! (unframed) transports. No I/O: the connection pool hands in the bytes it has and gets back
//! offsets, so the same code serves the pool, the JSON mapper and the fuzzers.
//!
//! Why our own encoders rather than the `thrift` crate: its readers allocate a string's claimed
//! length before reading it and cannot say "need more bytes", and we need both borrowed slices
//! (no copy of strings into `String`) and exact offsets (to patch sequence ids and container
//! sizes in place). The two protocols are ~400 lines together; owning them keeps every
//! allocation and limit under our control. The `thrift` crate (0.25) is still used in tests as
//! an independent implementation to check our bytes against.
//!
//! Limits: every length or count read from the wire is checked against [`Limits`] *and*
//! against the bytes that can still exist (a frame is never longer than `max_frame`), before
//! anything is read; the readers return borrowed slices and never allocate, so a frame
//! that claims 2 GiB costs nothing but the rejection.
//!
//! Unframed end detection ([`scan_message`]): read the header, then skip the argument or result
//! struct over the bytes present. Skipping moves an offset and copies nothing; if the bytes
//! run out the answer is "need at least N bytes" (N from the claim that ran out), which lets
//! the caller wait for that much before scanning again.

mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use reader::Reader;
pub use writer::Writer;

use super::error::ThriftError;
use std::ops::Range;

/// Which Thrift protocol encodes the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TBinaryProtocol, strict (versioned) headers written; old unversioned headers read too.
    Binary,
    /// TCompactProtocol (version 1).
    Compact,
}

/// How messages are delimited on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TFramedTransport: a 4-byte big-endian length before each message.
    Framed,
    /// TBufferedTransport: messages back to back; the end is found by parsing.
    Buffered,
}

/// Bounds applied to every message read (and to JSON converted into Thrift).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (frame payload, or whole unframed message). Default 16 MiB.
    pub max_frame: usize,
    /// Largest string or binary value. Default 16 MiB (a message bounds it anyway).
    pub max_string: usize,
    /// Most elements in one list, set or map. Default 1,048,576.
    pub max_container: usize,
    /// Deepest nesting of structs and containers. Default 64.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame: 16 << 20,
            max_string: 16 << 20,
            max_container: 1 << 20,
            max_depth: 64,
        }
    }
}

impl Limits {
    /// Checks a configured set of limits; the message names the knob (for config validation).
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.max_frame == 0 || self.max_frame > i32::MAX as usize {
            return Err("max_frame must be between 1 and 2147483647");
        }
        if self.max_string == 0 {
            return Err("max_string must be at least 1");
        }
        if self.max_depth < 2 || self.max_depth > 1024 {
            // Level 1 is the arguments struct; the readers recurse once per level.
            return Err("max_depth must be between 2 and 1024");
        }
        Ok(())
    }
}

/// Bytes the sequence id takes in a message header: 4 in binary, 1 to 5 (a varint of the id
/// as u32) in compact. A pool that picks ids of the caller's width can always rewrite in place.
pub fn seqid_len(proto: Protocol, seqid: i32) -> usize {
    match proto {
        Protocol::Binary => 4,
        Protocol::Compact => writer::encode_varint32(seqid as u32, &mut [0u8; 5]),
    }
}

/// The four Thrift message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Call = 1,
    Reply = 2,
    Exception = 3,
    Oneway = 4,
}

impl MessageType {
    pub(crate) fn from_u8(v: u8) -> Result<Self, ThriftError> {
        match v {
            1 => Ok(Self::Call),
            2 => Ok(Self::Reply),
            3 => Ok(Self::Exception),
            4 => Ok(Self::Oneway),
            other => Err(ThriftError::BadMessageType(other)),
        }
    }
}

/// Wire type of a value, protocol-neutral (numbered as in the binary protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TType {
    Stop = 0,
    Bool = 2,
    Byte = 3,
    Double = 4,
    I16 = 6,
    I32 = 8,
    I64 = 10,
    /// Strings and binaries share one wire type.
    String = 11,
    Struct = 12,
    Map = 13,
    Set = 14,
    List = 15,
}

impl TType {
    pub(crate) fn from_binary(v: u8) -> Result<Self, ThriftError> {
        Ok(match v {
            0 => Self::Stop,
            2 => Self::Bool,
            3 => Self::Byte,
            4 => Self::Double,
            6 => Self::I16,
            8 => Self::I32,
            10 => Self::I64,
            11 => Self::String,
            12 => Self::Struct,
            13 => Self::Map,
            14 => Self::Set,
            15 => Self::List,
            other => return Err(ThriftError::UnknownType(other)),
        })
    }

    pub(crate) fn from_compact(v: u8) -> Result<Self, ThriftError> {
        Ok(match v {
            0 => Self::Stop,
            1 | 2 => Self::Bool,
            3 => Self::Byte,
            4 => Self::I16,
            5 => Self::I32,
            6 => Self::I64,
            7 => Self::Double,
            8 => Self::String,
            9 => Self::List,
            10 => Self::Set,
            11 => Self::Map,
            12 => Self::Struct,
            other => return Err(ThriftError::UnknownType(other)),
        })
    }

    /// Compact type id; booleans use 1 ("true"), as Apache's writers do in containers.
    pub(crate) fn to_compact(self) -> u8 {
        match self {
            Self::Stop => 0,
            Self::Bool => 1,
            Self::Byte => 3,
            Self::I16 => 4,
            Self::I32 => 5,
            Self::I64 => 6,
            Self::Double => 7,
            Self::String => 8,
            Self::List => 9,
            Self::Set => 10,
            Self::Map => 11,
            Self::Struct => 12,
        }
    }
}

/// Where the parts of a message header are, as offsets into the buffer handed in (frame
/// prefix included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    /// The method name bytes (may be `Service:method` with the multiplexed protocol).
    pub name: Range<usize>,
    pub mtype: MessageType,
    pub seqid: i32,
    /// The encoded sequence id (4 bytes in binary, a 1..=5 byte varint in compact).
    pub seqid_at: Range<usize>,
    /// Offset of the argument or result struct.
    pub body: usize,
}

/// Outcome of [`scan_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// A whole message is present: it is `buf[..len]` (frame prefix included).
    Complete(usize),
    /// Not yet; no message can end before `at_least` bytes are present.
    NeedMore { at_least: usize },
}

const FRAME_PREFIX: usize = 4;

fn frame_prefix(transport: Transport) -> usize {
    match transport {
        Transport::Framed => FRAME_PREFIX,
        Transport::Buffered => 0,
    }
}

/// Finds where the first message in `buf` ends, without copying it.
///
/// Framed: from the 4-byte length alone (the payload is checked when it is decoded).
/// Buffered: header, then a skip over the argument/result struct; running out of bytes is
/// "need more", never an error and never a panic.
pub fn scan_message(
    proto: Protocol,
    transport: Transport,
    buf: &[u8],
    limits: &Limits,
) -> Result<Scan, ThriftError> {
    match transport {
        Transport::Framed => {
            let Some(prefix) = buf.get(..FRAME_PREFIX) else {
                return Ok(Scan::NeedMore {
                    at_least: FRAME_PREFIX,
                });
            };
            let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
            let len = usize::try_from(len).map_err(|_| ThriftError::NegativeSize(len))?;
            if len > limits.max_frame {
                return Err(ThriftError::FrameTooLarge {
                    claimed: len,
                    max: limits.max_frame,
                });
            }
            let total = FRAME_PREFIX + len;
            Ok(if buf.len() >= total {
                Scan::Complete(total)
            } else {
                Scan::NeedMore { at_least: total }
            })
        }
        Transport::Buffered => {
            let mut r = Reader::new(proto, buf, *limits);
            let outcome = r.read_message_header().and_then(|_| r.skip(TType::Struct));
            match outcome {
                Ok(()) => Ok(Scan::Complete(r.position())),
                Err(ThriftError::Incomplete { needed }) => {
                    if buf.len() >= limits.max_frame {
                        Err(ThriftError::FrameTooLarge {
                            claimed: needed,
                            max: limits.max_frame,
                        })
                    } else {
                        Ok(Scan::NeedMore {
                            at_least: needed.max(buf.len() + 1),
                        })
                    }
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// [`scan_message`] reduced to `Some(message length)` or `None` (need more bytes).
pub fn message_end(
    proto: Protocol,
    transport: Transport,
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<usize>, ThriftError> {
    Ok(match scan_message(proto, transport, buf, limits)? {
        Scan::Complete(n) => Some(n),
        Scan::NeedMore { .. } => None,
    })
}

/// The message payload: `msg` without its frame prefix (a no-op for buffered transport).
pub fn strip_frame(transport: Transport, msg: &[u8]) -> Result<&[u8], ThriftError> {
    msg.get(frame_prefix(transport)..)
        .ok_or(ThriftError::Truncated)
}

/// Reads the header of the message at the start of `msg` (frame prefix included when framed).
/// Offsets in the answer are relative to `msg`.
pub fn read_message_header(
    proto: Protocol,
    transport: Transport,
    msg: &[u8],
    limits: &Limits,
) -> Result<MessageHeader, ThriftError> {
    let skip = frame_prefix(transport);
    if msg.len() < skip {
        return Err(ThriftError::Incomplete { needed: skip });
    }
    let mut r = Reader::new(proto, msg, *limits);
    r.set_position(skip);
    r.read_message_header()
}

/// Replaces the sequence id of the message in place and returns the old one, so a pool can
/// give each in-flight call on a connection its own id and restore the caller's on the reply.
///
/// Binary: always in place (4 fixed bytes after the name). Compact: the id is a varint placed
/// before the name; when the new id needs another number of bytes the message is left
/// untouched and `SeqidWidthChanged` is returned — the caller then uses
/// [`rewrite_seqid_into`] (which copies), or picks ids of the same width.
pub fn rewrite_seqid(
    proto: Protocol,
    transport: Transport,
    msg: &mut [u8],
    new: i32,
    limits: &Limits,
) -> Result<i32, ThriftError> {
    let header = read_message_header(proto, transport, msg, limits)?;
    let slot = msg
        .get_mut(header.seqid_at.clone())
        .ok_or(ThriftError::Truncated)?;
    match proto {
        Protocol::Binary => slot.copy_from_slice(&new.to_be_bytes()),
        Protocol::Compact => {
            let mut tmp = [0u8; 5];
            let n = writer::encode_varint32(new as u32, &mut tmp);
            if n != slot.len() {
                return Err(ThriftError::SeqidWidthChanged {
                    old: slot.len() as u8,
                    new: n as u8,
                });
            }
            slot.copy_from_slice(&tmp[..n]);
        }
    }
    Ok(header.seqid)
}

/// Appends a copy of `msg` with its sequence id replaced to `out` (frame length fixed up), for
/// the compact case where [`rewrite_seqid`] cannot work in place. Returns the old id.
pub fn rewrite_seqid_into(
    proto: Protocol,
    transport: Transport,
    msg: &[u8],
    new: i32,
    limits: &Limits,
    out: &mut Vec<u8>,
) -> Result<i32, ThriftError> {
    let header = read_message_header(proto, transport, msg, limits)?;
    let skip = frame_prefix(transport);
    let (Some(before), Some(after)) = (
        msg.get(skip..header.seqid_at.start),
        msg.get(header.seqid_at.end..),
    ) else {
        return Err(ThriftError::Truncated);
    };
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_PREFIX][..skip]);
    out.extend_from_slice(before);
    match proto {
        Protocol::Binary => out.extend_from_slice(&new.to_be_bytes()),
        Protocol::Compact => {
            let mut tmp = [0u8; 5];
            let n = writer::encode_varint32(new as u32, &mut tmp);
            out.extend_from_slice(&tmp[..n]);
        }
    }
    out.extend_from_slice(after);
    if transport == Transport::Framed {
        let len = out.len() - start - FRAME_PREFIX;
        let len = i32::try_from(len).map_err(|_| ThriftError::FrameTooLarge {
            claimed: len,
            max: i32::MAX as usize,
        })?;
        out[start..start + FRAME_PREFIX].copy_from_slice(&len.to_be_bytes());
    }
    Ok(header.seqid)
}

/// Starts a message in `out`: frame prefix placeholder (when framed) and header. Write the
/// body struct next (a fresh [`Writer`] on `out` will do), then call [`finish_message`] with
/// the returned mark.
pub fn begin_message(
    proto: Protocol,
    transport: Transport,
    name: &str,
    mtype: MessageType,
    seqid: i32,
    out: &mut Vec<u8>,
) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_PREFIX][..frame_prefix(transport)]);
    Writer::new(proto, out).message_begin(name, mtype, seqid);
    start
}

/// Ends a message started at `start`: checks its size against `limits.max_frame` (removing
/// it from `out` when too large) and patches the frame length.
pub fn finish_message(
    transport: Transport,
    out: &mut Vec<u8>,
    start: usize,
    limits: &Limits,
) -> Result<(), ThriftError> {
    let skip = frame_prefix(transport);
    let len = out.len().saturating_sub(start + skip);
    // max_frame is a usize knob; the wire length is an i32.
    let fits = i32::try_from(len).ok().filter(|_| len <= limits.max_frame);
    let Some(n) = fits else {
        out.truncate(start);
        return Err(ThriftError::FrameTooLarge {
            claimed: len,
            max: limits.max_frame,
        });
    };
    if transport == Transport::Framed {
        out[start..start + FRAME_PREFIX].copy_from_slice(&n.to_be_bytes());
    }
    Ok(())
}

/// Writes one whole message into `out`: frame prefix (when framed), header, then the body
/// written by `body` (which must write exactly one struct: the arguments or the result).
/// The frame length is patched afterwards and checked against `limits.max_frame`.
#[allow(clippy::too_many_arguments)]
pub fn encode_message<E: From<ThriftError>>(
    proto: Protocol,
    transport: Transport,
    name: &str,
    mtype: MessageType,
    seqid: i32,
    limits: &Limits,
    out: &mut Vec<u8>,
    body: impl FnOnce(&mut Writer<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let start = begin_message(proto, transport, name, mtype, seqid, out);
    if let Err(e) = body(&mut Writer::new(proto, out)) {
        out.truncate(start);
        return Err(e);
    }
    finish_message(transport, out, start, limits).map_err(E::from)
}

/// [`encode_message`] for a call: message type `Call`, or `Oneway` when `oneway` is set.
#[allow(clippy::too_many_arguments)]
pub fn encode_call<E: From<ThriftError>>(
    proto: Protocol,
    transport: Transport,
    service_method_name: &str,
    seqid: i32,
    oneway: bool,
    limits: &Limits,
    out: &mut Vec<u8>,
    args: impl FnOnce(&mut Writer<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let mtype = if oneway {
        MessageType::Oneway
    } else {
        MessageType::Call
    };
    encode_message(
        proto,
        transport,
        service_method_name,
        mtype,
        seqid,
        limits,
        out,
        args,
    )
}
