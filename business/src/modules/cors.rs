//! cors engine: answers browser preflights and decorates actual responses with the
//! `Access-Control-*` headers a route's config allows.
//!
//! Everything that does not depend on the request (joined method and header lists, the
//! `Access-Control-Max-Age` value) is rendered once at compile time; per request the engine
//! only compares bytes and returns a fixed-size list of `(name, value)` pairs whose values
//! borrow from the engine or from the request (the reflected `Origin`), so nothing is
//! allocated.
//!
//! Rules worth knowing (they follow the Fetch standard's CORS protocol):
//! - `*` is never sent together with `Access-Control-Allow-Credentials: true` — browsers
//!   reject that. With credentials, an allowed origin is reflected, `*` in `allow_headers` /
//!   `allow_methods` reflects what the preflight asked for, and `*` in `expose_headers` is
//!   refused at compile time (there is nothing to reflect).
//! - Whenever the answer depends on `Origin`, `Vary: Origin` is sent, also on responses to
//!   origins that are not allowed, so a shared cache never serves one origin's answer to
//!   another.
//! - The safelisted methods GET, HEAD and POST always pass the preflight method check, as in
//!   browsers; list other methods in `allow_methods`.
//! - `https://*.example.com` matches any subdomain at any depth (`a.example.com`,
//!   `a.b.example.com`) over the same scheme and port, never `example.com` itself.

use conf::ConfigError;
use serde::Deserialize;

const MAX_HEADERS_OUT: usize = 7;

/// The fields of a `cors` module (`id` and `kind` are read by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// `*`, exact origins (`https://shop.example.com`), or `https://*.example.com`.
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    /// Seconds a browser may cache a preflight answer; 0 = header not sent.
    pub max_age: u32,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allow_origins: Vec::new(),
            allow_methods: vec!["GET".into(), "HEAD".into(), "POST".into()],
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            allow_credentials: false,
            max_age: 600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginRule {
    /// Lowercased `scheme://host[:port]`.
    Exact(String),
    /// `scheme://` and `.suffix[:port]` around a `*` label, lowercased.
    Subdomains {
        scheme: String,
        suffix: String,
        port: String,
    },
}

/// A compiled `cors` module; read-only and shared by every core.
#[derive(Debug, Clone)]
pub struct CorsEngine {
    any_origin: bool,
    origins: Vec<OriginRule>,
    credentials: bool,
    any_method: bool,
    methods: Vec<String>,
    methods_joined: Box<[u8]>,
    any_header: bool,
    /// Lowercased, for comparison with `Access-Control-Request-Headers`.
    headers: Vec<String>,
    headers_joined: Box<[u8]>,
    expose_joined: Box<[u8]>,
    max_age: Box<[u8]>,
}

/// Headers to write, in order; values borrow from the engine or the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorsHeaders<'a> {
    items: [(&'static str, &'a [u8]); MAX_HEADERS_OUT],
    len: usize,
}

impl<'a> CorsHeaders<'a> {
    fn new() -> Self {
        CorsHeaders {
            items: [("", &[]); MAX_HEADERS_OUT],
            len: 0,
        }
    }

    fn push(&mut self, name: &'static str, value: &'a [u8]) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = (name, value);
            self.len += 1;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &'a [u8])> + '_ {
        self.items.iter().take(self.len).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of header `name` (exact spelling as written by this engine).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// Why a preflight is refused (answer it 403 without CORS headers; the browser then blocks
/// the actual request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreflightReject {
    OriginNotAllowed,
    MethodNotAllowed,
    HeaderNotAllowed,
}

/// `Ok`: answer `204 No Content` with these headers; `Err`: refuse (403).
pub type PreflightAnswer<'a> = Result<CorsHeaders<'a>, PreflightReject>;

const VARY_ORIGIN: &[u8] = b"Origin";
const TRUE: &[u8] = b"true";
const STAR: &[u8] = b"*";

impl CorsEngine {
    pub fn compile(cfg: &CorsConfig) -> Result<CorsEngine, ConfigError> {
        if cfg.allow_origins.is_empty() {
            return Err(ConfigError::new(
                "allow_origins",
                "list at least one origin (or \"*\")",
            ));
        }
        let mut origins = Vec::new();
        let mut any_origin = false;
        for (i, o) in cfg.allow_origins.iter().enumerate() {
            if o == "*" {
                any_origin = true;
            } else {
                origins.push(
                    parse_origin_rule(o)
                        .map_err(|m| ConfigError::new(format!("allow_origins[{i}]"), m))?,
                );
            }
        }
        let tokens = |field: &str, list: &[String]| -> Result<bool, ConfigError> {
            let mut star = false;
            for (i, t) in list.iter().enumerate() {
                if t == "*" {
                    star = true;
                } else if t.is_empty() || !t.bytes().all(is_token_byte) {
                    return Err(ConfigError::new(
                        format!("{field}[{i}]"),
                        format!("`{t}` is not a valid token"),
                    ));
                }
            }
            Ok(star)
        };
        let any_method = tokens("allow_methods", &cfg.allow_methods)?;
        let any_header = tokens("allow_headers", &cfg.allow_headers)?;
        let any_expose = tokens("expose_headers", &cfg.expose_headers)?;
        if any_expose && cfg.allow_credentials {
            return Err(ConfigError::new(
                "expose_headers",
                "\"*\" is a literal name when credentials are allowed; list the headers",
            ));
        }
        let join = |list: &[String], star: bool| -> Box<[u8]> {
            if star {
                STAR.into()
            } else {
                list.join(", ").into_bytes().into_boxed_slice()
            }
        };
        Ok(CorsEngine {
            any_origin,
            origins,
            credentials: cfg.allow_credentials,
            any_method,
            methods: cfg.allow_methods.clone(),
            methods_joined: join(&cfg.allow_methods, any_method),
            any_header,
            headers: cfg
                .allow_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            headers_joined: join(&cfg.allow_headers, any_header),
            expose_joined: join(&cfg.expose_headers, any_expose),
            max_age: if cfg.max_age == 0 {
                Box::default()
            } else {
                cfg.max_age.to_string().into_bytes().into_boxed_slice()
            },
        })
    }

    /// True when a request is a CORS preflight (an `OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`); other `OPTIONS` requests go to the upstream.
    pub fn is_preflight(
        method: &[u8],
        origin: Option<&[u8]>,
        request_method: Option<&[u8]>,
    ) -> bool {
        method == b"OPTIONS" && origin.is_some() && request_method.is_some()
    }

    /// Does the answer depend on the `Origin` header?
    fn varies(&self) -> bool {
        self.credentials || !self.any_origin
    }

    fn origin_allowed(&self, origin: &[u8]) -> bool {
        self.any_origin || self.origins.iter().any(|r| rule_matches(r, origin))
    }

    /// The `Access-Control-Allow-Origin` value for an allowed origin.
    fn allow_origin_value<'a>(&'a self, origin: &'a [u8]) -> &'a [u8] {
        if self.any_origin && !self.credentials {
            STAR
        } else {
            origin
        }
    }

    /// Answers a preflight: `origin` is the `Origin` header, `req_method` the
    /// `Access-Control-Request-Method`, `req_headers` the `Access-Control-Request-Headers`.
    pub fn preflight<'a>(
        &'a self,
        origin: &'a [u8],
        req_method: &'a [u8],
        req_headers: Option<&'a [u8]>,
    ) -> PreflightAnswer<'a> {
        if !self.origin_allowed(origin) {
            return Err(PreflightReject::OriginNotAllowed);
        }
        let safelisted = matches!(req_method, b"GET" | b"HEAD" | b"POST");
        if !(safelisted
            || self.any_method
            || self.methods.iter().any(|m| m.as_bytes() == req_method))
        {
            return Err(PreflightReject::MethodNotAllowed);
        }
        let requested = req_headers.unwrap_or_default();
        if !self.any_header {
            let listed = requested
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .filter(|h| !h.is_empty())
                .all(|h| {
                    self.headers
                        .iter()
                        .any(|a| a.as_bytes().eq_ignore_ascii_case(h))
                });
            if !listed {
                return Err(PreflightReject::HeaderNotAllowed);
            }
        }
        let mut out = CorsHeaders::new();
        out.push(
            "Access-Control-Allow-Origin",
            self.allow_origin_value(origin),
        );
        if self.credentials {
            out.push("Access-Control-Allow-Credentials", TRUE);
        }
        let methods: &[u8] = if self.any_method && self.credentials {
            req_method
        } else {
            &self.methods_joined
        };
        out.push("Access-Control-Allow-Methods", methods);
        let headers: &[u8] = if self.any_header && self.credentials {
            requested
        } else {
            &self.headers_joined
        };
        if !headers.is_empty() {
            out.push("Access-Control-Allow-Headers", headers);
        }
        if !self.max_age.is_empty() {
            out.push("Access-Control-Max-Age", &self.max_age);
        }
        if self.varies() {
            out.push("Vary", VARY_ORIGIN);
        }
        Ok(out)
    }

    /// Headers to add to an actual (non-preflight) response for a request with this `Origin`
    /// (`None`: no `Origin` header). A disallowed origin gets no CORS headers, only `Vary`.
    pub fn response_headers<'a>(&'a self, origin: Option<&'a [u8]>) -> CorsHeaders<'a> {
        let mut out = CorsHeaders::new();
        if let Some(origin) = origin.filter(|o| self.origin_allowed(o)) {
            out.push(
                "Access-Control-Allow-Origin",
                self.allow_origin_value(origin),
            );
            if self.credentials {
                out.push("Access-Control-Allow-Credentials", TRUE);
            }
            if !self.expose_joined.is_empty() {
                out.push("Access-Control-Expose-Headers", &self.expose_joined);
            }
        }
        if self.varies() {
            out.push("Vary", VARY_ORIGIN);
        }
        out
    }
}

/// `scheme://host[:port]` or `scheme://*.domain[:port]`, nothing after.
fn parse_origin_rule(s: &str) -> Result<OriginRule, String> {
    let lower = s.to_ascii_lowercase();
    let (scheme, rest) = lower
        .split_once("://")
        .ok_or_else(|| format!("`{s}` is not an origin (scheme://host[:port])"))?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Err(format!("`{s}`: bad scheme"));
    }
    let (host, port) = match rest.find(']') {
        // `[v6]` or `[v6]:port`
        Some(end) => {
            let (h, after) = rest.split_at(end + 1);
            match after {
                "" => (h, None),
                a => (
                    h,
                    Some(
                        a.strip_prefix(':')
                            .ok_or_else(|| format!("`{s}`: bad port"))?,
                    ),
                ),
            }
        }
        None => match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        },
    };
    if let Some(p) = port {
        if !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return Err(format!(
                "`{s}`: bad port (and no path is allowed in an origin)"
            ));
        }
    }
    let valid_host = |h: &str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
            && !h.starts_with('.')
            && !h.ends_with('.')
    };
    if let Some(domain) = host.strip_prefix("*.") {
        if !valid_host(domain) || domain.contains('*') {
            return Err(format!("`{s}`: bad domain after `*.`"));
        }
        return Ok(OriginRule::Subdomains {
            scheme: format!("{scheme}://"),
            suffix: format!(".{domain}"),
            port: port.map(|p| format!(":{p}")).unwrap_or_default(),
        });
    }
    if !valid_host(host) {
        return Err(format!(
            "`{s}`: bad host (wildcards only as a leading `*.` label; no path)"
        ));
    }
    Ok(OriginRule::Exact(lower))
}

fn rule_matches(rule: &OriginRule, origin: &[u8]) -> bool {
    match rule {
        OriginRule::Exact(o) => o.as_bytes().eq_ignore_ascii_case(origin),
        OriginRule::Subdomains {
            scheme,
            suffix,
            port,
        } => {
            let Some(rest) = strip_prefix_ci(origin, scheme.as_bytes()) else {
                return false;
            };
            let Some(host) = strip_suffix_ci(rest, port.as_bytes()) else {
                return false;
            };
            let Some(label) = strip_suffix_ci(host, suffix.as_bytes()) else {
                return false;
            };
            !label.is_empty()
                && !label.starts_with(b".")
                && label
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (head, tail) = s.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(tail)
}

fn strip_suffix_ci<'a>(s: &'a [u8], suffix: &[u8]) -> Option<&'a [u8]> {
    let (head, tail) = s.split_at_checked(s.len().checked_sub(suffix.len())?)?;
    tail.eq_ignore_ascii_case(suffix).then_some(head)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests;
