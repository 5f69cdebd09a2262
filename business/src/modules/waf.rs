//! waf engine.
