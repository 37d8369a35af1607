//! Properties shared by the fuzz targets (`fuzz/fuzz_targets/*.rs` include
//! this file with `#[path]`) and `tests/fuzz_corpus.rs`, which runs them over
//! every checked-in corpus file under stable `cargo test`.
//!
//! Each function takes arbitrary bytes and panics when a property fails.
//! - [`parse_stats`]: both stats parsers on arbitrary bytes.
//! - [`engine`]: the first byte picks a mode. Raw mode decodes a sequence
//!   of inputs and time jumps with arbitrary snapshots (only safety
//!   properties hold there); sim mode lets the bytes pick every move of
//!   the simulated world of tests/support/sim (any number of faults), so every
//!   property of tests/explore.rs is checked on long, deep runs.

#![allow(dead_code)]

#[path = "sim/mod.rs"]
pub mod sim;

use std::collections::{BTreeMap, BTreeSet};

use serde::de::IgnoredAny;
use serde_json::{json, Value};
use uwsgi_reload::engine::{
    Action, ConfigEvent, ConfigFile, Engine, Input, NodeMatch, Now, Settings,
};
use uwsgi_reload::stats::trailing_commas::strip_trailing_commas;
use uwsgi_reload::stats::{
    BlacklistEntry, EmperorSnapshot, FastrouterSnapshot, Node, StatsSource, Subscription,
    VassalStats,
};

// ----- parse_stats -------------------------------------------------------------

pub fn emperor_json(s: &EmperorSnapshot) -> Value {
    json!({
        "version": s.version,
        "pid": s.pid,
        "emperor": s.emperor,
        "vassals": s.vassals.iter().map(|v| json!({
            "id": v.id, "pid": v.pid, "born": v.born, "last_mod": v.last_mod,
            "last_heartbeat": 0, "loyal": v.loyal, "ready": v.ready,
            "accepting": v.accepting, "last_loyal": 0, "last_ready": 0,
            "last_accepting": v.last_accepting, "first_run": v.first_run,
            "last_run": v.last_run, "cursed": v.cursed, "zerg": 0,
            "on_demand": "", "uid": 0, "gid": 0, "monitor": "/etc/uwsgi/vassals",
            "respawns": v.respawns,
        })).collect::<Vec<_>>(),
        "blacklist": s.blacklist.iter().map(|b| json!({
            "id": b.id, "throttle_level": b.throttle_level, "attempt": b.attempt,
            "first_attempt": 0, "last_attempt": 0,
        })).collect::<Vec<_>>(),
    })
}

pub fn fastrouter_json(s: &FastrouterSnapshot) -> Value {
    json!({
        "version": s.version,
        "pid": s.pid,
        "fastrouter": ["/run/uwsgi/fr.sock", "/run/uwsgi/sub.sock"],
        "subscriptions": s.subscriptions.iter().map(|sub| json!({
            "key": sub.key, "hash": 0, "hits": 0,
            "nodes": sub.nodes.iter().map(|n| {
                let mut node = json!({
                    "name": n.name, "modifier1": n.modifier1, "modifier2": n.modifier2,
                    "last_check": n.last_check, "pid": n.pid, "uid": 0, "gid": 0,
                    "requests": n.requests, "last_requests": 0, "tx": 0, "rx": 0,
                    "load": 0, "weight": 1, "wrr": 0, "ref": n.refs,
                    "failcnt": 0, "death_mark": n.death_mark,
                });
                // Absent in an old format: the parsed node says None.
                if let Some(c) = n.cores {
                    node["cores"] = json!(c);
                }
                node
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "cheap": 0,
    })
}

/// Writes JSON the way uWSGI's buggy fastrouter does: a comma (and a
/// newline and tab) before every closing bracket of a non-empty array.
pub fn with_trailing_commas(v: &Value) -> String {
    match v {
        Value::Array(a) if !a.is_empty() => {
            let items: Vec<String> = a.iter().map(with_trailing_commas).collect();
            format!("[{},\n\t]", items.join(","))
        }
        Value::Object(o) => {
            let items: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), with_trailing_commas(v)))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Neither parser panics; what parses round-trips through JSON, with an
/// HTTP head and with whitespace around it; the trailing-comma fix only
/// ever removes commas and is idempotent.
pub fn parse_stats(data: &[u8]) {
    let emp = EmperorSnapshot::parse(data);
    let fr = FastrouterSnapshot::parse(data);

    // The fix: a subsequence of the input without some commas, stable.
    let fixed = strip_trailing_commas(data);
    assert!(fixed.len() <= data.len());
    let mut it = data.iter().copied();
    for c in &fixed {
        loop {
            let d = it.next().expect("the fix added a byte");
            if d == *c {
                break;
            }
            assert_eq!(d, b',', "the fix dropped a byte that is not a comma");
        }
    }
    assert!(
        it.all(|d| d == b','),
        "the fix dropped a byte that is not a comma"
    );
    // Stable, unless removing a comma made another one trailing (`,,]`,
    // which is a different defect and must still fail to parse).
    let comma_comma = data
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == b',')
        .any(|(i, _)| data[i + 1..].iter().find(|c| !c.is_ascii_whitespace()) == Some(&b','));
    if !comma_comma {
        assert!(
            strip_trailing_commas(&fixed) == fixed,
            "the fix is not idempotent"
        );
    }

    if let Ok(s) = &emp {
        check_emperor(s);
        let text = emperor_json(s).to_string();
        assert_eq!(
            EmperorSnapshot::parse(text.as_bytes()).as_ref(),
            Ok(s),
            "round trip: {text}"
        );
        let mut http = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n".to_vec();
        http.extend_from_slice(data);
        if !data.starts_with(b"HTTP/") {
            assert_eq!(
                EmperorSnapshot::parse(&http).as_ref(),
                Ok(s),
                "behind an HTTP head"
            );
        }
        let mut padded = b" \n".to_vec();
        padded.extend_from_slice(data);
        padded.extend_from_slice(b"\n ");
        if !data.starts_with(b"HTTP/") {
            assert_eq!(
                EmperorSnapshot::parse(&padded).as_ref(),
                Ok(s),
                "with whitespace around"
            );
        }
    }
    if let Ok(s) = &fr {
        check_fastrouter(s);
        let v = fastrouter_json(s);
        let text = v.to_string();
        assert_eq!(
            FastrouterSnapshot::parse(text.as_bytes()).as_ref(),
            Ok(s),
            "round trip: {text}"
        );
        let buggy = with_trailing_commas(&v);
        assert_eq!(
            FastrouterSnapshot::parse(buggy.as_bytes()).as_ref(),
            Ok(s),
            "trailing commas: {buggy}"
        );
        let mut http = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        http.extend_from_slice(data);
        if !data.starts_with(b"HTTP/") {
            assert_eq!(
                FastrouterSnapshot::parse(&http).as_ref(),
                Ok(s),
                "behind an HTTP head"
            );
        }
    }
    // Strict: what the Emperor parser accepts is JSON (serde skips the
    // strings of fields it ignores unchecked, so invalid UTF-8 or a lone
    // surrogate there, as in a `cwd` of raw path bytes, is fine).
    let syntax_ok = |b: &[u8]| serde_json::from_slice::<IgnoredAny>(b).is_ok();
    if emp.is_ok() && !data.starts_with(b"HTTP/") {
        assert!(syntax_ok(data), "the Emperor parser accepted invalid JSON");
    }
    // Lenient only by trailing commas: an accepted fastrouter document is
    // JSON once they are removed.
    if fr.is_ok() && !data.starts_with(b"HTTP/") {
        assert!(
            syntax_ok(data) || syntax_ok(&fixed),
            "the fastrouter parser accepted JSON that is invalid beyond trailing commas"
        );
    }
}

fn check_emperor(s: &EmperorSnapshot) {
    for v in &s.vassals {
        let found = s.vassal(&v.id).expect("vassal() finds every listed id");
        assert_eq!(found.id, v.id);
        assert!(std::ptr::eq(
            found,
            s.vassals.iter().find(|x| x.id == v.id).unwrap()
        ));
    }
    for b in &s.blacklist {
        assert_eq!(s.blacklisted(&b.id).map(|x| &x.id), Some(&b.id));
    }
}

fn check_fastrouter(s: &FastrouterSnapshot) {
    let total: usize = s.subscriptions.iter().map(|x| x.nodes.len()).sum();
    assert_eq!(s.nodes().count(), total);
    let flat: Vec<(&str, &str)> = s
        .subscriptions
        .iter()
        .flat_map(|x| {
            x.nodes
                .iter()
                .map(move |n| (x.key.as_str(), n.name.as_str()))
        })
        .collect();
    let via: Vec<(&str, &str)> = s.nodes().map(|(k, n)| (k, n.name.as_str())).collect();
    assert_eq!(flat, via, "nodes() is not in document order");
}

// ----- engine: raw mode ----------------------------------------------------------

/// Reads choices from the fuzzer's bytes; zeros once they run out.
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, pos: 0 }
    }
    pub fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        if n <= 256 {
            self.u8() as usize % n
        } else {
            (self.u8() as usize | (self.u8() as usize) << 8) % n
        }
    }
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    /// A small signed offset, now and then an extreme value.
    pub fn offset(&mut self) -> i64 {
        match self.u8() {
            255 => i64::MAX,
            254 => i64::MIN,
            253 => -(1 << 40),
            252 => 1 << 40,
            b => b as i64 % 41 - 20,
        }
    }
}

const MONO0: u64 = 50_000_000;
const WALL0: i64 = 1_795_637_000;
const KEYS: [&str; 3] = ["app.example.com", "api.example.com", ""];

fn vname(i: usize) -> String {
    format!("app_{:02}.ini", i + 1)
}

fn node_name(b: &mut Bytes, n: usize) -> String {
    let i = b.below(n + 1);
    match b.below(5) {
        0 | 1 => format!("/run/uwsgi/app_{:02}.sock", i + 1),
        2 => format!("/elsewhere/app_{:02}.socket", i + 1),
        3 => "10.0.0.9:3031".to_string(),
        _ => format!("app_{:02}", i + 1),
    }
}

fn raw_emperor(b: &mut Bytes, n: usize, wall: i64) -> EmperorSnapshot {
    let mut vassals = Vec::new();
    let mut blacklist = Vec::new();
    for i in 0..n + 1 {
        let bits = b.u8();
        if (i < n && bits & 3 != 0) || (i == n && bits & 3 == 3) {
            vassals.push(VassalStats {
                id: vname(i),
                pid: [1000 + i as i64, 2000 + i as i64, 0, -1][b.below(4)],
                last_mod: [WALL0 - 3600, wall, WALL0.saturating_add(b.offset())][b.below(3)],
                ready: (bits >> 2 & 1) as i64,
                accepting: (bits >> 3 & 1) as i64,
                last_accepting: wall.saturating_add(b.offset()),
                respawns: b.below(4) as i64,
                cursed: if bits >> 4 & 1 == 1 { wall } else { 0 },
                loyal: 1,
                born: 0,
                first_run: 0,
                last_run: wall.saturating_add(b.offset()),
            });
        }
        if bits >> 5 & 1 == 1 {
            blacklist.push(BlacklistEntry {
                id: vname(i),
                throttle_level: 1001,
                attempt: b.below(3) as i64,
            });
        }
    }
    EmperorSnapshot {
        pid: 1,
        version: String::new(),
        emperor: if b.bool() {
            vec!["/etc/uwsgi/vassals".into()]
        } else {
            vec![]
        },
        vassals,
        blacklist,
    }
}

fn raw_fastrouter(b: &mut Bytes, n: usize, wall: i64) -> FastrouterSnapshot {
    let mut subscriptions = Vec::new();
    for key in KEYS.iter().take(1 + b.below(3)) {
        let nodes = (0..b.below(n + 3))
            .map(|_| Node {
                name: node_name(b, n),
                last_check: wall.saturating_add(b.offset()),
                death_mark: b.below(2) as i64,
                refs: b.below(3) as i64,
                pid: [0, 1000 + b.below(n) as i64][b.below(2)],
                ..Node::default()
            })
            .collect();
        subscriptions.push(Subscription {
            key: key.to_string(),
            nodes,
        });
    }
    FastrouterSnapshot {
        router_pids: Vec::new(),
        pid: 2,
        version: String::new(),
        subscriptions,
    }
}

fn raw_settings(b: &mut Bytes, n: usize) -> Settings {
    Settings {
        min_live: b.below(n),
        timeout_ms: [2_000, 8_000, 60_000][b.below(3)],
        check_interval_ms: [0, 100, 1_000][b.below(3)],
        max_failures: [1, 2, usize::MAX][b.below(3)],
        max_parallel: [1, 2, usize::MAX][b.below(3)],
        drain_timeout_ms: [None, Some(0), Some(2_000)][b.below(3)],
        repair: b.bool(),
        allow_downtime: b.bool(),
        node_match: if b.bool() {
            NodeMatch::Stem
        } else {
            NodeMatch::Template("/run/uwsgi/{stem}.sock".into())
        },
        node_tolerance_s: 17,
        default_subscribe_freq_s: [1, 10][b.below(2)],
        node_tolerance_known: b.bool(),
        can_unsubscribe: b.bool(),
        notice_window_ms: [1_000, 3_000][b.below(2)],
        emperor_dir: b.bool().then(|| "/etc/uwsgi/vassals/".to_string()),
        stats_outage_ms: [0, 3_000, 30_000][b.below(3)],
        ..Settings::default()
    }
}

/// What the raw driver has outstanding, to answer only what was asked (the
/// driver's contract) and to check the engine's.
#[derive(Default)]
struct Driver {
    reads: [bool; 2],
    touches: BTreeMap<String, usize>,
    touch_pending: BTreeSet<String>,
    repairs: BTreeSet<String>,
    finished: bool,
    rescans: usize,
    status: String,
}

impl Driver {
    fn take(&mut self, e: &mut Engine) {
        while let Some(r) = e.poll_event() {
            assert!(!self.finished, "a report after Finish: {r:?}");
        }
        while let Some(a) = e.poll_action() {
            assert!(!self.finished, "an action after Finish: {a:?}");
            match a {
                Action::ReadStats(src) => {
                    let i = (src == StatsSource::Fastrouter) as usize;
                    assert!(
                        !self.reads[i],
                        "a second ReadStats({src}) while one is in flight"
                    );
                    self.reads[i] = true;
                }
                Action::Touch { vassal, .. } => {
                    let c = self.touches.entry(vassal.clone()).or_default();
                    *c += 1;
                    assert!(*c == 1, "{vassal} was sent a second Action::Touch");
                    self.touch_pending.insert(vassal);
                }
                Action::Repair { vassal, .. } => {
                    self.repairs.insert(vassal);
                }
                Action::RescanConfigs => self.rescans += 1,
                Action::Finish(o) => {
                    self.finished = true;
                    self.status = format!("{:?} {}", o.status, o.summary);
                    assert!(
                        e.poll_timeout().is_none(),
                        "poll_timeout() is Some after Finish"
                    );
                    let mut names: Vec<&String> = o
                        .reloaded
                        .iter()
                        .chain(o.failed.iter().map(|f| &f.0))
                        .chain(o.untouched.iter().map(|u| &u.0))
                        .collect();
                    let len = names.len();
                    names.sort();
                    names.dedup();
                    assert_eq!(names.len(), len, "a vassal listed twice in {o:?}");
                    for (v, why) in &o.untouched {
                        assert!(!why.is_empty(), "{v} untouched without a reason");
                        assert!(
                            !self.touches.contains_key(v),
                            "{v} reported untouched, but it was touched"
                        );
                    }
                }
                Action::Unsubscribe { .. } | Action::Subscribe { .. } => {}
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }
}

fn raw_engine(b: &mut Bytes) -> String {
    let n = 1 + b.below(4);
    let settings = raw_settings(b, n);
    let configs: Vec<ConfigFile> = (0..n)
        .map(|i| ConfigFile {
            name: vname(i),
            mtime: WALL0 - 3600 + b.offset().clamp(-100, 100),
        })
        .collect();
    let mut now = Now {
        mono_ms: MONO0,
        wall_s: WALL0,
    };
    let mut e = Engine::new(settings, configs, now);
    let mut d = Driver::default();
    d.take(&mut e);
    let mut steps = 0;
    while !b.done() && steps < 10_000 {
        steps += 1;
        match b.below(11) {
            0 if d.reads[0] => {
                d.reads[0] = false;
                let s = raw_emperor(b, n, now.wall_s);
                e.handle(now, Input::Emperor(s));
            }
            1 if d.reads[1] => {
                d.reads[1] = false;
                let s = raw_fastrouter(b, n, now.wall_s);
                e.handle(now, Input::Fastrouter(s));
            }
            2 => {
                let i = b.below(2);
                // Rarely: a failed read before the first answers ends the
                // run at once (a precondition).
                if d.reads[i] && (b.below(4) == 0 || steps > 8) {
                    d.reads[i] = false;
                    let source = if i == 0 {
                        StatsSource::Emperor
                    } else {
                        StatsSource::Fastrouter
                    };
                    e.handle(
                        now,
                        Input::ReadFailed {
                            source,
                            error: "read: timed out".into(),
                        },
                    );
                }
            }
            3 | 4 => {
                // Jump to the engine's timeout (quinn-proto style), maybe
                // a little past it; the wall clock may step either way.
                if let Some(t) = e.poll_timeout() {
                    let to = t.max(now.mono_ms) + [0, 0, 1, 999][b.below(4)] as u64;
                    let dw = ((to - now.mono_ms) / 1000) as i64;
                    now.mono_ms = to;
                    now.wall_s += dw + [0, 0, 0, 1, -1, -3600][b.below(6)];
                    e.handle_timeout(now);
                    d.take(&mut e);
                    // A zero-length wait entered during that call (e.g. a
                    // repair wait of 0) may make the timer due at once;
                    // due again right after that, the driver would spin.
                    if !d.finished && e.poll_timeout().is_some_and(|t| t <= now.mono_ms) {
                        e.handle_timeout(now);
                        d.take(&mut e);
                    }
                    if !d.finished {
                        let t2 = e
                            .poll_timeout()
                            .expect("not finished, yet no timeout: deadlock");
                        assert!(
                            t2 > now.mono_ms,
                            "handle_timeout({}) left poll_timeout at {t2}: the driver would spin\n{e:#?}",
                            now.mono_ms
                        );
                    }
                }
            }
            5 => {
                let name = if b.below(4) == 0 {
                    "other.ini".to_string()
                } else {
                    vname(b.below(n))
                };
                let mtime = [
                    None,
                    Some(WALL0 - 3600),
                    Some(now.wall_s),
                    Some(now.wall_s.saturating_add(b.offset())),
                ][b.below(4)];
                let ev = match b.below(6) {
                    0 | 1 => ConfigEvent::Changed { name, mtime },
                    2 => ConfigEvent::Created { name, mtime },
                    3 => ConfigEvent::Removed { name },
                    4 => ConfigEvent::Overflow,
                    _ => {
                        let mut files = Vec::new();
                        for i in 0..n {
                            if b.below(4) != 0 {
                                files.push(ConfigFile {
                                    name: vname(i),
                                    mtime: now.wall_s.saturating_add(b.offset()),
                                });
                            }
                        }
                        ConfigEvent::Rescanned(files)
                    }
                };
                e.handle(now, Input::Config(ev));
            }
            6 => {
                if let Some(v) = d.touch_pending.iter().nth(b.below(4)).cloned() {
                    d.touch_pending.remove(&v);
                    let error = b.bool().then(|| "EPERM".to_string());
                    e.handle(now, Input::Touched { vassal: v, error });
                }
            }
            7 => {
                if let Some(v) = d.repairs.iter().nth(b.below(4)).cloned() {
                    d.repairs.remove(&v);
                    let result = if b.bool() {
                        Ok("/run/uwsgi/app.fifo".into())
                    } else {
                        Err("no fifo".into())
                    };
                    e.handle(now, Input::Repaired { vassal: v, result });
                }
            }
            8 if b.below(8) == 0 => e.handle(now, Input::Stop),
            9 => {
                // A spurious wake-up, or a small step of the clocks.
                now.mono_ms += [0, 1, 250][b.below(3)];
                e.handle_timeout(now);
            }
            _ => {}
        }
        d.take(&mut e);
        if let Some(msg) = impossible(&e) {
            panic!("raw n{n}, step {steps}: {msg}");
        }
        if d.finished {
            // Nothing after Finish, whatever comes.
            now.mono_ms += 100_000;
            e.handle_timeout(now);
            e.handle(now, Input::Stop);
            e.handle(now, Input::Config(ConfigEvent::Overflow));
            d.take(&mut e);
            return format!("raw n{n}: {} after {steps} steps", d.status);
        }
    }
    format!("raw n{n}: unfinished after {steps} steps")
}

/// The first fact the engine met where `fsm/transitions.tsv` says it is
/// never raised (an `is_impossible` row), said with the table's why.
pub fn impossible(e: &Engine) -> Option<String> {
    let (vassal, phase, fact) = e.impossible_seen().first()?;
    Some(format!(
        "{vassal} met {fact:?} in {phase:?}, which fsm/transitions.tsv says cannot happen ({})",
        uwsgi_reload::engine::why(*phase, *fact)
    ))
}

// ----- engine: sim mode ----------------------------------------------------------

/// `setups`: also draw the setups of real operators (bit 1 of the first byte set
/// and bit 7 clear, so that the corpus written before them decodes as it
/// did).
fn sim_engine(b: &mut Bytes, setups: bool) -> String {
    use sim::{Config, FaultKind, Initial, Keys};
    let n = 1 + b.below(4);
    let keys = [Keys::One, Keys::Split, Keys::Both][b.below(3)];
    let mut cfg = Config::new(n, b.below(n), keys);
    cfg.uogr = b.below(4) != 0;
    cfg.drain = b.bool();
    cfg.busy = b.bool();
    cfg.foreign_node = b.below(4) == 0;
    cfg.keep_going = b.bool();
    cfg.announce_first = b.below(4) == 0;
    cfg.events_between_reads = b.bool();
    cfg.accept_within_ms = [1_000, 2_000, 3_000][b.below(3)];
    cfg.tick_ms = [1_000, 500][b.below(2)];
    cfg.initial = [
        Initial::AllUp,
        Initial::AllUp,
        Initial::FirstBlacklisted,
        Initial::FirstUnsubscribed,
        Initial::FirstStale,
    ][b.below(5)];
    if cfg.initial != Initial::AllUp && n == 1 {
        cfg.initial = Initial::AllUp;
    }
    cfg.probe = b.bool();
    cfg.max_parallel = [usize::MAX, usize::MAX, 1, 2][b.below(4)];
    cfg.canary = [0, 0, 1][b.below(3)];
    cfg.min_ready_ms = [0, 0, 2_000][b.below(3)];
    // Setups of real operators: slow starts, subscribe-freq and tolerance, late
    // announces, lazy-apps, two addresses, a vassal starting or
    // crash-looping before the rollout.
    if setups {
        operator_setup(b, &mut cfg);
    }
    cfg.faults = FaultKind::ALL.to_vec();
    cfg.max_faults = b.below(4) as u8;
    run_sim(b, cfg)
}

fn operator_setup(b: &mut Bytes, cfg: &mut sim::Config) {
    use sim::Initial;
    if b.below(4) == 0 {
        *cfg = cfg.clone().slow_start(15, 30);
    }
    match b.below(4) {
        1 => *cfg = cfg.clone().freq(&[10], 17),
        2 => *cfg = cfg.clone().freq(&[25], 60),
        3 => *cfg = cfg.clone().freq(&[10, 25], 60),
        _ => {}
    }
    cfg.tolerance_flag = b.bool();
    cfg.in_phase = b.bool();
    cfg.announce_late_ms = [0, 0, 3_000][b.below(3)];
    cfg.lazy_apps = b.below(4) == 0;
    cfg.two_addrs = b.below(4) == 0;
    cfg.can_unsubscribe = b.bool();
    if cfg.n > 1 {
        match b.below(6) {
            0 => cfg.initial = Initial::FirstCrashLooping,
            1 => cfg.initial = Initial::FirstStarting(11),
            _ => {}
        }
    }
}

fn run_sim(b: &mut Bytes, cfg: sim::Config) -> String {
    use sim::Sim;
    let mut s = Sim::new(&cfg);
    let mut path = Vec::new();
    for _ in 0..5_000 {
        let moves = s.moves();
        if moves.is_empty() {
            assert!(
                s.finished(),
                "nothing can happen and the engine has not finished: deadlock\n{cfg:?}\n{path:?}"
            );
            return summary(&s, &path);
        }
        let mv = moves[b.below(moves.len())].clone();
        let r = s.apply(&mv);
        path.push(mv);
        if let Err(why) = r {
            fail(&cfg, &path, &why);
        }
        if b.done() && !s.finished() {
            // Out of bytes: let the world run to the end by always taking
            // the first move, which the properties must survive too.
            let mut guard = 0;
            while !s.finished() && guard < 5_000 {
                guard += 1;
                let moves = s.moves();
                assert!(!moves.is_empty(), "deadlock\n{cfg:?}\n{path:?}");
                let mv = moves[0].clone();
                let r = s.apply(&mv);
                path.push(mv);
                if let Err(why) = r {
                    fail(&cfg, &path, &why);
                }
            }
            if !s.finished() {
                fail(
                    &cfg,
                    &path,
                    "unfinished after 5,000 moves of the first-move run-out: no Finish",
                );
            }
            return summary(&s, &path);
        }
    }
    // The move budget is spent: a run that has not finished by now is a
    // failure (a livelock, or a world the engine never ends), not a pass.
    if !s.finished() {
        fail(
            &cfg,
            &path,
            "unfinished after its budget of 5,000 moves: no Finish",
        );
    }
    summary(&s, &path)
}

/// Replays `path` with the log on and panics with it.
fn fail(cfg: &sim::Config, path: &[sim::Move], why: &str) -> ! {
    let mut replay = sim::Sim::new(cfg);
    replay.keep_log = true;
    for mv in path {
        if replay.apply(mv).is_err() {
            break;
        }
    }
    panic!("{why}\n{cfg:?}\n{}", replay.log.join("\n"));
}

fn summary(s: &sim::Sim, path: &[sim::Move]) -> String {
    let status = s.outcome.as_ref().map_or("unfinished".to_string(), |o| {
        format!("{:?} {}", o.status, o.summary)
    });
    format!(
        "sim n{} faults {}: {status} after {} moves",
        s.w.vassals.len(),
        s.w.faults_used,
        path.len()
    )
}

/// The engine under arbitrary drivers (raw) and arbitrary worlds (sim).
pub fn engine(data: &[u8]) {
    engine_summary(data);
}

/// [`engine`], saying how the run ended.
pub fn engine_summary(data: &[u8]) -> String {
    let mut b = Bytes::new(data);
    let setups = data.first().is_some_and(|f| f & 0x82 == 0x02);
    if b.bool() {
        sim_engine(&mut b, setups)
    } else {
        raw_engine(&mut b)
    }
}
