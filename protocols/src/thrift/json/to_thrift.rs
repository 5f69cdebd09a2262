//! JSON request -> Thrift arguments, in one pass: `serde_json` parses the body and calls our
//! visitors, which know the Thrift type expected at that point and append its encoding to the
//! output at once. Lists and maps get placeholder headers patched when their end is seen.
//!
//! Errors carry a path. It is built only on failure: the first error records its message in
//! the context, and each level appends its segment (`field`, `[3]`, `["key"]`) while the error
//! unwinds, so the success path does no bookkeeping beyond a field bitset.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{base64, MappingError, MappingPolicy, UnknownFields};
use crate::thrift::codec::{Protocol, Writer};
use crate::thrift::idl::{Field, Idl, Method, Requiredness, StructDef, StructId, StructKind, Ty};

enum PathSeg<'i> {
    Field(&'i str),
    Index(usize),
    Key(String),
}

struct Ctx<'i, 'o> {
    idl: &'i Idl,
    policy: &'i MappingPolicy,
    w: Writer<'o>,
    depth: usize,
    /// Message of the first error we raised (serde's own errors have none).
    err: Option<String>,
    /// Filled while an error unwinds, innermost segment first.
    path: Vec<PathSeg<'i>>,
}

impl Ctx<'_, '_> {
    fn fail<E: de::Error>(&mut self, msg: impl fmt::Display) -> E {
        if self.err.is_none() {
            self.err = Some(msg.to_string());
        }
        E::custom("request does not match the IDL")
    }

    fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        let max = self.policy.limits.max_depth;
        if self.depth >= max {
            return Err(self.fail(format!("nested deeper than {max}")));
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Stops a small body that expands into a huge message (`[1,1,1,...]` as i64s) early.
    fn check_growth<E: de::Error>(&mut self, count: usize) -> Result<(), E> {
        let limits = self.policy.limits;
        if count > limits.max_container {
            return Err(self.fail(format!("more than {} elements", limits.max_container)));
        }
        if self.w.len() > limits.max_frame {
            return Err(self.fail(format!(
                "request exceeds the Thrift message limit of {} bytes",
                limits.max_frame
            )));
        }
        Ok(())
    }

    fn describe(&self, ty: &Ty) -> String {
        match ty {
            Ty::Bool => "bool".into(),
            Ty::Byte => "byte".into(),
            Ty::I16 => "i16".into(),
            Ty::I32 => "i32".into(),
            Ty::I64 => "i64".into(),
            Ty::Double => "double".into(),
            Ty::String => "string".into(),
            Ty::Binary => "binary (base64)".into(),
            Ty::List(_) => "list (array)".into(),
            Ty::Set(_) => "set (array)".into(),
            Ty::Map(..) => "map".into(),
            Ty::Struct(id) => format!("struct {} (object)", self.idl.struct_def(*id).name),
            Ty::Enum(id) => format!("enum {}", self.idl.enum_def(*id).name),
        }
    }

    fn into_error(self, fallback: impl fmt::Display) -> MappingError {
        let mut path = String::new();
        for seg in self.path.iter().rev() {
            match seg {
                PathSeg::Field(name) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                }
                PathSeg::Index(i) => path.push_str(&format!("[{i}]")),
                PathSeg::Key(k) => path.push_str(&format!("[{k:?}]")),
            }
        }
        MappingError {
            path,
            message: self.err.unwrap_or_else(|| fallback.to_string()),
        }
    }
}

fn is_scalar(ty: &Ty) -> bool {
    !matches!(ty, Ty::Struct(_) | Ty::List(_) | Ty::Set(_) | Ty::Map(..))
}

/// Where a string value comes from: JSON (binary is base64) or a request parameter (binary
/// is the parameter's bytes). Map keys are JSON.
#[derive(Clone, Copy, PartialEq)]
enum StrSource {
    Json,
    Param,
}

/// Which fields of a struct were written; inline up to 128 fields.
struct Seen {
    bits: u128,
    big: Vec<bool>,
}

impl Seen {
    fn new(n: usize) -> Self {
        Self {
            bits: 0,
            big: if n > 128 { vec![false; n] } else { Vec::new() },
        }
    }
    fn get(&self, i: usize) -> bool {
        if self.big.is_empty() {
            self.bits & (1 << i) != 0
        } else {
            self.big.get(i).copied().unwrap_or(false)
        }
    }
    fn set(&mut self, i: usize) {
        if self.big.is_empty() {
            self.bits |= 1 << i;
        } else if let Some(b) = self.big.get_mut(i) {
            *b = true;
        }
    }
    fn count(&self) -> usize {
        if self.big.is_empty() {
            self.bits.count_ones() as usize
        } else {
            self.big.iter().filter(|b| **b).count()
        }
    }
}

/// Writes a scalar given as text (a JSON string, an object key, a request parameter).
fn scalar_from_str(
    ctx: &mut Ctx<'_, '_>,
    ty: &Ty,
    s: &str,
    source: StrSource,
) -> Result<(), String> {
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("expected an integer, found \"{s}\""))
    };
    match ty {
        Ty::Bool => match s {
            "true" => ctx.w.bool(true),
            "false" => ctx.w.bool(false),
            _ => return Err(format!("expected true or false, found \"{s}\"")),
        },
        Ty::Byte | Ty::I16 | Ty::I32 | Ty::I64 => write_int(ctx, ty, i128::from(int(s)?))?,
        Ty::Enum(id) => {
            let def = ctx.idl.enum_def(*id);
            let v = match def.value_of(s) {
                Some(v) => i128::from(v),
                None => i128::from(
                    int(s).map_err(|_| format!("`{s}` is not a value of enum {}", def.name))?,
                ),
            };
            write_int(ctx, ty, v)?;
        }
        Ty::Double => {
            let v = s
                .parse::<f64>()
                .map_err(|_| format!("expected a number, found \"{s}\""))?;
            ctx.w.double(v);
        }
        Ty::String => {
            check_len(ctx, s.len())?;
            ctx.w.binary(s.as_bytes()).map_err(|e| e.to_string())?;
        }
        Ty::Binary if source == StrSource::Param => {
            check_len(ctx, s.len())?;
            ctx.w.binary(s.as_bytes()).map_err(|e| e.to_string())?;
        }
        Ty::Binary => {
            check_len(ctx, base64::decoded_len_max(s.as_bytes()).saturating_sub(3))?;
            let at = ctx.w.binary_begin_open();
            base64::decode(s.as_bytes(), ctx.w.raw())?;
            ctx.w.binary_end_open(at).map_err(|e| e.to_string())?;
        }
        Ty::Struct(_) | Ty::List(_) | Ty::Set(_) | Ty::Map(..) => {
            return Err(format!("expected {}, found a string", ctx.describe(ty)))
        }
    }
    Ok(())
}

fn check_len(ctx: &Ctx<'_, '_>, n: usize) -> Result<(), String> {
    let max = ctx.policy.limits.max_string;
    if n > max {
        return Err(format!("string of {n} bytes exceeds the limit of {max}"));
    }
    Ok(())
}

fn write_int(ctx: &mut Ctx<'_, '_>, ty: &Ty, v: i128) -> Result<(), String> {
    let range = |name: &str| format!("{v} is out of range for {name}");
    match ty {
        Ty::Byte => ctx.w.byte(i8::try_from(v).map_err(|_| range("byte"))?),
        Ty::I16 => ctx.w.i16(i16::try_from(v).map_err(|_| range("i16"))?),
        Ty::I32 => ctx.w.i32(i32::try_from(v).map_err(|_| range("i32"))?),
        Ty::I64 => ctx.w.i64(i64::try_from(v).map_err(|_| range("i64"))?),
        Ty::Double => ctx.w.double(v as f64),
        Ty::Enum(id) => {
            let def = ctx.idl.enum_def(*id);
            match i32::try_from(v).ok().filter(|n| def.name_of(*n).is_some()) {
                Some(n) => ctx.w.i32(n),
                None => return Err(format!("{v} is not a value of enum {}", def.name)),
            }
        }
        other => return Err(format!("expected {}, found a number", ctx.describe(other))),
    }
    Ok(())
}

/// A value of type `ty`; yields `false` for JSON `null` (nothing written).
struct Value<'c, 'i, 'o> {
    ctx: &'c mut Ctx<'i, 'o>,
    ty: &'i Ty,
}

impl<'de> DeserializeSeed<'de> for Value<'_, '_, '_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl Value<'_, '_, '_> {
    fn mismatch<E: de::Error>(self, found: &str) -> E {
        let msg = format!("expected {}, found {found}", self.ctx.describe(self.ty));
        self.ctx.fail(msg)
    }

    fn scalar<E: de::Error>(self, r: Result<(), String>) -> Result<bool, E> {
        r.map(|()| true).map_err(|m| self.ctx.fail(m))
    }
}

impl<'de> Visitor<'de> for Value<'_, '_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        if *self.ty != Ty::Bool {
            return Err(self.mismatch("a boolean"));
        }
        self.ctx.w.bool(v);
        Ok(true)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        let r = write_int(self.ctx, self.ty, i128::from(v));
        self.scalar(r)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        let r = write_int(self.ctx, self.ty, i128::from(v));
        self.scalar(r)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        if *self.ty != Ty::Double {
            return Err(self.mismatch("a fractional number"));
        }
        self.ctx.w.double(v);
        Ok(true)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<bool, E> {
        let r = scalar_from_str(self.ctx, self.ty, s, StrSource::Json);
        self.scalar(r)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        match self.ty {
            Ty::List(elem) | Ty::Set(elem) => write_list(self.ctx, elem, seq).map(|()| true),
            Ty::Map(k, v) => write_map_pairs(self.ctx, k, v, seq).map(|()| true),
            _ => Err(self.mismatch("an array")),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        match self.ty {
            Ty::Struct(id) => write_struct(self.ctx, *id, map).map(|()| true),
            Ty::Map(k, v) => write_map_object(self.ctx, k, v, map).map(|()| true),
            _ => Err(self.mismatch("an object")),
        }
    }
}

fn write_struct<'de, 'i, A: MapAccess<'de>>(
    ctx: &mut Ctx<'i, '_>,
    id: StructId,
    mut map: A,
) -> Result<(), A::Error> {
    ctx.enter()?;
    let sd = ctx.idl.struct_def(id);
    let saved = ctx.w.struct_begin();
    let mut seen = Seen::new(sd.fields.len());
    struct_members(ctx, sd, &mut map, &mut seen)?;
    finish_struct(ctx, sd, &seen)?;
    ctx.w.struct_end(saved);
    ctx.leave();
    Ok(())
}

fn required(policy: &MappingPolicy, kind: StructKind, f: &Field) -> bool {
    f.req == Requiredness::Required
        || (kind == StructKind::Args
            && f.req == Requiredness::Default
            && policy.args_required_by_default)
}

fn finish_struct<'i, E: de::Error>(
    ctx: &mut Ctx<'i, '_>,
    sd: &'i StructDef,
    seen: &Seen,
) -> Result<(), E> {
    for (i, f) in sd.fields.iter().enumerate() {
        if !seen.get(i) && required(ctx.policy, sd.kind, f) {
            ctx.path.push(PathSeg::Field(&f.name));
            return Err(ctx.fail("required field is missing"));
        }
    }
    let n = seen.count();
    if sd.kind == StructKind::Union && n != 1 {
        return Err(ctx.fail(format!("a union takes exactly one field, got {n}")));
    }
    Ok(())
}

fn struct_members<'de, 'i, A: MapAccess<'de>>(
    ctx: &mut Ctx<'i, '_>,
    sd: &'i StructDef,
    map: &mut A,
    seen: &mut Seen,
) -> Result<(), A::Error> {
    while let Some(found) = map.next_key_seed(FieldKey { ctx: &mut *ctx, sd })? {
        let Some((i, f)) = found.and_then(|i| Some((i, sd.fields.get(i)?))) else {
            map.next_value::<IgnoredAny>()?;
            continue;
        };
        if seen.get(i) {
            ctx.path.push(PathSeg::Field(&f.name));
            return Err(ctx.fail("field is given twice"));
        }
        let mark = ctx.w.mark();
        ctx.w.field_begin(f.ty.ttype(), f.id);
        match map.next_value_seed(Value {
            ctx: &mut *ctx,
            ty: &f.ty,
        }) {
            Ok(true) => seen.set(i),
            Ok(false) => ctx.w.rollback(mark),
            Err(e) => {
                ctx.path.push(PathSeg::Field(&f.name));
                return Err(e);
            }
        }
        ctx.check_growth(0)?;
    }
    Ok(())
}

/// An object key naming a field: its index, or `None` for an ignored unknown member.
struct FieldKey<'c, 'i, 'o> {
    ctx: &'c mut Ctx<'i, 'o>,
    sd: &'i StructDef,
}

impl<'de> DeserializeSeed<'de> for FieldKey<'_, '_, '_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldKey<'_, '_, '_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<usize>, E> {
        match self.sd.field_by_name(s) {
            Some((i, _)) => Ok(Some(i)),
            None if self.ctx.policy.unknown_fields == UnknownFields::Ignore => Ok(None),
            None => Err(self
                .ctx
                .fail(format!("unknown field `{s}` in {}", self.sd.name))),
        }
    }
}

fn write_list<'de, 'i, A: SeqAccess<'de>>(
    ctx: &mut Ctx<'i, '_>,
    elem: &'i Ty,
    mut seq: A,
) -> Result<(), A::Error> {
    ctx.enter()?;
    let open = ctx.w.list_begin_open(elem.ttype());
    let mut n = 0;
    loop {
        match seq.next_element_seed(Value {
            ctx: &mut *ctx,
            ty: elem,
        }) {
            Ok(None) => break,
            Ok(Some(true)) => n += 1,
            Ok(Some(false)) => {
                ctx.path.push(PathSeg::Index(n));
                return Err(ctx.fail("null is not allowed in a list or set"));
            }
            Err(e) => {
                ctx.path.push(PathSeg::Index(n));
                return Err(e);
            }
        }
        ctx.check_growth(n)?;
    }
    ctx.w.list_end_open(open, n).map_err(|e| ctx.fail(e))?;
    ctx.leave();
    Ok(())
}

/// `{"key": value}` form, for maps whose keys are scalars (keys converted from their text).
fn write_map_object<'de, 'i, A: MapAccess<'de>>(
    ctx: &mut Ctx<'i, '_>,
    k: &'i Ty,
    v: &'i Ty,
    mut map: A,
) -> Result<(), A::Error> {
    if !is_scalar(k) {
        let msg = format!(
            "a map with {} keys is written as [[key, value], ...]",
            ctx.describe(k)
        );
        return Err(ctx.fail(msg));
    }
    ctx.enter()?;
    let open = ctx.w.map_begin_open(k.ttype(), v.ttype());
    let mut n = 0;
    while let Some(key) = map.next_key_seed(MapKey {
        ctx: &mut *ctx,
        ty: k,
    })? {
        let seg = || PathSeg::Key(key.map_or_else(|| format!("#{n}"), str::to_string));
        match map.next_value_seed(Value {
            ctx: &mut *ctx,
            ty: v,
        }) {
            Ok(true) => n += 1,
            Ok(false) => {
                ctx.path.push(seg());
                return Err(ctx.fail("null is not allowed as a map value"));
            }
            Err(e) => {
                ctx.path.push(seg());
                return Err(e);
            }
        }
        ctx.check_growth(n)?;
    }
    ctx.w.map_end_open(open, n).map_err(|e| ctx.fail(e))?;
    ctx.leave();
    Ok(())
}

/// An object key of a map: writes the key; yields the text when it can be borrowed (for
/// error paths).
struct MapKey<'c, 'i, 'o> {
    ctx: &'c mut Ctx<'i, 'o>,
    ty: &'i Ty,
}

impl<'de> DeserializeSeed<'de> for MapKey<'_, '_, '_> {
    type Value = Option<&'de str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<&'de str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MapKey<'_, '_, '_> {
    type Value = Option<&'de str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map key")
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Option<&'de str>, E> {
        self.visit_str(s).map(|_| Some(s))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<&'de str>, E> {
        match scalar_from_str(self.ctx, self.ty, s, StrSource::Json) {
            Ok(()) => Ok(None),
            Err(m) => Err(self.ctx.fail(format!("map key \"{s}\": {m}"))),
        }
    }
}

/// `[[key, value], ...]` form, for any key type.
fn write_map_pairs<'de, 'i, A: SeqAccess<'de>>(
    ctx: &mut Ctx<'i, '_>,
    k: &'i Ty,
    v: &'i Ty,
    mut seq: A,
) -> Result<(), A::Error> {
    ctx.enter()?;
    let open = ctx.w.map_begin_open(k.ttype(), v.ttype());
    let mut n = 0;
    loop {
        match seq.next_element_seed(Pair {
            ctx: &mut *ctx,
            k,
            v,
        }) {
            Ok(None) => break,
            Ok(Some(())) => n += 1,
            Err(e) => {
                ctx.path.push(PathSeg::Index(n));
                return Err(e);
            }
        }
        ctx.check_growth(n)?;
    }
    ctx.w.map_end_open(open, n).map_err(|e| ctx.fail(e))?;
    ctx.leave();
    Ok(())
}

struct Pair<'c, 'i, 'o> {
    ctx: &'c mut Ctx<'i, 'o>,
    k: &'i Ty,
    v: &'i Ty,
}

impl<'de> DeserializeSeed<'de> for Pair<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Pair<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a [key, value] pair")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for (i, ty) in [self.k, self.v].into_iter().enumerate() {
            match seq.next_element_seed(Value {
                ctx: &mut *self.ctx,
                ty,
            }) {
                Ok(Some(true)) => {}
                Ok(_) => {
                    return Err(self
                        .ctx
                        .fail("a map entry is a [key, value] pair without nulls"))
                }
                Err(e) => {
                    self.ctx.path.push(PathSeg::Index(i));
                    return Err(e);
                }
            }
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(self.ctx.fail("a map entry is a [key, value] pair"));
        }
        Ok(())
    }
}

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
