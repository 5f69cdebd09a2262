//! waf engine.

pub(crate) mod decode;
