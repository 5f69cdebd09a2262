//! perf helpers.
