//! The simulated world: the Emperor's records, the vassals' processes, the
//! fastrouter's nodes, and what the Emperor's scan does.

use super::*;

/// The Emperor's record of a vassal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rec {
    pub pid: i64,
    pub last_mod: i64,
    pub ready: i64,
    pub accepting: i64,
    pub last_accepting: i64,
    pub respawns: i64,
    pub cursed: i64,
    pub born: i64,
    pub first_run: i64,
    pub last_run: i64,
}

/// What the vassal's processes are doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proc {
    /// Accepting and announcing.
    Serving,
    /// The Emperor sent the reload (the master acts on it at once: with
    /// unsubscribe-on-graceful-reload its nodes go): workers going, exec,
    /// app loading.
    Reloading { since: u64 },
    /// A fresh master after a crash, starting.
    Starting { since: u64 },
    /// Worker 1 accepts; the announce has not reached the fastrouter yet.
    Accepted { at: u64 },
    /// Stopped by the Emperor (config removed): exiting.
    Stopping { at: u64 },
    /// No process.
    Gone,
}

/// What writing `S` to the FIFO of a vassal that never announced does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RepairOutcome {
    Fixes,
    DoesNotHelp,
    NoFifo,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VassalW {
    /// The config file's mtime, and whether it exists.
    pub mtime: i64,
    pub exists: bool,
    /// In the Emperor's vassals[] (None: gone or blacklisted).
    pub rec: Option<Rec>,
    pub blacklist_attempt: Option<i64>,
    pub proc_: Proc,
    /// Missing-announce fault: it never announces (until repaired).
    pub blocked: Option<RepairOutcome>,
    /// A second reload request wedged it: its master sits "reloading"
    /// (for worker-reload-mercy, past this horizon) while its workers, which
    /// missed the signal, keep serving; it accepts and announces once, then
    /// never again: out once its node expires.
    pub wedged: bool,
    /// The wedge came from someone else's reload reaching a freshly
    /// (re)started master: nothing in the stats shows it at once (one
    /// reload request, one announce). No longer an exemption: the engine must
    /// the engine to see it by the missing second announce.
    pub wedge_unseen: bool,
    /// The wedge came before any reload of this run completed: what the
    /// run reports as reloaded is that wedged generation.
    pub wedged_unfinished: bool,
    /// The config's mtime was last set by someone else.
    pub foreign_mtime: bool,
    /// Its app answers 500 (BrokenApp fault).
    pub broken: bool,
    /// The generation running was started during this run (reload or
    /// crash), so its announce completes a reload.
    pub new_gen: bool,
    /// A reload started during this run completed (accepted and announced).
    pub reloaded: bool,
    /// Action::Touch received for it.
    pub touches: u8,
    /// The new generation announced before accepting.
    pub announced_early: bool,
    /// The engine watches its log (`Action::WatchHookLog` until
    /// `UnwatchHookLog`): when it accepts, the log tells whether its
    /// accepting hook's `S` was lost or arrived (`Config::log_evidence`).
    pub watched: bool,
    /// The tool's `S` blocked its subscriptions (a toggle, written while
    /// they were on) and no later `S` undid it: it must not end the run so
    /// (checked at `Finish`).
    pub blocked_by_tool: bool,
    /// The wall second of the announce at `master_cycles == 1`.
    pub announce_again: Option<i64>,
    /// `last_mod` when it went into the blacklist.
    pub gone_last_mod: i64,
    /// Key bitmask.
    pub keys: u8,
    /// Addresses it subscribes under each of its keys (1 or 2).
    pub addrs: u8,
    /// Its subscribe-freq: it announces at the wall seconds s with
    /// `(s + phase_s) % freq_s == 0`.
    pub freq_s: i64,
    pub phase_s: i64,
    /// The tool took it out of service while it was serving (a touch, a
    /// drain unsubscribe, an `S` toggling its subscription off): its nodes
    /// are charged to the tool until it is serving again with nothing of
    /// the tool's pending.
    pub taken: bool,
    /// It crash-loops from before the rollout and stays broken: the run
    /// must report it failed, and reload the others.
    pub pre_failing: bool,
    /// The world took it out (crash, crash loop, someone else's reload,
    /// config removed, fastrouter restart) and the stats socket that shows
    /// it (bit 0 Emperor, bit 1 fastrouter) has not been read since: the
    /// tool cannot know yet, so its live nodes then (`lost_live`, per key)
    /// still count when a touch of the tool is judged.
    pub unseen: u8,
    pub lost_live: [u8; 2],
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeW {
    pub key: u8,
    /// Which of its owner's addresses (see `node_name`).
    pub addr: u8,
    /// Index of the vassal, or None for the other host's node.
    pub owner: Option<usize>,
    pub last_check: i64,
    pub death_mark: bool,
    /// Sessions in flight (`ref > 0`): a death-marked node stays listed.
    pub busy: bool,
    pub marked_at: u64,
    /// Its last packet was the tool's (an early announce, an undone drain):
    /// the router shows `cores` 0, the vassal's own announce at least 1.
    pub by_tool: bool,
}

/// A driver answer to an action, not yet delivered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Answer {
    Touch {
        v: usize,
        mtime: i64,
    },
    /// An inotify event for a config (ours or someone else's).
    Changed {
        v: usize,
        mtime: i64,
    },
    Removed {
        v: usize,
    },
    Unsubscribe {
        v: usize,
        key: u8,
        addr: u8,
    },
    Subscribe {
        v: usize,
        key: u8,
        addr: u8,
    },
    Repair {
        v: usize,
        pid: i64,
    },
    Probe {
        v: usize,
    },
    Rescan,
    /// A line of a watched vassal's log (docs/UWSGI.md §9.6.1): its hook's
    /// `S` lost, or its master's subscriptions re-enabled.
    Log {
        v: usize,
        lost: bool,
    },
    /// A line of a watched vassal's own log: its master blocked
    /// subscriptions (the tool's `S` toggled them off).
    Blocked {
        v: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct World {
    pub now: u64,
    pub vassals: Vec<VassalW>,
    /// The Emperor's vassals[] order (a crash-respawn moves one to the end).
    pub order: Vec<usize>,
    pub nodes: Vec<NodeW>,
    /// A read of [emperor, fastrouter] in flight.
    pub reads: [bool; 2],
    pub answers: Vec<Answer>,
    /// A change the Emperor's own periodic scan will pick up by then.
    pub scan_due: Option<u64>,
    pub faults_used: u8,
    pub any_fault: bool,
    /// Vassals a fault was aimed at (crash, crash-loop, missing announce,
    /// foreign touch, config removed, touch error, broken app), one bit
    /// each: at Finish, every other vassal must be reloaded, or untouched
    /// because the run stopped (checker.rs).
    pub hit: u32,
    /// A SIGINT was delivered.
    pub stopped: bool,
    /// The fastrouter restarted (every vassal's nodes gone a while).
    pub fr_restarted: bool,
    /// Keys of a vassal whose new app answers 500 (BrokenApp): only
    /// requests tell, so K is not asserted for them.
    pub exempt: u8,
    pub next_pid: i64,
    /// The fastrouter's pid: a restart changes it.
    pub fr_pid: i64,
    /// The other host's node went with a fastrouter restart not yet read.
    pub foreign_unseen: u8,
    pub fr_tolerance_s: i64,
    pub accept_after_ms: u64,
    pub accept_at_ends: bool,
    pub announce_late_ms: u64,
    pub lazy_apps: bool,
    pub foreign_node: bool,
    pub uogr: bool,
    pub busy: bool,
    pub accept_within_ms: u64,
    pub events_between_reads: bool,
    pub announce_first: bool,
    /// A slow read may stay in flight across the next time jump.
    pub slow: [bool; 2],
}

impl World {
    pub fn wall(&self) -> i64 {
        WALL0 + ((self.now - MONO0) / 1000) as i64
    }

    pub fn now(&self) -> Now {
        Now {
            mono_ms: self.now,
            wall_s: self.wall(),
        }
    }

    /// Listed, not death-marked, and not expired by the fastrouter's
    /// subscription-tolerance (it expires nodes lazily, when a request is
    /// routed to one older than that).
    pub(crate) fn node_fresh(&self, n: &NodeW) -> bool {
        !n.death_mark && self.wall() - n.last_check <= self.fr_tolerance_s
    }

    /// The vassal's processes serve requests (whatever its nodes say). A
    /// wedged one does, until the fastrouter expires its node.
    /// A broken app (BrokenApp) serves in this sense: its processes are up
    /// and its nodes routed, and only requests tell (a 500); the tool
    /// without `--probe` cannot know, so its nodes count as live and K is
    /// checked on its keys for every other node.
    pub fn serving(&self, v: usize) -> bool {
        let w = &self.vassals[v];
        matches!(w.proc_, Proc::Serving | Proc::Accepted { .. })
            && w.rec
                .as_ref()
                .is_some_and(|r| r.accepting == 1 && r.cursed == 0)
    }

    /// Ground truth: a node that takes requests and is served.
    pub fn node_live(&self, n: &NodeW) -> bool {
        self.node_fresh(n) && n.owner.map_or(true, |v| self.serving(v))
    }

    /// Ground truth: how many nodes per key take requests and are served.
    pub fn live(&self, key: u8) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.key == key && self.node_live(n))
            .count()
    }

    /// Live nodes of vassal `v` under `key`.
    pub fn live_of(&self, v: usize, key: u8) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.key == key && n.owner == Some(v) && self.node_live(n))
            .count()
    }

    /// The world takes vassal `v` out now; only a read of `src` (bit 0
    /// Emperor, bit 1 fastrouter) shows it.
    pub(crate) fn world_drop(&mut self, v: usize, src: u8) {
        let lost = [self.live_of(v, 0) as u8, self.live_of(v, 1) as u8];
        let vw = &mut self.vassals[v];
        if vw.unseen == 0 {
            vw.lost_live = [0; 2];
        }
        vw.unseen |= src;
        vw.lost_live = [vw.lost_live[0].max(lost[0]), vw.lost_live[1].max(lost[1])];
    }

    /// A read of `src` (bit 0 Emperor, bit 1 fastrouter) was delivered.
    pub(crate) fn seen(&mut self, src: u8) {
        for vw in &mut self.vassals {
            vw.unseen &= !src;
            if vw.unseen == 0 {
                vw.lost_live = [0; 2];
            }
        }
        self.foreign_unseen &= !src;
    }

    /// Every node it subscribes with is live.
    pub fn fully_live(&self, v: usize) -> bool {
        let w = &self.vassals[v];
        (0..2u8)
            .filter(|k| w.keys & (1 << k) != 0)
            .all(|k| self.live_of(v, k) == w.addrs as usize)
    }

    pub fn emperor_snapshot(&self) -> EmperorSnapshot {
        let vassals = self
            .order
            .iter()
            .filter_map(|&i| {
                self.vassals[i].rec.as_ref().map(|r| VassalStats {
                    id: vassal_name(i),
                    pid: r.pid,
                    last_mod: r.last_mod,
                    ready: r.ready,
                    accepting: r.accepting,
                    last_accepting: r.last_accepting,
                    respawns: r.respawns,
                    cursed: r.cursed,
                    loyal: 1,
                    born: r.born,
                    first_run: r.first_run,
                    last_run: r.last_run,
                })
            })
            .collect();
        let blacklist = (0..self.vassals.len())
            .filter_map(|i| {
                self.vassals[i].blacklist_attempt.map(|a| BlacklistEntry {
                    id: vassal_name(i),
                    throttle_level: 1 + 1000 * a,
                    attempt: a,
                })
            })
            .collect();
        EmperorSnapshot {
            pid: 1,
            version: String::new(),
            emperor: vec![EMPEROR_DIR.to_string()],
            vassals,
            blacklist,
        }
    }

    pub fn fastrouter_snapshot(&self) -> FastrouterSnapshot {
        let mut subscriptions = Vec::new();
        for (k, key) in KEYS.iter().enumerate() {
            let nodes: Vec<Node> = self
                .nodes
                .iter()
                .filter(|n| n.key as usize == k)
                .map(|n| Node {
                    name: n
                        .owner
                        .map_or(FOREIGN_NODE.to_string(), |v| node_name(v, n.addr)),
                    last_check: n.last_check,
                    death_mark: n.death_mark as i64,
                    refs: n.busy as i64,
                    cores: Some(if n.by_tool { 0 } else { 1 }),
                    ..Node::default()
                })
                .collect();
            if !nodes.is_empty() {
                subscriptions.push(Subscription {
                    key: key.to_string(),
                    nodes,
                });
            }
        }
        FastrouterSnapshot {
            router_pids: Vec::new(),
            pid: self.fr_pid,
            version: String::new(),
            subscriptions,
        }
    }

    /// The vassal announces: its nodes are (re-)added, fresh.
    pub(crate) fn announce(&mut self, v: usize) {
        for key in 0..2u8 {
            if self.vassals[v].keys & (1 << key) == 0 {
                continue;
            }
            for addr in 0..self.vassals[v].addrs {
                self.subscribe(v, key, addr, false);
            }
        }
    }

    /// One subscription packet reaches the fastrouter: the node is added,
    /// or refreshed (and revived if death-marked); `by_tool`: the tool's
    /// packet, not the vassal's.
    pub(crate) fn subscribe(&mut self, v: usize, key: u8, addr: u8, by_tool: bool) {
        let wall = self.wall();
        match self
            .nodes
            .iter_mut()
            .find(|n| n.key == key && n.owner == Some(v) && n.addr == addr)
        {
            Some(n) => {
                n.last_check = wall;
                n.death_mark = false;
                n.busy = false;
                n.by_tool = by_tool;
            }
            None => self.nodes.push(NodeW {
                key,
                addr,
                owner: Some(v),
                last_check: wall,
                death_mark: false,
                busy: false,
                marked_at: 0,
                by_tool,
            }),
        }
    }

    /// An unsubscribe reaches the fastrouter: removed, or death-marked while
    /// sessions are in flight.
    pub(crate) fn unsubscribe(&mut self, v: usize, node: Option<(u8, u8)>, busy: bool) {
        let now = self.now;
        self.nodes.retain_mut(|n| {
            if n.owner != Some(v) || node.is_some_and(|(k, a)| (k, a) != (n.key, n.addr)) {
                return true;
            }
            if busy {
                n.death_mark = true;
                n.busy = true;
                n.marked_at = now;
                true
            } else {
                false
            }
        });
    }

    /// A reload or start begun at `since` may have worker 1 accept now.
    pub(crate) fn may_accept(&self, since: u64) -> bool {
        let (first, last) = (since + self.accept_after_ms, since + self.accept_within_ms);
        self.now >= first && (!self.accept_at_ends || self.now == first || self.now >= last)
    }

    /// It announces at its next subscribe-freq tick: serving, or (with
    /// lazy-apps) accepting and not yet announced.
    pub(crate) fn can_announce(&self, v: usize) -> bool {
        let w = &self.vassals[v];
        let up =
            w.proc_ == Proc::Serving || self.lazy_apps && matches!(w.proc_, Proc::Accepted { .. });
        up && w.blocked.is_none() && !w.wedged
    }

    /// An announce after accepting: it serves, and if this generation was
    /// started during the run, that reload is complete.
    pub(crate) fn announced(&mut self, v: usize) {
        let vw = &mut self.vassals[v];
        vw.proc_ = Proc::Serving;
        if vw.new_gen {
            vw.reloaded = true;
            vw.new_gen = false;
        }
    }

    /// A new master process for vassal `v` (a crash restart, or a
    /// blacklisted vassal started again): a fresh Emperor record with a new
    /// pid, starting, its generation this run's; last in the Emperor's order.
    pub(crate) fn start_process(&mut self, v: usize, last_mod: i64) {
        let (now, wall) = (self.now, self.wall());
        let pid = self.next_pid;
        self.next_pid += 1;
        let w = &mut self.vassals[v];
        w.rec = Some(Rec {
            pid,
            last_mod,
            ready: 0,
            accepting: 0,
            last_accepting: 0,
            respawns: 0,
            cursed: 0,
            born: last_mod,
            first_run: wall,
            last_run: wall,
        });
        w.proc_ = Proc::Starting { since: now };
        w.new_gen = true;
        w.blocked = None;
        w.announced_early = false;
        w.announce_again = None;
        self.order.retain(|i| *i != v);
        self.order.push(v);
    }

    pub(crate) fn config_changed(&mut self) {
        if self.scan_due.is_none() {
            self.scan_due = Some(self.now + EMPEROR_FREQ_MS);
        }
    }

    /// Would a scan now send a second reload to a vassal mid-reload?
    pub(crate) fn scan_could_wedge(&self) -> bool {
        self.vassals.iter().any(|w| {
            w.exists
                && matches!(w.proc_, Proc::Reloading { .. } | Proc::Starting { .. })
                && w.rec
                    .as_ref()
                    .is_some_and(|r| r.cursed == 0 && w.mtime > r.last_mod)
        })
    }

    /// The Emperor's scan (`uwsgi_imperial_monitor_directory`).
    pub(crate) fn scan(&mut self, wedge: bool) {
        let (now, wall) = (self.now, self.wall());
        // Whom this scan stops or reloads on someone else's behalf: the
        // world's doing, shown by the next Emperor read.
        for v in 0..self.vassals.len() {
            let w = &self.vassals[v];
            let Some(r) = w.rec.as_ref() else { continue };
            let up = matches!(w.proc_, Proc::Serving | Proc::Accepted { .. }) && !w.wedged;
            let foreign_reload = w.exists && w.mtime > r.last_mod && w.foreign_mtime;
            if r.cursed == 0 && up && (!w.exists || foreign_reload) {
                self.world_drop(v, 1);
            }
        }
        let mut begun = Vec::new();
        let mut added = Vec::new();
        for (i, w) in self.vassals.iter_mut().enumerate() {
            let Some(r) = w.rec.as_mut() else {
                // A blacklisted vassal whose config changed is started again
                // (`emperor_add`, once its throttle expires): a new record.
                if w.exists && w.blacklist_attempt.is_some() && w.mtime > w.gone_last_mod {
                    added.push(i);
                }
                continue;
            };
            if r.cursed != 0 {
                continue;
            }
            if !w.exists {
                r.cursed = wall;
                w.proc_ = Proc::Stopping { at: now };
                continue;
            }
            if w.mtime <= r.last_mod {
                continue;
            }
            r.respawns += 1;
            r.last_mod = w.mtime;
            r.last_run = wall;
            r.ready = 0;
            r.accepting = 0;
            w.blocked = None;
            w.announced_early = false;
            w.announce_again = None;
            match w.proc_ {
                // A wedged master is still "reloading": it ignores the
                // request (until worker-reload-mercy, past this horizon).
                Proc::Serving | Proc::Accepted { .. } if w.wedged => {}
                Proc::Serving | Proc::Accepted { .. } => {
                    w.proc_ = Proc::Reloading { since: now };
                    w.new_gen = true;
                    begun.push(i);
                }
                // Reaches the old master (ignored: one reload) or the new
                // one in the lost-SIGHUP window.
                Proc::Reloading { .. } | Proc::Starting { .. } => {
                    if wedge {
                        w.wedged = true;
                        w.wedged_unfinished |= !w.reloaded;
                        w.wedge_unseen |= matches!(w.proc_, Proc::Starting { .. })
                            && w.foreign_mtime
                            && r.respawns == 1;
                    }
                }
                Proc::Stopping { .. } | Proc::Gone => {}
            }
        }
        if self.uogr {
            for v in begun {
                self.unsubscribe(v, None, self.busy);
            }
        }
        for v in added {
            let last_mod = self.vassals[v].mtime;
            self.start_process(v, last_mod);
        }
        self.scan_due = None;
    }
}
