//! The `cors` stage: answers preflights at the gateway (204 with the allow headers, or 403)
//! and adds the `Access-Control-*` fields to actual responses.
//!
//! The gateway is the authority on CORS for routes with this module: the upstream's own
//! `Access-Control-*` fields are dropped, so a disallowed origin never gets one through.

use super::{read, under, Built, Carry, Form};
use crate::context::Context;
use crate::headers::HeaderBuf;
use crate::modules::cors::{CorsConfig, CorsEngine, CorsHeaders};
use crate::pipeline::{CoreState, Phase};
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use conf::{ConfigError, Settings};
use protocols::error::ErrorKind;
use std::sync::Arc;

/// Upstream answer fields the gateway's CORS answer replaces.
const UPSTREAM_CORS: [&[u8]; 6] = [
    b"Access-Control-Allow-Origin",
    b"Access-Control-Allow-Credentials",
    b"Access-Control-Expose-Headers",
    b"Access-Control-Allow-Methods",
    b"Access-Control-Allow-Headers",
    b"Access-Control-Max-Age",
];

pub(crate) struct CorsStage {
    engine: CorsEngine,
}

pub(super) fn compile(s: &Settings, at: &str) -> Result<Built, Vec<ConfigError>> {
    let cfg: CorsConfig = read(s, at).map_err(|e| vec![e])?;
    let engine = CorsEngine::compile(&cfg).map_err(|e| under(at, e))?;
    Ok((
        "cors",
        Phase::Cors,
        Form::Shared(Arc::new(CorsStage { engine })),
        Carry::None,
    ))
}

fn push_all(out: &mut HeaderBuf, h: &CorsHeaders) -> bool {
    h.iter().all(|(n, v)| out.push(n.as_bytes(), v))
}

impl Stage for CorsStage {
    fn kind(&self) -> &'static str {
        "cors"
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        req: &Request,
        _snap: &Snapshot,
        _core: &mut CoreState,
    ) -> Flow {
        let origin = req.header(b"origin");
        let asked_method = req.header(b"access-control-request-method");
        if CorsEngine::is_preflight(req.method(), origin, asked_method) {
            let (Some(origin), Some(method)) = (origin, asked_method) else {
                return Flow::Continue;
            };
            let asked_headers = req.header(b"access-control-request-headers");
            return match self.engine.preflight(origin, method, asked_headers) {
                Ok(h) if push_all(&mut ctx.reply_headers, &h) => Flow::Reply(204),
                Ok(_) => Flow::Respond(Reject::new(ErrorKind::Internal)),
                Err(_) => Flow::Respond(Reject::new(ErrorKind::Forbidden("cors"))),
            };
        }
        let h = self.engine.response_headers(origin);
        let removed = UPSTREAM_CORS
            .iter()
            .all(|n| ctx.response_remove.push(n, b""));
        if removed && push_all(&mut ctx.response_headers, &h) {
            Flow::Continue
        } else {
            Flow::Respond(Reject::new(ErrorKind::Internal))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::stages::testutil::{field, rejected, Harness};
    use crate::Flow;
    use protocols::error::ErrorKind;

    const CONFIG: &str = r#"
[[modules]]
id = "web"
kind = "cors"
allow_origins = ["https://shop.example.com"]
allow_methods = ["GET", "PUT"]
allow_headers = ["Content-Type"]
expose_headers = ["X-Request-Id"]
max_age = 600

[[modules]]
id = "need-id"
kind = "params"
[[modules.params]]
name = "id"
in = "query"
required = true

[[routes]]
id = "r"
paths = ["/*"]
upstream = "u"
modules = ["need-id", "web"]
"#;

    #[test]
    fn preflights_are_answered_before_other_checks() {
        let mut h = Harness::new(CONFIG);
        let o = h.get(
            "OPTIONS /items HTTP/1.1\nHost: a\nOrigin: https://shop.example.com\n\
             Access-Control-Request-Method: PUT\nAccess-Control-Request-Headers: content-type\n",
        );
        assert_eq!(o.flow, Flow::Reply(204));
        let r = &o.ctx.reply_headers;
        assert_eq!(
            field(r, "Access-Control-Allow-Origin").as_deref(),
            Some("https://shop.example.com")
        );
        assert_eq!(
            field(r, "Access-Control-Allow-Methods").as_deref(),
            Some("GET, PUT")
        );
        assert_eq!(field(r, "Access-Control-Max-Age").as_deref(), Some("600"));
        let o = h.get(
            "OPTIONS /items HTTP/1.1\nHost: a\nOrigin: https://evil.example\n\
             Access-Control-Request-Method: PUT\n",
        );
        assert_eq!(rejected(&o).kind, ErrorKind::Forbidden("cors"));
    }

    #[test]
    fn actual_requests_get_the_allow_origin_field() {
        let mut h = Harness::new(CONFIG);
        let o = h.get("GET /items?id=1 HTTP/1.1\nHost: a\nOrigin: https://shop.example.com\n");
        assert_eq!(o.flow, Flow::Continue);
        let r = &o.ctx.response_headers;
        assert_eq!(
            field(r, "Access-Control-Allow-Origin").as_deref(),
            Some("https://shop.example.com")
        );
        assert_eq!(
            field(r, "Access-Control-Expose-Headers").as_deref(),
            Some("X-Request-Id")
        );
        assert!(o
            .ctx
            .response_remove
            .contains(b"access-control-allow-origin"));
        let o = h.get("GET /items?id=1 HTTP/1.1\nHost: a\nOrigin: https://evil.example\n");
        assert_eq!(
            field(&o.ctx.response_headers, "Access-Control-Allow-Origin"),
            None
        );
        assert_eq!(
            field(&o.ctx.response_headers, "Vary").as_deref(),
            Some("Origin")
        );
    }
}
