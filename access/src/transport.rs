//! The client side of a session: plain TCP, or TLS over it (docs/tls.md).
//!
//! Sessions read and write through [`ClientStream`] only, with the same contract as
//! `io::read_into` / `io::write_two` on a socket, so the HTTP code is the same for both:
//! a read shorter than asked means the socket is drained (wait for the next edge), a
//! `WouldBlock` error means nothing moved. A plain stream is a `TcpStream` and a branch on
//! an empty `Option`: the same syscalls and no allocation as before TLS existed.
//!
//! TLS runs on rustls's sans-I/O connection: records are read from the socket and decrypted
//! into rustls's plaintext buffer, which is copied into the session's pooled buffer;
//! plaintext to send is encrypted into rustls's output buffer and written from there. That
//! buffer is flushed before more plaintext is taken, which bounds a connection's TLS memory
//! and keeps the session's backpressure (nothing is accepted while the socket is full). The
//! handshake happens inside the first reads, driven by readiness like any other read.

use crate::io::{read_into, would_block, write_some, write_two};
use bytes::BytesMut;
use components::tls::io as tls_io;
use components::tls::rustls::ServerConnection;
use components::UpConn;
use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io;
use std::net::Shutdown;

/// A TLS connection and its handshake deadline.
struct Tls {
    conn: ServerConnection,
    /// Worker-clock ms by which the handshake must be done.
    handshake_deadline: u64,
    /// The socket reached end of stream.
    tcp_eof: bool,
}

/// A client connection's byte stream.
pub struct ClientStream {
    pub tcp: TcpStream,
    tls: Option<Box<Tls>>,
}

impl ClientStream {
    pub fn plain(tcp: TcpStream) -> ClientStream {
        ClientStream { tcp, tls: None }
    }

    /// A TLS server connection over `tcp`; the handshake must end by `handshake_deadline`.
    pub fn tls(tcp: TcpStream, conn: ServerConnection, handshake_deadline: u64) -> ClientStream {
        ClientStream {
            tcp,
            tls: Some(Box::new(Tls {
                conn,
                handshake_deadline,
                tcp_eof: false,
            })),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// While a TLS handshake is under way, the time by which it must end.
    pub fn handshake_deadline(&self) -> Option<u64> {
        match &self.tls {
            Some(t) if t.conn.is_handshaking() => Some(t.handshake_deadline),
            _ => None,
        }
    }

    /// Encrypted bytes are waiting for room in the socket.
    pub fn has_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.conn.wants_write())
    }

    /// Reads at most `max` plaintext bytes appended to `buf`; `Ok(0)` is end of stream.
    pub fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        match self.tls.as_deref_mut() {
            None => read_into(&self.tcp, buf, max),
            Some(t) => tls_io::read_into(&mut t.conn, &mut t.tcp_eof, &mut self.tcp, buf, max),
        }
    }

    /// Writes what it can of `a` then `b`; `Ok(n)` counts plaintext bytes taken.
    pub fn write_two(&mut self, a: &[u8], b: &[u8]) -> io::Result<usize> {
        match self.tls.as_deref_mut() {
            None => write_two(&mut self.tcp, a, b),
            Some(t) => tls_io::write_two(&mut t.conn, &mut self.tcp, a, b),
        }
    }

    /// Writes encrypted bytes already produced; `Ok(())` once none is left.
    pub fn flush_pending(&mut self) -> io::Result<()> {
        match self.tls.as_deref_mut() {
            None => Ok(()),
            Some(t) => tls_io::flush(&mut t.conn, &mut self.tcp),
        }
    }

    /// Half-closes: TLS says `close_notify` first (best effort: a full socket drops it).
    pub fn shutdown_write(&mut self) {
        if let Some(t) = self.tls.as_deref_mut() {
            t.conn.send_close_notify();
            let _ = tls_io::flush(&mut t.conn, &mut self.tcp);
        }
        let _ = self.tcp.shutdown(Shutdown::Write);
    }

    /// Looks at raw socket bytes without taking them (for TLS: encrypted bytes; either
    /// way, whether the client has sent something).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.peek(buf)
    }

    /// Reads and throws away raw socket bytes (a closing connection's linger).
    pub fn discard(&mut self, sink: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut self.tcp, sink)
    }
}

impl Source for ClientStream {
    fn register(&mut self, r: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        self.tcp.register(r, token, interests)
    }

    fn reregister(&mut self, r: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        self.tcp.reregister(r, token, interests)
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.tcp.deregister(r)
    }
}

/// Reads from an upstream connection, plain or TLS, with the contract of `io::read_into`.
pub fn up_read(conn: &mut UpConn, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    match conn.tls.as_deref_mut() {
        None => read_into(&conn.stream, buf, max),
        Some(t) => tls_io::read_into(&mut t.conn, &mut t.tcp_eof, &mut conn.stream, buf, max),
    }
}

/// Writes to an upstream connection, plain or TLS, with the contract of `io::write_some`.
pub fn up_write(conn: &mut UpConn, data: &[u8]) -> io::Result<usize> {
    match conn.tls.as_deref_mut() {
        None => write_some(&mut conn.stream, data),
        Some(t) => tls_io::write_two(&mut t.conn, &mut conn.stream, data, &[]),
    }
}

/// Sends the first `*pending` bytes of `buf` to the upstream for as long as it takes them,
/// consuming what left from `buf` and `*pending`; a full socket clears `conn.writable`.
/// `Ok(true)` when any byte moved.
pub fn up_send(conn: &mut UpConn, buf: &mut BytesMut, pending: &mut usize) -> io::Result<bool> {
    let mut moved = false;
    while *pending > 0 && conn.writable {
        match up_write(conn, &buf[..*pending]) {
            Ok(n) => {
                if n < *pending {
                    conn.writable = false;
                }
                bytes::Buf::advance(buf, n);
                *pending -= n;
                moved = true;
            }
            Err(e) if would_block(&e) => conn.writable = false,
            Err(e) => return Err(e),
        }
    }
    Ok(moved)
}

/// Writes TLS records an upstream connection had no room for (`Ok` when none is left).
pub fn up_flush(conn: &mut UpConn) -> io::Result<()> {
    match conn.tls.as_deref_mut() {
        Some(t) if t.conn.wants_write() => tls_io::flush(&mut t.conn, &mut conn.stream),
        _ => Ok(()),
    }
}
