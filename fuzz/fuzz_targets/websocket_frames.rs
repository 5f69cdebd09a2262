//! WebSocket frames: a tracker fed the input whole and in random-sized pieces (consuming what
//! it approves, as the tunnel does) approves the same bytes, counts the same frames and stops
//! at the same error, for both senders; it never panics or approves past the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::websocket::{FrameTracker, Sender};

fn run(data: &[u8], from: Sender, rsv: u8, mut piece: impl FnMut() -> usize) -> (usize, u64, bool) {
    let mut t = FrameTracker::new(from, rsv);
    let mut buf = Vec::new();
    let (mut fed, mut approved, mut frames) = (0, 0, 0);
    loop {
        let end = (fed + piece()).min(data.len());
        buf.extend_from_slice(&data[fed..end]);
        fed = end;
        let mut fwd = 0;
        let tr = t.approve(&buf, &mut fwd);
        assert!(fwd <= buf.len() && tr.bytes == fwd);
        approved += fwd;
        frames += tr.frames;
        buf.drain(..fwd);
        if tr.error.is_some() {
            return (approved, frames, true);
        }
        if fed == data.len() {
            return (approved, frames, false);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut seed = data
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    for from in [Sender::Client, Sender::Server] {
        for rsv in [0u8, 0x40] {
            let whole = run(data, from, rsv, || usize::MAX / 2);
            let split = run(data, from, rsv, || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 17) as usize + 1
            });
            assert_eq!(whole, split);
        }
    }
});
