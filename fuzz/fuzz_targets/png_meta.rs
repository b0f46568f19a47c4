#![no_main]
//! See `fuzz/README.md`; the entry point is `engine::fuzzing::png_meta`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    engine::fuzzing::png_meta(data);
});
