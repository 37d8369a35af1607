//! Reading a vassal's log for the one line that proves its accepting hook
//! lost its `S` (sans-IO: bytes in, a verdict out; `runtime::log_watch` reads
//! the file).
//!
//! The pattern `start-unsubscribed` + `hook-accepting1-once =
//! writefifo:<fifo> S` unblocks subscriptions once worker 1 accepts. Worker 1
//! runs the hook right after telling the Emperor it accepts (`uwsgi_ignition`,
//! `core/uwsgi.c`); when the master has not opened its FIFO yet, the
//! non-blocking open fails with `ENXIO` and `uwsgi_hook_writefifo`
//! (`core/hooks.c`) logs it with `uwsgi_error_open`:
//!
//! ```text
//! open("/srv/vassals/app.fifo"): No such device or address [core/hooks.c line 134]
//! ```
//!
//! and returns success without writing: the vassal accepts and never
//! announces (docs/UWSGI.md §9.6). `ENODEV` ("No such device") is treated
//! the same way by the hook. The line names the hook's path exactly as the
//! config gives it (after `%` magic), so it identifies the vassal even in a
//! log the whole Emperor shares. Any prefix (`log-date`, a logger's format)
//! is allowed before it.

use super::printable::{printable, MAX_SHOWN};

/// What the master logs when an `S` reaches its FIFO (`subscriptions_blocker`,
/// `core/fifo.c`, with `uwsgi_log_verbose`'s time prefix): subscriptions on
/// again, or blocked. The last of the two after a touch is the state.
const ON: &str = "subscriptions re-enabled";
const OFF: &str = "subscriptions blocked";

/// What a log line says about the watched vassal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Its accepting hook lost its `S` (the line).
    Lost(String),
    /// A master turned subscriptions on (only attributable to the vassal in
    /// a log no other vassal writes).
    On,
    /// A master blocked subscriptions.
    Off,
}

/// What the lost hook of a vassal whose hook writes to `hook_path` logs,
/// up to the error text (`uwsgi_error_open`'s format, `uwsgi.h`).
pub fn lost_marker(hook_path: &str) -> String {
    format!("open(\"{hook_path}\"): No such device")
}

/// Finds the marker in a log read in chunks: keeps the unfinished last line
/// of one chunk for the next, so a line split across two reads is still
/// seen whole.
#[derive(Clone, Debug, Default)]
pub struct LineScanner {
    carry: Vec<u8>,
}

/// Longest unfinished line kept between chunks: the marker plus any prefix
/// fits many times over; a longer line is not one of ours.
const MAX_CARRY: usize = 8 * 1024;

impl LineScanner {
    /// Feeds the next bytes of the log; returns what each complete line
    /// says, in order: the lost hook (a line containing `marker`) and the
    /// master's subscription toggles (a line ending with their message, so
    /// an application printing the words mid-line is not taken for them).
    pub fn feed(&mut self, chunk: &[u8], marker: &str) -> Vec<Seen> {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(chunk);
        let mut seen = Vec::new();
        let mut start = 0;
        while let Some(end) = data[start..].iter().position(|&b| b == b'\n') {
            let line = trim_end(&data[start..start + end]);
            if contains(line, marker.as_bytes()) {
                // An application writes this log: the line reaches the
                // operator's terminal and syslog escaped and cut.
                seen.push(Seen::Lost(printable(line, MAX_SHOWN)));
            } else if line.ends_with(ON.as_bytes()) {
                seen.push(Seen::On);
            } else if line.ends_with(OFF.as_bytes()) {
                seen.push(Seen::Off);
            }
            start += end + 1;
        }
        let rest = &data[start..];
        if rest.len() <= MAX_CARRY {
            self.carry = rest.to_vec();
        }
        seen
    }
}

/// Without trailing whitespace (`\r` of a CRLF log, spaces).
fn trim_end(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b] = line {
        if !b.is_ascii_whitespace() {
            break;
        }
        line = rest;
    }
    line
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIFO: &str = "/srv/vassals/app_02.fifo";

    impl LineScanner {
        /// The first lost-hook line among the next bytes, without its line
        /// end.
        fn first_lost(&mut self, chunk: &[u8], marker: &str) -> Option<String> {
            self.feed(chunk, marker).into_iter().find_map(|s| match s {
                Seen::Lost(line) => Some(line),
                _ => None,
            })
        }
    }

    #[test]
    fn finds_the_line_uwsgi_logs_for_a_lost_hook() {
        let m = lost_marker(FIFO);
        let log = format!(
            "running \"writefifo:{FIFO} S\" (accepting1-once)...\n\
             open(\"{FIFO}\"): No such device or address [core/hooks.c line 134]\n"
        );
        let mut s = LineScanner::default();
        let line = s.first_lost(log.as_bytes(), &m).expect("found");
        assert!(
            line.starts_with("open(") && line.ends_with("line 134]"),
            "{line}"
        );
    }

    #[test]
    fn enodev_counts_and_a_prefix_is_allowed() {
        let m = lost_marker(FIFO);
        let log = format!(
            "Tue Dec  1 10:00:00 2026 - open(\"{FIFO}\"): No such device [core/hooks.c line 134]\n"
        );
        assert!(LineScanner::default()
            .first_lost(log.as_bytes(), &m)
            .is_some());
    }

    #[test]
    fn another_vassals_fifo_or_error_is_not_ours() {
        let m = lost_marker(FIFO);
        let log = "open(\"/srv/vassals/app_03.fifo\"): No such device or address [core/hooks.c line 134]\n\
                   open(\"/srv/vassals/app_02.fifo\"): No such file or directory [core/hooks.c line 134]\n\
                   running \"writefifo:/srv/vassals/app_02.fifo S\" (accepting1-once)...\n\
                   subscriptions re-enabled\n";
        assert_eq!(LineScanner::default().first_lost(log.as_bytes(), &m), None);
    }

    #[test]
    fn a_line_split_across_reads_is_seen_once_whole() {
        let m = lost_marker(FIFO);
        let line = format!("open(\"{FIFO}\"): No such device or address [core/hooks.c line 134]\n");
        let (a, b) = line.as_bytes().split_at(17);
        let mut s = LineScanner::default();
        assert_eq!(s.first_lost(a, &m), None);
        assert!(s.first_lost(b, &m).is_some());
        // An unfinished line is not judged until it ends.
        let mut s = LineScanner::default();
        assert_eq!(s.first_lost(line.trim_end().as_bytes(), &m), None);
        assert!(s.first_lost(b"\n", &m).is_some());
    }

    #[test]
    fn the_masters_toggles_are_seen_in_order_and_only_at_a_line_end() {
        let m = lost_marker(FIFO);
        let log = "2026-12-02 04:56:08 - subscriptions re-enabled\n\
                   app says: subscriptions re-enabled soon\n\
                   2026-12-02 04:56:09 - subscriptions blocked\r\n\
                   2026-12-02 04:56:10 - subscriptions re-enabled\n";
        assert_eq!(
            LineScanner::default().feed(log.as_bytes(), &m),
            [Seen::On, Seen::Off, Seen::On]
        );
    }

    #[test]
    fn an_endless_line_is_dropped_not_kept() {
        let m = lost_marker(FIFO);
        let mut s = LineScanner::default();
        assert_eq!(s.first_lost(&vec![b'x'; MAX_CARRY + 1], &m), None);
        assert!(s.carry.is_empty());
    }

    /// The application writes this log: a matched line of a megabyte with
    /// terminal escapes reaches the report cut and escaped.
    #[test]
    fn a_matched_line_is_cut_and_escaped() {
        let m = lost_marker(FIFO);
        let mut line = format!("\x1b[2J\x1b]0;pwned\x07{m} [core/hooks.c line 134]").into_bytes();
        line.extend(vec![b'y'; 1 << 20]);
        line.push(b'\n');
        let got = LineScanner::default().first_lost(&line, &m).unwrap();
        assert!(got.starts_with("\\x1b[2J\\x1b]0;pwned\\x07open("), "{got}");
        assert!(got.len() < 600 && got.ends_with('…'), "{}", got.len());
        assert!(!got.chars().any(char::is_control));
    }
}
