//! A raw HTTP/1.1 client: it writes whatever bytes a test gives it (so malformed requests can
//! be sent) and reads answers with its own framing (Content-Length, chunked, close-delimited)
//! under timeouts, so a gateway that hangs fails the test instead of stalling it.
//!
//! Bytes past one answer stay buffered for the next `read_response`, which is what makes
//! pipelining checks possible.

use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Default bound on any single read from the gateway.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest head the client accepts.
const MAX_HEAD: usize = 256 * 1024;

/// How a response body was framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body by definition (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// One parsed response.
#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    pub minor: u8,
    pub reason: String,
    /// Field names as sent, values lossily decoded.
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    pub body: Vec<u8>,
}

impl Resp {
    /// The first value of a field (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a field.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A comma-separated field lists `token` (case-insensitive), e.g. `Connection: close`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers_named(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// What a connection did when the test waited for it to close.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// Orderly close (FIN).
    Eof,
    /// Reset by the peer.
    Reset,
    /// Bytes arrived instead.
    Data(Vec<u8>),
    /// Still open when the wait ended.
    Open,
}

/// One client connection.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects with the default read timeout.
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Conn::from_stream(stream)
    }

    /// Wraps a connection made elsewhere.
    pub fn from_stream(stream: TcpStream) -> Conn {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn set_timeout(&mut self, t: Duration) {
        let _ = self.stream.set_read_timeout(Some(t));
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads more bytes into the buffer; `Ok(0)` at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 64 * 1024];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Reads one response to a non-HEAD request.
    pub fn read_response(&mut self) -> io::Result<Resp> {
        self.read_response_for("GET")
    }

    /// Reads one response to a request of `method` (HEAD answers carry no body).
    pub fn read_response_for(&mut self, method: &str) -> io::Result<Resp> {
        let mut r = self.read_head(method)?;
        let mut body = Vec::new();
        self.read_body(&r, |d| body.extend_from_slice(d))?;
        r.body = body;
        Ok(r)
    }

    /// Reads a response head (1xx heads included); the body is left for `read_body`.
    pub fn read_head(&mut self, method: &str) -> io::Result<Resp> {
        loop {
            let mut hs = [httparse::EMPTY_HEADER; 256];
            let mut p = httparse::Response::new(&mut hs);
            match p.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = p.code.unwrap_or(0);
                    let headers: Vec<(String, String)> = p
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).trim().to_string(),
                            )
                        })
                        .collect();
                    let mut r = Resp {
                        status,
                        minor: p.version.unwrap_or(1),
                        reason: p.reason.unwrap_or("").to_string(),
                        headers,
                        framing: Framing::None,
                        body: Vec::new(),
                    };
                    r.framing = framing_of(&r, method);
                    self.buf.drain(..n);
                    return Ok(r);
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(io::Error::other("response head too large"));
                    }
                }
                Err(e) => {
                    return Err(io::Error::other(format!(
                        "bad response head ({e}): {:?}",
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(400)])
                    )))
                }
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a full head ({} bytes: {:?})",
                        self.buf.len(),
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(400)])
                    ),
                ));
            }
        }
    }

    /// Streams the body of `r` into `sink`; errors if the connection ends early.
    pub fn read_body(&mut self, r: &Resp, mut sink: impl FnMut(&[u8])) -> io::Result<()> {
        match r.framing {
            Framing::None => Ok(()),
            Framing::Length(mut left) => {
                while left > 0 {
                    if self.buf.is_empty() && self.fill()? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("body ended {left} bytes early"),
                        ));
                    }
                    let take = (left.min(self.buf.len() as u64)) as usize;
                    sink(&self.buf[..take]);
                    self.buf.drain(..take);
                    left -= take as u64;
                }
                Ok(())
            }
            Framing::UntilClose => loop {
                if !self.buf.is_empty() {
                    sink(&self.buf);
                    self.buf.clear();
                }
                if self.fill()? == 0 {
                    return Ok(());
                }
            },
            Framing::Chunked => self.read_chunked(&mut sink),
        }
    }

    fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(io::Error::other("chunk line too long"));
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed inside a chunked body",
                ));
            }
        }
    }

    fn read_chunked(&mut self, sink: &mut impl FnMut(&[u8])) -> io::Result<()> {
        loop {
            let line = self.line()?;
            let text = String::from_utf8_lossy(&line);
            let size_text = text.split(';').next().unwrap_or("").trim();
            let mut left = u64::from_str_radix(size_text, 16)
                .map_err(|_| io::Error::other(format!("bad chunk size line {text:?}")))?;
            if left == 0 {
                // Trailers up to the empty line.
                while !self.line()?.is_empty() {}
                return Ok(());
            }
            while left > 0 {
                if self.buf.is_empty() && self.fill()? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed inside a chunk",
                    ));
                }
                let take = (left.min(self.buf.len() as u64)) as usize;
                sink(&self.buf[..take]);
                self.buf.drain(..take);
                left -= take as u64;
            }
            if !self.line()?.is_empty() {
                return Err(io::Error::other("chunk not followed by CRLF"));
            }
        }
    }

    /// Waits up to `t` for the gateway to close the connection (after any buffered bytes).
    pub fn ending(&mut self, t: Duration) -> Ending {
        if !self.buf.is_empty() {
            return Ending::Data(std::mem::take(&mut self.buf));
        }
        let _ = self.stream.set_read_timeout(Some(t));
        let mut tmp = [0u8; 4096];
        let e = match self.stream.read(&mut tmp) {
            Ok(0) => Ending::Eof,
            Ok(n) => Ending::Data(tmp[..n].to_vec()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ending::Reset,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                Ending::Open
            }
            Err(_) => Ending::Reset,
        };
        let _ = self.stream.set_read_timeout(Some(READ_TIMEOUT));
        e
    }

    /// True when the connection ends (FIN or reset) within `t` with no further bytes.
    pub fn closes_within(&mut self, t: Duration) -> bool {
        matches!(self.ending(t), Ending::Eof | Ending::Reset)
    }
}

/// How the body of `r`, answering `method`, is framed (RFC 9112 §6.3).
fn framing_of(r: &Resp, method: &str) -> Framing {
    if method == "HEAD" || r.status < 200 || r.status == 204 || r.status == 304 {
        return Framing::None;
    }
    if r.header("transfer-encoding").is_some() {
        return Framing::Chunked;
    }
    match r.header("content-length").and_then(|v| v.parse().ok()) {
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    }
}

/// Sends `raw` on a new connection and reads one answer.
pub fn roundtrip(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut c = Conn::open(addr);
    c.send(raw).unwrap_or_else(|e| panic!("send: {e}"));
    c.read_response()
        .unwrap_or_else(|e| panic!("no answer to {:?}: {e}", String::from_utf8_lossy(raw)))
}

/// `GET path` with `Host: host` on a new connection.
pub fn get(addr: SocketAddr, host: &str, path: &str) -> Resp {
    roundtrip(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
    )
}

/// Asserts `r` is the gateway's own error answer: `status`, JSON body
/// `{"error": {"code", "message", "request_id"}}` with `code`, and a request id equal to the
/// `X-Request-Id` field.
pub fn assert_gateway_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(
        r.status,
        status,
        "expected {status} {code}, got {} {:?} body {:?}",
        r.status,
        r.headers,
        r.body_str()
    );
    let rid = r
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-Id on {:?}", r.headers));
    assert!(!rid.is_empty());
    let ct = r.header("content-type").unwrap_or("");
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    let v = r
        .json()
        .unwrap_or_else(|| panic!("body is not JSON: {:?}", r.body_str()));
    let e = &v["error"];
    assert_eq!(e["code"].as_str(), Some(code), "body {v}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "body {v}"
    );
    assert_eq!(e["request_id"].as_str(), Some(rid), "body {v}");
}

/// Waits until `f` holds, polling every 10 ms, for at most `t`.
pub fn wait_until(t: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + t;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
