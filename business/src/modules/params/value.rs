//! Value checks of the params engine: one declared parameter against one text value (path,
//! query, header) or one top-level JSON value, by type, range, length and pattern.

use super::{grow, json, Kind, Param, Problem};
use regex_automata::meta::Cache;
use regex_automata::Input;

impl Param {
    /// Checks a text value (decoded path or query value, header value).
    pub(super) fn check_text<'e>(
        &'e self,
        v: &[u8],
        cache: Option<&mut Cache>,
    ) -> Result<(), Problem<'e>> {
        let text = std::str::from_utf8(v).map_err(|_| Problem::NotText)?;
        match self.kind {
            Kind::String => {}
            Kind::Int { min, max } => check_int(text, min, max)?,
            Kind::Number { min, max } => check_number(text, min, max)?,
            Kind::Bool => {
                if text != "true" && text != "false" {
                    return Err(Problem::NotBool);
                }
            }
            Kind::Enum => self.check_enum(text)?,
        }
        self.check_shape(text, cache)
    }

    /// Checks a top-level JSON body value of kind `kind` (raw bytes; strings with quotes).
    pub(super) fn check_json<'e>(
        &'e self,
        kind: json::JsonKind,
        raw: &[u8],
        buf: &mut Vec<u8>,
        cache: Option<&mut Cache>,
    ) -> Result<(), Problem<'e>> {
        use json::JsonKind as J;
        let text: &str = match (self.kind, kind) {
            (_, J::Null) => {
                return if self.required {
                    Err(Problem::Missing)
                } else {
                    Ok(())
                }
            }
            (Kind::String | Kind::Enum, J::String) => {
                let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default();
                grow(buf, inner.len());
                let n = json::unescape(inner, buf).ok_or(Problem::NotText)?;
                std::str::from_utf8(buf.get(..n).unwrap_or_default())
                    .map_err(|_| Problem::NotText)?
            }
            (Kind::String, _) => return Err(Problem::NotString),
            (Kind::Enum, _) => return Err(Problem::NotOneOf(&self.values)),
            (Kind::Int { .. }, J::Number)
            | (Kind::Number { .. }, J::Number)
            | (Kind::Bool, J::Bool) => std::str::from_utf8(raw).map_err(|_| Problem::NotText)?,
            (Kind::Int { .. }, _) => return Err(Problem::NotInt),
            (Kind::Number { .. }, _) => return Err(Problem::NotNumber),
            (Kind::Bool, _) => return Err(Problem::NotBool),
        };
        match self.kind {
            Kind::Int { min, max } => check_int(text, min, max)?,
            Kind::Number { min, max } => check_number(text, min, max)?,
            Kind::Enum => self.check_enum(text)?,
            Kind::String | Kind::Bool => {}
        }
        self.check_shape(text, cache)
    }

    fn check_enum(&self, text: &str) -> Result<(), Problem<'_>> {
        if self.values.iter().any(|v| **v == *text) {
            Ok(())
        } else {
            Err(Problem::NotOneOf(&self.values))
        }
    }

    /// Length and pattern, common to every type.
    fn check_shape(&self, text: &str, cache: Option<&mut Cache>) -> Result<(), Problem<'_>> {
        if self.min_len.is_some() || self.max_len.is_some() {
            let chars = text.chars().count();
            if let Some(min) = self.min_len.filter(|&m| chars < m) {
                return Err(Problem::TooShort(min));
            }
            if let Some(max) = self.max_len.filter(|&m| chars > m) {
                return Err(Problem::TooLong(max));
            }
        }
        if let (Some(re), Some(cache)) = (&self.pattern, cache) {
            let input = Input::new(text).earliest(true);
            if re.search_half_with(cache, &input).is_none() {
                return Err(Problem::NoPatternMatch);
            }
        }
        Ok(())
    }
}

fn check_int<'e>(text: &str, min: Option<i64>, max: Option<i64>) -> Result<(), Problem<'e>> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::NotInt);
    }
    let n: i64 = text.parse().map_err(|_| Problem::NotInt)?;
    if let Some(m) = min.filter(|&m| n < m) {
        return Err(Problem::BelowMin(m as f64));
    }
    if let Some(m) = max.filter(|&m| n > m) {
        return Err(Problem::AboveMax(m as f64));
    }
    Ok(())
}

fn check_number<'e>(text: &str, min: Option<f64>, max: Option<f64>) -> Result<(), Problem<'e>> {
    if !json::is_json_number(text.as_bytes()) {
        return Err(Problem::NotNumber);
    }
    let n: f64 = text.parse().map_err(|_| Problem::NotNumber)?;
    if !n.is_finite() {
        return Err(Problem::NotNumber);
    }
    if let Some(m) = min.filter(|&m| n < m) {
        return Err(Problem::BelowMin(m));
    }
    if let Some(m) = max.filter(|&m| n > m) {
        return Err(Problem::AboveMax(m));
    }
    Ok(())
}
