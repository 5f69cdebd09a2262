//! Rewriting heads on their way through: the request head for the upstream and the response
//! head for the client. Both are written straight into pooled buffers, without allocation.
//!
//! Upstream requests are HTTP/1.1 (HTTP/1.0 for 1.0 clients, so the upstream never answers
//! a 1.0 client with chunked coding), keep the client's Host, drop hop-by-hop fields, keep
//! `Transfer-Encoding: chunked` (chunked bodies pass through verbatim), and carry
//! `X-Forwarded-For` (appended), `X-Real-IP`, `X-Forwarded-Proto` and `X-Request-Id`.

use business::{Context, HeaderBuf};
use bytes::{BufMut, BytesMut};
use protocols::error::{fmt_u64, reason};
use protocols::http1::{BodyKind, HeaderKind, RequestHead, ResponseHead};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};

/// Formats an IP address into a stack buffer.
pub fn fmt_ip(ip: IpAddr, tmp: &mut [u8; 48]) -> &[u8] {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match ip {
        // The common case, written digit by digit: the formatting machinery costs more than
        // the rest of the head rewrite.
        IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    tmp[n] = b'.';
                    n += 1;
                }
                let mut digits = [0u8; 20];
                let d = protocols::error::fmt_u64(*octet as u64, &mut digits);
                tmp[n..n + d.len()].copy_from_slice(d);
                n += d.len();
            }
            &tmp[..n]
        }
        IpAddr::V6(_) => {
            let mut cur = std::io::Cursor::new(&mut tmp[..]);
            let _ = write!(cur, "{ip}");
            let n = cur.position() as usize;
            &tmp[..n]
        }
    }
}

/// What the request head writer needs besides the parsed head.
pub struct RequestRewrite<'a> {
    /// The path to send instead of the original (strip_prefix), or None to keep it.
    pub path: Option<&'a [u8]>,
    /// The client address the stages settled on (a trusted proxy's X-Forwarded-For entry, or
    /// the peer): sent as `X-Real-IP`.
    pub client_ip: IpAddr,
    /// The socket peer: the hop appended to `X-Forwarded-For`.
    pub peer: IpAddr,
    pub proto: &'a [u8],
    pub request_id: &'a [u8],
    /// Used as Host when the client sent none (HTTP/1.0).
    pub upstream_addr: SocketAddr,
    /// Fields the pipeline adds (they replace client fields of the same name, so a client
    /// cannot forge an identity header an auth module sets).
    pub extra: &'a HeaderBuf,
    /// Client fields to drop.
    pub remove: &'a HeaderBuf,
    /// The body goes upstream rewritten (a body codec): its framing fields are replaced by
    /// `Content-Length` of this many bytes.
    pub body_len: Option<usize>,
    /// A checked WebSocket upgrade: `Connection: Upgrade` and `Upgrade: websocket` go on (the
    /// only hop-by-hop fields ever forwarded; docs/websocket.md).
    pub websocket: bool,
}

/// Fields the gateway sets itself; the client's copies are dropped (X-Forwarded-For is
/// appended to instead).
fn replaced_in_request(kind: HeaderKind) -> bool {
    matches!(
        kind,
        HeaderKind::XForwardedFor
            | HeaderKind::XRealIp
            | HeaderKind::XForwardedProto
            | HeaderKind::XRequestId
    )
}

pub fn write_request_head(out: &mut BytesMut, buf: &[u8], head: &RequestHead, rw: &RequestRewrite) {
    out.put_slice(head.method_span.get(buf));
    out.put_u8(b' ');
    match rw.path {
        Some(p) => out.put_slice(p),
        None => out.put_slice(head.path.get(buf)),
    }
    if let Some(q) = head.query {
        out.put_u8(b'?');
        out.put_slice(q.get(buf));
    }
    if head.minor_version == 0 {
        out.put_slice(b" HTTP/1.0\r\nConnection: keep-alive\r\n");
    } else {
        out.put_slice(b" HTTP/1.1\r\n");
    }
    let mut xff_seen = false;
    for h in head.headers() {
        if h.kind == HeaderKind::XForwardedFor {
            // Earlier proxies' hops, kept in order before ours.
            if !xff_seen {
                out.put_slice(b"X-Forwarded-For: ");
                xff_seen = true;
            } else {
                out.put_slice(b", ");
            }
            out.put_slice(h.value.get(buf));
        }
    }
    if xff_seen {
        out.put_slice(b", ");
    } else {
        out.put_slice(b"X-Forwarded-For: ");
    }
    let mut tmp = [0u8; 48];
    out.put_slice(fmt_ip(rw.peer, &mut tmp));
    out.put_slice(b"\r\nX-Real-IP: ");
    out.put_slice(fmt_ip(rw.client_ip, &mut tmp));
    out.put_slice(b"\r\nX-Forwarded-Proto: ");
    out.put_slice(rw.proto);
    out.put_slice(b"\r\nX-Request-Id: ");
    out.put_slice(rw.request_id);
    out.put_slice(b"\r\n");
    // An absolute-form target names the host the request was routed by; the Host field is
    // replaced by it (RFC 9112 §3.2.2) so the upstream sees the same host the route matched.
    let host_field = head.find(HeaderKind::Host).map(|h| h.value);
    let target_host = head.host.filter(|h| host_field != Some(*h));
    if let Some(h) = target_host {
        out.put_slice(b"Host: ");
        out.put_slice(h.get(buf));
        out.put_slice(b"\r\n");
    }
    for h in head.headers() {
        if (rw.body_len.is_some()
            && matches!(
                h.kind,
                HeaderKind::ContentLength | HeaderKind::TransferEncoding
            ))
            || h.hop_by_hop
            || replaced_in_request(h.kind)
            || (target_host.is_some() && h.kind == HeaderKind::Host)
        {
            continue;
        }
        let name = h.name.get(buf);
        if (!rw.extra.is_empty() && rw.extra.contains(name))
            || (!rw.remove.is_empty() && rw.remove.contains(name))
        {
            continue;
        }
        out.put_slice(name);
        out.put_slice(b": ");
        out.put_slice(h.value.get(buf));
        out.put_slice(b"\r\n");
    }
    for (n, v) in rw.extra.iter() {
        out.put_slice(n);
        out.put_slice(b": ");
        out.put_slice(v);
        out.put_slice(b"\r\n");
    }
    if let Some(n) = rw.body_len {
        out.put_slice(b"Content-Length: ");
        let mut tmp = [0u8; 20];
        out.put_slice(fmt_u64(n as u64, &mut tmp));
        out.put_slice(b"\r\n");
    } else if head.body == BodyKind::Chunked {
        out.put_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if rw.websocket {
        out.put_slice(b"Connection: Upgrade\r\nUpgrade: websocket\r\n");
    }
    if head.host.is_none() {
        let mut tmp = [0u8; 64];
        let mut cur = std::io::Cursor::new(&mut tmp[..]);
        let _ = write!(cur, "{}", rw.upstream_addr);
        let n = cur.position() as usize;
        out.put_slice(b"Host: ");
        out.put_slice(&tmp[..n]);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
}

/// How the client connection continues after a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientConn {
    KeepAlive,
    /// HTTP/1.0 keep-alive must be announced.
    KeepAlive10,
    Close,
}

/// With `sealed`, the framing fields and `Content-Type` are left out, and so is the blank line
/// that ends the head: the sealing code adds its own and the body.
pub fn write_response_head(
    out: &mut BytesMut,
    buf: &[u8],
    head: &ResponseHead,
    ctx: &Context,
    conn: ClientConn,
    sealed: bool,
) {
    let request_id = ctx.request_id();
    out.put_slice(b"HTTP/1.1 ");
    let mut tmp = [0u8; 20];
    out.put_slice(fmt_u64(head.status as u64, &mut tmp));
    out.put_u8(b' ');
    let r = head.reason.get(buf);
    if r.is_empty() {
        out.put_slice(reason(head.status).as_bytes());
    } else {
        out.put_slice(r);
    }
    out.put_slice(b"\r\n");
    for h in head.headers() {
        if h.kind == HeaderKind::XRequestId
            || (h.hop_by_hop && h.kind != HeaderKind::TransferEncoding)
        {
            continue;
        }
        let name = h.name.get(buf);
        if !ctx.response_remove.is_empty() && ctx.response_remove.contains(name) {
            continue;
        }
        if sealed
            && matches!(
                h.kind,
                HeaderKind::ContentLength | HeaderKind::TransferEncoding | HeaderKind::ContentType
            )
        {
            continue;
        }
        out.put_slice(name);
        out.put_slice(b": ");
        out.put_slice(h.value.get(buf));
        out.put_slice(b"\r\n");
    }
    if head.status >= 200 {
        for (n, v) in ctx.response_headers.iter() {
            out.put_slice(n);
            out.put_slice(b": ");
            out.put_slice(v);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"X-Request-Id: ");
        out.put_slice(request_id);
        out.put_slice(b"\r\n");
        match conn {
            ClientConn::KeepAlive => {}
            ClientConn::KeepAlive10 => out.put_slice(b"Connection: keep-alive\r\n"),
            ClientConn::Close => out.put_slice(b"Connection: close\r\n"),
        }
    }
    if !sealed {
        out.put_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocols::http1::{parse_request, parse_response, Limits, Method, Parsed};

    #[test]
    fn request_head_is_rewritten() {
        let raw =
            b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n\
X-Forwarded-For: 10.0.0.1\r\nX-Request-Id: bad id\r\nAccept: */*\r\n\r\n";
        let mut head = RequestHead::new();
        assert!(matches!(
            parse_request(raw, &Limits::default(), &mut head),
            Ok(Parsed::Complete)
        ));
        let mut out = BytesMut::new();
        let rw = RequestRewrite {
            path: None,
            client_ip: "127.0.0.2".parse().unwrap(),
            peer: "127.0.0.2".parse().unwrap(),
            proto: b"http",
            request_id: b"rid",
            upstream_addr: "127.0.0.1:9".parse().unwrap(),
            extra: &HeaderBuf::new(),
            remove: &HeaderBuf::new(),
            body_len: None,
            websocket: false,
        };
        write_request_head(&mut out, raw, &head, &rw);
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            text,
            "GET /a?b=1 HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1, 127.0.0.2\r\nX-Real-IP: 127.0.0.2\r\n\
X-Forwarded-Proto: http\r\nX-Request-Id: rid\r\nHost: x\r\nAccept: */*\r\n\r\n"
        );
    }

    #[test]
    fn response_head_is_rewritten() {
        let raw = b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\nX-Request-Id: theirs\r\n\r\nok";
        let mut head = ResponseHead::new();
        assert!(matches!(
            parse_response(raw, &Limits::default(), Method::Get, &mut head),
            Ok(Parsed::Complete)
        ));
        let mut out = BytesMut::new();
        let mut ctx = Context::new();
        assert!(ctx.adopt_request_id(b"ours"));
        write_response_head(&mut out, raw, &head, &ctx, ClientConn::Close, false);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Request-Id: ours\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn mapped_addresses_print_as_ipv4() {
        let mut tmp = [0u8; 48];
        assert_eq!(
            fmt_ip("::ffff:1.2.3.4".parse().unwrap(), &mut tmp),
            b"1.2.3.4"
        );
        for a in ["0.0.0.0", "255.255.255.255", "10.0.100.7", "2001:db8::1"] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(fmt_ip(ip, &mut tmp), a.as_bytes());
        }
    }
}
