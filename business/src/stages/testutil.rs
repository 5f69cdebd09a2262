//! Test helper: a snapshot built from TOML and a way to push raw requests through its
//! pipeline, so each stage is tested as the gateway runs it (phase order, per-core state,
//! body asks) without sockets.

use crate::context::Context;
use crate::pipeline::CoreState;
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Request};
use conf::Config;
use protocols::http1::{parse_request, Limits, Parsed, RequestHead};
use std::net::IpAddr;
use std::sync::Arc;

pub(crate) const UPSTREAM: &str =
    "[[upstreams]]\nid = \"u\"\nnodes = [{ addr = \"127.0.0.1:9\" }]\n";

pub(crate) struct Harness {
    pub snap: Arc<Snapshot>,
    pub core: CoreState,
    pub unix_secs: u64,
}

/// What one request came to.
pub(crate) struct Outcome {
    pub flow: Flow,
    pub ctx: Context,
    /// The body ask the pipeline made before the body was given, if any.
    pub asked: Option<usize>,
}

impl Harness {
    /// A snapshot of `UPSTREAM` + `config`; panics with the errors if it does not build.
    pub fn new(config: &str) -> Harness {
        let c = Config::from_toml_str(&format!("{UPSTREAM}{config}"))
            .unwrap_or_else(|e| panic!("parse: {e:?}"));
        let snap = Snapshot::build(c, 1).unwrap_or_else(|e| panic!("build: {e:?}"));
        let core = CoreState::for_snapshot(&snap);
        Harness {
            snap,
            core,
            unix_secs: now_unix(),
        }
    }

    /// The errors building `UPSTREAM` + `config` gives, as `path: message` lines.
    pub fn errors(config: &str) -> Vec<String> {
        let c = Config::from_toml_str(&format!("{UPSTREAM}{config}"))
            .unwrap_or_else(|e| panic!("parse: {e:?}"));
        match Snapshot::build(c, 1) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// Runs `head` (a request head; `\n` is turned into CRLF) from `peer` with `body`.
    pub fn run(&mut self, head: &str, peer: &str, body: &[u8]) -> Outcome {
        let mut text = head.replace('\n', "\r\n");
        if !text.ends_with("\r\n\r\n") {
            text.push_str("\r\n");
        }
        let buf = text.into_bytes();
        let mut parsed = RequestHead::new();
        match parse_request(&buf, &Limits::default(), &mut parsed) {
            Ok(Parsed::Complete) => {}
            other => panic!("bad test request {head:?}: {other:?}"),
        }
        let peer: IpAddr = peer.parse().unwrap_or_else(|e| panic!("{peer}: {e}"));
        let mut ctx = Context::new();
        ctx.reset(peer, 0, self.unix_secs);
        let mut req = Request {
            buf: &buf,
            head: &parsed,
            peer,
            body: None,
            tls: false,
        };
        let mut flow = self
            .snap
            .pipeline
            .run(&mut ctx, &req, &self.snap, &mut self.core);
        let mut asked = None;
        if let Flow::NeedBody(n) = flow {
            asked = Some(n);
            req.body = Some(body);
            flow = self
                .snap
                .pipeline
                .run(&mut ctx, &req, &self.snap, &mut self.core);
        }
        Outcome { flow, ctx, asked }
    }

    /// `run` from 192.0.2.1 without a body.
    pub fn get(&mut self, head: &str) -> Outcome {
        self.run(head, "192.0.2.1", b"")
    }
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The value of `name` in a header list, as text.
pub(crate) fn field(h: &crate::headers::HeaderBuf, name: &str) -> Option<String> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// The error kind of a refusal, or a panic naming what happened instead.
pub(crate) fn rejected(o: &Outcome) -> crate::stage::Reject {
    match o.flow {
        Flow::Respond(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}
