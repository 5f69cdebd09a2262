//! JWT JSON parsing without building a document: the JOSE header and the claims set are read
//! with serde visitors that keep only what the module needs (`alg`, the time claims, the claim
//! naming the consumer, and the claims copied to headers) and skip the rest with `IgnoredAny`.
//!
//! Strings borrow from the caller's scratch buffer; a string is copied to the heap only when it
//! contains JSON escapes (`Cow::Owned`), and serde_json allocates its error value when a token is
//! malformed. A well-formed token with plain strings is parsed with no allocation at all.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::modules::key_auth::common::is_safe_header_value;

/// Most claims one module copies to upstream headers; a fixed bound keeps results on the stack.
pub const MAX_CLAIM_HEADERS: usize = 16;

/// The JOSE header fields we read. Unknown members (`typ`, `kid`, ...) are ignored; duplicate
/// members are an error (serde derive refuses them).
#[derive(Deserialize)]
pub(super) struct JoseHeader<'a> {
    #[serde(borrow)]
    pub alg: Cow<'a, str>,
    /// RFC 7515 4.1.11: a token with critical extensions we do not implement must be refused.
    #[serde(default)]
    pub crit: Option<IgnoredAny>,
}

/// A claim value copied to an upstream header. Objects, arrays and `null` are never copied.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimValue<'s> {
    Str(Cow<'s, str>),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
}

impl fmt::Display for ClaimValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimValue::Str(s) => f.write_str(s),
            ClaimValue::Int(v) => write!(f, "{v}"),
            ClaimValue::UInt(v) => write!(f, "{v}"),
            ClaimValue::Float(v) => write!(f, "{v}"),
            ClaimValue::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// Which claims to keep, borrowed from the compiled module.
pub(super) struct Wanted<'c> {
    pub consumer_claim: &'c str,
    pub fallback_claim: Option<&'c str>,
    pub copy: &'c [(String, String)],
}

/// The claims kept from one token.
#[derive(Default)]
pub(super) struct Claims<'s> {
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub identity: Option<Cow<'s, str>>,
    pub fallback: Option<Cow<'s, str>>,
    pub copied: [Option<ClaimValue<'s>>; MAX_CLAIM_HEADERS],
}

/// Parses a claims set; `None` on any JSON or type error (the caller reports it as malformed).
pub(super) fn parse_claims<'s>(json: &'s [u8], wanted: &Wanted<'_>) -> Option<Claims<'s>> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let claims = ClaimsSeed(wanted).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(claims)
}

/// Parses a JOSE header.
pub(super) fn parse_header(json: &[u8]) -> Option<JoseHeader<'_>> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let header = JoseHeader::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(header)
}

struct ClaimsSeed<'w, 'c>(&'w Wanted<'c>);

impl<'de> DeserializeSeed<'de> for ClaimsSeed<'_, '_> {
    type Value = Claims<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClaimsSeed<'_, '_> {
    type Value = Claims<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JWT claims object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let w = self.0;
        let mut c = Claims::default();
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let key: &str = &key;
            let is_time = matches!(key, "exp" | "nbf" | "iat");
            let is_identity = key == w.consumer_claim;
            let is_fallback = Some(key) == w.fallback_claim;
            let copy_at = w.copy.iter().position(|(claim, _)| claim == key);
            if !is_time && !is_identity && !is_fallback && copy_at.is_none() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value = map.next_value::<Scalar<'de>>()?;
            if is_time {
                let slot = match key {
                    "exp" => &mut c.exp,
                    "nbf" => &mut c.nbf,
                    _ => &mut c.iat,
                };
                set_once(slot, value.numeric_date()?)?;
            }
            if is_identity {
                set_once(&mut c.identity, value.string()?)?;
            }
            if is_fallback {
                set_once(&mut c.fallback, value.string()?)?;
            }
            if let Some(slot) = copy_at.and_then(|i| c.copied.get_mut(i)) {
                if let Some(v) = value.header_value()? {
                    set_once(slot, v)?;
                }
            }
        }
        Ok(c)
    }
}

/// Duplicate claims are refused: which of two `exp` values a library honours differs, and that
/// difference is an attack surface.
fn set_once<T, E: de::Error>(slot: &mut Option<T>, v: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::custom("duplicate claim"));
    }
    *slot = Some(v);
    Ok(())
}

/// A JSON string that borrows when it has no escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v.to_owned())))
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Any JSON value, reduced to what claims can use.
enum Scalar<'de> {
    Str(Cow<'de, str>),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    /// `null`, arrays and objects (their contents skipped).
    Other,
}

impl<'de> Scalar<'de> {
    /// RFC 7519 NumericDate: seconds, possibly fractional; fractions are dropped.
    fn numeric_date<E: de::Error>(&self) -> Result<i64, E> {
        match *self {
            Scalar::Int(v) => Ok(v),
            Scalar::UInt(v) => Ok(i64::try_from(v).unwrap_or(i64::MAX)),
            Scalar::Float(v) if v.is_finite() => Ok(v as i64),
            _ => Err(E::custom("time claim is not a number")),
        }
    }

    fn string<E: de::Error>(&self) -> Result<Cow<'de, str>, E> {
        match self {
            Scalar::Str(s) => Ok(s.clone()),
            _ => Err(E::custom("claim is not a string")),
        }
    }

    /// The value to forward, `None` for values never forwarded. A string with control
    /// characters (an escaped CR/LF) would split the upstream header, so the token is refused.
    fn header_value<E: de::Error>(&self) -> Result<Option<ClaimValue<'de>>, E> {
        Ok(Some(match self {
            Scalar::Str(s) if is_safe_header_value(s.as_bytes()) => ClaimValue::Str(s.clone()),
            Scalar::Str(_) => return Err(E::custom("claim holds control characters")),
            Scalar::Int(v) => ClaimValue::Int(*v),
            Scalar::UInt(v) => ClaimValue::UInt(*v),
            Scalar::Float(v) => ClaimValue::Float(*v),
            Scalar::Bool(v) => ClaimValue::Bool(*v),
            Scalar::Other => return Ok(None),
        }))
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(copy: &[(String, String)]) -> Wanted<'_> {
        Wanted {
            consumer_claim: "key",
            fallback_claim: Some("iss"),
            copy,
        }
    }

    #[test]
    fn keeps_what_is_wanted_and_borrows() {
        let copy = vec![
            ("sub".to_string(), "X-User-Id".to_string()),
            ("admin".to_string(), "X-Admin".to_string()),
            ("roles".to_string(), "X-Roles".to_string()),
            ("iss".to_string(), "X-Iss".to_string()),
        ];
        let json = br#"{"iss":"acme","sub":"u-1","exp":1700000000.9,"nbf":5,"admin":true,
            "roles":["a","b"],"nested":{"x":[1,{"y":null}]},"key":"k\u0031"}"#;
        let c = parse_claims(json, &wanted(&copy)).unwrap();
        assert_eq!(c.exp, Some(1_700_000_000));
        assert_eq!(c.nbf, Some(5));
        assert_eq!(c.iat, None);
        assert!(matches!(c.fallback, Some(Cow::Borrowed("acme"))));
        assert_eq!(c.identity.as_deref(), Some("k1"), "escapes are decoded");
        assert!(matches!(
            c.copied[0],
            Some(ClaimValue::Str(Cow::Borrowed("u-1")))
        ));
        assert_eq!(c.copied[1], Some(ClaimValue::Bool(true)));
        assert_eq!(c.copied[2], None, "arrays are not forwarded");
        assert_eq!(c.copied[3], Some(ClaimValue::Str("acme".into())));
    }

    #[test]
    fn refuses_duplicates_bad_types_and_header_injection() {
        let none: Vec<(String, String)> = Vec::new();
        let w = wanted(&none);
        assert!(parse_claims(br#"{"exp":1,"exp":2}"#, &w).is_none());
        assert!(parse_claims(br#"{"exp":"soon"}"#, &w).is_none());
        assert!(parse_claims(br#"{"key":7}"#, &w).is_none());
        assert!(
            parse_claims(br#"{"other":1,"other":2}"#, &w).is_some(),
            "unused claims ignored"
        );
        assert!(parse_claims(br#"[1,2]"#, &w).is_none());
        assert!(parse_claims(br#"{"exp":1} x"#, &w).is_none());
        let copy = vec![("sub".to_string(), "X-User-Id".to_string())];
        assert!(parse_claims(br#"{"sub":"a\r\nX-Admin: 1"}"#, &wanted(&copy)).is_none());
    }

    #[test]
    fn headers_and_display() {
        let h = parse_header(br#"{"typ":"JWT","alg":"HS256","kid":"1"}"#).unwrap();
        assert_eq!(h.alg, "HS256");
        assert!(h.crit.is_none());
        assert!(parse_header(br#"{"alg":"HS256","crit":["b64"]}"#)
            .unwrap()
            .crit
            .is_some());
        assert!(parse_header(br#"{"alg":"HS256","alg":"none"}"#).is_none());
        assert!(parse_header(br#"{"typ":"JWT"}"#).is_none());
        assert_eq!(ClaimValue::UInt(7).to_string(), "7");
        assert_eq!(ClaimValue::Str("a".into()).to_string(), "a");
    }
}
