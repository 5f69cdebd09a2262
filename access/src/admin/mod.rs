//! The admin API (CONTRACT.md, docs/admin.md): resources read and changed over HTTP/JSON on
//! its own listener (`admin.listen`) and its own threads, never on a business worker.
//!
//! Start-up goes in two steps so the data plane starts on the stored config: [`Boot::prepare`]
//! opens the store, joins it with the file (`conf::store::join`), builds the snapshot and binds
//! the admin listener; after the workers run, [`Boot::start`] starts the admin threads with a
//! way to publish to them.
//!
//! Files: [`router`] (the route table), [`handlers`] (reads and request checks), [`write`]
//! (the serialized change path), [`conn`] (blocking HTTP/1.1 connections), [`openapi`] (the
//! document, generated from the route table), [`answer`] (answers and their wire form),
//! [`releases`] (gray releases and their guard).

pub mod answer;
mod conn;
pub mod handlers;
pub mod openapi;
pub mod releases;
pub mod router;
mod write;

pub use answer::Answer;
pub use router::{RouteDef, ROUTES};

use business::Snapshot;
use conf::store::{JoinError, Store};
use conf::{Config, ConfigError};
use parking_lot::Mutex;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Sends a snapshot to every worker and says whether all serve it within the timeout
/// (`access::server::Publisher::publish` in the binary).
pub type Publish = Box<dyn Fn(Arc<Snapshot>, Duration) -> bool + Send>;

/// State shared by the admin threads.
pub struct State {
    /// `[admin]` of the file: fixed for the life of the process.
    pub settings: conf::Admin,
    /// Head limits for admin requests: the data plane's `[limits]`.
    limits: protocols::http1::Limits,
    /// The published snapshot; reads clone the `Arc` and let go at once.
    current: Mutex<Arc<Snapshot>>,
    /// Held for a whole change: one writer at a time.
    writer: Mutex<Writer>,
    store: Box<dyn Store>,
    /// Releases that ended (promoted or rolled back), for `GET /admin/v1/releases/{id}`.
    finished: releases::Book,
    /// Where an upgrade stands for this admin API: [`GATE_OPEN`], [`GATE_FROZEN`] or
    /// [`GATE_HANDED`] (docs/upgrade.md).
    gate: AtomicU8,
}

/// Serving as usual.
const GATE_OPEN: u8 = 0;
/// An upgrade is in progress: no new admin connection is accepted (they wait in the
/// listener's queue, which the new process takes over) and changes are refused.
const GATE_FROZEN: u8 = 1;
/// The new process serves the admin API: connections still here close after their answer.
const GATE_HANDED: u8 = 2;

struct Writer {
    publish: Publish,
    /// Set at shutdown: later changes are refused instead of racing the workers' exit.
    stopped: bool,
    /// Set while an upgrade hands the store over: changes are refused (503 `upgrading`), so
    /// every change acknowledged before is on disk when the new process reads the store.
    frozen: bool,
}

impl State {
    /// A state serving `snap` from `store`, publishing through `publish`.
    pub fn new(snap: Arc<Snapshot>, store: Box<dyn Store>, publish: Publish) -> State {
        let l = &snap.config.limits;
        State {
            settings: snap.config.admin.clone(),
            limits: protocols::http1::Limits {
                max_request_line: l.max_request_line,
                max_head_bytes: l.max_header_bytes,
                max_headers: l.max_headers,
            },
            current: Mutex::new(snap),
            writer: Mutex::new(Writer {
                publish,
                stopped: false,
                frozen: false,
            }),
            store,
            finished: releases::Book::default(),
            gate: AtomicU8::new(GATE_OPEN),
        }
    }

    /// The published snapshot.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.lock().clone()
    }

    /// Whether a new process serves the admin API now (answers here close their connection).
    pub fn handed_over(&self) -> bool {
        self.gate.load(Ordering::Acquire) == GATE_HANDED
    }

    /// Answers one request (what a connection does per request, minus the wire).
    pub fn handle(&self, req: &router::Req) -> Answer {
        router::dispatch(self, req)
    }
}

/// Why the gateway cannot start.
#[derive(Debug)]
pub enum BootError {
    /// A config that does not validate: a line saying which, then one error per problem.
    Invalid(String, Vec<ConfigError>),
    /// Anything else (store, listener), as one message.
    Failed(String),
}

/// Everything prepared before the data plane starts.
pub struct Boot {
    snapshot: Arc<Snapshot>,
    store: Box<dyn Store>,
    listener: TcpListener,
    notes: Vec<String>,
}

impl Boot {
    /// Opens the store, applies the start-up rule, builds the snapshot to serve and binds the
    /// admin listener.
    pub fn prepare(file: Config) -> Result<Boot, BootError> {
        Boot::prepare_adopting(file, None, None)
    }

    /// Like [`Boot::prepare`] during an upgrade: `lock` is the running process's store lock
    /// and `admin` its admin listener (used when it listens on `admin.listen`; a changed
    /// address is bound anew).
    pub fn prepare_adopting(
        file: Config,
        lock: Option<std::fs::File>,
        admin: Option<TcpListener>,
    ) -> Result<Boot, BootError> {
        let store = conf::store::open_adopting(&file, lock).map_err(|e| BootError::Failed(e.0))?;
        let joined =
            conf::store::join(file, store.as_ref(), Snapshot::build).map_err(|e| match e {
                JoinError::Store(e) => BootError::Failed(e.0),
                JoinError::File(errs) => BootError::Invalid(String::new(), errs),
                JoinError::Stored(errs) => BootError::Invalid(
                    format!(
                        "gatehouse: the resources in the {} do not form a valid config with \
                         the config file (see docs/admin.md):",
                        store.describe()
                    ),
                    errs,
                ),
            })?;
        let mut notes = joined.notes;
        if joined.seeded {
            notes.push(format!(
                "seeded the {} from the config file's resources (version 1)",
                store.describe()
            ));
        }
        let cfg = &joined.built.config.admin;
        let addr = cfg.listen_addr().ok_or_else(|| {
            BootError::Failed(format!("admin.listen {:?} is invalid", cfg.listen))
        })?;
        let listener = match admin {
            Some(l) if l.local_addr().is_ok_and(|a| a == addr) => l,
            _ => TcpListener::bind(addr)
                .map_err(|e| BootError::Failed(format!("cannot listen on {addr} (admin): {e}")))?,
        };
        // Accepting threads poll, so the gate can stop them (see `accept_loop`); the flag
        // lives on the socket, shared with a process it is passed to, which polls too.
        listener
            .set_nonblocking(true)
            .map_err(|e| BootError::Failed(format!("admin listener: {e}")))?;
        Ok(Boot {
            snapshot: joined.built,
            store,
            listener,
            notes,
        })
    }

    /// The snapshot the data plane starts with.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.clone()
    }

    /// Lines for the log (seeding, file resources the store overrides).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Starts the admin threads.
    pub fn start(self, publish: Publish) -> io::Result<AdminServer> {
        let addr = self.listener.local_addr()?;
        let threads = self.snapshot.config.admin.threads.max(1);
        let state = Arc::new(State::new(self.snapshot, self.store, publish));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let listener = self.listener.try_clone()?;
            let state = state.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("gatehouse-admin{i}"))
                    .spawn(move || accept_loop(&listener, &state))?,
            );
        }
        // The auto-rollback guard of gray releases watches from the admin side too.
        handles.push(releases::start_guard(state.clone())?);
        Ok(AdminServer {
            state,
            addr,
            listener: self.listener,
            _threads: handles,
        })
    }
}

/// How long an accepting thread sleeps in poll before it looks at the gate again.
const GATE_POLL_MS: libc::c_int = 100;

/// Serves connections one at a time until the admin API is handed to a new process (else
/// for ever: the process exit ends it).
fn accept_loop(listener: &TcpListener, state: &State) {
    loop {
        match state.gate.load(Ordering::Acquire) {
            GATE_HANDED => return,
            GATE_FROZEN => {
                std::thread::sleep(Duration::from_millis(GATE_POLL_MS as u64));
                continue;
            }
            _ => {}
        }
        let mut p = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        if unsafe { libc::poll(&mut p, 1, GATE_POLL_MS) } <= 0 {
            continue;
        }
        if state.gate.load(Ordering::Acquire) != GATE_OPEN {
            continue;
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                // Accepted sockets do not inherit O_NONBLOCK on Linux; be sure anyway.
                let _ = stream.set_nonblocking(false);
                conn::serve(state, stream, peer)
            }
            // Another thread (or the other process of an upgrade) took it.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // EMFILE and friends: try again shortly rather than spin.
                eprintln!("gatehouse: admin: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The running admin API.
pub struct AdminServer {
    state: Arc<State>,
    addr: SocketAddr,
    /// Kept to pass on in an upgrade.
    listener: TcpListener,
    _threads: Vec<JoinHandle<()>>,
}

impl AdminServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for a change in progress to finish and refuses later ones, so a shutdown never
    /// interrupts a change between its save and its publication. Reads go on until exit.
    pub fn stop(&self) {
        self.state.writer.lock().stopped = true;
    }

    /// Upgrade step 2 (access/LIFECYCLE.md): stops accepting admin connections, waits for a
    /// change in progress and refuses later ones, so the store on disk holds every change
    /// this process acknowledged.
    pub fn freeze(&self) {
        self.state.gate.store(GATE_FROZEN, Ordering::Release);
        self.state.writer.lock().frozen = true;
    }

    /// Undoes [`AdminServer::freeze`]: the upgrade failed and this process goes on alone.
    pub fn thaw(&self) {
        self.state.writer.lock().frozen = false;
        self.state.gate.store(GATE_OPEN, Ordering::Release);
    }

    /// The new process serves the admin API: the accepting threads end, connections still
    /// open here close after their next answer, and changes stay refused.
    pub fn hand_over(&self) {
        self.state.gate.store(GATE_HANDED, Ordering::Release);
    }

    /// Copies of the descriptors an upgrade passes on: the admin listener and the store's
    /// lock (absent for a store without one).
    pub fn handover_fds(&self) -> io::Result<(OwnedFd, Option<OwnedFd>)> {
        let listener = OwnedFd::from(self.listener.try_clone()?);
        let lock = match self.state.store.lock_fd() {
            Some(fd) => Some(fd.try_clone_to_owned()?),
            None => None,
        };
        Ok((listener, lock))
    }
}

#[cfg(test)]
mod tests;
