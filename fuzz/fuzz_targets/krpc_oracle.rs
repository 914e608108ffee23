//! Differential: arbitrary bytes through the zero-copy KRPC reader and through a parsing pass
//! on bendy's streaming decoder (the oracle); any difference in the envelope read or in the rejection is a
//! crash (`btdht::krpc::check_against_bendy`, built with the `decode-oracle` feature).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    btdht::krpc::check_against_bendy(data);
});
