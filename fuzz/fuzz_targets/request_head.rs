//! Request heads: parsing never panics; a complete head parses the same from any prefix that
//! contains it and every shorter prefix is partial (checks in `protocols::http1::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The split point comes from the input itself, so the fuzzer can steer it.
    let split = data
        .iter()
        .fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
    protocols::http1::check::request_head(data, split);
});
