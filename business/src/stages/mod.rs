//! The built-in stages every request goes through: route matching and upstream selection.

mod route;
mod upstream;

pub use route::RouteStage;
pub use upstream::UpstreamStage;
