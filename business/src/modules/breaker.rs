//! breaker engine.
