//! Where a human line goes and how it is marked: warnings and errors on
//! stderr, results on stdout; when stderr is the systemd journal, each
//! stderr line starts with its sd-daemon(3) priority (`<3>` error, `<4>`
//! warning, `<6>` info) so `journalctl -p warning` finds them.

use std::sync::OnceLock;

/// How much a human line matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    Info,
}

impl Level {
    /// The sd-daemon(3) prefix (syslog priorities 3, 4, 6).
    pub fn prefix(self) -> &'static str {
        match self {
            Level::Error => "<3>",
            Level::Warning => "<4>",
            Level::Info => "<6>",
        }
    }
}

/// Is stderr connected to the journal? systemd sets `JOURNAL_STREAM` to
/// `DEV:INO` of the stream it connected; the variable is inherited by
/// children whose stderr may have been redirected since, so it counts only
/// when stderr's own device and inode match (systemd.exec(5)).
pub fn stderr_is_journal() -> bool {
    static IS: OnceLock<bool> = OnceLock::new();
    *IS.get_or_init(|| {
        let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
            return false;
        };
        let Some(v) = v.to_str() else { return false };
        let Ok(st) = nix::sys::stat::fstat(2) else {
            return false;
        };
        matches_stream(v, st.st_dev, st.st_ino)
    })
}

/// `JOURNAL_STREAM`'s `DEV:INO` (decimal) against a stream's own.
pub fn matches_stream(var: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = var.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>() == Ok(dev) && i.parse::<u64>() == Ok(ino)
}

/// The prefix of a stderr line of `level`: empty unless stderr is the
/// journal.
pub fn stderr_prefix(level: Level) -> &'static str {
    if stderr_is_journal() {
        level.prefix()
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_this_stream() {
        assert!(matches_stream("64768:12345", 64768, 12345));
        assert!(!matches_stream("64768:12345", 64768, 12346));
        assert!(!matches_stream("garbage", 1, 2));
        assert!(!matches_stream("", 0, 0));
    }
}
