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
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            origin: Instant::now(),
            now: 0,
        }
    }

    /// Refreshes and returns the cached time. It starts at 1, never 0, so callers can use
    /// 0 to mean "no time recorded".
    pub fn update(&mut self) -> u64 {
        self.now = self.origin.elapsed().as_millis() as u64 + 1;
        self.now
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
