//! Stats-parsing micro-benchmark: how much of one check interval goes to
//! parsing the two stats documents.
//!
//!     cargo run --release --example parse_bench            # 1,000 vassals
//!     cargo run --release --example parse_bench -- 5000    # any count
//!
//! Builds the Emperor and fastrouter stats JSON for N vassals exactly as
//! uWSGI 2.0.21 prints them (tab-indented, every field, in uWSGI's order:
//! docs/UWSGI.md §13.4 and §13.5, checked against a live stack), parses each many
//! times with `EmperorSnapshot::parse` / `FastrouterSnapshot::parse`, and
//! prints the time per parse against the default 100 ms check interval.
//! Also measured: the fastrouter document with uWSGI's trailing-comma bug
//! (docs/UWSGI.md §13.6), which takes the strict-then-fix path.
//!
//! Timing: each case is run in batches of about 0.2 s after a warm-up; the
//! median and the best batch are printed (per parse).

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use uwsgi_reload::stats::{EmperorSnapshot, FastrouterSnapshot};

const CHECK_INTERVAL: Duration = Duration::from_millis(100);
const DIR: &str = "/srv/uwsgi/stack";
const NOW: i64 = 1_796_011_739;

/// The Emperor document: `vassals[]` with all 19 fields per record, a few
/// vassals mid-reload (accepting 0, respawns up), and three blacklisted.
fn emperor_json(n: usize) -> String {
    let mut s = String::with_capacity(n * 520 + 1024);
    s.push_str("{\n");
    write!(
        s,
        "\t\"version\":\"2.0.21-debian\",\n\t\"pid\":23862,\n\t\"uid\":0,\n\t\"gid\":0,\n\
         \t\"cwd\":\"{DIR}/vassals\",\n\t\"emperor\":[\n\"{DIR}/vassals\"\n\t],\n\
         \t\"emperor_tyrant\":0,\n\t\"throttle_level\":0,\n\t\"vassals\":[\n"
    )
    .unwrap();
    for i in 0..n {
        let reloading = i % 50 == 7;
        let pid = 20_000 + i as i64;
        let last_mod = NOW + (i as i64 % 3);
        write!(
            s,
            "\t\t{{\n\
             \t\t\t\"id\":\"app_{i:04}.ini\",\n\
             \t\t\t\"pid\":{pid},\n\
             \t\t\t\"born\":{NOW},\n\
             \t\t\t\"last_mod\":{last_mod},\n\
             \t\t\t\"last_heartbeat\":0,\n\
             \t\t\t\"loyal\":1,\n\
             \t\t\t\"ready\":{ready},\n\
             \t\t\t\"accepting\":{acc},\n\
             \t\t\t\"last_loyal\":{ll},\n\
             \t\t\t\"last_ready\":{NOW},\n\
             \t\t\t\"last_accepting\":{la},\n\
             \t\t\t\"first_run\":{NOW},\n\
             \t\t\t\"last_run\":{last_mod},\n\
             \t\t\t\"cursed\":0,\n\
             \t\t\t\"zerg\":0,\n\
             \t\t\t\"on_demand\":\"\",\n\
             \t\t\t\"uid\":33,\n\
             \t\t\t\"gid\":33,\n\
             \t\t\t\"monitor\":\"{DIR}/vassals\",\n\
             \t\t\t\"respawns\":{resp}\n\
             \t\t}}{comma}\n",
            ready = if i % 2 == 0 { 1 } else { 0 },
            acc = if reloading { 0 } else { 1 },
            ll = NOW + 1,
            la = NOW + 2,
            resp = if reloading { 4 } else { 3 },
            comma = if i + 1 < n { "," } else { "" },
        )
        .unwrap();
    }
    s.push_str("\t],\n\t\"blacklist\":[\n");
    for b in 0..3 {
        write!(
            s,
            "\t\t{{\n\t\t\t\"id\":\"broken_{b}.ini\",\n\t\t\t\"throttle_level\":{t},\n\
             \t\t\t\"attempt\":{b},\n\t\t\t\"first_attempt\":{NOW},\n\t\t\t\"last_attempt\":{l}\n\t\t}}{c}\n",
            t = b * 1000 + 1,
            l = NOW + b,
            c = if b < 2 { "," } else { "" }
        )
        .unwrap();
    }
    s.push_str("\t]\n}");
    s
}

/// The fastrouter document: one key with N nodes (the uwsgi_reload.py
/// setup: every vassal under the same key), all 18 node fields. With
/// `trailing_comma`, the `"fastrouter"` array carries the comma uWSGI emits
/// when the instance defines another router.
fn fastrouter_json(n: usize, trailing_comma: bool) -> String {
    let mut s = String::with_capacity(n * 420 + 1024);
    write!(
        s,
        "{{\n\t\"version\":\"2.0.21-debian\",\n\t\"pid\":23865,\n\t\"uid\":0,\n\t\"gid\":0,\n\
         \t\"cwd\":\"{DIR}\",\n\t\"active_sessions\":10,\n\t\"fastrouter\":[\n\
         \"{DIR}/fastrouter.sock\",\n\"{DIR}/subscription.sock\"{tc}\n\t],\n\
         \t\"subscriptions\":[\n\t\t{{\n\t\t\t\"key\":\"app.example.com\",\n\t\t\t\"hash\":15268,\n\
         \t\t\t\"hits\":123456,\n\t\t\t\"sni_enabled\":0,\n\t\t\t\"nodes\":[\n",
        tc = if trailing_comma { ",\n\t" } else { "" }
    )
    .unwrap();
    for i in 0..n {
        let draining = i % 50 == 7;
        write!(
            s,
            "\t\t\t\t{{\n\
             \t\t\t\t\t\"name\":\"{DIR}/app_{i:04}.sock\",\n\
             \t\t\t\t\t\"modifier1\":0,\n\
             \t\t\t\t\t\"modifier2\":0,\n\
             \t\t\t\t\t\"last_check\":{lc},\n\
             \t\t\t\t\t\"pid\":0,\n\
             \t\t\t\t\t\"uid\":0,\n\
             \t\t\t\t\t\"gid\":0,\n\
             \t\t\t\t\t\"requests\":{req},\n\
             \t\t\t\t\t\"last_requests\":{lr},\n\
             \t\t\t\t\t\"tx\":{tx},\n\
             \t\t\t\t\t\"rx\":{rx},\n\
             \t\t\t\t\t\"cores\":1,\n\
             \t\t\t\t\t\"load\":0,\n\
             \t\t\t\t\t\"weight\":1,\n\
             \t\t\t\t\t\"wrr\":0,\n\
             \t\t\t\t\t\"ref\":{refs},\n\
             \t\t\t\t\t\"failcnt\":{fc},\n\
             \t\t\t\t\t\"death_mark\":{dm}\n\
             \t\t\t\t}}{comma}\n",
            lc = NOW + (i as i64 % 10),
            req = 1000 + i * 37,
            lr = i % 13,
            tx = 81_000 + i * 811,
            rx = 40_000 + i * 401,
            refs = i % 3,
            fc = if draining { 1 } else { 0 },
            dm = if draining { 1 } else { 0 },
            comma = if i + 1 < n { "," } else { "" },
        )
        .unwrap();
    }
    s.push_str("\t\t\t]\n\t\t}\n\t],\n\t\"cheap\":0\n}");
    s
}

struct Timing {
    median: Duration,
    best: Duration,
    parses: u64,
}

/// Runs `f` in batches of about `batch` until `total` has passed; returns
/// the median and best per-call times over the batches.
fn measure(mut f: impl FnMut(), batch: Duration, total: Duration) -> Timing {
    // warm-up, and the number of calls that fills one batch
    let t = Instant::now();
    let mut calls = 0u64;
    while t.elapsed() < batch / 2 {
        f();
        calls += 1;
    }
    let per_batch = (calls * 2).max(1);
    let mut per_call = Vec::new();
    let start = Instant::now();
    let mut parses = 0;
    while start.elapsed() < total || per_call.len() < 5 {
        let t = Instant::now();
        for _ in 0..per_batch {
            f();
        }
        per_call.push(t.elapsed() / per_batch as u32);
        parses += per_batch;
    }
    per_call.sort();
    Timing {
        median: per_call[per_call.len() / 2],
        best: per_call[0],
        parses,
    }
}

fn fmt_d(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("usage: parse_bench [VASSALS]"))
        .unwrap_or(1000);

    let emperor = emperor_json(n);
    let fastrouter = fastrouter_json(n, false);
    let fastrouter_bug = fastrouter_json(n, true);

    // The documents must parse and hold what was built: a benchmark of a
    // parse that fails early would measure nothing.
    let e = EmperorSnapshot::parse(emperor.as_bytes()).expect("emperor JSON parses");
    assert_eq!(e.vassals.len(), n);
    assert_eq!(e.blacklist.len(), 3);
    let f = FastrouterSnapshot::parse(fastrouter.as_bytes()).expect("fastrouter JSON parses");
    assert_eq!(f.nodes().count(), n);
    let fb = FastrouterSnapshot::parse(fastrouter_bug.as_bytes()).expect("the fixed JSON parses");
    assert_eq!(fb, f);

    let batch = Duration::from_millis(200);
    let total = Duration::from_secs(2);
    let cases: [(&str, &str); 3] = [
        ("EmperorSnapshot::parse", &emperor),
        ("FastrouterSnapshot::parse", &fastrouter),
        (
            "FastrouterSnapshot::parse (trailing comma)",
            &fastrouter_bug,
        ),
    ];

    println!(
        "stats parsing, {n} vassals; check interval {} ms; {} build",
        CHECK_INTERVAL.as_millis(),
        if cfg!(debug_assertions) {
            "DEBUG (use --release)"
        } else {
            "release"
        }
    );
    println!(
        "{:<44} {:>10} {:>12} {:>12} {:>10} {:>9}",
        "document", "bytes", "median", "best", "MB/s", "% of 100ms"
    );
    let mut check = Duration::ZERO;
    for (i, (name, doc)) in cases.iter().enumerate() {
        let bytes = doc.as_bytes();
        let t = if i == 0 {
            measure(
                || {
                    black_box(EmperorSnapshot::parse(black_box(bytes)).unwrap());
                },
                batch,
                total,
            )
        } else {
            measure(
                || {
                    black_box(FastrouterSnapshot::parse(black_box(bytes)).unwrap());
                },
                batch,
                total,
            )
        };
        if i < 2 {
            check += t.median;
        }
        println!(
            "{:<44} {:>10} {:>12} {:>12} {:>10.0} {:>8.3}%   ({} parses)",
            name,
            bytes.len(),
            fmt_d(t.median),
            fmt_d(t.best),
            bytes.len() as f64 / t.median.as_secs_f64() / 1e6,
            100.0 * t.median.as_secs_f64() / CHECK_INTERVAL.as_secs_f64(),
            t.parses
        );
    }
    println!(
        "one check (both documents, median): {} = {:.3}% of the {} ms interval (ratio {:.5}); \
         per vassal {:.0} ns",
        fmt_d(check),
        100.0 * check.as_secs_f64() / CHECK_INTERVAL.as_secs_f64(),
        CHECK_INTERVAL.as_millis(),
        check.as_secs_f64() / CHECK_INTERVAL.as_secs_f64(),
        check.as_secs_f64() * 1e9 / n.max(1) as f64
    );
}
