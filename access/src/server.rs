//! Starting and stopping the data plane: bind every worker's listeners up front (so a bad
//! address fails the start, not a worker), start the workers, then wait for SIGINT/SIGTERM
//! on the main thread and drain.

use crate::worker::{Task, Worker};
use business::Snapshot;
use reactor::InboxSender;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running data plane.
pub struct Server {
    senders: Vec<InboxSender<Task>>,
    threads: Vec<JoinHandle<()>>,
    pub addrs: Vec<SocketAddr>,
}

impl Server {
    /// Binds and starts `workers` workers serving `snap`.
    pub fn start(snap: Arc<Snapshot>) -> io::Result<Server> {
        let cfg = &snap.config.server;
        let workers = reactor::cpus::workers(cfg.workers);
        let mut addrs: Vec<SocketAddr> = cfg.listen_addrs();
        let mut senders = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        let mut per_worker = Vec::with_capacity(workers);
        for a in &addrs {
            crate::listener::ensure_free(*a)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")))?;
        }
        for _ in 0..workers {
            let mut ls = Vec::with_capacity(addrs.len());
            for a in addrs.iter_mut() {
                let l = crate::listener::bind(*a)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")))?;
                // Port 0 picks a port once; the other workers share it.
                *a = l.local_addr()?;
                ls.push(l);
            }
            per_worker.push(ls);
        }
        for (id, ls) in per_worker.into_iter().enumerate() {
            // A worker holds per-thread state (`Rc`s), so it is built on its own thread and
            // hands back only its inbox.
            let (tx, rx) = std::sync::mpsc::channel();
            let pin = cfg.cpu_affinity;
            let snap = snap.clone();
            let t = std::thread::Builder::new()
                .name(format!("gatehouse-w{id}"))
                .spawn(move || {
                    if pin {
                        reactor::cpus::pin(id);
                    }
                    match Worker::new(id, ls, snap) {
                        Ok(w) => {
                            let _ = tx.send(Ok(w.sender()));
                            w.run();
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                })?;
            let sender = rx
                .recv()
                .map_err(|_| io::Error::other("worker died while starting"))??;
            senders.push(sender);
            threads.push(t);
        }
        Ok(Server {
            senders,
            threads,
            addrs,
        })
    }

    /// Publishes a new snapshot to every worker and waits until each serves it (or
    /// `timeout` passes). Returns whether every worker confirmed.
    pub fn publish(&self, snap: Arc<Snapshot>, timeout: std::time::Duration) -> bool {
        self.publisher().publish(snap, timeout)
    }

    /// A handle that can publish snapshots from another thread (the admin API).
    pub fn publisher(&self) -> Publisher {
        Publisher {
            senders: self.senders.clone(),
        }
    }

    /// Asks every worker to stop and waits until all have drained.
    pub fn stop(self) {
        for s in &self.senders {
            let _ = s.send(Task::Stop);
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Publishes snapshots to the workers from any thread.
#[derive(Clone)]
pub struct Publisher {
    senders: Vec<InboxSender<Task>>,
}

impl Publisher {
    /// Like [`Server::publish`]: sends `snap` to every worker and waits for each to serve it.
    pub fn publish(&self, snap: Arc<Snapshot>, timeout: std::time::Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut sent = 0;
        for s in &self.senders {
            if s.send(Task::Swap(snap.clone(), Some(tx.clone()))).is_ok() {
                sent += 1;
            }
        }
        let deadline = std::time::Instant::now() + timeout;
        for _ in 0..sent {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if rx.recv_timeout(left).is_err() {
                return false;
            }
        }
        sent == self.senders.len()
    }
}

/// Takes over SIGINT and SIGTERM. Called before the listeners open, so a stop requested the
/// moment the port accepts is a graceful one, never the default disposition's kill.
pub fn catch_signals() -> io::Result<Signals> {
    Signals::new([SIGINT, SIGTERM])
}

/// Blocks until SIGINT or SIGTERM.
pub fn wait_for_signal(signals: &mut Signals) -> i32 {
    signals.forever().next().unwrap_or(SIGTERM)
}
