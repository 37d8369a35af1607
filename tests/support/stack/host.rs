//! One host of a stack: an Emperor in its own directory, with its vassal
//! directory, Emperor stats socket, vassal sockets, FIFOs and logs. A stack
//! has one host (whose directory is the stack's own) or several
//! (`StackSpec::host`: `<stack dir>/host-<id>/` each) that share the
//! stack's fastrouter and nginx, as a fleet deployed by Ansible has: the
//! same config names on every host, node names that differ by directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Child;

use uwsgi_reload::stats::EmperorSnapshot;

use super::{read_stats, Stack};

pub struct Host {
    /// "a", "b", ... (`StackSpec::host`); "" for a single-host stack.
    pub id: String,
    pub dir: PathBuf,
    /// The vassals (config stems) the host was started with.
    pub names: Vec<String>,
    pub(super) emperor: Option<Child>,
    /// Vassal -> config file name, when not `<name>.ini`
    /// (`StackSpec::own_file`).
    pub(super) files: BTreeMap<String, String>,
    /// Vassal -> node name, when not `<dir>/<name>.sock`
    /// (`StackSpec::own_node`).
    pub(super) nodes: BTreeMap<String, String>,
    /// `vassals/fastrouter.ini` is the fastrouter, not an app vassal
    /// (`StackSpec::fastrouter_vassal`).
    pub(super) router_vassal: bool,
}

impl Host {
    pub fn vassals_dir(&self) -> PathBuf {
        self.dir.join("vassals")
    }
    pub fn emperor_stats_path(&self) -> PathBuf {
        self.dir.join("emperor-stats.sock")
    }
    /// The config file name of vassal `name` (what the Emperor calls it).
    pub fn config_file(&self, name: &str) -> String {
        match self.files.get(name) {
            Some(file) => file.clone(),
            None => format!("{name}.ini"),
        }
    }
    pub fn config_path(&self, name: &str) -> PathBuf {
        self.vassals_dir().join(self.config_file(name))
    }
    /// The node name the fastrouter shows for `name`.
    pub fn node_name(&self, name: &str) -> String {
        match self.nodes.get(name) {
            Some(n) => n.clone(),
            None => format!("{}/{name}.sock", self.dir.display()),
        }
    }
    pub fn fifo_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.fifo"))
    }
    pub fn vassal_log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }
    /// `tag` for a vassal in messages: `name`, or `<id>:name` with hosts.
    pub fn tag(&self, name: &str) -> String {
        if self.id.is_empty() {
            name.to_string()
        } else {
            format!("{}:{name}", self.id)
        }
    }

    pub fn emperor_stats(&self) -> Result<EmperorSnapshot, String> {
        let b = read_stats(&self.emperor_stats_path())?;
        EmperorSnapshot::parse(&b).map_err(|e| {
            if self.id.is_empty() {
                format!("emperor stats: {e:?}")
            } else {
                format!("host {} emperor stats: {e:?}", self.id)
            }
        })
    }

    /// The app vassal configs present in the directory (stems), in every
    /// format the Emperor loads; not a fastrouter vassal's.
    pub fn config_names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.vassals_dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()
                            .and_then(super::topology::config_stem)
                            .filter(|s| !(self.router_vassal && s == "fastrouter"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Whether the current generation of `name` unblocked its subscriptions
    /// (its log says "subscriptions re-enabled" after the last start).
    pub(super) fn subscriptions_unblocked(&self, name: &str) -> bool {
        let log = fs::read_to_string(self.vassal_log(name)).unwrap_or_default();
        let generation = log.rsplit("*** Starting uWSGI").next().unwrap_or("");
        let mut unblocked = false;
        for line in generation.lines() {
            if line.contains("subscriptions re-enabled") {
                unblocked = true;
            } else if line.contains("subscriptions blocked") {
                unblocked = false;
            }
        }
        unblocked
    }

    /// Writes `cmd` to the master FIFO of `name` (non-blocking; an absent
    /// reader is an error).
    pub fn write_fifo(&self, name: &str, cmd: &str) -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(self.fifo_path(name))?;
        f.write_all(cmd.as_bytes())
    }
}

impl Stack {
    /// The host `id` (`StackSpec::host`).
    pub fn host(&self, id: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.id == id)
            .unwrap_or_else(|| panic!("no host {id}"))
    }

    /// The first (with one host: the only) host.
    pub fn first_host(&self) -> &Host {
        &self.hosts[0]
    }

    // The first host's paths, for the single-host scenarios.
    pub fn vassals_dir(&self) -> PathBuf {
        self.first_host().vassals_dir()
    }
    pub fn emperor_stats_path(&self) -> PathBuf {
        self.first_host().emperor_stats_path()
    }
    pub fn config_file(&self, name: &str) -> String {
        self.first_host().config_file(name)
    }
    pub fn config_path(&self, name: &str) -> PathBuf {
        self.first_host().config_path(name)
    }
    pub fn node_name(&self, name: &str) -> String {
        self.first_host().node_name(name)
    }
    pub fn fifo_path(&self, name: &str) -> PathBuf {
        self.first_host().fifo_path(name)
    }
    pub fn vassal_log(&self, name: &str) -> PathBuf {
        self.first_host().vassal_log(name)
    }
    pub fn emperor_stats(&self) -> Result<EmperorSnapshot, String> {
        self.first_host().emperor_stats()
    }
    pub fn config_names(&self) -> Vec<String> {
        self.first_host().config_names()
    }
    pub fn write_fifo(&self, name: &str, cmd: &str) -> std::io::Result<()> {
        self.first_host().write_fifo(name, cmd)
    }
}
