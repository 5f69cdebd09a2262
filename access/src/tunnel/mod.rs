//! WebSocket tunnels: after a checked upgrade, the session pumps bytes both ways between the
//! client and the upstream connection until one side ends it (see `LIFECYCLE.md`, Tunnel).
//!
//! Each direction streams through the one pooled buffer it already had (`cin` client to
//! upstream, `uin` upstream to client) exactly like a proxied body: nothing is read while
//! the buffer is full, so a slow reader holds the other side back instead of growing memory.
//! A [`FrameTracker`] per direction approves the bytes that may go on (headers are parsed
//! and checked, payload bytes only counted, nothing is copied or unmasked), so a protocol
//! violation is caught at its frame and both sides get close 1002 instead of it.
//!
//! The gateway writes frames of its own only at frame boundaries of the stream they join:
//! keepalive pings and closes to the client go through `cout` (flushed before approved
//! `uin` bytes), closes to the upstream through `uout` (written after approved `cin` bytes).
//! Ending a tunnel (violation 1002, idle timeout or shutdown 1001) stops both trackers at
//! the end of their current frame, sends the closes, and closes both connections; the
//! upstream connection of a tunnel is never parked for reuse.

mod handshake;

pub(crate) use handshake::{check_request, open};

use crate::http::{recycle, Env, Step};
use crate::io::would_block;
use crate::session::{Exchange, Phase, Session};
use crate::transport::{up_flush, up_read, up_send, up_write};
use protocols::websocket::{write_close, write_control, FrameError, FrameTracker, Opcode, Sender};

/// How long a tunnel being ended waits for its close frames to get out.
const END_GRACE_MS: u64 = 2000;
/// Payload of the gateway's keepalive pings (clients echo it in their pong).
const PING_PAYLOAD: &[u8] = b"gatehouse";

/// The WebSocket side of an exchange: the upgrade's key while it is negotiated, then the
/// tunnel's trackers, timers and ending.
pub struct WsState {
    /// The request is a checked WebSocket upgrade: its `Sec-WebSocket-Key`.
    pub key: Option<[u8; 24]>,
    /// A tunnel is open (counted in the open-tunnels gauge until it ends).
    pub open: bool,
    /// Frames from the client (to the upstream) and from the upstream (to the client).
    pub up: FrameTracker,
    pub down: FrameTracker,
    pub idle_timeout_ms: u64,
    /// 0: no keepalive pings.
    pub ping_ms: u64,
    /// Last byte read from either side, and from the client.
    pub activity: u64,
    pub client_heard: u64,
    pub last_ping: u64,
    pub ping_due: bool,
    /// The gateway is ending the tunnel with this close code and reason.
    pub ending: Option<(u16, &'static str)>,
    pub end_by: u64,
    pub client_close_sent: bool,
    pub up_close_sent: bool,
    /// The upstream closed its side.
    pub up_eof: bool,
}

impl Default for WsState {
    fn default() -> Self {
        WsState {
            key: None,
            open: false,
            up: FrameTracker::new(Sender::Client, 0),
            down: FrameTracker::new(Sender::Server, 0),
            idle_timeout_ms: 0,
            ping_ms: 0,
            activity: 0,
            client_heard: 0,
            last_ping: 0,
            ping_due: false,
            ending: None,
            end_by: 0,
            client_close_sent: false,
            up_close_sent: false,
            up_eof: false,
        }
    }
}

impl WsState {
    /// Starts ending the tunnel: finish the frames under way, then close both sides.
    fn end(&mut self, code: u16, reason: &'static str, now: u64) {
        if self.ending.is_some() {
            return;
        }
        self.ending = Some((code, reason));
        self.end_by = now + END_GRACE_MS;
        self.up.stop();
        self.down.stop();
    }

    fn violation(&mut self, e: FrameError, now: u64) {
        self.end(1002, e.reason(), now);
    }
}

/// The exchange is recycled: a tunnel it carried stops being counted.
pub(crate) fn abandon(ex: &mut Exchange, env: &Env) {
    if ex.ws.open {
        ex.ws.open = false;
        let g = &env.stats.ws_open;
        g.set(g.get().saturating_sub(1));
    }
    ex.ws.key = None;
}

/// A mask key for the gateway's frames to the upstream. Masking exists so that script-chosen
/// bytes cannot be made to look like something else to intermediaries; the gateway only ever
/// masks a close frame of its own, so a cheap varying key is enough.
fn mask_key(env: &Env) -> [u8; 4] {
    let x = (env.now_us as u32).wrapping_mul(0x9E37_79B9) ^ (env.sid as u32).rotate_left(16);
    (x | 1).to_be_bytes()
}

/// Moves bytes both ways, sends the gateway's own frames when due, and ends the tunnel.
pub(crate) fn step(s: &mut Session, env: &mut Env) -> Step {
    let Some(ex) = s.ex.as_mut() else {
        return Step::Close;
    };
    let mask = mask_key(env);
    let Some(conn) = ex.up.and_then(|k| env.pool.get_mut(k)) else {
        return teardown(s, env);
    };
    let ws = &mut ex.ws;
    let now = env.now;
    let mut progress = false;
    if env.stopping {
        ws.end(1001, "gateway shutting down", now);
    }

    // Client to upstream: approve what the frames allow, write it, read more.
    if let Some(cin) = s.cin.as_mut() {
        let t = ws.up.approve(&cin[..], &mut ex.fwd_req);
        env.stats.ws_frames[0].add(t.frames);
        env.stats.ws_bytes[0].add(t.bytes as u64);
        if let Some(e) = t.error {
            ws.violation(e, now);
        }
        match up_send(conn, cin, &mut ex.fwd_req) {
            Ok(moved) => progress |= moved,
            Err(_) => return teardown(s, env),
        }
    }
    if ws.ending.is_none() && s.readable && !s.read_closed {
        let cin = s.cin.get_or_insert_with(|| env.bufs.checkout());
        let room = env.bufs.buf_size().saturating_sub(cin.len());
        if room > 0 {
            match s.stream.read_into(cin, room) {
                Ok(0) => s.read_closed = true,
                Ok(n) => {
                    if n < room && !s.rdhup {
                        s.readable = false;
                    }
                    ws.activity = now;
                    ws.client_heard = now;
                    s.client_activity = now;
                }
                Err(e) if would_block(&e) => s.readable = false,
                Err(_) => return teardown(s, env),
            }
            progress = true;
        }
    }

    // TLS records for a TLS upstream that its socket had no room for.
    if conn.writable && conn.tls.as_ref().is_some_and(|t| t.conn.wants_write()) {
        match up_flush(conn) {
            Ok(()) => progress = true,
            Err(e) if would_block(&e) => conn.writable = false,
            Err(_) => return teardown(s, env),
        }
    }

    // Upstream to client: read, approve (`flush_client` writes approved bytes).
    if ws.ending.is_none() && !ws.up_eof && conn.readable {
        let uin = ex.uin.get_or_insert_with(|| env.bufs.checkout());
        let room = env.bufs.buf_size().saturating_sub(uin.len());
        if room > 0 {
            match up_read(conn, uin, room) {
                Ok(0) => ws.up_eof = true,
                Ok(n) => {
                    if n < room && !conn.rdhup {
                        conn.readable = false;
                    }
                    ws.activity = now;
                }
                Err(e) if would_block(&e) => conn.readable = false,
                Err(_) => return teardown(s, env),
            }
            progress = true;
        }
    }
    if let Some(uin) = ex.uin.as_ref() {
        let before = ex.fwd_resp;
        let t = ws.down.approve(&uin[..], &mut ex.fwd_resp);
        env.stats.ws_frames[1].add(t.frames);
        env.stats.ws_bytes[1].add(t.bytes as u64);
        if let Some(e) = t.error {
            ws.violation(e, now);
        }
        progress |= ex.fwd_resp != before;
    }

    // The gateway's own frames, each at a frame boundary of its stream.
    let client_free = ex.fwd_resp == 0 && ws.down.at_boundary();
    if ws.ping_due && ws.ending.is_none() && client_free {
        let cout = s.cout.get_or_insert_with(|| env.bufs.checkout());
        write_control(&mut **cout, Opcode::Ping, PING_PAYLOAD, None);
        ws.ping_due = false;
        progress = true;
    }
    if let Some((code, reason)) = ws.ending {
        if !ws.client_close_sent && client_free {
            // A close the upstream sent already reached the client: the client answers it.
            if !ws.down.close_seen() {
                let cout = s.cout.get_or_insert_with(|| env.bufs.checkout());
                write_close(&mut **cout, code, reason, None);
            }
            ws.client_close_sent = true;
            progress = true;
        }
        if !ws.up_close_sent && ex.fwd_req == 0 && ws.up.at_boundary() {
            if !ws.up.close_seen() {
                let uout = ex.uout.get_or_insert_with(|| env.bufs.checkout());
                write_close(&mut **uout, code, reason, Some(mask));
            }
            ws.up_close_sent = true;
            progress = true;
        }
    }
    while let Some(uout) = ex.uout.as_mut() {
        if uout.is_empty() || !conn.writable {
            break;
        }
        match up_write(conn, &uout[..]) {
            Ok(n) => {
                if n < uout.len() {
                    conn.writable = false;
                }
                bytes::Buf::advance(&mut **uout, n);
                progress = true;
            }
            Err(e) if would_block(&e) => conn.writable = false,
            Err(_) => return teardown(s, env),
        }
    }

    // Whether the tunnel is over: everything that may go on has gone on.
    let up_flushed = ex.fwd_req == 0 && ex.uout.as_ref().is_none_or(|u| u.is_empty());
    let client_flushed = ex.fwd_resp == 0;
    let over = match ws.ending {
        Some(_) => ws.client_close_sent && ws.up_close_sent && up_flushed && client_flushed,
        None => {
            // Close handshake done, or a side hung up (its peer sees the connection close;
            // no close frame is made up for it, 1006 is what that means).
            (ws.up.close_seen() && ws.down.close_seen() && up_flushed && client_flushed)
                || (ws.up_eof && client_flushed)
                || (s.read_closed && up_flushed)
        }
    };
    if over {
        return finish(s, env);
    }
    if progress {
        Step::Progress
    } else {
        Step::Idle
    }
}

/// The tunnel ended in order: the upstream connection is closed (never reused), the client
/// gets what is queued for it, then its connection closes.
fn finish(s: &mut Session, env: &mut Env) -> Step {
    if let Some(mut ex) = s.ex.take() {
        if let Some(key) = ex.up.take() {
            env.pool.discard(env.registry, key);
        }
        recycle(ex, env);
    }
    s.close_after = true;
    s.phase = Phase::Closing;
    Step::Progress
}

/// The tunnel broke (a socket error): both connections close at once.
fn teardown(s: &mut Session, env: &mut Env) -> Step {
    let _ = finish(s, env);
    Step::Close
}

/// When the session's timer must fire next.
pub(crate) fn deadline(s: &Session, now: u64) -> u64 {
    let Some(ws) = s.ex.as_ref().map(|ex| &ex.ws) else {
        return now;
    };
    if ws.ending.is_some() {
        return ws.end_by;
    }
    let mut d = ws.activity + ws.idle_timeout_ms;
    if ws.ping_ms > 0 {
        d = d.min(ws.client_heard.max(ws.last_ping) + ws.ping_ms);
    }
    d
}

/// The timer fired: end an idle tunnel, ping a quiet client, or give up on an ending one.
pub(crate) fn on_timeout(s: &mut Session, env: &mut Env) -> Step {
    let Some(ws) = s.ex.as_mut().map(|ex| &mut ex.ws) else {
        return Step::Close;
    };
    let now = env.now;
    if ws.ending.is_some() {
        return teardown(s, env);
    }
    if now >= ws.activity + ws.idle_timeout_ms {
        ws.end(1001, "idle timeout", now);
    } else if ws.ping_ms > 0 && now >= ws.client_heard.max(ws.last_ping) + ws.ping_ms {
        ws.ping_due = true;
        ws.last_ping = now;
    }
    Step::Progress
}
