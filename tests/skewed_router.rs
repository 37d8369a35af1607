//! A fastrouter on another host, read over TCP, whose clock is far from
//! ours: no judgement may depend on two hosts' clocks agreeing.
//! The real binary runs a whole rollout against a small fake world: an
//! Emperor (unix stats socket) that notices each touch by the config's
//! mtime, reloads the vassal and shows it accepting 0.6 s later, and a
//! fastrouter (TCP, 127.0.0.1) whose `last_check`s are on its own clock,
//! 30 s behind or 40 s ahead of ours, where each accepting vassal
//! announces at every read and a reloading one has no node
//! (`unsubscribe-on-graceful-reload`).
//!
//! On our clock every node of the router behind is 30 s old, beyond the
//! 17 s tolerance the tool assumes: a tool that compares the two clocks
//! sees nothing live and never starts. Ahead, a dead vassal's node,
//! 20 s old on the router's clock, looks announced in our future: a tool
//! that judged it before measuring the router's clock would count it live
//! and touch a serving vassal, leaving fewer than K. The tool learns the
//! router's clock from its announces (`src/engine/clocks.rs`) and touches
//! nothing over TCP before it has (`Settings::router_clock_unmeasured`),
//! so the rollout completes, reloads each vassal once, and the fake world
//! itself never sees more than N - K vassals out of rotation at once.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/fakes.rs"]
mod fakes;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fakes::{run, Answer, FakeSocket, World};
use serde_json::{json, Value};

const ACCEPT_AFTER: Duration = Duration::from_millis(600);

/// One vassal as the fake Emperor and router know it.
#[derive(Clone, Debug)]
struct Vassal {
    name: String,
    pid: i64,
    last_mod: i64,
    last_run: i64,
    respawns: i64,
    /// Reloading until this instant; accepting after it.
    reloading_until: Option<Instant>,
    last_accepting: i64,
    /// Dead in the router until its reload: its node frozen this many
    /// seconds in the past (router clock), never refreshed.
    dead_for_s: Option<i64>,
    /// Dead in the router until its reload, with no node at all.
    nodeless: bool,
}

/// Which vassals are down in the router before the rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Down {
    None,
    /// The last one: its node 20 s old on the router's clock (so that a
    /// tool which counts it live touches a serving one first).
    LastStale,
    /// Every one, with no node: nothing announces until a reload, so the
    /// router's clock cannot be measured before one.
    AllNodeless,
}

struct Fake {
    dir: std::path::PathBuf,
    vassals: Vec<Vassal>,
    /// The router's clock minus ours, in seconds.
    router_skew_s: i64,
    /// The most vassals out of rotation at once, as this world saw it.
    max_out: usize,
    /// Reloads this world performed, per vassal.
    reloads: Vec<usize>,
}

impl Fake {
    /// Notices touches (a config's mtime past its `last_mod`) and finished
    /// reloads; called on every read of either socket.
    fn advance(&mut self) {
        let now = Instant::now();
        let wall = fakes::wall_now();
        for (i, v) in self.vassals.iter_mut().enumerate() {
            let m = std::fs::metadata(self.dir.join(&v.name)).expect("config");
            let mtime = m
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            if mtime > v.last_mod {
                v.dead_for_s = None;
                v.nodeless = false;
                v.last_mod = mtime;
                v.last_run = wall;
                v.respawns += 1;
                v.reloading_until = Some(now + ACCEPT_AFTER);
                self.reloads[i] += 1;
            }
            if v.reloading_until.is_some_and(|t| now >= t) {
                v.reloading_until = None;
                v.last_accepting = wall;
            }
        }
        let out = self
            .vassals
            .iter()
            .filter(|v| v.reloading_until.is_some() || v.dead_for_s.is_some() || v.nodeless)
            .count();
        self.max_out = self.max_out.max(out);
    }

    fn emperor_doc(&self, canonical: &str) -> String {
        let vassals: Vec<Value> = self
            .vassals
            .iter()
            .map(|v| {
                let accepting = i64::from(v.reloading_until.is_none());
                json!({
                    "id": v.name, "pid": v.pid, "born": fakes::OLD_MTIME,
                    "last_mod": v.last_mod, "last_heartbeat": 0, "loyal": 1,
                    "ready": accepting, "accepting": accepting,
                    "last_loyal": fakes::OLD_MTIME, "last_ready": v.last_accepting,
                    "last_accepting": v.last_accepting, "first_run": fakes::OLD_MTIME,
                    "last_run": v.last_run, "cursed": 0, "zerg": 0, "on_demand": "",
                    "uid": 0, "gid": 0, "monitor": canonical, "respawns": v.respawns,
                })
            })
            .collect();
        json!({
            "version": "2.0.21-debian", "pid": 3999, "uid": 0, "gid": 0, "cwd": canonical,
            "emperor": [canonical], "emperor_tyrant": 0, "throttle_level": 0,
            "vassals": vassals, "blacklist": [],
        })
        .to_string()
    }

    /// Each accepting vassal announced just now, on the router's clock.
    fn fastrouter_doc(&self) -> String {
        let router_now = fakes::wall_now() + self.router_skew_s;
        let nodes: Vec<Value> = self
            .vassals
            .iter()
            .filter(|v| v.reloading_until.is_none() && !v.nodeless)
            .map(|v| {
                let stem = v.name.trim_end_matches(".ini");
                let last_check = router_now - v.dead_for_s.unwrap_or(0);
                json!({
                    "name": format!("/run/fake/{stem}.sock"), "modifier1": 0, "modifier2": 0,
                    "last_check": last_check, "pid": 0, "uid": 0, "gid": 0, "requests": 0,
                    "last_requests": 0, "tx": 0, "rx": 0, "cores": 1, "load": 0,
                    "weight": 1, "wrr": 0, "ref": 0, "failcnt": 0, "death_mark": 0,
                })
            })
            .collect();
        json!({
            "version": "2.0.21-debian", "pid": 5999, "uid": 0, "gid": 0, "cwd": "/",
            "active_sessions": 0, "fastrouter": ["/run/fake/fr.sock"],
            "subscriptions": [{"key": fakes::KEY, "hash": 1, "hits": 0, "sni_enabled": 0,
                               "nodes": nodes}],
            "cheap": 0,
        })
        .to_string()
    }
}

/// A TCP stats server on 127.0.0.1: one document per connection, written
/// then closed, as uWSGI does. Stops on drop.
struct TcpStats {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpStats {
    fn serve(doc: impl Fn() -> String + Send + 'static) -> TcpStats {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(mut c) = conn {
                    let _ = c.write_all(doc().as_bytes());
                }
            }
        });
        TcpStats {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TcpStats {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A rollout of `n` vassals with K = `k` against a router `skew_s` off our
/// clock, with `down` of them down in the router.
fn rollout_against(skew_s: i64, n: usize, k: usize, down: Down) {
    rollout_with(skew_s, n, k, down, &[], n - k);
}

/// [`rollout_against`] with `extra` options, and at most `most_out`
/// vassals out of rotation at once.
/// The fake world of `n` vassals behind a router `skew_s` off our clock,
/// `down` of them down; the sockets serve until the returned guards drop.
fn fake_world(
    skew_s: i64,
    n: usize,
    down: Down,
) -> (World, Arc<Mutex<Fake>>, FakeSocket, TcpStats) {
    let w = World::new(&format!("skew{}", skew_s.unsigned_abs()), n);
    // An announce window of 5 s (subscribe-freq 2 + 3): the dead vassal is
    // proven silent, and reloaded without the budget, within the test.
    for name in &w.names {
        let p = w.dir.join(name);
        let text = std::fs::read_to_string(&p).unwrap() + "subscribe-freq = 2\n";
        std::fs::write(&p, text).unwrap();
        fakes::set_mtime(&p, fakes::OLD_MTIME);
    }
    let fake = Arc::new(Mutex::new(Fake {
        dir: w.dir.clone(),
        vassals: w
            .names
            .iter()
            .enumerate()
            .map(|(i, file)| Vassal {
                name: file.clone(),
                pid: 4000 + i as i64,
                last_mod: fakes::OLD_MTIME,
                last_run: fakes::OLD_MTIME,
                respawns: 0,
                reloading_until: None,
                last_accepting: fakes::OLD_MTIME,
                dead_for_s: (down == Down::LastStale && i == n - 1).then_some(20),
                nodeless: down == Down::AllNodeless,
            })
            .collect(),
        router_skew_s: skew_s,
        max_out: 0,
        reloads: vec![0; n],
    }));
    let canonical = w.canonical.clone();
    let f = fake.clone();
    let emp = FakeSocket::scripted(&w.emperor_sock, move |_| {
        let mut f = f.lock().unwrap();
        f.advance();
        Answer::Bytes(f.emperor_doc(&canonical).into_bytes())
    });
    let f = fake.clone();
    let router = TcpStats::serve(move || {
        let mut f = f.lock().unwrap();
        f.advance();
        f.fastrouter_doc()
    });
    (w, fake, emp, router)
}

/// `--emperor-path`, the fake router over TCP, the fake Emperor's socket.
fn sockets(w: &World, router: &TcpStats) -> Vec<String> {
    vec![
        "--emperor-path".into(),
        w.dir_str().into(),
        "--fastrouter-stats-socket".into(),
        format!("127.0.0.1:{}", router.port),
        "--emperor-stats-socket".into(),
        w.emperor_sock.to_str().unwrap().into(),
    ]
}

fn rollout_with(skew_s: i64, n: usize, k: usize, down: Down, extra: &[&str], most_out: usize) {
    let (w, fake, _emp, router) = fake_world(skew_s, n, down);
    let mut args = sockets(&w, &router);
    args.extend([
        "--minimum-active-vassals".into(),
        k.to_string(),
        // A remote router's own tolerance cannot be read from its pid: the
        // operator names it (without it, an old node is never proof of
        // silence, and the dead vassal would be waited for).
        "--subscription-tolerance".into(),
        "17".into(),
        "--json".into(),
        "--timeout".into(),
        "20".into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let t = Instant::now();
    let r = run(&args, Duration::from_secs(60));
    let f = fake.lock().unwrap();
    let what = format!(
        "router clock {skew_s:+} s; took {:?}; reloads {:?}; most out at once {}\n{}",
        t.elapsed(),
        f.reloads,
        f.max_out,
        r.describe()
    );
    assert_eq!(r.code, Some(0), "{what}");
    assert_eq!(f.reloads, vec![1; n], "each vassal reloaded once: {what}");
    if down != Down::AllNodeless {
        assert!(
            f.max_out <= most_out,
            "more than {most_out} out at once: {what}"
        );
    }
    let summary: Value = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary: {what}"));
    assert_eq!(summary["status"], "completed", "{what}");
    if down != Down::AllNodeless {
        assert!(
            summary["lowest_live"][fakes::KEY].as_u64().unwrap_or(0) >= k as u64,
            "{what}"
        );
    }
}

#[test]
fn a_router_30_s_behind_over_tcp_is_rolled_out_within_k() {
    rollout_against(-30, 4, 2, Down::None);
}

#[test]
fn a_router_40_s_ahead_over_tcp_does_not_count_a_dead_node_live() {
    rollout_against(40, 3, 2, Down::LastStale);
}

/// Every vassal down with no node: nothing announces, so the clock cannot
/// be measured before a reload; vassals proven down without a clock (no
/// node listed alive for a whole announce window) are still reloaded, and
/// the run ends with all of them back.
#[test]
fn a_fleet_down_behind_a_tcp_router_is_still_reloaded() {
    rollout_against(-30, 3, 1, Down::AllNodeless);
}

/// `--max-unavailable 1` behind a router 30 s off: at the start every node
/// looks 30 s old, 0 live, and K from `--max-unavailable` would stay at
/// `--minimum-active-vassals` (1), letting 3 of 4 out at once. Once the
/// clock is measured, live and K are taken again (K = 3): one at a time.
#[test]
fn max_unavailable_is_counted_once_the_clock_is_measured() {
    rollout_with(-30, 4, 1, Down::None, &["--max-unavailable", "1"], 1);
}

/// `status` takes one look: it cannot measure a remote router's clock, and
/// says so rather than showing its ages as if they were this host's.
#[test]
fn status_says_it_cannot_measure_a_tcp_routers_clock() {
    let (w, _fake, _emp, router) = fake_world(-30, 2, Down::None);
    let mut args = vec!["status".to_string()];
    args.extend(sockets(&w, &router));
    let r = run(&args, Duration::from_secs(20));
    assert!(
        r.stdout.contains("one look cannot measure its clock")
            || r.stderr.contains("one look cannot measure its clock"),
        "{}",
        r.describe()
    );
}
