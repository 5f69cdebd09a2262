//! The route matcher: host tables of segment tries, built once per config version and read by
//! every worker for every request.
//!
//! Lookup order: the exact host's table, then wildcard tables (longest suffix first), then the
//! any-host table; the first table holding a route for the path and method wins. Inside a table,
//! exact paths beat prefixes, a static segment beats a `{param}` at each depth (backtracking to
//! the param when the static branch leads nowhere), the longest prefix wins, and a route listing
//! the method beats one accepting any method. Matching is on raw bytes: `%2F` is not `/` and
//! `%41` is not `A`; a `{param}` never matches an empty segment.
//!
//! `find` never allocates (the host is lower-cased into a stack buffer) and its work depends on
//! the request (host labels, path segments) and the trie depth, never on the number of routes:
//! every step is a hash lookup of one segment.

mod table;

use crate::model::Route;
use crate::pattern::{check_method, parse_host, parse_path, HostPattern};
use std::collections::HashMap;
use table::{Leaf, Table};

pub use crate::pattern::MAX_PARAMS;

/// Longest Host value (without port) looked up in the host tables; DNS names are at most 253.
pub const MAX_HOST_LEN: usize = 255;

/// The outcome of a successful [`Router::find`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index of the route in the slice given to [`Router::build`].
    pub route: usize,
    /// Captured `{param}`s: (name index for [`Router::param_name`], start offset in the path,
    /// length). Only the first `n_params` entries are meaningful.
    pub params: [(u16, u32, u32); MAX_PARAMS],
    pub n_params: usize,
    /// For a prefix match, the bytes of the path the prefix covers (`/api` of `/api/x` for
    /// `/api/*`; 0 for `/*`); 0 for an exact match. `strip_prefix` forwards `path[prefix_len..]`
    /// (or `/` when that is empty).
    pub prefix_len: usize,
}

impl Default for RouteMatch {
    fn default() -> Self {
        RouteMatch {
            route: 0,
            params: [(0, 0, 0); MAX_PARAMS],
            n_params: 0,
            prefix_len: 0,
        }
    }
}

impl RouteMatch {
    /// The captured params (name index, start, length).
    pub fn params(&self) -> &[(u16, u32, u32)] {
        self.params.get(..self.n_params).unwrap_or(&[])
    }

    /// The bytes of capture `i` in `path` (the path given to `find`).
    pub fn param_value<'p>(&self, path: &'p [u8], i: usize) -> Option<&'p [u8]> {
        let &(_, start, len) = self.params().get(i)?;
        let start = start as usize;
        path.get(start..start.checked_add(len as usize)?)
    }
}

/// Routes of one config version, ready for lookups. Immutable and `Sync`: built on the control
/// thread, shared by every worker through the config snapshot.
#[derive(Debug, Default)]
pub struct Router {
    /// Lower-cased host without port -> table.
    exact_hosts: HashMap<Box<[u8]>, Table>,
    /// Suffix with its leading dot (`.example.com` for `*.example.com`) -> table.
    wildcard_hosts: HashMap<Box<[u8]>, Table>,
    /// Routes without hosts.
    any_host: Table,
    /// Per route, its distinct param names over all its paths, in order of first appearance.
    names: Vec<Vec<Box<str>>>,
}

impl Router {
    /// Builds the tables from validated routes. Never fails: entries validation would reject
    /// (bad syntax) are skipped, and of two routes claiming the same host, path and method the
    /// first one listed keeps it.
    pub fn build(routes: &[Route]) -> Router {
        let mut router = Router::default();
        for (index, route) in routes.iter().enumerate() {
            let patterns: Vec<_> = route
                .paths
                .iter()
                .filter_map(|p| parse_path(p).ok())
                .collect();
            let mut names: Vec<Box<str>> = Vec::new();
            let mut leaves = Vec::with_capacity(patterns.len());
            for pattern in &patterns {
                let mut leaf = Leaf {
                    route: index,
                    names: [0; MAX_PARAMS],
                };
                for (slot, name) in leaf.names.iter_mut().zip(pattern.param_names()) {
                    let at = match names.iter().position(|n| &**n == name) {
                        Some(at) => at,
                        None => {
                            names.push(name.into());
                            names.len() - 1
                        }
                    };
                    *slot = u16::try_from(at).unwrap_or(u16::MAX);
                }
                leaves.push(leaf);
            }
            router.names.push(names);
            let methods: Vec<Option<&str>> = if route.methods.is_empty() {
                vec![None]
            } else {
                route
                    .methods
                    .iter()
                    .filter(|m| check_method(m).is_ok())
                    .map(|m| Some(m.as_str()))
                    .collect()
            };
            if route.hosts.is_empty() {
                insert_all(&mut router.any_host, &patterns, &leaves, &methods);
            }
            for host in route.hosts.iter().filter_map(|h| parse_host(h).ok()) {
                let table = match host {
                    HostPattern::Exact(h) => router.exact_hosts.entry(h.into_bytes().into()),
                    HostPattern::Wildcard(s) => router.wildcard_hosts.entry(s.into_bytes().into()),
                };
                insert_all(table.or_default(), &patterns, &leaves, &methods);
            }
        }
        router
    }

    /// Finds the route for a request. `host` is the raw Host header value (any case, maybe with
    /// `:port`, IPv6 in brackets; empty when absent), `path` the path without query. Fills `out`
    /// and returns true on a match.
    ///
    /// A Host longer than [`MAX_HOST_LEN`] or malformed matches no named host, only any-host
    /// routes, like any unknown host.
    pub fn find(&self, host: &[u8], method: &[u8], path: &[u8], out: &mut RouteMatch) -> bool {
        let mut visits = 0;
        self.find_counted(host, method, path, out, &mut visits)
    }

    /// [`Router::find`] that also counts trie nodes visited, so tests can show the work does
    /// not grow with the number of routes.
    pub(crate) fn find_counted(
        &self,
        host: &[u8],
        method: &[u8],
        path: &[u8],
        out: &mut RouteMatch,
        visits: &mut u32,
    ) -> bool {
        // Offsets are u32 in RouteMatch; request lines are far shorter (limits.max_request_line).
        if path.first() != Some(&b'/') || u32::try_from(path.len()).is_err() {
            return false;
        }
        if !self.exact_hosts.is_empty() || !self.wildcard_hosts.is_empty() {
            let mut buf = [0u8; MAX_HOST_LEN];
            if let Some(h) = normalize_host(host, &mut buf) {
                if let Some(t) = self.exact_hosts.get(h) {
                    if t.find(method, path, out, visits) {
                        return true;
                    }
                }
                if !self.wildcard_hosts.is_empty() {
                    // Each dot after the first byte starts a suffix, longest first; `*.a.com`
                    // is stored as `.a.com`, so `a.com` itself never matches it.
                    for (i, _) in h.iter().enumerate().skip(1).filter(|(_, &b)| b == b'.') {
                        let Some(suffix) = h.get(i..) else { break };
                        if let Some(t) = self.wildcard_hosts.get(suffix) {
                            if t.find(method, path, out, visits) {
                                return true;
                            }
                        }
                    }
                }
            }
        }
        self.any_host.find(method, path, out, visits)
    }

    /// Name of param `idx` of `route` (from [`RouteMatch::params`]); "" if there is none.
    pub fn param_name(&self, route: usize, idx: u16) -> &str {
        self.names
            .get(route)
            .and_then(|n| n.get(usize::from(idx)))
            .map_or("", |n| n)
    }
}

fn insert_all(
    table: &mut Table,
    patterns: &[crate::pattern::PathPattern],
    leaves: &[Leaf],
    methods: &[Option<&str>],
) {
    for (pattern, leaf) in patterns.iter().zip(leaves) {
        for method in methods {
            table.insert(pattern, *method, *leaf);
        }
    }
}

/// The host part of a Host header value, lower-cased into `buf`: port dropped (`[v6]:port`
/// keeps its brackets), one trailing dot dropped (`example.com.` is `example.com`). `None`
/// when empty, malformed or longer than the buffer.
fn normalize_host<'b>(raw: &[u8], buf: &'b mut [u8; MAX_HOST_LEN]) -> Option<&'b [u8]> {
    let host = if raw.first() == Some(&b'[') {
        let end = raw.iter().position(|&b| b == b']')?;
        raw.get(..=end)?
    } else {
        match raw.iter().position(|&b| b == b':') {
            Some(colon) => raw.get(..colon)?,
            None => raw,
        }
    };
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    let dst = buf.get_mut(..host.len())?;
    for (d, s) in dst.iter_mut().zip(host) {
        *d = s.to_ascii_lowercase();
    }
    Some(dst)
}

#[cfg(test)]
mod tests;
