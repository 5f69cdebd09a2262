//! The per-request context: everything the stages decide about one request.
//!
//! One context lives in each active session and is reset, not reallocated, between the
//! requests of a keep-alive connection, so the pipeline allocates nothing per request.

use crate::calls::{CallConfig, CallOutcome, MAX_CALLS};
use crate::headers::HeaderBuf;
use crate::release::ReleaseMark;
use conf::RouteMatch;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// Most bytes kept of a request id (longer incoming ids are replaced).
pub const MAX_REQUEST_ID: usize = 64;

#[derive(Clone, Debug)]
pub struct Context {
    /// The client address the stages act on (the peer, or the one a trusted proxy names).
    pub client_ip: IpAddr,
    /// `X-Request-Id` of this request: kept from the client when valid, else generated.
    pub request_id: [u8; MAX_REQUEST_ID],
    pub request_id_len: usize,
    /// The matched route (valid once the route stage continued).
    pub route: RouteMatch,
    pub matched: bool,
    /// Upstream index in the snapshot and node index in that upstream.
    pub upstream: usize,
    pub node: usize,
    /// The hash of the balancing key (consistent-hash upstreams), kept for retries.
    pub balance_key: Option<u64>,
    /// Body limit for this request (route override or global).
    pub max_body: u64,
    /// Upstream answer status, once known.
    pub status: u16,
    /// When the request head was complete (ms, worker clock).
    pub started_ms: u64,
    /// Wall-clock time of the request (seconds since the Unix epoch), for token expiry and
    /// signed dates.
    pub unix_secs: u64,
    /// Fields added to the upstream request (claims, consumer id, risk score).
    pub upstream_headers: HeaderBuf,
    /// Fields added to the client's answer (CORS).
    pub response_headers: HeaderBuf,
    /// Names of client fields not to forward upstream (values unused).
    pub upstream_remove: HeaderBuf,
    /// Names of upstream answer fields not to relay to the client (values unused).
    pub response_remove: HeaderBuf,
    /// Fields of an answer the gateway makes itself (`Flow::Reply`): `Location`, preflight.
    pub reply_headers: HeaderBuf,
    /// The consumer an auth stage identified (index into the snapshot's consumers).
    pub consumer: Option<usize>,
    /// The stage the pipeline resumes at (after the body was read).
    pub resume_at: usize,
    /// A codec a stage asked the access layer to apply to the body (`decrypt`), and the app
    /// whose key it uses.
    pub codec: Option<Arc<dyn crate::codec::BodyCodec>>,
    pub codec_app: [u8; crate::codec::MAX_APP_ID],
    pub codec_app_len: usize,
    /// Side-service calls a `Flow::Wait` asked for, and what became of each.
    pub calls: Option<Arc<[CallConfig]>>,
    pub call_outcomes: [CallOutcome; MAX_CALLS],
    /// The gray release this request went through and the side that served it (set at the
    /// release's switch; see `crate::release`).
    pub release: Option<ReleaseMark>,
}

impl Context {
    pub fn new() -> Context {
        Context {
            client_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            request_id: [0; MAX_REQUEST_ID],
            request_id_len: 0,
            route: RouteMatch::default(),
            matched: false,
            upstream: 0,
            node: 0,
            balance_key: None,
            max_body: 0,
            status: 0,
            started_ms: 0,
            unix_secs: 0,
            upstream_headers: HeaderBuf::new(),
            response_headers: HeaderBuf::new(),
            reply_headers: HeaderBuf::new(),
            upstream_remove: HeaderBuf::new(),
            response_remove: HeaderBuf::new(),
            consumer: None,
            resume_at: 0,
            codec: None,
            codec_app: [0; crate::codec::MAX_APP_ID],
            codec_app_len: 0,
            calls: None,
            call_outcomes: [CallOutcome::Pending; MAX_CALLS],
            release: None,
        }
    }

    /// Clears the per-request decisions for the next request on the same connection.
    pub fn reset(&mut self, client_ip: IpAddr, now: u64, unix_secs: u64) {
        self.client_ip = client_ip;
        self.request_id_len = 0;
        self.matched = false;
        self.upstream = 0;
        self.node = 0;
        self.balance_key = None;
        self.max_body = 0;
        self.status = 0;
        self.started_ms = now;
        self.unix_secs = unix_secs;
        self.upstream_headers.clear();
        self.response_headers.clear();
        self.reply_headers.clear();
        self.upstream_remove.clear();
        self.response_remove.clear();
        self.consumer = None;
        self.resume_at = 0;
        self.calls = None;
        self.codec = None;
        self.codec_app_len = 0;
        self.release = None;
    }

    /// The app a codec stage resolved (empty when none).
    pub fn codec_app(&self) -> &str {
        std::str::from_utf8(&self.codec_app[..self.codec_app_len]).unwrap_or("")
    }

    pub fn request_id(&self) -> &[u8] {
        &self.request_id[..self.request_id_len]
    }

    /// Keeps `id` as the request id if it is a sane token (1..=64 of `[A-Za-z0-9._:-]`).
    pub fn adopt_request_id(&mut self, id: &[u8]) -> bool {
        let ok = !id.is_empty()
            && id.len() <= MAX_REQUEST_ID
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if ok {
            self.request_id[..id.len()].copy_from_slice(id);
            self.request_id_len = id.len();
        }
        ok
    }

    /// Generates a 32-hex-digit id from a per-worker random prefix and a counter.
    pub fn generate_request_id(&mut self, prefix: u64, counter: u64) {
        let mut id = [0u8; 32];
        write_request_id(prefix, counter, &mut id);
        self.request_id[..32].copy_from_slice(&id);
        self.request_id_len = 32;
    }
}

/// Writes a 32-hex-digit request id: a per-worker random prefix, then a counter.
pub fn write_request_id(prefix: u64, counter: u64, out: &mut [u8; 32]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, v) in [prefix, counter].iter().enumerate() {
        for j in 0..16 {
            out[i * 16 + j] = HEX[((v >> (60 - 4 * j)) & 15) as usize];
        }
    }
}

impl Default for Context {
    fn default() -> Self {
        Context::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        let mut c = Context::new();
        assert!(c.adopt_request_id(b"abc-123_x.y:z"));
        assert_eq!(c.request_id(), b"abc-123_x.y:z");
        assert!(!c.adopt_request_id(b"has space"));
        assert!(!c.adopt_request_id(b""));
        assert!(!c.adopt_request_id(&[b'a'; 65]));
        c.generate_request_id(0x0123_4567_89ab_cdef, 1);
        assert_eq!(c.request_id(), b"0123456789abcdef0000000000000001");
    }
}
