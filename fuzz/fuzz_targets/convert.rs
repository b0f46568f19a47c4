#![no_main]
//! See `fuzz/README.md`; the entry point is `engine::fuzzing::convert`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    engine::fuzzing::convert(data, engine::fuzzing::recorded_object_info());
});
