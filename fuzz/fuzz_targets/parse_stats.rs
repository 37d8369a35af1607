//! Arbitrary bytes into both stats parsers; properties in tests/props.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/props/mod.rs"]
mod props;

fuzz_target!(|data: &[u8]| props::parse_stats(data));
