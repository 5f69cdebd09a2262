//! crypto_box engines: the `decrypt` module kind (AES-256-GCM request bodies in, encrypted
//! response bodies out, one key per app) and the `sign_check` module kind (an app's signature
//! over timestamp, method, target and body digest). Both are pure: the stage hands them the
//! request view and body buffers; keys are compiled once per config version.

pub mod decrypt;
pub mod sign_check;
pub mod wire;
