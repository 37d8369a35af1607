//! Arbitrary bytes as a vassal config of every format; property in
//! tests/support/config_props.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/config_props.rs"]
mod config_props;

fuzz_target!(|data: &[u8]| config_props::parse_config(data));
