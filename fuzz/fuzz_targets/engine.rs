//! Arbitrary bytes decoded into inputs and time jumps (raw mode) or into
//! every choice of the simulated world (sim mode); properties in tests/support/props.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/props.rs"]
mod props;

fuzz_target!(|data: &[u8]| props::engine(data));
