//! Cross-core tasks: a queue per worker, woken through the worker's `mio::Waker`.
//!
//! Only control traffic goes through here (config swaps, stop, tasks for the core that owns a
//! pool), never per-request work, so a short parking_lot critical section is fine; the worker
//! swaps the whole queue out in one step and runs the tasks without holding the lock.

use parking_lot::Mutex;
use std::io;
use std::sync::Arc;

struct Shared<T> {
    queue: Mutex<Vec<T>>,
    waker: mio::Waker,
}

/// The receiving end, owned by one worker.
pub struct Inbox<T> {
    shared: Arc<Shared<T>>,
}

/// A cloneable sending end.
pub struct InboxSender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for InboxSender<T> {
    fn clone(&self) -> Self {
        InboxSender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Inbox<T> {
    /// Creates an inbox whose waker fires `token` on `registry`.
    pub fn new(registry: &mio::Registry, token: mio::Token) -> io::Result<Inbox<T>> {
        let waker = mio::Waker::new(registry, token)?;
        Ok(Inbox {
            shared: Arc::new(Shared {
                queue: Mutex::new(Vec::new()),
                waker,
            }),
        })
    }

    pub fn sender(&self) -> InboxSender<T> {
        InboxSender {
            shared: self.shared.clone(),
        }
    }

    /// Moves every queued task into `out` (which keeps its capacity between calls).
    pub fn drain_into(&self, out: &mut Vec<T>) {
        let mut q = self.shared.queue.lock();
        out.append(&mut q);
    }
}

impl<T> InboxSender<T> {
    /// Queues a task and wakes the worker.
    pub fn send(&self, task: T) -> io::Result<()> {
        self.shared.queue.lock().push(task);
        self.shared.waker.wake()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn send_wakes_and_drains() {
        let mut poll = mio::Poll::new().unwrap();
        let inbox: Inbox<u32> = Inbox::new(poll.registry(), mio::Token(9)).unwrap();
        let tx = inbox.sender();
        let t = std::thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
        });
        let mut events = mio::Events::with_capacity(8);
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(events.iter().any(|e| e.token() == mio::Token(9)));
        t.join().unwrap();
        let mut out = Vec::new();
        inbox.drain_into(&mut out);
        assert_eq!(out, vec![1, 2]);
    }
}
