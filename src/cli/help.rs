//! `--help`: a man-page synopsis, rendered from the flag table
//! ([`super::flags`]).

use std::fmt::Write;

use super::flags::{Group, DESCRIPTION, EXIT_STATUS, FLAGS, SIGNALS, SUMMARY};

/// Width of the text, and where the descriptions start.
const WIDTH: usize = 79;
const DOC_COLUMN: usize = 31;

/// Greedy word wrap of `text` to lines of at most `width` characters.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for w in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + w.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A term (flag, signal, exit code) with its wrapped description beside it,
/// or below it when the term is too wide.
fn entry(out: &mut String, term: &str, doc: &str, column: usize) {
    // `[default: X]` is never split over two lines.
    let glued = doc.replace("[default: ", "[default:\u{1}");
    let lines: Vec<String> = wrap(&glued, WIDTH - column)
        .into_iter()
        .map(|l| l.replace('\u{1}', " "))
        .collect();
    let head = format!("    {term}");
    let mut rest = lines.iter();
    if head.len() < column {
        let first = rest.next().map_or("", String::as_str);
        let _ = writeln!(out, "{head:<column$}{first}");
    } else {
        let _ = writeln!(out, "{head}");
    }
    for l in rest {
        let _ = writeln!(out, "{:column$}{l}", "");
    }
}

pub fn help() -> String {
    let mut out = format!("uwsgi-reload - {SUMMARY}\n\n");
    out.push_str(
        "USAGE
    uwsgi-reload [reload] --emperor-path DIR --fastrouter-stats-socket SOCKET
                 --emperor-stats-socket SOCKET [OPTIONS]
    uwsgi-reload status --emperor-path DIR --fastrouter-stats-socket SOCKET
                 --emperor-stats-socket SOCKET [--json] [--only GLOB]
                 [--exclude GLOB] [--stale-since TIME|FILE] [--node-name T]
    uwsgi-reload --generate man|complete-bash|complete-zsh|complete-fish

",
    );
    for l in wrap(DESCRIPTION, WIDTH - 4) {
        let _ = writeln!(out, "    {l}");
    }
    out.push_str("\nCOMMANDS\n");
    for (c, d) in super::flags::COMMANDS {
        entry(&mut out, c, d, 13);
    }
    for g in Group::ALL {
        let _ = write!(out, "\n{}\n", g.title());
        for f in FLAGS.iter().filter(|f| f.group == g) {
            let term = match f.value {
                "" => f.names(),
                v => format!("{} {v}", f.names()),
            };
            entry(&mut out, &term, &f.doc_with_default(), DOC_COLUMN);
        }
    }
    out.push_str("\nSIGNALS\n");
    for (s, d) in SIGNALS {
        entry(&mut out, s, d, 21);
    }
    out.push_str("\nEXIT STATUS\n");
    for (c, d) in EXIT_STATUS {
        entry(&mut out, &c.to_string(), d, 9);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_is_in_the_help_once() {
        let h = help();
        // Option lines only: they come after the first OPTIONS title.
        let opts = &h[h.find("\nOPTIONS").expect("an OPTIONS section")..];
        for f in FLAGS {
            let def = format!("--{}", f.long);
            let lines = opts
                .lines()
                .filter(|l| {
                    let t = l.trim_start();
                    t.starts_with('-')
                        && t.split_whitespace()
                            .take(2)
                            .any(|w| w.trim_end_matches(',') == def)
                })
                .count();
            assert_eq!(lines, 1, "{def} is defined on {lines} lines");
        }
        assert!(
            h.lines().all(|l| l.len() <= WIDTH),
            "a line is wider than {WIDTH}"
        );
    }

    #[test]
    fn wrap_keeps_words_and_width() {
        let t = "a bb ccc dddd eeeee";
        let l = wrap(t, 7);
        assert_eq!(l, vec!["a bb", "ccc", "dddd", "eeeee"]);
        assert_eq!(l.join(" "), t);
    }
}
