//! `--generate man`: the roff man page, rendered from the flag table
//! ([`super::flags`]) and the same prose `--help` prints.

use std::fmt::Write;

use super::flags::{Group, COMMANDS, DESCRIPTION, EXIT_STATUS, FLAGS, SIGNALS, SUMMARY};

/// Text made safe for roff: backslashes and minus signs escaped, and a
/// leading `.` or `'` (a request) neutralised.
pub fn escape(s: &str) -> String {
    let e = s.replace('\\', "\\e").replace('-', "\\-");
    if e.starts_with('.') || e.starts_with('\'') {
        format!("\\&{e}")
    } else {
        e
    }
}

fn bold(s: &str) -> String {
    format!("\\fB{}\\fR", escape(s))
}

fn italic(s: &str) -> String {
    format!("\\fI{}\\fR", escape(s))
}

pub fn man() -> String {
    let mut out = String::new();
    // No date: the page is byte-identical for a given version (reproducible
    // packages).
    let _ = writeln!(
        out,
        ".TH UWSGI\\-RELOAD 1 \"\" \"uwsgi-reload {}\" \"User Commands\"",
        env!("CARGO_PKG_VERSION")
    );
    // No hyphenation, ragged right: flags must stay whole to be copied.
    out.push_str(".nh\n.ad l\n");
    let _ = writeln!(out, ".SH NAME\nuwsgi\\-reload \\- {}", escape(SUMMARY));
    out.push_str(".SH SYNOPSIS\n");
    for cmd in ["", "status "] {
        let _ = writeln!(
            out,
            ".B uwsgi\\-reload\n{}{} {} {} {} {} {} [{}]\n.br",
            if cmd.is_empty() {
                String::new()
            } else {
                format!("{} ", bold(cmd.trim()))
            },
            bold("--emperor-path"),
            italic("DIR"),
            bold("--fastrouter-stats-socket"),
            italic("SOCKET"),
            bold("--emperor-stats-socket"),
            italic("SOCKET"),
            italic("OPTIONS"),
        );
    }
    let _ = writeln!(
        out,
        ".B uwsgi\\-reload\n{} {}",
        bold("--generate"),
        escape("man|complete-bash|complete-zsh|complete-fish")
    );
    let _ = writeln!(out, ".SH DESCRIPTION\n{}", escape(DESCRIPTION));
    out.push_str(".SH COMMANDS\n");
    for (c, d) in COMMANDS {
        let _ = writeln!(out, ".TP\n{}\n{}", bold(c), escape(d));
    }
    out.push_str(".SH OPTIONS\n");
    for g in Group::ALL {
        let title = match g {
            Group::Compat => "As uwsgi_reload.py",
            Group::Extra => "Beyond uwsgi_reload.py",
        };
        let _ = writeln!(out, ".SS \"{}\"", escape(title));
        for f in FLAGS.iter().filter(|f| f.group == g) {
            let mut term = String::new();
            if let Some(c) = f.short {
                let _ = write!(term, "{}, ", bold(&format!("-{c}")));
            }
            term.push_str(&bold(&format!("--{}", f.long)));
            if !f.value.is_empty() {
                let _ = write!(term, " {}", italic(f.value));
            }
            let _ = writeln!(out, ".TP\n{term}\n{}", escape(&f.doc_with_default()));
        }
    }
    out.push_str(".SH SIGNALS\n");
    for (s, d) in SIGNALS {
        let _ = writeln!(out, ".TP\n{}\n{}", bold(s), escape(d));
    }
    out.push_str(".SH \"EXIT STATUS\"\n");
    for (c, d) in EXIT_STATUS {
        let _ = writeln!(out, ".TP\n{}\n{}", bold(c), escape(d));
    }
    out.push_str(".SH \"SEE ALSO\"\n.BR uwsgi (1)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_requests_and_minus() {
        assert_eq!(escape(".ini"), "\\&.ini");
        assert_eq!(escape("--a\\b"), "\\-\\-a\\eb");
    }

    #[test]
    fn every_flag_has_one_tagged_paragraph() {
        let m = man();
        let lines: Vec<&str> = m.lines().collect();
        for f in FLAGS {
            let tag = bold(&format!("--{}", f.long));
            let n = lines
                .windows(2)
                .filter(|w| w[0] == ".TP" && w[1].contains(&tag))
                .count();
            assert_eq!(n, 1, "{tag}");
        }
    }
}
