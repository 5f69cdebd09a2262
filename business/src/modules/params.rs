//! params engine.
