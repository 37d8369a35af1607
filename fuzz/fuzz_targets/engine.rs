//! Arbitrary bytes decoded into inputs and time jumps (raw mode) or into
//! every choice of the simulated world (sim mode); properties in tests/props.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/props/mod.rs"]
mod props;

fuzz_target!(|data: &[u8]| props::engine(data));
