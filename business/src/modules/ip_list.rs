//! ip_list engine: allow and deny lists of addresses and CIDRs, and the client-address rule
//! for requests that come through trusted proxies.
//!
//! Lists are compiled once per config version into an [`IpSet`]: every entry becomes an
//! inclusive range of integers (`u32` for IPv4, `u128` for IPv6), ranges are sorted and merged,
//! and a lookup is one binary search. That keeps a 100,000-entry list at a few microseconds per
//! lookup in the worst case, with no allocation and no hashing, and makes overlapping entries
//! (`10.0.0.0/8` next to `10.1.2.3`) free.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`, which dual-stack sockets report for IPv4
//! clients) are looked up as the IPv4 address they carry, and IPv6 entries that cover part of
//! the mapped range also land in the IPv4 table, so `10.0.0.0/8` and `::ffff:10.0.0.0/104` mean
//! the same thing whichever way the client arrived.
//!
//! Decision order (see [`IpListEngine::check`]): a deny-list hit denies; a non-empty allow list
//! that does not hold the client denies; everything else is allowed.

use conf::ConfigError;
use serde::Deserialize;
use std::net::IpAddr;

/// Most `X-Forwarded-For` entries examined when no knob says otherwise. A real chain is a few
/// hops; a longer header is a client padding it, and walking it costs per-request time.
pub const DEFAULT_MAX_FORWARDED_HOPS: usize = 16;

/// The fields of an `ip_list` module (the `id` and `kind` keys are read by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IpListConfig {
    /// Addresses or CIDRs that may pass; empty means "everyone not denied".
    pub allow: Vec<String>,
    /// Addresses or CIDRs that are always refused, even when also allowed.
    pub deny: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed (see [`client_ip`]).
    pub trusted_proxies: Vec<String>,
    /// Most `X-Forwarded-For` entries examined, right to left.
    pub max_forwarded_hops: usize,
}

impl Default for IpListConfig {
    fn default() -> Self {
        IpListConfig {
            allow: Vec::new(),
            deny: Vec::new(),
            trusted_proxies: Vec::new(),
            max_forwarded_hops: DEFAULT_MAX_FORWARDED_HOPS,
        }
    }
}

/// Why a client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVerdict {
    Allow,
    /// The address is on the deny list.
    Denied,
    /// An allow list exists and the address is not on it.
    NotAllowed,
}

/// The compiled lists of one `ip_list` module version; read-only, shared by every core.
#[derive(Debug, Clone, Default)]
pub struct IpListEngine {
    allow: IpSet,
    deny: IpSet,
    trusted: IpSet,
    max_hops: usize,
}

impl IpListEngine {
    /// Parses and merges every list; the error names the first bad entry (`deny[3]`).
    pub fn compile(cfg: &IpListConfig) -> Result<IpListEngine, ConfigError> {
        if cfg.max_forwarded_hops == 0 {
            return Err(ConfigError::new("max_forwarded_hops", "must be at least 1"));
        }
        let parse = |field: &str, list: &[String]| {
            IpSet::parse(list).map_err(|(i, msg)| ConfigError::new(format!("{field}[{i}]"), msg))
        };
        Ok(IpListEngine {
            allow: parse("allow", &cfg.allow)?,
            deny: parse("deny", &cfg.deny)?,
            trusted: parse("trusted_proxies", &cfg.trusted_proxies)?,
            max_hops: cfg.max_forwarded_hops,
        })
    }

    /// Deny-list hit → `Denied`; allow list present and no hit → `NotAllowed`; else `Allow`.
    pub fn check(&self, client: IpAddr) -> IpVerdict {
        if self.deny.contains(client) {
            IpVerdict::Denied
        } else if !self.allow.is_empty() && !self.allow.contains(client) {
            IpVerdict::NotAllowed
        } else {
            IpVerdict::Allow
        }
    }

    /// The client address under this module's trusted proxies (see [`client_ip`]).
    pub fn client_ip(&self, peer: IpAddr, xff: Option<&[u8]>) -> IpAddr {
        client_ip_bounded(peer, xff, &self.trusted, self.max_hops)
    }

    pub fn trusted_proxies(&self) -> &IpSet {
        &self.trusted
    }
}

/// The address a request is from, given the socket peer and its `X-Forwarded-For` value.
///
/// An untrusted peer is the client, whatever it claims. A trusted peer (a load balancer of
/// ours) makes its header believable, so the header is walked right to left — each proxy
/// appends the address it received from — skipping entries that are themselves trusted
/// proxies; the first untrusted one is the client. Rules for the odd cases:
///
/// - a malformed entry (not an address, empty, `unknown`) stops the walk: the answer is the
///   last good address seen (a trusted hop, or the peer when the rightmost entry is bad),
///   because nothing left of garbage can be believed;
/// - when every entry is trusted, the leftmost one examined is the answer;
/// - at most [`DEFAULT_MAX_FORWARDED_HOPS`] entries are examined (the bounded variant takes
///   the number), the last one examined then being the answer if all were trusted;
/// - `1.2.3.4:5678`, `[2001:db8::1]` and `[2001:db8::1]:443` are accepted, since some proxies
///   append ports; IPv4-mapped IPv6 addresses come back as IPv4.
///
/// When a request carries several `X-Forwarded-For` fields, pass the last one: the proxy next
/// to us appended to it.
pub fn client_ip(peer: IpAddr, xff: Option<&[u8]>, trusted: &IpSet) -> IpAddr {
    client_ip_bounded(peer, xff, trusted, DEFAULT_MAX_FORWARDED_HOPS)
}

/// [`client_ip`] with an explicit bound on the entries examined.
pub fn client_ip_bounded(
    peer: IpAddr,
    xff: Option<&[u8]>,
    trusted: &IpSet,
    max_hops: usize,
) -> IpAddr {
    let mut current = peer.to_canonical();
    let Some(xff) = xff else { return current };
    if !trusted.contains(current) {
        return current;
    }
    for entry in xff.rsplit(|&b| b == b',').take(max_hops) {
        match parse_forwarded_entry(entry) {
            Some(ip) => {
                current = ip;
                if !trusted.contains(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    current
}

/// One `X-Forwarded-For` entry as an address, ports and brackets tolerated.
fn parse_forwarded_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry.trim_ascii()).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = text.strip_prefix('[') {
        // `[v6]` or `[v6]:port`
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inside
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|v6| IpAddr::V6(v6).to_canonical());
    }
    // `v4:port` (a bare v6 address has several colons and parsed above, or is malformed)
    let (host, port) = text.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A set of addresses: sorted, merged, inclusive ranges searched by bisection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Box<[(u32, u32)]>,
    v6: Box<[(u128, u128)]>,
}

/// The IPv6 block that carries IPv4 addresses (`::ffff:0:0/96`).
const MAPPED_START: u128 = 0xffff << 32;
const MAPPED_END: u128 = MAPPED_START | 0xffff_ffff;

impl IpSet {
    /// Builds a set from textual entries (`10.0.0.1`, `10.0.0.0/8`, `2001:db8::/32`); the
    /// error is the index of the first bad entry and why.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<IpSet, (usize, String)> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            match parse_cidr(entry.as_ref()).map_err(|m| (i, m))? {
                Range::V4(lo, hi) => v4.push((lo, hi)),
                Range::V6(lo, hi) => {
                    if lo <= MAPPED_END && hi >= MAPPED_START {
                        // Mapped clients are looked up as IPv4, so the IPv4 part goes there.
                        let a = (lo.max(MAPPED_START) - MAPPED_START) as u32;
                        let b = (hi.min(MAPPED_END) - MAPPED_START) as u32;
                        v4.push((a, b));
                    }
                    v6.push((lo, hi));
                }
            }
        }
        Ok(IpSet {
            v4: merge(v4).into_boxed_slice(),
            v6: merge(v6).into_boxed_slice(),
        })
    }

    /// True when `ip` is in the set (mapped IPv6 addresses are looked up as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(v4) => lookup(&self.v4, u32::from(v4)),
            IpAddr::V6(v6) => lookup(&self.v6, u128::from(v6)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Number of merged ranges (a measure of lookup depth, not of entries configured).
    pub fn range_count(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

fn lookup<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    let after = ranges.partition_point(|r| r.0 <= x);
    after
        .checked_sub(1)
        .and_then(|i| ranges.get(i))
        .is_some_and(|r| r.1 >= x)
}

/// Sorts and joins overlapping or touching ranges.
fn merge<T: Ord + Copy + Step>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.0 <= last.1.next_saturating() => last.1 = last.1.max(r.1),
            _ => out.push(r),
        }
    }
    out.shrink_to_fit();
    out
}

trait Step {
    fn next_saturating(self) -> Self;
}
impl Step for u32 {
    fn next_saturating(self) -> Self {
        self.saturating_add(1)
    }
}
impl Step for u128 {
    fn next_saturating(self) -> Self {
        self.saturating_add(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    V4(u32, u32),
    V6(u128, u128),
}

/// `addr` or `addr/len` as an inclusive range. Host bits set below the prefix are refused:
/// `10.0.0.1/8` is almost always a typo for a single host or for `10.0.0.0/8`, and guessing
/// wrong in a security list is worse than asking.
fn parse_cidr(s: &str) -> Result<Range, String> {
    let s = s.trim();
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{s}` is not an IP address or CIDR"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u32 = match len {
        None => max,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if n <= max && !l.starts_with('+') => n,
            _ => return Err(format!("`{s}`: prefix length must be 0..={max}")),
        },
    };
    let (lo, hi, stray) = match ip {
        IpAddr::V4(v4) => {
            let a = u32::from(v4);
            let mask = u32::MAX.checked_shr(len).unwrap_or(0);
            (u128::from(a & !mask), u128::from(a | mask), a & mask != 0)
        }
        IpAddr::V6(v6) => {
            let a = u128::from(v6);
            let mask = u128::MAX.checked_shr(len).unwrap_or(0);
            (a & !mask, a | mask, a & mask != 0)
        }
    };
    if stray {
        return Err(format!(
            "`{s}` has bits set below its /{len} prefix; write the network address"
        ));
    }
    Ok(match ip {
        IpAddr::V4(_) => Range::V4(lo as u32, hi as u32),
        IpAddr::V6(_) => Range::V6(lo, hi),
    })
}

#[cfg(test)]
pub(crate) mod tests;
