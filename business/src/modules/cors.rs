//! cors engine.
