//! The one leniency uWSGI's fastrouter stats need, the trailing-comma fix (docs/UWSGI.md §13.6).
//!
//! `corerouter_send_stats` emits a comma after the last gateway socket when
//! another router follows in the same instance: `["a","b",\n\t]`. Only a
//! comma followed by optional whitespace and `]` or `}`, outside strings, is
//! removed; nothing else is touched, so every other defect still fails.

pub fn strip_trailing_commas(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                in_string = true;
                out.push(c);
            }
            b',' => {
                let mut j = i + 1;
                while j < input.len() && input[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j < input.len() && (input[j] == b']' || input[j] == b'}') {
                    // Drop the comma; keep the whitespace for error offsets.
                } else {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_trailing_commas_outside_strings() {
        let s = br#"{"a":["x,]","y",
	],"b":{"c":1,}}"#;
        let fixed = strip_trailing_commas(s);
        assert_eq!(
            std::str::from_utf8(&fixed).unwrap(),
            "{\"a\":[\"x,]\",\"y\"\n\t],\"b\":{\"c\":1}}"
        );
    }
}
