//! The `ip_list` stage: decides the client address (the socket peer, or what trusted proxies
//! say in `X-Forwarded-For`) and refuses clients on the deny list or off the allow list (403).
//!
//! A module with `trusted_proxies` sets `ctx.client_ip` for every later stage (rate limits by
//! IP, the `X-Real-IP` sent upstream); a module without them checks the address as decided so
//! far. Global ip_list modules run before route matching, so a denied client costs no lookup.

use super::{read, under, Form};
use crate::context::Context;
use crate::modules::ip_list::{IpListConfig, IpListEngine, IpVerdict};
use crate::pipeline::{CoreState, Phase};
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use conf::{ConfigError, Settings};
use protocols::error::ErrorKind;
use std::sync::Arc;

pub(crate) struct IpListStage {
    engine: IpListEngine,
    /// Whether this module decides the client address (it has trusted proxies).
    sets_client: bool,
}

pub(super) fn compile(s: &Settings, at: &str) -> Result<super::Built, Vec<ConfigError>> {
    let cfg: IpListConfig = read(s, at).map_err(|e| vec![e])?;
    let engine = IpListEngine::compile(&cfg).map_err(|e| under(at, e))?;
    let stage = IpListStage {
        sets_client: !engine.trusted_proxies().is_empty(),
        engine,
    };
    Ok((
        "ip_list",
        Phase::IpList,
        Form::Shared(Arc::new(stage)),
        super::Carry::None,
    ))
}

/// The last `X-Forwarded-For` field: the proxy next to us appended to that one.
fn last_forwarded_for<'a>(req: &'a Request) -> Option<&'a [u8]> {
    req.headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"x-forwarded-for"))
        .last()
        .map(|(_, v)| v)
}

impl Stage for IpListStage {
    fn kind(&self) -> &'static str {
        "ip_list"
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        req: &Request,
        _snap: &Snapshot,
        _core: &mut CoreState,
    ) -> Flow {
        if self.sets_client {
            ctx.client_ip = self.engine.client_ip(req.peer, last_forwarded_for(req));
        }
        match self.engine.check(ctx.client_ip) {
            IpVerdict::Allow => Flow::Continue,
            IpVerdict::Denied | IpVerdict::NotAllowed => {
                Flow::Respond(Reject::new(ErrorKind::Forbidden("ip_list")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::stages::testutil::{rejected, Harness};
    use crate::Flow;
    use protocols::error::ErrorKind;

    const CONFIG: &str = r#"
[[modules]]
id = "edge"
kind = "ip_list"
global = true
deny = ["203.0.113.0/24"]
trusted_proxies = ["10.0.0.2"]

[[modules]]
id = "office"
kind = "ip_list"
allow = ["192.0.2.0/24", "198.51.100.7"]

[[routes]]
id = "open"
paths = ["/open"]
upstream = "u"

[[routes]]
id = "office"
paths = ["/office"]
upstream = "u"
modules = ["office"]
"#;

    #[test]
    fn global_deny_runs_before_routing_and_route_allow_after() {
        let mut h = Harness::new(CONFIG);
        assert_eq!(
            h.run("GET /open HTTP/1.1\nHost: a\n", "192.0.2.9", b"")
                .flow,
            Flow::Continue
        );
        // Denied even where no route matches: the global list ran first.
        let o = h.run("GET /nowhere HTTP/1.1\nHost: a\n", "203.0.113.5", b"");
        assert_eq!(rejected(&o).kind, ErrorKind::Forbidden("ip_list"));
        assert!(!o.ctx.matched);
        let o = h.run("GET /office HTTP/1.1\nHost: a\n", "198.51.100.8", b"");
        assert_eq!(rejected(&o).kind, ErrorKind::Forbidden("ip_list"));
        assert!(o.ctx.matched);
        let o = h.run("GET /office HTTP/1.1\nHost: a\n", "198.51.100.7", b"");
        assert_eq!(o.flow, Flow::Continue);
    }

    #[test]
    fn trusted_proxy_names_the_client_for_every_later_stage() {
        let mut h = Harness::new(CONFIG);
        // Through the trusted proxy: the client is the rightmost untrusted XFF entry.
        let o = h.run(
            "GET /office HTTP/1.1\nHost: a\nX-Forwarded-For: 1.1.1.1\nX-Forwarded-For: 203.0.113.9, 192.0.2.44\n",
            "10.0.0.2",
            b"",
        );
        assert_eq!(o.flow, Flow::Continue);
        assert_eq!(o.ctx.client_ip.to_string(), "192.0.2.44");
        let o = h.run(
            "GET /open HTTP/1.1\nHost: a\nX-Forwarded-For: 203.0.113.9\n",
            "10.0.0.2",
            b"",
        );
        assert_eq!(rejected(&o).kind, ErrorKind::Forbidden("ip_list"));
        // From anyone else the header is ignored.
        let o = h.run(
            "GET /open HTTP/1.1\nHost: a\nX-Forwarded-For: 203.0.113.9\n",
            "192.0.2.1",
            b"",
        );
        assert_eq!(o.flow, Flow::Continue);
        assert_eq!(o.ctx.client_ip.to_string(), "192.0.2.1");
    }

    #[test]
    fn bad_entries_name_their_path() {
        let errs = Harness::errors(
            "[[modules]]\nid = \"x\"\nkind = \"ip_list\"\ndeny = [\"10.0.0.0/8\", \"10.0.0.1/8\"]\n\
             [[modules]]\nid = \"y\"\nkind = \"ip_list\"\ndenny = []\n",
        );
        assert!(
            errs.iter().any(|e| e.starts_with("modules[0].deny[1]: ")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("modules[1].denny: unknown field")),
            "{errs:?}"
        );
    }
}
