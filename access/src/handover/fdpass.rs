//! Unix SOCK_SEQPACKET sockets that carry file descriptors (SCM_RIGHTS), in plain libc.
//!
//! The upgrade handover (docs/upgrade.md) passes listening sockets and the state-dir lock
//! between two processes. SEQPACKET keeps message boundaries, so one message is one tag
//! plus the descriptors attached to it, never split or merged as a stream could be. Only a
//! process of the same user may talk to us: the socket file is 0600 and the peer's uid is
//! checked with SO_PEERCRED on every connection.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// Descriptors one message may carry (the kernel's SCM_MAX_FD is 253).
pub const MAX_FDS: usize = 64;
/// Bytes of one message's text.
pub const MAX_MSG: usize = 512;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn seqpacket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is a fresh descriptor we own.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sockaddr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket path {} is too long", path.display()),
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

/// A listening control socket.
pub struct Listener {
    fd: OwnedFd,
}

impl Listener {
    /// Binds `path` (replacing a stale file) with mode 0600 and listens.
    ///
    /// The caller must own the path (hold the state-dir lock): a live peer's socket would
    /// otherwise be unlinked.
    pub fn bind(path: &Path) -> io::Result<Listener> {
        let fd = seqpacket()?;
        let (addr, len) = sockaddr(path)?;
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // The mode is set before anyone can connect: bind under a umask that leaves 0600.
        // SAFETY: umask(2) only swaps the process mask; restored right after bind.
        let old = unsafe { libc::umask(0o177) };
        // SAFETY: addr/len describe a valid sockaddr_un.
        let r = unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) };
        // SAFETY: restores the mask saved above.
        unsafe { libc::umask(old) };
        cvt(r)?;
        let cpath = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in socket path"))?;
        // SAFETY: cpath is a valid C string; chmod makes sure even under an odd umask.
        cvt(unsafe { libc::chmod(cpath.as_ptr(), 0o600) })?;
        // SAFETY: listen(2) on our socket.
        cvt(unsafe { libc::listen(fd.as_raw_fd(), 8) })?;
        Ok(Listener { fd })
    }

    /// Adopts a listening control socket passed by another process.
    pub fn from_fd(fd: OwnedFd) -> Listener {
        Listener { fd }
    }

    /// A duplicate descriptor of the listening socket, to pass on.
    pub fn dup(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Waits up to `timeout` for a connection; `Ok(None)` when none came.
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<Option<Conn>> {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut p, 1, ms) } {
            0 => return Ok(None),
            r if r < 0 => {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::Interrupted {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
            _ => {}
        }
        // SAFETY: accept4(2) on our socket without a peer address.
        let r = unsafe {
            libc::accept4(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                // Another process sharing the socket took it, or the peer gave up.
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ if e.raw_os_error() == Some(libc::ECONNABORTED) => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: r is a fresh descriptor from accept4.
        let fd = unsafe { OwnedFd::from_raw_fd(r) };
        set_blocking(fd.as_raw_fd())?;
        Ok(Some(Conn { fd }))
    }
}

fn set_blocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: same.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) })?;
    Ok(())
}

/// One connected control socket.
pub struct Conn {
    fd: OwnedFd,
}

impl Conn {
    /// Connects to the control socket at `path`.
    pub fn connect(path: &Path) -> io::Result<Conn> {
        let fd = seqpacket()?;
        let (addr, len) = sockaddr(path)?;
        // SAFETY: addr/len describe a valid sockaddr_un.
        cvt(unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) })?;
        Ok(Conn { fd })
    }

    /// The peer's (pid, uid), from SO_PEERCRED.
    pub fn peer(&self) -> io::Result<(i32, u32)> {
        // SAFETY: ucred is plain data.
        let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: getsockopt fills at most `len` bytes of cred.
        cvt(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&raw mut cred).cast(),
                &mut len,
            )
        })?;
        Ok((cred.pid, cred.uid))
    }

    /// Bounds every later `recv` (None: wait for ever).
    pub fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        let tv = match t {
            Some(d) => libc::timeval {
                tv_sec: d.as_secs() as libc::time_t,
                tv_usec: libc::suseconds_t::from(d.subsec_micros().max(1)),
            },
            None => libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
        };
        // SAFETY: setsockopt with a valid timeval.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    /// Sends one message: `text` with `fds` attached (duplicated into the peer on receipt).
    pub fn send(&self, text: &str, fds: &[RawFd]) -> io::Result<()> {
        if text.is_empty() || text.len() > MAX_MSG || fds.len() > MAX_FDS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "handover message too large",
            ));
        }
        let mut iov = libc::iovec {
            iov_base: text.as_ptr() as *mut libc::c_void,
            iov_len: text.len(),
        };
        // Aligned room for one SCM_RIGHTS header with MAX_FDS descriptors.
        let mut cbuf = [0u64; 64];
        // SAFETY: msghdr is plain data.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            let data_len = std::mem::size_of_val(fds) as u32;
            // SAFETY: CMSG_SPACE is a pure size computation.
            let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            // SAFETY: msg_control points at `space` bytes (<= size of cbuf, since
            // fds.len() <= MAX_FDS), so the first header and its data fit.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(data_len) as _;
                std::ptr::copy_nonoverlapping(
                    fds.as_ptr(),
                    libc::CMSG_DATA(c).cast::<RawFd>(),
                    fds.len(),
                );
            }
        }
        loop {
            // SAFETY: msg describes valid buffers for the duration of the call.
            let r = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
            if r >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives one message: its text and the descriptors it carried. `Ok(None)` at EOF.
    pub fn recv(&self) -> io::Result<Option<(String, Vec<OwnedFd>)>> {
        let mut buf = [0u8; MAX_MSG];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut cbuf = [0u64; 64];
        // SAFETY: msghdr is plain data.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        let n = loop {
            // SAFETY: msg describes valid buffers; MSG_CMSG_CLOEXEC marks received fds.
            let r = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        let mut fds = Vec::new();
        // SAFETY: walks the control headers the kernel wrote into cbuf, within controllen.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(c).cast::<RawFd>();
                    let bytes = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    for i in 0..bytes / std::mem::size_of::<RawFd>() {
                        let fd = std::ptr::read_unaligned(data.add(i));
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(io::Error::other(
                "handover message carried too many descriptors",
            ));
        }
        if n == 0 && fds.is_empty() {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(buf.get(..n).unwrap_or(&[])).into_owned();
        Ok(Some((text, fds)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn temp_path(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("gh-fdpass-{tag}-{}.sock", std::process::id()))
    }

    #[test]
    fn passes_descriptors_that_work_in_the_receiver() {
        let path = temp_path("pass");
        let l = Listener::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).map(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.permissions().mode() & 0o777
        });
        assert_eq!(mode.unwrap(), 0o600);
        let client = Conn::connect(&path).unwrap();
        let server = l.accept_timeout(Duration::from_secs(5)).unwrap().unwrap();
        let (pid, uid) = server.peer().unwrap();
        assert_eq!(pid as u32, std::process::id());
        // SAFETY: getuid cannot fail.
        assert_eq!(uid, unsafe { libc::getuid() });

        // A TCP listener passed over: a connection made to it is accepted through the copy.
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        server
            .send("data 1", &[tcp.as_raw_fd(), a.as_raw_fd()])
            .unwrap();
        // Only the copies in flight keep the sockets open now.
        drop(tcp);
        drop(a);
        let (text, mut fds) = client.recv().unwrap().unwrap();
        assert_eq!(text, "data 1");
        assert_eq!(fds.len(), 2);
        let pair = std::os::unix::net::UnixStream::from(fds.pop().unwrap());
        let got = std::net::TcpListener::from(fds.pop().unwrap());
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let (mut s, _) = got.accept().unwrap();
        c.write_all(b"hi").unwrap();
        let mut two = [0u8; 2];
        s.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"hi");
        // The unix pair's far end hears what is written through the received copy.
        (&pair).write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        b.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn messages_keep_their_boundaries_and_eof_is_none() {
        let path = temp_path("bounds");
        let l = Listener::bind(&path).unwrap();
        let client = Conn::connect(&path).unwrap();
        let server = l.accept_timeout(Duration::from_secs(5)).unwrap().unwrap();
        client.send("hello", &[]).unwrap();
        client.send("ready", &[]).unwrap();
        assert_eq!(server.recv().unwrap().unwrap().0, "hello");
        assert_eq!(server.recv().unwrap().unwrap().0, "ready");
        drop(client);
        assert!(server.recv().unwrap().is_none());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn recv_times_out_and_accept_returns_none_without_peer() {
        let path = temp_path("timeout");
        let l = Listener::bind(&path).unwrap();
        assert!(l
            .accept_timeout(Duration::from_millis(20))
            .unwrap()
            .is_none());
        let client = Conn::connect(&path).unwrap();
        client.set_timeout(Some(Duration::from_millis(50))).unwrap();
        let e = client.recv().err().unwrap();
        assert!(matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn oversized_messages_are_refused() {
        let path = temp_path("big");
        let _l = Listener::bind(&path).unwrap();
        let client = Conn::connect(&path).unwrap();
        let long = "x".repeat(MAX_MSG + 1);
        assert!(client.send(&long, &[]).is_err());
        assert!(client.send("", &[]).is_err());
        let _ = std::fs::remove_file(&path);
    }
}
