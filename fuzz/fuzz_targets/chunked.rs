//! Chunked bodies: fed whole, in random-sized pieces and byte by byte, the decoder consumes
//! the same bytes, reports the same payload and end, or the same error; it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Piece sizes come from a PRNG seeded by the input, so the fuzzer can steer them.
    let seed = data
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    protocols::http1::check::chunked(data, seed);
});
