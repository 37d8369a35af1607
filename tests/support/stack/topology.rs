//! The topologies of `tests/e2e_topology.rs` in the stack harness: two
//! standalone fastrouters for HA (configs from `examples/ha/`), the
//! fastrouter as a vassal of the Emperor, vassal configs in every format the
//! Emperor loads. `stack.rs` asks this module where each template comes
//! from, which routers to write, and whether a vassal is live on every
//! router; there is one stack implementation.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Stack, StackSpec};

/// The extensions the Emperor loads (`uwsgi_emperor_is_valid` in uWSGI
/// 2.0's core/emperor.c: `.xml .ini .yml .yaml .js .json`).
pub const CONFIG_EXTENSIONS: [&str; 6] = [".ini", ".xml", ".yml", ".yaml", ".js", ".json"];

/// The stem of a vassal config file name (`app_01.yaml` -> `app_01`), None
/// for files the Emperor does not load.
pub fn config_stem(file: &str) -> Option<String> {
    CONFIG_EXTENSIONS
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
        .filter(|s| !s.is_empty() && !s.starts_with('.'))
        .map(str::to_string)
}

/// Where template `file` (`emperor.ini`, `vassal.ini`, `app.py`,
/// `nginx.conf`) of a stack comes from: `examples/ha/` for the HA pair's
/// vassal and nginx, `examples/stack/` otherwise.
pub fn template_path(spec: &StackSpec, file: &str) -> PathBuf {
    let root = super::repo_root().join("examples");
    if spec.two_fastrouters && matches!(file, "vassal.ini" | "nginx.conf") {
        root.join("ha").join(file)
    } else {
        root.join("stack").join(file)
    }
}

/// nginx.conf as the test runs it: for the HA pair, without nginx's retry on
/// the other router, which would hide a failed request.
pub fn adapt_nginx(spec: &StackSpec, text: String) -> String {
    if !spec.two_fastrouters {
        return text;
    }
    let retry = "uwsgi_next_upstream error timeout;";
    assert!(
        text.contains(retry),
        "examples/ha/nginx.conf lost its `{retry}` line"
    );
    text.replace(retry, "uwsgi_next_upstream off;")
}

/// Writes the fastrouter config(s) of a stack whose Emperor has no
/// fastrouter: `router` (the fastrouter lines of emperor.ini) as
/// `fastrouter.ini` (standalone) or `vassals/fastrouter.ini` (a vassal); for
/// the HA pair, `examples/ha/fastrouter-a.ini` as `fastrouter.ini` and
/// `fastrouter-b.ini`, each with `StackSpec::fastrouter_extra`.
pub fn write_routers(spec: &StackSpec, dir: &Path, router: String, sub: &dyn Fn(&str) -> String) {
    if spec.fastrouter_vassal {
        assert!(!spec.standalone_fastrouter, "one fastrouter placement");
        fs::write(dir.join("vassals/fastrouter.ini"), router).unwrap();
        return;
    }
    if !spec.two_fastrouters {
        fs::write(dir.join("fastrouter.ini"), router).unwrap();
        return;
    }
    let ha = super::repo_root().join("examples/ha");
    for (from, to) in [
        ("fastrouter-a.ini", "fastrouter.ini"),
        ("fastrouter-b.ini", "fastrouter-b.ini"),
    ] {
        let t = fs::read_to_string(ha.join(from))
            .unwrap_or_else(|e| panic!("read examples/ha/{from}: {e}"));
        let mut text = sub(&t);
        if !spec.fastrouter_extra.is_empty() {
            text.push_str("\n; added by the e2e harness\n");
            for l in &spec.fastrouter_extra {
                text.push_str(&sub(l));
                text.push('\n');
            }
        }
        fs::write(dir.join(to), text).unwrap();
    }
}

impl Stack {
    /// Every fastrouter's stats socket, the first one first.
    pub fn fastrouter_stats_paths(&self) -> Vec<PathBuf> {
        if self.spec.two_fastrouters {
            vec![
                self.dir.join("fastrouter-a-stats.sock"),
                self.dir.join("fastrouter-b-stats.sock"),
            ]
        } else {
            vec![self.dir.join("fastrouter-stats.sock")]
        }
    }

    /// Every fastrouter's subscription server, the first one first.
    pub fn subscription_paths(&self) -> Vec<PathBuf> {
        if self.spec.two_fastrouters {
            vec![
                self.dir.join("subscription-a.sock"),
                self.dir.join("subscription-b.sock"),
            ]
        } else {
            vec![self.dir.join("subscription.sock")]
        }
    }

    /// Whether `name` has a live node under the stack's key on every router
    /// after the first (true with one router).
    pub fn live_on_other_routers(&self, name: &str) -> bool {
        let node = self.node_name(name);
        self.fastrouter_stats_paths().iter().skip(1).all(|p| {
            self.fastrouter_stats_at(p).is_ok_and(|fr| {
                fr.nodes()
                    .any(|(k, n)| k == self.key && n.name == node && n.death_mark == 0)
            })
        })
    }
}
