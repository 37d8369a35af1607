//! `uwsgi-reload status`: one look at every vassal and the live count per
//! key, without touching anything.

use std::io::Read;
use std::net::ToSocketAddrs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::cli::{Config, SocketSpec};
use crate::engine::nodes;
use crate::error::{exit, Error};
use crate::report::Reporter;
use crate::runtime::configs::EmperorDir;
use crate::stats::{EmperorSnapshot, FastrouterSnapshot, StatsSource};

/// One blocking read of a stats socket, bounded by `timeout`. A one-shot
/// command has nothing else to wait for, so no event loop is needed.
pub fn read_blocking(
    spec: &SocketSpec,
    source: StatsSource,
    timeout: Duration,
) -> Result<Vec<u8>, Error> {
    let fail = |e: std::io::Error| {
        Error::Precondition(format!("cannot read the {source} stats socket {spec}: {e}"))
    };
    let mut buf = Vec::new();
    match spec {
        SocketSpec::Unix(p) => {
            let s = std::os::unix::net::UnixStream::connect(p).map_err(fail)?;
            s.set_read_timeout(Some(timeout)).map_err(fail)?;
            s.take(crate::stats::MAX_STATS_BYTES as u64 + 1)
                .read_to_end(&mut buf)
                .map_err(fail)?;
        }
        SocketSpec::Tcp(a) => {
            let addr = a
                .to_socket_addrs()
                .map_err(fail)?
                .next()
                .ok_or_else(|| fail(std::io::Error::other("no address")))?;
            let s = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(fail)?;
            s.set_read_timeout(Some(timeout)).map_err(fail)?;
            s.take(crate::stats::MAX_STATS_BYTES as u64 + 1)
                .read_to_end(&mut buf)
                .map_err(fail)?;
        }
    }
    Ok(buf)
}

pub fn snapshots(cfg: &Config) -> Result<(EmperorSnapshot, FastrouterSnapshot), Error> {
    let t = Duration::from_millis(cfg.stats_timeout_ms);
    let e = read_blocking(&cfg.emperor_stats, StatsSource::Emperor, t)?;
    let emp = EmperorSnapshot::parse(&e).map_err(|e| {
        Error::Precondition(format!("emperor stats socket {}: {e}", cfg.emperor_stats))
    })?;
    let f = read_blocking(&cfg.fastrouter_stats, StatsSource::Fastrouter, t)?;
    let fr = FastrouterSnapshot::parse(&f).map_err(|e| {
        Error::Precondition(format!(
            "fastrouter stats socket {}: {e}",
            cfg.fastrouter_stats
        ))
    })?;
    Ok((emp, fr))
}

pub fn run(cfg: &Config, rep: &mut Reporter) -> Result<u8, Error> {
    let dir = EmperorDir::open(&cfg.emperor_path, &cfg.suffix, cfg.touch_target)?;
    let configs: Vec<_> = dir
        .list()?
        .into_iter()
        .filter(|c| cfg.selected(&c.name))
        .collect();
    let (emp, fr) = snapshots(cfg)?;
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let s = &cfg.settings;
    let mut rows = Vec::new();
    for c in &configs {
        let st = emp.vassal(&c.name);
        let bl = emp.blacklisted(&c.name);
        let state = match (st, bl) {
            (_, Some(_)) => "blacklisted",
            (None, None) => "absent",
            (Some(v), _) if v.cursed != 0 => "stopping",
            (Some(v), _) if v.accepting == 1 => "accepting",
            (Some(_), _) => "reloading",
        };
        let pid = st.map_or(0, |v| v.pid);
        let ns: Vec<_> = nodes::nodes_of(&s.node_match, &c.name, pid, &fr).collect();
        let live = nodes::emperor_healthy(&emp, &c.name)
            && ns
                .iter()
                .any(|(_, n)| nodes::node_fresh(n, wall, s.node_tolerance_s));
        rows.push(json!({
            "vassal": c.name,
            "pid": pid,
            "state": state,
            "respawns": st.map_or(0, |v| v.respawns),
            "live": live,
            "nodes": ns.iter().map(|(k, n)| json!({
                "key": k, "name": n.name, "age_s": wall - n.last_check,
                "death_mark": n.death_mark, "ref": n.refs,
            })).collect::<Vec<_>>(),
        }));
    }
    let ours: Vec<(&str, bool)> = configs.iter().map(|c| (c.name.as_str(), true)).collect();
    let live = nodes::live_per_key(&s.node_match, &ours, &emp, &fr, wall, s.node_tolerance_s);
    let below: Vec<&String> = live
        .iter()
        .filter(|(_, l)| **l < s.min_live)
        .map(|(k, _)| k)
        .collect();
    if cfg.output.json {
        let v = json!({"vassals": rows, "live": live, "min_live": s.min_live});
        println!("{v}");
    } else {
        rep.human_line(
            &format!(
                "{:<24} {:>7} {:<11} {:>8}  {:<5} NODES (key name age death_mark ref)",
                "VASSAL", "PID", "STATE", "RESPAWNS", "LIVE"
            ),
            false,
        );
        for r in &rows {
            let nodes: Vec<String> = r["nodes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|n| {
                            format!(
                                "{} {} {}s {} {}",
                                n["key"].as_str().unwrap_or(""),
                                n["name"].as_str().unwrap_or(""),
                                n["age_s"],
                                n["death_mark"],
                                n["ref"]
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            rep.human_line(
                &format!(
                    "{:<24} {:>7} {:<11} {:>8}  {:<5} {}",
                    r["vassal"].as_str().unwrap_or(""),
                    r["pid"].as_i64().unwrap_or(0),
                    r["state"].as_str().unwrap_or(""),
                    r["respawns"].as_i64().unwrap_or(0),
                    if r["live"].as_bool() == Some(true) {
                        "yes"
                    } else {
                        "no"
                    },
                    if nodes.is_empty() {
                        "-".to_string()
                    } else {
                        nodes.join("; ")
                    }
                ),
                false,
            );
        }
        for (k, l) in &live {
            rep.human_line(&format!("key {k}: {l} live (K={})", s.min_live), false);
        }
    }
    Ok(if below.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}
