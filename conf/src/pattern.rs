//! Syntax of route hosts, paths and methods, parsed once and shared by validation and the router.
//!
//! Validation reports the `Err` strings of these parsers under the field's path; the router
//! builds its tries from the `Ok` values, so both always agree on what a pattern means.

/// Most `{param}` segments in one path pattern; also the size of the router's capture array.
pub const MAX_PARAMS: usize = 8;
/// Most segments in one path pattern: bounds the router's recursion depth.
pub const MAX_SEGMENTS: usize = 64;
/// Longest path pattern in bytes.
pub const MAX_PATH_LEN: usize = 2048;
/// Longest parameter name.
pub const MAX_PARAM_NAME: usize = 64;
/// Longest method token.
pub const MAX_METHOD_LEN: usize = 32;

/// One segment of a path pattern (the text between two `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal the request segment byte for byte (empty only as a trailing `/`).
    Static(String),
    /// `{name}`: any non-empty request segment, captured under `name`.
    Param(String),
}

/// A parsed route path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    pub segments: Vec<Segment>,
    /// `true` for `/a/b/*` (and `/*`): `segments` is the prefix, without the `*`.
    pub prefix: bool,
}

impl PathPattern {
    /// A key equal for patterns that match the same requests: param names are erased, so
    /// `/u/{id}` and `/u/{name}` share a key (they conflict on the same host and method).
    pub fn shape_key(&self) -> String {
        let mut key = String::new();
        for seg in &self.segments {
            key.push('/');
            match seg {
                Segment::Static(s) => key.push_str(s),
                // Static segments cannot contain braces, so this marker is unambiguous.
                Segment::Param(_) => key.push_str("{}"),
            }
        }
        if self.prefix {
            key.push_str("/*");
        }
        key
    }

    /// Names of the `{param}` segments, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) => Some(n.as_str()),
            Segment::Static(_) => None,
        })
    }
}

/// Bytes allowed in a static path segment: RFC 3986 `pchar` (unreserved, sub-delims, `:`, `@`)
/// plus `%` for percent-encodings, which are matched raw.
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%".contains(&b)
}

fn is_param_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= MAX_PARAM_NAME
}

/// Parses a route path: `/exact/{param}/path`, `/prefix/*` or `/*`.
pub fn parse_path(path: &str) -> Result<PathPattern, String> {
    if !path.starts_with('/') {
        return Err(format!("path {path:?} must start with '/'"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!("path is longer than {MAX_PATH_LEN} bytes"));
    }
    let (body, prefix) = match path.strip_suffix("/*") {
        Some(body) => (body, true),
        None => (path, false),
    };
    let mut segments = Vec::new();
    // `body` is "" for "/*"; otherwise it starts with '/' and each piece after it is a segment.
    let pieces: Vec<&str> = if body.is_empty() {
        Vec::new()
    } else {
        body[1..].split('/').collect()
    };
    if pieces.len() > MAX_SEGMENTS {
        return Err(format!("path has more than {MAX_SEGMENTS} segments"));
    }
    let last = pieces.len().saturating_sub(1);
    for (i, piece) in pieces.iter().enumerate() {
        if let Some(inner) = piece.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if prefix {
                return Err(format!(
                    "{{param}} segments are only allowed in exact paths, not in prefix {path:?}"
                ));
            }
            if !is_param_name(inner) {
                return Err(format!(
                    "invalid parameter name {inner:?} (letters, digits and '_', not starting \
                     with a digit, at most {MAX_PARAM_NAME} bytes)"
                ));
            }
            if segments.contains(&Segment::Param(inner.to_string())) {
                return Err(format!("parameter {{{inner}}} appears twice"));
            }
            segments.push(Segment::Param(inner.to_string()));
            continue;
        }
        if piece.contains('{') || piece.contains('}') {
            return Err(format!(
                "'{{' and '}}' may only wrap a whole segment, as in /users/{{id}}; got {piece:?}"
            ));
        }
        if piece.contains('*') {
            return Err("'*' is only allowed as the final \"/*\" of a prefix path".to_string());
        }
        // An empty segment is a trailing '/' of an exact path ("/", "/users/"); elsewhere
        // ("//", or before "/*") it is almost surely a typo.
        if piece.is_empty() && (prefix || i != last) {
            return Err(format!("path {path:?} has an empty segment (\"//\")"));
        }
        if let Some(b) = piece.bytes().find(|&b| !is_path_byte(b)) {
            return Err(format!(
                "character {:?} is not allowed in a path (percent-encode it)",
                char::from(b)
            ));
        }
        segments.push(Segment::Static(piece.to_string()));
    }
    let params = segments
        .iter()
        .filter(|s| matches!(s, Segment::Param(_)))
        .count();
    if params > MAX_PARAMS {
        return Err(format!(
            "path has more than {MAX_PARAMS} {{param}} segments"
        ));
    }
    Ok(PathPattern { segments, prefix })
}

/// A parsed route host, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `api.example.com`, `10.0.0.1` or `[::1]`.
    Exact(String),
    /// `*.example.com`, kept as the suffix `.example.com` (the dot included).
    Wildcard(String),
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Parses a route host: a name, an IP literal (`[v6]` in brackets) or `*.suffix`; case-folded,
/// without port.
pub fn parse_host(host: &str) -> Result<HostPattern, String> {
    let lower = host.to_ascii_lowercase();
    if let Some(inner) = lower.strip_prefix('[') {
        let ok = inner
            .strip_suffix(']')
            .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok());
        return if ok {
            Ok(HostPattern::Exact(lower))
        } else {
            Err(format!("invalid IPv6 literal {host:?}"))
        };
    }
    if lower.contains(':') {
        return Err(format!(
            "host {host:?} must not contain a port (or write IPv6 as [addr])"
        ));
    }
    if let Some(suffix) = lower.strip_prefix("*.") {
        return if is_dns_name(suffix) {
            Ok(HostPattern::Wildcard(format!(".{suffix}")))
        } else {
            Err(format!("invalid wildcard host {host:?}"))
        };
    }
    if lower.contains('*') {
        return Err(format!(
            "host {host:?}: a wildcard is only allowed as a leading \"*.\""
        ));
    }
    if is_dns_name(&lower) {
        Ok(HostPattern::Exact(lower))
    } else {
        Err(format!(
            "invalid host {host:?} (letters, digits, '-', '_' and dots)"
        ))
    }
}

/// RFC 9110 `tchar`: what a method token may contain.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks a route method: an HTTP token written in upper case (methods are case-sensitive, and
/// every registered method is upper case, so `get` is a typo, not a different method).
pub fn check_method(method: &str) -> Result<(), String> {
    if method.is_empty() || method.len() > MAX_METHOD_LEN || !method.bytes().all(is_tchar) {
        return Err(format!("invalid method {method:?}"));
    }
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(format!(
            "method {method:?} must be upper case (\"{}\")",
            method.to_ascii_uppercase()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(s: &str) -> Segment {
        Segment::Static(s.to_string())
    }

    #[test]
    fn parses_exact_prefix_and_params() {
        let p = parse_path("/users/{id}/posts").unwrap();
        assert!(!p.prefix);
        assert_eq!(
            p.segments,
            vec![st("users"), Segment::Param("id".into()), st("posts")]
        );
        assert_eq!(p.shape_key(), "/users/{}/posts");
        let p = parse_path("/api/*").unwrap();
        assert!(p.prefix);
        assert_eq!(p.segments, vec![st("api")]);
        let p = parse_path("/*").unwrap();
        assert!(p.prefix && p.segments.is_empty());
        assert_eq!(p.shape_key(), "/*");
        assert_eq!(parse_path("/").unwrap().segments, vec![st("")]);
        assert_eq!(parse_path("/a/").unwrap().segments, vec![st("a"), st("")]);
        assert_eq!(
            parse_path("/a%20b/x").unwrap().segments,
            vec![st("a%20b"), st("x")]
        );
    }

    #[test]
    fn rejects_bad_paths() {
        for bad in [
            "",
            "users",
            "/a//b",
            "//",
            "/a//*",
            "/a/*/b",
            "/a*",
            "/*/*",
            "/a/x{id}",
            "/a/{id}x",
            "/a/{1d}",
            "/a/{}",
            "/a/{id}/{id}",
            "/a/{id}/*",
            "/a b",
            "/a?b",
            "/a#b",
        ] {
            assert!(parse_path(bad).is_err(), "{bad:?} should be rejected");
        }
        let nine = "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}";
        assert!(parse_path(nine).unwrap_err().contains("more than 8"));
        assert!(parse_path(&"/a".repeat(MAX_SEGMENTS + 1)).is_err());
    }

    #[test]
    fn hosts_are_lowercased_and_checked() {
        assert_eq!(
            parse_host("API.Example.com"),
            Ok(HostPattern::Exact("api.example.com".into()))
        );
        assert_eq!(
            parse_host("*.Example.com"),
            Ok(HostPattern::Wildcard(".example.com".into()))
        );
        assert_eq!(parse_host("[::1]"), Ok(HostPattern::Exact("[::1]".into())));
        assert_eq!(
            parse_host("10.0.0.1"),
            Ok(HostPattern::Exact("10.0.0.1".into()))
        );
        for bad in [
            "",
            "a.*.com",
            "*example.com",
            "*",
            "a..b",
            "a.com:80",
            "[zz]",
            "::1",
            "-a.com",
            "a b",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn methods_are_upper_case_tokens() {
        assert!(check_method("GET").is_ok());
        assert!(check_method("PROPFIND").is_ok());
        assert!(check_method("M-SEARCH").is_ok());
        assert!(check_method("get").unwrap_err().contains("\"GET\""));
        assert!(check_method("").is_err());
        assert!(check_method("GE T").is_err());
        assert!(check_method("GET/").is_err());
    }
}
