//! Whole-config validation: every problem in one pass, each named by its field path.
//!
//! The file and every admin API change go through this same function (a change is applied to a
//! copy of the config, then the copy is validated whole), so there is one definition of
//! "valid". Checks never stop at the first error: `gatehouse check` lists them all.

mod modules;
mod routes;
mod thrift;

use crate::error::ConfigError;
use crate::model::{Admin, Config, Limits, Server, Store, StoreKind, Upstream};
use std::collections::HashSet;
use std::fmt::Display;
use std::net::SocketAddr;

/// Longest resource id.
pub const MAX_ID_LEN: usize = 64;
/// Longest admin API key.
pub const MAX_API_KEY_LEN: usize = 256;
/// Bounds of every timeout, in milliseconds (1 ms to one hour).
const TIMEOUT_MS: (u64, u64) = (1, 3_600_000);
/// Largest body limit accepted (1 TiB): larger numbers are typos, not intentions.
pub const MAX_BODY_LIMIT: u64 = 1 << 40;

/// Collects errors with their paths.
#[derive(Default)]
pub(crate) struct Errors(pub(crate) Vec<ConfigError>);

impl Errors {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(path, message));
    }

    /// `lo <= value <= hi`, else "must be between lo and hi" (the value itself is in the file,
    /// one look away; the message stays the same for every value).
    pub(crate) fn range<T: PartialOrd + Display>(&mut self, path: &str, value: T, lo: T, hi: T) {
        if value < lo || value > hi {
            self.push(path, format!("must be between {lo} and {hi}"));
        }
    }

    pub(crate) fn timeout(&mut self, path: &str, value: u64) {
        self.range(path, value, TIMEOUT_MS.0, TIMEOUT_MS.1);
    }

    /// Resource ids: non-empty, `[A-Za-z0-9_.-]`, at most [`MAX_ID_LEN`] bytes. They appear in
    /// admin URLs and store keys, hence the small alphabet.
    pub(crate) fn id(&mut self, path: &str, id: &str) {
        if id.is_empty() {
            self.push(path, "must not be empty");
        } else if id.len() > MAX_ID_LEN {
            self.push(path, format!("must be at most {MAX_ID_LEN} characters"));
        } else if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        {
            self.push(
                path,
                format!("invalid id {id:?} (letters, digits, '_', '.' and '-' only)"),
            );
        }
    }

    /// Parses a `SocketAddr` string, reporting failure.
    pub(crate) fn socket_addr(&mut self, path: &str, addr: &str) -> Option<SocketAddr> {
        match addr.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.push(path, format!("invalid socket address {addr:?}"));
                None
            }
        }
    }
}

/// Two listen addresses that cannot both be bound (a wildcard IP covers every IP of its port).
/// Port 0 asks the kernel for a free port, so it never collides.
fn addrs_overlap(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

impl Config {
    /// Checks the whole config; returns every problem found (empty = valid).
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut e = Errors::default();
        let listen = check_server(&mut e, &self.server);
        check_limits(&mut e, &self.limits);
        check_admin(&mut e, &self.admin, &listen);
        check_store(&mut e, &self.store);
        crate::access_log::check(&mut e, &self.log);
        for (i, a) in crate::tls::check(&mut e, &self.tls, &self.certificates) {
            if let Some((j, _)) = listen.iter().find(|(_, b)| addrs_overlap(&a, b)) {
                e.push(
                    crate::tls::listener_path(&self.tls, i),
                    format!("{a} overlaps server.listen[{j}]"),
                );
            }
        }
        check_upstreams(&mut e, &self.upstreams);
        let service_ids = thrift::check_services(&mut e, &self.services);
        routes::check_routes(&mut e, &self.routes, &self.upstreams);
        for (i, r) in self.routes.iter().enumerate() {
            let upstream = self.upstreams.iter().find(|u| u.id == r.upstream);
            thrift::check_route(&mut e, &format!("routes[{i}]"), r, upstream, &service_ids);
        }
        let module_ids = modules::check_modules(&mut e, &self.modules);
        modules::check_consumers(&mut e, &self.consumers);
        modules::check_route_modules(&mut e, &self.routes, &module_ids);
        e.0
    }
}

/// Returns the listen addresses that parsed, with their index, for the admin overlap check.
fn check_server(e: &mut Errors, s: &Server) -> Vec<(usize, SocketAddr)> {
    e.range("server.workers", s.workers, 0, 1024);
    e.range("server.max_connections", s.max_connections, 1, 1_000_000);
    e.range("server.max_memory_mb", s.max_memory_mb, 0, 16 << 20);
    e.range(
        "server.drain_timeout_ms",
        s.drain_timeout_ms,
        0,
        TIMEOUT_MS.1,
    );
    e.timeout("server.upgrade_timeout_ms", s.upgrade_timeout_ms);
    if s.state_dir.as_os_str().is_empty() {
        e.push("server.state_dir", "must not be empty");
    }
    if s.listen.is_empty() {
        e.push("server.listen", "must list at least one address");
    }
    let mut seen: Vec<(usize, SocketAddr)> = Vec::new();
    for (i, addr) in s.listen.iter().enumerate() {
        let path = format!("server.listen[{i}]");
        let Some(a) = e.socket_addr(&path, addr) else {
            continue;
        };
        if let Some((j, _)) = seen.iter().find(|(_, b)| addrs_overlap(&a, b)) {
            e.push(path, format!("{addr:?} overlaps server.listen[{j}]"));
        }
        seen.push((i, a));
    }
    seen
}

fn check_limits(e: &mut Errors, l: &Limits) {
    e.range("limits.max_request_line", l.max_request_line, 64, 1_048_576);
    e.range(
        "limits.max_header_bytes",
        l.max_header_bytes,
        1024,
        1_048_576,
    );
    e.range("limits.max_headers", l.max_headers, 1, 256);
    e.timeout("limits.header_timeout_ms", l.header_timeout_ms);
    e.timeout("limits.idle_timeout_ms", l.idle_timeout_ms);
    e.timeout("limits.body_timeout_ms", l.body_timeout_ms);
    e.timeout("limits.send_timeout_ms", l.send_timeout_ms);
    e.range("limits.max_body_bytes", l.max_body_bytes, 0, MAX_BODY_LIMIT);
}

fn check_admin(e: &mut Errors, a: &Admin, listen: &[(usize, SocketAddr)]) {
    e.range("admin.max_body_bytes", a.max_body_bytes, 1024, 67_108_864);
    e.range("admin.threads", a.threads, 1, 64);
    e.timeout("admin.idle_timeout_ms", a.idle_timeout_ms);
    e.timeout("admin.publish_timeout_ms", a.publish_timeout_ms);
    e.range("admin.audit_max_bytes", a.audit_max_bytes, 4096, 1 << 40);
    if let Some(addr) = e.socket_addr("admin.listen", &a.listen) {
        if let Some((i, _)) = listen.iter().find(|(_, b)| addrs_overlap(&addr, b)) {
            e.push(
                "admin.listen",
                format!("{:?} overlaps server.listen[{i}]", a.listen),
            );
        }
    }
    // The key travels in a header value: visible ASCII only, no spaces.
    if a.api_key.len() > MAX_API_KEY_LEN {
        e.push(
            "admin.api_key",
            format!("must be at most {MAX_API_KEY_LEN} bytes"),
        );
    } else if !a.api_key.bytes().all(|b| b.is_ascii_graphic()) {
        e.push(
            "admin.api_key",
            "must be visible ASCII characters without spaces",
        );
    }
}

/// `http://host:port`, `https://host:port` or `host:port`, with an optional trailing '/'.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let bad = || format!("invalid endpoint {endpoint:?} (expected http://host:port)");
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    if port_ok && host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

fn check_store(e: &mut Errors, s: &Store) {
    match s.kind {
        StoreKind::File => {
            if !s.endpoints.is_empty() {
                e.push("store.endpoints", "only used with kind = \"etcd\"");
            }
        }
        StoreKind::Etcd => {
            if s.endpoints.is_empty() {
                e.push(
                    "store.endpoints",
                    "kind = \"etcd\" needs at least one endpoint",
                );
            }
            for (i, ep) in s.endpoints.iter().enumerate() {
                if let Err(msg) = check_endpoint(ep) {
                    e.push(format!("store.endpoints[{i}]"), msg);
                }
            }
            if !s.prefix.starts_with('/') || s.prefix.bytes().any(|b| !b.is_ascii_graphic()) {
                e.push(
                    "store.prefix",
                    format!(
                        "must start with '/' and hold visible ASCII only (got {:?})",
                        s.prefix
                    ),
                );
            }
        }
    }
}

fn check_upstreams(e: &mut Errors, upstreams: &[Upstream]) {
    let mut ids: HashSet<&str> = HashSet::new();
    for (i, u) in upstreams.iter().enumerate() {
        let p = format!("upstreams[{i}]");
        e.id(&format!("{p}.id"), &u.id);
        if !u.id.is_empty() && !ids.insert(u.id.as_str()) {
            e.push(format!("{p}.id"), format!("duplicate id {:?}", u.id));
        }
        if u.nodes.is_empty() {
            e.push(format!("{p}.nodes"), "must list at least one node");
        }
        crate::tls::check_upstream(e, &p, u);
        let mut addrs: Vec<(usize, SocketAddr)> = Vec::new();
        for (j, n) in u.nodes.iter().enumerate() {
            let np = format!("{p}.nodes[{j}]");
            e.range(&format!("{np}.weight"), n.weight, 1, 1000);
            let ap = format!("{np}.addr");
            let Some(a) = e.socket_addr(&ap, &n.addr) else {
                continue;
            };
            if a.port() == 0 || a.ip().is_unspecified() {
                e.push(
                    ap,
                    format!("{:?} is not an address one can connect to", n.addr),
                );
            } else if let Some((k, _)) = addrs.iter().find(|(_, b)| *b == a) {
                e.push(ap, format!("duplicate of {p}.nodes[{k}].addr"));
            } else {
                addrs.push((j, a));
            }
        }
        e.timeout(&format!("{p}.connect_timeout_ms"), u.connect_timeout_ms);
        if let Some(n) = u.max_requests {
            e.range(&format!("{p}.max_requests"), n, 1, 10_000_000);
        }
        e.timeout(&format!("{p}.read_timeout_ms"), u.read_timeout_ms);
        e.range(&format!("{p}.max_idle"), u.max_idle, 0, 10_000);
        e.timeout(&format!("{p}.idle_timeout_ms"), u.idle_timeout_ms);
        thrift::check_upstream(e, &p, u);
        crate::resilience::check_upstream(e, &p, u);
    }
}

#[cfg(test)]
mod tests;
