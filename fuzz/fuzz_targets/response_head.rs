//! Response heads: same properties as request_head, with the request method (GET, HEAD,
//! CONNECT) also picked from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data
        .iter()
        .fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
    protocols::http1::check::response_head(data, split);
});
