//! The built-in rule sets, shipped as data files next to this one (`sets/*.rules`) and
//! compiled into the binary, so security teams can read and review them as plain text.
//!
//! File format: one `<rule-id> <re|kw> <pattern>` per line, `#` comment lines, blank lines.
//! Keyword lines sharing an id form one keyword list; regex lines sharing an id become one
//! regex of alternatives.

/// The names a config may list in `sets`, with their data.
pub(crate) const BUILTIN: &[(&str, &str)] = &[
    ("sqli", include_str!("sets/sqli.rules")),
    ("xss", include_str!("sets/xss.rules")),
    ("php_injection", include_str!("sets/php_injection.rules")),
    ("path_traversal", include_str!("sets/path_traversal.rules")),
];

/// One rule of a set file, its lines gathered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SetRule {
    pub id: String,
    pub regexes: Vec<String>,
    pub keywords: Vec<String>,
}

/// Parses a set file; the error names the line (1-based).
pub(crate) fn parse(text: &str) -> Result<Vec<SetRule>, String> {
    let mut rules: Vec<SetRule> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        let (Some(id), Some(kind), Some(pattern)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("line {}: expected `<id> <re|kw> <pattern>`", n + 1));
        };
        let idx = match rules.iter().position(|r| r.id == id) {
            Some(i) => i,
            None => {
                rules.push(SetRule {
                    id: id.to_string(),
                    ..SetRule::default()
                });
                rules.len() - 1
            }
        };
        let rule = &mut rules[idx];
        match kind {
            "re" => rule.regexes.push(pattern.to_string()),
            "kw" => rule.keywords.push(pattern.to_string()),
            _ => return Err(format!("line {}: kind must be `re` or `kw`", n + 1)),
        }
    }
    Ok(rules)
}

/// The data of a built-in set by name.
pub(crate) fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_set_parses_and_has_rules() {
        for (name, text) in BUILTIN {
            let rules = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(rules.len() >= 4, "{name}");
            for r in &rules {
                assert!(
                    !(r.regexes.is_empty() && r.keywords.is_empty()),
                    "{name}/{}",
                    r.id
                );
            }
        }
    }

    #[test]
    fn lines_with_one_id_are_gathered() {
        let rules = parse("# c\n\na kw x\na kw y\nb re z+\na re q\n").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].keywords, vec!["x", "y"]);
        assert_eq!(rules[0].regexes, vec!["q"]);
        assert_eq!(rules[1].regexes, vec!["z+"]);
        assert!(parse("a xx y").is_err());
        assert!(parse("a kw").is_err());
    }
}
