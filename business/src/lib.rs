//! Business layer: a per-request context moving through a fixed order of stages.

pub mod modules;
