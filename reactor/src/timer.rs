//! A hashed timer wheel keyed by token, with lazy cancellation.
//!
//! Sessions keep their real deadline in their own state and only put an entry in the wheel
//! when it must fire sooner than the one they already have. When an entry fires, the owner
//! compares it with its current deadline: stale entries are ignored, later deadlines are
//! re-armed. This keeps per-request work at one integer store (no wheel operation) while
//! keep-alive requests push the idle deadline forward, and the wheel never allocates once
//! its slots have grown to their working size.

/// Milliseconds per slot.
const TICK_MS: u64 = 8;
/// Slots in one rotation (a power of two): 8 ms * 4096 = about 33 s per turn; later entries
/// simply stay in their slot for more turns.
const SLOTS: usize = 4096;

/// One wheel entry: who, and when it was meant to fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub token: usize,
    pub deadline: u64,
}

pub struct TimerWheel {
    slots: Vec<Vec<Entry>>,
    /// The last tick whose slot has been scanned.
    cursor: u64,
    len: usize,
    /// No slot before this tick holds an entry, so the loop can sleep until then without
    /// scanning empty slots on every iteration.
    hint: u64,
}

impl TimerWheel {
    pub fn new(now: u64) -> TimerWheel {
        TimerWheel {
            // Slots start with room for a few entries so arming timers in steady state does
            // not reach the allocator.
            slots: (0..SLOTS).map(|_| Vec::with_capacity(4)).collect(),
            cursor: now / TICK_MS,
            len: 0,
            hint: u64::MAX,
        }
    }

    /// Number of entries, stale ones included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds an entry for `token` firing at `deadline` (ms on the worker's clock).
    pub fn schedule(&mut self, token: usize, deadline: u64) {
        // Rounding up makes every entry of a scanned slot due by the time its tick is scanned;
        // an entry due in a tick already scanned goes into the next slot to be scanned.
        let tick = deadline.div_ceil(TICK_MS).max(self.cursor + 1);
        self.slots[(tick as usize) & (SLOTS - 1)].push(Entry { token, deadline });
        self.len += 1;
        self.hint = self.hint.min(tick);
    }

    /// Moves every entry due at or before `now` into `out`.
    pub fn expire(&mut self, now: u64, out: &mut Vec<Entry>) {
        let now_tick = now / TICK_MS;
        if now_tick <= self.cursor {
            return;
        }
        // Scanning more than one rotation would visit slots twice.
        let first = if now_tick - self.cursor > SLOTS as u64 {
            now_tick - SLOTS as u64 + 1
        } else {
            self.cursor + 1
        };
        for tick in first..=now_tick {
            let slot = &mut self.slots[(tick as usize) & (SLOTS - 1)];
            let mut i = 0;
            while i < slot.len() {
                if slot[i].deadline <= now {
                    out.push(slot.swap_remove(i));
                    self.len -= 1;
                } else {
                    i += 1;
                }
            }
        }
        self.cursor = now_tick;
        if self.hint <= now_tick {
            self.hint = self.first_busy_tick();
        }
    }

    /// The first tick after the cursor whose slot holds an entry (one rotation at most).
    fn first_busy_tick(&self) -> u64 {
        if self.len == 0 {
            return u64::MAX;
        }
        (1..=SLOTS as u64)
            .map(|i| self.cursor + i)
            .find(|&t| !self.slots[(t as usize) & (SLOTS - 1)].is_empty())
            .unwrap_or(u64::MAX)
    }

    /// Milliseconds until the next slot that holds an entry, capped at `max`, so the poll
    /// timeout wakes the loop in time; O(1), since the first busy slot is tracked.
    pub fn next_timeout(&self, now: u64, max: u64) -> u64 {
        if self.hint == u64::MAX {
            return max;
        }
        (self.hint * TICK_MS).saturating_sub(now).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_and_not_early() {
        let mut w = TimerWheel::new(0);
        w.schedule(1, 100);
        w.schedule(2, 50);
        w.schedule(3, 100_000);
        let mut out = Vec::new();
        w.expire(49, &mut out);
        assert!(out.is_empty());
        w.expire(60, &mut out);
        assert_eq!(
            out,
            vec![Entry {
                token: 2,
                deadline: 50
            }]
        );
        out.clear();
        w.expire(120, &mut out);
        assert_eq!(
            out,
            vec![Entry {
                token: 1,
                deadline: 100
            }]
        );
        out.clear();
        // Far entries survive whole rotations and fire when due.
        w.expire(99_000, &mut out);
        assert!(out.is_empty());
        w.expire(100_010, &mut out);
        assert_eq!(
            out,
            vec![Entry {
                token: 3,
                deadline: 100_000
            }]
        );
        assert!(w.is_empty());
    }

    #[test]
    fn past_deadline_fires_on_next_scan() {
        let mut w = TimerWheel::new(1000);
        let mut out = Vec::new();
        w.expire(1000, &mut out);
        w.schedule(7, 10);
        w.expire(1010, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn next_timeout_is_bounded() {
        let mut w = TimerWheel::new(0);
        assert_eq!(w.next_timeout(0, 500), 500);
        w.schedule(1, 40);
        let t = w.next_timeout(0, 500);
        assert!((40..=48).contains(&t), "{t}");
        let mut out = Vec::new();
        w.expire(48, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(w.next_timeout(48, 500), 500, "nothing left to wait for");
        w.schedule(2, 5000);
        w.schedule(3, 200);
        let t = w.next_timeout(48, 10_000);
        assert!((150..=160).contains(&t), "{t}");
    }
}
