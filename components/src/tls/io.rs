//! Non-blocking reads and writes of plaintext through a rustls connection over a mio socket,
//! for either side (the client side of sessions and TLS upstream connections).
//!
//! The contract is the plain socket's (`access/src/io.rs`): a read shorter than asked means
//! the socket is drained, `WouldBlock` means nothing moved, a write shorter than offered
//! means the socket is full. rustls's output buffer is flushed before more plaintext is
//! taken, which bounds a connection's TLS memory and keeps backpressure.

use bytes::BytesMut;
use mio::net::TcpStream;
use rustls::{ConnectionCommon, SideData};
use std::io::{self, BufRead, Write};
use std::ops::DerefMut;

/// Plaintext taken for encryption between two flushes: four full records, within rustls's
/// 64 KiB output limit.
pub const WRITE_CHUNK: usize = 64 * 1024;

/// Reads at most `max` plaintext bytes appended to `buf`; `Ok(0)` is end of stream.
/// `tcp_eof` remembers that the socket ended (rustls may still hold plaintext).
pub fn read_into<C, D>(
    conn: &mut C,
    tcp_eof: &mut bool,
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<usize>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    if max == 0 {
        return Err(io::Error::new(io::ErrorKind::OutOfMemory, "buffer full"));
    }
    buf.reserve(max);
    read_with(conn, tcp_eof, tcp, max, |p| buf.extend_from_slice(p))
}

/// [`read_into`] for a caller that keeps its own buffer: fills `out` from its start (the
/// Thrift pool reads into the free end of its `Vec`).
pub fn read_slice<C, D>(
    conn: &mut C,
    tcp_eof: &mut bool,
    tcp: &mut TcpStream,
    out: &mut [u8],
) -> io::Result<usize>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    if out.is_empty() {
        return Err(io::Error::new(io::ErrorKind::OutOfMemory, "buffer full"));
    }
    let mut at = 0;
    read_with(conn, tcp_eof, tcp, out.len(), |p| {
        out[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    })
}

/// The read loop both entry points share: hands `sink` at most `max` plaintext bytes in
/// pieces and returns how many.
fn read_with<C, D>(
    conn: &mut C,
    tcp_eof: &mut bool,
    tcp: &mut TcpStream,
    max: usize,
    mut sink: impl FnMut(&[u8]),
) -> io::Result<usize>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    let mut total = 0;
    loop {
        // Plaintext rustls already holds comes first.
        match conn.reader().fill_buf() {
            Ok([]) => return Ok(total), // close_notify: end of stream
            Ok(p) => {
                let n = p.len().min(max - total);
                sink(&p[..n]);
                conn.reader().consume(n);
                total += n;
                if total == max {
                    return Ok(total);
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The socket ended without close_notify: end of stream all the same (HTTP
            // framing tells whether a message was cut short).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(total),
            Err(e) => return Err(e),
        }
        if *tcp_eof {
            return Ok(total);
        }
        match read_tls_once(conn, tcp) {
            Ok(0) => *tcp_eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && total > 0 => return Ok(total),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads records from the socket once and processes them: `Ok(0)` when the socket ended.
/// Handshake messages, alerts and key updates the records called for are sent if the
/// socket takes them; a full socket keeps them for the next writable edge (`flush`).
fn read_tls_once<C, D>(conn: &mut C, tcp: &mut TcpStream) -> io::Result<usize>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    let n = conn.read_tls(tcp)?;
    if n == 0 {
        return Ok(0);
    }
    if let Err(e) = conn.process_new_packets() {
        // rustls queued an alert saying why; send it if the socket takes it.
        let _ = flush(conn, tcp);
        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
    }
    match flush(conn, tcp) {
        Ok(()) => Ok(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
        Err(e) => Err(e),
    }
}

/// Moves a client handshake on as far as the socket allows, on any readiness edge:
/// `Ok(true)` once it is done, `Ok(false)` while it waits for the peer or for room.
/// A certificate that does not verify, an alert or the peer closing is an error.
pub fn handshake<C, D>(conn: &mut C, tcp: &mut TcpStream) -> io::Result<bool>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    loop {
        match flush(conn, tcp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if !conn.is_handshaking() {
            // Anything still queued (our last flight) leaves on the next writable edge.
            return Ok(true);
        }
        match read_tls_once(conn, tcp) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Takes plaintext from `a` then `b` in chunks, flushing between them, until all is taken
/// or the socket is full; returns the plaintext bytes taken.
pub fn write_two<C, D>(conn: &mut C, tcp: &mut TcpStream, a: &[u8], b: &[u8]) -> io::Result<usize>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    let total = a.len() + b.len();
    let mut n = 0;
    loop {
        match flush(conn, tcp) {
            Ok(()) => {}
            // Taken and encrypted: the rest leaves on the next writable edge.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && n > 0 => return Ok(n),
            Err(e) => return Err(e),
        }
        if n == total {
            return Ok(n);
        }
        let mut w = conn.writer();
        let mut took = 0;
        if n < a.len() {
            took += w.write(&a[n..a.len().min(n + WRITE_CHUNK)])?;
        }
        if n + took >= a.len() && took < WRITE_CHUNK {
            let off = n + took - a.len();
            let end = b.len().min(off + WRITE_CHUNK - took);
            took += w.write(&b[off..end])?;
        }
        if took == 0 {
            // Before the handshake ends rustls holds plaintext up to its limit; once that
            // is full, wait for the handshake's next edge.
            return if n > 0 {
                Ok(n)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        n += took;
    }
}

/// Writes rustls's pending output until it is empty or the socket is full.
pub fn flush<C, D>(conn: &mut C, tcp: &mut TcpStream) -> io::Result<()>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    while conn.wants_write() {
        match conn.write_tls(tcp) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
