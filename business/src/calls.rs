//! Concurrent calls to side services — `auth_service`, `risk`, `device_fingerprint` — and
//! the merge of their verdicts.
//!
//! The pipeline groups every call module of a route into one [`CallsStage`] in the Calls
//! phase. On its first run the stage records which calls to make in the context and answers
//! `Flow::Wait`; the access layer then sends all of them at once through the core's
//! connection pools (so three 200 ms services cost about 200 ms, not 600), fills in each
//! outcome, and runs the pipeline again from the same stage, which now merges:
//!
//! - a 2xx answer allows, and the fields named in `copy_headers` go to the upstream request;
//! - a 401 or 403 answer denies with the module's `deny_status` (401 for `auth_service`,
//!   403 for `risk` and `device_fingerprint` by default);
//! - anything else — another status, a connect failure, a timeout — is a failure, which the
//!   module's `failure` policy turns into "allow" (`open`) or a deny (`closed`).
//!
//! The first deny, in configured order, is the answer.

use crate::context::Context;
use crate::pipeline::CoreState;
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use conf::ConfigError;
use protocols::error::ErrorKind;
use serde::Deserialize;
use std::sync::Arc;

/// Calls one request may make at once.
pub const MAX_CALLS: usize = 4;

/// What became of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    Pending,
    /// The service answered with this status.
    Status(u16),
    /// Connect failure, reset, malformed answer.
    Failed,
    TimedOut,
}

/// How a failing service is treated.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Failure {
    /// Let the request through.
    Open,
    /// Refuse the request.
    Closed,
}

/// The config of one call module (`[[modules]]` with kind `auth_service`, `risk` or
/// `device_fingerprint`; `id` and `kind` are handled by the pipeline).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallModuleConfig {
    /// The upstream (by id) that serves the check.
    pub upstream: String,
    /// Path of the check on that service.
    pub path: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Default: `closed` for `auth_service`, `open` for the others.
    pub failure: Option<Failure>,
    /// Default: 401 for `auth_service`, 403 for the others.
    pub deny_status: Option<u16>,
    /// Client request fields sent along to the service.
    #[serde(default = "default_forward")]
    pub forward_headers: Vec<String>,
    /// Fields of the service's 2xx answer copied to the upstream request.
    #[serde(default)]
    pub copy_headers: Vec<String>,
}

fn default_method() -> String {
    "GET".into()
}

fn default_timeout() -> u64 {
    200
}

fn default_forward() -> Vec<String> {
    vec!["Authorization".into(), "Cookie".into(), "User-Agent".into()]
}

/// A compiled call: everything the access layer needs to make it.
#[derive(Clone, Debug)]
pub struct CallConfig {
    pub id: String,
    pub kind: &'static str,
    /// Index of the upstream in the snapshot.
    pub upstream: usize,
    pub method: String,
    pub path: String,
    pub timeout_ms: u64,
    pub fail_open: bool,
    pub deny_status: u16,
    pub forward_headers: Vec<String>,
    pub copy_headers: Vec<String>,
}

/// The module kinds that are calls.
pub const CALL_KINDS: [&str; 3] = ["auth_service", "risk", "device_fingerprint"];

impl CallConfig {
    /// Compiles a call module; `upstreams` are the snapshot's upstream ids in order.
    pub fn compile(
        id: &str,
        kind: &str,
        cfg: &CallModuleConfig,
        upstreams: &[String],
    ) -> Result<CallConfig, ConfigError> {
        let kind: &'static str = match CALL_KINDS.iter().find(|k| **k == kind) {
            Some(k) => k,
            None => {
                return Err(ConfigError::new(
                    "kind",
                    format!("{kind:?} is not a call kind"),
                ))
            }
        };
        let upstream = upstreams
            .iter()
            .position(|u| *u == cfg.upstream)
            .ok_or_else(|| {
                ConfigError::new("upstream", format!("no upstream named {:?}", cfg.upstream))
            })?;
        if !cfg.path.starts_with('/') || cfg.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(ConfigError::new(
                "path",
                "must start with '/' and hold no spaces or control bytes",
            ));
        }
        if cfg.method.is_empty() || !cfg.method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ConfigError::new(
                "method",
                "must be an upper-case method token",
            ));
        }
        if !(1..=60_000).contains(&cfg.timeout_ms) {
            return Err(ConfigError::new(
                "timeout_ms",
                "must be between 1 and 60000",
            ));
        }
        let auth = kind == "auth_service";
        let deny_status = cfg.deny_status.unwrap_or(if auth { 401 } else { 403 });
        if !(400..=599).contains(&deny_status) {
            return Err(ConfigError::new(
                "deny_status",
                "must be a 4xx or 5xx status",
            ));
        }
        for (i, h) in cfg
            .forward_headers
            .iter()
            .chain(cfg.copy_headers.iter())
            .enumerate()
        {
            if h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                let field = if i < cfg.forward_headers.len() {
                    format!("forward_headers[{i}]")
                } else {
                    format!("copy_headers[{}]", i - cfg.forward_headers.len())
                };
                return Err(ConfigError::new(
                    field,
                    format!("invalid header name {h:?}"),
                ));
            }
        }
        let failure = cfg
            .failure
            .unwrap_or(if auth { Failure::Closed } else { Failure::Open });
        Ok(CallConfig {
            id: id.to_string(),
            kind,
            upstream,
            method: cfg.method.clone(),
            path: cfg.path.clone(),
            timeout_ms: cfg.timeout_ms,
            fail_open: failure == Failure::Open,
            deny_status,
            forward_headers: cfg.forward_headers.clone(),
            copy_headers: cfg.copy_headers.clone(),
        })
    }

    fn deny_kind(&self) -> ErrorKind {
        match self.deny_status {
            401 => ErrorKind::AuthFailed,
            403 => ErrorKind::Forbidden("denied by a check service"),
            503 => ErrorKind::NoHealthyUpstream,
            _ => ErrorKind::Forbidden("denied by a check service"),
        }
    }
}

/// Every call module of a route, run concurrently.
pub struct CallsStage {
    calls: Arc<[CallConfig]>,
}

impl CallsStage {
    /// Groups calls (at most [`MAX_CALLS`]; the pipeline checks).
    pub fn new(calls: Vec<CallConfig>) -> CallsStage {
        CallsStage {
            calls: calls.into(),
        }
    }

    /// The merge: the first deny in configured order, or Continue.
    pub fn merge(calls: &[CallConfig], outcomes: &[CallOutcome]) -> Flow {
        for (c, o) in calls.iter().zip(outcomes) {
            let deny = match o {
                CallOutcome::Status(s) if (200..300).contains(s) => false,
                CallOutcome::Status(401) | CallOutcome::Status(403) => true,
                _ => !c.fail_open,
            };
            if deny {
                return Flow::Respond(Reject::new(c.deny_kind()));
            }
        }
        Flow::Continue
    }
}

impl Stage for CallsStage {
    fn kind(&self) -> &'static str {
        "calls"
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        _req: &Request,
        _snap: &Snapshot,
        _core: &mut CoreState,
    ) -> Flow {
        match &ctx.calls {
            Some(done) if Arc::ptr_eq(done, &self.calls) => {
                let n = self.calls.len().min(MAX_CALLS);
                CallsStage::merge(&self.calls, &ctx.call_outcomes[..n])
            }
            _ => {
                ctx.calls = Some(self.calls.clone());
                ctx.call_outcomes = [CallOutcome::Pending; MAX_CALLS];
                Flow::Wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(kind: &str, fail_open: bool) -> CallConfig {
        let cfg = CallModuleConfig {
            upstream: "svc".into(),
            path: "/check".into(),
            method: "GET".into(),
            timeout_ms: 100,
            failure: Some(if fail_open {
                Failure::Open
            } else {
                Failure::Closed
            }),
            deny_status: None,
            forward_headers: vec![],
            copy_headers: vec!["X-User-Id".into()],
        };
        CallConfig::compile("c", kind, &cfg, &["svc".to_string()]).unwrap()
    }

    #[test]
    fn merge_rules() {
        let calls = vec![call("auth_service", false), call("risk", true)];
        use CallOutcome::*;
        assert_eq!(
            CallsStage::merge(&calls, &[Status(200), Status(204)]),
            Flow::Continue
        );
        assert_eq!(
            CallsStage::merge(&calls, &[Status(401), Status(200)]),
            Flow::Respond(Reject::new(ErrorKind::AuthFailed))
        );
        // risk fails open: a timeout lets the request through.
        assert_eq!(
            CallsStage::merge(&calls, &[Status(200), TimedOut]),
            Flow::Continue
        );
        // but an explicit 403 from risk denies with 403.
        assert!(matches!(
            CallsStage::merge(&calls, &[Status(200), Status(403)]),
            Flow::Respond(Reject {
                kind: ErrorKind::Forbidden(_),
                ..
            })
        ));
        // auth fails closed.
        assert_eq!(
            CallsStage::merge(&calls, &[Failed, Status(200)]),
            Flow::Respond(Reject::new(ErrorKind::AuthFailed))
        );
        assert_eq!(
            CallsStage::merge(&calls, &[Status(500), Status(200)]),
            Flow::Respond(Reject::new(ErrorKind::AuthFailed))
        );
    }

    #[test]
    fn compile_errors_name_the_field() {
        let mut cfg = CallModuleConfig {
            upstream: "nope".into(),
            path: "/x".into(),
            method: "GET".into(),
            timeout_ms: 100,
            failure: None,
            deny_status: None,
            forward_headers: vec![],
            copy_headers: vec![],
        };
        let ups = ["svc".to_string()];
        assert_eq!(
            CallConfig::compile("a", "risk", &cfg, &ups)
                .unwrap_err()
                .path,
            "upstream"
        );
        cfg.upstream = "svc".into();
        cfg.path = "x".into();
        assert_eq!(
            CallConfig::compile("a", "risk", &cfg, &ups)
                .unwrap_err()
                .path,
            "path"
        );
        cfg.path = "/x".into();
        cfg.copy_headers = vec!["bad name".into()];
        assert_eq!(
            CallConfig::compile("a", "risk", &cfg, &ups)
                .unwrap_err()
                .path,
            "copy_headers[0]"
        );
        cfg.copy_headers = vec![];
        let c = CallConfig::compile("a", "auth_service", &cfg, &ups).unwrap();
        assert!(!c.fail_open);
        assert_eq!(c.deny_status, 401);
        let r = CallConfig::compile("a", "risk", &cfg, &ups).unwrap();
        assert!(r.fail_open);
        assert_eq!(r.deny_status, 403);
    }
}
