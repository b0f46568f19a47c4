#![no_main]
//! See `fuzz/README.md`; the entry point is `engine::fuzzing::presets`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    engine::fuzzing::presets(data);
});
