//! A coarse per-loop clock in milliseconds.
//!
//! Reading the time once per loop iteration (vDSO, no syscall) and handing the cached value to
//! everything that runs in that iteration keeps timeouts cheap and consistent.

use std::time::Instant;

/// Milliseconds since the clock was created, refreshed by [`Clock::update`].
#[derive(Debug)]
pub struct Clock {
    origin: Instant,
    now: u64,
    now_us: u64,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            origin: Instant::now(),
            now: 1,
            now_us: 1,
        }
    }

    /// Refreshes and returns the cached time. It starts at 1, never 0, so callers can use
    /// 0 to mean "no time recorded".
    pub fn update(&mut self) -> u64 {
        let us = self.origin.elapsed().as_micros() as u64;
        self.now_us = us + 1;
        self.now = us / 1000 + 1;
        self.now
    }

    /// The cached time in microseconds (same origin), for latency figures.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// The time cached by the last update.
    pub fn now(&self) -> u64 {
        self.now
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
