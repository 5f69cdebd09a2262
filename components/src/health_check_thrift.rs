//! The Thrift active check: one call with an empty argument struct to a configured method, on
//! a fresh connection, in the upstream's protocol and transport.
//!
//! No IDL is tied to an upstream, so the check cannot know a method's arguments or result:
//! it sends none and only asks whether the server answers in step. The node is healthy when
//! a message with the call's sequence id comes back as a Reply or as an Exception (a
//! TApplicationException, say for a missing required argument or an unknown method, still
//! proves a live server reading and answering Thrift). A timeout, a closed connection, an
//! unreadable message, another sequence id or a Call/Oneway message are failures.
//!
//! Runs on the checker thread with blocking sockets (see [`crate::health_check`]).

use protocols::thrift::codec::{self, Limits, MessageType, Protocol, Scan, Transport};
use protocols::thrift::ThriftError;
use std::io::Read;

/// The sequence id of every check call (any value does; a fixed one makes replies easy to
/// recognise in captures).
pub const CHECK_SEQID: i32 = 0x4743_4b31;

/// A check reply larger than this is a failure (a health answer has no business being big,
/// and the checker must not be made to buffer without bound).
const MAX_REPLY: usize = 64 * 1024;

/// The check call: `name` (the method, or `Service:method` when multiplexed) with an empty
/// argument struct.
pub fn check_call(proto: Protocol, transport: Transport, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + name.len());
    let written = codec::encode_call::<ThriftError>(
        proto,
        transport,
        name,
        CHECK_SEQID,
        false,
        &limits(),
        &mut out,
        |w| {
            let saved = w.struct_begin();
            w.struct_end(saved);
            Ok(())
        },
    );
    if written.is_err() {
        out.clear();
    }
    out
}

fn limits() -> Limits {
    Limits {
        max_frame: MAX_REPLY,
        max_string: MAX_REPLY,
        ..Limits::default()
    }
}

/// What the bytes read so far say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    Unhealthy,
    /// Not a whole message yet.
    NeedMore,
}

/// Judges the first message in `buf` as the answer to the check call.
pub fn judge(proto: Protocol, transport: Transport, buf: &[u8]) -> Verdict {
    let limits = limits();
    let end = match codec::scan_message(proto, transport, buf, &limits) {
        Ok(Scan::Complete(n)) => n,
        Ok(Scan::NeedMore { .. }) if buf.len() < MAX_REPLY => return Verdict::NeedMore,
        Ok(Scan::NeedMore { .. }) | Err(_) => return Verdict::Unhealthy,
    };
    let Some(msg) = buf.get(..end) else {
        return Verdict::Unhealthy;
    };
    match codec::read_message_header(proto, transport, msg, &limits) {
        Ok(h)
            if h.seqid == CHECK_SEQID
                && matches!(h.mtype, MessageType::Reply | MessageType::Exception) =>
        {
            Verdict::Healthy
        }
        _ => Verdict::Unhealthy,
    }
}

/// Reads from `s` until the answer can be judged; `before_read` sets the socket's read
/// timeout to what is left of the check's time and returns false when none is.
pub fn read_answer(
    s: &mut impl Read,
    proto: Protocol,
    transport: Transport,
    mut before_read: impl FnMut() -> bool,
) -> bool {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        match judge(proto, transport, &buf) {
            Verdict::Healthy => return true,
            Verdict::Unhealthy => return false,
            Verdict::NeedMore => {}
        }
        if !before_read() {
            return false;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [(Protocol, Transport); 4] = [
        (Protocol::Binary, Transport::Framed),
        (Protocol::Binary, Transport::Buffered),
        (Protocol::Compact, Transport::Framed),
        (Protocol::Compact, Transport::Buffered),
    ];

    /// A message of type `mtype` answering `name` with `seqid` and an empty struct body.
    fn message(p: Protocol, t: Transport, name: &str, mtype: MessageType, seqid: i32) -> Vec<u8> {
        let mut out = Vec::new();
        codec::encode_message::<ThriftError>(p, t, name, mtype, seqid, &limits(), &mut out, |w| {
            let saved = w.struct_begin();
            w.struct_end(saved);
            Ok(())
        })
        .expect("encodes");
        out
    }

    #[test]
    fn the_check_call_is_a_call_with_no_arguments() {
        for (p, t) in KINDS {
            let call = check_call(p, t, "Svc:ping");
            let h = codec::read_message_header(p, t, &call, &limits()).expect("a call");
            assert_eq!(h.mtype, MessageType::Call);
            assert_eq!(h.seqid, CHECK_SEQID);
            assert_eq!(&call[h.name.clone()], b"Svc:ping");
            // The whole message is the header and one empty struct.
            assert_eq!(
                codec::scan_message(p, t, &call, &limits()),
                Ok(Scan::Complete(call.len()))
            );
        }
    }

    #[test]
    fn replies_and_exceptions_with_the_seqid_are_healthy() {
        for (p, t) in KINDS {
            let ok = message(p, t, "ping", MessageType::Reply, CHECK_SEQID);
            assert_eq!(judge(p, t, &ok), Verdict::Healthy);
            let exc = message(p, t, "ping", MessageType::Exception, CHECK_SEQID);
            assert_eq!(judge(p, t, &exc), Verdict::Healthy);
            // Cut short: wait for more; another seqid or a call back: unhealthy.
            assert_eq!(judge(p, t, &ok[..ok.len() - 1]), Verdict::NeedMore);
            assert_eq!(judge(p, t, &[]), Verdict::NeedMore);
            let other = message(p, t, "ping", MessageType::Reply, CHECK_SEQID + 1);
            assert_eq!(judge(p, t, &other), Verdict::Unhealthy);
            let call = message(p, t, "ping", MessageType::Call, CHECK_SEQID);
            assert_eq!(judge(p, t, &call), Verdict::Unhealthy);
        }
    }

    #[test]
    fn garbage_and_oversized_answers_are_unhealthy() {
        let garbage = [0u8, 0, 0, 4, 1, 2, 3, 4];
        assert_eq!(
            judge(Protocol::Binary, Transport::Framed, &garbage),
            Verdict::Unhealthy
        );
        assert_eq!(
            judge(Protocol::Binary, Transport::Buffered, b"HTTP/1.1 400 Bad"),
            Verdict::Unhealthy
        );
        // A frame claiming more than the check reads.
        let huge = [0x00u8, 0x10, 0x00, 0x00];
        assert_eq!(
            judge(Protocol::Binary, Transport::Framed, &huge),
            Verdict::Unhealthy
        );
        let negative = [0xffu8, 0xff, 0xff, 0xf0];
        assert_eq!(
            judge(Protocol::Compact, Transport::Framed, &negative),
            Verdict::Unhealthy
        );
    }

    #[test]
    fn read_answer_stops_at_a_close() {
        let ok = message(
            Protocol::Binary,
            Transport::Framed,
            "ping",
            MessageType::Reply,
            CHECK_SEQID,
        );
        let (p, t) = (Protocol::Binary, Transport::Framed);
        assert!(read_answer(&mut &ok[..], p, t, || true));
        assert!(!read_answer(&mut &ok[..ok.len() - 2], p, t, || true));
        assert!(!read_answer(&mut &ok[..], p, t, || false));
    }
}
