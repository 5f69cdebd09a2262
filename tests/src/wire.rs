//! The backend's side of the wire: reading request heads and bodies off a socket and
//! recording them as [`Request`]s.
//!
//! Reads use a short socket timeout in a loop so a connection thread notices the backend
//! stopping within ~100 ms without needing a second handle on the socket (a second handle
//! would keep the socket alive and turn a deliberate reset into a plain close).

use crate::pattern::Verifier;
use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest request head the backend reads.
const MAX_HEAD: usize = 1 << 20;
/// A connection silent for this long is dropped by the backend.
const IDLE_MAX: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// One request as the backend received it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// Accept order of the connection it came on (0-based).
    pub conn: usize,
    /// Its index on that connection (0-based).
    pub seq: usize,
    /// The head bytes, exactly as received.
    pub head: Vec<u8>,
    pub method: String,
    pub target: String,
    pub minor: u8,
    pub headers: Vec<(String, String)>,
    /// Decoded body (first `KEEP_BODY` bytes).
    pub body: Vec<u8>,
    /// Body bytes as they came on the wire, chunk framing included (first `KEEP_BODY`).
    pub raw_body: Vec<u8>,
    /// Decoded body length.
    pub body_len: u64,
    /// Every body byte matched the shared pattern.
    pub body_is_pattern: bool,
    /// The body arrived whole, per its framing.
    pub complete: bool,
    /// The head could not be parsed at all.
    pub garbage: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers_named(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn keep_alive(&self) -> bool {
        if self.minor == 0 {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        }
    }

    /// `Transfer-Encoding: chunked` (and nothing else).
    pub fn has_chunked_te(&self) -> bool {
        let te = self.headers_named("transfer-encoding");
        te.len() == 1 && te[0].trim().eq_ignore_ascii_case("chunked")
    }

    pub fn expects_continue(&self) -> bool {
        self.minor == 1
            && self
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }

    pub fn head_str(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }
}

/// Body framing of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFrame {
    None,
    Length(u64),
    Chunked,
}

pub enum ReadOutcome {
    /// The peer closed between requests.
    Eof,
    /// Unparseable bytes (recorded, then the connection is dropped).
    Garbage(Request),
    Head(Request, BodyFrame),
}

/// A socket with a read buffer.
pub struct Reader {
    pub stream: TcpStream,
    buf: Vec<u8>,
    stop: Arc<AtomicBool>,
}

impl Reader {
    pub fn new(stream: TcpStream, stop: Arc<AtomicBool>) -> io::Result<Reader> {
        stream.set_read_timeout(Some(POLL))?;
        Ok(Reader {
            stream,
            buf: Vec::new(),
            stop,
        })
    }

    /// Reads more bytes; `Ok(0)` at EOF; an error when stopped or idle too long.
    fn fill(&mut self) -> io::Result<usize> {
        let start = Instant::now();
        let mut tmp = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    if self.stop.load(Ordering::SeqCst) || start.elapsed() > IDLE_MAX {
                        return Err(io::Error::other("backend stopping or idle"));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn line(&mut self, raw: &mut Vec<u8>) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..i].to_vec();
                keep(raw, &self.buf[..i + 2]);
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(io::Error::other("line too long"));
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Takes up to `left` body bytes, feeding them to the record.
    fn take(&mut self, mut left: u64, req: &mut Request, v: &mut Verifier) -> io::Result<()> {
        while left > 0 {
            if self.buf.is_empty() && self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let n = (left.min(self.buf.len() as u64)) as usize;
            let data = &self.buf[..n];
            v.feed(data);
            keep(&mut req.body, data);
            keep(&mut req.raw_body, data);
            self.buf.drain(..n);
            left -= n as u64;
        }
        Ok(())
    }

    /// Reads the body per `frame`; returns whether it arrived whole.
    pub fn read_body(&mut self, frame: &BodyFrame, req: &mut Request, v: &mut Verifier) -> bool {
        match frame {
            BodyFrame::None => true,
            BodyFrame::Length(n) => self.take(*n, req, v).is_ok(),
            BodyFrame::Chunked => self.read_chunked(req, v).is_ok(),
        }
    }

    fn read_chunked(&mut self, req: &mut Request, v: &mut Verifier) -> io::Result<()> {
        loop {
            let mut raw = std::mem::take(&mut req.raw_body);
            let line = self.line(&mut raw);
            req.raw_body = raw;
            let line = line?;
            let text = String::from_utf8_lossy(&line);
            let size = u64::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| io::Error::other("bad chunk size"))?;
            if size == 0 {
                loop {
                    let mut raw = std::mem::take(&mut req.raw_body);
                    let l = self.line(&mut raw);
                    req.raw_body = raw;
                    if l?.is_empty() {
                        return Ok(());
                    }
                }
            }
            // Chunk data goes to `body` and `raw_body` through `take`.
            self.take(size, req, v)?;
            let mut raw = std::mem::take(&mut req.raw_body);
            let l = self.line(&mut raw);
            req.raw_body = raw;
            if !l?.is_empty() {
                return Err(io::Error::other("chunk data not followed by CRLF"));
            }
        }
    }
}

fn keep(dst: &mut Vec<u8>, data: &[u8]) {
    let room = crate::backend::KEEP_BODY.saturating_sub(dst.len());
    dst.extend_from_slice(&data[..data.len().min(room)]);
}

/// Reads one request head.
pub fn read_request(rd: &mut Reader, conn: usize, seq: usize) -> io::Result<ReadOutcome> {
    loop {
        if !rd.buf.is_empty() {
            let mut hs = [httparse::EMPTY_HEADER; 512];
            let mut p = httparse::Request::new(&mut hs);
            match p.parse(&rd.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let mut req = Request {
                        conn,
                        seq,
                        head: rd.buf[..n].to_vec(),
                        method: p.method.unwrap_or("").to_string(),
                        target: p.path.unwrap_or("").to_string(),
                        minor: p.version.unwrap_or(1),
                        headers: p
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_string(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect(),
                        ..Request::default()
                    };
                    rd.buf.drain(..n);
                    let frame = if req.header("transfer-encoding").is_some() {
                        BodyFrame::Chunked
                    } else if let Some(cl) = req.header("content-length") {
                        match cl.trim().parse() {
                            Ok(n) => BodyFrame::Length(n),
                            Err(_) => {
                                req.garbage = true;
                                return Ok(ReadOutcome::Garbage(req));
                            }
                        }
                    } else {
                        BodyFrame::None
                    };
                    req.complete = frame == BodyFrame::None;
                    return Ok(ReadOutcome::Head(req, frame));
                }
                Ok(httparse::Status::Partial) if rd.buf.len() < MAX_HEAD => {}
                _ => return Ok(ReadOutcome::Garbage(garbage(conn, seq, &rd.buf))),
            }
        }
        match rd.fill() {
            Ok(0) | Err(_) if rd.buf.is_empty() => return Ok(ReadOutcome::Eof),
            Ok(0) | Err(_) => return Ok(ReadOutcome::Garbage(garbage(conn, seq, &rd.buf))),
            Ok(_) => {}
        }
    }
}

fn garbage(conn: usize, seq: usize, bytes: &[u8]) -> Request {
    Request {
        conn,
        seq,
        head: bytes.to_vec(),
        garbage: true,
        ..Request::default()
    }
}
