//! waf engine: rule sets matched against the path, query, headers and a bounded body prefix of
//! each request, by regex and by keyword list, on both the raw and the percent-decoded forms.
//!
//! Compilation (once per config version) merges every rule into two automata: one
//! multi-pattern regex (regex-automata's meta engine, the engine under `regex::RegexSet`, in
//! byte mode) and one Aho-Corasick keyword automaton (ASCII case-insensitive). Each pattern
//! maps back to its rule. A request is then at most two passes per input form, whatever the
//! number of rules; overlapping matching reports every rule that hits, so log-only rules are
//! counted even next to blocking ones.
//!
//! Per request nothing is allocated and nothing is locked: the regex search cache, the
//! pattern set and the decode buffer live in a per-core [`WafScratch`] (the buffer grows only
//! when a longer input than ever before comes by, within the gateway's size limits). Hit
//! counters are `AtomicU64`s touched with `Relaxed` only when a rule hits, which is rare; the
//! metrics side reads them with [`WafEngine::hit_counts`].
//!
//! Forms matched: raw, then percent-decoded while escapes remain, up to `decode_passes` times
//! (default 2; `+` as space in the first pass over the query and the body, which may be a
//! form), so doubly encoded payloads (`%2527`) are seen as the upstream that decodes twice
//! would see them. A rule hits at most once per
//! request; the first blocking hit ends the scan. Built-in sets are data files in `waf/sets/`
//! (see [`sets`]); the false-positive corpus in `waf/corpus.txt` guards them.

mod compile;
pub(crate) mod decode;
mod sets;

use aho_corasick::AhoCorasick;
use compile::{alternation, check_regex, parse_targets, Builder};
use conf::ConfigError;
use decode::{needs_decoding, percent_decode, percent_decode_in_place};
use regex_automata::meta::{Cache, Regex};
use regex_automata::{Input, PatternSet};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Default bytes of the body inspected.
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024;
const MAX_BODY_LIMIT: usize = 1 << 20;
/// Default decoding passes: enough for doubly encoded input, which upstreams that decode
/// again would turn into the attack.
pub const DEFAULT_DECODE_PASSES: u8 = 2;

/// What a hit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refuse the request (403).
    #[default]
    Block,
    /// Count and report, let the request pass.
    Log,
}

/// Per built-in rule override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    Block,
    Log,
    Off,
}

/// One custom rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub id: String,
    /// `path`, `query`, `body`, `headers` (all), `header:<name>`.
    #[serde(default = "default_rule_targets")]
    pub targets: Vec<String>,
    /// A regex (byte mode: `\w`, `\s`, `\b`, `(?i)` are ASCII unless `(?u)` is set).
    pub regex: Option<String>,
    /// Plain substrings, ASCII case-insensitive.
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub action: Action,
}

fn default_rule_targets() -> Vec<String> {
    vec!["path".into(), "query".into(), "body".into()]
}

fn default_set_targets() -> Vec<String> {
    [
        "path",
        "query",
        "body",
        "header:user-agent",
        "header:referer",
        "header:cookie",
    ]
    .map(String::from)
    .to_vec()
}

/// The fields of a `waf` module (`id` and `kind` are read by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WafConfig {
    /// Built-in sets: `sqli`, `xss`, `php_injection`, `path_traversal`.
    pub sets: Vec<String>,
    /// Action of built-in rules unless overridden in `rule_actions`.
    pub set_action: Action,
    /// What built-in rules look at.
    pub set_targets: Vec<String>,
    /// Built-in rule id → `block`, `log` or `off`.
    pub rule_actions: BTreeMap<String, RuleAction>,
    pub rules: Vec<RuleConfig>,
    /// Body bytes inspected (a prefix).
    pub body_limit: usize,
    /// Percent-decoding passes matched after the raw form (1..=3); a second pass exposes
    /// doubly encoded payloads (`%2527`).
    pub decode_passes: u8,
}

impl Default for WafConfig {
    fn default() -> Self {
        WafConfig {
            sets: Vec::new(),
            set_action: Action::Block,
            set_targets: default_set_targets(),
            rule_actions: BTreeMap::new(),
            rules: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            decode_passes: DEFAULT_DECODE_PASSES,
        }
    }
}

/// Which part of the request a rule hit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Path,
    Query,
    Header,
    Body,
}

pub(super) const T_PATH: u8 = 1;
pub(super) const T_QUERY: u8 = 2;
pub(super) const T_BODY: u8 = 4;
pub(super) const T_ALL_HEADERS: u8 = 8;

#[derive(Debug)]
pub(super) struct Rule {
    pub(super) id: Box<str>,
    pub(super) action: Action,
    pub(super) mask: u8,
    /// Lowercased header names this rule looks at (besides `T_ALL_HEADERS`).
    pub(super) headers: Box<[Box<str>]>,
}

impl Rule {
    fn applies(&self, target: Target, header: &[u8]) -> bool {
        match target {
            Target::Path => self.mask & T_PATH != 0,
            Target::Query => self.mask & T_QUERY != 0,
            Target::Body => self.mask & T_BODY != 0,
            Target::Header => {
                self.mask & T_ALL_HEADERS != 0
                    || self
                        .headers
                        .iter()
                        .any(|h| h.as_bytes().eq_ignore_ascii_case(header))
            }
        }
    }
}

/// The compiled rules of one `waf` module version; shared read-only by every core.
#[derive(Debug)]
pub struct WafEngine {
    pub(super) id: u64,
    pub(super) rules: Box<[Rule]>,
    pub(super) hits: Box<[AtomicU64]>,
    pub(super) regex: Option<Regex>,
    pub(super) regex_rule: Box<[usize]>,
    pub(super) keywords: Option<AhoCorasick>,
    pub(super) keyword_rule: Box<[usize]>,
    pub(super) all_headers: bool,
    pub(super) header_names: Box<[Box<str>]>,
    pub(super) body_limit: usize,
    pub(super) decode_passes: u8,
}

/// Per-core working memory for [`WafEngine::check`] (see [`WafEngine::scratch`]).
#[derive(Debug)]
pub struct WafScratch {
    engine: u64,
    cache: Option<Cache>,
    patterns: PatternSet,
    buf: Vec<u8>,
    seen: Vec<u64>,
}

/// The request parts inspected; all borrowed.
pub struct WafInput<'a, H> {
    pub path: &'a [u8],
    /// Raw query string (after `?`).
    pub query: &'a [u8],
    /// Header fields as (name, value).
    pub headers: H,
    /// The body received so far; only the first `body_limit` bytes are read.
    pub body: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WafHit<'e> {
    pub rule: &'e str,
    pub target: Target,
}

/// The outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WafVerdict<'e> {
    /// The blocking rule that hit (answer 403), if any.
    pub blocked: Option<WafHit<'e>>,
    /// The first log-only rule that hit (for the access log).
    pub first_logged: Option<WafHit<'e>>,
    /// Log-only rules that hit.
    pub logged: u32,
}

pub(super) static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

impl WafEngine {
    pub fn compile(cfg: &WafConfig) -> Result<WafEngine, ConfigError> {
        if cfg.body_limit > MAX_BODY_LIMIT {
            return Err(ConfigError::new(
                "body_limit",
                format!("must be at most {MAX_BODY_LIMIT}"),
            ));
        }
        if !(1..=3).contains(&cfg.decode_passes) {
            return Err(ConfigError::new("decode_passes", "must be 1, 2 or 3"));
        }
        let mut b = Builder::default();
        let set_targets =
            parse_targets(&cfg.set_targets).map_err(|m| ConfigError::new("set_targets", m))?;
        let mut known_builtin = Vec::new();
        for (i, name) in cfg.sets.iter().enumerate() {
            let field = format!("sets[{i}]");
            let text = sets::builtin(name).ok_or_else(|| {
                let names: Vec<_> = sets::BUILTIN.iter().map(|(n, _)| *n).collect();
                ConfigError::new(
                    &field,
                    format!("unknown set `{name}` (known: {})", names.join(", ")),
                )
            })?;
            let rules = sets::parse(text).map_err(|m| ConfigError::new(&field, m))?;
            for r in rules {
                known_builtin.push(r.id.clone());
                let action = match cfg.rule_actions.get(&r.id).copied() {
                    Some(RuleAction::Off) => continue,
                    Some(RuleAction::Block) => Action::Block,
                    Some(RuleAction::Log) => Action::Log,
                    None => cfg.set_action,
                };
                let regex = (!r.regexes.is_empty()).then(|| alternation(&r.regexes));
                b.add(&r.id, action, set_targets.clone(), regex, &r.keywords);
            }
        }
        for id in cfg.rule_actions.keys() {
            if !known_builtin.contains(id) {
                return Err(ConfigError::new(
                    format!("rule_actions.{id}"),
                    "no such rule in the listed sets",
                ));
            }
        }
        for (i, r) in cfg.rules.iter().enumerate() {
            let field = |f: &str| format!("rules[{i}].{f}");
            if r.id.is_empty() {
                return Err(ConfigError::new(field("id"), "must not be empty"));
            }
            if known_builtin.contains(&r.id) || b.rules.iter().any(|x| *x.id == *r.id) {
                return Err(ConfigError::new(
                    field("id"),
                    format!("`{}` is already used", r.id),
                ));
            }
            if r.regex.is_none() && r.keywords.is_empty() {
                return Err(ConfigError::new(
                    field("regex"),
                    "a rule needs `regex` or `keywords`",
                ));
            }
            if r.keywords.iter().any(String::is_empty) {
                return Err(ConfigError::new(
                    field("keywords"),
                    "keywords must not be empty",
                ));
            }
            let targets =
                parse_targets(&r.targets).map_err(|m| ConfigError::new(field("targets"), m))?;
            if let Some(re) = &r.regex {
                check_regex(re).map_err(|m| ConfigError::new(field("regex"), m))?;
            }
            b.add(&r.id, r.action, targets, r.regex.clone(), &r.keywords);
        }
        b.finish(cfg.body_limit, cfg.decode_passes)
    }

    /// Working memory for one core (allocates; make it when the config version is installed).
    pub fn scratch(&self) -> WafScratch {
        WafScratch {
            engine: self.id,
            cache: self.regex.as_ref().map(Regex::create_cache),
            patterns: PatternSet::new(self.regex.as_ref().map_or(0, Regex::pattern_len)),
            buf: vec![0; 16 * 1024],
            seen: vec![0; self.rules.len().div_ceil(64)],
        }
    }

    /// Inspects one request. A scratch made by another engine is rebuilt first.
    pub fn check<'a, 'e, H>(
        &'e self,
        input: &WafInput<'a, H>,
        scratch: &mut WafScratch,
    ) -> WafVerdict<'e>
    where
        H: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        if scratch.engine != self.id {
            *scratch = self.scratch();
        }
        scratch.seen.fill(0);
        let mut v = WafVerdict::default();
        if self.scan(Target::Path, b"", input.path, false, scratch, &mut v)
            || self.scan(Target::Query, b"", input.query, true, scratch, &mut v)
        {
            return v;
        }
        if self.all_headers || !self.header_names.is_empty() {
            for (name, value) in input.headers.clone() {
                let wanted = self.all_headers
                    || self
                        .header_names
                        .iter()
                        .any(|h| h.as_bytes().eq_ignore_ascii_case(name));
                if wanted && self.scan(Target::Header, name, value, false, scratch, &mut v) {
                    return v;
                }
            }
        }
        let body = input.body.get(..self.body_limit).unwrap_or(input.body);
        self.scan(Target::Body, b"", body, true, scratch, &mut v);
        v
    }

    /// Scans the raw form, then the decoded one; true when a blocking rule hit.
    fn scan<'e>(
        &'e self,
        target: Target,
        header: &[u8],
        data: &[u8],
        plus: bool,
        s: &mut WafScratch,
        v: &mut WafVerdict<'e>,
    ) -> bool {
        if data.is_empty() {
            return false;
        }
        if self.scan_form(target, header, data, s, v) {
            return true;
        }
        if !needs_decoding(data, plus) {
            return false;
        }
        let mut buf = std::mem::take(&mut s.buf);
        if buf.len() < data.len() {
            buf.resize(data.len(), 0);
        }
        let mut n = percent_decode(data, plus, &mut buf);
        let mut blocked = self.scan_form(target, header, buf.get(..n).unwrap_or_default(), s, v);
        // Further passes only while escapes remain (`%2527` → `%27` → `'`).
        for _ in 1..self.decode_passes {
            if blocked || !needs_decoding(buf.get(..n).unwrap_or_default(), false) {
                break;
            }
            n = percent_decode_in_place(&mut buf, n, false);
            blocked = self.scan_form(target, header, buf.get(..n).unwrap_or_default(), s, v);
        }
        s.buf = buf;
        blocked
    }

    fn scan_form<'e>(
        &'e self,
        target: Target,
        header: &[u8],
        form: &[u8],
        s: &mut WafScratch,
        v: &mut WafVerdict<'e>,
    ) -> bool {
        if let Some(ac) = &self.keywords {
            for m in ac.find_overlapping_iter(form) {
                let rule = self.keyword_rule.get(m.pattern().as_usize()).copied();
                if rule.is_some_and(|r| self.hit_seen(r, target, header, &mut s.seen, v)) {
                    return true;
                }
            }
        }
        if let (Some(re), Some(cache)) = (&self.regex, s.cache.as_mut()) {
            s.patterns.clear();
            re.which_overlapping_matches_with(cache, &Input::new(form), &mut s.patterns);
            for pid in s.patterns.iter() {
                let rule = self.regex_rule.get(pid.as_usize()).copied();
                if rule.is_some_and(|r| self.hit_seen(r, target, header, &mut s.seen, v)) {
                    return true;
                }
            }
        }
        false
    }

    /// Records rule `r` hitting in `t` (once per request); true when it blocks.
    fn hit_seen<'e>(
        &'e self,
        r: usize,
        t: Target,
        header: &[u8],
        seen: &mut [u64],
        v: &mut WafVerdict<'e>,
    ) -> bool {
        let Some(rule) = self.rules.get(r) else {
            return false;
        };
        if !rule.applies(t, header) {
            return false;
        }
        let Some(word) = seen.get_mut(r / 64) else {
            return false;
        };
        let bit = 1u64 << (r % 64);
        if *word & bit != 0 {
            return false;
        }
        *word |= bit;
        if let Some(c) = self.hits.get(r) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let hit = WafHit {
            rule: &rule.id,
            target: t,
        };
        match rule.action {
            Action::Block => {
                v.blocked = Some(hit);
                true
            }
            Action::Log => {
                v.logged += 1;
                v.first_logged.get_or_insert(hit);
                false
            }
        }
    }

    /// Every rule with its hit count since this engine was compiled.
    pub fn hit_counts(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.rules
            .iter()
            .zip(self.hits.iter())
            .map(|(r, c)| (&*r.id, c.load(Ordering::Relaxed)))
    }

    /// Whether any rule looks at the body (the pipeline then reads `body_limit` bytes of it
    /// before this module runs).
    pub fn inspects_body(&self) -> bool {
        self.rules.iter().any(|r| r.mask & T_BODY != 0)
    }

    /// Body bytes inspected (a prefix).
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

#[cfg(test)]
mod tests;
