//! Business layer: a per-request [`Context`] moving through a fixed order of stages, cheapest
//! and most selective first (see ARCHITECTURE.md and `LIFECYCLE.md` beside this file).
//!
//! This crate never touches a socket. The access layer parses a request, hands the pipeline a
//! borrowed [`Request`] view and a reusable [`Context`], and acts on the [`Flow`] it gets back:
//! answer now, proxy to the chosen upstream node, or (later) wait for outbound calls.

pub mod admission;
pub mod calls;
pub mod codec;
pub mod context;
pub mod headers;
pub mod modules;
pub mod pipeline;
pub mod release;
pub mod resilience;
pub mod snapshot;
pub mod stage;
pub mod stages;
pub mod thrift;
pub mod tls;
pub mod token;

pub use context::Context;
pub use headers::HeaderBuf;
pub use pipeline::{CoreState, Pipeline};
pub use snapshot::{Snapshot, UpstreamRt};
pub use stage::{FieldName, Flow, Reject, Request, Stage};
