//! The `redirect` stage: answers with a redirect instead of calling the upstream, either to
//! the same URL over https (`to_https`, for requests that came over plain http) or to a fixed
//! `location`, optionally followed by the request's path and query.
//!
//! The `Location` value is built in a stack buffer; a request whose redirect target would not
//! fit the context's header list is answered 414.

use super::{read, Built, Carry, Form, StackWriter};
use crate::context::Context;
use crate::headers::HEADER_BYTES;
use crate::pipeline::{CoreState, Phase};
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use conf::{ConfigError, Settings};
use protocols::error::ErrorKind;
use serde::Deserialize;
use std::fmt::Write as _;
use std::sync::Arc;

/// Longest `location` accepted in config (the rest of the header list is for the path).
const MAX_LOCATION: usize = 1024;

/// The fields of a `redirect` module.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedirectConfig {
    /// Redirect plain-http requests to the same host, path and query over https; requests
    /// that already came over TLS pass.
    pub to_https: bool,
    /// Port of the https URL; 443 is left out of it.
    pub https_port: u16,
    /// A fixed target URL (`https://new.example.com/v2`), instead of `to_https`.
    pub location: Option<String>,
    /// Append the request's path and query to `location`.
    pub keep_path: bool,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        RedirectConfig {
            to_https: false,
            https_port: 443,
            location: None,
            keep_path: false,
            status: 301,
        }
    }
}

enum Target {
    Https { port: u16 },
    Fixed { location: Box<str>, keep_path: bool },
}

pub(crate) struct RedirectStage {
    target: Target,
    status: u16,
}

pub(super) fn compile(s: &Settings, at: &str) -> Result<Built, Vec<ConfigError>> {
    let err = |f: &str, m: &str| vec![ConfigError::new(format!("{at}.{f}"), m)];
    let cfg: RedirectConfig = read(s, at).map_err(|e| vec![e])?;
    if ![301, 302, 303, 307, 308].contains(&cfg.status) {
        return Err(err("status", "must be 301, 302, 303, 307 or 308"));
    }
    let target = match (cfg.to_https, cfg.location) {
        (true, None) => {
            if cfg.keep_path {
                return Err(err("keep_path", "only used with location"));
            }
            if cfg.https_port == 0 {
                return Err(err("https_port", "must be 1..=65535"));
            }
            Target::Https {
                port: cfg.https_port,
            }
        }
        (false, Some(location)) => {
            let valid = (location.starts_with("https://") || location.starts_with("http://"))
                && location.len() <= MAX_LOCATION
                && location.bytes().all(|b| b.is_ascii_graphic());
            if !valid {
                return Err(err(
                    "location",
                    "must be an absolute http(s) URL of visible ASCII characters, at most 1024 bytes",
                ));
            }
            if cfg.https_port != 443 {
                return Err(err("https_port", "only used with to_https"));
            }
            Target::Fixed {
                location: location.trim_end_matches('/').into(),
                keep_path: cfg.keep_path,
            }
        }
        (true, Some(_)) => {
            return Err(err("location", "set either to_https or location, not both"))
        }
        (false, None) => return Err(err("location", "set to_https = true or a location")),
    };
    let stage = RedirectStage {
        target,
        status: cfg.status,
    };
    Ok((
        "redirect",
        Phase::Redirect,
        Form::Shared(Arc::new(stage)),
        Carry::None,
    ))
}

/// The host of a `Host` value without its port (`[v6]` keeps its brackets).
fn host_only(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => host.get(..=end).unwrap_or(host),
            None => host,
        };
    }
    match host.iter().position(|&b| b == b':') {
        Some(colon) => host.get(..colon).unwrap_or(host),
        None => host,
    }
}

impl Stage for RedirectStage {
    fn kind(&self) -> &'static str {
        "redirect"
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        req: &Request,
        _snap: &Snapshot,
        _core: &mut CoreState,
    ) -> Flow {
        let mut w = StackWriter::<HEADER_BYTES>::new();
        let fits = match &self.target {
            Target::Https { .. } if req.tls => return Flow::Continue,
            Target::Https { port } => {
                let host = host_only(req.host());
                if host.is_empty() {
                    return Flow::Respond(Reject::new(ErrorKind::BadRequest("no_host")));
                }
                w.push(b"https://")
                    && w.push(host)
                    && (*port == 443 || write!(w, ":{port}").is_ok())
                    && w.push(req.path())
                    && req.query().is_none_or(|q| w.push(b"?") && w.push(q))
            }
            Target::Fixed {
                location,
                keep_path,
            } => {
                w.push(location.as_bytes())
                    && (!keep_path
                        || (w.push(req.path())
                            && req.query().is_none_or(|q| w.push(b"?") && w.push(q))))
            }
        };
        if !fits || !ctx.reply_headers.push(b"Location", w.as_bytes()) {
            return Flow::Respond(Reject::new(ErrorKind::UriTooLong));
        }
        Flow::Reply(self.status)
    }
}

#[cfg(test)]
mod tests {
    use crate::stages::testutil::{field, rejected, Harness};
    use crate::Flow;
    use protocols::error::ErrorKind;

    fn harness(module: &str) -> Harness {
        Harness::new(&format!(
            "[[modules]]\nid = \"m\"\nkind = \"redirect\"\n{module}\n\
             [[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"u\"\nmodules = [\"m\"]\n"
        ))
    }

    fn location(h: &mut Harness, head: &str) -> (Flow, Option<String>) {
        let o = h.get(head);
        (o.flow, field(&o.ctx.reply_headers, "Location"))
    }

    #[test]
    fn http_to_https_keeps_host_path_and_query() {
        let mut h = harness("to_https = true");
        assert_eq!(
            location(
                &mut h,
                "GET /a/b?x=1 HTTP/1.1\nHost: shop.example.com:8080\n"
            ),
            (
                Flow::Reply(301),
                Some("https://shop.example.com/a/b?x=1".into())
            )
        );
        let mut h = harness("to_https = true\nhttps_port = 8443\nstatus = 308");
        assert_eq!(
            location(&mut h, "POST /pay HTTP/1.1\nHost: [::1]:8080\n"),
            (Flow::Reply(308), Some("https://[::1]:8443/pay".into()))
        );
        let o = h.get("GET / HTTP/1.0\n");
        assert_eq!(rejected(&o).kind, ErrorKind::BadRequest("no_host"));
    }

    #[test]
    fn fixed_location_with_or_without_the_path() {
        let mut h =
            harness("location = \"https://new.example.com/v2/\"\nkeep_path = true\nstatus = 302");
        assert_eq!(
            location(&mut h, "GET /items?page=2 HTTP/1.1\nHost: a\n"),
            (
                Flow::Reply(302),
                Some("https://new.example.com/v2/items?page=2".into())
            )
        );
        let mut h = harness("location = \"https://new.example.com/moved\"");
        assert_eq!(
            location(&mut h, "GET /items?page=2 HTTP/1.1\nHost: a\n")
                .1
                .as_deref(),
            Some("https://new.example.com/moved")
        );
    }

    #[test]
    fn a_target_too_long_for_the_header_list_is_414() {
        let mut h = harness("location = \"https://new.example.com\"\nkeep_path = true");
        let long = "a".repeat(3000);
        let o = h.get(&format!("GET /{long} HTTP/1.1\nHost: a\n"));
        assert_eq!(rejected(&o).kind, ErrorKind::UriTooLong);
    }

    #[test]
    fn config_mistakes_are_named() {
        let errs = Harness::errors(
            "[[modules]]\nid = \"a\"\nkind = \"redirect\"\n\
             [[modules]]\nid = \"b\"\nkind = \"redirect\"\nto_https = true\nstatus = 200\n\
             [[modules]]\nid = \"c\"\nkind = \"redirect\"\nlocation = \"/relative\"\n",
        );
        for prefix in [
            "modules[0].location: ",
            "modules[1].status: ",
            "modules[2].location: ",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(prefix)),
                "{prefix}: {errs:#?}"
            );
        }
    }
}
