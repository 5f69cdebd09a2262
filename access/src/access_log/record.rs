//! One access log record: a fixed-size, `Copy` value with every text inline, so a worker
//! hands it to the logger thread by copying it into a preallocated queue slot (no heap, no
//! reference to anything the worker may free or change afterwards).

use business::calls::{CallOutcome, MAX_CALLS};
use protocols::error::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Bytes of the request path kept; longer paths are cut and flagged (`path_truncated`).
pub const MAX_PATH: usize = 512;
/// Bytes of the `Host` value kept.
pub const MAX_HOST: usize = 128;
/// Bytes of the method token kept (extension methods can be long).
pub const MAX_METHOD: usize = 16;
/// Bytes of an id (request id, route, upstream, consumer): the longest the gateway accepts.
pub const MAX_ID: usize = 64;

/// Bytes of a value, cut at `N`.
#[derive(Clone, Copy)]
pub struct Inline<const N: usize> {
    len: u16,
    truncated: bool,
    bytes: [u8; N],
}

impl<const N: usize> Inline<N> {
    pub const EMPTY: Self = Inline {
        len: 0,
        truncated: false,
        bytes: [0; N],
    };

    /// Keeps the first `N` bytes of `v` and whether anything was cut.
    #[inline]
    pub fn set(&mut self, v: &[u8]) {
        let n = v.len().min(N);
        self.bytes[..n].copy_from_slice(&v[..n]);
        // N is at most a few hundred, so the length always fits.
        self.len = n as u16;
        self.truncated = v.len() > N;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..(self.len as usize).min(N)]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

/// Who made the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Relayed from the upstream.
    Upstream,
    /// The gateway's own error answer (`error` says which).
    Gateway,
    /// A module answered without an upstream (redirect, CORS preflight).
    Module,
    /// The exchange ended before an answer was complete (client or upstream went away).
    Aborted,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Upstream => "upstream",
            Source::Gateway => "gateway",
            Source::Module => "module",
            Source::Aborted => "aborted",
        }
    }
}

/// One request as the access log shows it (docs/access-log.md lists every field).
#[derive(Clone, Copy)]
pub struct Record {
    /// Wall clock when the answer was complete, µs since the Unix epoch.
    pub time_us: u64,
    pub worker: u16,
    pub source: Source,
    /// Status sent to the client; 0 when none was.
    pub status: u16,
    /// The gateway's error kind when it answered itself.
    pub error: Option<ErrorKind>,
    pub request_id: Inline<MAX_ID>,
    /// The client the stages acted on (the peer, or the one a trusted proxy names).
    pub client_ip: IpAddr,
    /// The TCP peer.
    pub peer: SocketAddr,
    pub method: Inline<MAX_METHOD>,
    pub host: Inline<MAX_HOST>,
    pub path: Inline<MAX_PATH>,
    pub route: Inline<MAX_ID>,
    pub upstream: Inline<MAX_ID>,
    /// The node the request was sent to.
    pub upstream_addr: Option<SocketAddr>,
    /// The consumer an auth module identified.
    pub consumer: Inline<MAX_ID>,
    /// Outcomes of the side-service calls of the request (first `calls_len`).
    pub calls: [CallOutcome; MAX_CALLS],
    pub calls_len: u8,
    /// Request head bytes plus request body bytes forwarded.
    pub bytes_in: u64,
    /// Response body bytes relayed to the client.
    pub bytes_out: u64,
    /// Request head complete to answer done.
    pub duration_us: u64,
    /// Request sent upstream to the answer's head, when both happened.
    pub upstream_us: Option<u64>,
    pub config_version: u64,
    /// Sent once more on a fresh upstream connection after a stale keep-alive one failed.
    pub retried: bool,
}

impl Record {
    pub const EMPTY: Record = Record {
        time_us: 0,
        worker: 0,
        source: Source::Gateway,
        status: 0,
        error: None,
        request_id: Inline::EMPTY,
        client_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        peer: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        method: Inline::EMPTY,
        host: Inline::EMPTY,
        path: Inline::EMPTY,
        route: Inline::EMPTY,
        upstream: Inline::EMPTY,
        upstream_addr: None,
        consumer: Inline::EMPTY,
        calls: [CallOutcome::Pending; MAX_CALLS],
        calls_len: 0,
        bytes_in: 0,
        bytes_out: 0,
        duration_us: 0,
        upstream_us: None,
        config_version: 0,
        retried: false,
    };
}

/// The machine-readable detail some error kinds carry (`bad_chunked_body`, `reset`, the
/// module rule that refused).
pub fn error_detail(k: ErrorKind) -> Option<&'static str> {
    match k {
        ErrorKind::BadRequest(d) | ErrorKind::Forbidden(d) | ErrorKind::UpstreamFailed(d) => {
            Some(d)
        }
        _ => None,
    }
}

/// The wall clock in µs since the Unix epoch.
pub fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_cuts_and_flags() {
        let mut v = Inline::<4>::EMPTY;
        assert!(v.is_empty());
        v.set(b"abc");
        assert_eq!(v.as_bytes(), b"abc");
        assert!(!v.truncated());
        v.set(b"abcdef");
        assert_eq!(v.as_bytes(), b"abcd");
        assert!(v.truncated());
        v.set(b"");
        assert!(v.is_empty() && !v.truncated());
    }

    #[test]
    fn a_record_is_a_plain_value() {
        fn copy<T: Copy + Send + 'static>() {}
        copy::<Record>();
        // Inline text keeps it around a kilobyte: a queue slot, not a heap object.
        assert!(std::mem::size_of::<Record>() < 1400);
    }
}
