//! Entry points of the JSON -> Thrift direction: the arguments of a call (body object or
//! one argument, plus request parameters given as text) and the result of a reply. The
//! per-type work is in `to_thrift.rs`.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use std::fmt;

use super::to_thrift::{
    finish_struct, is_scalar, scalar_from_str, struct_members, Ctx, PathSeg, Seen, StrSource, Value,
};
use super::{MappingError, MappingPolicy, UnknownFields};
use crate::thrift::codec::{Protocol, Writer};
use crate::thrift::idl::{Idl, Method, StructDef};

/// The arguments object at the top of the body.
struct ArgsObject<'c, 'i, 'o, 's> {
    ctx: &'c mut Ctx<'i, 'o>,
    sd: &'i StructDef,
    seen: &'s mut Seen,
}

impl<'de> DeserializeSeed<'de> for ArgsObject<'_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ArgsObject<'_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with the arguments")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        struct_members(self.ctx, self.sd, &mut map, self.seen)
    }
}

/// Writes the arguments struct of `method` (not the message header) to `out`, from the JSON
/// `body` (an object of arguments by name; empty means `{}`; see `MappingPolicy::body_arg`)
/// and `extra` arguments given as text (path, query, headers), converted to their declared
/// type: scalars from their text (binary = the text's bytes), others parsed as JSON.
/// Required arguments and fields are checked before anything is sent. On error `out` is left
/// as it was.
pub fn json_to_args(
    idl: &Idl,
    method: &Method,
    body: &[u8],
    extra: &[(&str, &str)],
    policy: &MappingPolicy,
    proto: Protocol,
    out: &mut Vec<u8>,
) -> Result<(), MappingError> {
    let start = out.len();
    let mut ctx = Ctx {
        idl,
        policy,
        w: Writer::new(proto, out),
        depth: 0,
        err: None,
        path: Vec::new(),
    };
    let result = args(&mut ctx, method, body, extra);
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let err = ctx.into_error(e);
            out.truncate(start);
            Err(err)
        }
    }
}

fn args<'i>(
    ctx: &mut Ctx<'i, '_>,
    method: &Method,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Result<(), serde_json::Error> {
    let idl = ctx.idl;
    let policy = ctx.policy;
    let sd: &'i StructDef = idl.struct_def(method.args);
    ctx.enter()?;
    let saved = ctx.w.struct_begin();
    let mut seen = Seen::new(sd.fields.len());
    if !body.iter().all(u8::is_ascii_whitespace) {
        let mut de = serde_json::Deserializer::from_slice(body);
        match &policy.body_arg {
            None => ArgsObject {
                ctx: &mut *ctx,
                sd,
                seen: &mut seen,
            }
            .deserialize(&mut de)?,
            Some(name) => {
                let Some((i, f)) = sd.field_by_name(name) else {
                    return Err(ctx.fail(format!("`{name}` is not an argument of {}", method.name)));
                };
                let mark = ctx.w.mark();
                ctx.w.field_begin(f.ty.ttype(), f.id);
                match (Value {
                    ctx: &mut *ctx,
                    ty: &f.ty,
                })
                .deserialize(&mut de)
                {
                    Ok(true) => seen.set(i),
                    Ok(false) => ctx.w.rollback(mark),
                    Err(e) => {
                        ctx.path.push(PathSeg::Field(&f.name));
                        return Err(e);
                    }
                }
            }
        }
        de.end()?;
    }
    for (name, value) in extra {
        extra_arg(ctx, sd, &mut seen, name, value)?;
    }
    finish_struct(ctx, sd, &seen)?;
    ctx.w.struct_end(saved);
    ctx.leave();
    Ok(())
}

fn extra_arg<'i>(
    ctx: &mut Ctx<'i, '_>,
    sd: &'i StructDef,
    seen: &mut Seen,
    name: &str,
    value: &str,
) -> Result<(), serde_json::Error> {
    let Some((i, f)) = sd.field_by_name(name) else {
        if ctx.policy.unknown_fields == UnknownFields::Ignore {
            return Ok(());
        }
        return Err(ctx.fail(format!("unknown argument `{name}`")));
    };
    if seen.get(i) {
        ctx.path.push(PathSeg::Field(&f.name));
        return Err(ctx.fail("argument is given twice (body and request parameters)"));
    }
    let mark = ctx.w.mark();
    ctx.w.field_begin(f.ty.ttype(), f.id);
    let result = if is_scalar(&f.ty) {
        match scalar_from_str(ctx, &f.ty, value, StrSource::Param) {
            Ok(()) => Ok(true),
            Err(m) => Err(ctx.fail(m)),
        }
    } else {
        let mut de = serde_json::Deserializer::from_str(value);
        (Value {
            ctx: &mut *ctx,
            ty: &f.ty,
        })
        .deserialize(&mut de)
        .and_then(|w| de.end().map(|()| w))
    };
    match result {
        Ok(true) => seen.set(i),
        Ok(false) => ctx.w.rollback(mark),
        Err(e) => {
            ctx.path.push(PathSeg::Field(&f.name));
            return Err(e);
        }
    }
    Ok(())
}

/// Writes the result struct of `method` from JSON, for Thrift servers built on this crate
/// (the demo service, tests): `exception_field: None` puts `json` in `success` (ignored for
/// void methods), `Some(name)` puts it in the declared exception field `name`.
pub fn json_to_result(
    idl: &Idl,
    method: &Method,
    exception_field: Option<&str>,
    json: &[u8],
    policy: &MappingPolicy,
    proto: Protocol,
    out: &mut Vec<u8>,
) -> Result<(), MappingError> {
    let start = out.len();
    let mut ctx = Ctx {
        idl,
        policy,
        w: Writer::new(proto, out),
        depth: 0,
        err: None,
        path: Vec::new(),
    };
    let result = result_struct(&mut ctx, method, exception_field, json);
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let err = ctx.into_error(e);
            out.truncate(start);
            Err(err)
        }
    }
}

fn result_struct(
    ctx: &mut Ctx<'_, '_>,
    method: &Method,
    field: Option<&str>,
    json: &[u8],
) -> Result<(), serde_json::Error> {
    let idl = ctx.idl;
    let sd = idl.struct_def(method.result);
    ctx.enter()?;
    let saved = ctx.w.struct_begin();
    let name = field.unwrap_or("success");
    match sd.field_by_name(name) {
        Some((_, f)) if field.is_none() || f.id != 0 => {
            let mut de = serde_json::Deserializer::from_slice(json);
            let mark = ctx.w.mark();
            ctx.w.field_begin(f.ty.ttype(), f.id);
            match (Value {
                ctx: &mut *ctx,
                ty: &f.ty,
            })
            .deserialize(&mut de)
            {
                Ok(true) => {}
                Ok(false) => ctx.w.rollback(mark),
                Err(e) => {
                    ctx.path.push(PathSeg::Field(&f.name));
                    return Err(e);
                }
            }
            de.end()?;
        }
        None if field.is_none() => {} // void
        _ => return Err(ctx.fail(format!("`{name}` is not an exception of {}", method.name))),
    }
    ctx.w.struct_end(saved);
    ctx.leave();
    Ok(())
}
