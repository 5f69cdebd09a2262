//! Thrift reply -> JSON text, in one pass: the codec reader walks the result struct as the
//! IDL describes it and JSON is appended to the output buffer as values are read. No tree,
//! and no allocation besides the output buffer's growth (strings are borrowed from the reply).

use std::io::Write as _;

use super::{base64, AppExceptionKind, MappingPolicy, ReplyKind};
use crate::thrift::codec::{MessageHeader, MessageType, Protocol, Reader, TType};
use crate::thrift::idl::{Idl, Method, Ty};
use crate::thrift::ThriftError;

/// Reads a reply message (without frame prefix: see `codec::strip_frame`) to `method` and
/// writes its JSON to `out`: the return value (`null` for void) on success, the exception
/// struct for a declared exception, nothing for a TApplicationException. The reply must name
/// the method (`method` or `Service:method`). On error `out` is left as it was.
pub fn reply_to_json<'i>(
    idl: &'i Idl,
    method: &'i Method,
    proto: Protocol,
    reply: &[u8],
    policy: &MappingPolicy,
    out: &mut Vec<u8>,
) -> Result<ReplyKind<'i>, ThriftError> {
    let start = out.len();
    let cap = out.len().saturating_add(policy.max_json_bytes);
    let mut j = JsonOut {
        idl,
        policy,
        out,
        cap,
    };
    let result = j.reply(method, proto, reply);
    if result.is_err() {
        out.truncate(start);
    }
    result.map_err(|e| match e {
        ThriftError::Incomplete { .. } => ThriftError::Truncated,
        other => other,
    })
}

/// Reads a call message (without frame prefix) to `method` and writes its arguments as a
/// JSON object, for Thrift servers built on this crate. Returns the header (for the seqid).
pub fn args_to_json(
    idl: &Idl,
    method: &Method,
    proto: Protocol,
    call: &[u8],
    policy: &MappingPolicy,
    out: &mut Vec<u8>,
) -> Result<MessageHeader, ThriftError> {
    let start = out.len();
    let mut r = Reader::new(proto, call, policy.limits);
    let result = r.read_message_header().and_then(|h| {
        if !names_method(call.get(h.name.clone()).unwrap_or_default(), &method.name) {
            return Err(ThriftError::Unexpected("call names another method"));
        }
        if !matches!(h.mtype, MessageType::Call | MessageType::Oneway) {
            return Err(ThriftError::Unexpected("expected a call"));
        }
        let cap = start.saturating_add(policy.max_json_bytes);
        JsonOut {
            idl,
            policy,
            out: &mut *out,
            cap,
        }
        .value(&mut r, &Ty::Struct(method.args))?;
        Ok(h)
    });
    if result.is_err() {
        out.truncate(start);
    }
    result.map_err(|e| match e {
        ThriftError::Incomplete { .. } => ThriftError::Truncated,
        other => other,
    })
}

fn names_method(wire: &[u8], method: &str) -> bool {
    match wire.strip_suffix(method.as_bytes()) {
        Some([]) => true,
        Some(prefix) => prefix.last() == Some(&b':'),
        None => false,
    }
}

struct JsonOut<'a, 'i> {
    idl: &'i Idl,
    policy: &'a MappingPolicy,
    out: &'a mut Vec<u8>,
    /// `out.len()` past which `max_json_bytes` is exceeded.
    cap: usize,
}

impl<'i> JsonOut<'_, 'i> {
    fn reply(
        &mut self,
        method: &'i Method,
        proto: Protocol,
        reply: &[u8],
    ) -> Result<ReplyKind<'i>, ThriftError> {
        let mut r = Reader::new(proto, reply, self.policy.limits);
        let h = r.read_message_header()?;
        if !names_method(reply.get(h.name.clone()).unwrap_or_default(), &method.name) {
            return Err(ThriftError::Unexpected("reply names another method"));
        }
        match h.mtype {
            MessageType::Exception => return application_exception(&mut r),
            MessageType::Reply if !method.oneway => {}
            MessageType::Reply => return Err(ThriftError::Unexpected("reply to a oneway method")),
            MessageType::Call | MessageType::Oneway => {
                return Err(ThriftError::Unexpected("expected a reply, got a call"))
            }
        }
        let sd = self.idl.struct_def(method.result);
        let saved = r.read_struct_begin()?;
        let mut kind = None;
        while let Some((t, id)) = r.read_field_begin()? {
            match sd.field_by_id(id) {
                Some((_, f)) if kind.is_none() && t == f.ty.ttype() => {
                    self.value(&mut r, &f.ty)?;
                    kind = Some(match f.ty {
                        Ty::Struct(ex) if id != 0 => ReplyKind::DeclaredException {
                            field: &f.name,
                            type_name: &self.idl.struct_def(ex).name,
                        },
                        _ => ReplyKind::Success,
                    });
                }
                // A second result field or one of another type: skipped, as Apache clients do.
                _ => r.skip(t)?,
            }
        }
        r.read_struct_end(saved);
        Ok(match kind {
            Some(k) => k,
            None if method.returns.is_none() => {
                self.out.extend_from_slice(b"null");
                ReplyKind::Success
            }
            None => ReplyKind::ApplicationException {
                kind: AppExceptionKind::MissingResult,
                message: format!("{}: reply has no result", method.name),
            },
        })
    }

    fn value(&mut self, r: &mut Reader<'_>, ty: &Ty) -> Result<(), ThriftError> {
        // Checked per value: one value adds at most a few times its wire size (strings and
        // binaries are bounded by max_string), so the overshoot stays small.
        if self.out.len() > self.cap {
            return Err(ThriftError::JsonTooLarge {
                max: self.policy.max_json_bytes,
            });
        }
        match ty {
            Ty::Bool => {
                let v = r.read_bool()?;
                self.out
                    .extend_from_slice(if v { b"true" } else { b"false" });
            }
            Ty::Byte => self.int(i64::from(r.read_byte()?), false),
            Ty::I16 => self.int(i64::from(r.read_i16()?), false),
            Ty::I32 => self.int(i64::from(r.read_i32()?), false),
            Ty::I64 => self.int(r.read_i64()?, self.policy.i64_as_string),
            Ty::Double => self.double(r.read_double()?, false),
            Ty::String => json_str(self.out, r.read_binary()?),
            Ty::Binary => {
                let v = r.read_binary()?;
                self.out.push(b'"');
                base64::encode(v, self.out);
                self.out.push(b'"');
            }
            Ty::Enum(id) => self.enum_value(r.read_i32()?, *id, false),
            Ty::Struct(id) => {
                let sd = self.idl.struct_def(*id);
                let saved = r.read_struct_begin()?;
                self.out.push(b'{');
                let mut first = true;
                while let Some((t, fid)) = r.read_field_begin()? {
                    match sd.field_by_id(fid) {
                        Some((_, f)) if t == f.ty.ttype() => {
                            if !first {
                                self.out.push(b',');
                            }
                            first = false;
                            json_str(self.out, f.name.as_bytes());
                            self.out.push(b':');
                            self.value(r, &f.ty)?;
                        }
                        _ => r.skip(t)?,
                    }
                }
                r.read_struct_end(saved);
                self.out.push(b'}');
            }
            Ty::List(e) | Ty::Set(e) => {
                let (t, n) = r.read_list_begin()?;
                if n > 0 && t != e.ttype() {
                    return Err(ThriftError::Unexpected(
                        "list or set elements differ from the IDL type",
                    ));
                }
                self.out.push(b'[');
                for i in 0..n {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.value(r, e)?;
                }
                r.read_container_end();
                self.out.push(b']');
            }
            Ty::Map(k, v) => {
                let (kt, vt, n) = r.read_map_begin()?;
                if n > 0 && (kt != k.ttype() || vt != v.ttype()) {
                    return Err(ThriftError::Unexpected(
                        "map keys or values differ from the IDL types",
                    ));
                }
                let object = is_scalar(k);
                self.out.push(if object { b'{' } else { b'[' });
                for i in 0..n {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    if object {
                        self.key(r, k)?;
                        self.out.push(b':');
                        self.value(r, v)?;
                    } else {
                        self.out.push(b'[');
                        self.value(r, k)?;
                        self.out.push(b',');
                        self.value(r, v)?;
                        self.out.push(b']');
                    }
                }
                r.read_container_end();
                self.out.push(if object { b'}' } else { b']' });
            }
        }
        Ok(())
    }

    /// A scalar map key, as a JSON object key (always a string).
    fn key(&mut self, r: &mut Reader<'_>, ty: &Ty) -> Result<(), ThriftError> {
        match ty {
            Ty::Bool => {
                let v = r.read_bool()?;
                self.out
                    .extend_from_slice(if v { b"\"true\"" } else { b"\"false\"" });
            }
            Ty::Byte => self.int(i64::from(r.read_byte()?), true),
            Ty::I16 => self.int(i64::from(r.read_i16()?), true),
            Ty::I32 => self.int(i64::from(r.read_i32()?), true),
            Ty::I64 => self.int(r.read_i64()?, true),
            Ty::Double => self.double(r.read_double()?, true),
            Ty::Enum(id) => self.enum_value(r.read_i32()?, *id, true),
            // Strings and binaries are strings already.
            other => self.value(r, other)?,
        }
        Ok(())
    }

    fn int(&mut self, v: i64, quoted: bool) {
        // Writing to a Vec cannot fail.
        let _ = if quoted {
            write!(self.out, "\"{v}\"")
        } else {
            write!(self.out, "{v}")
        };
    }

    fn double(&mut self, v: f64, quoted: bool) {
        if !v.is_finite() {
            let text: &[u8] = if v.is_nan() {
                b"\"NaN\""
            } else if v > 0.0 {
                b"\"Infinity\""
            } else {
                b"\"-Infinity\""
            };
            self.out.extend_from_slice(text);
            return;
        }
        if quoted {
            self.out.push(b'"');
        }
        // serde_json prints the shortest text that reads back the same value.
        let _ = serde_json::to_writer(&mut *self.out, &v);
        if quoted {
            self.out.push(b'"');
        }
    }

    fn enum_value(&mut self, v: i32, id: crate::thrift::idl::EnumId, quoted: bool) {
        match self.idl.enum_def(id).name_of(v) {
            Some(name) => json_str(self.out, name.as_bytes()),
            // A value newer than our IDL: keep the number rather than fail the reply.
            None => self.int(i64::from(v), quoted),
        }
    }
}

fn is_scalar(ty: &Ty) -> bool {
    !matches!(ty, Ty::Struct(_) | Ty::List(_) | Ty::Set(_) | Ty::Map(..))
}

/// Appends `bytes` as a JSON string; invalid UTF-8 becomes U+FFFD.
fn json_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for chunk in bytes.utf8_chunks() {
        let s = chunk.valid().as_bytes();
        let mut from = 0;
        for (i, &b) in s.iter().enumerate() {
            let esc: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f => b"",
                _ => continue,
            };
            out.extend_from_slice(&s[from..i]);
            if esc.is_empty() {
                let _ = write!(out, "\\u{b:04x}");
            } else {
                out.extend_from_slice(esc);
            }
            from = i + 1;
        }
        out.extend_from_slice(&s[from..]);
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    out.push(b'"');
}

/// Reads a TApplicationException struct (1: message, 2: type).
fn application_exception<'i>(r: &mut Reader<'_>) -> Result<ReplyKind<'i>, ThriftError> {
    let saved = r.read_struct_begin()?;
    let mut message = String::new();
    let mut kind = AppExceptionKind::Unknown;
    while let Some((t, id)) = r.read_field_begin()? {
        match (id, t) {
            (1, TType::String) => message = String::from_utf8_lossy(r.read_binary()?).into_owned(),
            (2, TType::I32) => kind = AppExceptionKind::from_i32(r.read_i32()?),
            _ => r.skip(t)?,
        }
    }
    r.read_struct_end(saved);
    Ok(ReplyKind::ApplicationException { kind, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_invalid_utf8_replaced() {
        let mut out = Vec::new();
        json_str(&mut out, b"a\"b\\c\n\x01\xffz\xc3\xa9");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\u0001\u{fffd}z\u{e9}\""
        );
    }

    #[test]
    fn method_names_match_plain_or_multiplexed() {
        assert!(names_method(b"get", "get"));
        assert!(names_method(b"Svc:get", "get"));
        assert!(!names_method(b"forget", "get"));
        assert!(!names_method(b"ge", "get"));
    }
}
