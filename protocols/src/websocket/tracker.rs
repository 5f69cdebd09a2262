//! Following one direction of a WebSocket byte stream without copying it.
//!
//! The relay reads bytes into a buffer and asks the tracker how many of them may go on
//! (`approve`). Payload bytes are only counted; a frame header is parsed once it is whole
//! (at most 14 bytes wait for the rest) and checked, together with the message sequence
//! (continuations only inside a fragmented message, no new message inside one). A close
//! frame is approved only once it is whole, so its payload can be checked too. Nothing
//! after a close frame is approved: the protocol allows no frame after it (§5.5.1).
//!
//! The gateway inserts frames of its own (pings, a close) only where the approved stream
//! ends at a frame boundary ([`FrameTracker::at_boundary`]); [`FrameTracker::stop`] makes
//! the tracker finish the frame under way and approve nothing more, so a close can follow.

use super::frame::{apply_mask, parse_close, parse_header, FrameError, Opcode, Sender};
use super::MAX_CONTROL_PAYLOAD;

#[derive(Clone, Copy, Debug)]
pub struct FrameTracker {
    from: Sender,
    rsv_allowed: u8,
    /// Payload bytes of the current frame not yet approved.
    remaining: u64,
    /// A fragmented text or binary message is open.
    in_message: bool,
    stopped: bool,
    close_seen: bool,
    frames: u64,
    pongs: u64,
}

/// What `approve` found in the bytes it approved this time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tracked {
    /// Frames whose header was approved.
    pub frames: u64,
    /// Bytes approved (headers and payload).
    pub bytes: usize,
    /// The violation approval stopped at (the frames and bytes before it still count).
    pub error: Option<FrameError>,
}

impl FrameTracker {
    /// Tracks frames sent by `from`. `rsv_allowed` holds the RSV bits a negotiated extension
    /// defines (`0x40` for permessage-deflate), 0 when none was negotiated.
    pub fn new(from: Sender, rsv_allowed: u8) -> FrameTracker {
        FrameTracker {
            from,
            rsv_allowed,
            remaining: 0,
            in_message: false,
            stopped: false,
            close_seen: false,
            frames: 0,
            pongs: 0,
        }
    }

    /// Approves bytes of `buf` from `*fwd` on (bytes before `*fwd` were approved earlier and
    /// not yet consumed), advancing `*fwd` past every byte that may be forwarded. A violation
    /// leaves `*fwd` at the start of the offending frame and is reported in `error`; the
    /// tracker then approves nothing more.
    pub fn approve(&mut self, buf: &[u8], fwd: &mut usize) -> Tracked {
        let mut t = Tracked::default();
        if let Err(e) = self.scan(buf, fwd, &mut t) {
            t.error = Some(e);
            self.stopped = true;
        }
        t
    }

    fn scan(&mut self, buf: &[u8], fwd: &mut usize, t: &mut Tracked) -> Result<(), FrameError> {
        loop {
            let avail = buf.len().saturating_sub(*fwd);
            if self.remaining > 0 {
                let take = self.remaining.min(avail as u64);
                *fwd += take as usize;
                t.bytes += take as usize;
                self.remaining -= take;
                if self.remaining > 0 || take == 0 {
                    return Ok(());
                }
                continue;
            }
            if self.stopped || self.close_seen || avail == 0 {
                return Ok(());
            }
            let rest = buf.get(*fwd..).unwrap_or(&[]);
            let Some(h) = parse_header(rest, self.from, self.rsv_allowed)? else {
                return Ok(());
            };
            match h.opcode {
                Opcode::Continuation if !self.in_message => {
                    return Err(FrameError::UnexpectedContinuation)
                }
                Opcode::Continuation => self.in_message = !h.fin,
                Opcode::Text | Opcode::Binary if self.in_message => {
                    return Err(FrameError::ExpectedContinuation)
                }
                Opcode::Text | Opcode::Binary => self.in_message = !h.fin,
                Opcode::Close => {
                    // Held back until whole, so its code and reason can be checked.
                    let len = h.payload_len as usize;
                    let Some(p) = rest.get(h.header_len..h.header_len + len) else {
                        return Ok(());
                    };
                    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
                    let payload = &mut payload[..len];
                    payload.copy_from_slice(p);
                    if let Some(k) = h.mask {
                        apply_mask(payload, k, 0);
                    }
                    parse_close(payload).map_err(FrameError::BadClose)?;
                    self.close_seen = true;
                }
                Opcode::Pong => self.pongs += 1,
                Opcode::Ping => {}
            }
            self.frames += 1;
            t.frames += 1;
            *fwd += h.header_len;
            t.bytes += h.header_len;
            self.remaining = h.payload_len;
        }
    }

    /// The approved bytes end at a frame boundary: a frame of the gateway's may follow them.
    pub fn at_boundary(&self) -> bool {
        self.remaining == 0
    }

    /// Finish the frame under way, then approve nothing more.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// A (valid) close frame was approved.
    pub fn close_seen(&self) -> bool {
        self.close_seen
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn pongs(&self) -> u64 {
        self.pongs
    }
}
