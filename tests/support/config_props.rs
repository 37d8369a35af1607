//! The fuzz property of the vassal config reader (every format, through
//! `VassalConfig::parse`), run by `fuzz/fuzz_targets/parse_config.rs` and
//! on its corpus by `tests/fuzz_corpus.rs`: no panic, and what a config
//! yields is bounded by its size (docs/SECURITY.md, expansion): the
//! `%` passes and the repeated keys of lists grow it by at most
//! `MAX_EXPANSION` in all, however the bytes are arranged.

#![allow(dead_code)]

use uwsgi_reload::vassal_config::{VassalConfig, MAX_EXPANSION};

/// First byte: the format (by file name, as the Emperor decides it); the
/// rest: the file's text.
pub fn parse_config(data: &[u8]) {
    let (ext, text) = match data.split_first() {
        Some((b, rest)) => (["ini", "json", "yaml", "xml"][*b as usize % 4], rest),
        None => ("ini", data),
    };
    let text = String::from_utf8_lossy(text);
    let c = VassalConfig::parse(&text, &format!("app_01.{ext}"), "/srv/vassals");
    let bytes: usize = c.options.iter().map(|(k, v)| k.len() + v.len()).sum();
    // The magic pass may grow the text by the budget, the placeholder pass
    // may build the budget again; a value's `%` magic is at most the
    // directory's path per two bytes until the budget stops it.
    let bound = 2 * text.len() + 2 * MAX_EXPANSION + 4096;
    assert!(
        bytes <= bound,
        "{ext}: {} input bytes gave {bytes} option bytes, over {bound}",
        text.len()
    );
    assert!(
        c.warnings.len() <= 64 + text.len(),
        "{} warnings",
        c.warnings.len()
    );
    if bytes > text.len() + MAX_EXPANSION {
        assert!(
            c.over_limit.is_some(),
            "{ext}: grew to {bytes} without a refusal"
        );
    }
}
