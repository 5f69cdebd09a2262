//! Starting and stopping the data plane: bind every worker's listeners up front (so a bad
//! address fails the start, not a worker), start the workers, then wait for SIGINT/SIGTERM
//! on the main thread and drain. The active health checker runs beside the workers and
//! gets every snapshot they are given.

use crate::worker::{Task, Worker};
use business::Snapshot;
use components::health_check::{Checker, CheckerHandle};
use parking_lot::Mutex;
use reactor::InboxSender;
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR2};
use signal_hook::iterator::Signals;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running data plane.
pub struct Server {
    senders: Vec<InboxSender<Task>>,
    threads: Vec<JoinHandle<()>>,
    /// The active health checker (a control thread), fed every published snapshot.
    checker: Checker,
    pub addrs: Vec<SocketAddr>,
    /// HTTPS listeners (docs/tls.md).
    pub tls_addrs: Vec<SocketAddr>,
    /// A copy of every listening socket (all workers, all addresses), for an upgrade to pass
    /// on: the new process must take each one, since each holds its own accept queue.
    /// Emptied when the workers stop, so a stopped gateway's sockets really close.
    handover: HandoverListeners,
}

/// The server's copies of its listening sockets, shared with the upgrade thread.
#[derive(Clone)]
pub struct HandoverListeners(Arc<Mutex<Vec<(SocketAddr, std::net::TcpListener)>>>);

impl HandoverListeners {
    /// Fresh copies of every listening socket with its address, to pass on.
    pub fn dup_all(&self) -> io::Result<Vec<(SocketAddr, OwnedFd)>> {
        self.0
            .lock()
            .iter()
            .map(|(a, l)| Ok((*a, OwnedFd::from(l.try_clone()?))))
            .collect()
    }
}

impl Server {
    /// Binds and starts `workers` workers serving `snap`.
    pub fn start(snap: Arc<Snapshot>) -> io::Result<Server> {
        Server::start_with(snap, Vec::new())
    }

    /// Like [`Server::start`], serving also the `inherited` listeners an upgrade passed over
    /// (docs/upgrade.md): every inherited socket of a configured address is served (spread
    /// over the workers); a worker left without one joins the port with a fresh SO_REUSEPORT
    /// socket; an address nobody passed is bound anew; inherited sockets of addresses the
    /// config no longer has are closed.
    pub fn start_with(
        snap: Arc<Snapshot>,
        inherited: Vec<(SocketAddr, std::net::TcpListener)>,
    ) -> io::Result<Server> {
        let cfg = &snap.config.server;
        let workers = reactor::cpus::workers(cfg.workers).max(1);
        let mut addrs: Vec<SocketAddr> = cfg.listen_addrs();
        let plain = addrs.len();
        // HTTPS listeners after the plain ones, each with its client-certificate policy.
        let tls = snap
            .config
            .tls
            .listen_addrs(!snap.config.certificates.is_empty());
        addrs.extend(tls.iter().map(|(a, _)| *a));
        let mut senders = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        let mut per_worker: Vec<Vec<(std::net::TcpListener, Option<usize>)>> = (0..workers)
            .map(|_| Vec::with_capacity(addrs.len()))
            .collect();
        let mut inherited = inherited;
        for (i, a) in addrs.iter_mut().enumerate() {
            let policy = i.checked_sub(plain).and_then(|t| tls.get(t)).map(|x| x.1);
            let mut taken: Vec<std::net::TcpListener> = Vec::new();
            let mut i = 0;
            while i < inherited.len() {
                if inherited.get(i).is_some_and(|(ia, _)| ia == a) {
                    taken.push(inherited.swap_remove(i).1);
                } else {
                    i += 1;
                }
            }
            if taken.is_empty() {
                crate::listener::ensure_free(*a)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")))?;
            }
            let mut taken = taken.into_iter();
            for (w, ls) in per_worker.iter_mut().enumerate() {
                let l = match taken.next() {
                    Some(l) => {
                        l.set_nonblocking(true)?;
                        l
                    }
                    None => crate::listener::bind(*a).map_err(|e| {
                        io::Error::new(e.kind(), format!("cannot listen on {a}: {e}"))
                    })?,
                };
                // Port 0 picks a port once; the other workers share it.
                if w == 0 {
                    *a = l.local_addr()?;
                }
                ls.push((l, policy));
            }
            // More inherited sockets than workers: each still has its queue to serve.
            for (k, l) in taken.enumerate() {
                l.set_nonblocking(true)?;
                if let Some(ls) = per_worker.get_mut(k % workers) {
                    ls.push((l, policy));
                }
            }
        }
        let mut handover = Vec::new();
        for ls in &per_worker {
            for (l, _) in ls {
                handover.push((l.local_addr()?, l.try_clone()?));
            }
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
        let checker = Checker::start(business::resilience::check_targets(&snap))?;
        Ok(Server {
            senders,
            threads,
            checker,
            tls_addrs: addrs.split_off(plain),
            addrs,
            handover: HandoverListeners(Arc::new(Mutex::new(handover))),
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
            checker: self.checker.handle(),
        }
    }

    /// The listening sockets an upgrade passes on (see [`HandoverListeners`]).
    pub fn handover_listeners(&self) -> HandoverListeners {
        self.handover.clone()
    }

    /// Asks every worker to stop and waits until all have drained.
    pub fn stop(self) {
        self.end(|| Task::Stop)
    }

    /// After an upgrade handed the listeners over: every worker stops accepting and drains
    /// (idle connections get one more answer, with `Connection: close`).
    pub fn drain(self) {
        self.end(|| Task::Drain)
    }

    fn end(self, task: impl Fn() -> Task) {
        // The workers close their copies as they stop; these go first, so nothing is left
        // queueing connections nobody will accept (after an upgrade the new process holds
        // its own copies).
        self.handover.0.lock().clear();
        self.checker.stop();
        for s in &self.senders {
            let _ = s.send(task());
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
    checker: CheckerHandle,
}

impl Publisher {
    /// Like [`Server::publish`]: sends `snap` to every worker and waits for each to serve it.
    pub fn publish(&self, snap: Arc<Snapshot>, timeout: std::time::Duration) -> bool {
        self.checker
            .update(business::resilience::check_targets(&snap));
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

/// Takes over SIGINT, SIGTERM and SIGUSR2 (start an upgrade, docs/upgrade.md). Called before
/// the listeners open, so a signal sent the moment the port accepts is handled, never the
/// default disposition's kill.
pub fn catch_signals() -> io::Result<Signals> {
    Signals::new([SIGINT, SIGTERM, SIGUSR2])
}

/// Blocks until the next signal `catch_signals` took over.
pub fn wait_for_signal(signals: &mut Signals) -> i32 {
    signals.forever().next().unwrap_or(SIGTERM)
}
