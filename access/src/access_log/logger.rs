//! The logger thread: drains every worker's queue, formats each record as a JSON line and
//! hands it to the sink; reopens the file on SIGUSR1; at stop, drains what is left and
//! gives a slow sink a bounded time to take it.
//!
//! The thread polls the queues (a short sleep when a round found nothing) instead of being
//! woken per record: a wake-up would cost the worker a syscall per request, a sleep costs
//! the logger nothing while the queues are sized for many rounds of traffic.

use super::file::FileSink;
use super::json::write_json;
use super::syslog::SyslogSink;
use super::{hub, Shared};
use conf::access_log::{AccessSink, Log};
use signal_hook::consts::SIGUSR1;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Records taken from one queue before moving to the next (fairness between workers).
const BATCH: usize = 256;
/// Sleep after a round that found no record, doubling while rounds stay empty up to
/// `IDLE_MAX` (an idle gateway's logger wakes 100 times a second; a queue of the default
/// 2048 records covers 10 ms at 200k requests per second per worker).
const IDLE_MIN: Duration = Duration::from_millis(1);
const IDLE_MAX: Duration = Duration::from_millis(10);
/// How often queues of workers that have gone are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

enum Sink {
    File(FileSink),
    Syslog(SyslogSink),
}

impl Sink {
    fn write(&mut self, time_us: u64, line: &[u8], worker: u16) -> bool {
        match self {
            Sink::File(f) => f.write(line, worker),
            Sink::Syslog(s) => s.write(time_us, line, worker),
        }
    }

    fn flush(&mut self) {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Syslog(s) => s.flush(),
        }
    }

    fn reopen(&mut self) {
        if let Sink::File(f) = self {
            f.reopen();
        }
    }

    fn finish(&mut self, deadline: Instant) {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Syslog(s) => s.finish(deadline),
        }
    }

    fn take_lost(&mut self, f: impl FnMut(u16)) {
        match self {
            Sink::File(s) => s.take_lost(f),
            Sink::Syslog(s) => s.take_lost(f),
        }
    }
}

/// The running logger thread; stop it with [`Logger::stop`] (or by dropping it).
pub struct Logger {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    sig: Option<signal_hook::SigId>,
}

impl Logger {
    /// Starts the logger for `cfg`; `None` when the access log is off. Fails when the file
    /// cannot be opened, when SIGUSR1 cannot be caught, or when a logger already runs in
    /// this process (the queues are process-wide).
    pub fn start(cfg: &Log) -> io::Result<Option<Logger>> {
        let retry = Duration::from_millis(cfg.reconnect_ms);
        let sink = match cfg.access {
            AccessSink::Off => return Ok(None),
            AccessSink::File => Sink::File(FileSink::open(&cfg.path, cfg.max_bytes, retry)?),
            AccessSink::Syslog => {
                let (Some(addr), Some(facility)) = (cfg.syslog_addr(), cfg.facility_code()) else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "log.syslog or log.facility is invalid",
                    ));
                };
                Sink::Syslog(SyslogSink::new(
                    addr,
                    facility,
                    &cfg.app_name,
                    cfg.buffer_bytes,
                    retry,
                ))
            }
        };
        if hub().running.swap(true, Ordering::AcqRel) {
            return Err(io::Error::other("an access logger already runs"));
        }
        let reopen = Arc::new(AtomicBool::new(false));
        let sig = match signal_hook::flag::register(SIGUSR1, reopen.clone()) {
            Ok(id) => id,
            Err(e) => {
                hub().running.store(false, Ordering::Release);
                return Err(e);
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flush_timeout = Duration::from_millis(cfg.flush_timeout_ms);
        let st = stop.clone();
        let thread = std::thread::Builder::new()
            .name("gatehouse-log".to_string())
            .spawn(move || run(sink, &st, &reopen, flush_timeout));
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                signal_hook::low_level::unregister(sig);
                hub().running.store(false, Ordering::Release);
                return Err(e);
            }
        };
        Ok(Some(Logger {
            stop,
            thread: Some(thread),
            sig: Some(sig),
        }))
    }

    /// Writes out everything queued (call after the workers stopped) and ends the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(t) = self.thread.take() else { return };
        self.stop.store(true, Ordering::Release);
        let _ = t.join();
        if let Some(sig) = self.sig.take() {
            signal_hook::low_level::unregister(sig);
        }
        hub().running.store(false, Ordering::Release);
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Counts a line lost after it left its queue against the worker it came from.
fn lost_from(queues: &[Arc<Shared>], worker: u16) {
    if let Some(q) = queues.iter().find(|q| q.worker == worker) {
        q.sink_dropped.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn run(mut sink: Sink, stop: &AtomicBool, reopen: &AtomicBool, flush_timeout: Duration) {
    let mut queues: Vec<Arc<Shared>> = Vec::with_capacity(64);
    let mut generation = u64::MAX;
    let mut line: Vec<u8> = Vec::with_capacity(4096);
    let mut last_prune = Instant::now();
    let mut idle = IDLE_MIN;
    loop {
        let g = hub().generation.load(Ordering::Acquire);
        if g != generation {
            generation = g;
            queues.clear();
            queues.extend(hub().queues.lock().iter().cloned());
        }
        if reopen.swap(false, Ordering::AcqRel) {
            sink.reopen();
        }
        // Read before draining: whatever was pushed before `stop` was set is drained in
        // this round or a later one, and the loop ends only on a round that found nothing.
        let stopping = stop.load(Ordering::Acquire);
        let mut n = 0usize;
        for q in &queues {
            for _ in 0..BATCH {
                let Some(r) = q.queue.pop() else { break };
                n += 1;
                line.clear();
                write_json(&r, &mut line);
                if !sink.write(r.time_us, &line, r.worker) {
                    q.sink_dropped.0.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        sink.flush();
        sink.take_lost(|w| lost_from(&queues, w));
        if n > 0 {
            idle = IDLE_MIN;
        } else {
            if stopping {
                break;
            }
            if last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = Instant::now();
                super::prune();
            }
            std::thread::sleep(idle);
            idle = (idle * 2).min(IDLE_MAX);
        }
    }
    sink.finish(Instant::now() + flush_timeout);
    sink.take_lost(|w| lost_from(&queues, w));
}
