//! Fuzz: where does the first message end, framed and unframed, on whole and cut input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::thrift::codec::{scan_message, Limits, Protocol, Scan, Transport};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_frame: 1 << 20, ..Limits::default() };
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    for proto in [Protocol::Binary, Protocol::Compact] {
        for transport in [Transport::Framed, Transport::Buffered] {
            let whole = scan_message(proto, transport, data, &limits);
            if let Ok(Scan::Complete(n)) = whole {
                assert!(n <= data.len());
                // A strict prefix of a complete message is never complete.
                if n > 0 {
                    let part = scan_message(proto, transport, &data[..n - 1], &limits);
                    assert!(!matches!(part, Ok(Scan::Complete(_))));
                }
            }
            if let Ok(Scan::NeedMore { at_least }) = scan_message(proto, transport, &data[..cut], &limits) {
                assert!(at_least > cut);
            }
        }
    }
});
