//! The header walk shared by requests and responses: turns httparse's fields into spans in the
//! head's fixed list, classifies them, and gathers the facts that decide framing and connection
//! handling (Content-Length, Transfer-Encoding, Connection options, Host, Expect, Upgrade).
//! Conflicts are reported as reason codes; request and response parsing turn them into their
//! own error kinds and apply their own precedence rules.

use super::header::{is_tchar, is_token, list_elements, Header, HeaderKind, HeaderList};
use super::target::valid_host;
use super::types::Span;

/// Connection options naming non-standard fields are kept in a fixed array so marking those
/// fields hop-by-hop costs at most `headers x options` comparisons. Real clients name one or
/// two; more than this is refused rather than letting a head buy quadratic work.
pub const MAX_CONNECTION_OPTIONS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Request,
    Response,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldError {
    Bad(&'static str),
    TooManyHeaders,
}

/// What the Transfer-Encoding fields (all of them, in order) amount to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TeFacts {
    pub present: bool,
    /// `chunked` is the last coding and appears once.
    pub chunked_last: bool,
    /// Some coding other than `chunked` appears.
    pub unknown: bool,
    /// Malformed list, `chunked` not last, or `chunked` twice.
    pub bad: Option<&'static str>,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Facts {
    pub content_length: Option<u64>,
    pub te: TeFacts,
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade_option: bool,
    pub upgrade: Option<Span>,
    pub host: Option<Span>,
    pub expect_continue: bool,
}

/// Walks httparse's fields (which point into `buf`), fills `list` and returns the facts.
pub(crate) fn collect(
    buf: &[u8],
    raw: &[httparse::Header<'_>],
    list: &mut HeaderList,
    role: Role,
) -> Result<Facts, FieldError> {
    let mut facts = Facts::default();
    let mut options = [Span::default(); MAX_CONNECTION_OPTIONS];
    let mut n_options = 0;
    list.clear();
    for h in raw {
        let name = span_in(buf, h.name.as_bytes());
        let value = span_in(buf, h.value);
        let kind = HeaderKind::classify(h.name.as_bytes());
        let v = h.value;
        match kind {
            HeaderKind::ContentLength => content_length(&mut facts, v, role)?,
            HeaderKind::TransferEncoding => transfer_encoding(&mut facts.te, v),
            HeaderKind::Connection => {
                for (s, e) in list_elements(v) {
                    let opt = v.get(s..e).unwrap_or(&[]);
                    if opt.is_empty() {
                        continue; // RFC 9110 §5.6.1: empty list elements are ignored
                    }
                    if !is_token(opt) {
                        return Err(FieldError::Bad("bad_connection"));
                    }
                    if opt.eq_ignore_ascii_case(b"close") {
                        facts.close = true;
                    } else if opt.eq_ignore_ascii_case(b"keep-alive") {
                        facts.keep_alive = true;
                    } else if opt.eq_ignore_ascii_case(b"upgrade") {
                        facts.upgrade_option = true;
                    } else if needs_marking(HeaderKind::classify(opt)) {
                        let slot = options
                            .get_mut(n_options)
                            .ok_or(FieldError::Bad("too_many_connection_options"))?;
                        *slot = Span::new(value.start as usize + s, e - s);
                        n_options += 1;
                    }
                }
            }
            HeaderKind::Host if role == Role::Request => {
                if facts.host.is_some() {
                    return Err(FieldError::Bad("duplicate_host"));
                }
                // RFC 9112 §3.2: empty is what a client sends when the target has no
                // authority, so it is valid; anything else must be uri-host[:port].
                if !v.is_empty() && !valid_host(v, false) {
                    return Err(FieldError::Bad("bad_host"));
                }
                facts.host = Some(value);
            }
            HeaderKind::Expect if v.eq_ignore_ascii_case(b"100-continue") => {
                facts.expect_continue = true;
            }
            HeaderKind::Upgrade if facts.upgrade.is_none() => facts.upgrade = Some(value),
            _ => {}
        }
        let pushed = list.push(Header {
            name,
            value,
            kind,
            hop_by_hop: kind.is_standard_hop_by_hop(),
        });
        if !pushed {
            return Err(FieldError::TooManyHeaders);
        }
    }
    if n_options > 0 {
        let options = options.get(..n_options).unwrap_or(&[]);
        for h in list.as_mut_slice() {
            if !h.hop_by_hop && needs_marking(h.kind) {
                let name = h.name.get(buf);
                h.hop_by_hop = options
                    .iter()
                    .any(|o| o.get(buf).eq_ignore_ascii_case(name));
            }
        }
    }
    Ok(facts)
}

/// Whether a field named as a Connection option must be marked hop-by-hop by name. Standard
/// hop-by-hop fields already are; Host and Content-Length never are, so a client cannot make
/// the proxy drop the fields that route and frame the message.
fn needs_marking(kind: HeaderKind) -> bool {
    !kind.is_standard_hop_by_hop() && !matches!(kind, HeaderKind::Host | HeaderKind::ContentLength)
}

/// Span of `sub`, a sub-slice of `buf` (httparse hands out sub-slices). Computed from the
/// addresses; a slice not inside `buf` cannot happen and yields an empty span rather than a
/// wrong one.
pub(crate) fn span_in(buf: &[u8], sub: &[u8]) -> Span {
    let base = buf.as_ptr() as usize;
    let at = (sub.as_ptr() as usize).wrapping_sub(base);
    match at.checked_add(sub.len()) {
        Some(end) if end <= buf.len() => Span::new(at, sub.len()),
        _ => Span::default(),
    }
}

/// RFC 9112 §6.3 and RFC 9110 §8.6. Requests: exactly one field of 1*DIGIT (any duplicate,
/// even equal, is refused: a proxy must not guess). Responses: identical duplicates and lists
/// of identical values are accepted, as the RFC allows a recipient to do.
fn content_length(facts: &mut Facts, v: &[u8], role: Role) -> Result<(), FieldError> {
    let mut value = None;
    if role == Role::Request {
        if facts.content_length.is_some() {
            return Err(FieldError::Bad("duplicate_content_length"));
        }
        value = Some(parse_digits(v).ok_or(FieldError::Bad("bad_content_length"))?);
    } else {
        for (s, e) in list_elements(v) {
            let n = parse_digits(v.get(s..e).unwrap_or(&[]))
                .ok_or(FieldError::Bad("bad_content_length"))?;
            if value.is_some_and(|prev| prev != n) {
                return Err(FieldError::Bad("conflicting_content_length"));
            }
            value = Some(n);
        }
    }
    match (facts.content_length, value) {
        (Some(prev), Some(n)) if prev != n => Err(FieldError::Bad("conflicting_content_length")),
        (_, v) => {
            facts.content_length = v;
            Ok(())
        }
    }
}

/// 1*DIGIT into a u64; None for empty, any other byte, or overflow.
pub(crate) fn parse_digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Folds one Transfer-Encoding field into the facts. Codings are case-insensitive tokens with
/// optional parameters; `chunked` takes none and must be last and once (RFC 9112 §6.1, §7).
fn transfer_encoding(te: &mut TeFacts, v: &[u8]) {
    te.present = true;
    for (s, e) in list_elements(v) {
        let coding = v.get(s..e).unwrap_or(&[]);
        if te.chunked_last {
            // Anything after chunked means chunked is not the final coding.
            te.chunked_last = false;
            te.bad.get_or_insert("chunked_not_last");
        }
        let name_len = coding
            .iter()
            .position(|&b| !is_tchar(b))
            .unwrap_or(coding.len());
        let (name, rest) = coding.split_at(name_len);
        if name.is_empty() {
            te.bad.get_or_insert("bad_transfer_encoding");
        } else if name.eq_ignore_ascii_case(b"chunked") {
            if !rest.is_empty() {
                te.bad.get_or_insert("bad_transfer_encoding");
            } else if te.bad == Some("chunked_not_last") {
                // chunked seen before: applied twice
                te.bad = Some("chunked_twice");
            } else {
                te.chunked_last = true;
            }
        } else if !rest.is_empty() && !matches!(rest.first(), Some(b';' | b' ' | b'\t')) {
            te.bad.get_or_insert("bad_transfer_encoding");
        } else {
            te.unknown = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn te(values: &[&[u8]]) -> TeFacts {
        let mut t = TeFacts::default();
        for v in values {
            transfer_encoding(&mut t, v);
        }
        t
    }

    #[test]
    fn transfer_encoding_lists() {
        let ok = te(&[b"chunked"]);
        assert!(ok.chunked_last && !ok.unknown && ok.bad.is_none());
        let ok = te(&[b"ChUnKeD"]);
        assert!(ok.chunked_last);
        let g = te(&[b"gzip, chunked"]);
        assert!(g.chunked_last && g.unknown && g.bad.is_none());
        let g = te(&[b"gzip", b"chunked"]);
        assert!(g.chunked_last && g.unknown && g.bad.is_none());
        assert_eq!(te(&[b"chunked, gzip"]).bad, Some("chunked_not_last"));
        assert_eq!(te(&[b"chunked", b"gzip"]).bad, Some("chunked_not_last"));
        assert_eq!(te(&[b"chunked, chunked"]).bad, Some("chunked_twice"));
        assert_eq!(te(&[b"chunked;a=b"]).bad, Some("bad_transfer_encoding"));
        assert_eq!(te(&[b""]).bad, Some("bad_transfer_encoding"));
        assert_eq!(te(&[b"gzip,,chunked"]).bad, Some("bad_transfer_encoding"));
        assert_eq!(te(&[b"\"x\""]).bad, Some("bad_transfer_encoding"));
        let p = te(&[b"gzip;q=1"]);
        assert!(p.unknown && p.bad.is_none() && !p.chunked_last);
    }

    #[test]
    fn digits() {
        assert_eq!(parse_digits(b"0"), Some(0));
        assert_eq!(parse_digits(b"00042"), Some(42));
        assert_eq!(parse_digits(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_digits(b"18446744073709551616"), None);
        for bad in [&b""[..], b"+1", b"-1", b"1 ", b"0x1", b"1,1"] {
            assert_eq!(parse_digits(bad), None, "{:?}", bad);
        }
    }
}
