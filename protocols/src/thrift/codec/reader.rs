//! Reads Thrift values (binary or compact) from a byte slice. Never allocates: strings come
//! back as borrowed slices. Every claimed length is checked against the limits and against
//! `max_frame` before it is used, and running out of bytes is `ThriftError::Incomplete` with
//! the total length that would be needed, so callers can tell "truncated" from "need more".

use super::{Limits, MessageHeader, MessageType, Protocol, TType};
use crate::thrift::error::ThriftError;

const BINARY_VERSION_MASK: u32 = 0xffff_0000;
const BINARY_VERSION_1: u32 = 0x8001_0000;
const COMPACT_PROTOCOL_ID: u8 = 0x82;
const COMPACT_VERSION: u8 = 1;

/// A cursor over one buffer.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    proto: Protocol,
    limits: Limits,
    depth: usize,
    /// Compact: id of the previous field of the struct being read (ids are sent as deltas).
    last_fid: i16,
    /// Compact: a bool field carries its value in the field header; it waits here.
    pending_bool: Option<bool>,
}

impl<'a> Reader<'a> {
    pub fn new(proto: Protocol, buf: &'a [u8], limits: Limits) -> Self {
        Self {
            buf,
            pos: 0,
            proto,
            limits,
            depth: 0,
            last_fid: 0,
            pending_bool: None,
        }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn set_position(&mut self, pos: usize) {
        self.pos = pos;
    }

    pub fn protocol(&self) -> Protocol {
        self.proto
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Takes `n` bytes, or says how many would be needed.
    fn take(&mut self, n: usize) -> Result<&'a [u8], ThriftError> {
        let end = self.pos.checked_add(n).ok_or(ThriftError::OutOfRange)?;
        match self.buf.get(self.pos..end) {
            Some(s) => {
                self.pos = end;
                Ok(s)
            }
            None => Err(ThriftError::Incomplete { needed: end }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ThriftError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, ThriftError> {
        Ok(self.array::<1>()?[0])
    }

    fn varint(&mut self, max_bytes: usize) -> Result<u64, ThriftError> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let b = self.u8()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ThriftError::VarintTooLong)
    }

    fn varint32(&mut self) -> Result<u32, ThriftError> {
        u32::try_from(self.varint(5)?).map_err(|_| ThriftError::VarintTooLong)
    }

    fn zigzag32(&mut self) -> Result<i32, ThriftError> {
        let u = self.varint32()?;
        Ok((u >> 1) as i32 ^ -((u & 1) as i32))
    }

    /// Checks a length or count claimed by the wire: not negative, within its own limit, and
    /// ending (at `min_unit` bytes per unit) inside the largest message we accept.
    fn claim(
        &self,
        n: i64,
        max: usize,
        min_unit: usize,
        string: bool,
    ) -> Result<usize, ThriftError> {
        let n = usize::try_from(n).map_err(|_| ThriftError::NegativeSize(n as i32))?;
        if n > max {
            return Err(if string {
                ThriftError::StringTooLong { claimed: n, max }
            } else {
                ThriftError::ContainerTooLarge { claimed: n, max }
            });
        }
        let end = n.saturating_mul(min_unit).saturating_add(self.pos);
        if end > self.limits.max_frame.saturating_add(4) {
            return Err(ThriftError::FrameTooLarge {
                claimed: end,
                max: self.limits.max_frame,
            });
        }
        Ok(n)
    }

    fn size(&mut self) -> Result<i64, ThriftError> {
        Ok(match self.proto {
            Protocol::Binary => i64::from(i32::from_be_bytes(self.array()?)),
            Protocol::Compact => i64::from(self.varint32()? as i32),
        })
    }

    fn enter(&mut self) -> Result<(), ThriftError> {
        if self.depth >= self.limits.max_depth {
            return Err(ThriftError::DepthExceeded {
                max: self.limits.max_depth,
            });
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Reads a message header (strict or old-style binary, or compact). Offsets are absolute.
    pub fn read_message_header(&mut self) -> Result<MessageHeader, ThriftError> {
        match self.proto {
            Protocol::Binary => {
                let first = i32::from_be_bytes(self.array()?);
                if first < 0 {
                    let v = first as u32;
                    if v & BINARY_VERSION_MASK != BINARY_VERSION_1 {
                        return Err(ThriftError::BadVersion);
                    }
                    let mtype = MessageType::from_u8((v & 0xff) as u8)?;
                    let name = self.read_binary()?;
                    let name_start = self.pos - name.len();
                    let seqid_start = self.pos;
                    let seqid = i32::from_be_bytes(self.array()?);
                    Ok(MessageHeader {
                        name: name_start..seqid_start,
                        mtype,
                        seqid,
                        seqid_at: seqid_start..self.pos,
                        body: self.pos,
                    })
                } else {
                    // Old unversioned header: name length, name, type byte, seqid.
                    let len = self.claim(i64::from(first), self.limits.max_string, 1, true)?;
                    let name_start = self.pos;
                    self.take(len)?;
                    let name_end = self.pos;
                    let mtype = MessageType::from_u8(self.u8()?)?;
                    let seqid_start = self.pos;
                    let seqid = i32::from_be_bytes(self.array()?);
                    Ok(MessageHeader {
                        name: name_start..name_end,
                        mtype,
                        seqid,
                        seqid_at: seqid_start..self.pos,
                        body: self.pos,
                    })
                }
            }
            Protocol::Compact => {
                if self.u8()? != COMPACT_PROTOCOL_ID {
                    return Err(ThriftError::BadVersion);
                }
                let vt = self.u8()?;
                if vt & 0x1f != COMPACT_VERSION {
                    return Err(ThriftError::BadVersion);
                }
                let mtype = MessageType::from_u8(vt >> 5)?;
                let seqid_start = self.pos;
                let seqid = self.varint32()? as i32;
                let seqid_end = self.pos;
                let name = self.read_binary()?;
                Ok(MessageHeader {
                    name: self.pos - name.len()..self.pos,
                    mtype,
                    seqid,
                    seqid_at: seqid_start..seqid_end,
                    body: self.pos,
                })
            }
        }
    }

    /// Enters a struct; returns what [`Self::read_struct_end`] needs to restore.
    pub fn read_struct_begin(&mut self) -> Result<i16, ThriftError> {
        self.enter()?;
        Ok(std::mem::replace(&mut self.last_fid, 0))
    }

    pub fn read_struct_end(&mut self, saved: i16) {
        self.last_fid = saved;
        self.leave();
    }

    /// Next field header: `None` at the end of the struct.
    pub fn read_field_begin(&mut self) -> Result<Option<(TType, i16)>, ThriftError> {
        match self.proto {
            Protocol::Binary => {
                let t = TType::from_binary(self.u8()?)?;
                if t == TType::Stop {
                    return Ok(None);
                }
                let id = i16::from_be_bytes(self.array()?);
                Ok(Some((t, id)))
            }
            Protocol::Compact => {
                let b = self.u8()?;
                if b == 0 {
                    return Ok(None);
                }
                let low = b & 0x0f;
                let t = TType::from_compact(low)?;
                if t == TType::Stop {
                    return Err(ThriftError::UnknownType(b));
                }
                let delta = b >> 4;
                let id = if delta == 0 {
                    i16::try_from(self.zigzag32()?).map_err(|_| ThriftError::OutOfRange)?
                } else {
                    self.last_fid
                        .checked_add(i16::from(delta))
                        .ok_or(ThriftError::OutOfRange)?
                };
                self.last_fid = id;
                if t == TType::Bool {
                    self.pending_bool = Some(low == 1);
                }
                Ok(Some((t, id)))
            }
        }
    }

    pub fn read_bool(&mut self) -> Result<bool, ThriftError> {
        if let Some(v) = self.pending_bool.take() {
            return Ok(v);
        }
        // Binary writes 1/0; compact containers write 1 (true) / 2 (false).
        Ok(self.u8()? == 1)
    }

    pub fn read_byte(&mut self) -> Result<i8, ThriftError> {
        Ok(self.u8()? as i8)
    }

    pub fn read_i16(&mut self) -> Result<i16, ThriftError> {
        match self.proto {
            Protocol::Binary => Ok(i16::from_be_bytes(self.array()?)),
            Protocol::Compact => {
                i16::try_from(self.zigzag32()?).map_err(|_| ThriftError::OutOfRange)
            }
        }
    }

    pub fn read_i32(&mut self) -> Result<i32, ThriftError> {
        match self.proto {
            Protocol::Binary => Ok(i32::from_be_bytes(self.array()?)),
            Protocol::Compact => self.zigzag32(),
        }
    }

    pub fn read_i64(&mut self) -> Result<i64, ThriftError> {
        match self.proto {
            Protocol::Binary => Ok(i64::from_be_bytes(self.array()?)),
            Protocol::Compact => {
                let u = self.varint(10)?;
                Ok((u >> 1) as i64 ^ -((u & 1) as i64))
            }
        }
    }

    pub fn read_double(&mut self) -> Result<f64, ThriftError> {
        Ok(match self.proto {
            Protocol::Binary => f64::from_bits(u64::from_be_bytes(self.array()?)),
            // Compact doubles are little-endian, unlike everything else in Thrift.
            Protocol::Compact => f64::from_bits(u64::from_le_bytes(self.array()?)),
        })
    }

    /// A string or binary value, borrowed from the buffer.
    pub fn read_binary(&mut self) -> Result<&'a [u8], ThriftError> {
        let n = self.size()?;
        let n = self.claim(n, self.limits.max_string, 1, true)?;
        self.take(n)
    }

    /// List or set header: element type and count. Call [`Self::read_container_end`] after.
    pub fn read_list_begin(&mut self) -> Result<(TType, usize), ThriftError> {
        self.enter()?;
        let (t, n) = match self.proto {
            Protocol::Binary => {
                let t = TType::from_binary(self.u8()?)?;
                (t, self.size()?)
            }
            Protocol::Compact => {
                let b = self.u8()?;
                let t = TType::from_compact(b & 0x0f)?;
                let short = b >> 4;
                let n = if short == 15 {
                    i64::from(self.varint32()? as i32)
                } else {
                    i64::from(short)
                };
                (t, n)
            }
        };
        let n = self.claim(n, self.limits.max_container, 1, false)?;
        Ok((t, n))
    }

    /// Map header: key type, value type and count. Call [`Self::read_container_end`] after.
    pub fn read_map_begin(&mut self) -> Result<(TType, TType, usize), ThriftError> {
        self.enter()?;
        let (k, v, n) = match self.proto {
            Protocol::Binary => {
                let k = TType::from_binary(self.u8()?)?;
                let v = TType::from_binary(self.u8()?)?;
                (k, v, self.size()?)
            }
            Protocol::Compact => {
                let n = i64::from(self.varint32()? as i32);
                if n == 0 {
                    // An empty compact map has no type byte; any types will do.
                    (TType::Stop, TType::Stop, 0)
                } else {
                    let b = self.u8()?;
                    (
                        TType::from_compact(b >> 4)?,
                        TType::from_compact(b & 0x0f)?,
                        n,
                    )
                }
            }
        };
        let n = self.claim(n, self.limits.max_container, 2, false)?;
        Ok((k, v, n))
    }

    pub fn read_container_end(&mut self) {
        self.leave();
    }

    /// Skips one value of type `t`, copying nothing.
    pub fn skip(&mut self, t: TType) -> Result<(), ThriftError> {
        match t {
            TType::Stop => return Err(ThriftError::UnknownType(0)),
            TType::Bool => {
                self.read_bool()?;
            }
            TType::Byte => {
                self.take(1)?;
            }
            TType::I16 => {
                self.read_i16()?;
            }
            TType::I32 => {
                self.read_i32()?;
            }
            TType::I64 => {
                self.read_i64()?;
            }
            TType::Double => {
                self.take(8)?;
            }
            TType::String => {
                self.read_binary()?;
            }
            TType::Struct => {
                let saved = self.read_struct_begin()?;
                while let Some((ft, _)) = self.read_field_begin()? {
                    self.skip(ft)?;
                }
                self.read_struct_end(saved);
            }
            TType::List | TType::Set => {
                let (et, n) = self.read_list_begin()?;
                for _ in 0..n {
                    self.skip(et)?;
                }
                self.read_container_end();
            }
            TType::Map => {
                let (kt, vt, n) = self.read_map_begin()?;
                for _ in 0..n {
                    self.skip(kt)?;
                    self.skip(vt)?;
                }
                self.read_container_end();
            }
        }
        Ok(())
    }
}
