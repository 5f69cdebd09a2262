//! The auth stages (`key_auth`, `jwt`, `hmac_auth`) and `sign_check`: each verifies the
//! request's credentials with its engine, and the auth kinds name the consumer.
//!
//! An identified consumer is recorded in `ctx.consumer` and sent upstream as `X-Consumer-Id`
//! with the consumer's configured headers; a jwt module also sends the claims it is configured
//! to copy. These fields replace any the client sent under the same names, and the client's
//! copies of every configured claim header are dropped even when the token lacks the claim, so
//! an upstream can trust them. Two auth modules on one route must agree on the consumer.
//!
//! Refusals are 401 (`AuthError::status` decides the odd cases: a full replay cache is 429).
//! `hmac_auth` with a signed `Digest` and `sign_check` need the whole body: they ask for it up
//! to the route's `max_body_bytes`.

use super::{read, under_all, Built, Carry, Form, ScratchPlan, StackWriter, View};
use crate::context::Context;
use crate::modules::crypto_box::sign_check::{SignCheck, SignCheckConfig};
use crate::modules::hmac_auth::{HmacAuth, HmacAuthConfig};
use crate::modules::jwt::{Jwt, JwtConfig};
use crate::modules::key_auth::common::AuthError;
use crate::modules::key_auth::consumer::CompiledConsumer;
use crate::modules::key_auth::{KeyAuth, KeyAuthConfig, KeySource};
use crate::pipeline::{CoreState, Phase};
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use conf::{ConfigError, Settings};
use protocols::error::ErrorKind;
use std::fmt::Write as _;
use std::sync::Arc;

/// Longest claim value copied to a header (the header list of a context holds 2 KiB).
const MAX_CLAIM_VALUE: usize = 1024;

/// The answer for an engine's refusal.
fn refuse(e: AuthError) -> Flow {
    let kind = match e.status() {
        429 => ErrorKind::RateLimited,
        413 => ErrorKind::BodyTooLarge,
        400 => ErrorKind::BadRequest("bad_body"),
        500 => ErrorKind::Internal,
        _ => ErrorKind::AuthFailed,
    };
    let mut r = Reject::new(kind);
    if kind == ErrorKind::RateLimited {
        r.retry_after = Some(1);
    }
    Flow::Respond(r)
}

/// Records the consumer and the fields that name it upstream.
fn admit(ctx: &mut Context, c: &CompiledConsumer) -> Flow {
    match ctx.consumer {
        Some(i) if i == c.index => return Flow::Continue,
        Some(_) => return refuse(AuthError::UnknownConsumer),
        None => {}
    }
    ctx.consumer = Some(c.index);
    let mut ok = ctx.upstream_headers.push(b"X-Consumer-Id", c.id.as_bytes());
    for (n, v) in &c.headers {
        ok &= ctx.upstream_headers.push(n.as_bytes(), v.as_bytes());
    }
    if ok {
        Flow::Continue
    } else {
        Flow::Respond(Reject::new(ErrorKind::Internal))
    }
}

pub(crate) struct KeyAuthStage {
    engine: KeyAuth,
}

pub(super) fn compile_key_auth(s: &Settings, at: &str) -> Result<Built, Vec<ConfigError>> {
    let cfg: KeyAuthConfig = read(s, at).map_err(|e| vec![e])?;
    if cfg.query_param.is_some() && cfg.hide_credentials {
        return Err(vec![ConfigError::new(
            format!("{at}.hide_credentials"),
            "a key sent in the query string cannot be hidden from the upstream yet; set \
             hide_credentials = false to accept keys there, or drop query_param",
        )]);
    }
    let engine = KeyAuth::compile(&cfg).map_err(|e| under_all(at, e))?;
    let stage = KeyAuthStage { engine };
    Ok((
        "key_auth",
        Phase::Auth,
        Form::Shared(Arc::new(stage)),
        Carry::None,
    ))
}

impl Stage for KeyAuthStage {
    fn kind(&self) -> &'static str {
        "key_auth"
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        req: &Request,
        snap: &Snapshot,
        _core: &mut CoreState,
    ) -> Flow {
        let m = match self.engine.authenticate(&View(req), &snap.consumers) {
            Ok(m) => m,
            Err(e) => return refuse(e),
        };
        if self.engine.hide_credentials()
            && m.source == KeySource::Header
            && !ctx
                .upstream_remove
                .push(self.engine.header().as_bytes(), b"")
        {
            return Flow::Respond(Reject::new(ErrorKind::Internal));
        }
        admit(ctx, m.consumer)
    }
}

pub(crate) struct JwtStage {
    engine: Jwt,
}

pub(super) fn compile_jwt(
    s: &Settings,
    at: &str,
    plan: &mut ScratchPlan,
) -> Result<Built, Vec<ConfigError>> {
    let cfg: JwtConfig = read(s, at).map_err(|e| vec![e])?;
    let engine = Jwt::compile(&cfg).map_err(|e| under_all(at, e))?;
    plan.jwt_bytes = plan.jwt_bytes.max(engine.scratch_len());
    let stage = JwtStage { engine };
    Ok((
        "jwt",
        Phase::Auth,
        Form::Shared(Arc::new(stage)),
        Carry::None,
    ))
}

impl Stage for JwtStage {
    fn kind(&self) -> &'static str {
        "jwt"
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        req: &Request,
        snap: &Snapshot,
        core: &mut CoreState,
    ) -> Flow {
        let need = self.engine.scratch_len();
        if core.jwt.len() < need {
            // Only a core state from another config version is short; grow it once.
            core.jwt.resize(need, 0);
        }
        let m = match self.engine.authenticate(
            &View(req),
            &snap.consumers,
            ctx.unix_secs,
            &mut core.jwt,
        ) {
            Ok(m) => m,
            Err(e) => return refuse(e),
        };
        let flow = admit(ctx, m.consumer);
        if flow != Flow::Continue {
            return flow;
        }
        let mut ok = true;
        for name in self.engine.claim_header_names() {
            ok &= ctx.upstream_remove.push(name.as_bytes(), b"");
        }
        for (header, value) in m.claim_headers() {
            let mut w = StackWriter::<MAX_CLAIM_VALUE>::new();
            ok &= write!(w, "{value}").is_ok()
                && ctx.upstream_headers.push(header.as_bytes(), w.as_bytes());
        }
        if ok {
            Flow::Continue
        } else {
            Flow::Respond(Reject::new(ErrorKind::Internal))
        }
    }
}

pub(crate) struct HmacStage {
    engine: HmacAuth,
}

pub(super) fn compile_hmac(
    s: &Settings,
    at: &str,
    prev: Option<&Carry>,
) -> Result<Built, Vec<ConfigError>> {
    let cfg: HmacAuthConfig = read(s, at).map_err(|e| vec![e])?;
    let prev = match prev {
        Some(Carry::Hmac(p)) => Some(p),
        _ => None,
    };
    let engine = HmacAuth::compile_after(&cfg, prev).map_err(|e| under_all(at, e))?;
    let stage = HmacStage {
        engine: engine.clone(),
    };
    Ok((
        "hmac_auth",
        Phase::Auth,
        Form::Shared(Arc::new(stage)),
        Carry::Hmac(engine),
    ))
}

impl Stage for HmacStage {
    fn kind(&self) -> &'static str {
        "hmac_auth"
    }

    /// The whole body, for the signed `Digest` (bounded by the route's body limit).
    fn body_bytes(&self) -> usize {
        usize::MAX
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        req: &Request,
        snap: &Snapshot,
        _core: &mut CoreState,
    ) -> Flow {
        let m = match self.engine.authenticate(
            &View(req),
            &snap.consumers,
            ctx.unix_secs,
            req.has_body(),
        ) {
            Ok(m) => m,
            Err(e) => return refuse(e),
        };
        if let Some(mut digest) = m.body {
            digest.update(req.body.unwrap_or_default());
            if let Err(e) = digest.finish() {
                return refuse(e);
            }
        }
        admit(ctx, m.consumer)
    }
}

pub(crate) struct SignCheckStage {
    engine: SignCheck,
}

pub(super) fn compile_sign_check(s: &Settings, at: &str) -> Result<Built, Vec<ConfigError>> {
    let cfg: SignCheckConfig = read(s, at).map_err(|e| vec![e])?;
    let engine = SignCheck::compile(&cfg).map_err(|e| under_all(at, e))?;
    let stage = SignCheckStage { engine };
    Ok((
        "sign_check",
        Phase::Verify,
        Form::Shared(Arc::new(stage)),
        Carry::None,
    ))
}

impl Stage for SignCheckStage {
    fn kind(&self) -> &'static str {
        "sign_check"
    }

    /// The whole body: its digest is part of the signed message.
    fn body_bytes(&self) -> usize {
        usize::MAX
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        req: &Request,
        _snap: &Snapshot,
        _core: &mut CoreState,
    ) -> Flow {
        match self
            .engine
            .verify(&View(req), req.body.unwrap_or_default(), ctx.unix_secs)
        {
            Ok(()) => Flow::Continue,
            Err(e) => refuse(e),
        }
    }
}

#[cfg(test)]
mod tests;

/// `decrypt`: resolves the app and hands the body codec to the access layer, which opens the
/// request body in place and seals the answer (see `crate::codec`).
pub struct DecryptStage {
    engine: Arc<crate::modules::crypto_box::decrypt::Decrypt>,
}

pub(super) fn compile_decrypt(s: &Settings, at: &str) -> Result<Built, Vec<ConfigError>> {
    let cfg: crate::modules::crypto_box::decrypt::DecryptConfig =
        read(s, at).map_err(|e| vec![e])?;
    let engine = crate::modules::crypto_box::decrypt::Decrypt::compile(&cfg)
        .map_err(|e| under_all(at, e))?;
    let stage = DecryptStage {
        engine: Arc::new(engine),
    };
    Ok((
        "decrypt",
        Phase::Verify,
        Form::Shared(Arc::new(stage)),
        Carry::None,
    ))
}

impl Stage for DecryptStage {
    fn kind(&self) -> &'static str {
        "decrypt"
    }

    /// The whole encrypted body, up to the module's limit.
    fn body_bytes(&self) -> usize {
        self.engine.max_body()
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        req: &Request,
        _snap: &Snapshot,
        _core: &mut CoreState,
    ) -> Flow {
        let app = match self.engine.app_key(&View(req)) {
            Ok(k) => k.app(),
            Err(e) => return refuse(e),
        };
        let n = app.len().min(crate::codec::MAX_APP_ID);
        ctx.codec_app[..n].copy_from_slice(&app.as_bytes()[..n]);
        ctx.codec_app_len = n;
        ctx.codec = Some(self.engine.clone());
        Flow::Continue
    }
}
