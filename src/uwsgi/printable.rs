//! Text from a vassal's own files (a log line, a config value) on its way
//! to a terminal or the system log: an application user writes those bytes,
//! so they must not move the cursor, clear the screen, forge a second line
//! or flood the output (docs/SECURITY.md, output).

use std::fmt::Write as _;

/// Most bytes of one log line shown (then `…`).
pub const MAX_SHOWN: usize = 512;

/// `bytes` with control characters, invisible direction overrides and
/// invalid UTF-8 escaped as `\xNN` (`\u{N}` above 0xff), cut after `cap`
/// bytes of input with `…`.
pub fn printable(bytes: &[u8], cap: usize) -> String {
    let cut = bytes.len() > cap;
    let mut out = String::new();
    let mut rest = &bytes[..bytes.len().min(cap)];
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s, 0),
            Err(e) => {
                let (good, after) = rest.split_at(e.valid_up_to());
                let bad = e.error_len().unwrap_or(after.len());
                (std::str::from_utf8(good).unwrap_or_default(), bad)
            }
        };
        for c in valid.chars() {
            // Bidi controls, and what some viewers take for a line break.
            let bidi = matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}');
            match c as u32 {
                n if (c.is_control() || bidi) && n < 0x100 => {
                    let _ = write!(out, "\\x{n:02x}");
                }
                n if c.is_control() || bidi => {
                    let _ = write!(out, "\\u{{{n:x}}}");
                }
                _ => out.push(c),
            }
        }
        rest = &rest[valid.len()..];
        for b in &rest[..bad] {
            let _ = write!(out, "\\x{b:02x}");
        }
        rest = &rest[bad..];
    }
    if cut {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_invalid_bytes_are_escaped_and_long_lines_cut() {
        assert_eq!(printable(b"ok: caf\xc3\xa9", 64), "ok: café");
        assert_eq!(
            printable(b"a\x1b[2J\rb\nc\x00\xff", 64),
            "a\\x1b[2J\\x0db\\x0ac\\x00\\xff"
        );
        assert_eq!(printable("x\u{202e}y".as_bytes(), 64), "x\\u{202e}y");
        let long = vec![b'x'; 1 << 20];
        let shown = printable(&long, MAX_SHOWN);
        assert_eq!(shown.len(), MAX_SHOWN + '…'.len_utf8());
        assert!(shown.ends_with('…'));
    }
}
