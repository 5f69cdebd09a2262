//! Header fields as parsed: spans, a cheap classification of well-known names, the fixed-size
//! list that heads embed (no allocation), and the small lexical helpers (tokens, lists) that
//! the framing rules share.

use super::types::{Span, MAX_HEADERS_CAP};

/// Well-known header names the gateway acts on. Everything else is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderKind {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Trailer,
    Upgrade,
    ProxyAuthorization,
    ProxyAuthenticate,
    XForwardedFor,
    XForwardedProto,
    XRealIp,
    XRequestId,
    Expect,
    Cookie,
    Authorization,
    ContentType,
    Date,
    SecWebSocketKey,
    SecWebSocketVersion,
    SecWebSocketAccept,
}

impl HeaderKind {
    /// Classifies a field name, ASCII case-insensitively. Runs for every field of every
    /// message, so it dispatches on the length first and compares at most a few candidates.
    pub fn classify(name: &[u8]) -> HeaderKind {
        let is = |lit: &[u8]| name.eq_ignore_ascii_case(lit);
        match name.len() {
            2 if is(b"te") => HeaderKind::Te,
            4 if is(b"host") => HeaderKind::Host,
            4 if is(b"date") => HeaderKind::Date,
            6 if is(b"expect") => HeaderKind::Expect,
            6 if is(b"cookie") => HeaderKind::Cookie,
            7 if is(b"upgrade") => HeaderKind::Upgrade,
            7 if is(b"trailer") => HeaderKind::Trailer,
            9 if is(b"x-real-ip") => HeaderKind::XRealIp,
            10 if is(b"connection") => HeaderKind::Connection,
            10 if is(b"keep-alive") => HeaderKind::KeepAlive,
            12 if is(b"content-type") => HeaderKind::ContentType,
            12 if is(b"x-request-id") => HeaderKind::XRequestId,
            13 if is(b"authorization") => HeaderKind::Authorization,
            14 if is(b"content-length") => HeaderKind::ContentLength,
            15 if is(b"x-forwarded-for") => HeaderKind::XForwardedFor,
            16 if is(b"proxy-connection") => HeaderKind::ProxyConnection,
            17 if is(b"transfer-encoding") => HeaderKind::TransferEncoding,
            17 if is(b"x-forwarded-proto") => HeaderKind::XForwardedProto,
            17 if is(b"sec-websocket-key") => HeaderKind::SecWebSocketKey,
            18 if is(b"proxy-authenticate") => HeaderKind::ProxyAuthenticate,
            19 if is(b"proxy-authorization") => HeaderKind::ProxyAuthorization,
            20 if is(b"sec-websocket-accept") => HeaderKind::SecWebSocketAccept,
            21 if is(b"sec-websocket-version") => HeaderKind::SecWebSocketVersion,
            _ => HeaderKind::Other,
        }
    }

    /// The fields a proxy never forwards (RFC 9110 §7.6.1 plus the historical RFC 2616 list).
    pub fn is_standard_hop_by_hop(self) -> bool {
        matches!(
            self,
            HeaderKind::Connection
                | HeaderKind::KeepAlive
                | HeaderKind::ProxyConnection
                | HeaderKind::Te
                | HeaderKind::Trailer
                | HeaderKind::TransferEncoding
                | HeaderKind::Upgrade
                | HeaderKind::ProxyAuthorization
                | HeaderKind::ProxyAuthenticate
        )
    }
}

/// One header field: name and value (without surrounding whitespace) as spans into the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: Span,
    pub value: Span,
    pub kind: HeaderKind,
    /// Not to be forwarded: a standard hop-by-hop name, or a name listed in `Connection`.
    pub hop_by_hop: bool,
}

impl Header {
    const EMPTY: Header = Header {
        name: Span { start: 0, len: 0 },
        value: Span { start: 0, len: 0 },
        kind: HeaderKind::Other,
        hop_by_hop: false,
    };
}

/// Fixed-capacity header storage embedded in the heads, reused from message to message.
#[derive(Clone)]
pub(crate) struct HeaderList {
    items: [Header; MAX_HEADERS_CAP],
    len: usize,
}

impl HeaderList {
    pub(crate) fn new() -> Self {
        HeaderList {
            items: [Header::EMPTY; MAX_HEADERS_CAP],
            len: 0,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends; false when full (the parser never offers more than `MAX_HEADERS_CAP`).
    pub(crate) fn push(&mut self, h: Header) -> bool {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = h;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    pub(crate) fn as_slice(&self) -> &[Header] {
        self.items.get(..self.len).unwrap_or(&[])
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [Header] {
        self.items.get_mut(..self.len).unwrap_or(&mut [])
    }

    pub(crate) fn find(&self, kind: HeaderKind) -> Option<&Header> {
        self.as_slice().iter().find(|h| h.kind == kind)
    }

    pub(crate) fn find_name(&self, buf: &[u8], name: &[u8]) -> Option<&Header> {
        self.as_slice()
            .iter()
            .find(|h| h.name.get(buf).eq_ignore_ascii_case(name))
    }
}

/// `tchar` of RFC 9110 §5.6.2.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Elements of a comma-separated field value (RFC 9110 §5.6.1), as `(start, end)` offsets into
/// the value with optional whitespace trimmed. Empty elements are yielded too: each caller
/// decides whether they are harmless (Connection) or suspicious (Transfer-Encoding).
pub(crate) struct ListElements<'a> {
    value: &'a [u8],
    pos: usize,
    done: bool,
}

pub(crate) fn list_elements(value: &[u8]) -> ListElements<'_> {
    ListElements {
        value,
        pos: 0,
        done: false,
    }
}

impl Iterator for ListElements<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.done {
            return None;
        }
        let rest = self.value.get(self.pos..).unwrap_or(&[]);
        let (mut start, mut end) = match rest.iter().position(|&b| b == b',') {
            Some(i) => {
                let r = (self.pos, self.pos + i);
                self.pos += i + 1;
                r
            }
            None => {
                self.done = true;
                (self.pos, self.value.len())
            }
        };
        let ows = |b: Option<&u8>| matches!(b, Some(b' ') | Some(b'\t'));
        while start < end && ows(self.value.get(start)) {
            start += 1;
        }
        while end > start && ows(self.value.get(end - 1)) {
            end -= 1;
        }
        Some((start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_every_kind_case_insensitively() {
        let cases: &[(&[u8], HeaderKind)] = &[
            (b"Host", HeaderKind::Host),
            (b"CONTENT-LENGTH", HeaderKind::ContentLength),
            (b"transfer-encoding", HeaderKind::TransferEncoding),
            (b"Connection", HeaderKind::Connection),
            (b"Keep-Alive", HeaderKind::KeepAlive),
            (b"Proxy-Connection", HeaderKind::ProxyConnection),
            (b"TE", HeaderKind::Te),
            (b"Trailer", HeaderKind::Trailer),
            (b"Upgrade", HeaderKind::Upgrade),
            (b"Proxy-Authorization", HeaderKind::ProxyAuthorization),
            (b"Proxy-Authenticate", HeaderKind::ProxyAuthenticate),
            (b"X-Forwarded-For", HeaderKind::XForwardedFor),
            (b"X-Forwarded-Proto", HeaderKind::XForwardedProto),
            (b"X-Real-IP", HeaderKind::XRealIp),
            (b"X-Request-Id", HeaderKind::XRequestId),
            (b"Expect", HeaderKind::Expect),
            (b"Cookie", HeaderKind::Cookie),
            (b"Authorization", HeaderKind::Authorization),
            (b"Content-Type", HeaderKind::ContentType),
            (b"Date", HeaderKind::Date),
            (b"Sec-WebSocket-Key", HeaderKind::SecWebSocketKey),
            (b"Sec-WebSocket-Version", HeaderKind::SecWebSocketVersion),
            (b"Sec-WebSocket-Accept", HeaderKind::SecWebSocketAccept),
            (b"X-Other", HeaderKind::Other),
            (b"Hostx", HeaderKind::Other),
            (b"Hos", HeaderKind::Other),
            (b"", HeaderKind::Other),
        ];
        for (name, kind) in cases {
            assert_eq!(HeaderKind::classify(name), *kind, "{:?}", name);
        }
    }

    #[test]
    fn hop_by_hop_kinds() {
        assert!(HeaderKind::Connection.is_standard_hop_by_hop());
        assert!(HeaderKind::TransferEncoding.is_standard_hop_by_hop());
        assert!(HeaderKind::ProxyAuthorization.is_standard_hop_by_hop());
        assert!(!HeaderKind::Host.is_standard_hop_by_hop());
        assert!(!HeaderKind::ContentLength.is_standard_hop_by_hop());
        assert!(!HeaderKind::Other.is_standard_hop_by_hop());
    }

    #[test]
    fn list_elements_trim_and_keep_empties() {
        let v = b" a ,b,\t, c\t";
        let got: Vec<&[u8]> = list_elements(v).map(|(s, e)| &v[s..e]).collect();
        assert_eq!(got, vec![&b"a"[..], b"b", b"", b"c"]);
        let got: Vec<(usize, usize)> = list_elements(b"").collect();
        assert_eq!(got, vec![(0, 0)]);
    }

    #[test]
    fn header_list_is_bounded() {
        let mut l = HeaderList::new();
        for _ in 0..MAX_HEADERS_CAP {
            assert!(l.push(Header::EMPTY));
        }
        assert!(!l.push(Header::EMPTY));
        assert_eq!(l.as_slice().len(), MAX_HEADERS_CAP);
        l.clear();
        assert!(l.as_slice().is_empty());
    }

    #[test]
    fn tokens() {
        assert!(is_token(b"keep-alive"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a\"b"));
    }
}
