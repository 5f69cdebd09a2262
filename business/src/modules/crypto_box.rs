//! crypto_box engine.
