//! The route stage: finds the route for host, method and path, or answers 404.

use crate::context::Context;
use crate::pipeline::CoreState;
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use protocols::error::ErrorKind;

pub struct RouteStage;

impl Stage for RouteStage {
    fn kind(&self) -> &'static str {
        "route"
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        req: &Request,
        snap: &Snapshot,
        _core: &mut CoreState,
    ) -> Flow {
        // `/public/../private` must not match `/public/*` and reach the upstream, which would
        // resolve it to `/private`: paths with dot segments (plain or percent-encoded) are
        // refused rather than normalized, so what is routed is what is forwarded.
        if has_dot_segment(req.path()) {
            return Flow::Respond(Reject::new(ErrorKind::BadRequest("dot_segment")));
        }
        if !snap
            .router
            .find(req.host(), req.method(), req.path(), &mut ctx.route)
        {
            return Flow::Respond(Reject::new(ErrorKind::NoRoute));
        }
        ctx.matched = true;
        let route = &snap.config.routes[ctx.route.route];
        ctx.max_body = route.body_limit(&snap.config.limits);
        Flow::Continue
    }
}

/// Whether a path has a `.` or `..` segment, also when written `%2e` (any case).
pub fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').any(|seg| {
        let mut dots = 0;
        let mut i = 0;
        while i < seg.len() {
            if seg[i] == b'.' {
                i += 1;
            } else if seg.len() >= i + 3
                && seg[i] == b'%'
                && seg[i + 1] == b'2'
                && (seg[i + 2] | 0x20) == b'e'
            {
                i += 3;
            } else {
                return false;
            }
            dots += 1;
        }
        dots == 1 || dots == 2
    })
}

#[cfg(test)]
mod tests {
    use super::has_dot_segment;

    #[test]
    fn dot_segments() {
        for p in [
            "/a/../b",
            "/..",
            "/.",
            "/a/.",
            "/a/%2e%2E/b",
            "/%2e/x",
            "/a/.%2e",
        ] {
            assert!(has_dot_segment(p.as_bytes()), "{p}");
        }
        for p in [
            "/",
            "/a/b",
            "/a/...",
            "/a/.hidden",
            "/a/b.json",
            "/%2e%2e%2e",
            "/a%2eb",
        ] {
            assert!(!has_dot_segment(p.as_bytes()), "{p}");
        }
    }
}
