//! The HTTP side of a WebSocket upgrade: checking the client's request before the pipeline
//! runs, and the upstream's 101 before a tunnel opens.
//!
//! Only a request whose `Connection` names `upgrade` and whose `Upgrade` names `websocket`
//! is an upgrade (RFC 9110 §7.8); other `Upgrade` values are dropped as hop-by-hop fields and
//! the request goes on as plain HTTP. A 101 opens a tunnel only when it proves the upstream
//! read this request's key (`Sec-WebSocket-Accept`, RFC 6455 §4.2.2); anything else the
//! upstream says is relayed as a normal answer, and a 101 that fails the check is a 502.

use super::WsState;
use crate::http::{Env, Step};
use crate::session::{Phase, RespPhase, Session};
use bytes::BufMut;
use protocols::error::ErrorKind;
use protocols::http1::{BodyKind, HeaderKind, Method, RequestHead};
use protocols::websocket::{accept_matches, key_is_valid, FrameTracker, Sender};

/// Whether a comma-separated field value lists `token` (ASCII case-insensitively, a
/// protocol version suffix such as `websocket/13` not counted as a match).
fn lists_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Checks a request for a WebSocket upgrade. Not an upgrade: `Ok` and nothing stored.
/// A good one: its key is kept in `ws` for the check of the upstream's answer. A bad one:
/// the answer to give (400; for a version other than 13 with `Sec-WebSocket-Version: 13`).
pub(crate) fn check_request(
    ws: &mut WsState,
    head: &RequestHead,
    buf: &[u8],
) -> Result<(), ErrorKind> {
    ws.key = None;
    let Some(upgrade) = head.upgrade else {
        return Ok(());
    };
    if !lists_token(upgrade.get(buf), b"websocket") {
        return Ok(());
    }
    if head.method != Method::Get {
        return Err(ErrorKind::BadRequest("websocket_method_not_get"));
    }
    if !matches!(head.body, BodyKind::None | BodyKind::Length(0)) {
        return Err(ErrorKind::BadRequest("websocket_request_body"));
    }
    let key = head
        .find(HeaderKind::SecWebSocketKey)
        .map(|h| h.value.get(buf))
        .filter(|k| key_is_valid(k))
        .ok_or(ErrorKind::BadRequest("websocket_key"))?;
    match head.find(HeaderKind::SecWebSocketVersion) {
        None => return Err(ErrorKind::BadRequest("websocket_version_missing")),
        Some(v) if v.value.get(buf).trim_ascii() != b"13" => {
            return Err(ErrorKind::UnsupportedWebSocketVersion)
        }
        Some(_) => {}
    }
    let mut k = [0u8; 24];
    k.copy_from_slice(key);
    ws.key = Some(k);
    Ok(())
}

/// The upstream answered 101 (its head is in `env.resp_head`, at the front of `uin`).
/// `Err` when it is not a valid WebSocket acceptance of this request: the caller answers
/// 502. `Ok`: the 101 went to the client and the session is a tunnel.
pub(crate) fn open(s: &mut Session, env: &mut Env) -> Result<Step, ()> {
    let Some(ex) = s.ex.as_mut() else {
        return Err(());
    };
    let Some(key) = ex.ws.key else {
        return Err(());
    };
    let Some(uin) = ex.uin.as_mut() else {
        return Err(());
    };
    let head = &*env.resp_head;
    let upgraded = head
        .upgrade
        .is_some_and(|u| lists_token(u.get(uin), b"websocket"));
    let accepted = head
        .find(HeaderKind::SecWebSocketAccept)
        .is_some_and(|h| accept_matches(&key, h.value.get(uin)));
    if !upgraded || !accepted {
        return Err(());
    }
    // An extension (permessage-deflate) gives RSV bits a meaning the gateway cannot check;
    // without one, any RSV bit is a protocol violation.
    let rsv_allowed = if head.find_name(uin, b"sec-websocket-extensions").is_some() {
        0x70
    } else {
        0
    };
    let cout = s.cout.get_or_insert_with(|| env.bufs.checkout());
    cout.put_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    for h in head.headers() {
        if h.hop_by_hop || h.kind == HeaderKind::XRequestId {
            continue;
        }
        let name = h.name.get(uin);
        if !ex.ctx.response_remove.is_empty() && ex.ctx.response_remove.contains(name) {
            continue;
        }
        cout.put_slice(name);
        cout.put_slice(b": ");
        cout.put_slice(h.value.get(uin));
        cout.put_slice(b"\r\n");
    }
    for (n, v) in ex.ctx.response_headers.iter() {
        cout.put_slice(n);
        cout.put_slice(b": ");
        cout.put_slice(v);
        cout.put_slice(b"\r\n");
    }
    cout.put_slice(b"X-Request-Id: ");
    cout.put_slice(ex.ctx.request_id());
    cout.put_slice(b"\r\n\r\n");
    bytes::Buf::advance(&mut **uin, head.head_len);

    // Out of the session while the answer is counted and logged (the log reads both).
    let Some(mut ex) = s.ex.take() else {
        return Err(());
    };
    ex.ctx.status = 101;
    ex.resp = RespPhase::Done;
    ex.resp_head_sent = true;
    ex.resp_head_us = env.now_us;
    if let Some(snap) = ex.snap.clone() {
        snap.pipeline.on_response(&mut ex.ctx);
        if ex.ctx.matched && snap.version == env.routes.version {
            if let Some(r) = env.routes.routes.get(ex.ctx.route.route) {
                r.count(101);
                r.latency.observe(env.now_us.saturating_sub(ex.started_us));
                if ex.up_sent_us > 0 {
                    r.upstream_latency.observe(env.now_us - ex.up_sent_us);
                }
            }
        }
        crate::stats::count_release(env, &ex, snap.version, 101);
        let knobs = snap
            .route_for(&ex.ctx)
            .and_then(|r| r.websocket)
            .unwrap_or_default();
        ex.ws.idle_timeout_ms = knobs.idle_timeout_ms;
        ex.ws.ping_ms = knobs.ping_interval_ms;
    }
    crate::access_log::finished(s, env, &ex, 101);
    // The tunnel outlives config changes: it keeps its knobs, not the version it started on.
    ex.snap = None;
    let ws = &mut ex.ws;
    ws.open = true;
    ws.up = FrameTracker::new(Sender::Client, rsv_allowed);
    ws.down = FrameTracker::new(Sender::Server, rsv_allowed);
    ws.activity = env.now;
    ws.client_heard = env.now;
    ws.last_ping = env.now;
    ws.ping_due = false;
    ws.ending = None;
    ws.client_close_sent = false;
    ws.up_close_sent = false;
    ws.up_eof = false;
    // The request head went out whole; the buffer now carries the gateway's own frames.
    if let Some(u) = ex.uout.as_mut() {
        u.clear();
    }
    ex.uout_sent = 0;
    ex.fwd_req = 0;
    ex.fwd_resp = 0;
    env.stats.ws_open.inc();
    env.stats.ws_opened.inc();
    s.ex = Some(ex);
    s.phase = Phase::Tunnel;
    Ok(Step::Progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocols::http1::{parse_request, Limits, Parsed};

    fn check(raw: &str) -> (Result<(), ErrorKind>, bool) {
        let mut head = RequestHead::new();
        assert!(matches!(
            parse_request(raw.as_bytes(), &Limits::default(), &mut head),
            Ok(Parsed::Complete)
        ));
        let mut ws = WsState::default();
        let r = check_request(&mut ws, &head, raw.as_bytes());
        (r, ws.key.is_some())
    }

    const GOOD: &str = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n\
Upgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

    #[test]
    fn upgrade_requests_are_checked() {
        assert_eq!(check(GOOD), (Ok(()), true));
        assert_eq!(
            check(&GOOD.replace("GET", "POST")).0,
            Err(ErrorKind::BadRequest("websocket_method_not_get"))
        );
        assert_eq!(
            check(&GOOD.replace("Version: 13", "Version: 8")).0,
            Err(ErrorKind::UnsupportedWebSocketVersion)
        );
        assert_eq!(
            check(&GOOD.replace("Sec-WebSocket-Version: 13\r\n", "")).0,
            Err(ErrorKind::BadRequest("websocket_version_missing"))
        );
        for key in ["", "c2hvcnQ=", "dGhlIHNhbXBsZSBub25jZQ"] {
            let raw = GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", key);
            assert_eq!(
                check(&raw).0,
                Err(ErrorKind::BadRequest("websocket_key")),
                "{key:?}"
            );
        }
        let raw = GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
        assert_eq!(check(&raw).0, Err(ErrorKind::BadRequest("websocket_key")));
    }

    #[test]
    fn other_upgrades_and_bare_upgrade_fields_are_plain_http() {
        assert_eq!(check(&GOOD.replace("WebSocket", "h2c")), (Ok(()), false));
        assert_eq!(
            check(&GOOD.replace("keep-alive, Upgrade", "keep-alive")),
            (Ok(()), false)
        );
    }
}
