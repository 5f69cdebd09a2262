//! The one error type of the config layer: a field path and what is wrong with it.
//!
//! `gatehouse check` prints these one per line and the admin API turns them into its 400 body
//! (`field` = `path`), so the same value serves people and programs. Parse errors of TOML and
//! JSON documents are converted here too, keeping the field path serde was at when it failed.

use std::fmt;

/// One problem in a config: `path` names the field (`routes[2].upstream`), `message` says what
/// is wrong with it.
///
/// `path` is empty only when no field can be named (a TOML syntax error before any key); the
/// message then carries the line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// `path: message`, the format of `gatehouse check` (CONTRACT.md); just the message when
    /// there is no path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and column of byte `offset` in `text` (columns count chars, as editors do).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// serde_path_to_error writes `?` for positions it cannot name and `.` for the root; neither is
/// a useful field path.
fn clean_path(mut path: String) -> String {
    while path.ends_with(".?") {
        path.truncate(path.len() - 2);
    }
    if path == "." || path == "?" {
        path.clear();
    }
    path
}

/// Parses a TOML document into `T`, turning the failure into one [`ConfigError`] that names the
/// field serde was at and the line it came from.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = clean_path(e.path().to_string());
        let inner = e.into_inner();
        // One line per problem (`gatehouse check`): toml's messages may span several.
        let text_msg = inner.message().trim_end().replace('\n', "; ");
        let location = inner.span().map(|span| line_col(text, span.start));
        let message = match (path.is_empty(), location) {
            (true, Some((line, col))) => {
                format!("invalid TOML at line {line}, column {col}: {text_msg}")
            }
            (true, None) => format!("invalid TOML: {text_msg}"),
            (false, Some((line, col))) => format!("{text_msg} (line {line}, column {col})"),
            (false, None) => text_msg,
        };
        ConfigError::new(path, message)
    })
}

/// Parses a JSON document (an admin API body) into `T`, naming the failing field like
/// `Config::from_toml_str` does. Callers give the path of the resource (`routes[3]`, or "" for a body
/// that is the resource itself) so errors read the same as whole-config ones.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    text: &str,
    base_path: &str,
) -> Result<T, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let (inner_path, inner) = match serde_path_to_error::deserialize(&mut de) {
        // Trailing garbage after the value is an error too; it belongs to no field.
        Ok(value) => match de.end() {
            Ok(()) => return Ok(value),
            Err(e) => (String::new(), e),
        },
        Err(e) => (clean_path(e.path().to_string()), e.into_inner()),
    };
    let path = match (base_path.is_empty(), inner_path.is_empty()) {
        (true, _) => inner_path,
        (false, true) => base_path.to_string(),
        (false, false) if inner_path.starts_with('[') => format!("{base_path}{inner_path}"),
        (false, false) => format!("{base_path}.{inner_path}"),
    };
    let message = if path.is_empty() {
        format!("invalid JSON: {inner}")
    } else {
        inner.to_string()
    };
    Err(ConfigError::new(path, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_path_colon_message() {
        let e = ConfigError::new("routes[2].upstream", "no upstream named \"x\"");
        assert_eq!(e.to_string(), "routes[2].upstream: no upstream named \"x\"");
        assert_eq!(ConfigError::new("", "bad").to_string(), "bad");
    }

    #[test]
    fn line_col_counts_from_one() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 9), (2, 4));
        assert_eq!(line_col(t, 999), (3, 1));
    }
}
