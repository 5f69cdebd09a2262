//! The stages of the pipeline: the built-in ones every request goes through (route matching,
//! upstream selection) and one per module kind, each wrapping the engine in `crate::modules`.
//!
//! [`compile`] turns one `[[modules]]` entry into its stage once per config version: it reads
//! the kind's fields from the entry's settings (the kind's struct refuses unknown fields),
//! compiles the engine, and says in which [`Phase`] the stage runs. Errors carry the entry's
//! path (`modules[3].rate: ...`). Nothing here runs per request except the stages'
//! `on_request`/`on_response`, which allocate nothing and take no lock.

mod auth;
mod breaker;
mod cors;
mod headers;
mod ip_list;
mod params;
mod rate_limit;
mod redirect;
mod route;
mod upstream;
mod waf;

#[cfg(test)]
pub(crate) mod testutil;

pub use breaker::BreakerStage;
pub use route::RouteStage;
pub use upstream::UpstreamStage;

use crate::modules::key_auth::common::{CompileError, RequestView};
use crate::pipeline::Phase;
use crate::stage::{Request, Stage};
use conf::{ConfigError, ModuleSpec, Settings};
use serde::de::DeserializeOwned;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// What a module compiles to.
pub(crate) enum Form {
    /// One stage shared by every route that uses the module.
    Shared(Arc<dyn Stage>),
    /// A circuit breaker: one breaker per route (and so per route's upstream), made by the
    /// pipeline for each route that uses the module.
    Breaker(crate::modules::breaker::BreakerPolicy),
    /// A side-service call; the pipeline groups a route's calls into one concurrent stage.
    Call(crate::calls::CallConfig),
}

/// State a new version of a module may take over from the previous one, so a config change
/// neither hands every client a fresh rate-limit burst nor forgets recently used nonces.
#[derive(Clone, Default)]
pub(crate) enum Carry {
    #[default]
    None,
    RateLimit(crate::modules::rate_limit::RateLimiter),
    Hmac(crate::modules::hmac_auth::HmacAuth),
}

/// What a kind's compile function gives: its name, its phase, the stage(s), carried state.
pub(crate) type Built = (&'static str, Phase, Form, Carry);

/// One compiled `[[modules]]` entry.
pub(crate) struct Compiled {
    pub id: String,
    pub kind: &'static str,
    pub global: bool,
    pub phase: Phase,
    pub form: Form,
    pub carry: Carry,
}

/// Engines whose per-core working memory lives in `CoreState`, with the slot each stage uses.
#[derive(Default)]
pub(crate) struct ScratchPlan {
    pub params: Vec<Arc<crate::modules::params::ParamsEngine>>,
    pub waf: Vec<Arc<crate::modules::waf::WafEngine>>,
    /// Largest JWT scratch buffer any jwt module needs.
    pub jwt_bytes: usize,
}

/// Compiles `spec` (entry `index` of `[[modules]]`). `prev` is the same module (same id and
/// kind) in the previous config version, if any.
pub(crate) fn compile(
    spec: &ModuleSpec,
    index: usize,
    prev: Option<&Compiled>,
    plan: &mut ScratchPlan,
    upstreams: &[String],
) -> Result<Compiled, Vec<ConfigError>> {
    let at = format!("modules[{index}]");
    let s = &spec.settings;
    let carry_prev = prev.map(|p| &p.carry);
    let (kind, phase, form, carry): Built = match spec.kind.as_str() {
        "ip_list" => ip_list::compile(s, &at)?,
        "params" => params::compile(s, &at, plan)?,
        "waf" => waf::compile(s, &at, plan)?,
        "rate_limit" => rate_limit::compile(s, &at, carry_prev)?,
        "key_auth" => auth::compile_key_auth(s, &at)?,
        "jwt" => auth::compile_jwt(s, &at, plan)?,
        "hmac_auth" => auth::compile_hmac(s, &at, carry_prev)?,
        "sign_check" => auth::compile_sign_check(s, &at)?,
        "decrypt" => auth::compile_decrypt(s, &at)?,
        "circuit_breaker" => breaker::compile(s, &at)?,
        "cors" => cors::compile(s, &at)?,
        "headers" => headers::compile(s, &at)?,
        "redirect" => redirect::compile(s, &at)?,
        kind @ ("auth_service" | "risk" | "device_fingerprint") => {
            let cfg: crate::calls::CallModuleConfig = read(s, &at).map_err(|e| vec![e])?;
            let call = crate::calls::CallConfig::compile(&spec.id, kind, &cfg, upstreams)
                .map_err(|e| under(&at, e))?;
            (call.kind, Phase::Calls, Form::Call(call), Carry::None)
        }
        other => {
            return Err(vec![ConfigError::new(
                format!("{at}.kind"),
                format!("unknown module kind {other:?}"),
            )])
        }
    };
    Ok(Compiled {
        id: spec.id.clone(),
        kind,
        global: spec.global,
        phase,
        form,
        carry,
    })
}

/// Reads a kind's fields from a module's settings; a type error or unknown field names its
/// path under `at` (`modules[2].params[0].in: unknown variant ...`).
pub(crate) fn read<T: DeserializeOwned>(settings: &Settings, at: &str) -> Result<T, ConfigError> {
    let value = serde_json::Value::Object(settings.clone());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let message = e.into_inner().to_string();
        ConfigError::new(join(at, &inner), message)
    })
}

/// `at` + a path relative to it (`""`, `.` or `?` mean the entry itself).
pub(crate) fn join(at: &str, rel: &str) -> String {
    let rel = rel.trim_start_matches('.');
    if at.is_empty() {
        rel.to_string()
    } else if rel.is_empty() || rel == "?" {
        at.to_string()
    } else if rel.starts_with('[') {
        format!("{at}{rel}")
    } else {
        format!("{at}.{rel}")
    }
}

/// An engine's error (relative path) as a config error under `at`.
pub(crate) fn under(at: &str, e: ConfigError) -> Vec<ConfigError> {
    vec![ConfigError::new(join(at, &e.path), e.message)]
}

/// The auth engines' errors (relative fields) as config errors under `at`.
pub(crate) fn under_all(at: &str, errs: Vec<CompileError>) -> Vec<ConfigError> {
    errs.into_iter()
        .map(|e| ConfigError::new(join(at, &e.field), e.message))
        .collect()
}

/// The request as the auth engines read it.
pub(crate) struct View<'r, 'a>(pub &'r Request<'a>);

impl RequestView for View<'_, '_> {
    fn method(&self) -> &[u8] {
        self.0.method()
    }

    fn target(&self) -> &[u8] {
        self.0.head.target.get(self.0.buf)
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.header(name.as_bytes())
    }
}

/// Nanoseconds on a monotonic clock shared by every worker thread (rate limits, breakers need
/// one time line for the whole node; the workers' own clocks each start at their spawn).
pub(crate) fn mono_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A fixed buffer implementing `fmt::Write`, to format a value into a header without
/// allocating. Output that does not fit is an error.
pub(crate) struct StackWriter<const N: usize> {
    pub buf: [u8; N],
    pub len: usize,
}

impl<const N: usize> StackWriter<N> {
    pub fn new() -> Self {
        StackWriter {
            buf: [0; N],
            len: 0,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn push(&mut self, b: &[u8]) -> bool {
        let Some(dst) = self.buf.get_mut(self.len..self.len + b.len()) else {
            return false;
        };
        dst.copy_from_slice(b);
        self.len += b.len();
        true
    }
}

impl<const N: usize> std::fmt::Write for StackWriter<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.push(s.as_bytes()) {
            Ok(())
        } else {
            Err(std::fmt::Error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_under_the_entry() {
        assert_eq!(join("modules[3]", "rate"), "modules[3].rate");
        assert_eq!(join("modules[3]", "deny[2]"), "modules[3].deny[2]");
        assert_eq!(join("modules[3]", "[1]"), "modules[3][1]");
        assert_eq!(join("modules[3]", ""), "modules[3]");
        assert_eq!(join("modules[3]", "."), "modules[3]");
        assert_eq!(join("", "consumers[0].jwt"), "consumers[0].jwt");
    }

    #[test]
    fn stack_writer_refuses_overflow() {
        use std::fmt::Write;
        let mut w = StackWriter::<4>::new();
        assert!(write!(w, "{}", 12).is_ok());
        assert_eq!(w.as_bytes(), b"12");
        assert!(write!(w, "{}", 345).is_err());
    }

    #[test]
    fn every_conf_kind_compiles_or_is_refused_by_name() {
        for kind in conf::MODULE_KINDS {
            let spec = ModuleSpec {
                id: "m".into(),
                kind: (*kind).into(),
                global: false,
                settings: Settings::new(),
            };
            match compile(&spec, 0, None, &mut ScratchPlan::default(), &[]) {
                Ok(c) => assert_eq!(c.kind, *kind),
                // Kinds with required fields fail on those, never as an unknown kind.
                Err(errs) => assert!(
                    errs.iter()
                        .all(|e| !e.message.contains("unknown module kind")),
                    "{kind}: {errs:?}"
                ),
            }
        }
    }
}
