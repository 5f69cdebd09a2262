//! The `rate_limit` stage: counts the request against its key in the node-wide table and
//! answers 429 with `Retry-After` when the key is over its rate.
//!
//! Keys: the client address (`ctx.client_ip`, after any trusted-proxy rule), the matched
//! route's id, the authenticated consumer's id, or a header value. Modules keyed by consumer
//! run after the auth phase (they need its answer); the others run before it, so a flood is
//! cut before any signature is checked.

use super::{mono_ns, read, under, Built, Carry, Form};
use crate::context::Context;
use crate::modules::rate_limit::{ip_key, KeyKind, RateDecision, RateLimitConfig, RateLimiter};
use crate::pipeline::{CoreState, Phase};
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use conf::{ConfigError, Settings};
use protocols::error::ErrorKind;
use std::sync::Arc;

pub(crate) struct RateLimitStage {
    limiter: RateLimiter,
}

pub(super) fn compile(
    s: &Settings,
    at: &str,
    prev: Option<&Carry>,
) -> Result<Built, Vec<ConfigError>> {
    let cfg: RateLimitConfig = read(s, at).map_err(|e| vec![e])?;
    let limiter = match prev {
        Some(Carry::RateLimit(p)) => RateLimiter::compile_reusing(&cfg, p),
        _ => RateLimiter::compile(&cfg),
    }
    .map_err(|e| under(at, e))?;
    let phase = if limiter.key_kind() == KeyKind::Consumer {
        Phase::ConsumerLimit
    } else {
        Phase::RateLimit
    };
    let stage = RateLimitStage {
        limiter: limiter.clone(),
    };
    Ok((
        "rate_limit",
        phase,
        Form::Shared(Arc::new(stage)),
        Carry::RateLimit(limiter),
    ))
}

impl Stage for RateLimitStage {
    fn kind(&self) -> &'static str {
        "rate_limit"
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        req: &Request,
        snap: &Snapshot,
        _core: &mut CoreState,
    ) -> Flow {
        let mut ip_buf = [0u8; 16];
        let key: Option<&[u8]> = match self.limiter.key_kind() {
            KeyKind::Ip => Some(ip_key(ctx.client_ip, &mut ip_buf)),
            KeyKind::Route => snap
                .config
                .routes
                .get(ctx.route.route)
                .map(|r| r.id.as_bytes()),
            KeyKind::Consumer => ctx
                .consumer
                .and_then(|i| snap.consumers.by_index(i))
                .map(|c| c.id.as_bytes()),
            KeyKind::Header => self
                .limiter
                .header_name()
                .and_then(|h| req.header(h.as_bytes())),
        };
        match self.limiter.check(key, mono_ns()) {
            RateDecision::Allow => Flow::Continue,
            RateDecision::Limited { retry_after_secs } => Flow::Respond(Reject {
                retry_after: Some(retry_after_secs),
                ..Reject::new(ErrorKind::RateLimited)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::stages::testutil::{rejected, Harness};
    use crate::Flow;
    use protocols::error::ErrorKind;

    fn config(key: &str) -> String {
        format!(
            "[[modules]]\nid = \"lim\"\nkind = \"rate_limit\"\nrate = 0.5\nburst = 2\n{key}\n\
             [[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"u\"\nmodules = [\"lim\"]\n\
             [[routes]]\nid = \"s\"\npaths = [\"/s\"]\nupstream = \"u\"\nmodules = [\"lim\"]\n"
        )
    }

    fn passes(h: &mut Harness, head: &str, peer: &str) -> bool {
        let o = h.run(head, peer, b"");
        match o.flow {
            Flow::Continue => true,
            _ => {
                let r = rejected(&o);
                assert_eq!(r.kind, ErrorKind::RateLimited);
                assert!(r.retry_after.is_some_and(|s| (1..=2).contains(&s)), "{r:?}");
                false
            }
        }
    }

    #[test]
    fn by_ip_each_client_has_its_burst() {
        let mut h = Harness::new(&config(""));
        let get = "GET /a HTTP/1.1\nHost: a\n";
        assert!(passes(&mut h, get, "192.0.2.1"));
        assert!(passes(&mut h, get, "192.0.2.1"));
        assert!(!passes(&mut h, get, "192.0.2.1"));
        assert!(passes(&mut h, get, "192.0.2.2"));
        // IPv4-mapped IPv6 is the same client.
        assert!(!passes(&mut h, get, "::ffff:192.0.2.1"));
    }

    #[test]
    fn by_route_and_by_header() {
        let mut h = Harness::new(&config("key = \"route\""));
        assert!(passes(&mut h, "GET /a HTTP/1.1\nHost: a\n", "192.0.2.1"));
        assert!(passes(&mut h, "GET /b HTTP/1.1\nHost: a\n", "192.0.2.2"));
        assert!(!passes(&mut h, "GET /c HTTP/1.1\nHost: a\n", "192.0.2.3"));
        assert!(passes(&mut h, "GET /s HTTP/1.1\nHost: a\n", "192.0.2.3"));
        let mut h = Harness::new(&config(
            "key = \"header\"\nheader = \"x-app\"\non_missing_key = \"allow\"",
        ));
        for _ in 0..2 {
            assert!(passes(
                &mut h,
                "GET /a HTTP/1.1\nHost: a\nX-App: one\n",
                "192.0.2.1"
            ));
        }
        assert!(!passes(
            &mut h,
            "GET /a HTTP/1.1\nHost: a\nX-App: one\n",
            "192.0.2.9"
        ));
        assert!(passes(
            &mut h,
            "GET /a HTTP/1.1\nHost: a\nX-App: two\n",
            "192.0.2.1"
        ));
        for _ in 0..5 {
            assert!(passes(&mut h, "GET /a HTTP/1.1\nHost: a\n", "192.0.2.1"));
        }
    }

    #[test]
    fn consumer_keyed_limits_run_after_auth() {
        let h = Harness::new(
            "[[modules]]\nid = \"lim\"\nkind = \"rate_limit\"\nrate = 1\nkey = \"consumer\"\n\
             [[modules]]\nid = \"ip\"\nkind = \"rate_limit\"\nrate = 1\n\
             [[modules]]\nid = \"keys\"\nkind = \"key_auth\"\n\
             [[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"u\"\n\
             modules = [\"lim\", \"keys\", \"ip\"]\n",
        );
        assert_eq!(
            h.snap.pipeline.kinds(0),
            vec!["route", "rate_limit", "key_auth", "rate_limit", "upstream"]
        );
    }

    #[test]
    fn a_new_version_keeps_the_counts() {
        let mut h1 = Harness::new(&config(""));
        assert!(passes(&mut h1, "GET /a HTTP/1.1\nHost: a\n", "192.0.2.1"));
        assert!(passes(&mut h1, "GET /a HTTP/1.1\nHost: a\n", "192.0.2.1"));
        let c = conf::Config::from_toml_str(&format!(
            "{}{}",
            crate::stages::testutil::UPSTREAM,
            config("")
        ))
        .unwrap();
        let snap = crate::Snapshot::build_next(c, 2, Some(&h1.snap)).unwrap();
        let mut h2 = Harness {
            core: crate::CoreState::for_snapshot(&snap),
            snap,
            unix_secs: h1.unix_secs,
        };
        assert!(!passes(&mut h2, "GET /a HTTP/1.1\nHost: a\n", "192.0.2.1"));
    }
}
