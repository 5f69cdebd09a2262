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
}

struct Writer {
    publish: Publish,
    /// Set at shutdown: later changes are refused instead of racing the workers' exit.
    stopped: bool,
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
            }),
            store,
            finished: releases::Book::default(),
        }
    }

    /// The published snapshot.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.lock().clone()
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
        let store = conf::store::open(&file).map_err(|e| BootError::Failed(e.0))?;
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
        let listener = TcpListener::bind(addr)
            .map_err(|e| BootError::Failed(format!("cannot listen on {addr} (admin): {e}")))?;
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
            _threads: handles,
        })
    }
}

/// Serves connections one at a time, for ever (the process exit ends it).
fn accept_loop(listener: &TcpListener, state: &State) {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => conn::serve(state, stream, peer),
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
}

#[cfg(test)]
mod tests;
