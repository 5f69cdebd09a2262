//! Request-target forms (RFC 9112 §3.2) and the uri-host[:port] syntax shared by Host and
//! absolute-form targets. httparse accepts any visible bytes and UTF-8 here; the gateway routes
//! on these bytes, so they are held to the grammar before anyone looks at them.

use super::types::{Method, Span};

/// A request-target split for routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TargetParts {
    /// Path (before '?'); empty for authority-form and for `http://host` without a path.
    pub path: Span,
    /// Query after '?', without it.
    pub query: Option<Span>,
    /// Authority of an absolute-form or authority-form (CONNECT) target; it replaces Host
    /// (RFC 9112 §3.2.2-3.2.3).
    pub authority: Option<Span>,
}

/// Splits and checks `target` (a span of `buf`) against the forms `method` may use.
pub(crate) fn parse_target(
    buf: &[u8],
    target: Span,
    method: Method,
) -> Result<TargetParts, &'static str> {
    let t = target.get(buf);
    // Visible ASCII only (no obs-text, no controls, no space); '#' starts a fragment, which
    // is never part of a request-target.
    if t.is_empty() || t.iter().any(|&b| !(0x21..=0x7e).contains(&b) || b == b'#') {
        return Err("bad_target");
    }
    let base = target.start as usize;
    if method == Method::Connect {
        // authority-form only, port required (RFC 9112 §3.2.3)
        if !valid_host(t, true) {
            return Err("bad_target");
        }
        return Ok(TargetParts {
            path: Span::new(base, 0),
            query: None,
            authority: Some(target),
        });
    }
    if t.first() == Some(&b'/') {
        return Ok(split_path(base, t, None));
    }
    if t == b"*" {
        if method != Method::Options {
            return Err("bad_target");
        }
        return Ok(split_path(base, t, None));
    }
    const HTTP: &[u8] = b"http://";
    match t.get(..HTTP.len()) {
        Some(scheme) if scheme.eq_ignore_ascii_case(HTTP) => {}
        _ => return Err("bad_target"),
    }
    let rest = t.get(HTTP.len()..).unwrap_or(&[]);
    let auth_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(auth_len);
    // RFC 9110 §4.2.1: an http URI has a non-empty host and no userinfo.
    if authority.is_empty() || !valid_host(authority, false) {
        return Err("bad_target");
    }
    let auth_start = base + HTTP.len();
    let start = auth_start + auth_len;
    Ok(split_path(
        start,
        path_and_query,
        Some(Span::new(auth_start, auth_len)),
    ))
}

fn split_path(base: usize, pq: &[u8], authority: Option<Span>) -> TargetParts {
    match pq.iter().position(|&b| b == b'?') {
        Some(q) => TargetParts {
            path: Span::new(base, q),
            query: Some(Span::new(base + q + 1, pq.len() - q - 1)),
            authority,
        },
        None => TargetParts {
            path: Span::new(base, pq.len()),
            query: None,
            authority,
        },
    }
}

/// uri-host [ ":" port ] (RFC 3986 §3.2.2-3.2.3), non-empty host. The port, when present, is
/// 1-65535; `require_port` is for CONNECT's authority-form.
pub(crate) fn valid_host(v: &[u8], require_port: bool) -> bool {
    let (host_ok, rest) = if v.first() == Some(&b'[') {
        match v.iter().position(|&b| b == b']') {
            Some(close) => {
                let inner = v.get(1..close).unwrap_or(&[]);
                let ok = !inner.is_empty()
                    && inner.contains(&b':')
                    && inner
                        .iter()
                        .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
                (ok, v.get(close + 1..).unwrap_or(&[]))
            }
            None => return false,
        }
    } else {
        let end = v.iter().position(|&b| b == b':').unwrap_or(v.len());
        let (host, rest) = v.split_at(end);
        (!host.is_empty() && valid_reg_name(host), rest)
    };
    if !host_ok {
        return false;
    }
    match rest.split_first() {
        None => !require_port,
        Some((b':', port)) => valid_port(port),
        Some(_) => false,
    }
}

/// reg-name (also covers IPv4address): unreserved / pct-encoded / sub-delims.
fn valid_reg_name(h: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = h.get(i) {
        if b == b'%' {
            let hex = |j: usize| h.get(j).is_some_and(|c| c.is_ascii_hexdigit());
            if !hex(i + 1) || !hex(i + 2) {
                return false;
            }
            i += 3;
            continue;
        }
        let ok = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

fn valid_port(p: &[u8]) -> bool {
    (1..=5).contains(&p.len())
        && p.iter().all(u8::is_ascii_digit)
        && super::fields::parse_digits(p).is_some_and(|n| (1..=65535).contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parts = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

    fn parts(t: &[u8], m: Method) -> Result<Parts, &'static str> {
        let p = parse_target(t, Span::new(0, t.len()), m)?;
        Ok((
            p.path.get(t).to_vec(),
            p.query.map(|q| q.get(t).to_vec()),
            p.authority.map(|a| a.get(t).to_vec()),
        ))
    }

    #[test]
    fn origin_form() {
        assert_eq!(
            parts(b"/a/b", Method::Get),
            Ok((b"/a/b".to_vec(), None, None))
        );
        assert_eq!(
            parts(b"/a?x=1&y", Method::Get),
            Ok((b"/a".to_vec(), Some(b"x=1&y".to_vec()), None))
        );
        assert_eq!(
            parts(b"/?", Method::Get),
            Ok((b"/".to_vec(), Some(vec![]), None))
        );
    }

    #[test]
    fn absolute_form() {
        assert_eq!(
            parts(b"http://ex.com:8080/p?q", Method::Get),
            Ok((
                b"/p".to_vec(),
                Some(b"q".to_vec()),
                Some(b"ex.com:8080".to_vec())
            ))
        );
        assert_eq!(
            parts(b"HTTP://ex.com", Method::Get),
            Ok((vec![], None, Some(b"ex.com".to_vec())))
        );
        assert_eq!(
            parts(b"http://ex.com?q", Method::Get),
            Ok((vec![], Some(b"q".to_vec()), Some(b"ex.com".to_vec())))
        );
        for bad in [
            &b"https://ex.com/"[..],
            b"ftp://ex.com/",
            b"http:///p",
            b"http://u@ex.com/",
            b"http://ex.com:99999/",
            b"http:/ex.com",
            b"ex.com/p",
        ] {
            assert_eq!(parts(bad, Method::Get), Err("bad_target"), "{:?}", bad);
        }
    }

    #[test]
    fn asterisk_and_authority_forms() {
        assert_eq!(
            parts(b"*", Method::Options),
            Ok((b"*".to_vec(), None, None))
        );
        assert_eq!(parts(b"*", Method::Get), Err("bad_target"));
        assert_eq!(
            parts(b"ex.com:443", Method::Connect),
            Ok((vec![], None, Some(b"ex.com:443".to_vec())))
        );
        assert_eq!(parts(b"ex.com", Method::Connect), Err("bad_target"));
        assert_eq!(parts(b"/p", Method::Connect), Err("bad_target"));
    }

    #[test]
    fn target_bytes() {
        assert_eq!(parts(b"/a#frag", Method::Get), Err("bad_target"));
        assert_eq!(parts("/é".as_bytes(), Method::Get), Err("bad_target"));
        assert_eq!(parts(b"", Method::Get), Err("bad_target"));
    }

    #[test]
    fn hosts() {
        for ok in [
            &b"example.com"[..],
            b"example.com:80",
            b"127.0.0.1:65535",
            b"[::1]",
            b"[2001:db8::1]:8443",
            b"a-b_c~d%41",
            b"x:1",
        ] {
            assert!(valid_host(ok, false), "{:?}", ok);
        }
        for bad in [
            &b""[..],
            b"a b",
            b"a/b",
            b"u@h",
            b"h:",
            b"h:0",
            b"h:65536",
            b"h:123456",
            b"h:8a",
            b":80",
            b"[::1",
            b"[]",
            b"[::1]x",
            b"h%4",
            b"h%zz",
            b"h\"",
        ] {
            assert!(!valid_host(bad, false), "{:?}", bad);
        }
        assert!(valid_host(b"h:1", true));
        assert!(!valid_host(b"h", true));
    }
}
