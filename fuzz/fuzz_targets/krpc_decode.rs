//! Arbitrary bytes into `krpc::decode`; whatever decodes must re-encode canonically, decode to
//! the same message, and encode to the same bytes again (see `tests/support/fuzz_checks.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/fuzz_checks.rs"]
mod fuzz_checks;

fuzz_target!(|data: &[u8]| {
    fuzz_checks::check_krpc_decode(data);
});
