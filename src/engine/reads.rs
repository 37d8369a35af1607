//! Reading the two stats sockets: one read of each in flight at most,
//! re-reads queued behind it, and the Emperor woken after a touch.

use super::*;
use crate::stats::StatsSource;

/// How long the fastrouter may take to show the nodes of an undone drain.
const UNDONE_DRAIN_CONFIRM_MS: u64 = 2_000;

impl Engine {
    pub(super) fn tick(&mut self) {
        self.next_tick_ms = self.now.mono_ms + self.s.check_interval_ms.max(1);
        self.read(StatsSource::Emperor);
        self.read(StatsSource::Fastrouter);
    }

    pub(super) fn read(&mut self, src: StatsSource) {
        let r = &mut self.reads[idx(src)];
        if r.in_flight {
            r.rereads = r.rereads.max(1);
            return;
        }
        r.in_flight = true;
        r.started_ms = self.now.mono_ms;
        self.out.push_back(Action::ReadStats(src));
    }

    pub(super) fn read_done(&mut self, src: StatsSource, error: Option<String>) {
        let now = self.now.mono_ms;
        let r = &mut self.reads[idx(src)];
        r.in_flight = false;
        // Back after an outage: its nodes say nothing of a vassal's silence
        // before this read (`overdue_at`).
        let back = (error.is_none() && r.last_error.is_some()).then_some(r.started_ms);
        match error {
            None => {
                r.last_ok_ms = now;
                r.snapshot_started_ms = r.started_ms;
                r.last_error = None;
            }
            Some(e) => r.last_error = Some(e),
        }
        let reread = r.rereads > 0;
        if reread {
            r.rereads -= 1;
        }
        if let (Some(t), StatsSource::Fastrouter) = (back, src) {
            self.fr_back_ms = self.fr_back_ms.max(t);
        }
        if reread {
            self.read(src);
        }
    }

    /// Drops the undone drains a fastrouter read (started after their
    /// subscribes were sent) shows back in rotation; past [`UNDONE_DRAIN_CONFIRM_MS`] the rest
    /// are reported and given up on. True when none is left to wait for: the
    /// tool does not exit claiming a node is back before the fastrouter says
    /// so.
    pub(super) fn undone_drains_settled(&mut self) -> bool {
        let started = self.reads[idx(StatsSource::Fastrouter)].snapshot_started_ms;
        let now = self.now.mono_ms;
        let mut late = Vec::new();
        if let Some(fr) = self.fr.as_ref() {
            let matcher = &self.matcher;
            self.undone_drains.retain(|(vassal, sent, nodes)| {
                let back = started >= *sent
                    && nodes.iter().all(|d| {
                        matcher
                            .named(&d.key, &d.name, fr)
                            .any(|n| n.death_mark == 0)
                    });
                if !back && now >= sent + UNDONE_DRAIN_CONFIRM_MS {
                    late.push(vassal.clone());
                    return false;
                }
                !back
            });
        }
        for vassal in late {
            self.report(Event::Warning {
                vassal: Some(vassal),
                message: format!(
                    "the fastrouter did not show its re-subscribed node within {} ms; its own next announce (subscribe-freq) restores it",
                    UNDONE_DRAIN_CONFIRM_MS
                ),
            });
        }
        self.undone_drains.is_empty()
    }

    /// After a touch, read the Emperor twice at once: the first connection
    /// makes it rescan, the second shows the result (docs/UWSGI.md §1).
    pub(super) fn wake_emperor(&mut self) {
        let r = &mut self.reads[idx(StatsSource::Emperor)];
        r.rereads = if r.in_flight { 2 } else { 1 };
        if !r.in_flight {
            self.read(StatsSource::Emperor);
        }
    }
}
