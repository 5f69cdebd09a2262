//! params engine: checks a route's declared parameters (path, query, header and top-level
//! JSON body fields) for presence, type, range, length, pattern and enumerated values, and
//! names the first one that is wrong (`{"field": "id", "message": "must be an int"}`).
//!
//! Per request nothing is allocated: query pairs and path values are percent-decoded into the
//! scratch buffer of a per-core [`ParamsScratch`], the JSON body is read by a top-level field
//! scanner ([`json`]) instead of a parser that builds a tree, and patterns run on the
//! regex-automata meta engine with a search cache owned by the scratch, so no core waits on
//! another's cache. The scratch's buffer grows only when a longer input than ever before comes
//! by (bounded by the gateway's URI, header and body limits), so steady state allocates nothing.
//!
//! Value rules:
//! - path values arrive raw from the router and are percent-decoded; query keys and values are
//!   decoded with `+` as space; header values are taken as they are.
//! - A query parameter present several times is checked at every occurrence (upstreams differ
//!   on which one they read). A header likewise. In a JSON body a repeated key is judged by its
//!   last occurrence, as most JSON parsers keep the last.
//! - JSON `null` counts as absent. Body values must have the declared JSON type: `"5"` is not an
//!   int. `min_len`, `max_len` and `pattern` apply to the value's text (the decoded string for
//!   strings, the token for numbers and booleans); lengths count Unicode characters.
//! - `int` is a base-10 integer that fits in 64 bits; `number` uses the JSON number grammar;
//!   `bool` is `true` or `false`; `enum` matches one of `values` exactly.

pub(crate) mod json;
mod value;

use super::waf::decode::percent_decode;
use conf::ConfigError;
use regex_automata::meta::{Cache, Regex};
use serde::Deserialize;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Default bound on the body bytes scanned for body parameters (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
const MAX_NAME_LEN: usize = 256;

/// Where a parameter lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    Path,
    Query,
    Header,
    Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    #[default]
    String,
    Int,
    Number,
    Bool,
    Enum,
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamConfig {
    pub name: String,
    #[serde(rename = "in")]
    pub location: Location,
    #[serde(default)]
    pub required: bool,
    #[serde(rename = "type", default)]
    pub kind: ParamType,
    /// Smallest allowed value (`int`, `number`).
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Fewest / most characters of the value's text.
    pub min_len: Option<usize>,
    pub max_len: Option<usize>,
    /// A regex the value's text must contain a match of (anchor with `^…$` for a full match).
    pub pattern: Option<String>,
    /// The allowed values of an `enum`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// The fields of a `params` module (`id` and `kind` are read by the caller).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParamsConfig {
    pub params: Vec<ParamConfig>,
    /// Bodies longer than this are refused when body parameters are declared.
    pub max_body_bytes: usize,
}

impl Default for ParamsConfig {
    fn default() -> Self {
        ParamsConfig {
            params: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    String,
    Int { min: Option<i64>, max: Option<i64> },
    Number { min: Option<f64>, max: Option<f64> },
    Bool,
    Enum,
}

#[derive(Debug)]
struct Param {
    name: Box<str>,
    location: Location,
    required: bool,
    kind: Kind,
    min_len: Option<usize>,
    max_len: Option<usize>,
    pattern: Option<Regex>,
    values: Box<[Box<str>]>,
}

/// A compiled `params` module; read-only and shared by every core.
#[derive(Debug)]
pub struct ParamsEngine {
    id: u64,
    params: Box<[Param]>,
    max_body: usize,
}

/// Per-core working memory for [`ParamsEngine::check`]; make one per engine with
/// [`ParamsEngine::scratch`] (a scratch of another engine is rebuilt on first use).
#[derive(Debug)]
pub struct ParamsScratch {
    engine: u64,
    caches: Vec<Option<Cache>>,
    seen: Vec<bool>,
    body: Vec<Option<(json::JsonKind, usize, usize)>>,
    buf: Vec<u8>,
}

/// The request parts parameters are read from; everything borrowed.
pub struct ParamInput<'a, P, H> {
    /// A path parameter captured by the router, by name (raw, still percent-encoded).
    pub path_param: P,
    /// The raw query string (after `?`, without `#`).
    pub query: &'a [u8],
    /// Header fields in order, as (name, value).
    pub headers: H,
    /// The whole request body (only read when body parameters are declared).
    pub body: &'a [u8],
}

/// What is wrong with a parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Problem<'e> {
    Missing,
    NotText,
    NotString,
    NotInt,
    NotNumber,
    NotBool,
    NotOneOf(&'e [Box<str>]),
    BelowMin(f64),
    AboveMax(f64),
    TooShort(usize),
    TooLong(usize),
    NoPatternMatch,
    BodyNotObject,
    BodyTooLarge(usize),
}

/// The first parameter found wrong: `field()` and `to_string()` make the error body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Violation<'e> {
    pub param: &'e str,
    pub location: Location,
    pub problem: Problem<'e>,
}

impl Violation<'_> {
    /// The parameter name, or `body` when the body as a whole is wrong.
    pub fn field(&self) -> &str {
        match self.problem {
            Problem::BodyNotObject | Problem::BodyTooLarge(_) => "body",
            _ => self.param,
        }
    }
}

impl fmt::Display for Violation<'_> {
    /// The message, without the field name: `must be an int`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem {
            Problem::Missing => f.write_str("is required"),
            Problem::NotText => f.write_str("must be valid UTF-8 text"),
            Problem::NotString => f.write_str("must be a string"),
            Problem::NotInt => f.write_str("must be an int"),
            Problem::NotNumber => f.write_str("must be a number"),
            Problem::NotBool => f.write_str("must be true or false"),
            Problem::NotOneOf(values) => {
                f.write_str("must be one of: ")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(v)?;
                }
                Ok(())
            }
            Problem::BelowMin(m) => write!(f, "must be >= {m}"),
            Problem::AboveMax(m) => write!(f, "must be <= {m}"),
            Problem::TooShort(n) => write!(f, "must be at least {n} characters"),
            Problem::TooLong(n) => write!(f, "must be at most {n} characters"),
            Problem::NoPatternMatch => f.write_str("does not match the expected pattern"),
            Problem::BodyNotObject => f.write_str("must be a JSON object"),
            Problem::BodyTooLarge(n) => write!(f, "is larger than {n} bytes"),
        }
    }
}

static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

impl ParamsEngine {
    pub fn compile(cfg: &ParamsConfig) -> Result<ParamsEngine, ConfigError> {
        let mut params = Vec::with_capacity(cfg.params.len());
        for (i, p) in cfg.params.iter().enumerate() {
            params.push(
                compile_param(p)
                    .map_err(|(f, m)| ConfigError::new(format!("params[{i}]{f}"), m))?,
            );
        }
        if cfg.max_body_bytes == 0 {
            return Err(ConfigError::new("max_body_bytes", "must be at least 1"));
        }
        Ok(ParamsEngine {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            params: params.into_boxed_slice(),
            max_body: cfg.max_body_bytes,
        })
    }

    /// Working memory for one core (allocates; call when the config version is installed).
    pub fn scratch(&self) -> ParamsScratch {
        ParamsScratch {
            engine: self.id,
            caches: self
                .params
                .iter()
                .map(|p| p.pattern.as_ref().map(Regex::create_cache))
                .collect(),
            seen: vec![false; self.params.len()],
            body: vec![None; self.params.len()],
            buf: vec![0; 4096],
        }
    }

    /// Checks every declared parameter; the first one wrong is returned.
    pub fn check<'a, 'e, P, H>(
        &'e self,
        input: &ParamInput<'a, P, H>,
        scratch: &mut ParamsScratch,
    ) -> Result<(), Violation<'e>>
    where
        P: Fn(&str) -> Option<&'a [u8]>,
        H: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        if scratch.engine != self.id || scratch.seen.len() != self.params.len() {
            *scratch = self.scratch();
        }
        scratch.seen.fill(false);
        scratch.body.fill(None);
        self.check_query(input.query, scratch)?;
        self.scan_body(input.body, scratch)?;
        let ParamsScratch {
            caches,
            seen,
            body,
            buf,
            ..
        } = scratch;
        for (i, p) in self.params.iter().enumerate() {
            let cache = caches.get_mut(i).and_then(Option::as_mut);
            let fail = |problem| Violation {
                param: &p.name,
                location: p.location,
                problem,
            };
            let present = match p.location {
                Location::Query => seen.get(i).copied().unwrap_or(false),
                Location::Path => match (input.path_param)(&p.name) {
                    Some(raw) => {
                        grow(buf, raw.len());
                        let n = percent_decode(raw, false, buf);
                        p.check_text(buf.get(..n).unwrap_or_default(), cache)
                            .map_err(fail)?;
                        true
                    }
                    None => false,
                },
                Location::Header => {
                    let mut found = false;
                    let mut cache = cache;
                    for (_, v) in input
                        .headers
                        .clone()
                        .filter(|(n, _)| n.eq_ignore_ascii_case(p.name.as_bytes()))
                    {
                        found = true;
                        p.check_text(v, cache.as_deref_mut()).map_err(fail)?;
                    }
                    found
                }
                Location::Body => match body.get(i).copied().flatten() {
                    Some((kind, start, end)) => {
                        let raw = input.body.get(start..end).unwrap_or_default();
                        p.check_json(kind, raw, buf, cache).map_err(fail)?;
                        true
                    }
                    None => false,
                },
            };
            if p.required && !present {
                return Err(fail(Problem::Missing));
            }
        }
        Ok(())
    }

    /// Checks every occurrence of each declared query parameter, recording which were seen.
    fn check_query<'e>(
        &'e self,
        query: &[u8],
        scratch: &mut ParamsScratch,
    ) -> Result<(), Violation<'e>> {
        if query.is_empty() || !self.params.iter().any(|p| p.location == Location::Query) {
            return Ok(());
        }
        grow(&mut scratch.buf, query.len());
        for pair in query.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (
                    pair.get(..eq).unwrap_or_default(),
                    pair.get(eq + 1..).unwrap_or_default(),
                ),
                None => (pair, &[][..]),
            };
            let (key_buf, value_buf) = scratch.buf.split_at_mut(k.len());
            let kn = percent_decode(k, true, key_buf);
            let key = key_buf.get(..kn).unwrap_or_default();
            for (i, p) in self.params.iter().enumerate() {
                if p.location != Location::Query || p.name.as_bytes() != key {
                    continue;
                }
                if let Some(s) = scratch.seen.get_mut(i) {
                    *s = true;
                }
                let vn = percent_decode(v, true, value_buf);
                let cache = scratch.caches.get_mut(i).and_then(Option::as_mut);
                p.check_text(value_buf.get(..vn).unwrap_or_default(), cache)
                    .map_err(|problem| Violation {
                        param: &p.name,
                        location: p.location,
                        problem,
                    })?;
            }
        }
        Ok(())
    }

    /// Records where each declared body field's (last) value is.
    fn scan_body<'e>(
        &'e self,
        body: &[u8],
        scratch: &mut ParamsScratch,
    ) -> Result<(), Violation<'e>> {
        let Some(first) = self.params.iter().find(|p| p.location == Location::Body) else {
            return Ok(());
        };
        let whole = |problem| Violation {
            param: &first.name,
            location: Location::Body,
            problem,
        };
        if body.len() > self.max_body {
            return Err(whole(Problem::BodyTooLarge(self.max_body)));
        }
        if body.trim_ascii().is_empty() {
            return Ok(());
        }
        let base = body.as_ptr() as usize;
        let params = &self.params;
        let slots = &mut scratch.body;
        json::for_each_field(body, |field| {
            let mut key_buf = [0u8; MAX_NAME_LEN];
            let key = if field.key.contains(&b'\\') {
                match json::unescape(field.key, &mut key_buf) {
                    Some(n) => key_buf.get(..n).unwrap_or_default(),
                    None => return,
                }
            } else {
                field.key
            };
            for (i, p) in params.iter().enumerate() {
                if p.location == Location::Body && p.name.as_bytes() == key {
                    let start = field.value.as_ptr() as usize - base;
                    if let Some(slot) = slots.get_mut(i) {
                        *slot = Some((field.kind, start, start + field.value.len()));
                    }
                }
            }
        })
        .map_err(|_| whole(Problem::BodyNotObject))
    }
}

/// Makes `buf` at least `len` long; allocates only when a longer input than ever comes by.
pub(super) fn grow(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    }
}

/// Validates one declared parameter; the error is (`.field` suffix, message).
fn compile_param(p: &ParamConfig) -> Result<Param, (String, String)> {
    let err = |f: &str, m: String| (format!(".{f}"), m);
    if p.name.is_empty() || p.name.len() > MAX_NAME_LEN {
        return Err(err("name", format!("must be 1..={MAX_NAME_LEN} bytes")));
    }
    let numeric = matches!(p.kind, ParamType::Int | ParamType::Number);
    for (field, v) in [("min", p.min), ("max", p.max)] {
        match v {
            Some(_) if !numeric => return Err(err(field, "only applies to int and number".into())),
            Some(x) if !x.is_finite() => return Err(err(field, "must be a finite number".into())),
            Some(x) if p.kind == ParamType::Int && (x.fract() != 0.0 || x.abs() > 9.0e18) => {
                return Err(err(field, "must be a whole number for type int".into()))
            }
            _ => {}
        }
    }
    if let (Some(lo), Some(hi)) = (p.min, p.max) {
        if lo > hi {
            return Err(err("min", "is greater than max".into()));
        }
    }
    if let (Some(lo), Some(hi)) = (p.min_len, p.max_len) {
        if lo > hi {
            return Err(err("min_len", "is greater than max_len".into()));
        }
    }
    match (p.kind, p.values.is_empty()) {
        (ParamType::Enum, true) => {
            return Err(err("values", "an enum needs at least one value".into()))
        }
        (ParamType::Enum, false) | (_, true) => {}
        (_, false) => return Err(err("values", "only applies to type enum".into())),
    }
    let pattern = match &p.pattern {
        Some(src) => {
            Some(Regex::new(src).map_err(|e| err("pattern", format!("invalid regex: {e}")))?)
        }
        None => None,
    };
    let kind = match p.kind {
        ParamType::String => Kind::String,
        ParamType::Int => Kind::Int {
            min: p.min.map(|x| x as i64),
            max: p.max.map(|x| x as i64),
        },
        ParamType::Number => Kind::Number {
            min: p.min,
            max: p.max,
        },
        ParamType::Bool => Kind::Bool,
        ParamType::Enum => Kind::Enum,
    };
    Ok(Param {
        name: p.name.as_str().into(),
        location: p.location,
        required: p.required,
        kind,
        min_len: p.min_len,
        max_len: p.max_len,
        pattern,
        values: p.values.iter().map(|v| v.as_str().into()).collect(),
    })
}

#[cfg(test)]
mod tests;
