//! Body codecs: modules that rewrite the body on its way through (`decrypt`), which the
//! access layer applies because only it holds the bytes.
//!
//! A stage that needs one records it in the context (`ctx.codec`, with the app it resolved in
//! `ctx.codec_app`). The access layer then, for a request with a body, opens the buffered
//! body in place and forwards the plaintext with its own `Content-Length`; and, when the codec
//! seals answers, buffers the upstream's answer body (bounded) and sends it sealed with a new
//! `Content-Length` and `Content-Type`.

use crate::modules::crypto_box::decrypt::Decrypt;
use crate::modules::key_auth::common::AuthError;
use protocols::error::ErrorKind;

/// Longest app id kept in a context.
pub const MAX_APP_ID: usize = 128;

/// The reason phrase of a codec refusal, as the JSON message detail.
fn reject(e: AuthError) -> ErrorKind {
    match e.status() {
        413 => ErrorKind::BodyTooLarge,
        401 => ErrorKind::AuthFailed,
        _ => ErrorKind::BadRequest(e.code()),
    }
}

pub trait BodyCodec: Send + Sync + std::fmt::Debug {
    /// Opens a request body where it lies: the plaintext's (offset, length) within `body`.
    fn open(&self, app: &str, body: &mut [u8]) -> Result<(usize, usize), ErrorKind>;

    /// Whether answers are sealed back to the app.
    fn seals_answers(&self) -> bool;

    /// Bytes a sealed answer of `n` plaintext bytes takes.
    fn sealed_len(&self, n: usize) -> usize;

    /// Offset at which the plaintext goes in the frame given to [`BodyCodec::seal`].
    fn seal_offset(&self) -> usize;

    /// Seals `n` plaintext bytes placed at `seal_offset()` of `frame` (at least
    /// `sealed_len(n)` long); returns the sealed length from the frame's start.
    fn seal(&self, app: &str, frame: &mut [u8], n: usize) -> Result<usize, ErrorKind>;

    /// `Content-Type` of sealed answers.
    fn content_type(&self) -> &'static str;
}

impl BodyCodec for Decrypt {
    fn open(&self, app: &str, body: &mut [u8]) -> Result<(usize, usize), ErrorKind> {
        let key = self.key(app).ok_or(ErrorKind::AuthFailed)?;
        let base = body.as_ptr() as usize;
        let plain = self.open_request(key, body).map_err(reject)?;
        Ok((plain.as_ptr() as usize - base, plain.len()))
    }

    fn seals_answers(&self) -> bool {
        self.encrypt_response()
    }

    fn sealed_len(&self, n: usize) -> usize {
        Decrypt::sealed_len(self, n)
    }

    fn seal_offset(&self) -> usize {
        crate::modules::crypto_box::decrypt::PLAINTEXT_OFFSET
    }

    fn seal(&self, app: &str, frame: &mut [u8], n: usize) -> Result<usize, ErrorKind> {
        let key = self.key(app).ok_or(ErrorKind::AuthFailed)?;
        self.seal_response(key, frame, n).map_err(reject)
    }

    fn content_type(&self) -> &'static str {
        Decrypt::content_type(self)
    }
}
