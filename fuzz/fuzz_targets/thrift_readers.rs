//! Fuzz: the binary and compact readers on arbitrary bytes (header, then a skip of the body).
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::thrift::codec::{Limits, Protocol, Reader, TType};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_frame: 1 << 20, ..Limits::default() };
    for proto in [Protocol::Binary, Protocol::Compact] {
        let mut r = Reader::new(proto, data, limits);
        if let Ok(h) = r.read_message_header() {
            assert!(h.name.end <= data.len() && h.seqid_at.end <= data.len() && h.body <= data.len());
            let _ = r.skip(TType::Struct);
            assert!(r.position() <= data.len());
        }
        // The same bytes as a bare struct.
        let mut r = Reader::new(proto, data, limits);
        let _ = r.skip(TType::Struct);
        assert!(r.position() <= data.len());
    }
});
