//! Everything that can happen next ([`Move`]), faults included, and what
//! each does to the world.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Src {
    Emperor,
    Fastrouter,
}

/// One thing that can happen next.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Move {
    /// A stats read returns. For the Emperor, its scan follows; `wedge`
    /// decides a second reload request landing mid-reload.
    Read {
        src: Src,
        wedge: bool,
    },
    /// The Emperor's periodic scan.
    Scan {
        wedge: bool,
    },
    /// Deliver answer `i` (`ok == false`: the touch fails; a fault).
    Answer {
        i: usize,
        ok: bool,
    },
    Accept(usize),
    Announce(usize),
    Exit(usize),
    SessionsEnd(usize),
    /// handle_timeout at the current instant (the engine's timer is due).
    Timeout,
    /// Time jumps forward to `to` (mono ms).
    Advance {
        to: u64,
    },
    Fault(Fault),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    Crash(usize),
    CrashLoop(usize),
    MissingAnnounce(usize, RepairOutcome),
    ForeignTouch(usize),
    ConfigRemoved(usize),
    ReadFail(Src),
    InvalidSnapshot(Src),
    SlowRead(Src),
    BrokenApp(usize),
    Overflow,
    Stop,
    FastrouterRestart,
}

impl Sim {
    /// Everything that can happen next. Empty once the engine finished.
    pub fn moves(&self) -> Vec<Move> {
        let mut m = Vec::new();
        if self.finished() {
            return m;
        }
        let w = &self.w;
        let wedges: &[bool] = if w.scan_could_wedge() {
            &[false, true]
        } else {
            &[false]
        };
        for (i, src) in [Src::Emperor, Src::Fastrouter].into_iter().enumerate() {
            if w.reads[i] {
                if src == Src::Emperor {
                    for &wedge in wedges {
                        m.push(Move::Read { src, wedge });
                    }
                } else {
                    m.push(Move::Read { src, wedge: false });
                }
                if self.fault_ok(FaultKind::ReadFail) {
                    m.push(Move::Fault(Fault::ReadFail(src)));
                }
                if self.fault_ok(FaultKind::InvalidSnapshot) {
                    m.push(Move::Fault(Fault::InvalidSnapshot(src)));
                }
                if !w.slow[i] && self.fault_ok(FaultKind::SlowRead) {
                    m.push(Move::Fault(Fault::SlowRead(src)));
                }
            }
        }
        for (i, a) in w.answers.iter().enumerate() {
            // Identical answers are interchangeable: offer the first only.
            if w.answers[..i].contains(a) {
                continue;
            }
            m.push(Move::Answer { i, ok: true });
            if matches!(a, Answer::Touch { .. }) && self.fault_ok(FaultKind::TouchError) {
                m.push(Move::Answer { i, ok: false });
            }
        }
        let quiet = w.events_between_reads || !w.reads.iter().any(|r| *r);
        if w.scan_due.is_some() && quiet {
            for &wedge in wedges {
                m.push(Move::Scan { wedge });
            }
        }
        for (v, vw) in w.vassals.iter().enumerate().filter(|_| quiet) {
            match vw.proc_ {
                Proc::Reloading { since } | Proc::Starting { since } if w.may_accept(since) => {
                    m.push(Move::Accept(v));
                    if w.announce_first && !vw.announced_early && vw.blocked.is_none() {
                        m.push(Move::Announce(v));
                    }
                }
                // With lazy-apps the announce waits for its subscribe-freq
                // tick (in Advance).
                Proc::Accepted { .. } if vw.blocked.is_none() && !w.lazy_apps => {
                    m.push(Move::Announce(v))
                }
                Proc::Stopping { .. } => m.push(Move::Exit(v)),
                _ => {}
            }
        }
        for (i, n) in w.nodes.iter().enumerate().filter(|_| quiet) {
            if n.busy {
                m.push(Move::SessionsEnd(i));
            }
        }
        match self.e.poll_timeout() {
            Some(t) if t <= w.now => m.push(Move::Timeout),
            Some(t) => {
                if let Some(to) = self.advance_to(t) {
                    m.push(Move::Advance { to });
                }
            }
            None => {}
        }
        if self.w.faults_used < self.max_faults {
            self.fault_moves(&mut m);
        }
        m
    }

    /// Where time may jump, if it may: no read or answer outstanding, and no
    /// world event past its latest time.
    pub(crate) fn advance_to(&self, engine_t: u64) -> Option<u64> {
        let w = &self.w;
        if w.reads.iter().zip(w.slow).any(|(r, slow)| *r && !slow) || !w.answers.is_empty() {
            return None;
        }
        let mut to = engine_t;
        let mut latest = u64::MAX;
        if let Some(d) = w.scan_due {
            latest = latest.min(d);
        }
        for vw in &w.vassals {
            match vw.proc_ {
                Proc::Reloading { since } | Proc::Starting { since } => {
                    if w.now < since + w.accept_after_ms {
                        to = to.min(since + w.accept_after_ms);
                    }
                    latest = latest.min(since + w.accept_within_ms);
                }
                Proc::Accepted { at } if vw.blocked.is_none() && !w.lazy_apps => {
                    latest = latest.min(at + w.announce_late_ms)
                }
                Proc::Stopping { at } => latest = latest.min(at + EXIT_WITHIN_MS),
                _ => {}
            }
        }
        for n in &w.nodes {
            if n.busy {
                latest = latest.min(n.marked_at + EXIT_WITHIN_MS);
            }
        }
        let to = to.min(latest);
        (to > w.now).then_some(to)
    }

    pub(crate) fn fault_moves(&self, m: &mut Vec<Move>) {
        let w = &self.w;
        for (v, vw) in w.vassals.iter().enumerate() {
            let running =
                vw.rec.is_some() && !matches!(vw.proc_, Proc::Gone | Proc::Stopping { .. });
            if running && self.fault_ok(FaultKind::Crash) {
                m.push(Move::Fault(Fault::Crash(v)));
            }
            if running && self.fault_ok(FaultKind::CrashLoop) {
                m.push(Move::Fault(Fault::CrashLoop(v)));
            }
            if vw.blocked.is_none()
                && matches!(vw.proc_, Proc::Reloading { .. } | Proc::Accepted { .. })
                && self.fault_ok(FaultKind::MissingAnnounce)
            {
                for o in [
                    RepairOutcome::Fixes,
                    RepairOutcome::DoesNotHelp,
                    RepairOutcome::NoFifo,
                ] {
                    // With its log watched, a block is the hook's lost `S`
                    // (before accepting; the log proves it): one that
                    // begins after the log said subscriptions on is not
                    // the race of docs/UWSGI.md §9.6.
                    if vw.watched && matches!(vw.proc_, Proc::Accepted { .. }) {
                        continue;
                    }
                    m.push(Move::Fault(Fault::MissingAnnounce(v, o)));
                }
            }
            if vw.exists && self.fault_ok(FaultKind::ForeignTouch) {
                m.push(Move::Fault(Fault::ForeignTouch(v)));
            }
            if !vw.broken
                && matches!(vw.proc_, Proc::Reloading { .. })
                && self.fault_ok(FaultKind::BrokenApp)
            {
                m.push(Move::Fault(Fault::BrokenApp(v)));
            }
            if vw.exists && self.fault_ok(FaultKind::ConfigRemoved) {
                m.push(Move::Fault(Fault::ConfigRemoved(v)));
            }
        }
        if self.fault_ok(FaultKind::Overflow) {
            m.push(Move::Fault(Fault::Overflow));
        }
        if self.fault_ok(FaultKind::Stop) {
            m.push(Move::Fault(Fault::Stop));
        }
        if self.fault_ok(FaultKind::FastrouterRestart) {
            m.push(Move::Fault(Fault::FastrouterRestart));
        }
    }

    /// Applies the world side of a move; returns the engine input, if any.
    pub(crate) fn world_step(&mut self, mv: &Move) -> Result<Option<Input>, String> {
        let w = &mut self.w;
        let (now, wall) = (w.now, w.wall());
        Ok(match mv {
            Move::Read {
                src: Src::Emperor,
                wedge,
            } => {
                w.reads[0] = false;
                w.seen(1);
                let snap = w.emperor_snapshot();
                // The answer is written before the scan the connection
                // triggers.
                w.scan(*wedge);
                Some(Input::Emperor(snap))
            }
            Move::Read {
                src: Src::Fastrouter,
                ..
            } => {
                w.reads[1] = false;
                w.seen(2);
                Some(Input::Fastrouter(w.fastrouter_snapshot()))
            }
            Move::Scan { wedge } => {
                w.scan(*wedge);
                None
            }
            Move::Answer { i, ok } => {
                let a = w.answers.remove(*i);
                match a {
                    Answer::Touch { v, mtime } => {
                        if *ok {
                            w.vassals[v].mtime = mtime;
                            w.vassals[v].foreign_mtime = false;
                            w.config_changed();
                            w.answers.push(Answer::Changed { v, mtime });
                            Some(Input::Touched {
                                vassal: vassal_name(v),
                                error: None,
                            })
                        } else {
                            w.hit |= 1 << v;
                            self.fault();
                            Some(Input::Touched {
                                vassal: vassal_name(v),
                                error: Some("EPERM: operation not permitted".into()),
                            })
                        }
                    }
                    Answer::Changed { v, mtime } => Some(Input::Config(ConfigEvent::Changed {
                        name: vassal_name(v),
                        mtime: Some(mtime),
                    })),
                    Answer::Removed { v } => Some(Input::Config(ConfigEvent::Removed {
                        name: vassal_name(v),
                    })),
                    Answer::Unsubscribe { v, key, addr } => {
                        let busy = w.busy;
                        w.unsubscribe(v, Some((key, addr)), busy);
                        None
                    }
                    Answer::Subscribe { v, key, addr } => {
                        // The tool's packet: the node takes requests (ground
                        // truth counts it where the vassal serves), but the
                        // router shows it as the tool's, and the vassal's
                        // reload completes only with its own announce.
                        w.subscribe(v, key, addr, true);
                        None
                    }
                    Answer::Repair { v, pid } => {
                        let vw = &mut w.vassals[v];
                        let result = match vw.blocked {
                            Some(RepairOutcome::NoFifo) => {
                                Err("no master-fifo in its config".to_string())
                            }
                            Some(RepairOutcome::Fixes) => {
                                vw.blocked = None;
                                vw.blocked_by_tool = false;
                                Ok(format!("/run/uwsgi/app_{:02}.fifo", v + 1))
                            }
                            // `S` is a toggle: to a vassal whose
                            // subscription is not blocked, it blocks it (its
                            // nodes are unsubscribed; it stays out until the
                            // next `S`).
                            None if matches!(vw.proc_, Proc::Serving | Proc::Accepted { .. })
                                && !vw.wedged =>
                            {
                                vw.blocked = Some(RepairOutcome::Fixes);
                                vw.blocked_by_tool = true;
                                // Its own log says so (docs/UWSGI.md §9.6.2).
                                if vw.watched {
                                    w.answers.push(Answer::Blocked { v });
                                }
                                w.unsubscribe(v, None, false);
                                Ok(format!("/run/uwsgi/app_{:02}.fifo", v + 1))
                            }
                            _ => Ok(format!("/run/uwsgi/app_{:02}.fifo", v + 1)),
                        };
                        let _ = pid;
                        Some(Input::Repaired {
                            vassal: vassal_name(v),
                            result,
                        })
                    }
                    Answer::Probe { v } => {
                        let vw = &w.vassals[v];
                        let up = matches!(vw.proc_, Proc::Serving | Proc::Accepted { .. })
                            && vw.rec.as_ref().is_some_and(|r| r.accepting == 1);
                        let result = if !up {
                            Err("connect: connection refused".to_string())
                        } else if vw.broken {
                            Err("HTTP 500 Internal Server Error".to_string())
                        } else {
                            Ok("HTTP 200 OK".to_string())
                        };
                        Some(Input::Probed {
                            vassal: vassal_name(v),
                            result,
                        })
                    }
                    Answer::Log { v, lost: true } => Some(Input::HookLost {
                        vassal: vassal_name(v),
                        line: format!(
                            "open(\"/run/uwsgi/app_{:02}.fifo\"): No such device or address",
                            v + 1
                        ),
                    }),
                    Answer::Log { v, lost: false } => Some(Input::SubscriptionsOn {
                        vassal: vassal_name(v),
                    }),
                    Answer::Blocked { v } => Some(Input::SubscriptionsBlocked {
                        vassal: vassal_name(v),
                    }),
                    Answer::Rescan => Some(Input::Config(ConfigEvent::Rescanned(
                        w.vassals
                            .iter()
                            .enumerate()
                            .filter(|(_, vw)| vw.exists)
                            .map(|(i, vw)| ConfigFile {
                                name: vassal_name(i),
                                mtime: vw.mtime,
                            })
                            .collect(),
                    ))),
                }
            }
            Move::Accept(v) => {
                let vw = &mut w.vassals[*v];
                if let Some(r) = vw.rec.as_mut() {
                    r.accepting = 1;
                    r.last_accepting = wall;
                    if matches!(vw.proc_, Proc::Starting { .. }) {
                        // A fresh exec sends ready too, and
                        // the first request makes it loyal: off the blacklist.
                        r.ready = 1;
                        vw.blacklist_attempt = None;
                    }
                }
                if vw.watched && vw.new_gen {
                    // Worker 1 runs its hook right after telling the
                    // Emperor: the log says which way it went. A vassal
                    // whose announce fails for another reason (the repair
                    // does not help) shows neither line.
                    match vw.blocked {
                        None => w.answers.push(Answer::Log { v: *v, lost: false }),
                        Some(RepairOutcome::Fixes | RepairOutcome::NoFifo) => {
                            w.answers.push(Answer::Log { v: *v, lost: true })
                        }
                        Some(RepairOutcome::DoesNotHelp) => {}
                    }
                }
                let vw = &mut w.vassals[*v];
                let early = vw.announced_early;
                vw.announced_early = false;
                if early {
                    w.announced(*v);
                } else {
                    vw.proc_ = Proc::Accepted { at: now };
                }
                None
            }
            Move::Announce(v) => {
                let v = *v;
                w.announce(v);
                let vw = &mut w.vassals[v];
                if matches!(vw.proc_, Proc::Reloading { .. } | Proc::Starting { .. }) {
                    // Announced before accepting.
                    vw.announced_early = true;
                    return Ok(None);
                }
                vw.announce_again = Some(wall + 1);
                w.announced(v);
                None
            }
            Move::Exit(v) => {
                let v = *v;
                w.unsubscribe(v, None, false);
                let vw = &mut w.vassals[v];
                vw.rec = None;
                vw.proc_ = Proc::Gone;
                w.order.retain(|i| *i != v);
                None
            }
            Move::SessionsEnd(i) => {
                w.nodes.remove(*i);
                None
            }
            Move::Timeout => None,
            Move::Advance { to } => {
                let old_wall = w.wall();
                w.now = *to;
                let new_wall = w.wall();
                for s in old_wall + 1..=new_wall {
                    for v in 0..w.vassals.len() {
                        let again = w.vassals[v].announce_again == Some(s);
                        if again {
                            w.vassals[v].announce_again = None;
                        }
                        let tick = (s + w.vassals[v].phase_s).rem_euclid(w.vassals[v].freq_s) == 0;
                        if (tick || again) && w.can_announce(v) {
                            let t = w.now;
                            w.now = MONO0 + ((s - WALL0) * 1000) as u64;
                            w.announce(v);
                            w.now = t;
                            if matches!(w.vassals[v].proc_, Proc::Accepted { .. }) {
                                // lazy-apps: its first announce since accepting.
                                w.announced(v);
                            }
                        }
                    }
                    if w.foreign_node && (s + 4) % ANNOUNCE_EVERY_S == 0 {
                        match w.nodes.iter_mut().find(|n| n.owner.is_none()) {
                            Some(n) => n.last_check = s,
                            None => w.nodes.push(NodeW {
                                key: 0,
                                addr: 0,
                                owner: None,
                                last_check: s,
                                death_mark: false,
                                busy: false,
                                marked_at: 0,
                                by_tool: false,
                            }),
                        }
                    }
                }
                w.slow = [false; 2];
                if w.now > self.limit_ms {
                    return Err(format!(
                        "no Finish after {} ms of simulated time",
                        w.now - MONO0
                    ));
                }
                None
            }
            Move::Fault(f) => self.inject(f),
        })
    }

    /// Counts a fault. K stays checked after it: the checker tells the
    /// world's drops from the tool's (see checker.rs).
    pub(crate) fn fault(&mut self) {
        self.w.faults_used += 1;
        self.w.any_fault = true;
    }

    pub(crate) fn inject(&mut self, f: &Fault) -> Option<Input> {
        let wall = self.w.wall();
        match f {
            Fault::Crash(v) => {
                let v = *v;
                self.fault();
                self.w.hit |= 1 << v;
                self.w.world_drop(v, 1);
                let vw = &self.w.vassals[v];
                let last_mod = vw.rec.as_ref().map_or(vw.mtime, |r| r.last_mod);
                self.w.start_process(v, last_mod);
                // The fastrouter keeps the node (no unsubscribe on a crash).
                None
            }
            Fault::CrashLoop(v) => {
                let v = *v;
                self.fault();
                self.w.hit |= 1 << v;
                self.w.world_drop(v, 1);
                let w = &mut self.w;
                let vw = &mut w.vassals[v];
                // Its config stays broken: it never comes back.
                vw.gone_last_mod = i64::MAX;
                vw.rec = None;
                vw.proc_ = Proc::Gone;
                vw.blacklist_attempt = Some(vw.blacklist_attempt.map_or(0, |a| a + 1));
                w.order.retain(|i| *i != v);
                None
            }
            Fault::MissingAnnounce(v, outcome) => {
                // Not exempt: the engine took it out of rotation; it must
                // not take out another because this one stays out.
                self.fault();
                self.w.hit |= 1 << *v;
                self.w.vassals[*v].blocked = Some(*outcome);
                None
            }
            Fault::ForeignTouch(v) => {
                let v = *v;
                self.fault();
                self.w.hit |= 1 << v;
                let w = &mut self.w;
                let m = wall.max(w.vassals[v].mtime + 1);
                w.vassals[v].mtime = m;
                w.vassals[v].foreign_mtime = true;
                w.config_changed();
                w.answers.push(Answer::Changed { v, mtime: m });
                None
            }
            Fault::ConfigRemoved(v) => {
                let v = *v;
                self.fault();
                self.w.hit |= 1 << v;
                let w = &mut self.w;
                w.vassals[v].exists = false;
                w.config_changed();
                w.answers.push(Answer::Removed { v });
                None
            }
            Fault::ReadFail(src) | Fault::InvalidSnapshot(src) => {
                self.fault();
                let i = (*src == Src::Fastrouter) as usize;
                self.w.reads[i] = false;
                if *src == Src::Emperor {
                    // The connection still woke the Emperor.
                    self.w.scan(false);
                }
                let source = if i == 0 {
                    StatsSource::Emperor
                } else {
                    StatsSource::Fastrouter
                };
                let error = match f {
                    Fault::ReadFail(_) => "connect: connection refused (ECONNREFUSED)".to_string(),
                    _ => {
                        "expected uWSGI stats JSON: EOF while parsing an object at line 1 column 57"
                            .to_string()
                    }
                };
                Some(Input::ReadFailed { source, error })
            }
            Fault::BrokenApp(v) => {
                // Requests to it fail, and only requests tell: its nodes
                // count as live (World::serving), so K stays checked on its
                // keys for every other node.
                self.fault();
                self.w.hit |= 1 << *v;
                self.w.vassals[*v].broken = true;
                None
            }
            Fault::SlowRead(src) => {
                self.fault();
                self.w.slow[(*src == Src::Fastrouter) as usize] = true;
                None
            }
            Fault::Overflow => {
                self.fault();
                Some(Input::Config(ConfigEvent::Overflow))
            }
            Fault::Stop => {
                self.fault();
                self.w.stopped = true;
                Some(Input::Stop)
            }
            Fault::FastrouterRestart => {
                // A new pid, no node: each comes back at its vassal's next
                // announce.
                self.fault();
                self.w.fr_restarted = true;
                for v in 0..self.w.vassals.len() {
                    self.w.world_drop(v, 2);
                }
                if self.w.foreign_node {
                    self.w.foreign_unseen = 2;
                }
                self.w.fr_pid += 1;
                self.w.nodes.clear();
                None
            }
        }
    }
}
