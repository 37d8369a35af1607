//! `--timeline FILE.svg` and `uwsgi-reload timeline EVENTS.jsonl`: a
//! picture of a rollout from its `--json` events (sans-IO: events in, SVG
//! text out, one renderer for both). Each vassal is a lane of coloured
//! segments, one per phase, on one time axis; beneath, per fastrouter key,
//! the live count and K as step lines. Plain SVG 1.1: no script, no
//! external font, every text escaped (vassal names come from file names).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

/// The phases a lane shows, with their colours (the legend's order).
pub const PHASES: &[(&str, &str)] = &[
    ("drain", "#f0a30a"),
    ("touch", "#6a00ff"),
    ("reload", "#1ba1e2"),
    ("accepting", "#60a917"),
    ("announce", "#00aba9"),
    ("repair", "#d80073"),
    ("failure", "#e51400"),
];
pub const LIVE_COLOUR: &str = "#0050ef";
pub const K_COLOUR: &str = "#a20025";

/// Where things are drawn: integer pixel coordinates, so a test can find
/// them in the rendered image.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub left: i64,
    pub width: i64,
    pub top: i64,
    pub lane: i64,
    pub lane_gap: i64,
    /// Height of one key's live chart.
    pub chart: i64,
    pub end_ms: u64,
    pub lanes: usize,
}

impl Layout {
    /// x of time `ms`.
    pub fn x(&self, ms: u64) -> i64 {
        self.left + (ms.min(self.end_ms) as i64 * self.width) / self.end_ms.max(1) as i64
    }
    /// Top of lane `i`.
    pub fn lane_y(&self, i: usize) -> i64 {
        self.top + i as i64 * (self.lane + self.lane_gap)
    }
    /// The chart of key number `k`: its top and the pixels per count.
    pub fn chart_top(&self, k: usize) -> i64 {
        self.lane_y(self.lanes) + 20 + k as i64 * (self.chart + 30)
    }
    /// y of count `n` in chart `k` whose largest count is `max`.
    pub fn count_y(&self, k: usize, n: u64, max: u64) -> i64 {
        let bottom = self.chart_top(k) + self.chart;
        bottom - (n.min(max) as i64 * self.chart) / max.max(1) as i64
    }
}

/// One coloured stretch of a lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub phase: &'static str,
    pub from_ms: u64,
    pub to_ms: u64,
}

/// What the events say, ready to draw.
#[derive(Debug, Default)]
pub struct Picture {
    pub vassals: Vec<String>,
    pub segments: BTreeMap<String, Vec<Segment>>,
    /// Per key: (at_ms, live) steps, and K.
    pub live: BTreeMap<String, Vec<(u64, u64)>>,
    pub min: BTreeMap<String, u64>,
    pub end_ms: u64,
}

/// The phase an event starts for its vassal; `Some(None)` ends the lane's
/// current segment without a new one.
fn phase_of(event: &str) -> Option<Option<&'static str>> {
    Some(match event {
        "drain_started" => Some("drain"),
        "touched" | "foreign_reload" => Some("touch"),
        "reload_seen" => Some("reload"),
        "accepting" | "probe_ok" => Some("accepting"),
        "announced" => Some("announce"),
        "repair_started" => Some("repair"),
        "failed" => Some("failure"),
        "subscribed" | "resubscribed" | "skipped" => None,
        _ => return None,
    })
}

impl Picture {
    pub fn from_events(events: &[Value]) -> Picture {
        let mut p = Picture::default();
        let mut open: BTreeMap<String, (&'static str, u64)> = BTreeMap::new();
        let at = |e: &Value| e["at_ms"].as_u64().unwrap_or(0);
        for e in events {
            let t = at(e);
            p.end_ms = p.end_ms.max(t);
            let name = e["event"].as_str().unwrap_or("");
            match name {
                "plan" => {
                    for v in e["vassals"].as_array().into_iter().flatten() {
                        p.add_vassal(v.as_str().unwrap_or(""));
                    }
                    for (k, m) in e["min_live"].as_object().into_iter().flatten() {
                        p.min.insert(k.clone(), m.as_u64().unwrap_or(0));
                    }
                    for (k, l) in e["live"].as_object().into_iter().flatten() {
                        p.live
                            .entry(k.clone())
                            .or_default()
                            .push((t, l.as_u64().unwrap_or(0)));
                    }
                }
                "live" => {
                    let key = e["key"].as_str().unwrap_or("").to_string();
                    if let Some(m) = e["min"].as_u64() {
                        p.min.insert(key.clone(), m);
                    }
                    let n = e["live"].as_u64().unwrap_or(0);
                    p.live.entry(key).or_default().push((t, n));
                }
                _ => {}
            }
            let (Some(vassal), Some(next)) = (e["vassal"].as_str(), phase_of(name)) else {
                continue;
            };
            p.add_vassal(vassal);
            if let Some((phase, from)) = open.remove(vassal) {
                // A phase that does not change (drained after drain_started)
                // goes on.
                if next == Some(phase) {
                    open.insert(vassal.to_string(), (phase, from));
                    continue;
                }
                p.segment(vassal, phase, from, t);
            }
            if let Some(phase) = next {
                open.insert(vassal.to_string(), (phase, t));
            }
        }
        for (vassal, (phase, from)) in open {
            let end = p.end_ms;
            p.segment(&vassal, phase, from, end);
        }
        p
    }

    fn add_vassal(&mut self, v: &str) {
        if !self.vassals.iter().any(|x| x == v) {
            self.vassals.push(v.to_string());
        }
    }

    fn segment(&mut self, vassal: &str, phase: &'static str, from_ms: u64, to_ms: u64) {
        self.segments
            .entry(vassal.to_string())
            .or_default()
            .push(Segment {
                phase,
                from_ms,
                to_ms,
            });
    }

    pub fn layout(&self) -> Layout {
        Layout {
            left: 200,
            width: 760,
            top: 40,
            lane: 18,
            lane_gap: 6,
            chart: 60,
            end_ms: self.end_ms.max(1),
            lanes: self.vassals.len(),
        }
    }

    /// The largest count drawn in key `k`'s chart.
    pub fn chart_max(&self, key: &str) -> u64 {
        let live = self.live.get(key).into_iter().flatten().map(|(_, n)| *n);
        live.chain(self.min.get(key).copied())
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// The keys with a chart, in drawing order.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.live.keys().chain(self.min.keys()).cloned().collect();
        k.sort();
        k.dedup();
        k
    }
}

/// Text made safe inside an SVG element or attribute.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // Not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

/// The SVG of a rollout's events: the legend, one lane per vassal, one
/// live-count chart per key, the time axis.
pub fn render(events: &[Value]) -> String {
    let p = Picture::from_events(events);
    let l = p.layout();
    let keys = p.keys();
    let height = l.chart_top(keys.len()) + 30;
    let total = l.left + l.width + 40;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{total}" height="{height}" viewBox="0 0 {total} {height}" font-family="sans-serif" font-size="12">
<rect x="0" y="0" width="{total}" height="{height}" fill="#ffffff"/>"##
    );
    legend(&mut s);
    for (i, v) in p.vassals.iter().enumerate() {
        lane(&mut s, &p, &l, i, v);
    }
    for (k, key) in keys.iter().enumerate() {
        chart(&mut s, &p, &l, k, key);
    }
    let axis_y = l.chart_top(keys.len()) + 10;
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{axis_y}">0 s</text><text x="{}" y="{axis_y}" text-anchor="end">{:.1} s</text>"#,
        l.left,
        l.left + l.width,
        p.end_ms as f64 / 1000.0
    );
    s.push_str("</svg>\n");
    s
}

/// The phases' colours, then live and K.
fn legend(s: &mut String) {
    let mut x = 10;
    for (phase, colour) in PHASES {
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="8" width="12" height="12" fill="{colour}"/><text x="{}" y="18">{phase}</text>"#,
            x + 16
        );
        x += 24 + 8 * phase.len() as i64;
    }
    let _ = writeln!(
        s,
        r#"<text x="{x}" y="18" fill="{LIVE_COLOUR}">live</text><text x="{}" y="18" fill="{K_COLOUR}">K</text>"#,
        x + 34
    );
}

/// Vassal `v`'s lane (number `i`): its name, then one bar per phase.
fn lane(s: &mut String, p: &Picture, l: &Layout, i: usize, v: &str) {
    let y = l.lane_y(i);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
        l.left - 6,
        y + l.lane - 4,
        escape(v)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{}" y="{y}" width="{}" height="{}" fill="#f2f2f2"/>"##,
        l.left, l.width, l.lane
    );
    for seg in p.segments.get(v).into_iter().flatten() {
        let colour = PHASES
            .iter()
            .find(|(n, _)| *n == seg.phase)
            .map_or("#808080", |(_, c)| c);
        let (x0, x1) = (l.x(seg.from_ms), l.x(seg.to_ms));
        let _ = writeln!(
            s,
            r#"<rect x="{x0}" y="{y}" width="{}" height="{}" fill="{colour}"><title>{}: {} {}-{} ms</title></rect>"#,
            (x1 - x0).max(1),
            l.lane,
            escape(v),
            seg.phase,
            seg.from_ms,
            seg.to_ms
        );
    }
}

/// Key `key`'s chart (number `k`): its frame, its K line, and its live
/// count as steps.
fn chart(s: &mut String, p: &Picture, l: &Layout, k: usize, key: &str) {
    let top = l.chart_top(k);
    let max = p.chart_max(key);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">{} live</text>"#,
        l.left - 6,
        top + l.chart / 2,
        escape(key)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{}" y="{top}" width="{}" height="{}" fill="none" stroke="#c0c0c0"/>"##,
        l.left, l.width, l.chart
    );
    if let Some(min) = p.min.get(key) {
        let y = l.count_y(k, *min, max);
        let _ = writeln!(
            s,
            r#"<polyline points="{},{y} {},{y}" fill="none" stroke="{K_COLOUR}" stroke-width="3"/>"#,
            l.left,
            l.left + l.width
        );
    }
    let steps = p.live.get(key).cloned().unwrap_or_default();
    if steps.is_empty() {
        return;
    }
    let mut pts = Vec::new();
    let mut last_y = None;
    for (t, n) in &steps {
        let (x, y) = (l.x(*t), l.count_y(k, *n, max));
        if let Some(py) = last_y {
            pts.push(format!("{x},{py}"));
        }
        pts.push(format!("{x},{y}"));
        last_y = Some(y);
    }
    if let Some(y) = last_y {
        pts.push(format!("{},{y}", l.left + l.width));
    }
    let _ = writeln!(
        s,
        r#"<polyline points="{}" fill="none" stroke="{LIVE_COLOUR}" stroke-width="3"/>"#,
        pts.join(" ")
    );
}

/// The events of a `--json` log (one object per line; other lines, such as
/// a human line that strayed in, are skipped).
pub fn parse_log(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn phases_become_segments_and_names_are_escaped() {
        let ev = vec![
            json!({"event":"plan","at_ms":0,"vassals":["a<&>.ini"],"min_live":{"k":1},"live":{"k":2}}),
            json!({"event":"drain_started","vassal":"a<&>.ini","at_ms":0}),
            json!({"event":"drained","vassal":"a<&>.ini","at_ms":50}),
            json!({"event":"touched","vassal":"a<&>.ini","at_ms":100}),
            json!({"event":"subscribed","vassal":"a<&>.ini","at_ms":400}),
            json!({"event":"summary","at_ms":500}),
        ];
        let p = Picture::from_events(&ev);
        let segs = &p.segments["a<&>.ini"];
        assert_eq!(
            segs[0],
            Segment {
                phase: "drain",
                from_ms: 0,
                to_ms: 100
            }
        );
        assert_eq!(
            segs[1],
            Segment {
                phase: "touch",
                from_ms: 100,
                to_ms: 400
            }
        );
        let svg = render(&ev);
        assert!(svg.contains("a&lt;&amp;&gt;.ini") && !svg.contains("a<&>"));
        assert!(!svg.contains("<script"));
    }
}
