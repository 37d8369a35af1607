//! The one way in for the three commands that read a setup: the rollout,
//! `--dry-run` and `status`. [`Session::prepare`] goes from the directory to
//! the configs and what they say, one look at the stats sockets, the
//! subscription servers, the permission checks, the engine's settings, the
//! report's header (`RunInfo`) and the notes, by one code path, so the three
//! commands say the same of the same setup (`tests/command_equivalence.rs`).
//! The pieces are `setup.rs`'s; this file is their order, and the few
//! differences between the commands ([`Mode`]), each said where it is made.

use std::time::Duration;

use super::configs::EmperorDir;
use super::fastrouter_setup::FastrouterOptions;
use super::lock::DirLock;
use super::setup::{self, Parsed};
use super::stats_reader::{read_once, to_input};
use super::watcher::Watcher;
use crate::engine::{ConfigFile, Input, Settings};
use crate::error::Error;
use crate::report::info::RunInfo;
use crate::report::Reporter;
use crate::run_config::{Config, SocketSpec};
use crate::stats::{EmperorSnapshot, FastrouterSnapshot, StatsSource};
use crate::vassal_config::VassalConfig;

/// Which command the session is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Rollout,
    DryRun,
    Status,
}

/// What only a rollout holds for its whole run: the directory's lock (one
/// rollout per directory) and the watch on it (the engine's config events).
pub struct Held {
    pub lock: DirLock,
    pub watcher: Watcher,
}

/// One look at every stats socket: the Emperor's document and each
/// fastrouter's (in `--fastrouter-stats-socket` order), or why a read
/// failed (the socket named, as the engine's reads name it).
pub struct Look {
    pub emperor: Result<EmperorSnapshot, String>,
    pub routers: Vec<Result<FastrouterSnapshot, String>>,
}

impl Look {
    /// Every router, merged into one document (each router's keys apart,
    /// as the engine reads them), when every router answered.
    pub fn fastrouter(&self) -> Option<FastrouterSnapshot> {
        let docs: Option<Vec<FastrouterSnapshot>> = self
            .routers
            .iter()
            .map(|r| r.as_ref().ok().cloned())
            .collect();
        docs.map(FastrouterSnapshot::merge)
    }

    /// Both documents, or the first read that failed (the Emperor's first)
    /// as the precondition error `status` and `--dry-run` stop on.
    pub fn both(&self) -> Result<(EmperorSnapshot, FastrouterSnapshot), Error> {
        let failed = |source: StatsSource, error: &String| {
            Error::Precondition(format!("cannot read the {source} stats socket: {error}"))
        };
        let emp = self
            .emperor
            .as_ref()
            .map_err(|e| failed(StatsSource::Emperor, e))?;
        if let Some(Err(e)) = self.routers.iter().find(|r| r.is_err()) {
            return Err(failed(StatsSource::Fastrouter, e));
        }
        let fr = self.fastrouter().expect("every router answered");
        Ok((emp.clone(), fr))
    }
}

/// A setup, read once: what every command that reads one needs.
pub struct Session {
    pub mode: Mode,
    pub dir: EmperorDir,
    /// `Some` for a rollout only.
    pub held: Option<Held>,
    pub configs: Vec<ConfigFile>,
    pub parsed: Vec<Parsed>,
    /// Every subscription server the drain sends to (one per fastrouter).
    pub subscription_servers: Vec<String>,
    pub settings: Settings,
    /// The versions and settings the report opens with.
    pub info: RunInfo,
    /// Preflight notes and doctor warnings, in the order they are said.
    pub notes: Vec<String>,
    /// `status` only: why a rollout now would be refused before its engine
    /// ran (a right this process lacks, `--strict`); the other commands stop
    /// on it instead.
    pub refusal: Option<String>,
    pub look: Look,
}

impl Session {
    /// Reads the setup for `mode`. Usage errors (exit 2) and preconditions
    /// (exit 3) come out of here; a rollout's refusals all come before its
    /// lock, and nothing of the Emperor is read before its lock.
    pub fn prepare(cfg: &Config, mode: Mode) -> Result<Session, Error> {
        Session::prepare_holding(cfg, mode, None)
    }

    /// [`Session::prepare`]; `lock`: the directory's lock, already held.
    /// Long on purpose: the order of its steps is the contract (every
    /// refusal before the lock, nothing of the Emperor before the lock), and
    /// one function shows it. A
    /// rollout that had to wait for its lock (`--wait-lock`) prepares again
    /// once it holds it: the other instance's rollout may have reloaded a
    /// router or changed configs, and every refusal and setting must come
    /// from what is true now.
    fn prepare_holding(cfg: &Config, mode: Mode, lock: Option<DirLock>) -> Result<Session, Error> {
        let rollout = mode == Mode::Rollout;
        let t = Duration::from_millis(cfg.stats_timeout_ms);
        let mut dir = EmperorDir::open(&cfg.emperor_path, &cfg.suffix, cfg.touch_target)?;
        // Only the rollout acts on the directory: it watches it (before
        // listing, so nothing that happens in between is lost) and records
        // the files its touches go to.
        let watcher = rollout.then(|| Watcher::new(&dir)).transpose()?;
        let super::configs::Selection {
            configs,
            routers_left_out,
        } = super::configs::select(cfg, &dir)?;
        if rollout {
            dir.record_targets(&configs);
        }
        let mut parsed = setup::parse_configs(&dir, &configs)?;
        let mut refusal = None;
        // May this process do what the rollout will do? The files first,
        // before anything of uWSGI is read.
        let files = super::permissions::check(&dir, &configs, &parsed, cfg.settings.repair);
        refuse(mode, &mut refusal, files)?;
        // The routers before the servers: which servers the drain may send
        // to is what the routers' own options say (each read once, here).
        // For a rollout this is before its lock; one that waits for the lock
        // reads them again once it holds it (`prepare_holding`).
        let routers: Vec<_> = cfg
            .fastrouter_stats
            .iter()
            .map(|spec| read_router(spec, t))
            .collect();
        let options = router_options(cfg, &routers);
        let (subscription_servers, mut notes) = setup::checked_servers(cfg, &parsed, &options);
        let servers = super::permissions::check_servers(&subscription_servers);
        refuse(mode, &mut refusal, servers)?;
        let drain = !subscription_servers.is_empty();
        let doctor = setup::doctor(&parsed, drain);
        refuse(mode, &mut refusal, setup::strict(cfg, &doctor))?;
        // Every refusal is made: only now does a rollout take the lock (a
        // refusal leaves nothing behind) and then look at the Emperor (its
        // vassals' pids are what the engine will act on, after any
        // `--wait-lock` wait, not before it).
        let held = match (watcher, lock) {
            (Some(watcher), Some(lock)) => Some(Held { lock, watcher }),
            (Some(watcher), None) => {
                let lock = DirLock::acquire(&dir.fd, &cfg.emperor_path, cfg.wait_lock_ms)?;
                if lock.waited {
                    drop(watcher);
                    return Session::prepare_holding(cfg, mode, Some(lock));
                }
                Some(Held { lock, watcher })
            }
            (None, _) => None,
        };
        let look = Look {
            emperor: read_emperor(&cfg.emperor_stats, t),
            routers,
        };
        // Status and the dry run decide on this one look: a failed read is
        // their error. The rollout's engine reads both sockets again and
        // reports a failure itself; this look only informs its settings.
        if !rollout {
            look.both()?;
        }
        let uncertain = setup::learn_from_emperor(&mut parsed, look.emperor.as_ref().ok());
        let mut settings = setup::engine_settings(cfg, &dir, &configs, &parsed, drain, uncertain);
        notes.extend(routers_note(&routers_left_out));
        notes.extend(doctor);
        notes.extend(setup::datagram_queue_note(&parsed));
        notes.extend(super::fastrouter_setup::learn_fastrouter_options(
            cfg,
            &mut settings,
            &options,
        ));
        let emperor_version = look.emperor.as_ref().map_or("", |e| e.version.as_str());
        let info = RunInfo::new(
            &settings,
            setup::servers_line(&subscription_servers).as_deref(),
        )
        .with_versions(
            emperor_version,
            &look.fastrouter().map(|f| f.version).unwrap_or_default(),
        );
        Ok(Session {
            mode,
            dir,
            held,
            configs,
            parsed,
            subscription_servers,
            settings,
            info,
            notes,
            refusal,
            look,
        })
    }

    /// The parsed config of `vassal`, when it parsed.
    pub fn config_of(&self, vassal: &str) -> Option<&VassalConfig> {
        self.parsed
            .iter()
            .find(|(n, _)| n == vassal)
            .and_then(|(_, p)| p.as_ref().ok())
    }

    /// For the rollout and the dry run, whose reports are event streams:
    /// the header (printed with the engine's `Plan`, the human lines held
    /// until then) and the notes (`note` events with `--json`).
    pub fn open_report(&self, cfg: &Config, rep: &mut Reporter) {
        rep.set_run_info(self.info.clone());
        if !cfg.output.quiet {
            for n in &self.notes {
                rep.note(n);
            }
        }
    }
}

/// A refusal of the setup's own checks: the error for the rollout and the
/// dry run (which promises what the rollout would do); for `status`, which
/// only reads and must show a setup it could not act on, kept to be said.
fn refuse(mode: Mode, refusal: &mut Option<String>, r: Result<(), Error>) -> Result<(), Error> {
    match (mode, r) {
        (_, Ok(())) => Ok(()),
        (Mode::Status, Err(Error::Precondition(why))) => {
            refusal.get_or_insert(why);
            Ok(())
        }
        (_, Err(e)) => Err(e),
    }
}

/// One stats read for the session's look: the document, or the error in
/// words (`pick` takes the document out of the engine's input).
fn read_doc<T>(
    source: StatsSource,
    spec: &SocketSpec,
    t: Duration,
    pick: fn(Input) -> Option<T>,
) -> Result<T, String> {
    match to_input(source, spec, read_once(source, spec, t)) {
        Input::ReadFailed { error, .. } => Err(error),
        other => {
            Ok(pick(other)
                .expect("to_input answers a read with its source's document or ReadFailed"))
        }
    }
}

fn read_router(spec: &SocketSpec, t: Duration) -> Result<FastrouterSnapshot, String> {
    read_doc(StatsSource::Fastrouter, spec, t, |i| match i {
        Input::Fastrouter(f) => Some(f),
        _ => None,
    })
}

fn read_emperor(spec: &SocketSpec, t: Duration) -> Result<EmperorSnapshot, String> {
    read_doc(StatsSource::Emperor, spec, t, |i| match i {
        Input::Emperor(e) => Some(e),
        _ => None,
    })
}

/// Each router's own options, read from the command line of the pid its
/// document gives, where that means something: its stats socket is a unix
/// socket (a TCP one may be another host's, whose pids are not ours to
/// read) and its command line could be read. `None` elsewhere.
fn router_options(
    cfg: &Config,
    routers: &[Result<FastrouterSnapshot, String>],
) -> Vec<Option<FastrouterOptions>> {
    cfg.fastrouter_stats
        .iter()
        .zip(routers)
        .map(|(spec, doc)| {
            let doc = doc
                .as_ref()
                .ok()
                .filter(|_| matches!(spec, SocketSpec::Unix(_)))?;
            let o = super::fastrouter_setup::options(doc.pid);
            o.known.then_some(o)
        })
        .collect()
}

/// The note naming the configs the selection left out because they run a
/// fastrouter (`configs::select`).
fn routers_note(routers: &[String]) -> Option<String> {
    (!routers.is_empty()).then(|| {
        format!(
            "note: {} run(s) a fastrouter: a router, not an app vassal; left out of the rollout (name it with --only to reload it)",
            routers.join(", ")
        )
    })
}
