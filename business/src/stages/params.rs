//! The `params` stage: checks the route's declared parameters (path captures, query, headers,
//! JSON body fields) and answers 400 naming the first one that is wrong.
//!
//! Path parameters are the router's captures, looked up by name in the matched route; the
//! engine's working memory is this core's `ParamsScratch`. When body parameters are declared
//! the stage asks for the body (up to the module's `max_body_bytes`).

use super::{read, under, Built, Carry, Form, ScratchPlan};
use crate::context::Context;
use crate::modules::params::{Location, ParamInput, ParamsConfig, ParamsEngine};
use crate::pipeline::{CoreState, Phase};
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use conf::{ConfigError, Settings};
use protocols::error::ErrorKind;
use std::sync::Arc;

pub(crate) struct ParamsStage {
    engine: Arc<ParamsEngine>,
    /// Index of this engine's scratch in `CoreState::params`.
    slot: usize,
    body: usize,
}

pub(super) fn compile(
    s: &Settings,
    at: &str,
    plan: &mut ScratchPlan,
) -> Result<Built, Vec<ConfigError>> {
    let cfg: ParamsConfig = read(s, at).map_err(|e| vec![e])?;
    let engine = Arc::new(ParamsEngine::compile(&cfg).map_err(|e| under(at, e))?);
    let wants_body = cfg.params.iter().any(|p| p.location == Location::Body);
    let stage = ParamsStage {
        engine: engine.clone(),
        slot: plan.params.len(),
        body: if wants_body { cfg.max_body_bytes } else { 0 },
    };
    plan.params.push(engine);
    Ok((
        "params",
        Phase::Params,
        Form::Shared(Arc::new(stage)),
        Carry::None,
    ))
}

impl Stage for ParamsStage {
    fn kind(&self) -> &'static str {
        "params"
    }

    fn body_bytes(&self) -> usize {
        self.body
    }

    fn on_request(
        &self,
        ctx: &mut Context,
        req: &Request,
        snap: &Snapshot,
        core: &mut CoreState,
    ) -> Flow {
        let path = req.path();
        let m = &ctx.route;
        let path_param = |name: &str| {
            m.params()
                .iter()
                .position(|&(idx, _, _)| snap.router.param_name(m.route, idx) == name)
                .and_then(|i| m.param_value(path, i))
        };
        let input = ParamInput {
            path_param,
            query: req.query().unwrap_or_default(),
            headers: req.headers(),
            body: req.body.unwrap_or_default(),
        };
        let result = match core.params.get_mut(self.slot) {
            Some(scratch) => self.engine.check(&input, scratch),
            // Only a core state from another config version lacks the slot; a fresh scratch
            // (allocated once here) keeps the answer right.
            None => self.engine.check(&input, &mut self.engine.scratch()),
        };
        match result {
            Ok(()) => Flow::Continue,
            Err(v) => Flow::Respond(Reject::with_field(ErrorKind::BadParameter, v.field())),
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
id = "order"
kind = "params"
max_body_bytes = 256

[[modules.params]]
name = "id"
in = "path"
required = true
type = "int"
min = 1

[[modules.params]]
name = "page"
in = "query"
type = "int"
max = 100

[[modules.params]]
name = "x-tenant"
in = "header"
type = "enum"
values = ["a", "b"]

[[modules.params]]
name = "qty"
in = "body"
type = "int"
required = true

[[modules.params]]
name = "note"
in = "body"
type = "string"
max_len = 5

[[modules]]
id = "flag"
kind = "params"

[[modules.params]]
name = "on"
in = "query"
type = "bool"
required = true

[[routes]]
id = "orders"
paths = ["/orders/{id}"]
upstream = "u"
modules = ["order"]

[[routes]]
id = "flags"
paths = ["/flags"]
upstream = "u"
modules = ["flag"]
"#;

    fn field(o: &crate::stages::testutil::Outcome) -> String {
        let r = rejected(o);
        assert_eq!(r.kind, ErrorKind::BadParameter);
        r.field.map(|f| f.as_str().to_string()).unwrap_or_default()
    }

    fn post(
        h: &mut Harness,
        target: &str,
        extra: &str,
        body: &str,
    ) -> crate::stages::testutil::Outcome {
        h.run(
            &format!(
                "POST {target} HTTP/1.1\nHost: a\n{extra}Content-Length: {}\n",
                body.len()
            ),
            "192.0.2.1",
            body.as_bytes(),
        )
    }

    #[test]
    fn each_location_and_type_is_checked_and_named() {
        let mut h = Harness::new(CONFIG);
        let ok = post(
            &mut h,
            "/orders/7?page=3",
            "X-Tenant: a\n",
            r#"{"qty": 2, "note": "hi"}"#,
        );
        assert_eq!(ok.flow, Flow::Continue);
        assert_eq!(ok.asked, Some(256));
        assert_eq!(field(&post(&mut h, "/orders/x", "", r#"{"qty":1}"#)), "id");
        assert_eq!(field(&post(&mut h, "/orders/0", "", r#"{"qty":1}"#)), "id");
        assert_eq!(
            field(&post(&mut h, "/orders/7?page=101", "", r#"{"qty":1}"#)),
            "page"
        );
        assert_eq!(
            field(&post(&mut h, "/orders/7", "X-Tenant: c\n", r#"{"qty":1}"#)),
            "x-tenant"
        );
        assert_eq!(
            field(&post(&mut h, "/orders/7", "", r#"{"qty":"1"}"#)),
            "qty"
        );
        assert_eq!(
            field(&post(&mut h, "/orders/7", "", r#"{"note":"x"}"#)),
            "qty"
        );
        assert_eq!(
            field(&post(
                &mut h,
                "/orders/7",
                "",
                r#"{"qty":1,"note":"toolong"}"#
            )),
            "note"
        );
        assert_eq!(field(&post(&mut h, "/orders/7", "", "[1]")), "body");
        assert_eq!(field(&h.get("GET /flags?on=yes HTTP/1.1\nHost: a\n")), "on");
        assert_eq!(field(&h.get("GET /flags HTTP/1.1\nHost: a\n")), "on");
        assert_eq!(
            h.get("GET /flags?on=true HTTP/1.1\nHost: a\n").flow,
            Flow::Continue
        );
    }

    #[test]
    fn a_body_over_the_module_limit_is_asked_for_no_further() {
        let mut h = Harness::new(CONFIG);
        // The pipeline asks for 256 bytes; the access layer answers 413 beyond that.
        let big = format!(r#"{{"qty":1,"pad":"{}"}}"#, "x".repeat(300));
        let o = post(&mut h, "/orders/7", "", &big);
        assert_eq!(o.asked, Some(256));
    }

    #[test]
    fn config_errors_name_the_parameter() {
        let errs = Harness::errors(
            "[[modules]]\nid = \"p\"\nkind = \"params\"\n[[modules.params]]\nname = \"a\"\nin = \"cookie\"\n\
             [[modules]]\nid = \"q\"\nkind = \"params\"\n[[modules.params]]\nname = \"a\"\nin = \"query\"\nmin = 1\n",
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("modules[0].params[0].in: unknown variant")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("modules[1].params[0].min: ")),
            "{errs:?}"
        );
    }
}
