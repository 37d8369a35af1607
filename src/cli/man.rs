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

/// The man page. Long on purpose: one section after another, in the order
/// `man` prints them; the options themselves come from the flag table.
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
        let _ = writeln!(out, ".TP\n{}\n{}", bold(&c.to_string()), escape(d));
    }
    output(&mut out);
    out.push_str(".SH ENVIRONMENT\n");
    for (v, d) in ENVIRONMENT {
        let _ = writeln!(out, ".TP\n{}\n{}", bold(v), escape(d));
    }
    out.push_str(".SH FILES\n");
    for (f, d) in FILES {
        let _ = writeln!(out, ".TP\n{}\n{}", italic(f), escape(d));
    }
    out.push_str(".SH EXAMPLES\n");
    for (what, cmd) in EXAMPLES {
        let _ = writeln!(
            out,
            ".PP\n{}\n.PP\n.RS\n.nf\n{}\n.fi\n.RE",
            escape(what),
            escape(cmd)
        );
    }
    out.push_str(".SH \"SEE ALSO\"\n.BR uwsgi (1)\n");
    out
}

/// OUTPUT: every `--json` object and every metric, from the one table the
/// emitters use (`report::catalog`).
fn output(out: &mut String) {
    use crate::report::catalog::{EVENTS, METRICS};
    out.push_str(".SH OUTPUT\n");
    out.push_str(&escape("Human lines: results on stdout (on stderr with --json), warnings and errors on stderr; when stderr is the systemd journal each stderr line carries its priority. With --json, stdout has one JSON object per line; every object has event (its kind), v (the schema version, 1) and at_ms (milliseconds since the run started, on one clock: it never goes back), and, for a vassal's event, vassal (the config file name)."));
    out.push_str("\n.SS \"JSON events\"\n");
    for e in EVENTS {
        let _ = writeln!(
            out,
            ".TP\n{}\n{}{}",
            bold(e.name),
            escape(e.meaning),
            if e.fields.is_empty() {
                String::new()
            } else {
                escape(&format!(". Fields: {}.", e.fields))
            }
        );
    }
    out.push_str(".SS \"Metrics (--metrics-file)\"\n");
    out.push_str(&escape("Prometheus text for node_exporter's textfile collector, replaced atomically at the end of every rollout (also a failed, interrupted or refused one); every family is a gauge."));
    out.push('\n');
    for (name, labels, help) in METRICS {
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            ".TP\n{}{}\n{}",
            bold(&format!("uwsgi_reload_{name}")),
            escape(&labels),
            escape(help)
        );
    }
}

const ENVIRONMENT: &[(&str, &str)] = &[
    ("NO_COLOR", "set and not empty: no colour on a terminal"),
    ("JOURNAL_STREAM", "set by systemd; when it names stderr's own device and inode, stderr lines start with their sd-daemon(3) priority (<3> error, <4> warning, <6> info)"),
];

const FILES: &[(&str, &str)] = &[
    ("DIR", "the Emperor directory (--emperor-path); its configs' mtimes are the only thing the tool changes there, and an exclusive lock on it keeps a second instance out"),
    ("/etc/default/uwsgi-reload", "the arguments of the shipped uwsgi-reload.service and of the uwsgi-emperor.service drop-in that makes systemctl reload uwsgi-emperor a rolling reload"),
    ("/proc/PID/cmdline", "the options the Emperor gave each vassal's master, read to know its subscribe-freq and FIFO"),
];

const EXAMPLES: &[(&str, &str)] = &[
    ("Reload every vassal, keeping one live per key:", "uwsgi-reload --emperor-path /etc/uwsgi.d --fastrouter-stats-socket /run/uwsgi/fastrouter-stats.sock --emperor-stats-socket /run/uwsgi/emperor-stats.sock"),
    ("Show what a rollout would do, and each vassal's state, touching nothing:", "uwsgi-reload --dry-run ARGS\nuwsgi-reload status ARGS"),
    ("A deploy script that carries on when a vassal timed out (exit 1) but stops on a refusal (3) or a usage error (2):", "rc=0; uwsgi-reload ARGS || rc=$?; [ \"$rc\" -le 1 ]"),
    ("Keep the events, and draw them:", "uwsgi-reload --json ARGS > events.jsonl"),
];

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
