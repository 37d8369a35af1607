//! The properties: what every action, every step and the outcome must satisfy.

use super::*;

impl Sim {
    /// Takes the engine's actions, checking what every action must satisfy.
    pub fn drain(&mut self) -> Result<(), String> {
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
                    self.w.answers.push(Answer::Touch { v, mtime });
                }
                Action::Unsubscribe {
                    vassal, key, node, ..
                } => {
                    self.note(|| format!("    <- Unsubscribe {vassal} {key}"));
                    let v = index(&vassal)?;
                    let k = key_index(&key)?;
                    if node != socket_name(v) {
                        return Err(format!("Unsubscribe of {node} for {vassal}: not its node"));
                    }
                    self.w.answers.push(Answer::Unsubscribe { v, key: k });
                }
                Action::Subscribe {
                    vassal, key, node, ..
                } => {
                    self.note(|| format!("    <- Subscribe {vassal} {key}"));
                    let v = index(&vassal)?;
                    let k = key_index(&key)?;
                    if node != socket_name(v) {
                        return Err(format!("Subscribe of {node} for {vassal}: not its node"));
                    }
                    if self.w.vassals[v].keys & (1 << k) == 0 {
                        return Err(format!(
                            "Subscribe of {vassal} under {key}, which it never had"
                        ));
                    }
                    self.w.answers.push(Answer::Subscribe { v, key: k });
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
                    self.w.answers.push(Answer::Repair { v, pid });
                }
                Action::RescanConfigs => self.w.answers.push(Answer::Rescan),
                Action::Probe { vassal, node, .. } => {
                    self.note(|| format!("    <- Probe {vassal} via {node}"));
                    let v = index(&vassal)?;
                    if node != socket_name(v) {
                        return Err(format!("Probe of {vassal} sent to {node}: not its node"));
                    }
                    self.w.answers.push(Answer::Probe { v });
                }
                Action::Report(r) => self.note(|| format!("    <- {:?}", r.event)),
                Action::Finish(o) => {
                    self.note(|| format!("    <- Finish {:?} {}", o.status, o.summary));
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

    /// Properties of every step.
    pub(crate) fn check_step(&self) -> Result<(), String> {
        for key in 0..2u8 {
            if self.guarded & (1 << key) == 0 || self.w.exempt & (1 << key) != 0 {
                continue;
            }
            let live = self.w.live(key);
            if live < self.k {
                return Err(format!(
                    "key {} has {live} live, below K = {} (no fault of its own)",
                    KEYS[key as usize], self.k
                ));
            }
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
            if vw.wedged && !vw.wedge_unseen {
                return Err(format!(
                    "{name} reported reloaded, but a second reload wedged it (FACTS 4)"
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
            Status::Completed => {
                if !o.failed.is_empty() {
                    return Err("Completed with failures".into());
                }
            }
            Status::Precondition(_) => {
                if self.w.vassals.iter().any(|v| v.touches > 0) {
                    return Err("a precondition failure after a touch".into());
                }
            }
            _ => {}
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
            if o.status != Status::Completed || o.reloaded.len() != n {
                return Err(format!(
                    "no fault, yet not every vassal was reloaded: {:?}: {} (failed {:?}, untouched {:?})",
                    o.status, o.summary, o.failed, o.untouched
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
