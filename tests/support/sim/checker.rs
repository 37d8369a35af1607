//! The properties: what every action, every step and the outcome must satisfy.

use super::*;

impl Sim {
    /// Takes the engine's reports, then its actions, checking what every
    /// action must satisfy.
    pub fn drain(&mut self) -> Result<(), String> {
        while let Some(r) = self.e.poll_event() {
            if self.outcome.is_some() {
                return Err(format!("a report after Finish: {r:?}"));
            }
            self.note(|| format!("    <- {:?}", r.event));
        }
        while let Some(a) = self.e.poll_action() {
            if self.outcome.is_some() {
                return Err(format!("an action after Finish: {a:?}"));
            }
            match a {
                Action::ReadStats(src) => {
                    let i = (src == StatsSource::Fastrouter) as usize;
                    if self.w.reads[i] {
                        return Err(format!("a second ReadStats({src}) while one is in flight"));
                    }
                    self.w.reads[i] = true;
                }
                Action::Touch { vassal, mtime } => {
                    self.note(|| format!("    <- Touch {vassal} {}", mtime - WALL0));
                    let v = index(&vassal)?;
                    let vw = &mut self.w.vassals[v];
                    vw.touches += 1;
                    if vw.touches > 1 {
                        return Err(format!("{vassal} was sent a second Action::Touch"));
                    }
                    self.check_not_starting(&vassal)?;
                    self.take(v, "a touch of")?;
                    self.w.answers.push(Answer::Touch { v, mtime });
                }
                Action::Unsubscribe {
                    vassal, key, node, ..
                } => {
                    self.note(|| format!("    <- Unsubscribe {vassal} {key}"));
                    let v = index(&vassal)?;
                    let k = key_index(&key)?;
                    let Some(addr) = self.addr_of(v, &node) else {
                        return Err(format!("Unsubscribe of {node} for {vassal}: not its node"));
                    };
                    let live = self.w.nodes.iter().any(|n| {
                        (n.owner, n.key, n.addr) == (Some(v), k, addr) && self.w.node_live(n)
                    });
                    if live {
                        self.take(v, "a drain unsubscribe of")?;
                    }
                    self.w.answers.push(Answer::Unsubscribe { v, key: k, addr });
                }
                Action::Subscribe {
                    vassal, key, node, ..
                } => {
                    self.note(|| format!("    <- Subscribe {vassal} {key}"));
                    let v = index(&vassal)?;
                    let k = key_index(&key)?;
                    let Some(addr) = self.addr_of(v, &node) else {
                        return Err(format!("Subscribe of {node} for {vassal}: not its node"));
                    };
                    if self.w.vassals[v].keys & (1 << k) == 0 {
                        return Err(format!(
                            "Subscribe of {vassal} under {key}, which it never had"
                        ));
                    }
                    self.w.answers.push(Answer::Subscribe { v, key: k, addr });
                }
                Action::Repair { vassal, pid } => {
                    self.note(|| format!("    <- Repair {vassal} pid {pid}"));
                    let v = index(&vassal)?;
                    if let Some(r) = &self.w.vassals[v].rec {
                        if r.pid != pid {
                            return Err(format!(
                                "Repair of {vassal} names pid {pid}, its master is {}",
                                r.pid
                            ));
                        }
                    }
                    if self.w.vassals[v].blocked.is_none() {
                        // `S` toggles a subscribed vassal off.
                        self.take(v, "an `S` (a toggle) to the FIFO of")?;
                    }
                    self.w.answers.push(Answer::Repair { v, pid });
                }
                Action::RescanConfigs => self.w.answers.push(Answer::Rescan),
                Action::WatchHookLog { vassal, pid } => {
                    // The pid is the one the engine last saw (a crash it has
                    // not seen yet makes it stale; the driver then finds the
                    // log through the config): not checked.
                    self.note(|| format!("    <- WatchHookLog {vassal} pid {pid}"));
                    let v = index(&vassal)?;
                    if self.w.vassals[v].watched {
                        return Err(format!("WatchHookLog of {vassal} twice"));
                    }
                    self.w.vassals[v].watched = true;
                }
                Action::UnwatchHookLog { vassal } => {
                    let v = index(&vassal)?;
                    if !self.w.vassals[v].watched {
                        return Err(format!("UnwatchHookLog of {vassal}, never watched"));
                    }
                    self.w.vassals[v].watched = false;
                }
                Action::Probe { vassal, node, .. } => {
                    self.note(|| format!("    <- Probe {vassal} via {node}"));
                    let v = index(&vassal)?;
                    if self.addr_of(v, &node).is_none() {
                        return Err(format!("Probe of {vassal} sent to {node}: not its node"));
                    }
                    self.w.answers.push(Answer::Probe { v });
                }
                Action::Finish(o) => {
                    self.note(|| format!("    <- Finish {:?} {}", o.status, o.summary));
                    // `S` toggles: no run ends with a vassal the tool's `S`
                    // left blocked (docs/UWSGI.md §9.6.2).
                    if let Some(v) = self.w.vassals.iter().position(|vw| vw.blocked_by_tool) {
                        return Err(format!(
                            "{} left blocked by the tool's S at Finish",
                            vassal_name(v)
                        ));
                    }
                    self.check_outcome(&o)?;
                    self.outcome = Some(o);
                    self.check_silent_after_finish()?;
                }
                #[allow(unreachable_patterns)]
                other => {
                    return Err(format!(
                        "an action the simulated driver does not know: {other:?}"
                    ))
                }
            }
        }
        Ok(())
    }

    /// Which of vassal `v`'s addresses `node` is.
    fn addr_of(&self, v: usize, node: &str) -> Option<u8> {
        (0..self.w.vassals[v].addrs).find(|a| node_name(v, *a) == node)
    }

    /// A reload must never reach a vassal that is starting: one whose
    /// Emperor record, as the engine last saw it, shows it not accepting
    /// since its last (re)start or reload (a second reload request there
    /// can wedge it), however long ago that start was.
    fn check_not_starting(&self, vassal: &str) -> Result<(), String> {
        let Some(rec) = self.seen_emp.as_ref().and_then(|e| e.vassal(vassal)) else {
            return Ok(());
        };
        if rec.accepting == 0 && rec.cursed == 0 {
            return Err(format!(
                "{vassal} was touched while its Emperor record shows it starting \
                 (accepting 0 since its (re)start {} s ago, pid {})",
                self.w.wall() - rec.last_run,
                rec.pid
            ));
        }
        Ok(())
    }

    /// Keys whose K is asserted.
    fn checked(&self, key: u8) -> bool {
        self.guarded & (1 << key) != 0 && self.w.exempt & (1 << key) == 0
    }

    /// Live nodes of `key` not charged to the tool.
    fn untaken_live(&self, key: u8) -> usize {
        self.w
            .nodes
            .iter()
            .filter(|n| n.key == key && self.w.node_live(n))
            .filter(|n| n.owner.map_or(true, |v| !self.w.vassals[v].taken))
            .count()
    }

    /// Nodes of `key` the world took out where the tool has not looked
    /// since: they count as live when its touches are judged (it cannot
    /// know; the next read shows them).
    fn unseen_lost(&self, key: u8) -> usize {
        let w = &self.w;
        let vassals: usize = (0..w.vassals.len())
            .filter(|&v| w.vassals[v].unseen != 0 && !w.vassals[v].taken)
            .map(|v| {
                (w.vassals[v].lost_live[key as usize] as usize).saturating_sub(w.live_of(v, key))
            })
            .sum();
        let foreign = key == 0
            && w.foreign_unseen != 0
            && !w.nodes.iter().any(|n| n.owner.is_none() && w.node_live(n));
        vassals + foreign as usize
    }

    /// The tool takes vassal `v` out of service (`how`: a touch, a drain
    /// unsubscribe, an `S`). If it was serving (accepting, with a fresh
    /// node), its live nodes are charged to the tool until it serves again;
    /// a key that this leaves below K, counting every node the tool already
    /// has out, is a failure, whatever the world did before: a drop the
    /// world caused is allowed, but the tool must not add to it.
    pub(crate) fn take(&mut self, v: usize, how: &str) -> Result<(), String> {
        if self.w.vassals[v].taken {
            return Ok(());
        }
        let keys: Vec<u8> = (0..2u8).filter(|k| self.w.live_of(v, *k) > 0).collect();
        if keys.is_empty() {
            return Ok(());
        }
        for &k in keys.iter().filter(|k| self.checked(**k)) {
            let mine = self.w.live_of(v, k);
            let left = (self.untaken_live(k) + self.unseen_lost(k)).saturating_sub(mine);
            if left < self.k {
                let out = self.w.live(k) - self.untaken_live(k);
                return Err(format!(
                    "{how} {} while it was serving takes {mine} live node(s) of key {} out: \
                     {left} left (live now {}, {out} already out by the tool), below K = {}",
                    vassal_name(v),
                    KEYS[k as usize],
                    self.w.live(k),
                    self.k
                ));
            }
        }
        self.w.vassals[v].taken = true;
        Ok(())
    }

    /// Something of the tool's is still on its way to vassal `v`: a touch
    /// the Emperor has not acted on, an unsubscribe or an `S` not delivered.
    /// (A newer mtime set by someone else is the world's pending reload.)
    fn tool_pending(&self, v: usize) -> bool {
        let w = &self.w;
        let vw = &w.vassals[v];
        w.answers.iter().any(|a| {
            matches!(a, Answer::Touch { v: x, .. } | Answer::Unsubscribe { v: x, .. }
                | Answer::Repair { v: x, .. } if *x == v)
        }) || vw.exists
            && !vw.wedged
            && !vw.foreign_mtime
            && vw
                .rec
                .as_ref()
                .is_some_and(|r| r.cursed == 0 && vw.mtime > r.last_mod)
    }

    /// A vassal the tool took out is its own again once it serves with
    /// every node live and nothing of the tool's pending.
    pub(crate) fn release_taken(&mut self) {
        for v in 0..self.w.vassals.len() {
            if self.w.vassals[v].taken && self.w.fully_live(v) && !self.tool_pending(v) {
                self.w.vassals[v].taken = false;
            }
        }
    }

    /// Properties of every step.
    pub(crate) fn check_step(&self) -> Result<(), String> {
        // K per key: below it, some missing node must be the world's doing
        // (a crash, a fastrouter restart, a vassal failing before the
        // rollout...); the tool's takes are checked when made (`take`).
        for key in (0..2u8).filter(|k| self.checked(*k)) {
            let live = self.w.live(key);
            if live >= self.k {
                continue;
            }
            let world_cause = self.w.vassals.iter().enumerate().any(|(v, vw)| {
                vw.keys & (1 << key) != 0 && !vw.taken && self.w.live_of(v, key) < vw.addrs as usize
            }) || key == 0
                && self.w.foreign_node
                && !self
                    .w
                    .nodes
                    .iter()
                    .any(|n| n.owner.is_none() && self.w.node_live(n));
            if !world_cause {
                return Err(format!(
                    "key {} has {live} live, below K = {}, and every node missing is out by the tool",
                    KEYS[key as usize], self.k
                ));
            }
        }
        // The rows of fsm/transitions.tsv that say "not raised".
        if let Some((vassal, phase, fact)) = self.e.impossible_seen().first() {
            return Err(format!(
                "{vassal} met {fact:?} in {phase:?}, which fsm/transitions.tsv says cannot happen ({})",
                uwsgi_reload::engine::why(*phase, *fact)
            ));
        }
        if !self.finished() && self.e.poll_timeout().is_none() {
            return Err("not finished, and poll_timeout() is None: deadlock".into());
        }
        if self.finished() && self.e.poll_timeout().is_some() {
            return Err("finished, but poll_timeout() is still Some".into());
        }
        Ok(())
    }

    /// Nothing comes out of a finished engine, whatever it is fed.
    pub(crate) fn check_silent_after_finish(&self) -> Result<(), String> {
        let mut e = self.e.clone();
        let mut now = self.w.now();
        let inputs = [
            Input::Stop,
            Input::Emperor(self.w.emperor_snapshot()),
            Input::Fastrouter(self.w.fastrouter_snapshot()),
            Input::Config(ConfigEvent::Overflow),
            Input::Touched {
                vassal: vassal_name(0),
                error: Some("late".into()),
            },
        ];
        for input in inputs {
            now.mono_ms += 60_000;
            now.wall_s += 60;
            e.handle_timeout(now);
            e.handle(now, input);
            if let Some(a) = e.poll_action() {
                return Err(format!("an action after Finish: {a:?}"));
            }
            if let Some(r) = e.poll_event() {
                return Err(format!("a report after Finish: {r:?}"));
            }
            if e.poll_timeout().is_some() {
                return Err("poll_timeout() is Some after Finish".into());
            }
        }
        Ok(())
    }

    pub(crate) fn check_outcome(&self, o: &Outcome) -> Result<(), String> {
        let n = self.w.vassals.len();
        let mut seen = vec![0u8; n];
        for name in &o.reloaded {
            let v = index(name)?;
            seen[v] += 1;
            let vw = &self.w.vassals[v];
            if !vw.reloaded {
                return Err(format!(
                    "{name} reported reloaded, but no reload of it completed"
                ));
            }
            if vw.broken && self.probe {
                return Err(format!(
                    "{name} reported reloaded, but its app answers 500 and --probe is on"
                ));
            }
            // Even a wedge nobody's stats show at once (someone else's
            // second reload landing right after a (re)start) shows later:
            // its generation never sends the second announce.
            if vw.wedged_unfinished {
                return Err(format!(
                    "{name} reported reloaded, but a second reload wedged it: it announced \
                     once and stays out"
                ));
            }
        }
        for (name, _reason, _detail) in &o.failed {
            seen[index(name)?] += 1;
        }
        for (name, why) in &o.untouched {
            let v = index(name)?;
            seen[v] += 1;
            if why.trim().is_empty() {
                return Err(format!("{name} untouched without a reason"));
            }
            if self.w.vassals[v].touches > 0 {
                return Err(format!("{name} reported untouched, but it was touched"));
            }
        }
        if let Some(v) = seen.iter().position(|c| *c != 1) {
            return Err(format!(
                "{} is listed {} times in the outcome (reloaded, failed, untouched)",
                vassal_name(v),
                seen[v]
            ));
        }
        match &o.status {
            Status::Completed if !o.failed.is_empty() => {
                return Err("Completed with failures".into());
            }
            Status::Precondition(_) if self.w.vassals.iter().any(|v| v.touches > 0) => {
                return Err("a precondition failure after a touch".into());
            }
            _ => {}
        }
        // A fleet that can keep K while each vassal is out in turn (K + 1
        // live in every key) is not refused at preflight, whatever its
        // subscribe-freq, tolerance or failing vassal.
        let roomy = (0..2u8).all(|k| {
            self.start_live[k as usize] > self.k
                || !self.w.vassals.iter().any(|v| v.keys & (1 << k) != 0)
        });
        if !self.w.any_fault && roomy {
            if let Status::Precondition(why) = &o.status {
                return Err(format!(
                    "no fault and K + 1 live in every key, yet refused at preflight: {why}"
                ));
            }
        }
        // After faults. One fault that hits no vassal (a failed, unparseable
        // or slow read, an inotify overflow) leaves nothing to give up on:
        // every vassal is reloaded (an engine that gives up after one
        // transient read failure fails here). After a fault aimed at a vassal (crash,
        // crash-loop, missing announce, foreign touch, config removed, touch
        // error, broken app) or a SIGINT, every other vassal is reloaded or
        // untouched with its reason (the world may have taken the room K
        // needed), never failed. A fastrouter restart hits every vassal (its
        // nodes are gone until the next announce, which may come after the
        // timeout): after one, failed with a reason is enough.
        if self.w.any_fault && !matches!(o.status, Status::Precondition(_)) {
            // one transient fault: nothing to give up on. Two failed reads in
            // a row can be an outage the engine stops on (named).
            let transient_only = self.w.hit == 0
                && !self.w.fr_restarted
                && !self.w.stopped
                && self.w.faults_used <= 1;
            for (v, vw) in self.w.vassals.iter().enumerate() {
                let name = vassal_name(v);
                if self.w.hit & (1 << v) != 0
                    || self.w.fr_restarted
                    || vw.pre_failing
                    || o.reloaded.contains(&name)
                {
                    continue;
                }
                let untouched = o.untouched.iter().any(|(u, _)| *u == name);
                if transient_only || !untouched {
                    return Err(format!(
                        "{name} was hit by no fault{}, yet it was not reloaded: {:?}: {} (failed {:?}, \
                         untouched {:?})",
                        if transient_only {
                            " and only transient faults happened"
                        } else {
                            ""
                        },
                        o.status,
                        o.summary,
                        o.failed,
                        o.untouched
                    ));
                }
            }
        }
        if !self.w.any_fault && !matches!(o.status, Status::Precondition(_)) {
            for (key, min) in &o.min_live {
                let low = o.lowest_live.get(key).copied().unwrap_or(0);
                let k = key_index(key)?;
                if self.guarded & (1 << k) != 0 && low < *min {
                    return Err(format!(
                        "no fault, yet the engine's lowest live for {key} was {low} < {min}"
                    ));
                }
            }
            // A vassal crash-looping from before the rollout is reported
            // failed; it is no evidence against the release: every other
            // vassal is reloaded.
            for (v, vw) in self.w.vassals.iter().enumerate() {
                let name = vassal_name(v);
                if vw.pre_failing {
                    if !o.failed.iter().any(|(f, _, _)| *f == name) {
                        return Err(format!(
                            "{name} crash-looped before the rollout and never came back, \
                             yet it is not reported failed: {:?}: {}",
                            o.status, o.summary
                        ));
                    }
                } else if !o.reloaded.contains(&name) {
                    return Err(format!(
                        "no fault, yet {name} was not reloaded: {:?}: {} (failed {:?}, untouched {:?})",
                        o.status, o.summary, o.failed, o.untouched
                    ));
                }
            }
            let pre_failing = self.w.vassals.iter().any(|v| v.pre_failing);
            if pre_failing == (o.status == Status::Completed) {
                return Err(format!(
                    "no fault, yet the run ended {:?}: {}",
                    o.status, o.summary
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn index(name: &str) -> Result<usize, String> {
    name.strip_prefix("app_")
        .and_then(|s| s.strip_suffix(".ini"))
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|i| *i >= 1)
        .map(|i| i - 1)
        .ok_or_else(|| format!("an action names {name:?}, not a vassal of this run"))
}

pub(crate) fn key_index(key: &str) -> Result<u8, String> {
    KEYS.iter()
        .position(|k| *k == key)
        .map(|i| i as u8)
        .ok_or_else(|| format!("an action names key {key:?}, not a key of this run"))
}

pub(crate) fn short_input(i: &Input) -> String {
    match i {
        Input::Emperor(s) => format!(
            "Emperor[{}]",
            s.vassals
                .iter()
                .map(|v| format!(
                    "{} pid{} lm{} acc{}@{} resp{}{}",
                    v.id,
                    v.pid,
                    v.last_mod - WALL0,
                    v.accepting,
                    v.last_accepting - WALL0,
                    v.respawns,
                    if v.cursed != 0 { " cursed" } else { "" }
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Input::Fastrouter(s) => format!(
            "Fastrouter[{}]",
            s.nodes()
                .map(|(k, n)| format!(
                    "{}:{} lc{} dm{} ref{}",
                    &k[..3],
                    n.name,
                    n.last_check - WALL0,
                    n.death_mark,
                    n.refs
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => format!("{other:?}"),
    }
}
