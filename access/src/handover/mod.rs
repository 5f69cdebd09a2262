//! Zero-downtime upgrade: a new process takes the running one's listening sockets, store
//! lock and admin listener over the control socket `<state_dir>/upgrade.sock`, then the old
//! one drains and exits. The plan (who listens when, failures) is in access/LIFECYCLE.md,
//! "Upgrade"; operators read docs/upgrade.md.
//!
//! Messages (one SEQPACKET message each, text plus attached descriptors):
//! new → old `hello`; old → new `lock` [fd], `admin` [fd], `control` [fd],
//! `data ADDR` [fds...] (repeated), `end`; new → old `ready` or `abort REASON`;
//! old → new `bye` (committed: the old drains) or `abort REASON` (the old goes on alone).

pub mod fdpass;

use crate::admin::AdminServer;
use fdpass::{Conn, Listener};
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The control socket's file name in `server.state_dir`.
pub const SOCKET: &str = "upgrade.sock";

/// Where a gateway with this state dir listens for upgrades.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET)
}

fn uid() -> u32 {
    // SAFETY: getuid(2) cannot fail.
    unsafe { libc::getuid() }
}

/// What a running process offers to pass on, taken when an upgrade asks.
pub struct Offer {
    /// Every data listener (one per worker and address) with its address.
    pub data: Vec<(SocketAddr, OwnedFd)>,
    /// The admin listener and the store lock.
    pub admin: OwnedFd,
    pub lock: Option<OwnedFd>,
}

/// Old side: serves upgrade requests on `listener` until one commits, then returns (the
/// caller drains the workers and exits). One upgrade at a time: a
/// second asker waits in the socket's queue (and is served by whichever process owns the
/// socket when it gets there).
pub fn serve_control(
    listener: Listener,
    admin: &AdminServer,
    offer: impl Fn() -> io::Result<Offer>,
    timeout: Duration,
) {
    loop {
        let conn = match listener.accept_timeout(Duration::from_secs(1)) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("gatehouse: upgrade: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        match conn.peer() {
            Ok((_, u)) if u == uid() => {}
            Ok((pid, u)) => {
                eprintln!("gatehouse: upgrade: refused pid {pid} of uid {u} (not ours)");
                continue;
            }
            Err(e) => {
                eprintln!("gatehouse: upgrade: cannot tell who asks: {e}");
                continue;
            }
        }
        let pid = conn.peer().map_or(0, |p| p.0);
        if conn.set_timeout(Some(timeout)).is_err() {
            continue;
        }
        match conn.recv() {
            Ok(Some((t, _))) if t == "hello" => {}
            _ => continue,
        }
        eprintln!("gatehouse: upgrade: process {pid} takes over; admin changes paused");
        admin.freeze();
        match hand_over(&conn, &listener, &offer) {
            Ok(()) => {
                admin.hand_over();
                eprintln!("gatehouse: upgrade: process {pid} serves; draining");
                return;
            }
            Err(why) => {
                admin.thaw();
                eprintln!("gatehouse: upgrade by process {pid} failed: {why}; serving on");
            }
        }
    }
}

/// Steps 3 to 6 of the plan on the old side; `Ok` once the new process heard `bye`.
fn hand_over(
    conn: &Conn,
    listener: &Listener,
    offer: &impl Fn() -> io::Result<Offer>,
) -> Result<(), String> {
    let sent = |e: io::Error| format!("cannot pass the sockets: {e}");
    let o = offer().map_err(sent)?;
    let control = listener.dup().map_err(sent)?;
    if let Some(lock) = &o.lock {
        conn.send("lock", &[lock.as_raw_fd()]).map_err(sent)?;
    }
    conn.send("admin", &[o.admin.as_raw_fd()]).map_err(sent)?;
    conn.send("control", &[control.as_raw_fd()]).map_err(sent)?;
    for (addr, fd) in &o.data {
        conn.send(&format!("data {addr}"), &[fd.as_raw_fd()])
            .map_err(sent)?;
    }
    conn.send("end", &[]).map_err(sent)?;
    // The new process opens the store, starts its workers on the sockets and says so.
    match conn.recv() {
        Ok(Some((t, _))) if t == "ready" => {}
        Ok(Some((t, _))) => {
            return Err(t.strip_prefix("abort ").unwrap_or(&t).to_string());
        }
        Ok(None) => return Err("the new process went away".into()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            let _ = conn.send(
                "abort timeout: not ready within server.upgrade_timeout_ms",
                &[],
            );
            return Err("not ready within server.upgrade_timeout_ms".into());
        }
        Err(e) => return Err(format!("control socket: {e}")),
    }
    conn.send("bye", &[])
        .map_err(|e| format!("the new process went away before it heard bye: {e}"))
}

/// New side: what the running process passed over.
pub struct Taken {
    conn: Conn,
    /// The running process's pid (for messages).
    pub old_pid: i32,
    pub lock: Option<File>,
    pub admin: Option<TcpListener>,
    pub control: Option<OwnedFd>,
    pub data: Vec<(SocketAddr, std::net::TcpListener)>,
}

/// How the running process answered `ready`.
pub enum Verdict {
    /// It heard `bye`: it drains and exits; this process serves alone.
    Committed,
    /// It went away without a word (died mid-handover): this process serves alone.
    OldGone,
}

/// Connects to the gateway listening on `path`, asks it to hand over and receives its
/// sockets. The running process pauses admin changes from here until `ready`/`abort`.
pub fn take_over(path: &Path, timeout: Duration) -> Result<Taken, String> {
    let conn = Conn::connect(path)
        .map_err(|e| format!("no running gatehouse answers on {}: {e}", path.display()))?;
    let (old_pid, u) = conn
        .peer()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if u != uid() {
        return Err(format!(
            "{} belongs to uid {u}, not to this user",
            path.display()
        ));
    }
    conn.set_timeout(Some(timeout))
        .and_then(|()| conn.send("hello", &[]))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut t = Taken {
        conn,
        old_pid,
        lock: None,
        admin: None,
        control: None,
        data: Vec::new(),
    };
    loop {
        let (text, mut fds) = match t.conn.recv() {
            Ok(Some(m)) => m,
            Ok(None) => {
                return Err(format!(
                    "the running gatehouse (pid {old_pid}) went away during the handover"
                ))
            }
            Err(e) => return Err(format!("handover from pid {old_pid}: {e}")),
        };
        let (tag, arg) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        match tag {
            "end" => return Ok(t),
            "lock" => t.lock = fds.pop().map(File::from),
            "admin" => t.admin = fds.pop().map(TcpListener::from),
            "control" => t.control = fds.pop(),
            "data" => {
                let addr: SocketAddr = arg
                    .parse()
                    .map_err(|_| format!("handover: bad address {arg:?}"))?;
                for fd in fds {
                    t.data.push((addr, std::net::TcpListener::from(fd)));
                }
            }
            "abort" => return Err(format!("the running gatehouse refused: {arg}")),
            _ => return Err(format!("handover: unexpected message {text:?}")),
        }
    }
}

impl Taken {
    /// Says this process serves; the running one commits (`bye`) or gave up (`abort`).
    pub fn ready(&self) -> Result<Verdict, String> {
        // A failed send is no verdict yet: a process that gave up (timeout) sent `abort`
        // before closing, and that message still waits here; only a silent end means it died.
        let _ = self.conn.send("ready", &[]);
        match self.conn.recv() {
            Ok(Some((t, _))) if t == "bye" => Ok(Verdict::Committed),
            Ok(Some((t, _))) => Err(t.strip_prefix("abort ").unwrap_or(&t).to_string()),
            Ok(None) => Ok(Verdict::OldGone),
            Err(e) => Err(format!("no answer from pid {}: {e}", self.old_pid)),
        }
    }

    /// Tells the running process this one cannot serve; it goes on alone.
    pub fn abort(&self, reason: &str) {
        let mut line = format!("abort {reason}");
        line.truncate(fdpass::MAX_MSG);
        while !line.is_char_boundary(line.len()) {
            line.pop();
        }
        let _ = self.conn.send(&line, &[]);
    }
}

/// The control listener of a process: the one passed over, else a fresh one at `path`
/// (the caller holds the state-dir lock, so a file there is a dead process's leftover).
pub fn control_listener(passed: Option<OwnedFd>, path: &Path) -> io::Result<Listener> {
    match passed {
        Some(fd) => Ok(Listener::from_fd(fd)),
        None => Listener::bind(path),
    }
}
