//! Applying a body codec (`decrypt`) in the data plane: the request body is opened in place
//! and forwarded as plaintext with its own `Content-Length`; the answer body is buffered
//! (bounded), sealed, and sent with a new `Content-Length` and `Content-Type`.
//!
//! Sealing needs the whole answer before its length is known, so a sealed route buffers
//! answers up to [`MAX_SEALED`] instead of streaming them; a longer answer is a 502.

use crate::http::{Env, Step};
use crate::session::{Body, RespPhase, Session};
use bytes::BufMut;
use protocols::error::{put_u64, ErrorKind};

/// Largest answer body sealed on its way back.
pub const MAX_SEALED: usize = 16 << 20;

/// Whether the answer being relayed must be sealed.
pub(crate) fn wants_sealing(ctx: &business::Context, method: protocols::http1::Method) -> bool {
    ctx.codec.as_ref().is_some_and(|c| c.seals_answers())
        && method != protocols::http1::Method::Head
}

/// Moves answer body bytes from `uin` into the seal buffer; seals and queues the answer when
/// the body is complete. `Err` means the upstream's framing broke or the body is too large.
pub(crate) fn collect(s: &mut Session, env: &mut Env) -> Result<Step, ErrorKind> {
    let Some(ex) = s.ex.as_mut() else {
        return Ok(Step::Close);
    };
    let Some(uin) = ex.uin.as_mut() else {
        return Ok(Step::Idle);
    };
    let buf = ex.seal_body.get_or_insert_with(|| env.bufs.checkout());
    let mut progress = false;
    loop {
        if uin.is_empty() {
            break;
        }
        match &mut ex.resp_body {
            Body::Done => break,
            Body::Length(rem) => {
                let take = (*rem).min(uin.len() as u64) as usize;
                buf.extend_from_slice(&uin[..take]);
                bytes::Buf::advance(&mut **uin, take);
                *rem -= take as u64;
                if *rem == 0 {
                    ex.resp_body = Body::Done;
                }
            }
            Body::UntilClose => {
                buf.extend_from_slice(&uin[..]);
                uin.clear();
            }
            Body::Chunked(dec) => {
                let p = dec
                    .feed(&uin[..])
                    .map_err(|_| ErrorKind::UpstreamFailed("bad_response"))?;
                buf.extend_from_slice(&uin[p.data.clone()]);
                bytes::Buf::advance(&mut **uin, p.consumed);
                if p.done {
                    ex.resp_body = Body::Done;
                } else if p.consumed == 0 {
                    break;
                }
            }
        }
        progress = true;
        if buf.len() > MAX_SEALED {
            return Err(ErrorKind::UpstreamFailed("answer_too_large_to_seal"));
        }
    }
    if ex.resp_body.is_done() {
        if !uin.is_empty() {
            ex.resp_keep_alive = false;
        }
        finish(s, env)?;
        return Ok(Step::Progress);
    }
    Ok(if progress { Step::Progress } else { Step::Idle })
}

/// The whole answer body is in: seal it and queue head and body for the client.
pub(crate) fn finish(s: &mut Session, env: &mut Env) -> Result<(), ErrorKind> {
    let Some(ex) = s.ex.as_mut() else {
        return Ok(());
    };
    let Some(codec) = ex.ctx.codec.clone() else {
        return Ok(());
    };
    let plain: &[u8] = ex.seal_body.as_deref().map_or(&[], |b| &b[..]);
    let n = plain.len();
    let total = codec.sealed_len(n);
    let cout = s.cout.get_or_insert_with(|| env.bufs.checkout());
    let mark = cout.len();
    if let Some(head) = ex.seal_head.as_ref() {
        cout.put_slice(head);
    }
    cout.put_slice(b"Content-Type: ");
    cout.put_slice(codec.content_type().as_bytes());
    cout.put_slice(b"\r\nContent-Length: ");
    put_u64(cout, total as u64);
    cout.put_slice(b"\r\n\r\n");
    let start = cout.len();
    cout.resize(start + total, 0);
    let off = codec.seal_offset();
    cout[start + off..start + off + n].copy_from_slice(plain);
    match codec.seal(ex.ctx.codec_app(), &mut cout[start..], n) {
        Ok(len) => cout.truncate(start + len),
        Err(e) => {
            cout.truncate(mark);
            return Err(e);
        }
    }
    ex.seal_body = None;
    ex.seal_head = None;
    ex.resp = RespPhase::Done;
    ex.resp_head_sent = true;
    Ok(())
}
