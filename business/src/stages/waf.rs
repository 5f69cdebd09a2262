//! The `waf` stage: matches the path, query, headers and a body prefix against the module's
//! rules; a blocking hit answers 403, log-only hits are counted by the engine.
//!
//! When a rule looks at the body the stage asks for `body_limit` bytes of it. The access layer
//! reads whole bodies up to the ask and answers 413 beyond it, so on a route with a
//! body-inspecting WAF, bodies longer than `body_limit` are refused (docs/modules/waf.md).

use super::{read, under, Built, Carry, Form, ScratchPlan};
use crate::context::Context;
use crate::modules::waf::{WafConfig, WafEngine, WafInput};
use crate::pipeline::{CoreState, Phase};
use crate::snapshot::Snapshot;
use crate::stage::{Flow, Reject, Request, Stage};
use conf::{ConfigError, Settings};
use protocols::error::ErrorKind;
use std::sync::Arc;

pub(crate) struct WafStage {
    engine: Arc<WafEngine>,
    /// Index of this engine's scratch in `CoreState::waf`.
    slot: usize,
    body: usize,
}

pub(super) fn compile(
    s: &Settings,
    at: &str,
    plan: &mut ScratchPlan,
) -> Result<Built, Vec<ConfigError>> {
    let cfg: WafConfig = read(s, at).map_err(|e| vec![e])?;
    let engine = Arc::new(WafEngine::compile(&cfg).map_err(|e| under(at, e))?);
    let stage = WafStage {
        engine: engine.clone(),
        slot: plan.waf.len(),
        body: if engine.inspects_body() {
            engine.body_limit()
        } else {
            0
        },
    };
    plan.waf.push(engine);
    Ok((
        "waf",
        Phase::Waf,
        Form::Shared(Arc::new(stage)),
        Carry::None,
    ))
}

impl Stage for WafStage {
    fn kind(&self) -> &'static str {
        "waf"
    }

    fn body_bytes(&self) -> usize {
        self.body
    }

    fn on_request(
        &self,
        _ctx: &mut Context,
        req: &Request,
        _snap: &Snapshot,
        core: &mut CoreState,
    ) -> Flow {
        let input = WafInput {
            path: req.path(),
            query: req.query().unwrap_or_default(),
            headers: req.headers(),
            body: req.body.unwrap_or_default(),
        };
        let verdict = match core.waf.get_mut(self.slot) {
            Some(scratch) => self.engine.check(&input, scratch),
            // Only a core state from another config version lacks the slot.
            None => self.engine.check(&input, &mut self.engine.scratch()),
        };
        match verdict.blocked {
            None => Flow::Continue,
            Some(_) => Flow::Respond(Reject::new(ErrorKind::Forbidden("waf"))),
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
id = "shield"
kind = "waf"
sets = ["sqli", "xss", "php_injection", "path_traversal"]
body_limit = 1024

[[modules.rules]]
id = "scanner"
targets = ["header:user-agent"]
keywords = ["sqlmap"]

[[modules.rules]]
id = "watch"
targets = ["query"]
keywords = ["debug=1"]
action = "log"

[[routes]]
id = "all"
paths = ["/*"]
upstream = "u"
modules = ["shield"]
"#;

    fn blocked(h: &mut Harness, head: &str, body: &str) -> bool {
        let head = format!("{head}Host: a\nContent-Length: {}\n", body.len());
        let o = h.run(&head, "192.0.2.1", body.as_bytes());
        match o.flow {
            Flow::Continue => false,
            _ => {
                assert_eq!(rejected(&o).kind, ErrorKind::Forbidden("waf"));
                true
            }
        }
    }

    #[test]
    fn each_set_blocks_in_each_target_and_ordinary_requests_pass() {
        let mut h = Harness::new(CONFIG);
        assert!(blocked(
            &mut h,
            "GET /q?id=1%27%20OR%20%271%27=%271 HTTP/1.1\n",
            ""
        ));
        assert!(blocked(
            &mut h,
            "GET /q?x=%3Cscript%3Ealert(1)%3C/script%3E HTTP/1.1\n",
            ""
        ));
        assert!(blocked(
            &mut h,
            "POST /upload HTTP/1.1\n",
            "<?php system($_GET['c']); ?>"
        ));
        assert!(blocked(
            &mut h,
            "GET /static/..%2f..%2fetc/passwd HTTP/1.1\n",
            ""
        ));
        assert!(blocked(
            &mut h,
            "GET / HTTP/1.1\nUser-Agent: sqlmap/1.7\n",
            ""
        ));
        assert!(blocked(
            &mut h,
            "POST /c HTTP/1.1\n",
            "name=x' UNION SELECT password FROM users--"
        ));
        assert!(!blocked(
            &mut h,
            "GET /search?q=union+jack+t-shirt&debug=1 HTTP/1.1\n",
            ""
        ));
        assert!(!blocked(
            &mut h,
            "POST /c HTTP/1.1\n",
            r#"{"name":"O'Brien","size":"select a size"}"#
        ));
        let hits = h.snap.pipeline.waf_hits();
        assert!(
            hits.iter()
                .any(|(m, r, n)| m == "shield" && r == "watch" && *n == 1),
            "{hits:?}"
        );
        assert!(
            hits.iter().any(|(_, r, n)| r == "scanner" && *n == 1),
            "{hits:?}"
        );
    }

    #[test]
    fn body_rules_ask_for_the_prefix_and_header_only_rules_do_not() {
        let mut h = Harness::new(CONFIG);
        let o = h.run(
            "POST /x HTTP/1.1\nHost: a\nContent-Length: 2\n",
            "192.0.2.1",
            b"hi",
        );
        assert_eq!(o.asked, Some(1024));
        let mut h = Harness::new(
            "[[modules]]\nid = \"w\"\nkind = \"waf\"\n[[modules.rules]]\nid = \"ua\"\n\
             targets = [\"header:user-agent\"]\nkeywords = [\"bot\"]\n\
             [[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"u\"\nmodules = [\"w\"]\n",
        );
        let o = h.run(
            "POST /x HTTP/1.1\nHost: a\nContent-Length: 2\n",
            "192.0.2.1",
            b"hi",
        );
        assert_eq!((o.flow, o.asked), (Flow::Continue, None));
    }

    #[test]
    fn the_shipped_corpus_passes() {
        let mut h = Harness::new(CONFIG);
        let mut n = 0;
        for line in include_str!("../modules/waf/corpus.txt").lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            n += 1;
            let passed = if let Some(header) = line.strip_prefix("H ") {
                !blocked(&mut h, &format!("GET / HTTP/1.1\n{header}\n"), "")
            } else {
                let (request, body) = line.split_once(" | ").unwrap_or((line, ""));
                let ct = if body.is_empty() {
                    ""
                } else {
                    "Content-Type: application/json\n"
                };
                !blocked(&mut h, &format!("{request} HTTP/1.1\n{ct}"), body)
            };
            assert!(passed, "false positive: {line}");
        }
        assert!(n >= 200, "{n}");
    }
}
