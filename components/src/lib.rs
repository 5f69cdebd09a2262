//! Components shared by the business stages: per-core upstream connection pools and
//! balancers. Everything here is owned by one worker and used only on its thread, so nothing
//! takes a lock; cross-core requests reach a pool as tasks in the owning worker's inbox.

pub mod balancer;
pub mod http_pool;
pub mod mux_pool;
pub mod tls;

pub use balancer::Wrr;
pub use http_pool::{ConnState, HttpPool, UpConn};
pub use mux_pool::MuxPool;
