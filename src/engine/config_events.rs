//! What the directory watcher saw: someone else's touch, a removed config,
//! a lost event queue.

use super::*;

impl Engine {
    pub(super) fn config_event(&mut self, ev: ConfigEvent) {
        match ev {
            ConfigEvent::Changed {
                name,
                mtime: Some(m),
            }
            | ConfigEvent::Created {
                name,
                mtime: Some(m),
            } if self.find(&name).is_some() => self.config_mtime(&name, m),
            ConfigEvent::Changed { .. } => {}
            ConfigEvent::Created { name, .. } => {
                if self.find(&name).is_none() && self.warned_created.insert(name.clone()) {
                    self.report(Event::Warning {
                        vassal: Some(name),
                        message: "config appeared mid-rollout; it is not part of this rollout"
                            .into(),
                    });
                }
            }
            ConfigEvent::Removed { name } => {
                if let Some(i) = self.find(&name) {
                    self.apply(
                        i,
                        Fact::ConfigRemoved,
                        "config file deleted or renamed".into(),
                    );
                }
            }
            ConfigEvent::Overflow => {
                self.report(Event::Warning {
                    vassal: None,
                    message: "directory watch queue overflowed; rescanning the Emperor directory"
                        .into(),
                });
                self.out.push_back(Action::RescanConfigs);
            }
            ConfigEvent::Rescanned(files) => {
                for i in 0..self.vassals.len() {
                    let name = self.vassals[i].name.clone();
                    match files.iter().find(|f| f.name == name) {
                        Some(f) => self.config_mtime(&name, f.mtime),
                        None => {
                            self.apply(i, Fact::ConfigRemoved, "config file gone (rescan)".into());
                        }
                    }
                }
                for f in files {
                    if self.find(&f.name).is_none() {
                        self.config_event(ConfigEvent::Created {
                            name: f.name,
                            mtime: Some(f.mtime),
                        });
                    }
                }
            }
        }
    }

    /// A config's mtime is now `m`. Ours, or no later than what the Emperor
    /// has already acted on: nothing. Later: someone else's reload.
    pub(super) fn config_mtime(&mut self, name: &str, m: i64) {
        let Some(i) = self.find(name) else { return };
        let v = &self.vassals[i];
        if m == v.known_mtime {
            return;
        }
        let emp_last = self
            .emp
            .as_ref()
            .and_then(|e| e.vassal(name))
            .map_or(i64::MIN, |s| s.last_mod);
        let ours = if v.phase.in_flight() {
            v.touch.mtime_set
        } else {
            i64::MIN
        };
        self.vassals[i].known_mtime = m;
        if m > emp_last.max(ours) && m > i64::MIN {
            self.apply(
                i,
                Fact::ForeignTouch,
                format!("mtime set to {m} by someone else"),
            );
        }
    }
}
