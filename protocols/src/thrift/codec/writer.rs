//! Writes Thrift values (binary or compact) into a `Vec<u8>`. It only appends to the caller's
//! buffer (which a pool keeps and reuses), so steady-state writing does not allocate.
//!
//! Containers whose size is not known up front (a JSON array being streamed) are written with
//! [`Writer::list_begin_open`] / [`Writer::list_end_open`]: a placeholder header of the widest
//! form, patched once the count is known. Binary headers have a fixed width and are patched in
//! place; compact headers are shorter for small counts, so the elements are moved back over the
//! unused header bytes (one `copy_within`, no allocation).

use super::{MessageType, Protocol, TType};
use crate::thrift::error::ThriftError;

/// Writes `v` as an unsigned LEB128 varint into `out`; returns the byte count (1..=5).
pub(crate) fn encode_varint32(mut v: u32, out: &mut [u8; 5]) -> usize {
    let mut i = 0;
    while v >= 0x80 && i < 4 {
        out[i] = (v as u8 & 0x7f) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

fn zigzag32(n: i32) -> u32 {
    ((n << 1) ^ (n >> 31)) as u32
}

fn zigzag64(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// Where an open container header sits, for [`Writer::list_end_open`]/[`Writer::map_end_open`].
#[derive(Debug, Clone, Copy)]
pub struct OpenContainer {
    at: usize,
    key: TType,
    value: TType,
}

/// Widest compact list header: type byte + 5-byte varint count.
const COMPACT_LIST_OPEN: usize = 6;
/// Widest compact map header: 5-byte varint count + types byte.
const COMPACT_MAP_OPEN: usize = 6;

/// Appends Thrift values to a buffer.
pub struct Writer<'o> {
    out: &'o mut Vec<u8>,
    proto: Protocol,
    /// Compact: id of the previous field in the current struct.
    last_fid: i16,
    /// Compact: a bool field's header waits for its value (they share one byte).
    pending_bool_field: Option<i16>,
}

impl<'o> Writer<'o> {
    pub fn new(proto: Protocol, out: &'o mut Vec<u8>) -> Self {
        Self {
            out,
            proto,
            last_fid: 0,
            pending_bool_field: None,
        }
    }

    pub fn protocol(&self) -> Protocol {
        self.proto
    }

    /// Bytes in the buffer so far (a mark to [`Self::rollback`] to).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Saves the state needed to undo a field header (see [`Self::rollback`]).
    pub fn mark(&self) -> (usize, i16) {
        (self.out.len(), self.last_fid)
    }

    /// Forgets everything written since `mark` (used when a JSON field turns out to be null).
    pub fn rollback(&mut self, mark: (usize, i16)) {
        self.out.truncate(mark.0);
        self.last_fid = mark.1;
        self.pending_bool_field = None;
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    fn size(&mut self, n: usize) -> Result<(), ThriftError> {
        let n = i32::try_from(n).map_err(|_| ThriftError::OutOfRange)?;
        match self.proto {
            Protocol::Binary => self.out.extend_from_slice(&n.to_be_bytes()),
            Protocol::Compact => self.varint(u64::from(n as u32)),
        }
        Ok(())
    }

    pub fn message_begin(&mut self, name: &str, mtype: MessageType, seqid: i32) {
        match self.proto {
            Protocol::Binary => {
                let version = 0x8001_0000u32 | mtype as u32;
                self.out.extend_from_slice(&version.to_be_bytes());
                self.out
                    .extend_from_slice(&(name.len() as i32).to_be_bytes());
                self.out.extend_from_slice(name.as_bytes());
                self.out.extend_from_slice(&seqid.to_be_bytes());
            }
            Protocol::Compact => {
                self.out.push(0x82);
                self.out.push(((mtype as u8) << 5) | 1);
                self.varint(u64::from(seqid as u32));
                self.varint(name.len() as u64);
                self.out.extend_from_slice(name.as_bytes());
            }
        }
    }

    /// Starts a struct; pass the returned value to [`Self::struct_end`].
    pub fn struct_begin(&mut self) -> i16 {
        std::mem::replace(&mut self.last_fid, 0)
    }

    /// Ends a struct (writes the stop byte).
    pub fn struct_end(&mut self, saved: i16) {
        self.out.push(0);
        self.last_fid = saved;
    }

    pub fn field_begin(&mut self, t: TType, id: i16) {
        match self.proto {
            Protocol::Binary => {
                self.out.push(t as u8);
                self.out.extend_from_slice(&id.to_be_bytes());
            }
            Protocol::Compact => {
                if t == TType::Bool {
                    self.pending_bool_field = Some(id);
                } else {
                    self.compact_field_header(t.to_compact(), id);
                }
            }
        }
    }

    fn compact_field_header(&mut self, ct: u8, id: i16) {
        let delta = i32::from(id) - i32::from(self.last_fid);
        if (1..=15).contains(&delta) {
            self.out.push(((delta as u8) << 4) | ct);
        } else {
            self.out.push(ct);
            self.varint(u64::from(zigzag32(i32::from(id))));
        }
        self.last_fid = id;
    }

    pub fn bool(&mut self, v: bool) {
        match self.proto {
            Protocol::Binary => self.out.push(u8::from(v)),
            Protocol::Compact => {
                let ct = if v { 1 } else { 2 };
                match self.pending_bool_field.take() {
                    Some(id) => self.compact_field_header(ct, id),
                    None => self.out.push(ct),
                }
            }
        }
    }

    pub fn byte(&mut self, v: i8) {
        self.out.push(v as u8);
    }

    pub fn i16(&mut self, v: i16) {
        match self.proto {
            Protocol::Binary => self.out.extend_from_slice(&v.to_be_bytes()),
            Protocol::Compact => self.varint(u64::from(zigzag32(i32::from(v)))),
        }
    }

    pub fn i32(&mut self, v: i32) {
        match self.proto {
            Protocol::Binary => self.out.extend_from_slice(&v.to_be_bytes()),
            Protocol::Compact => self.varint(u64::from(zigzag32(v))),
        }
    }

    pub fn i64(&mut self, v: i64) {
        match self.proto {
            Protocol::Binary => self.out.extend_from_slice(&v.to_be_bytes()),
            Protocol::Compact => self.varint(zigzag64(v)),
        }
    }

    pub fn double(&mut self, v: f64) {
        match self.proto {
            Protocol::Binary => self.out.extend_from_slice(&v.to_bits().to_be_bytes()),
            Protocol::Compact => self.out.extend_from_slice(&v.to_bits().to_le_bytes()),
        }
    }

    pub fn binary(&mut self, v: &[u8]) -> Result<(), ThriftError> {
        self.size(v.len())?;
        self.out.extend_from_slice(v);
        Ok(())
    }

    /// Starts a string whose bytes the caller appends through [`Self::raw`] (base64 decoded
    /// straight into the buffer); finish with [`Self::binary_end_open`].
    pub fn binary_begin_open(&mut self) -> usize {
        let at = self.out.len();
        let width = match self.proto {
            Protocol::Binary => 4,
            Protocol::Compact => 5,
        };
        self.out.extend_from_slice(&[0; 5][..width]);
        at
    }

    pub fn binary_end_open(&mut self, at: usize) -> Result<(), ThriftError> {
        let (width, n) = match self.proto {
            Protocol::Binary => (4, self.out.len() - at - 4),
            Protocol::Compact => (5, self.out.len() - at - 5),
        };
        let n32 = i32::try_from(n).map_err(|_| ThriftError::OutOfRange)?;
        match self.proto {
            Protocol::Binary => self.out[at..at + width].copy_from_slice(&n32.to_be_bytes()),
            Protocol::Compact => {
                let mut tmp = [0u8; 5];
                let used = encode_varint32(n32 as u32, &mut tmp);
                self.close_gap(at, width, &tmp[..used]);
            }
        }
        Ok(())
    }

    /// Appends raw bytes (the payload of an open string).
    pub fn raw(&mut self) -> &mut Vec<u8> {
        self.out
    }

    /// Writes `header` at `at` in place of a `reserved`-byte placeholder, moving what follows
    /// back over the unused bytes.
    fn close_gap(&mut self, at: usize, reserved: usize, header: &[u8]) {
        let body = at + reserved;
        let new_body = at + header.len();
        self.out[at..new_body].copy_from_slice(header);
        if new_body != body {
            let end = self.out.len();
            self.out.copy_within(body..end, new_body);
            self.out.truncate(end - (body - new_body));
        }
    }

    pub fn list_begin(&mut self, elem: TType, n: usize) -> Result<(), ThriftError> {
        match self.proto {
            Protocol::Binary => {
                self.out.push(elem as u8);
                self.size(n)
            }
            Protocol::Compact => {
                if n < 15 {
                    self.out.push(((n as u8) << 4) | elem.to_compact());
                    Ok(())
                } else {
                    self.out.push(0xf0 | elem.to_compact());
                    self.size(n)
                }
            }
        }
    }

    pub fn map_begin(&mut self, key: TType, value: TType, n: usize) -> Result<(), ThriftError> {
        match self.proto {
            Protocol::Binary => {
                self.out.push(key as u8);
                self.out.push(value as u8);
                self.size(n)
            }
            Protocol::Compact => {
                self.size(n)?;
                if n > 0 {
                    self.out.push((key.to_compact() << 4) | value.to_compact());
                }
                Ok(())
            }
        }
    }

    /// Starts a list or set whose length is not known yet.
    pub fn list_begin_open(&mut self, elem: TType) -> OpenContainer {
        let at = self.out.len();
        let width = match self.proto {
            Protocol::Binary => 5,
            Protocol::Compact => COMPACT_LIST_OPEN,
        };
        self.out.extend_from_slice(&[0; 6][..width]);
        OpenContainer {
            at,
            key: elem,
            value: elem,
        }
    }

    pub fn list_end_open(&mut self, open: OpenContainer, n: usize) -> Result<(), ThriftError> {
        let mut header = [0u8; 6];
        let used = self.header_bytes(open, n, false, &mut header)?;
        let reserved = match self.proto {
            Protocol::Binary => 5,
            Protocol::Compact => COMPACT_LIST_OPEN,
        };
        self.close_gap(open.at, reserved, &header[..used]);
        Ok(())
    }

    /// Starts a map whose length is not known yet.
    pub fn map_begin_open(&mut self, key: TType, value: TType) -> OpenContainer {
        let at = self.out.len();
        let width = match self.proto {
            Protocol::Binary => 6,
            Protocol::Compact => COMPACT_MAP_OPEN,
        };
        self.out.extend_from_slice(&[0; 6][..width]);
        OpenContainer { at, key, value }
    }

    pub fn map_end_open(&mut self, open: OpenContainer, n: usize) -> Result<(), ThriftError> {
        let mut header = [0u8; 6];
        let used = self.header_bytes(open, n, true, &mut header)?;
        self.close_gap(open.at, 6, &header[..used]);
        Ok(())
    }

    fn header_bytes(
        &self,
        open: OpenContainer,
        n: usize,
        map: bool,
        h: &mut [u8; 6],
    ) -> Result<usize, ThriftError> {
        let n32 = i32::try_from(n).map_err(|_| ThriftError::OutOfRange)?;
        let mut var = [0u8; 5];
        Ok(match (self.proto, map) {
            (Protocol::Binary, false) => {
                h[0] = open.key as u8;
                h[1..5].copy_from_slice(&n32.to_be_bytes());
                5
            }
            (Protocol::Binary, true) => {
                h[0] = open.key as u8;
                h[1] = open.value as u8;
                h[2..6].copy_from_slice(&n32.to_be_bytes());
                6
            }
            (Protocol::Compact, false) => {
                if n < 15 {
                    h[0] = ((n as u8) << 4) | open.key.to_compact();
                    1
                } else {
                    h[0] = 0xf0 | open.key.to_compact();
                    let used = encode_varint32(n32 as u32, &mut var);
                    h[1..1 + used].copy_from_slice(&var[..used]);
                    1 + used
                }
            }
            (Protocol::Compact, true) => {
                let used = encode_varint32(n32 as u32, &mut var);
                h[..used].copy_from_slice(&var[..used]);
                if n == 0 {
                    used
                } else {
                    h[used] = (open.key.to_compact() << 4) | open.value.to_compact();
                    used + 1
                }
            }
        })
    }
}
