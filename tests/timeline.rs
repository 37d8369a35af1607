//! The timeline is a real picture of the events: a fixed event log rendered
//! to SVG (well-formed XML, no script), rasterised by a real renderer
//! (`rsvg-convert`, Debian librsvg2-bin) and read back as pixels (`pngtopnm`,
//! Debian netpbm): each lane has its phase's colour where the events put
//! the phase, and the live and K lines are at the heights the counts give.
//! `uwsgi-reload timeline EVENTS.jsonl` draws the same bytes, and a rollout
//! with `--timeline` writes its picture.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/fakes.rs"]
mod fakes;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use temp_dir::TempDir;
use uwsgi_reload::report::timeline::{self, Picture, K_COLOUR, LIVE_COLOUR, PHASES};

/// Two vassals under one key, K = 1, three nodes: a drained and reloaded
/// one, then one whose reload fails.
fn events() -> Vec<Value> {
    vec![
        json!({"event":"plan","v":1,"at_ms":0,"vassals":["app_01.ini","app_<2>&.ini"],"min_live":{"example.com":1},"live":{"example.com":3}}),
        json!({"event":"drain_started","v":1,"vassal":"app_01.ini","at_ms":0,"nodes":["/a"]}),
        json!({"event":"live","v":1,"key":"example.com","live":2,"min":1,"at_ms":0}),
        json!({"event":"drained","v":1,"vassal":"app_01.ini","at_ms":1000,"waited_ms":1000,"timed_out":false,"sessions_left":0}),
        json!({"event":"touched","v":1,"vassal":"app_01.ini","at_ms":2000,"mtime":1}),
        json!({"event":"reload_seen","v":1,"vassal":"app_01.ini","at_ms":3000}),
        json!({"event":"accepting","v":1,"vassal":"app_01.ini","at_ms":5000}),
        json!({"event":"subscribed","v":1,"vassal":"app_01.ini","at_ms":6000,"took_ms":4000,"repaired":false,"foreign":false}),
        json!({"event":"live","v":1,"key":"example.com","live":3,"min":1,"at_ms":6000}),
        json!({"event":"touched","v":1,"vassal":"app_<2>&.ini","at_ms":6000,"mtime":1}),
        json!({"event":"live","v":1,"key":"example.com","live":2,"min":1,"at_ms":6000}),
        json!({"event":"reload_seen","v":1,"vassal":"app_<2>&.ini","at_ms":7000}),
        json!({"event":"failed","v":1,"vassal":"app_<2>&.ini","at_ms":8000,"reason":"never_accepted","detail":"d","explain":"e"}),
        json!({"event":"summary","v":1,"at_ms":10000,"status":"failed"}),
    ]
}

fn colour(hex: &str) -> [u8; 3] {
    let h = hex.trim_start_matches('#');
    let b = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).unwrap();
    [b(0), b(2), b(4)]
}

fn phase_colour(name: &str) -> [u8; 3] {
    colour(PHASES.iter().find(|(n, _)| *n == name).unwrap().1)
}

/// A binary PPM (P6, maxval 255): width, height, RGB bytes.
fn read_ppm(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes[i] == b'#' {
            while bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..i]).into_owned());
    }
    assert_eq!(fields[0], "P6");
    assert_eq!(fields[3], "255");
    let (w, h) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (w, h, bytes[i + 1..].to_vec())
}

/// Tags open and close in order (a minimal well-formedness check: no
/// attribute holds `<` or `>`, every element is closed).
fn assert_well_formed(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        let j = rest[i..].find('>').expect("an unclosed tag") + i;
        let tag = &rest[i + 1..j];
        assert!(!tag.contains('<'), "a '<' inside a tag: {tag}");
        if tag.starts_with('?') || tag.starts_with('!') {
        } else if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "closing {name}");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap().to_string());
        }
        rest = &rest[j + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert_eq!(svg.matches("<svg").count(), 1);
}

fn rasterise(dir: &TempDir, svg: &str) -> (usize, usize, Vec<u8>) {
    let svg_path = dir.join("t.svg");
    let png_path = dir.join("t.png");
    std::fs::write(&svg_path, svg).unwrap();
    let o = Command::new("rsvg-convert")
        .args(["--format", "png", "--output"])
        .arg(&png_path)
        .arg(&svg_path)
        .output()
        .expect("rsvg-convert (bash examples/install-packages.sh installs librsvg2-bin)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("pngtopnm")
        .arg(&png_path)
        .output()
        .expect("pngtopnm (bash examples/install-packages.sh installs netpbm)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    read_ppm(&o.stdout)
}

#[test]
fn lanes_and_step_lines_are_where_the_events_say() {
    let ev = events();
    let svg = timeline::render(&ev);
    assert_well_formed(&svg);
    assert!(!svg.contains("<script") && !svg.contains("href"));
    assert!(svg.contains("app_&lt;2&gt;&amp;.ini"));
    let p = Picture::from_events(&ev);
    let l = p.layout();
    let dir = TempDir::new("timeline");
    let (w, h, px) = rasterise(&dir, &svg);
    let at = |x: i64, y: i64| -> [u8; 3] {
        let (x, y) = (x as usize, y as usize);
        assert!(x < w && y < h, "({x},{y}) outside {w}x{h}");
        let i = (y * w + x) * 3;
        [px[i], px[i + 1], px[i + 2]]
    };
    let mid = |i: usize, from: u64, to: u64| (l.x((from + to) / 2), l.lane_y(i) + l.lane / 2);
    // Lane 0: drain 0-2 s, touch 2-3 s, reload 3-5 s, accepting 5-6 s,
    // then nothing.
    for (phase, from, to) in [
        ("drain", 0, 2000),
        ("touch", 2000, 3000),
        ("reload", 3000, 5000),
        ("accepting", 5000, 6000),
    ] {
        let (x, y) = mid(0, from, to);
        assert_eq!(
            at(x, y),
            phase_colour(phase),
            "app_01.ini {phase} at ({x},{y})"
        );
    }
    let (x, y) = mid(0, 7000, 9000);
    assert_eq!(at(x, y), colour("#f2f2f2"), "app_01.ini is done after 6 s");
    // Lane 1: untouched until 6 s, then touch, reload, and failure to the end.
    let (x, y) = mid(1, 1000, 3000);
    assert_eq!(at(x, y), colour("#f2f2f2"));
    let (x, y) = mid(1, 7000, 8000);
    assert_eq!(at(x, y), phase_colour("reload"));
    let (x, y) = mid(1, 8000, 10000);
    assert_eq!(at(x, y), phase_colour("failure"));
    // The key's chart: K = 1 all along; live 2 from 0 to 6 s, then 2 again.
    let max = p.chart_max("example.com");
    assert_eq!(max, 3);
    let k_y = l.count_y(0, 1, max);
    assert_eq!(at(l.x(3000), k_y), colour(K_COLOUR), "the K line");
    let live_y = l.count_y(0, 2, max);
    assert_eq!(
        at(l.x(3000), live_y),
        colour(LIVE_COLOUR),
        "live = 2 at 3 s"
    );
    assert_ne!(at(l.x(3000), l.count_y(0, 3, max)), colour(LIVE_COLOUR));
}

#[test]
fn the_timeline_command_draws_a_saved_log() {
    let dir = TempDir::new("timeline-cmd");
    let log: String = events().iter().map(|e| format!("{e}\n")).collect();
    let path = dir.join("events.jsonl");
    std::fs::write(&path, format!("a human line that strayed in\n{log}")).unwrap();
    let o = binary::command(["timeline", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        timeline::render(&events())
    );
    let o = binary::command(["timeline"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// A rollout with --timeline (fake stats: the touch is never noticed, the
/// vassal fails after --timeout) writes the picture of its events.
#[test]
fn a_rollout_writes_its_timeline() {
    let w = fakes::World::new("timeline-run", 2);
    let _s = w.serve_consistent(false);
    let out = w.tmp.path.join("rollout.svg");
    let mut args = w.base_args();
    args.extend(
        [
            "--no-drain",
            "--timeout",
            "1",
            "--timeline",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let r = fakes::run(&args, Duration::from_secs(30));
    assert_eq!(r.code, Some(1), "{}", r.describe());
    let svg = std::fs::read_to_string(&out).expect("the timeline was written");
    assert_well_formed(&svg);
    assert!(svg.contains("app_01.ini: failure"), "{svg}");
    assert!(svg.contains("app_01.ini: touch"), "{svg}");
}

/// The picture is written as the metrics file is (a fresh temporary file,
/// renamed): a link planted at its path by whoever can write that directory
/// is replaced, and the file it points to (here a root-owned secret) is
/// never written through it (docs/SECURITY.md).
#[test]
fn a_planted_link_at_the_timeline_path_is_replaced_not_followed() {
    let w = fakes::World::new("timeline-link", 2);
    let _s = w.serve_consistent(false);
    let secret = w.tmp.path.join("secret");
    std::fs::write(&secret, "secret\n").unwrap();
    let out = w.tmp.path.join("rollout.svg");
    std::os::unix::fs::symlink(&secret, &out).unwrap();
    let mut args = w.base_args();
    // Refused in preflight (K above what two vassals keep): still drawn.
    args.extend(
        [
            "--minimum-active-vassals",
            "5",
            "--timeline",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let r = fakes::run(&args, Duration::from_secs(30));
    assert_eq!(r.code, Some(3), "{}", r.describe());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "secret\n");
    let meta = std::fs::symlink_metadata(&out).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the link was replaced by the picture"
    );
    assert_well_formed(&std::fs::read_to_string(&out).unwrap());
}
