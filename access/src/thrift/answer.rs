//! Writing the answers of Thrift routes: the reply as JSON with its status, and the
//! gateway's own errors whose message carries what the IDL mapping or the server said
//! (a missing argument's path, a TApplicationException's text). Answers go straight into
//! the session's pooled output buffer; an error body is measured in a buffer of its own
//! first (an error path, where allocating is fine).

use business::Context;
use bytes::{BufMut, BytesMut};
use protocols::error::{put_json_str, put_u64};

/// Reason phrases for the statuses a route may map exceptions to.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        423 => "Locked",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Status line and the fields every Thrift answer has, for a body of `body_len` bytes.
fn head(
    out: &mut BytesMut,
    status: u16,
    ctx: &Context,
    close: bool,
    exception: Option<&[u8]>,
    body_len: usize,
) {
    out.put_slice(b"HTTP/1.1 ");
    put_u64(out, u64::from(status));
    out.put_u8(b' ');
    out.put_slice(reason(status).as_bytes());
    out.put_slice(b"\r\nContent-Type: application/json\r\n");
    if let Some(name) = exception {
        out.put_slice(b"X-Thrift-Exception: ");
        out.put_slice(name);
        out.put_slice(b"\r\n");
    }
    for (n, v) in ctx.response_headers.iter() {
        out.put_slice(n);
        out.put_slice(b": ");
        out.put_slice(v);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"X-Request-Id: ");
    out.put_slice(ctx.request_id());
    if close {
        out.put_slice(b"\r\nConnection: close");
    }
    out.put_slice(b"\r\nContent-Length: ");
    put_u64(out, body_len as u64);
    out.put_slice(b"\r\n\r\n");
}

/// A JSON answer: `json` with `status`; `exception` names a declared exception
/// (`X-Thrift-Exception`). `head_only` leaves the body out (HEAD).
pub(crate) fn json(
    out: &mut BytesMut,
    status: u16,
    ctx: &Context,
    close: bool,
    exception: Option<&[u8]>,
    json: &[u8],
    head_only: bool,
) {
    head(out, status, ctx, close, exception, json.len());
    if !head_only {
        out.put_slice(json);
    }
}

/// An error of the gateway in the CONTRACT.md shape, with a message made at run time:
/// `{"error":{"code":..,"message":..,"field":..,"request_id":..}}`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn error(
    out: &mut BytesMut,
    status: u16,
    code: &str,
    message: &[&str],
    field: Option<&str>,
    ctx: &Context,
    close: bool,
    head_only: bool,
) {
    // Length first: the pieces are measured escaped, so the head can carry it.
    let mut body = BytesMut::new();
    body.put_slice(b"{\"error\":{\"code\":\"");
    put_json_str(&mut body, code.as_bytes());
    body.put_slice(b"\",\"message\":\"");
    for part in message {
        put_json_str(&mut body, part.as_bytes());
    }
    body.put_u8(b'"');
    if let Some(f) = field.filter(|f| !f.is_empty()) {
        body.put_slice(b",\"field\":\"");
        put_json_str(&mut body, f.as_bytes());
        body.put_u8(b'"');
    }
    body.put_slice(b",\"request_id\":\"");
    put_json_str(&mut body, ctx.request_id());
    body.put_slice(b"\"}}\n");
    head(out, status, ctx, close, None, body.len());
    if !head_only {
        out.put_slice(&body);
    }
}
