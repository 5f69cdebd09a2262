//! The split: which side of a release serves one request, as a pure function of the request.
//!
//! A percentage split hashes a sticky key (client IP, a header, a cookie, a JWT claim or the
//! consumer) with the release id into one of 10,000 buckets; buckets below `percent × 100` go
//! to the candidate. The same key always lands in the same bucket, on every core and across
//! restarts, and raising the percentage only adds buckets, so a key on the candidate stays
//! there. A request without the key (no such header, no token) is served by the stable side.
//! Match splits (header, cookie, client IP list) send exactly the requests that match.
//!
//! Nothing here allocates: header and cookie values are compared in place, and a JWT's
//! payload is decoded into a stack buffer and scanned with a borrowing serde visitor.

use super::Side;
use crate::context::Context;
use crate::modules::ip_list::IpSet;
use crate::modules::key_auth::common::B64_URL;
use crate::snapshot::Snapshot;
use crate::stage::Request;
use base64::Engine;
use conf::release::{Split, SplitKey, PERCENT_BUCKETS};
use conf::ConfigError;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::net::IpAddr;

/// Largest JWT payload (decoded) read for a claim; a larger token counts as having no key.
pub const MAX_JWT_PAYLOAD: usize = 4096;

/// A compiled split.
#[derive(Debug)]
pub struct SplitRule {
    mode: Mode,
    /// Mixed into every hash so that two releases pick independent sets of keys.
    salt: u64,
}

#[derive(Debug)]
enum Mode {
    Percent {
        below: u32,
        key: Key,
    },
    Header {
        name: Box<str>,
        values: Box<[Box<str>]>,
    },
    Cookie {
        name: Box<str>,
        values: Box<[Box<str>]>,
    },
    Ips(IpSet),
}

#[derive(Debug)]
enum Key {
    Ip,
    Header(Box<str>),
    Cookie(Box<str>),
    JwtClaim(Box<str>),
    Consumer,
}

impl SplitRule {
    /// Compiles the (already checked) split of release `id`; errors are named under `at`.
    pub fn compile(split: &Split, id: &str, at: &str) -> Result<SplitRule, ConfigError> {
        let boxed = |v: &[String]| v.iter().map(|s| s.as_str().into()).collect();
        let name = || -> Box<str> { split.name.as_deref().unwrap_or("").into() };
        let mode = if let Some(p) = split.percent {
            let key = match split.by.unwrap_or(SplitKey::Ip) {
                SplitKey::Ip => Key::Ip,
                SplitKey::Header => Key::Header(name()),
                SplitKey::Cookie => Key::Cookie(name()),
                SplitKey::JwtClaim => Key::JwtClaim(name()),
                SplitKey::Consumer => Key::Consumer,
            };
            let below = (p.clamp(0.0, 100.0) * f64::from(PERCENT_BUCKETS) / 100.0).round() as u32;
            Mode::Percent { below, key }
        } else if let Some(h) = &split.header {
            Mode::Header {
                name: h.as_str().into(),
                values: boxed(&split.values),
            }
        } else if let Some(c) = &split.cookie {
            Mode::Cookie {
                name: c.as_str().into(),
                values: boxed(&split.values),
            }
        } else {
            let set = IpSet::parse(&split.ips)
                .map_err(|(i, m)| ConfigError::new(format!("{at}.ips[{i}]"), m))?;
            Mode::Ips(set)
        };
        Ok(SplitRule {
            mode,
            salt: fnv(FNV_OFFSET, id.as_bytes()),
        })
    }

    /// Whether the split reads the consumer (and so must be decided after authentication).
    pub fn needs_consumer(&self) -> bool {
        matches!(
            self.mode,
            Mode::Percent {
                key: Key::Consumer,
                ..
            }
        )
    }

    /// The side that serves this request.
    pub fn side(&self, req: &Request, ctx: &Context, snap: &Snapshot) -> Side {
        let hit = match &self.mode {
            Mode::Percent { below, key } => self
                .bucket_of(key, req, ctx, snap)
                .is_some_and(|b| b < *below),
            Mode::Header { name, values } => req
                .header(name.as_bytes())
                .is_some_and(|v| one_of(trim(v), values)),
            Mode::Cookie { name, values } => {
                cookie(req, name.as_bytes()).is_some_and(|v| one_of(v, values))
            }
            Mode::Ips(set) => set.contains(ctx.client_ip),
        };
        if hit {
            Side::Candidate
        } else {
            Side::Stable
        }
    }

    /// The key's bucket, `None` when the request has no key (it then stays on the stable
    /// side).
    fn bucket_of(&self, key: &Key, req: &Request, ctx: &Context, snap: &Snapshot) -> Option<u32> {
        let b = match key {
            Key::Ip => match ctx.client_ip.to_canonical() {
                IpAddr::V4(a) => bucket(self.salt, &a.octets()),
                IpAddr::V6(a) => bucket(self.salt, &a.octets()),
            },
            Key::Header(n) => bucket(self.salt, trim(req.header(n.as_bytes())?)),
            Key::Cookie(n) => bucket(self.salt, cookie(req, n.as_bytes())?),
            Key::JwtClaim(n) => {
                let mut buf = [0u8; MAX_JWT_PAYLOAD];
                let h = jwt_claim_hash(req, n, &mut buf, self.salt)?;
                (h % u64::from(PERCENT_BUCKETS)) as u32
            }
            Key::Consumer => {
                let c = snap.consumers.by_index(ctx.consumer?)?;
                bucket(self.salt, c.id.as_bytes())
            }
        };
        Some(b)
    }
}

/// Whether `v` is one of `values` (any value when the list is empty).
fn one_of(v: &[u8], values: &[Box<str>]) -> bool {
    values.is_empty() || values.iter().any(|x| x.as_bytes() == v)
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// The value of cookie `name` in the request's `Cookie` fields, if any.
fn cookie<'a>(req: &'a Request, name: &[u8]) -> Option<&'a [u8]> {
    req.headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
        .flat_map(|(_, v)| v.split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (n, v) = (&pair[..eq], &pair[eq + 1..]);
            (n.trim_ascii() == name).then(|| v.trim_ascii())
        })
}

pub(super) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

pub(super) fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// A final mix (splitmix64's) so that keys differing in one byte spread over every bucket.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The bucket (0..10,000) of `key` under `salt`.
pub fn bucket(salt: u64, key: &[u8]) -> u32 {
    (mix(fnv(salt, key)) % u64::from(PERCENT_BUCKETS)) as u32
}

/// Hash of claim `name` of the bearer token in `Authorization`, read without verification
/// (verification is the auth module's job on whichever side serves; this only picks a side).
fn jwt_claim_hash(req: &Request, name: &str, buf: &mut [u8], salt: u64) -> Option<u64> {
    let auth = trim(req.header(b"authorization")?);
    let token = auth
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case(b"bearer "))
        .and_then(|_| auth.get(7..))?
        .trim_ascii();
    let mut parts = token.split(|&b| b == b'.');
    let payload = parts.nth(1)?;
    if payload.len() / 4 * 3 + 3 > buf.len() {
        return None;
    }
    let n = B64_URL.decode_slice(payload, buf).ok()?;
    let json = buf.get(..n)?;
    let mut de = serde_json::Deserializer::from_slice(json);
    ClaimSeed { name, salt }.deserialize(&mut de).ok()?
}

/// Walks a claims object and hashes the value of one claim (a string, number or boolean).
struct ClaimSeed<'n> {
    name: &'n str,
    salt: u64,
}

impl<'de> DeserializeSeed<'de> for ClaimSeed<'_> {
    type Value = Option<u64>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClaimSeed<'_> {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a claims object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<u64>, A::Error> {
        let mut found = None;
        while let Some(is_it) = map.next_key_seed(KeyIs(self.name))? {
            if is_it && found.is_none() {
                found = map.next_value_seed(ScalarHash(self.salt))?;
            } else {
                map.next_value_seed(Skip)?;
            }
        }
        Ok(found)
    }
}

/// Compares a map key with the wanted name without keeping it.
struct KeyIs<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a claim name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

/// Hashes a scalar claim value; objects, arrays and null give no key.
struct ScalarHash(u64);

impl<'de> DeserializeSeed<'de> for ScalarHash {
    type Value = Option<u64>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarHash {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a claim value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<u64>, E> {
        Ok(Some(mix(fnv(self.0, v.as_bytes()))))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<u64>, E> {
        Ok(Some(mix(fnv(self.0, &v.to_le_bytes()))))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<u64>, E> {
        Ok(Some(mix(fnv(self.0, &v.to_le_bytes()))))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<u64>, E> {
        Ok(Some(mix(fnv(self.0, &v.to_bits().to_le_bytes()))))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<u64>, E> {
        Ok(Some(mix(fnv(self.0, &[u8::from(v)]))))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<u64>, A::Error> {
        Skip.visit_map(map).map(|_| None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<u64>, A::Error> {
        Skip.visit_seq(seq).map(|_| None)
    }
}

/// Skips any value by walking it. serde's `IgnoredAny` would do, but serde_json keeps its
/// nesting on a heap stack when skipping; walking keeps it on the call stack (serde_json
/// bounds the depth at 128).
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Skip)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }
}
