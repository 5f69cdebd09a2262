//! jwt engine.
