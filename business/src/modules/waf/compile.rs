//! Compilation helpers of the waf engine: rule targets, the regex syntax (byte mode), and the
//! builder that merges every rule's patterns into one regex and one keyword automaton.

use super::{Action, Rule, WafEngine, NEXT_ENGINE_ID, T_ALL_HEADERS, T_BODY, T_PATH, T_QUERY};
use aho_corasick::{AhoCorasickBuilder, MatchKind as AcMatchKind};
use conf::ConfigError;
use regex_automata::meta::Regex;
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind};
use std::sync::atomic::{AtomicU64, Ordering};

/// Gathers rules and their patterns before building the two automata.
#[derive(Default)]
pub(super) struct Builder {
    pub(super) rules: Vec<Rule>,
    regexes: Vec<String>,
    regex_rule: Vec<usize>,
    keywords: Vec<String>,
    keyword_rule: Vec<usize>,
}

impl Builder {
    pub(super) fn add(
        &mut self,
        id: &str,
        action: Action,
        (mask, headers): (u8, Vec<Box<str>>),
        regex: Option<String>,
        keywords: &[String],
    ) {
        let idx = self.rules.len();
        if let Some(re) = regex {
            self.regexes.push(re);
            self.regex_rule.push(idx);
        }
        for k in keywords {
            self.keywords.push(k.clone());
            self.keyword_rule.push(idx);
        }
        self.rules.push(Rule {
            id: id.into(),
            action,
            mask,
            headers: headers.into_boxed_slice(),
        });
    }

    pub(super) fn finish(
        self,
        body_limit: usize,
        decode_passes: u8,
    ) -> Result<WafEngine, ConfigError> {
        let regex = if self.regexes.is_empty() {
            None
        } else {
            Some(build_regex(&self.regexes).map_err(|m| ConfigError::new("rules", m))?)
        };
        let keywords = if self.keywords.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(AcMatchKind::Standard)
                    .build(&self.keywords)
                    .map_err(|e| ConfigError::new("rules", format!("keywords: {e}")))?,
            )
        };
        let all_headers = self.rules.iter().any(|r| r.mask & T_ALL_HEADERS != 0);
        let mut header_names: Vec<Box<str>> = self
            .rules
            .iter()
            .flat_map(|r| r.headers.iter().cloned())
            .collect();
        header_names.sort();
        header_names.dedup();
        Ok(WafEngine {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            hits: self.rules.iter().map(|_| AtomicU64::new(0)).collect(),
            rules: self.rules.into_boxed_slice(),
            regex,
            regex_rule: self.regex_rule.into_boxed_slice(),
            keywords,
            keyword_rule: self.keyword_rule.into_boxed_slice(),
            all_headers,
            header_names: header_names.into_boxed_slice(),
            body_limit,
            decode_passes,
        })
    }
}

fn syntax_config() -> syntax::Config {
    // Byte mode: inputs are arbitrary bytes, and ASCII classes keep the lazy DFA fast.
    syntax::Config::new().unicode(false).utf8(false)
}

fn build_regex(patterns: &[String]) -> Result<Regex, String> {
    Regex::builder()
        .syntax(syntax_config())
        .configure(
            Regex::config()
                .match_kind(MatchKind::All)
                .utf8_empty(false)
                .which_captures(regex_automata::nfa::thompson::WhichCaptures::None),
        )
        .build_many(patterns)
        .map_err(|e| e.to_string())
}

/// A custom regex alone: it must compile and must not match the empty input (it would hit
/// every request).
pub(super) fn check_regex(pattern: &str) -> Result<(), String> {
    let re = Regex::builder()
        .syntax(syntax_config())
        .build(pattern)
        .map_err(|e| format!("invalid regex: {e}"))?;
    if re.is_match(Input::new(b"")) {
        return Err("matches the empty string, so it would hit every request".into());
    }
    Ok(())
}

pub(super) fn alternation(parts: &[String]) -> String {
    parts
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|")
}

/// `path`, `query`, `body`, `headers`, `header:<name>` → mask and header names.
pub(super) fn parse_targets(list: &[String]) -> Result<(u8, Vec<Box<str>>), String> {
    if list.is_empty() {
        return Err("list at least one target".into());
    }
    let mut mask = 0;
    let mut headers = Vec::new();
    for t in list {
        match t.as_str() {
            "path" => mask |= T_PATH,
            "query" => mask |= T_QUERY,
            "body" => mask |= T_BODY,
            "headers" => mask |= T_ALL_HEADERS,
            other => match other.strip_prefix("header:") {
                Some(name)
                    if !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) =>
                {
                    headers.push(name.to_ascii_lowercase().into())
                }
                _ => {
                    return Err(format!(
                        "`{t}`: targets are path, query, body, headers, header:<name>"
                    ))
                }
            },
        }
    }
    Ok((mask, headers))
}
