//! Components shared by the business stages: per-core upstream connection pools and
//! balancers. Pools and balancer positions are owned by one worker and used only on its
//! thread, so nothing takes a lock; cross-core requests reach a pool as tasks in the owning
//! worker's inbox. Node health (`health`, `outlier`, `retry_budget`) is the exception: one
//! table of atomics per upstream shared by every core and the active checker
//! (`health_check`, a control thread); components/RESILIENCE.md has the plan.

pub mod balancer;
pub mod balancer_hash;
pub mod health;
pub mod health_check;
pub mod health_check_thrift;
pub mod http_pool;
pub mod mux_pool;
pub mod outlier;
pub mod retry_budget;
pub mod tls;

pub use balancer::Wrr;
pub use http_pool::{ConnState, HttpPool, UpConn};
pub use mux_pool::MuxPool;
