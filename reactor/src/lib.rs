//! The hand-rolled per-core event loop of Gatehouse, on mio.
//!
//! Each worker thread owns one [`mio::Poll`], a slab of sessions addressed by typed [`Token`]s,
//! a [`TimerWheel`], an [`Inbox`] of cross-core tasks woken through a `mio::Waker`, and a
//! [`BufPool`] of recycled buffers. Nothing here knows about HTTP: the access layer drives
//! sessions; this crate only gives it the loop's building blocks. See `LIFECYCLE.md`.

pub mod bufpool;
pub mod clock;
pub mod cpus;
pub mod inbox;
pub mod timer;
pub mod token;

pub use bufpool::{BufPool, PooledBuf};
pub use clock::Clock;
pub use inbox::{Inbox, InboxSender};
pub use timer::TimerWheel;
pub use token::{Kind, Token};
