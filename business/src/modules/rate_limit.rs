//! rate_limit engine.
