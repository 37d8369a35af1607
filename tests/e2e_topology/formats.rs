//! One config file per vassal (no symlinks), each vassal on its own TCP
//! port on 127.0.0.1, in each format the Emperor loads: the files of
//! `examples/one-file-per-vassal/` (`.ini`, `.xml`, `.yaml`, `.json`), run
//! as they are (placeholders and ports replaced). Debian's uWSGI 2.0.21
//! loads all four (its YAML reader is built in, its JSON one is jansson).

use std::fs;

use crate::stack::{free_port, repo_root};
use crate::stack::{LoadSpec, Stack, StackSpec};
use crate::{events_of, print_summary, TOOL_TIMEOUT};

/// (vassal, example file, suffix given to the tool).
const FILES: [(&str, &str, &str); 4] = [
    ("app_01", "app_01.ini", ".ini"),
    ("app_02", "app_02.xml", ".xml"),
    ("app_03", "app_03.yaml", ".yaml"),
    ("app_04", "app_04.json", ".json"),
];

/// One stack of 4 vassals, one per format, each on its own port; then one
/// rollout per format with `--vassal-config-file-suffix`, K = 3 (the other
/// formats' vassals are nodes of the key too): each reloads exactly its own
/// vassal (the others untouched), zero failed requests, 3 live throughout,
/// exit 0, and the drain names the vassal's TCP node, read from its config
/// in that format (the node mapping works in every format).
pub fn one_file_per_vassal() {
    let k = 3;
    let dir = repo_root().join("examples/one-file-per-vassal");
    let mut spec = StackSpec::new(FILES.len());
    let mut nodes = Vec::new();
    for (i, (name, file, _)) in FILES.iter().enumerate() {
        let text = fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("read examples/one-file-per-vassal/{file}: {e}"));
        let example = format!("127.0.0.1:{}", 9001 + i);
        assert!(
            text.contains(&example),
            "examples/one-file-per-vassal/{file} lost its socket {example}"
        );
        let node = format!("127.0.0.1:{}", free_port());
        let mut text = text.replace(&example, &node);
        // A second, HTTP socket after the uwsgi one (app_04.json): uWSGI
        // walks the file in order, so the node is still the first socket.
        let http = format!("127.0.0.1:{}", 9101 + i);
        if text.contains(&http) {
            text = text.replace(&http, &format!("127.0.0.1:{}", free_port()));
        }
        spec = spec.own_file(name, file, &text).own_node(name, &node);
        nodes.push(node);
    }
    let stack = Stack::start(spec);
    for (name, file, _) in FILES {
        let meta = fs::symlink_metadata(stack.config_path(name)).unwrap();
        assert!(
            meta.file_type().is_file() && stack.config_file(name) == file,
            "{file} is not a file of its own"
        );
    }
    let ks = k.to_string();
    for (i, (name, file, suffix)) in FILES.iter().enumerate() {
        let r = stack.rollout(
            &[
                "--minimum-active-vassals",
                &ks,
                "--vassal-config-file-suffix",
                suffix,
                "--json",
            ],
            LoadSpec::default(),
            TOOL_TIMEOUT,
            |_| {},
        );
        print_summary(&format!("{file} (suffix {suffix})"), &r);
        let warnings: Vec<String> = events_of(&r, "warning")
            .into_iter()
            .map(|(_, e)| e.to_string())
            .collect();
        eprintln!("[e2e measured] {file}: warnings {warnings:?}");
        let mut c = r.checks();
        c.exit(0);
        c.no_failed_requests();
        c.lowest_live(&stack.key, k);
        c.no_router_retries();
        c.reloaded_once(name);
        c.node_fresh(name, 17);
        for (other, _, _) in FILES.iter().filter(|(o, _, _)| o != name) {
            c.untouched(other);
        }
        c.summary_list("reloaded", &[name.to_string()]);
        let drain = events_of(&r, "drain_started")
            .into_iter()
            .find(|(v, _)| v == name)
            .map(|(_, e)| e.to_string());
        c.check(
            drain.as_ref().is_some_and(|d| d.contains(&nodes[i])),
            || {
                format!(
                    "{file}: the drain did not name its TCP node {}: {drain:?}",
                    nodes[i]
                )
            },
        );
        // the doctor names a config it could not parse ("app_02.xml: its
        // config was not read as Xml: ...", with the fallback it used); its
        // findings are human lines, on stderr with --json
        let unread = r
            .run
            .stderr
            .lines()
            .chain(warnings.iter().map(String::as_str))
            .filter(|l| l.contains("not read as") || l.contains("could not be read"))
            .map(str::to_string)
            .collect::<Vec<_>>();
        c.check(unread.is_empty(), || {
            format!("{file}: the tool could not read a config: {unread:?}")
        });
        c.finish();
    }
}
