//! The pieces of setting a command up, before the engine runs: the
//! configs and what they say, the subscription servers, the doctor's
//! findings, what the routers' own options change, and the engine's
//! settings for this host. `session.rs` puts them in their one order for
//! the rollout, `--dry-run` and `status`, so the three decide alike.

use std::path::PathBuf;

use super::configs::EmperorDir;
use super::fastrouter_setup::FastrouterOptions;
use crate::engine::NodeMatch;
use crate::error::Error;
use crate::run_config::Config;
use crate::vassal_config::VassalConfig;

/// One selected config and what reading it gave: its parse, or why it could
/// not be read (then it is simply not used for mapping, drain or repair).
pub type Parsed = (String, Result<VassalConfig, String>);

/// Where the drain (and the dead-node sweep) sends its unsubscribes:
/// `--subscription-server`, else every server the vassal configs name (one
/// per fastrouter of an HA pair); none (drain off) with a note why.
pub fn subscription_server(
    cfg: &Config,
    parsed: &[(String, Result<VassalConfig, String>)],
) -> (Vec<String>, Vec<String>) {
    let mut notes = Vec::new();
    let servers = if cfg.no_drain {
        Vec::new()
    } else if let Some(s) = &cfg.subscription_server {
        vec![s.clone()]
    } else {
        let mut servers: Vec<String> = parsed
            .iter()
            .filter_map(|(_, p)| p.as_ref().ok())
            .flat_map(|p| p.subscriptions.iter().map(|s| s.server.clone()))
            .collect();
        servers.sort();
        servers.dedup();
        if servers.is_empty() {
            notes.push("note: drain is off: the vassal configs name no subscription server; pass --subscription-server to unsubscribe each vassal before its touch (or --no-drain to silence this)".to_string());
        }
        servers
    };
    (servers, notes)
}

/// Of the servers the configs name, those a fastrouter the tool reads
/// subscribes on (its `fastrouter-subscription-server`): a config names
/// any address it likes (`/dev/log`, the journal, a remote host), and the
/// datagrams carry other tenants' keys (docs/SECURITY.md, datagrams).
/// `routers`: each router's options, `None` where they cannot be read
/// (stats over TCP, /proc unreadable): then every server is kept, with a
/// note. A router that checks signatures ignores the tool's unsigned
/// packets: no server (drain and early announce off), with a note.
pub fn servers_the_routers_name(
    servers: Vec<String>,
    routers: &[Option<FastrouterOptions>],
) -> (Vec<String>, Vec<String>) {
    if servers.is_empty() {
        return (servers, Vec::new());
    }
    if routers.iter().flatten().any(|r| r.sign_check) {
        return (Vec::new(), vec!["note: drain and early announce are off: the fastrouter checks subscription signatures (subscriptions-sign-check) and ignores the tool's unsigned packets".to_string()]);
    }
    let named: Vec<&String> = routers.iter().flatten().flat_map(|r| &r.servers).collect();
    if routers.is_empty()
        || routers.iter().any(|r| {
            r.as_ref()
                .map_or(true, |r| !r.known || r.servers.is_empty())
        })
    {
        let note = format!(
            "note: the fastrouter's own subscription servers cannot be read here (stats over TCP, /proc unreadable, or not on its command line or ini): sending to every server the vassal configs name ({}); pass --subscription-server to choose",
            servers.join(", ")
        );
        return (servers, vec![note]);
    }
    let (kept, dropped): (Vec<String>, Vec<String>) =
        servers.into_iter().partition(|s| named.contains(&s));
    let notes = if dropped.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "note: not sending to {}: named by a vassal config, but no fastrouter the tool reads subscribes there",
            dropped.join(", ")
        )]
    };
    (kept, notes)
}

/// `subscription_server` and then [`servers_the_routers_name`]: the one
/// way the rollout, `--dry-run` and `status` pick their servers. `routers`:
/// each router's options (`session::router_options`).
pub fn checked_servers(
    cfg: &Config,
    parsed: &[Parsed],
    routers: &[Option<FastrouterOptions>],
) -> (Vec<String>, Vec<String>) {
    let (servers, mut notes) = subscription_server(cfg, parsed);
    if cfg.subscription_server.is_some() || servers.is_empty() {
        return (servers, notes);
    }
    let (servers, more) = servers_the_routers_name(servers, routers);
    notes.extend(more);
    (servers, notes)
}

/// The subscription servers as one line for the report, if any.
pub fn servers_line(servers: &[String]) -> Option<String> {
    (!servers.is_empty()).then(|| servers.join(", "))
}

/// Unix datagram subscription servers queue at most
/// `net.unix.max_dgram_qlen` packets; announces beyond that are dropped by
/// the kernel (the vassal logs `sendto(): Resource temporarily unavailable`)
/// and those nodes come back a subscribe-freq late.
pub fn datagram_queue_note(parsed: &[(String, Result<VassalConfig, String>)]) -> Option<String> {
    let unix = parsed
        .iter()
        .filter_map(|(_, p)| p.as_ref().ok())
        .any(|p| p.subscriptions.iter().any(|s| !s.server.contains(':')));
    let qlen: usize = std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (unix && qlen < parsed.len()).then(|| {
        format!(
            "warning: net.unix.max_dgram_qlen is {qlen}, fewer than the {} vassals that may announce at once: the kernel drops the excess announces and those nodes come back up to a subscribe-freq late; raise it (sysctl -w net.unix.max_dgram_qlen={})",
            parsed.len(),
            parsed.len().next_power_of_two().max(64)
        )
    })
}

/// The doctor's findings as warning lines.
pub fn doctor(parsed: &[Parsed], drain: bool) -> Vec<String> {
    let refs: Vec<(String, Result<&VassalConfig, String>)> = parsed
        .iter()
        .map(|(n, p)| (n.clone(), p.as_ref().map_err(Clone::clone)))
        .collect();
    crate::doctor::check(&refs, drain)
        .iter()
        .map(|f| format!("warning: {}", f.render(parsed.len())))
        .collect()
}

/// With `--strict`, the doctor's first finding (`lines`, from [`doctor`])
/// as the refusal.
pub fn strict(cfg: &Config, lines: &[String]) -> Result<(), Error> {
    let Some(first) = lines.first().filter(|_| cfg.strict) else {
        return Ok(());
    };
    let first = first.strip_prefix("warning: ").unwrap_or(first);
    let more = match lines.len() - 1 {
        0 => String::new(),
        n => format!(" (and {n} more finding(s); run without --strict to see them)"),
    };
    Err(Error::Precondition(format!("--strict: {first}{more}")))
}

/// The vassals whose options the tool cannot fully know from their files:
/// the Emperor gave their masters options on the command line
/// (`vassal-set`, includes: `vassal_args`, docs/UWSGI.md §9.12), their
/// command line cannot be read, or their config loads files the tool does
/// not follow. Their announce period is uncertain
/// (`Settings::freq_uncertain`).
pub fn learn_from_emperor(
    parsed: &mut [(String, Result<VassalConfig, String>)],
    emp: Option<&crate::stats::EmperorSnapshot>,
) -> std::collections::BTreeSet<String> {
    let mut uncertain = std::collections::BTreeSet::new();
    for (name, p) in parsed.iter_mut() {
        let Ok(cfg) = p else { continue };
        let pid = emp
            .and_then(|e| e.vassals.iter().find(|v| v.id == *name))
            .map_or(0, |v| v.pid);
        // A master's command line is its app's to rewrite (argv is its own
        // memory): it says that the Emperor gave options, never which
        // values to trust (docs/SECURITY.md). Any option there, or none
        // readable, makes the announce period uncertain: the tool then
        // never calls the vassal silent from a node's age alone.
        if !super::vassal_args::emperor_options(pid).is_ok_and(|preset| preset.is_empty()) {
            uncertain.insert(name.clone());
        }
        // An include not followed, or a logic block (`if-env`, `for`...),
        // which the tool reads as if unconditional: what uWSGI really sets
        // may differ (an include inside `if-env` only in development).
        if !cfg.includes.is_empty() || cfg.has_logic_blocks() {
            uncertain.insert(name.clone());
        }
    }
    uncertain
}

/// The engine's settings for this directory: the command line's, plus
/// what only the system can tell (the Emperor directory's real path, the
/// node names from the configs, the other-mode mtimes of links, whether the
/// drain has a server). One place, so a rollout and `--dry-run` decide alike.
pub fn engine_settings(
    cfg: &Config,
    dir: &EmperorDir,
    configs: &[crate::engine::ConfigFile],
    parsed: &[(String, Result<VassalConfig, String>)],
    drain: bool,
    freq_uncertain: std::collections::BTreeSet<String>,
) -> crate::engine::Settings {
    let mut s = cfg.settings.clone();
    s.freq_uncertain = freq_uncertain;
    s.emperor_dir = std::fs::canonicalize(&cfg.emperor_path)
        .ok()
        .and_then(|p: PathBuf| p.to_str().map(str::to_string));
    s.drain_timeout_ms = drain.then_some(cfg.drain_timeout_ms);
    s.node_match = node_match(&s.node_match, parsed);
    s.other_mode_mtimes = dir.other_mode_mtimes(configs);
    s.touch_target = cfg.touch_target;
    s.can_unsubscribe = drain;
    s.tcp_routers = cfg
        .fastrouter_stats
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a, crate::run_config::SocketSpec::Tcp(_)))
        .map(|(r, _)| r)
        .collect();
    s.subscribe_freq_s = parsed
        .iter()
        .filter_map(|(n, p)| Some((n.clone(), p.as_ref().ok()?.subscribe_freq()?)))
        .collect();
    s.early_announce = early_announce(cfg, parsed, drain);
    // The start-unsubscribed + writefifo S pattern: only its log proves at
    // once whether the hook's S was lost or arrived (uwsgi::hook_log).
    let hook_pattern: std::collections::BTreeSet<String> = parsed
        .iter()
        .filter(|(_, p)| p.as_ref().is_ok_and(|c| c.lost_hook_marker().is_some()))
        .map(|(n, _)| n.clone())
        .collect();
    s.announce_when_on = if cfg.early_announce.is_none() && drain && s.probe_path.is_none() {
        hook_pattern
            .difference(&s.early_announce)
            .cloned()
            .collect()
    } else {
        Default::default()
    };
    // `S` only where it can only unblock: a vassal whose config blocks
    // subscriptions at start (docs/UWSGI.md §9.6.2).
    s.repairable = parsed
        .iter()
        .filter(|(_, p)| p.as_ref().is_ok_and(|c| c.start_unsubscribed))
        .map(|(n, _)| n.clone())
        .collect();
    s.exit_on_reload = parsed
        .iter()
        .filter(|(_, p)| p.as_ref().is_ok_and(VassalConfig::exits_on_reload))
        .map(|(n, _)| n.clone())
        .collect();
    s.watch_hook_log = if s.repair {
        hook_pattern
    } else {
        s.announce_when_on.clone()
    };
    s.announce_after_repair = cfg.early_announce != Some(false);
    let drain_s = cfg.drain_timeout_ms.div_ceil(1000);
    s.drain_sessions_kept = parsed
        .iter()
        .filter_map(|(n, p)| {
            let kept = p.as_ref().ok()?.sessions_a_reload_finishes(drain_s);
            (kept > 0).then(|| (n.clone(), kept))
        })
        .collect();
    s
}

/// The vassals the tool announces itself as soon as they accept: every one
/// with `--early-announce`, none with `--no-early-announce` or `--probe` or
/// without a subscription server to send to; by default those whose own
/// config subscribes by itself from its master's start. The
/// `start-unsubscribed` + writefifo `S` hook pattern is not among them by
/// default: its hook can lose a race and leave the vassal never subscribed
/// (docs/UWSGI.md §9.6), which the repair path catches only when the tool
/// has not announced the node itself.
fn early_announce(
    cfg: &Config,
    parsed: &[(String, Result<VassalConfig, String>)],
    server_known: bool,
) -> std::collections::BTreeSet<String> {
    if !server_known || cfg.settings.probe_path.is_some() || cfg.early_announce == Some(false) {
        return Default::default();
    }
    parsed
        .iter()
        .filter(|(_, p)| {
            cfg.early_announce == Some(true)
                || p.as_ref().is_ok_and(VassalConfig::announces_on_its_own)
        })
        .map(|(n, _)| n.clone())
        .collect()
}

/// Without `--node-name`, each vassal's node is the exact address its own
/// config subscribes with (`subscribe2 addr=` or its first socket); the
/// uwsgi_reload.py stem rule serves configs that name none.
pub fn node_match(
    given: &NodeMatch,
    parsed: &[(String, Result<VassalConfig, String>)],
) -> NodeMatch {
    if *given != NodeMatch::Stem {
        return given.clone();
    }
    let names: std::collections::BTreeMap<String, Vec<String>> = parsed
        .iter()
        .filter_map(|(n, p)| {
            let names = p.as_ref().ok()?.node_names();
            (!names.is_empty()).then(|| (n.clone(), names))
        })
        .collect();
    if names.is_empty() {
        NodeMatch::Stem
    } else {
        NodeMatch::Names(names)
    }
}

/// Each config, parsed where it can be (a config it cannot read, e.g.
/// gone or unreadable, is simply not used for mapping, drain or repair).
/// One that is not safe to read (not a regular file, over the size cap,
/// `%` expansions over their budget: docs/SECURITY.md) is a precondition
/// error: the rollout, `--dry-run` and `status` stop before anything is
/// touched, rather than go on without what that config says.
pub fn parse_configs(
    dir: &EmperorDir,
    configs: &[crate::engine::ConfigFile],
) -> Result<Vec<Parsed>, Error> {
    use super::safe_read::ReadError;
    let mut out = Vec::with_capacity(configs.len());
    for c in configs {
        let parsed = match super::configs::load_vassal_config(&dir.path.join(&c.name)) {
            Ok(p) => Ok(p),
            Err(ReadError::Refused(why)) => {
                return Err(Error::Precondition(format!("{why}; nothing was touched")))
            }
            Err(ReadError::Failed(why)) => Err(why),
        };
        let max = VassalConfig::MAX_SUBSCRIBE_FREQ_S;
        if let Some(f) = parsed.as_ref().ok().and_then(VassalConfig::subscribe_freq) {
            if f > max {
                return Err(Error::Precondition(format!(
                    "{}: refused: subscribe-freq = {f} is over {max} s, the most this tool accepts; nothing was touched",
                    dir.path.join(&c.name).display()
                )));
            }
        }
        out.push((c.name.clone(), parsed));
    }
    if let Some((node, a, b)) = claimed_twice(&out) {
        return Err(Error::Precondition(format!(
            "{a} and {b} both claim the fastrouter node {node}: the drain of one would unsubscribe the other's node; expected one config per node address; nothing was touched"
        )));
    }
    Ok(out)
}

/// Two configs whose subscriptions name the same node (address): nodes are
/// matched by address, so one tenant's `subscribe2 addr=` naming another's
/// socket would make the tool drain the victim (docs/SECURITY.md, nodes).
/// The first such node and the two configs.
pub fn claimed_twice(parsed: &[Parsed]) -> Option<(String, String, String)> {
    let mut owner: std::collections::BTreeMap<String, &str> = Default::default();
    for (name, p) in parsed {
        let Ok(c) = p else { continue };
        for node in c.node_names() {
            match owner.get(node.as_str()) {
                Some(first) if *first != name => {
                    return Some((node, first.to_string(), name.clone()))
                }
                _ => {
                    owner.insert(node, name);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(servers: &[&str], sign_check: bool) -> Option<FastrouterOptions> {
        Some(FastrouterOptions {
            servers: servers.iter().map(|s| s.to_string()).collect(),
            sign_check,
            known: true,
            ..FastrouterOptions::default()
        })
    }

    fn named(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Datagrams go only to the servers the routers subscribe on; a
    /// config's `/dev/log` or remote address is dropped with a note naming
    /// it; both routers of an HA pair count.
    #[test]
    fn only_servers_a_router_names_are_kept() {
        let configs = named(&["/dev/log", "/r/a.sock", "/r/b.sock", "10.0.0.9:7000"]);
        let routers = [router(&["/r/a.sock"], false), router(&["/r/b.sock"], false)];
        let (kept, notes) = servers_the_routers_name(configs, &routers);
        assert_eq!(kept, ["/r/a.sock", "/r/b.sock"]);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("/dev/log, 10.0.0.9:7000"), "{notes:?}");
    }

    /// Where a router's options cannot be read, every server is kept (as
    /// before) and a note says so; a router checking signatures turns the
    /// tool's packets off.
    #[test]
    fn unknown_routers_keep_every_server_and_sign_check_turns_them_off() {
        let configs = named(&["/r/a.sock", "/dev/log"]);
        let (kept, notes) = servers_the_routers_name(configs.clone(), &[None]);
        assert_eq!(kept, configs);
        assert!(notes[0].contains("cannot be read"), "{notes:?}");
        let (kept, notes) = servers_the_routers_name(configs, &[router(&["/r/a.sock"], true)]);
        assert!(kept.is_empty());
        assert!(notes[0].contains("subscriptions-sign-check"), "{notes:?}");
    }

    /// A vassal whose master got no option from the Emperor (this test's
    /// own process stands for it) has a known period, unless its config
    /// has a logic block: read as if unconditional, an `if-env` may set a
    /// `subscribe-freq` (here through an include) that uWSGI does not.
    #[test]
    fn a_logic_block_makes_the_period_uncertain() {
        let pid = i64::from(std::process::id());
        let emp = crate::stats::EmperorSnapshot {
            vassals: vec![crate::stats::VassalStats {
                id: "a.ini".into(),
                pid,
                ..Default::default()
            }],
            ..Default::default()
        };
        let plain = VassalConfig::parse("[uwsgi]\nsubscribe-freq = 2\n", "a.ini", "/r/");
        let block = VassalConfig::parse(
            "[uwsgi]\nif-env = FAST\nsubscribe-freq = 2\nendif =\n",
            "a.ini",
            "/r/",
        );
        let mut parsed = vec![("a.ini".to_string(), Ok(plain))];
        assert!(learn_from_emperor(&mut parsed, Some(&emp)).is_empty());
        let mut parsed = vec![("a.ini".to_string(), Ok(block))];
        assert!(learn_from_emperor(&mut parsed, Some(&emp)).contains("a.ini"));
    }
}
