//! What a stack is made of: [`StackSpec`], built by chained calls
//! (`StackSpec::new(4).import_delay(1.0).standalone_fastrouter()`).

use std::collections::BTreeMap;

/// What to start.
#[derive(Clone, Debug)]
pub struct StackSpec {
    /// Number of vassals, `app_01.ini` .. `app_NN.ini`, symlinks to one
    /// `vassal.ini`.
    pub vassals: usize,
    /// Fastrouter key (vassals subscribe under it, nginx sends it).
    pub key: String,
    /// `APP_IMPORT_DELAY` for every vassal: seconds the app sleeps at import.
    pub import_delay_secs: f64,
    /// Lines appended to `vassal.ini` (placeholders as in examples/stack).
    pub vassal_extra: Vec<String>,
    /// Per vassal: lines appended to its own config. That vassal's config is
    /// then a file (vassal.ini + these lines), not a link to vassal.ini.
    pub vassal_own_lines: BTreeMap<String, Vec<String>>,
    /// Per vassal: options whose lines of vassal.ini its own config leaves
    /// out (e.g. `subscribe2`, to write its own subscriptions instead).
    pub vassal_own_drop: BTreeMap<String, Vec<String>>,
    /// Lines appended to the config of the process that runs the fastrouter
    /// (`emperor.ini`, or `fastrouter.ini` when standalone), e.g.
    /// `subscription-tolerance = 60`.
    pub fastrouter_extra: Vec<String>,
    /// Run the fastrouter as its own uWSGI process (`fastrouter.ini`: the
    /// fastrouter lines of `emperor.ini`) on the same sockets, instead of
    /// inside the Emperor's master, so that a test can restart it
    /// (`tests/support/stack/fastrouter.rs`).
    pub standalone_fastrouter: bool,
    /// Two standalone fastrouters for HA (`tests/support/stack/topology.rs`): the
    /// router configs, the vassal config and nginx.conf come from
    /// `examples/ha/`; every vassal subscribes to both, nginx balances over
    /// both, the tool is given both stats sockets.
    pub two_fastrouters: bool,
    /// The fastrouter runs as a vassal of the Emperor (`vassals/fastrouter.ini`,
    /// the fastrouter lines of `emperor.ini`), not an app vassal.
    pub fastrouter_vassal: bool,
    /// Lines appended to `emperor.ini` (e.g. `emperor-freq = 10`).
    pub emperor_extra: Vec<String>,
    /// Per vassal: its whole config, as (file name, text), instead of a link
    /// to vassal.ini (another format, its own TCP socket, ...).
    pub vassal_files: BTreeMap<String, (String, String)>,
    /// Per vassal: the node name the fastrouter shows for it, when it is
    /// not `@STACK_DIR@/<name>.sock` (a TCP socket).
    pub node_names: BTreeMap<String, String>,
    /// Several hosts (`(id, vassal numbers)`), each an Emperor in
    /// `host-<id>/` with its vassals, behind the one standalone fastrouter;
    /// empty: one host with `vassals` vassals in the stack's directory.
    pub hosts: Vec<(String, Vec<usize>)>,
    /// Other files written to the stack's directory before anything
    /// starts, as (file name, text with placeholders): a file the vassal
    /// configs include.
    pub extra_files: Vec<(String, String)>,
}

impl StackSpec {
    pub fn new(vassals: usize) -> Self {
        StackSpec {
            vassals,
            key: "e2e.example".to_string(),
            import_delay_secs: 0.0,
            vassal_extra: Vec::new(),
            vassal_own_lines: BTreeMap::new(),
            vassal_own_drop: BTreeMap::new(),
            fastrouter_extra: Vec::new(),
            standalone_fastrouter: false,
            two_fastrouters: false,
            fastrouter_vassal: false,
            emperor_extra: Vec::new(),
            vassal_files: BTreeMap::new(),
            node_names: BTreeMap::new(),
            hosts: Vec::new(),
            extra_files: Vec::new(),
        }
    }

    pub fn import_delay(mut self, secs: f64) -> Self {
        self.import_delay_secs = secs;
        self
    }

    /// Appends `line` to `vassal.ini` (every vassal).
    pub fn vassal_line(mut self, line: &str) -> Self {
        self.vassal_extra.push(line.to_string());
        self
    }

    /// Appends `line` to vassal `name`'s own config only.
    pub fn own_line(mut self, name: &str, line: &str) -> Self {
        self.vassal_own_lines
            .entry(name.to_string())
            .or_default()
            .push(line.to_string());
        self
    }

    /// Leaves the `option` lines of vassal.ini out of vassal `name`'s own
    /// config.
    pub fn own_drop(mut self, name: &str, option: &str) -> Self {
        self.vassal_own_drop
            .entry(name.to_string())
            .or_default()
            .push(option.to_string());
        self
    }

    /// Appends `line` to the fastrouter's config.
    pub fn fastrouter_line(mut self, line: &str) -> Self {
        self.fastrouter_extra.push(line.to_string());
        self
    }

    pub fn standalone_fastrouter(mut self) -> Self {
        self.standalone_fastrouter = true;
        self
    }

    pub fn two_fastrouters(mut self) -> Self {
        self.standalone_fastrouter = true;
        self.two_fastrouters = true;
        self
    }

    pub fn fastrouter_vassal(mut self) -> Self {
        self.fastrouter_vassal = true;
        self
    }

    /// Appends `line` to `emperor.ini`.
    pub fn emperor_line(mut self, line: &str) -> Self {
        self.emperor_extra.push(line.to_string());
        self
    }

    /// Vassal `name`'s config is the file `file` (in the Emperor's
    /// directory) holding `text` (placeholders as in examples/stack).
    pub fn own_file(mut self, name: &str, file: &str, text: &str) -> Self {
        self.vassal_files
            .insert(name.to_string(), (file.to_string(), text.to_string()));
        self
    }

    /// Writes `file` (placeholders as in examples/stack) into the stack's
    /// directory before anything starts.
    pub fn extra_file(mut self, file: &str, text: &str) -> Self {
        self.extra_files.push((file.to_string(), text.to_string()));
        self
    }

    /// The fastrouter shows vassal `name`'s node as `node`.
    pub fn own_node(mut self, name: &str, node: &str) -> Self {
        self.node_names.insert(name.to_string(), node.to_string());
        self
    }

    /// Adds host `id` with vassals `numbers` (3: `app_03.ini`): an Emperor
    /// in `host-<id>/` behind the shared standalone fastrouter.
    pub fn host(mut self, id: &str, numbers: &[usize]) -> Self {
        self.standalone_fastrouter = true;
        self.hosts.push((id.to_string(), numbers.to_vec()));
        self
    }
}

pub fn vassal_name(i: usize) -> String {
    format!("app_{i:02}")
}
