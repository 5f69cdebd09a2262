//! Routes to Thrift upstreams: what the access layer needs to turn a request into a call
//! and a reply into an answer, resolved once per config version.
//!
//! [`compile`] parses every `[[services]]` IDL set (reusing the previous version's when its
//! files did not change) and resolves each Thrift route to its method, argument sources,
//! exception statuses and mapping policy ([`ThriftRoute`]); errors name the field
//! (`services[0].files[1]: line 12: ...`, `routes[3].method: ...`). Per request,
//! [`ThriftRoute::request_args`] collects the arguments given by path, query and headers,
//! and [`ThriftStage`] stands where an HTTP route's upstream stage stands: it asks for the
//! body (the JSON arguments) and picks the node. Nothing here touches a socket.

mod compile;
#[cfg(test)]
mod tests;

pub use compile::compile;

use crate::context::Context;
use crate::pipeline::CoreState;
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use components::mux_pool::NodeSettings;
use conf::{Route, RouteMatch, Router, Upstream, UpstreamProtocol};
use protocols::error::ErrorKind;
use protocols::thrift::codec::{Limits, Protocol, Transport};
use protocols::thrift::idl::{Idl, Method};
use protocols::thrift::json::{MappingError, MappingPolicy};
use std::sync::Arc;

/// Most arguments a route may take from path, query and headers.
pub const MAX_ARGS: usize = 32;
/// Status of a declared exception the route does not map.
pub const DEFAULT_EXCEPTION_STATUS: u16 = 500;

/// Where one argument comes from, besides the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgFrom {
    /// A `{name}` capture of the route's path (percent-decoded).
    Path(String),
    /// The first query parameter of that name (percent-decoded, `+` is a space).
    Query(String),
    /// The first header of that name, as sent.
    Header(String),
}

/// A Thrift route, resolved against its IDL.
#[derive(Debug)]
pub struct ThriftRoute {
    pub idl: Arc<Idl>,
    /// The method (a copy of the IDL's entry; its struct ids point into `idl`).
    pub method: Method,
    /// Name on the wire: `method`, or `NAME:method` for a multiplexed server.
    pub wire_name: String,
    pub protocol: Protocol,
    pub transport: Transport,
    /// Arguments from the request, in config order: (argument name, source).
    pub args: Vec<(String, ArgFrom)>,
    /// Declared exception (qualified type name `file.Type`) -> HTTP status.
    pub exceptions: Vec<(String, u16)>,
    pub policy: MappingPolicy,
}

impl ThriftRoute {
    /// The HTTP status for a declared exception of qualified type `type_name`.
    pub fn exception_status(&self, type_name: &str) -> u16 {
        self.exceptions
            .iter()
            .find(|(t, _)| t == type_name)
            .map_or(DEFAULT_EXCEPTION_STATUS, |(_, s)| *s)
    }

    /// Collects the arguments the request gives by path, query and header into `out` as
    /// (argument name, text) pairs and returns how many; values are decoded into `scratch`
    /// (cleared first, reused across requests). An argument that is absent is left out (the
    /// mapping then reports it if it is required). A value that is not UTF-8 is an error
    /// naming the argument.
    pub fn request_args<'a>(
        &'a self,
        req: &Request,
        m: &RouteMatch,
        router: &Router,
        scratch: &'a mut Vec<u8>,
        out: &mut [(&'a str, &'a str); MAX_ARGS],
    ) -> Result<usize, MappingError> {
        scratch.clear();
        let mut spans = [(0usize, 0usize, false); MAX_ARGS];
        for ((_, from), span) in self.args.iter().zip(spans.iter_mut()) {
            let start = scratch.len();
            let found = match from {
                ArgFrom::Path(name) => {
                    let path = req.path();
                    let raw = m
                        .params()
                        .iter()
                        .position(|(idx, _, _)| router.param_name(m.route, *idx) == name)
                        .and_then(|i| m.param_value(path, i));
                    raw.map(|raw| decode_into(scratch, raw, false)).is_some()
                }
                ArgFrom::Query(name) => query_value(req.query().unwrap_or(b""), name, scratch),
                ArgFrom::Header(name) => req
                    .header(name.as_bytes())
                    .map(|v| scratch.extend_from_slice(v))
                    .is_some(),
            };
            *span = (start, scratch.len(), found);
        }
        let scratch: &'a [u8] = scratch;
        let mut n = 0;
        for ((name, _), (start, end, found)) in self.args.iter().zip(spans) {
            if !found {
                continue;
            }
            let value = scratch
                .get(start..end)
                .and_then(|v| std::str::from_utf8(v).ok())
                .ok_or_else(|| MappingError {
                    path: name.clone(),
                    message: "request parameter is not valid UTF-8".into(),
                })?;
            if let Some(slot) = out.get_mut(n) {
                *slot = (name.as_str(), value);
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Appends `raw` percent-decoded to `out`.
fn decode_into(out: &mut Vec<u8>, raw: &[u8], plus_as_space: bool) {
    let start = out.len();
    out.resize(start + raw.len(), 0);
    let n = crate::modules::waf::decode::percent_decode(raw, plus_as_space, &mut out[start..]);
    out.truncate(start + n);
}

/// Appends the decoded value of the first `name=value` pair of `query` whose decoded key is
/// `name`; false when there is none. (A bare `name` counts as an empty value.)
fn query_value(query: &[u8], name: &str, out: &mut Vec<u8>) -> bool {
    for pair in query.split(|&b| b == b'&') {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let start = out.len();
        decode_into(out, k, true);
        let hit = &out[start..] == name.as_bytes();
        out.truncate(start);
        if hit {
            decode_into(out, v, true);
            return true;
        }
    }
    false
}

/// Ends the stage list of a Thrift route in place of the upstream stage: asks for the body
/// (the JSON arguments; the access layer caps the ask with the route's body limit) and
/// picks the node. The access layer
/// then sees `Flow::Continue` on a route [`Snapshot::thrift_route`] knows, and makes the
/// call.
pub struct ThriftStage {
    pub body_limit: usize,
}

impl Stage for ThriftStage {
    fn kind(&self) -> &'static str {
        "thrift"
    }

    fn body_bytes(&self) -> usize {
        self.body_limit
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        _req: &Request,
        snap: &Snapshot,
        core: &mut CoreState,
    ) -> Flow {
        let Some(&upstream) = snap.route_upstream.get(ctx.route.route) else {
            return Flow::Respond(Reject::new(ErrorKind::NoRoute));
        };
        ctx.upstream = upstream;
        // The same pick as HTTP routes: up nodes only (checks, ejections), backups, fail_open.
        match crate::resilience::pick(snap, core, upstream, None, 0) {
            Some(node) => {
                ctx.node = node;
                Flow::Continue
            }
            None => Flow::Respond(Reject::new(ErrorKind::NoHealthyUpstream)),
        }
    }
}

/// Puts a [`ThriftStage`] in place of the last stage (the upstream stage) of route `r`'s
/// list when it is a Thrift route (it names a service: validation allows that only on
/// routes to Thrift upstreams). The body ask is unbounded here; the access layer caps it
/// with the route's body limit, as for every ask.
pub(crate) fn replace_upstream_stage(r: &Route, stages: &mut [Arc<dyn Stage>]) {
    if let (true, Some(last)) = (r.service.is_some(), stages.last_mut()) {
        *last = Arc::new(ThriftStage {
            body_limit: usize::MAX,
        });
    }
}

/// The multiplexed pool's bounds for a Thrift upstream's nodes; `None` for HTTP upstreams.
pub fn node_settings(u: &Upstream) -> Option<NodeSettings> {
    if u.protocol != UpstreamProtocol::Thrift {
        return None;
    }
    let t = u.thrift();
    Some(NodeSettings {
        max_in_flight: t.max_in_flight,
        max_connections: t.max_connections,
        max_pending: t.max_pending,
        connect_timeout_ms: u.connect_timeout_ms,
        idle_timeout_ms: u.idle_timeout_ms,
        limits: Limits {
            max_frame: t.max_message_bytes,
            max_string: t.max_message_bytes,
            ..Limits::default()
        },
    })
}
