//! Arbitrary bytes into the compact node (v4, v6), peer and hash parsers; re-encoding the whole
//! entries read must give back the input's prefix of whole entries.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/fuzz_checks.rs"]
mod fuzz_checks;

fuzz_target!(|data: &[u8]| {
    fuzz_checks::check_compact(data);
});
