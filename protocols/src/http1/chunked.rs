//! Streaming validator/decoder of the chunked transfer coding (RFC 9112 §7.1). The proxy
//! forwards chunked bodies verbatim and feeds the same bytes here to learn where the message
//! ends; the Thrift/JSON layer uses the reported data ranges to collect the payload. Framing
//! bytes go through a byte-at-a-time state machine (they are few), payload is skipped in one
//! step, so input split at any byte boundary gives the same result.

use core::fmt;
use core::ops::Range;

use super::header::is_tchar;

/// Default longest chunk-size line, extensions included, CRLF excluded.
pub const DEFAULT_MAX_CHUNK_LINE: usize = 4096;
/// Default most bytes of trailer fields (the final empty line excluded).
pub const DEFAULT_MAX_TRAILER_BYTES: usize = 16384;

/// Result of one `feed` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkProgress {
    /// Bytes of the input consumed (a prefix). Less than the input only when the body ended
    /// (`done`; the rest is the next message) or a data run was returned and more framing or
    /// data follows: call again with the rest.
    pub consumed: usize,
    /// Payload bytes found, as a range of the input; empty when none.
    pub data: Range<usize>,
    /// The body is complete: the CRLF ending the trailer section was consumed.
    pub done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkError {
    /// Not a hex chunk size, or a malformed size line (extension, whitespace).
    BadSize,
    /// The chunk size does not fit in 64 bits.
    SizeOverflow,
    /// The size line is longer than the configured maximum.
    LineTooLong,
    /// A CR without LF, a bare LF, or missing CRLF after chunk data.
    BadLineEnd,
    /// A malformed trailer field.
    BadTrailer,
    /// Trailer fields longer than the configured maximum.
    TrailerTooLarge,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkError::BadSize => "bad chunk size",
            ChunkError::SizeOverflow => "chunk size overflow",
            ChunkError::LineTooLong => "chunk size line too long",
            ChunkError::BadLineEnd => "bad line end in chunked body",
            ChunkError::BadTrailer => "bad trailer field",
            ChunkError::TrailerTooLarge => "trailer too large",
        })
    }
}

impl std::error::Error for ChunkError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Expecting the first hex digit of a size.
    SizeStart,
    /// In the hex digits.
    Size,
    /// Whitespace after the size; only ';' may follow (BWS before a chunk-ext).
    ExtBws,
    /// Inside chunk extensions, up to CR.
    Ext,
    /// CR of the size line seen.
    SizeLf,
    /// Payload; `remaining` bytes left.
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line or of the final empty line.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
    Failed(ChunkError),
}

/// Decoder state for one chunked body; `reset` to reuse it for the next message.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    remaining: u64,
    line_len: usize,
    trailer_len: usize,
    max_line: usize,
    max_trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new(DEFAULT_MAX_CHUNK_LINE, DEFAULT_MAX_TRAILER_BYTES)
    }
}

impl ChunkedDecoder {
    pub fn new(max_line: usize, max_trailer_bytes: usize) -> Self {
        ChunkedDecoder {
            state: State::SizeStart,
            size: 0,
            remaining: 0,
            line_len: 0,
            trailer_len: 0,
            max_line,
            max_trailer_bytes,
        }
    }

    /// Ready for a new body, same limits.
    pub fn reset(&mut self) {
        *self = ChunkedDecoder::new(self.max_line, self.max_trailer_bytes);
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes a prefix of `input`: framing up to and including at most one contiguous run
    /// of payload, and the framing after it up to the next payload byte. Always consumes at
    /// least one byte of non-empty input unless done. After an error every call returns it.
    pub fn feed(&mut self, input: &[u8]) -> Result<ChunkProgress, ChunkError> {
        let mut i = 0;
        let mut data = 0..0;
        while let Some(&b) = input.get(i) {
            match self.state {
                State::Done => break,
                State::Failed(e) => return Err(e),
                State::Data => {
                    if !data.is_empty() {
                        break;
                    }
                    let avail = input.len() - i;
                    let take = usize::try_from(self.remaining).map_or(avail, |r| r.min(avail));
                    data = i..i + take;
                    i += take;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => {
                    if let Err(e) = self.step(b) {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                    i += 1;
                }
            }
        }
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        Ok(ChunkProgress {
            consumed: i,
            data,
            done: self.state == State::Done,
        })
    }

    /// One framing byte.
    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        use State::*;
        match self.state {
            SizeStart | Size | ExtBws | Ext if b != b'\r' && b != b'\n' => {
                self.line_len += 1;
                if self.line_len > self.max_line {
                    return Err(ChunkError::LineTooLong);
                }
            }
            _ => {}
        }
        self.state = match (self.state, b) {
            (SizeStart | Size, _) if b.is_ascii_hexdigit() => {
                if self.size > u64::MAX >> 4 {
                    return Err(ChunkError::SizeOverflow);
                }
                self.size = (self.size << 4) | u64::from(hex_val(b));
                Size
            }
            (Size | Ext, b'\r') => SizeLf,
            (Size | ExtBws, b';') => Ext,
            (Size | ExtBws, b' ' | b'\t') => ExtBws,
            // Extensions are not interpreted; any field-value byte may appear in them
            // (tokens, '=', quoted strings). A CR always ends the line: no CTL is valid in a
            // quoted string, so there is no way to hide a line end.
            (Ext, _) if is_field_vchar(b) => Ext,
            (SizeStart | Size | ExtBws | Ext, b'\n') => return Err(ChunkError::BadLineEnd),
            (SizeStart | Size | ExtBws | Ext, _) => return Err(ChunkError::BadSize),
            (SizeLf, b'\n') => {
                self.line_len = 0;
                if self.size == 0 {
                    TrailerStart
                } else {
                    self.remaining = self.size;
                    self.size = 0;
                    Data
                }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => SizeStart,
            (TrailerLf, b'\n') => self.trailer_byte(TrailerStart)?,
            (FinalLf, b'\n') => Done,
            (SizeLf | DataCr | DataLf | TrailerLf | FinalLf, _) => {
                return Err(ChunkError::BadLineEnd)
            }
            (TrailerStart, b'\r') => FinalLf,
            (TrailerStart, b'\n') => return Err(ChunkError::BadLineEnd),
            (TrailerStart, _) if is_tchar(b) => self.trailer_byte(TrailerName)?,
            (TrailerName, b':') => self.trailer_byte(TrailerValue)?,
            (TrailerName, _) if is_tchar(b) => self.trailer_byte(TrailerName)?,
            (TrailerValue, b'\r') => self.trailer_byte(TrailerLf)?,
            (TrailerValue, b'\n') => return Err(ChunkError::BadLineEnd),
            (TrailerValue, _) if is_field_vchar(b) => self.trailer_byte(TrailerValue)?,
            // obs-fold, whitespace before the colon, CTLs, empty names
            (TrailerStart | TrailerName | TrailerValue, _) => return Err(ChunkError::BadTrailer),
            (Data | Done | Failed(_), _) => self.state,
        };
        Ok(())
    }

    /// Counts one trailer byte against the limit and moves to `next`.
    fn trailer_byte(&mut self, next: State) -> Result<State, ChunkError> {
        self.trailer_len += 1;
        if self.trailer_len > self.max_trailer_bytes {
            return Err(ChunkError::TrailerTooLarge);
        }
        Ok(next)
    }
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// HTAB, SP, VCHAR, obs-text: what a field value (and a chunk extension) may contain.
fn is_field_vchar(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}
