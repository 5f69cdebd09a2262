//! The TLS side of a mux connection: finishing the connect with a handshake, and writing
//! queued calls through rustls. Reads share the plain path's loop (`conn.rs`), with
//! `tls::io::read_slice` in place of the socket's `read`.

use super::Conn;
use crate::tls::io as tls_io;
use std::io;

impl Conn {
    /// `Ok(true)` once the connection can carry calls (TCP connected, TLS handshake done),
    /// `Ok(false)` while in progress.
    pub(in crate::mux_pool) fn check_up(&mut self) -> io::Result<bool> {
        if !self.tcp_up {
            if !self.check_connect()? {
                return Ok(false);
            }
            self.tcp_up = true;
        }
        let Some(t) = self.tls.as_deref_mut() else {
            return Ok(true);
        };
        if !tls_io::handshake(&mut t.conn, &mut self.stream)? {
            return Ok(false);
        }
        // The handshake used the edges up; whatever they left is found by trying
        // (`WouldBlock` clears these again).
        self.readable = true;
        self.writable = true;
        Ok(true)
    }

    /// The TLS side of `flush`: hands what is queued to rustls and writes its records while
    /// the socket takes them (rustls's own output first: handshake tail, alerts). A call
    /// counts as written once its bytes are encrypted and queued behind the socket.
    pub(in crate::mux_pool) fn flush_tls(&mut self, now: u64) -> io::Result<()> {
        let Some(t) = self.tls.as_deref_mut() else {
            return Ok(());
        };
        if !self.writable || (self.wsent == self.wbuf.len() && !t.conn.wants_write()) {
            return Ok(());
        }
        let pending = self.wbuf.len() - self.wsent;
        match tls_io::write_two(&mut t.conn, &mut self.stream, &self.wbuf[self.wsent..], &[]) {
            Ok(n) => {
                self.wsent += n;
                self.written += n as u64;
                if n > 0 {
                    self.since = now;
                }
                if n < pending || t.conn.wants_write() {
                    self.writable = false;
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.writable = false;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
