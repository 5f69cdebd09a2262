//! A Thrift peer written byte by byte (binary protocol, framed), independent of the
//! gateway's codecs: it parses calls by hand and answers with whatever bytes a test wants,
//! well formed or hostile. It records every call it saw.

use parking_lot::Mutex;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One call as the peer saw it.
#[derive(Clone, Debug)]
pub struct Call {
    pub name: String,
    pub seqid: i32,
    /// The argument fields it could read: (id, value) for strings and i64s.
    pub strings: Vec<(i16, String)>,
    pub ints: Vec<(i16, i64)>,
}

impl Call {
    pub fn string(&self, id: i16) -> Option<&str> {
        self.strings
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, s)| s.as_str())
    }

    pub fn int(&self, id: i16) -> Option<i64> {
        self.ints.iter().find(|(i, _)| *i == id).map(|(_, v)| *v)
    }
}

/// What to write back for one call.
pub struct Out {
    /// A whole frame, or anything at all.
    pub bytes: Vec<u8>,
    /// Milliseconds to wait before writing.
    pub pause: u64,
    /// Close the connection after writing.
    pub close: bool,
}

impl Out {
    pub fn now(bytes: Vec<u8>) -> Option<Out> {
        Some(Out {
            bytes,
            pause: 0,
            close: false,
        })
    }
}

/// What to do with one call; `None` closes the connection without writing.
pub type Answer = Box<dyn Fn(&Call) -> Option<Out> + Send + Sync>;

pub struct RawPeer {
    pub addr: SocketAddr,
    pub calls: Arc<Mutex<Vec<Call>>>,
    /// Batches of more than one call answered last first.
    pub reversed: Arc<AtomicUsize>,
}

impl RawPeer {
    pub fn start(answer: Answer) -> RawPeer {
        RawPeer::start_batched(answer, 1)
    }

    /// A peer that answers up to `batch` calls of a connection at once, last call first
    /// (a server processing one connection's calls concurrently): replies come out of order.
    pub fn start_batched(answer: Answer, batch: usize) -> RawPeer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let reversed = Arc::new(AtomicUsize::new(0));
        let (seen, rev) = (calls.clone(), reversed.clone());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (answer, seen, rev) = (answer.clone(), seen.clone(), rev.clone());
                std::thread::spawn(move || serve(s, &answer, &seen, batch, &rev));
            }
        });
        RawPeer {
            addr,
            calls,
            reversed,
        }
    }

    pub fn seen(&self) -> Vec<Call> {
        self.calls.lock().clone()
    }
}

fn serve(
    mut s: TcpStream,
    answer: &Answer,
    seen: &Mutex<Vec<Call>>,
    batch: usize,
    reversed: &AtomicUsize,
) {
    let _ = s.set_nodelay(true);
    let mut pending: Vec<Call> = Vec::new();
    loop {
        // With calls waiting, a pause in the stream means the batch is complete.
        let wait = (!pending.is_empty()).then_some(Duration::from_millis(50));
        let _ = s.set_read_timeout(wait);
        let call = match read_call(&mut s) {
            Ok(Some(c)) => Some(c),
            Ok(None) => return,
            Err(()) => None,
        };
        if let Some(c) = call {
            seen.lock().push(c.clone());
            pending.push(c);
            if pending.len() < batch {
                continue;
            }
        }
        if pending.len() > 1 {
            reversed.fetch_add(1, Ordering::Relaxed);
        }
        while let Some(c) = pending.pop() {
            match answer(&c) {
                None => return,
                Some(out) => {
                    std::thread::sleep(Duration::from_millis(out.pause));
                    if s.write_all(&out.bytes).is_err() || out.close {
                        return;
                    }
                }
            }
        }
    }
}

/// One framed call: `Ok(None)` at end of stream or on junk, `Err` when the read timed out.
fn read_call(s: &mut TcpStream) -> Result<Option<Call>, ()> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Err(())
        }
        Err(_) => return Ok(None),
    }
    let _ = s.set_read_timeout(None);
    let n = i32::from_be_bytes(len);
    if !(0..=1 << 20).contains(&n) {
        return Ok(None);
    }
    let mut frame = vec![0u8; n as usize];
    if s.read_exact(&mut frame).is_err() {
        return Ok(None);
    }
    Ok(parse_call(&frame))
}

/// Reads a strict binary call header and a flat argument struct (strings and i64s kept,
/// other fields skipped when simple).
fn parse_call(f: &[u8]) -> Option<Call> {
    let mut r = Cursor { b: f, at: 0 };
    let version = r.u32()?;
    if version & 0xffff_0000 != 0x8001_0000 {
        return None;
    }
    let name = String::from_utf8(r.bytes()?.to_vec()).ok()?;
    let seqid = r.u32()? as i32;
    let mut call = Call {
        name,
        seqid,
        strings: Vec::new(),
        ints: Vec::new(),
    };
    loop {
        let t = r.u8()?;
        if t == 0 {
            return Some(call);
        }
        let id = i16::from_be_bytes([r.u8()?, r.u8()?]);
        match t {
            11 => call
                .strings
                .push((id, String::from_utf8_lossy(r.bytes()?).into_owned())),
            10 => call.ints.push((id, r.u64()? as i64)),
            8 => call.ints.push((id, i64::from(r.u32()? as i32))),
            _ => return Some(call),
        }
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.at..self.at + n)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&[u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// Builds binary-protocol messages by hand.
#[derive(Default)]
pub struct Msg(pub Vec<u8>);

impl Msg {
    /// A message header: `mtype` 2 = reply, 3 = exception.
    pub fn header(name: &str, mtype: u8, seqid: i32) -> Msg {
        let mut m = Msg(Vec::new());
        m.0.extend_from_slice(&(0x8001_0000u32 | u32::from(mtype)).to_be_bytes());
        m.0.extend_from_slice(&(name.len() as u32).to_be_bytes());
        m.0.extend_from_slice(name.as_bytes());
        m.0.extend_from_slice(&seqid.to_be_bytes());
        m
    }
    pub fn field(mut self, t: u8, id: i16) -> Msg {
        self.0.push(t);
        self.0.extend_from_slice(&id.to_be_bytes());
        self
    }
    pub fn string(mut self, s: &str) -> Msg {
        self.0.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn i64(mut self, v: i64) -> Msg {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i32(mut self, v: i32) -> Msg {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn stop(mut self) -> Msg {
        self.0.push(0);
        self
    }
    /// The message with its 4-byte frame length in front.
    pub fn framed(self) -> Vec<u8> {
        let mut out = (self.0.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&self.0);
        out
    }
}

/// A reply whose result struct holds a string in field 0.
pub fn string_reply(name: &str, seqid: i32, s: &str) -> Vec<u8> {
    Msg::header(name, 2, seqid)
        .field(11, 0)
        .string(s)
        .stop()
        .framed()
}
