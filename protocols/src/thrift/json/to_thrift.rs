//! JSON -> Thrift values, in one pass: `serde_json` parses the body and calls our
//! visitors, which know the Thrift type expected at that point and append its encoding to the
//! output at once. Lists and maps get placeholder headers patched when their end is seen.
//!
//! Errors carry a path. It is built only on failure: the first error records its message in
//! the context, and each level appends its segment (`field`, `[3]`, `["key"]`) while the error
//! unwinds, so the success path does no bookkeeping beyond a field bitset.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{base64, MappingError, MappingPolicy, UnknownFields};
use crate::thrift::codec::Writer;
use crate::thrift::idl::{Field, Idl, Requiredness, StructDef, StructId, StructKind, Ty};

pub(super) enum PathSeg<'i> {
    Field(&'i str),
    Index(usize),
    Key(String),
}

pub(super) struct Ctx<'i, 'o> {
    pub(super) idl: &'i Idl,
    pub(super) policy: &'i MappingPolicy,
    pub(super) w: Writer<'o>,
    pub(super) depth: usize,
    /// Message of the first error we raised (serde's own errors have none).
    pub(super) err: Option<String>,
    /// Filled while an error unwinds, innermost segment first.
    pub(super) path: Vec<PathSeg<'i>>,
}

impl Ctx<'_, '_> {
    pub(super) fn fail<E: de::Error>(&mut self, msg: impl fmt::Display) -> E {
        if self.err.is_none() {
            self.err = Some(msg.to_string());
        }
        E::custom("request does not match the IDL")
    }

    pub(super) fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        let max = self.policy.limits.max_depth;
        if self.depth >= max {
            return Err(self.fail(format!("nested deeper than {max}")));
        }
        self.depth += 1;
        Ok(())
    }

    pub(super) fn leave(&mut self) {
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

    pub(super) fn into_error(self, fallback: impl fmt::Display) -> MappingError {
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

pub(super) fn is_scalar(ty: &Ty) -> bool {
    !matches!(ty, Ty::Struct(_) | Ty::List(_) | Ty::Set(_) | Ty::Map(..))
}

/// Where a string value comes from: JSON (binary is base64) or a request parameter (binary
/// is the parameter's bytes). Map keys are JSON.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum StrSource {
    Json,
    Param,
}

/// Which fields of a struct were written; inline up to 128 fields.
pub(super) struct Seen {
    bits: u128,
    big: Vec<bool>,
}

impl Seen {
    pub(super) fn new(n: usize) -> Self {
        Self {
            bits: 0,
            big: if n > 128 { vec![false; n] } else { Vec::new() },
        }
    }
    pub(super) fn get(&self, i: usize) -> bool {
        if self.big.is_empty() {
            self.bits & (1 << i) != 0
        } else {
            self.big.get(i).copied().unwrap_or(false)
        }
    }
    pub(super) fn set(&mut self, i: usize) {
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
pub(super) fn scalar_from_str(
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
pub(super) struct Value<'c, 'i, 'o> {
    pub(super) ctx: &'c mut Ctx<'i, 'o>,
    pub(super) ty: &'i Ty,
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

pub(super) fn finish_struct<'i, E: de::Error>(
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

pub(super) fn struct_members<'de, 'i, A: MapAccess<'de>>(
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
