//! Non-blocking reads and writes between sockets and pooled buffers.

use bytes::BytesMut;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

/// Reads at most `max` bytes appended to `buf`. `Ok(0)` is end of stream.
pub fn read_into<S: AsRawFd>(stream: &S, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    if max == 0 {
        return Err(io::Error::new(io::ErrorKind::OutOfMemory, "buffer full"));
    }
    // Reclaims space consumed at the front without allocating when the buffer is drained.
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    let want = spare.len().min(max);
    // SAFETY: read(2) only writes into the spare capacity, never reads it, and at most
    // `want` bytes; `set_len` then covers exactly the bytes the kernel wrote.
    let n = loop {
        let n = unsafe { libc::read(stream.as_raw_fd(), spare.as_mut_ptr().cast(), want) };
        if n >= 0 {
            break n;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let n = n as usize;
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Writes what it can of `data`; `Ok(0)` only for empty input.
pub fn write_some<W: Write>(w: &mut W, data: &[u8]) -> io::Result<usize> {
    if data.is_empty() {
        return Ok(0);
    }
    loop {
        match w.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes what it can of `a` then `b` in one `writev`, so a rewritten head and the body
/// bytes behind it leave in one syscall.
pub fn write_two<W: Write>(w: &mut W, a: &[u8], b: &[u8]) -> io::Result<usize> {
    if a.is_empty() {
        return write_some(w, b);
    }
    if b.is_empty() {
        return write_some(w, a);
    }
    let bufs = [io::IoSlice::new(a), io::IoSlice::new(b)];
    loop {
        match w.write_vectored(&bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}
