//! The driver's side of the FIFO repair and of the log's evidence
//! (docs/UWSGI.md §9.6): the logs it watches (`log_watch.rs`), the one
//! warning when a log cannot be watched, and the repairs that wait for their
//! master FIFO's reader. Everything here answers the engine with `Input`s.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::fifo;
use super::log_watch::{self, Evidence, HookLogs};
use crate::engine::Input;
use crate::vassal_config::VassalConfig;

/// A repair whose master FIFO had no reader yet: in the race of
/// docs/UWSGI.md §9.6 the master opens its FIFO moments after worker 1's
/// hook found none, and the evidence can reach the tool first.
struct PendingRepair {
    vassal: String,
    pid: i64,
}

pub struct Repairs {
    logs: HookLogs,
    pending: Vec<PendingRepair>,
    /// The one warning that a log could not be watched was given.
    warned: bool,
    /// `logto` files more than one vassal config names.
    shared_logs: BTreeSet<PathBuf>,
}

impl Repairs {
    pub fn new(parsed: &[(String, Result<VassalConfig, String>)]) -> Repairs {
        Repairs {
            logs: HookLogs::default(),
            pending: Vec::new(),
            warned: false,
            shared_logs: log_watch::shared_logs(parsed),
        }
    }

    /// `Action::WatchHookLog`. Returns the warning to give, the first time
    /// a log cannot be watched.
    pub fn watch(
        &mut self,
        vassal: &str,
        pid: i64,
        config: Option<&VassalConfig>,
    ) -> Option<String> {
        let why = self
            .logs
            .watch(vassal, pid, config, &self.shared_logs)
            .err()?;
        (!std::mem::replace(&mut self.warned, true)).then(|| {
            format!("cannot watch its log ({why}): a lost accepting hook (docs/UWSGI.md §9.6) is repaired only after its announce window")
        })
    }

    /// `Action::UnwatchHookLog`: it left flight; a repair still waiting
    /// for its reader is dropped with it.
    pub fn unwatch(&mut self, vassal: &str) {
        self.logs.unwatch(vassal);
        self.pending.retain(|r| r.vassal != vassal);
    }

    /// `Action::Repair`: the answer now, or `None` when it waits for the
    /// FIFO's reader. Only a repair the log proved needed (its vassal is
    /// watched) can come before the master opened its FIFO; it waits while
    /// the engine keeps the vassal in flight.
    pub fn repair(
        &mut self,
        vassal: String,
        pid: i64,
        config: Option<&VassalConfig>,
    ) -> Option<Input> {
        let retry = self.logs.is_watched(&vassal);
        match write_repair(pid, config, retry) {
            Some(result) => Some(Input::Repaired { vassal, result }),
            None => {
                self.pending.push(PendingRepair { vassal, pid });
                None
            }
        }
    }

    /// What the watched logs gained since the last call, and the repairs
    /// that found their reader (or failed for good) since.
    pub fn poll<'c>(&mut self, config_of: impl Fn(&str) -> Option<&'c VassalConfig>) -> Vec<Input> {
        let mut inputs: Vec<Input> = self
            .logs
            .scan()
            .into_iter()
            .map(|(vassal, ev)| match ev {
                Evidence::HookLost(line) => Input::HookLost { vassal, line },
                Evidence::SubscriptionsOn => Input::SubscriptionsOn { vassal },
                Evidence::SubscriptionsBlocked => Input::SubscriptionsBlocked { vassal },
            })
            .collect();
        for r in std::mem::take(&mut self.pending) {
            match write_repair(r.pid, config_of(&r.vassal), true) {
                Some(result) => inputs.push(Input::Repaired {
                    vassal: r.vassal,
                    result,
                }),
                None => self.pending.push(r),
            }
        }
        inputs
    }

    /// A repair waits for its reader: the driver wakes up to try again.
    pub fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// Writes `S` to the master FIFO of the vassal master `pid`. `None` when the
/// FIFO has no reader yet and `retry` allows waiting for one (the caller
/// keeps it pending); otherwise the answer for the engine.
fn write_repair(
    pid: i64,
    config: Option<&VassalConfig>,
    retry: bool,
) -> Option<Result<String, String>> {
    let pid = i32::try_from(pid).unwrap_or(0);
    let result = fifo::find_master_fifo(pid, config).and_then(|held| {
        fifo::write_fifo_command(&held, b'S').map(|()| held.path.display().to_string())
    });
    match result {
        Err(e) if retry && fifo::found_no_reader(&e) => None,
        r => Some(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::OpenOptionsExt;

    /// The race's other side: the master opens its FIFO moments after the
    /// hook found none, so a repair written at once may find the master
    /// holding no FIFO yet. It is kept for a retry (only when asked), and
    /// succeeds once the master holds its FIFO. Without a pid nothing is
    /// written, and that is not retried.
    #[test]
    fn a_repair_waits_for_the_masters_fifo_only_when_asked() {
        let d = std::env::temp_dir().join(format!("uwsgi-reload-repairs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let fifo = d.join("app_01.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let text = format!("[uwsgi]\nmaster-fifo = {}\n", fifo.display());
        let cfg = VassalConfig::parse(&text, "app_01.ini", d.to_str().unwrap());
        let me = std::process::id() as i64;
        assert_eq!(write_repair(me, Some(&cfg), true), None);
        match write_repair(me, Some(&cfg), false) {
            Some(Err(e)) => assert!(fifo::found_no_reader(&e), "{e}"),
            other => panic!("expected no FIFO held yet, got {other:?}"),
        }
        // pid 0: /proc cannot tell; an error at once, never a write.
        match write_repair(0, Some(&cfg), true) {
            Some(Err(e)) => assert!(e.contains("no master pid"), "{e}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // This process now holds it as the master does: the write goes through.
        let reader = fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        assert_eq!(
            write_repair(me, Some(&cfg), true),
            Some(Ok(fifo.display().to_string()))
        );
        let mut byte = [0u8; 1];
        assert_eq!(std::io::Read::read(&mut &reader, &mut byte).unwrap(), 1);
        assert_eq!(&byte, b"S");
        let _ = fs::remove_dir_all(&d);
    }
}
