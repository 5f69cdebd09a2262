//! The syslog sink: each line becomes an RFC 5424 message, sent as one datagram (UDP, unix
//! datagram sockets such as `/dev/log`) or octet-counted on a stream (RFC 6587 §3.4.1:
//! `LEN SP MSG`, for TCP and unix stream sockets).
//!
//! Nothing here ever waits on the receiver: sockets are non-blocking, a stream sink keeps
//! at most `buffer_bytes` of whole frames waiting, and a line that does not fit (receiver
//! stalled), cannot be sent (no receiver) or is cut off with its connection is dropped and
//! reported to the logger, which counts it against the worker the line came from.

use super::json::{put_time, put_u64};
use conf::access_log::SyslogAddr;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::{Duration, Instant};

/// Severity of every access log message: informational.
const SEVERITY_INFO: u8 = 6;
/// Buffered stream bytes that trigger a send before the round ends.
const SEND_AT: usize = 64 * 1024;

enum Conn {
    None,
    Udp(UdpSocket),
    UnixDgram(UnixDatagram),
    Tcp(TcpStream),
    UnixStream(UnixStream),
}

pub struct SyslogSink {
    addr: SyslogAddr,
    conn: Conn,
    /// Lines are dropped until then after a failed connect.
    retry_at: Option<Instant>,
    reconnect: Duration,
    /// `<PRI>1 ` (RFC 5424 §6.2: PRI and VERSION).
    pri: Vec<u8>,
    /// ` HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA ` after the timestamp.
    tail: Vec<u8>,
    msg: Vec<u8>,
    /// Framed messages not yet written to a stream: `pending[off..]`.
    pending: Vec<u8>,
    off: usize,
    cap: usize,
    /// Length and worker of each frame in `pending`, and how much of the first went out.
    frames: VecDeque<(usize, u16)>,
    front_sent: usize,
    /// Workers of lines lost after being accepted (connection cut with frames pending).
    lost: Vec<u16>,
    /// An outage was reported on stderr (once per outage).
    warned: bool,
}

/// This machine's name for the HOSTNAME field: printable ASCII, at most 255 bytes, `-`
/// (RFC 5424's NILVALUE) when unknown.
fn hostname() -> Vec<u8> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    let name: Vec<u8> = if rc == 0 {
        buf.iter()
            .copied()
            .take_while(|b| *b != 0)
            .filter(|b| b.is_ascii_graphic())
            .collect()
    } else {
        Vec::new()
    };
    if name.is_empty() {
        b"-".to_vec()
    } else {
        name
    }
}

fn dropped_kind(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS)
}

impl SyslogSink {
    /// A sink for `addr`; it connects on first use and again after failures, waiting
    /// `reconnect` between attempts.
    pub fn new(
        addr: SyslogAddr,
        facility: u8,
        app_name: &str,
        buffer_bytes: usize,
        reconnect: Duration,
    ) -> SyslogSink {
        let mut pri = Vec::with_capacity(8);
        pri.push(b'<');
        put_u64(&mut pri, (facility as u64) * 8 + SEVERITY_INFO as u64);
        pri.extend_from_slice(b">1 ");
        let mut tail = Vec::with_capacity(300);
        tail.push(b' ');
        tail.extend_from_slice(&hostname());
        tail.push(b' ');
        tail.extend_from_slice(app_name.as_bytes());
        tail.push(b' ');
        put_u64(&mut tail, std::process::id() as u64);
        tail.extend_from_slice(b" access - ");
        SyslogSink {
            addr,
            conn: Conn::None,
            retry_at: None,
            reconnect,
            pri,
            tail,
            msg: Vec::with_capacity(4096),
            pending: Vec::with_capacity(buffer_bytes),
            off: 0,
            cap: buffer_bytes,
            frames: VecDeque::with_capacity(1024),
            front_sent: 0,
            lost: Vec::with_capacity(64),
            warned: false,
        }
    }

    fn connect(&self) -> io::Result<Conn> {
        match &self.addr {
            SyslogAddr::Udp(a) => {
                let any = if a.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                let s = UdpSocket::bind(any)?;
                s.connect(a)?;
                s.set_nonblocking(true)?;
                Ok(Conn::Udp(s))
            }
            SyslogAddr::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, self.reconnect)?;
                s.set_nonblocking(true)?;
                let _ = s.set_nodelay(true);
                Ok(Conn::Tcp(s))
            }
            SyslogAddr::Unix(p) => {
                let d = UnixDatagram::unbound()?;
                match d.connect(p) {
                    Ok(()) => {
                        d.set_nonblocking(true)?;
                        Ok(Conn::UnixDgram(d))
                    }
                    // A stream socket (rsyslog's imuxsock can be either).
                    Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                        let s = UnixStream::connect(p)?;
                        s.set_nonblocking(true)?;
                        Ok(Conn::UnixStream(s))
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    fn ready(&mut self) -> bool {
        if !matches!(self.conn, Conn::None) {
            return true;
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        match self.connect() {
            Ok(c) => {
                self.conn = c;
                self.retry_at = None;
                self.warned = false;
                true
            }
            Err(e) => {
                self.warn("cannot connect", &e);
                self.retry_at = Some(Instant::now() + self.reconnect);
                false
            }
        }
    }

    fn warn(&mut self, what: &str, e: &io::Error) {
        if !self.warned {
            self.warned = true;
            eprintln!("gatehouse: access log syslog {:?}: {what}: {e}", self.addr);
        }
    }

    /// Sends (or queues) one line from `worker`, stamped `time_us`. False when dropped.
    pub fn write(&mut self, time_us: u64, line: &[u8], worker: u16) -> bool {
        if !self.ready() {
            return false;
        }
        self.msg.clear();
        self.msg.extend_from_slice(&self.pri);
        put_time(&mut self.msg, time_us);
        self.msg.extend_from_slice(&self.tail);
        self.msg.extend_from_slice(line);
        let sent = match &self.conn {
            Conn::Udp(s) => s.send(&self.msg),
            Conn::UnixDgram(s) => s.send(&self.msg),
            Conn::Tcp(_) | Conn::UnixStream(_) => return self.queue_frame(worker),
            Conn::None => return false,
        };
        match sent {
            Ok(_) => true,
            Err(e) if dropped_kind(&e) => false,
            // Nobody listens on that UDP port right now (an ICMP error came back).
            Err(e) if matches!(self.conn, Conn::Udp(_)) => {
                self.warn("send failed", &e);
                false
            }
            Err(e) => {
                self.warn("send failed", &e);
                self.disconnect();
                false
            }
        }
    }

    /// Appends `LEN SP MSG` to the stream's pending bytes if it fits.
    fn queue_frame(&mut self, worker: u16) -> bool {
        let digits = {
            let mut n = self.msg.len();
            let mut d = 1;
            while n >= 10 {
                n /= 10;
                d += 1;
            }
            d
        };
        let frame = digits + 1 + self.msg.len();
        if self.pending.len() - self.off + frame > self.cap {
            self.pump();
            if self.pending.len() - self.off + frame > self.cap {
                return false;
            }
        }
        if self.pending.len() + frame > self.cap && self.off > 0 {
            self.pending.drain(..self.off);
            self.off = 0;
        }
        put_u64(&mut self.pending, self.msg.len() as u64);
        self.pending.push(b' ');
        self.pending.extend_from_slice(&self.msg);
        self.frames.push_back((frame, worker));
        if self.pending.len() - self.off >= SEND_AT {
            self.pump();
        }
        true
    }

    /// Writes pending stream bytes until the socket would block.
    fn pump(&mut self) {
        while self.off < self.pending.len() {
            let res = match &mut self.conn {
                Conn::Tcp(s) => s.write(&self.pending[self.off..]),
                Conn::UnixStream(s) => s.write(&self.pending[self.off..]),
                _ => return,
            };
            match res {
                Ok(0) => {
                    self.disconnect();
                    return;
                }
                Ok(n) => {
                    self.off += n;
                    self.sent(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.warn("send failed", &e);
                    self.disconnect();
                    return;
                }
            }
        }
        self.pending.clear();
        self.off = 0;
    }

    /// Retires the frames `n` more written bytes complete.
    fn sent(&mut self, mut n: usize) {
        while n > 0 {
            let Some(&(len, _)) = self.frames.front() else {
                return;
            };
            let left = len - self.front_sent;
            if n >= left {
                n -= left;
                self.frames.pop_front();
                self.front_sent = 0;
            } else {
                self.front_sent += n;
                n = 0;
            }
        }
    }

    /// Drops the connection; frames not fully written are lost (a cut frame cannot be
    /// finished on a new connection).
    fn disconnect(&mut self) {
        self.conn = Conn::None;
        self.retry_at = Some(Instant::now() + self.reconnect);
        self.lost.extend(self.frames.drain(..).map(|(_, w)| w));
        self.pending.clear();
        self.off = 0;
        self.front_sent = 0;
    }

    /// End of a drain round: send what the socket takes now.
    pub fn flush(&mut self) {
        self.pump();
    }

    /// At stop: keep sending until everything went out or `deadline` passes.
    pub fn finish(&mut self, deadline: Instant) {
        loop {
            self.pump();
            if self.frames.is_empty() || matches!(self.conn, Conn::None) {
                break;
            }
            if Instant::now() >= deadline {
                self.lost.extend(self.frames.drain(..).map(|(_, w)| w));
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Workers of the lines lost since the last call.
    pub fn take_lost(&mut self, mut f: impl FnMut(u16)) {
        for w in self.lost.drain(..) {
            f(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    fn sink(addr: SyslogAddr, cap: usize) -> SyslogSink {
        SyslogSink::new(addr, 16, "gh", cap, Duration::from_millis(50))
    }

    #[test]
    fn udp_messages_are_rfc5424_datagrams() {
        let r = UdpSocket::bind("127.0.0.1:0").unwrap();
        r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut s = sink(SyslogAddr::Udp(r.local_addr().unwrap()), 4096);
        assert!(s.write(0, b"{\"a\":1}", 0));
        let mut buf = [0u8; 2048];
        let n = r.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let parts: Vec<&str> = text.splitn(8, ' ').collect();
        assert_eq!(parts[0], "<134>1");
        assert_eq!(parts[1], "1970-01-01T00:00:00.000000Z");
        assert!(!parts[2].is_empty());
        assert_eq!(parts[3], "gh");
        assert_eq!(parts[4], std::process::id().to_string());
        assert_eq!(parts[5], "access");
        assert_eq!(parts[6], "-");
        assert_eq!(parts[7], "{\"a\":1}");
    }

    #[test]
    fn tcp_frames_are_octet_counted_and_a_stalled_receiver_costs_drops_not_waits() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = sink(SyslogAddr::Tcp(l.local_addr().unwrap()), 8192);
        assert!(s.write(0, b"one", 1));
        assert!(s.write(0, b"two two", 1));
        s.flush();
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"two two") {
            let mut buf = [0u8; 1024];
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(got).unwrap();
        let (len, rest) = text.split_once(' ').unwrap();
        let len: usize = len.parse().unwrap();
        assert!(rest[..len].ends_with(" access - one"), "{text}");
        let (len2, rest2) = rest[len..].split_once(' ').unwrap();
        assert_eq!(rest2.len(), len2.parse::<usize>().unwrap());
        assert!(rest2.ends_with(" access - two two"));

        // The receiver stops reading: once kernel buffers and ours are full, lines are
        // refused at once.
        let line = [b'x'; 1000];
        let t = Instant::now();
        let mut refused = 0;
        for _ in 0..20_000 {
            if !s.write(0, &line, 2) {
                refused += 1;
            }
        }
        assert!(refused > 0);
        assert!(t.elapsed() < Duration::from_secs(10));
        drop(c);
    }

    #[test]
    fn lines_for_a_missing_receiver_are_dropped() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        let mut s = sink(SyslogAddr::Tcp(a), 8192);
        assert!(!s.write(0, b"x", 0));
        // Within the reconnect wait no connect is tried: still dropped, at once.
        assert!(!s.write(0, b"x", 0));
        let mut u = sink(SyslogAddr::Unix("/nonexistent/gh.sock".into()), 8192);
        assert!(!u.write(0, b"x", 0));
    }

    #[test]
    fn unix_datagram_and_stream_receivers() {
        let dir = std::env::temp_dir().join(format!("gh-sys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let dp = dir.join("dgram.sock");
        let r = UnixDatagram::bind(&dp).unwrap();
        r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut s = sink(SyslogAddr::Unix(dp), 8192);
        assert!(s.write(0, b"dgram", 0));
        let mut buf = [0u8; 1024];
        let n = r.recv(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"<134>1 ") && buf[..n].ends_with(b" access - dgram"));

        let sp = dir.join("stream.sock");
        let l = std::os::unix::net::UnixListener::bind(&sp).unwrap();
        let mut s = sink(SyslogAddr::Unix(sp), 8192);
        assert!(s.write(0, b"stream", 0));
        s.flush();
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"stream") {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(got).unwrap();
        let (len, rest) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rest.len());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
