//! Reading a request body before the pipeline decides, for stages that must see it (a WAF
//! body prefix, JSON parameters, a body signature).
//!
//! The body is read into `cin` right behind the head, so once the pipeline agrees it is
//! forwarded from there like any streamed body (chunked bodies keep their raw framing for
//! the upstream; the decoded payload the stages see is collected in a pooled buffer).
//! Bounded by the stage's ask and the route's body limit: 413 beyond.

use crate::http::{answer, recycle, start_exchange, Env, Step};
use crate::io::would_block;
use crate::session::{Exchange, Phase, Session};
use protocols::error::ErrorKind;
use protocols::http1::{parse_request, BodyKind, ChunkedDecoder, Parsed, RequestHead};

/// Room for chunk framing on top of the payload limit while reading raw chunked bytes.
const CHUNK_OVERHEAD: usize = 64 * 1024;

/// Prepares `ex` to read the body of `head`, at most `max` payload bytes.
pub(crate) fn begin(ex: &mut Exchange, head: &RequestHead, max: usize) {
    ex.head_len = head.head_len;
    ex.body_max = max;
    ex.body_kind = head.body;
    ex.body_scanned = 0;
    ex.body_dec = ChunkedDecoder::default();
    ex.body_buf = None;
}

/// The body as the stages see it, once read.
/// `decoded` is the exchange's decoded chunked payload, if any.
pub(crate) fn buffered<'a>(
    decoded: Option<&'a [u8]>,
    head: &RequestHead,
    cin: &'a [u8],
) -> Option<&'a [u8]> {
    match head.body {
        BodyKind::Length(n) => cin.get(head.head_len..head.head_len + n as usize),
        BodyKind::Chunked => Some(decoded.unwrap_or(&[])),
        _ => None,
    }
}

fn fail(s: &mut Session, env: &mut Env, kind: ErrorKind) -> Step {
    let mut rid = [0u8; business::context::MAX_REQUEST_ID];
    let mut len = 0;
    if let Some(ex) = s.ex.take() {
        len = ex.ctx.request_id_len;
        rid[..len].copy_from_slice(ex.ctx.request_id());
        recycle(ex, env);
    }
    answer(s, env, kind, Some(&rid[..len]), true, false, None);
    s.phase = Phase::Closing;
    Step::Progress
}

/// Reads until the body is complete, then resumes the pipeline.
pub(crate) fn read_body_step(s: &mut Session, env: &mut Env) -> Step {
    let (Some(ex), Some(cin)) = (s.ex.as_mut(), s.cin.as_mut()) else {
        return Step::Close;
    };
    let complete = match ex.body_kind {
        BodyKind::Length(n) => cin.len() >= ex.head_len + n as usize,
        BodyKind::Chunked => loop {
            let start = ex.head_len + ex.body_scanned;
            if start >= cin.len() {
                break false;
            }
            let p = match ex.body_dec.feed(&cin[start..]) {
                Ok(p) => p,
                Err(_) => return fail(s, env, ErrorKind::BadRequest("bad_chunked_body")),
            };
            let buf = ex.body_buf.get_or_insert_with(|| env.bufs.checkout());
            buf.extend_from_slice(&cin[start + p.data.start..start + p.data.end]);
            ex.body_scanned += p.consumed;
            if buf.len() > ex.body_max {
                return fail(s, env, ErrorKind::BodyTooLarge);
            }
            if p.done {
                break true;
            }
            if p.consumed == 0 {
                break false;
            }
        },
        _ => true,
    };
    if complete {
        return match parse_request(cin, env.limits, env.req_head) {
            Ok(Parsed::Complete) => start_exchange(s, env),
            _ => fail(s, env, ErrorKind::Internal),
        };
    }
    if !s.readable || s.read_closed {
        return Step::Idle;
    }
    let limit = match ex.body_kind {
        BodyKind::Length(n) => ex.head_len + n as usize,
        _ => ex.head_len + ex.body_max + CHUNK_OVERHEAD,
    };
    let room = limit.saturating_sub(cin.len()).min(env.bufs.buf_size());
    if room == 0 {
        return fail(s, env, ErrorKind::BodyTooLarge);
    }
    match s.stream.read_into(cin, room) {
        Ok(0) => Step::Close,
        Ok(n) => {
            if n < room && !s.rdhup {
                s.readable = false;
            }
            s.client_activity = env.now;
            Step::Progress
        }
        Err(e) if would_block(&e) => {
            s.readable = false;
            Step::Idle
        }
        Err(_) => Step::Close,
    }
}
