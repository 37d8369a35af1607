//! Arbitrary bytes into both stats parsers; properties in tests/support/props.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/props.rs"]
mod props;

fuzz_target!(|data: &[u8]| props::parse_stats(data));
