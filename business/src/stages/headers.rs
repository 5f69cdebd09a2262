//! The `headers` stage: sets and removes fields of the request sent upstream and of the answer
//! sent back.
//!
//! A set field replaces every field of that name (the client's, for requests; the upstream's,
//! for answers). Fields the gateway owns (framing, `Host`, forwarding and identity fields) can
//! be neither set nor removed. Runs late (phase `Headers`), after auth has added its fields.

use super::{read, Built, Carry, Form};
use crate::context::Context;
use crate::headers::{HEADER_BYTES, MAX_FIELDS};
use crate::modules::key_auth::common::{is_reserved_header, is_safe_header_value, is_token};
use crate::pipeline::{CoreState, Phase};
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use conf::{ConfigError, Settings};
use protocols::error::ErrorKind;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Share of a context's header lists one module may fill, leaving room for other stages.
const MAX_SET_FIELDS: usize = MAX_FIELDS / 2;
const MAX_SET_BYTES: usize = HEADER_BYTES / 2;

/// The fields of a `headers` module.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadersConfig {
    /// Fields set on the request sent upstream (name → value).
    pub request_set: BTreeMap<String, String>,
    /// Client fields not forwarded upstream.
    pub request_remove: Vec<String>,
    /// Fields set on the answer sent to the client.
    pub response_set: BTreeMap<String, String>,
    /// Upstream answer fields not relayed to the client.
    pub response_remove: Vec<String>,
}

pub(crate) struct HeadersStage {
    request_set: Vec<(String, String)>,
    request_remove: Vec<String>,
    response_set: Vec<(String, String)>,
    response_remove: Vec<String>,
}

/// Fields the gateway writes itself on top of `is_reserved_header`'s framing and identity ones.
fn gateway_owned(name: &str) -> bool {
    is_reserved_header(name)
        || [
            "x-forwarded-for",
            "x-real-ip",
            "x-forwarded-proto",
            "keep-alive",
            "proxy-connection",
        ]
        .iter()
        .any(|g| name.eq_ignore_ascii_case(g))
}

fn check_name(at: &str, field: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || !is_token(name) {
        return Err(ConfigError::new(
            format!("{at}.{field}"),
            format!("{name:?} is not a valid header name"),
        ));
    }
    if gateway_owned(name) {
        return Err(ConfigError::new(
            format!("{at}.{field}"),
            format!("{name:?} is managed by the gateway and cannot be changed"),
        ));
    }
    Ok(())
}

fn check_set(
    at: &str,
    field: &str,
    set: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut bytes = 0;
    for (name, value) in set {
        check_name(at, &format!("{field}.{name}"), name)?;
        if !is_safe_header_value(value.as_bytes()) {
            return Err(ConfigError::new(
                format!("{at}.{field}.{name}"),
                "value contains control characters",
            ));
        }
        bytes += name.len() + value.len();
    }
    if set.len() > MAX_SET_FIELDS || bytes > MAX_SET_BYTES {
        return Err(ConfigError::new(
            format!("{at}.{field}"),
            format!(
                "at most {MAX_SET_FIELDS} fields and {MAX_SET_BYTES} bytes of names and values"
            ),
        ));
    }
    Ok(set.iter().map(|(n, v)| (n.clone(), v.clone())).collect())
}

fn check_remove(
    at: &str,
    field: &str,
    list: &[String],
    set: usize,
) -> Result<Vec<String>, ConfigError> {
    for (i, name) in list.iter().enumerate() {
        check_name(at, &format!("{field}[{i}]"), name)?;
    }
    if list.len() + set > MAX_SET_FIELDS {
        return Err(ConfigError::new(
            format!("{at}.{field}"),
            format!("at most {MAX_SET_FIELDS} fields set and removed per direction"),
        ));
    }
    Ok(list.to_vec())
}

pub(super) fn compile(s: &Settings, at: &str) -> Result<Built, Vec<ConfigError>> {
    let build = || -> Result<HeadersStage, ConfigError> {
        let cfg: HeadersConfig = read(s, at)?;
        let request_set = check_set(at, "request_set", &cfg.request_set)?;
        let response_set = check_set(at, "response_set", &cfg.response_set)?;
        Ok(HeadersStage {
            request_remove: check_remove(at, "request_remove", &cfg.request_remove, 0)?,
            // A set answer field also removes the upstream's copies: count both.
            response_remove: check_remove(
                at,
                "response_remove",
                &cfg.response_remove,
                response_set.len(),
            )?,
            request_set,
            response_set,
        })
    };
    let stage = build().map_err(|e| vec![e])?;
    Ok((
        "headers",
        Phase::Headers,
        Form::Shared(Arc::new(stage)),
        Carry::None,
    ))
}

impl Stage for HeadersStage {
    fn kind(&self) -> &'static str {
        "headers"
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        _req: &Request,
        _snap: &Snapshot,
        _core: &mut CoreState,
    ) -> Flow {
        let mut ok = true;
        for (n, v) in &self.request_set {
            ok &= ctx.upstream_headers.push(n.as_bytes(), v.as_bytes());
        }
        for n in &self.request_remove {
            ok &= ctx.upstream_remove.push(n.as_bytes(), b"");
        }
        for (n, v) in &self.response_set {
            ok &= ctx.response_remove.push(n.as_bytes(), b"");
            ok &= ctx.response_headers.push(n.as_bytes(), v.as_bytes());
        }
        for n in &self.response_remove {
            ok &= ctx.response_remove.push(n.as_bytes(), b"");
        }
        if ok {
            Flow::Continue
        } else {
            Flow::Respond(Reject::new(ErrorKind::Internal))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::stages::testutil::{field, Harness};
    use crate::Flow;

    #[test]
    fn sets_and_removes_both_ways() {
        let mut h = Harness::new(
            r#"
[[modules]]
id = "h"
kind = "headers"
request_set = { X-Env = "prod", X-Trace = "on" }
request_remove = ["X-Debug"]
response_set = { X-Frame-Options = "DENY" }
response_remove = ["Server"]

[[routes]]
id = "r"
paths = ["/*"]
upstream = "u"
modules = ["h"]
"#,
        );
        let o = h.get("GET / HTTP/1.1\nHost: a\nX-Debug: 1\n");
        assert_eq!(o.flow, Flow::Continue);
        assert_eq!(
            field(&o.ctx.upstream_headers, "X-Env").as_deref(),
            Some("prod")
        );
        assert_eq!(
            field(&o.ctx.upstream_headers, "X-Trace").as_deref(),
            Some("on")
        );
        assert!(o.ctx.upstream_remove.contains(b"x-debug"));
        assert_eq!(
            field(&o.ctx.response_headers, "X-Frame-Options").as_deref(),
            Some("DENY")
        );
        assert!(o.ctx.response_remove.contains(b"server"));
        assert!(o.ctx.response_remove.contains(b"x-frame-options"));
    }

    #[test]
    fn gateway_fields_and_bad_values_are_refused() {
        let errs = Harness::errors(
            "[[modules]]\nid = \"a\"\nkind = \"headers\"\nrequest_set = { Host = \"x\" }\n\
             [[modules]]\nid = \"b\"\nkind = \"headers\"\nresponse_remove = [\"Content-Length\"]\n\
             [[modules]]\nid = \"c\"\nkind = \"headers\"\nrequest_set = { X-A = \"a\\r\\nB: c\" }\n\
             [[modules]]\nid = \"d\"\nkind = \"headers\"\nrequest_remove = [\"bad name\"]\n\
             [[modules]]\nid = \"e\"\nkind = \"headers\"\nrequset_set = {}\n",
        );
        for prefix in [
            "modules[0].request_set.Host: ",
            "modules[1].response_remove[0]: ",
            "modules[2].request_set.X-A: value contains control characters",
            "modules[3].request_remove[0]: ",
            "modules[4].requset_set: unknown field",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(prefix)),
                "{prefix}: {errs:#?}"
            );
        }
    }
}
