//! A Thrift product service for the load harness (`perf/run.sh thrift`): binary protocol,
//! framed transport, one thread on a mio event loop, written with our own
//! `protocols::thrift` codecs.
//!
//! Why not the demo service: the demo answers each call on its own thread, which is right for
//! showing out-of-order replies and wrong for measuring the gateway (thread creation would
//! dominate). Here every call is decoded and answered inline, as soon as its frame is
//! complete, so a connection with several calls in flight gets its replies back to back.
//! That is what a multiplexed pool needs from a server to keep more than one call in flight.
//!
//! It implements `getProduct(1: i64 id)` of perf/modes/thrift.sh's IDL: the reply carries the
//! id asked for and fixed fields, with `--tags N` strings in `tags` to set the answer's size.
//! Any other method gets a `TApplicationException` (UNKNOWN_METHOD).
//!
//! Usage: `thrift_backend ADDR [ADDR...] [--tags N]` — one listener per address; it prints
//! `listening ADDR` per listener, then serves until killed.

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use protocols::thrift::codec::{self, Limits, MessageType, Protocol, Reader, TType, Transport};
use protocols::thrift::ThriftError;
use slab::Slab;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// Largest call accepted; a bigger frame closes the connection.
const MAX_FRAME: usize = 1 << 20;
/// Listener tokens are the first few; connections come after.
const CONN_BASE: usize = 1 << 16;

struct Conn {
    stream: TcpStream,
    inb: Vec<u8>,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    sent: usize,
}

struct Product {
    tags: Vec<String>,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("thrift_backend: {e}");
        std::process::exit(1);
    }
}

fn run() -> io::Result<()> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut tags = 8usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--tags" {
            tags = args
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| io::Error::other("--tags needs a number"))?;
        } else {
            addrs.push(
                a.parse()
                    .map_err(|e| io::Error::other(format!("{a}: {e}")))?,
            );
        }
    }
    if addrs.is_empty() {
        return Err(io::Error::other(
            "usage: thrift_backend ADDR [ADDR...] [--tags N]",
        ));
    }
    let product = Product {
        tags: (0..tags).map(|i| format!("tag-{i:04}-perf")).collect(),
    };
    let mut poll = Poll::new()?;
    let mut listeners = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let mut l = TcpListener::bind(*a)?;
        poll.registry()
            .register(&mut l, Token(i), Interest::READABLE)?;
        println!("listening {}", l.local_addr()?);
        listeners.push(l);
    }
    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            let t = ev.token().0;
            if t < CONN_BASE {
                accept_all(&poll, &listeners[t], &mut conns)?;
                continue;
            }
            let key = t - CONN_BASE;
            let Some(c) = conns.get_mut(key) else {
                continue;
            };
            if !serve(c, &product) {
                let mut c = conns.remove(key);
                let _ = poll.registry().deregister(&mut c.stream);
            }
        }
    }
}

fn accept_all(poll: &Poll, l: &TcpListener, conns: &mut Slab<Conn>) -> io::Result<()> {
    loop {
        match l.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nodelay(true);
                let entry = conns.vacant_entry();
                poll.registry().register(
                    &mut stream,
                    Token(CONN_BASE + entry.key()),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                entry.insert(Conn {
                    stream,
                    inb: Vec::with_capacity(4096),
                    out: Vec::with_capacity(4096),
                    sent: 0,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Out of descriptors and the like: try again on the next event.
            Err(_) => return Ok(()),
        }
    }
}

/// Reads what is there, answers every complete call, writes what it can. `false` closes.
fn serve(c: &mut Conn, p: &Product) -> bool {
    let mut buf = [0u8; 16384];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => c.inb.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    let mut at = 0;
    while c.inb.len() - at >= 4 {
        let len =
            u32::from_be_bytes([c.inb[at], c.inb[at + 1], c.inb[at + 2], c.inb[at + 3]]) as usize;
        if len > MAX_FRAME {
            return false;
        }
        if c.inb.len() - at - 4 < len {
            break;
        }
        let frame = &c.inb[at + 4..at + 4 + len];
        if answer(frame, p, &mut c.out).is_err() {
            return false;
        }
        at += 4 + len;
    }
    c.inb.drain(..at);
    while c.sent < c.out.len() {
        match c.stream.write(&c.out[c.sent..]) {
            Ok(0) => return false,
            Ok(n) => c.sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    c.out.clear();
    c.sent = 0;
    true
}

/// Decodes one call (a frame's payload) and appends its framed reply to `out`.
fn answer(frame: &[u8], p: &Product, out: &mut Vec<u8>) -> Result<(), ThriftError> {
    let limits = Limits {
        max_frame: MAX_FRAME,
        ..Limits::default()
    };
    let mut r = Reader::new(Protocol::Binary, frame, limits);
    let h = r.read_message_header()?;
    let name = std::str::from_utf8(&frame[h.name.clone()])
        .map_err(|_| ThriftError::Unexpected("method name is not UTF-8"))?;
    if h.mtype == MessageType::Oneway {
        return Ok(());
    }
    let method = name.rsplit(':').next().unwrap_or(name);
    if method != "getProduct" {
        return codec::encode_message(
            Protocol::Binary,
            Transport::Framed,
            name,
            MessageType::Exception,
            h.seqid,
            &limits,
            out,
            |w| -> Result<(), ThriftError> {
                let s = w.struct_begin();
                w.field_begin(TType::String, 1);
                w.binary(b"unknown method")?;
                w.field_begin(TType::I32, 2);
                w.i32(1);
                w.struct_end(s);
                Ok(())
            },
        );
    }
    // Arguments: field 1 is the id; anything else is skipped.
    let mut id = 0i64;
    let saved = r.read_struct_begin()?;
    while let Some((t, fid)) = r.read_field_begin()? {
        if fid == 1 && t == TType::I64 {
            id = r.read_i64()?;
        } else {
            r.skip(t)?;
        }
    }
    r.read_struct_end(saved);
    codec::encode_message(
        Protocol::Binary,
        Transport::Framed,
        name,
        MessageType::Reply,
        h.seqid,
        &limits,
        out,
        |w| -> Result<(), ThriftError> {
            let result = w.struct_begin();
            w.field_begin(TType::Struct, 0);
            let s = w.struct_begin();
            w.field_begin(TType::I64, 1);
            w.i64(id);
            w.field_begin(TType::String, 2);
            w.binary(b"Perf product with a name of ordinary length")?;
            w.field_begin(TType::I32, 3);
            w.i32(2);
            w.field_begin(TType::Double, 4);
            w.double(19.5);
            w.field_begin(TType::List, 5);
            w.list_begin(TType::String, p.tags.len())?;
            for t in &p.tags {
                w.binary(t.as_bytes())?;
            }
            w.struct_end(s);
            w.struct_end(result);
            Ok(())
        },
    )
}
