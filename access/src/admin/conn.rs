//! One admin connection, served with blocking I/O on an admin thread: strict head parsing
//! (`protocols::http1::parse_request`, the data plane's `[limits]`), Content-Length bodies up
//! to `admin.max_body_bytes`, keep-alive, and `Expect: 100-continue`.

use super::answer::Answer;
use super::router::{dispatch, Req};
use super::State;
use protocols::http1::{parse_request, BodyKind, Parsed, RequestHead};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Bytes read per call.
const READ_CHUNK: usize = 16 * 1024;
/// After an answer that ends the connection early (413, a bad head), how long the client may
/// go on sending before the socket closes: closing with unread bytes would reset the
/// connection and could destroy the answer before the client reads it.
const LINGER: Duration = Duration::from_secs(1);

/// Reads more bytes into `buf`; `Ok(0)` at EOF.
fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut tmp = [0u8; READ_CHUNK];
    let n = stream.read(&mut tmp)?;
    buf.extend_from_slice(tmp.get(..n).unwrap_or(&[]));
    Ok(n)
}

/// Sends `answer` and closes gracefully, discarding what the client still sends for a moment.
fn finish(mut stream: TcpStream, answer: Answer) {
    if answer.closing().write_to(&mut stream, false).is_err() {
        return;
    }
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let end = Instant::now() + LINGER;
    let mut tmp = [0u8; READ_CHUNK];
    while Instant::now() < end {
        match stream.read(&mut tmp) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
            }
            Err(_) => return,
        }
    }
}

/// Serves requests on `stream` until the client closes, asks to close, or idles past
/// `admin.idle_timeout_ms`.
pub fn serve(state: &State, mut stream: TcpStream, peer: SocketAddr) {
    let idle = Duration::from_millis(state.settings.idle_timeout_ms);
    let _ = stream.set_read_timeout(Some(idle));
    let _ = stream.set_write_timeout(Some(idle));
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut head = RequestHead::new();
    loop {
        loop {
            match parse_request(&buf, &state.limits, &mut head) {
                Ok(Parsed::Complete) => break,
                Ok(Parsed::Partial) => {}
                Err(e) => {
                    let code = e.reason();
                    let msg = format!("malformed request ({code})");
                    return finish(stream, Answer::error(e.status(), code, msg, ""));
                }
            }
            match read_more(&mut stream, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let max = state.settings.max_body_bytes;
        let body_len = match head.body {
            BodyKind::None | BodyKind::CloseDelimited => 0,
            BodyKind::Length(n) if n > max => {
                let msg = format!("the body is larger than admin.max_body_bytes ({max})");
                return finish(stream, Answer::error(413, "body_too_large", msg, ""));
            }
            BodyKind::Length(n) => n as usize,
            BodyKind::Chunked => {
                let msg = "send the body with Content-Length";
                return finish(stream, Answer::error(411, "length_required", msg, ""));
            }
        };
        let total = head.head_len + body_len;
        if head.expect_continue
            && buf.len() < total
            && stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return;
        }
        while buf.len() < total {
            match read_more(&mut stream, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let text = |span: protocols::http1::Span| std::str::from_utf8(span.get(&buf)).ok();
        let (Some(method), Some(path)) = (text(head.method_span), text(head.path)) else {
            return finish(
                stream,
                Answer::error(400, "bad_request", "path is not UTF-8", ""),
            );
        };
        let req = Req {
            method,
            path: if path.is_empty() { "/" } else { path },
            query: head.query.and_then(text).unwrap_or(""),
            body: buf.get(head.head_len..total).unwrap_or(&[]),
            key: head
                .find_name(&buf, b"x-api-key")
                .map(|h| h.value.get(&buf)),
            peer,
        };
        let mut answer = dispatch(state, &req);
        let head_only = method == "HEAD";
        if !head.keep_alive || state.handed_over() {
            answer.close = true;
        }
        let close = answer.close;
        if answer.write_to(&mut stream, head_only).is_err() || close {
            return;
        }
        buf.drain(..total);
    }
}
