//! A real stack (the files of `examples/stack/`) in a temporary directory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{symlink, MetadataExt, OpenOptionsExt};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::Pid;
use uwsgi_reload::stats::{EmperorSnapshot, FastrouterSnapshot};

use super::tail;

/// One stack at a time in this process: stacks compete for 2 cores, and a
/// rollout's timing must not depend on a neighbour's.
static E2E_LOCK: Mutex<()> = Mutex::new(());
static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Timeout of one stats read (connect + read to EOF), docs/UWSGI.md §13.
const STATS_TIMEOUT: Duration = Duration::from_secs(3);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

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

    /// The fastrouter shows vassal `name`'s node as `node`.
    pub fn own_node(mut self, name: &str, node: &str) -> Self {
        self.node_names.insert(name.to_string(), node.to_string());
        self
    }
}

pub fn vassal_name(i: usize) -> String {
    format!("app_{i:02}")
}

/// A running stack. Dropping it stops everything it started.
pub struct Stack {
    pub dir: PathBuf,
    pub port: u16,
    pub key: String,
    /// The vassals the stack was started with.
    pub names: Vec<String>,
    pub spec: StackSpec,
    /// Repairs of the docs/UWSGI.md §9.6 race done while waiting for the
    /// stack to come up.
    pub start_repairs: Vec<String>,
    emperor: Option<Child>,
    nginx: Option<Child>,
    /// The standalone fastrouter (`StackSpec::standalone_fastrouter`).
    pub(super) fastrouter: Mutex<Option<Child>>,
    /// The second one (`StackSpec::two_fastrouters`).
    pub(super) fastrouter_b: Mutex<Option<Child>>,
    // last: released after everything above is stopped
    _lock: MutexGuard<'static, ()>,
}

fn make_temp_dir() -> PathBuf {
    let base = std::env::var_os("E2E_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    loop {
        let n = DIR_COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = base.join(format!("ur-e2e-{}-{}", std::process::id(), n));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", dir.display()),
        }
    }
}

fn require_program(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed: the end-to-end tests need uwsgi-core, uwsgi-plugin-python3 and nginx \
         (bash tests/run.sh installs them)"
    );
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A port on 127.0.0.1 that nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

fn substitute(template: &str, dir: &Path, key: &str, port: u16, user: &str) -> String {
    template
        .replace("@STACK_DIR@", dir.to_str().expect("utf-8 temp dir"))
        .replace("@KEY@", key)
        .replace("@PORT@", &port.to_string())
        .replace("@USER@", user)
}

pub(super) fn wait_child(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => return false,
        }
    }
}

/// Connect + read to EOF with a timeout.
/// Replaces the file at `path` by `content` whose mtime is `mtime` (a
/// temporary file beside it, then rename): a config the Emperor, which has
/// seen `mtime` already, does not notice until the next touch.
pub fn replace_keeping_mtime(path: &Path, content: &str, mtime: i64) {
    let name = path.file_name().expect("a file name").to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, content).unwrap();
    let ts = TimeSpec::new(mtime, 0);
    utimensat(None, &tmp, &ts, &ts, UtimensatFlags::NoFollowSymlink).unwrap();
    fs::rename(&tmp, path).unwrap();
}

pub fn read_stats(path: &Path) -> Result<Vec<u8>, String> {
    let mut s =
        UnixStream::connect(path).map_err(|e| format!("connect {}: {e}", path.display()))?;
    s.set_read_timeout(Some(STATS_TIMEOUT)).unwrap();
    let deadline = Instant::now() + STATS_TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return Ok(buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read {}: {e}", path.display())),
        }
        if Instant::now() > deadline {
            return Err(format!("read {}: timed out", path.display()));
        }
    }
}

impl Stack {
    /// Starts the stack and waits until every vassal accepts and is
    /// subscribed, and nginx answers. Panics (after stopping what it started)
    /// if that does not happen within a minute or so.
    pub fn start(spec: StackSpec) -> Stack {
        let lock = E2E_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        super::uwsgi_under_test::require_bin();
        require_program("nginx");
        let dir = make_temp_dir();
        for sub in ["vassals", "logs", "state", "nginx-temp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let mut stack = Stack {
            dir: dir.clone(),
            port: 0,
            key: spec.key.clone(),
            names: (1..=spec.vassals).map(vassal_name).collect(),
            spec: spec.clone(),
            start_repairs: Vec::new(),
            emperor: None,
            nginx: None,
            fastrouter: Mutex::new(None),
            fastrouter_b: Mutex::new(None),
            _lock: lock,
        };
        let src = repo_root().join("examples/stack");
        let user = current_user();
        let sub = |t: &str| substitute(t, &dir, &spec.key, 0, &user);
        let append = |text: &mut String, lines: &[String]| {
            if !lines.is_empty() {
                text.push_str("\n; added by the e2e harness\n");
                for l in lines {
                    text.push_str(&sub(l));
                    text.push('\n');
                }
            }
        };
        for f in ["emperor.ini", "vassal.ini", "app.py"] {
            let from = super::topology::template_path(&spec, f);
            let t = fs::read_to_string(&from)
                .unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
            let mut text = sub(&t);
            if f == "vassal.ini" {
                // UWSGI_APP: Debian's plugin, a built-in Python, or no language
                text = super::uwsgi_under_test::adapt_vassal_ini(&text);
                append(&mut text, &spec.vassal_extra);
            }
            if f == "emperor.ini" {
                if spec.standalone_fastrouter || spec.fastrouter_vassal {
                    let (emperor, mut router) = super::fastrouter::split_emperor_ini(&text, &dir);
                    append(&mut router, &spec.fastrouter_extra);
                    super::topology::write_routers(&spec, &dir, router, &sub);
                    text = emperor;
                } else {
                    append(&mut text, &spec.fastrouter_extra);
                }
                append(&mut text, &spec.emperor_extra);
            }
            fs::write(dir.join(f), text).unwrap();
        }
        let vassal_ini = fs::read_to_string(dir.join("vassal.ini")).unwrap();
        for name in &stack.names {
            if let Some((file, text)) = spec.vassal_files.get(name) {
                fs::write(dir.join("vassals").join(file), sub(text)).unwrap();
                continue;
            }
            let path = dir.join("vassals").join(format!("{name}.ini"));
            let lines = spec.vassal_own_lines.get(name);
            let drop = spec.vassal_own_drop.get(name);
            if lines.is_none() && drop.is_none() {
                symlink("../vassal.ini", path).unwrap();
                continue;
            }
            let dropped = |l: &str| {
                let opt = l.split('=').next().unwrap_or("").trim();
                drop.is_some_and(|d| d.iter().any(|o| o == opt))
            };
            let mut text: String = vassal_ini
                .lines()
                .filter(|l| !dropped(l))
                .flat_map(|l| [l, "\n"])
                .collect();
            append(&mut text, lines.map_or(&[][..], |v| v.as_slice()));
            fs::write(path, text).unwrap();
        }
        if spec.standalone_fastrouter {
            if let Err(e) = stack
                .start_fastrouter()
                .and_then(|()| stack.start_fastrouter_b())
            {
                panic!("{e}\n{}", stack.diagnostics());
            }
        }

        let log = fs::File::create(dir.join("logs/emperor.out")).unwrap();
        let emperor = Command::new(super::uwsgi_under_test::bin())
            .arg("--ini")
            .arg(dir.join("emperor.ini"))
            .current_dir(&dir)
            .env("APP_IMPORT_DELAY", spec.import_delay_secs.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start uwsgi");
        stack.emperor = Some(emperor);
        stack.start_nginx(&src, &user);

        let budget =
            Duration::from_secs(60) + Duration::from_secs_f64(spec.import_delay_secs * 3.0);
        if let Err(e) = stack.wait_ready(budget) {
            panic!(
                "the stack in {} did not come up: {e}\n{}",
                dir.display(),
                stack.diagnostics()
            );
        }
        stack.wait_http(Duration::from_secs(20));
        stack
    }

    fn start_nginx(&mut self, src: &Path, user: &str) {
        let _ = src;
        let from = super::topology::template_path(&self.spec, "nginx.conf");
        let template =
            fs::read_to_string(&from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
        let template = super::topology::adapt_nginx(&self.spec, template);
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            fs::write(
                self.dir.join("nginx.conf"),
                substitute(&template, &self.dir, &self.key, port, user),
            )
            .unwrap();
            let log = fs::File::create(self.dir.join("logs/nginx.out")).unwrap();
            let mut child = Command::new("nginx")
                .arg("-p")
                .arg(&self.dir)
                .arg("-c")
                .arg(self.dir.join("nginx.conf"))
                .arg("-e")
                .arg(self.dir.join("logs/nginx-error.log"))
                .current_dir(&self.dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .process_group(0)
                .spawn()
                .expect("start nginx");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(st)) = child.try_wait() {
                    last_err = format!(
                        "nginx exited with {st}: {}",
                        fs::read_to_string(self.dir.join("logs/nginx.out")).unwrap_or_default()
                    );
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    self.port = port;
                    self.nginx = Some(child);
                    return;
                }
                if Instant::now() > deadline {
                    let _ = kill(Pid::from_raw(-(child.id() as i32)), Signal::SIGKILL);
                    let _ = child.wait();
                    last_err = "nginx did not listen within 10 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("cannot start nginx: {last_err}\n{}", self.diagnostics());
    }

    /// Waits until a GET through nginx answers 200.
    fn wait_http(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match super::load::get(self.port, "/", Duration::from_secs(5)) {
                Ok(_) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("nginx does not answer 200: {last}\n{}", self.diagnostics());
    }

    // ---- paths ----
    pub fn vassals_dir(&self) -> PathBuf {
        self.dir.join("vassals")
    }
    pub fn emperor_stats_path(&self) -> PathBuf {
        self.dir.join("emperor-stats.sock")
    }
    /// The (first) fastrouter's stats socket.
    pub fn fastrouter_stats_path(&self) -> PathBuf {
        self.fastrouter_stats_paths().remove(0)
    }
    /// The (first) fastrouter's subscription server.
    pub fn subscription_path(&self) -> PathBuf {
        self.subscription_paths().remove(0)
    }
    /// The config file name of vassal `name` (what the Emperor calls it).
    pub fn config_file(&self, name: &str) -> String {
        match self.spec.vassal_files.get(name) {
            Some((file, _)) => file.clone(),
            None => format!("{name}.ini"),
        }
    }
    pub fn config_path(&self, name: &str) -> PathBuf {
        self.vassals_dir().join(self.config_file(name))
    }
    /// The node name the fastrouter shows for `name`.
    pub fn node_name(&self, name: &str) -> String {
        match self.spec.node_names.get(name) {
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

    // ---- stats ----
    pub fn emperor_stats(&self) -> Result<EmperorSnapshot, String> {
        let b = read_stats(&self.emperor_stats_path())?;
        EmperorSnapshot::parse(&b).map_err(|e| format!("emperor stats: {e:?}"))
    }
    pub fn fastrouter_stats(&self) -> Result<FastrouterSnapshot, String> {
        self.fastrouter_stats_at(&self.fastrouter_stats_path())
    }
    pub fn fastrouter_stats_at(&self, path: &Path) -> Result<FastrouterSnapshot, String> {
        let b = read_stats(path)?;
        FastrouterSnapshot::parse(&b)
            .map_err(|e| format!("fastrouter stats {}: {e:?}", path.display()))
    }
    fn both_stats(&self) -> Result<(EmperorSnapshot, FastrouterSnapshot), String> {
        let mut last = String::new();
        for _ in 0..3 {
            match (self.emperor_stats(), self.fastrouter_stats()) {
                (Ok(e), Ok(f)) => return Ok((e, f)),
                (Err(e), _) | (_, Err(e)) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last)
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
                            .filter(|s| !(self.spec.fastrouter_vassal && s == "fastrouter"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Whether the current generation of `name` unblocked its subscriptions
    /// (its log says "subscriptions re-enabled" after the last start).
    fn subscriptions_unblocked(&self, name: &str) -> bool {
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

    /// Waits until every vassal in the directory accepts (Emperor) and has a
    /// live node (fastrouter). docs/UWSGI.md §9.6: a vassal that accepts, has no node
    /// after 4 s and whose subscriptions are still blocked gets `S` on its
    /// FIFO. Returns the names repaired.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + timeout;
        let mut accepting_since: HashMap<String, Instant> = HashMap::new();
        let mut repaired_at: HashMap<String, Instant> = HashMap::new();
        let mut repairs = Vec::new();
        loop {
            let names = self.config_names();
            let mut pending = Vec::new();
            match self.both_stats() {
                Err(e) => pending.push(e),
                Ok((emp, fr)) => {
                    for name in &names {
                        let v = emp.vassal(&self.config_file(name));
                        let accepting = v.is_some_and(|v| v.accepting == 1 && v.cursed == 0);
                        let node = self.node_name(name);
                        let live = fr
                            .nodes()
                            .any(|(k, n)| k == self.key && n.name == node && n.death_mark == 0)
                            && self.live_on_other_routers(name);
                        if accepting && live {
                            accepting_since.remove(name);
                            continue;
                        }
                        pending.push(format!(
                            "{name}: {}, {}",
                            if v.is_none() {
                                "not in the Emperor's stats"
                            } else if accepting {
                                "accepting"
                            } else {
                                "not accepting"
                            },
                            if live { "subscribed" } else { "no live node" }
                        ));
                        if accepting && !live {
                            let since = *accepting_since
                                .entry(name.clone())
                                .or_insert_with(Instant::now);
                            let recently = repaired_at
                                .get(name)
                                .is_some_and(|t| t.elapsed() < Duration::from_secs(12));
                            if since.elapsed() > Duration::from_secs(4)
                                && !recently
                                && !self.subscriptions_unblocked(name)
                            {
                                eprintln!(
                                    "[e2e harness] {name} accepts but is not subscribed and its subscriptions are \
                                     blocked (docs/UWSGI.md §9.6): writing S to its FIFO"
                                );
                                match self.write_fifo(name, "S") {
                                    Ok(()) => {
                                        repaired_at.insert(name.clone(), Instant::now());
                                        repairs.push(name.clone());
                                    }
                                    Err(e) => {
                                        eprintln!("[e2e harness] writing S to {name}'s FIFO: {e}")
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if pending.is_empty() {
                self.start_repairs.extend(repairs.iter().cloned());
                return Ok(repairs);
            }
            if Instant::now() > deadline {
                return Err(format!("still waiting for: {}", pending.join("; ")));
            }
            if let Some(e) = self.emperor.as_mut() {
                if let Ok(Some(st)) = e.try_wait() {
                    return Err(format!("the Emperor exited with {st}"));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The real state of every vassal: the configs present now plus the ones
    /// the stack started with.
    pub fn fleet(&self) -> Fleet {
        let mut names: BTreeSet<String> = self.names.iter().cloned().collect();
        names.extend(self.config_names());
        let (emp, fr) = match self.both_stats() {
            Ok(x) => x,
            Err(e) => panic!("cannot read the stack's stats: {e}\n{}", self.diagnostics()),
        };
        for v in &emp.vassals {
            if let Some(stem) = super::topology::config_stem(&v.id) {
                names.insert(stem);
            }
        }
        let mut vassals = BTreeMap::new();
        for name in names {
            let id = self.config_file(&name);
            let v = emp.vassal(&id);
            let node_name = self.node_name(&name);
            let node = fr
                .nodes()
                .find(|(k, n)| *k == self.key && n.name == node_name)
                .map(|(_, n)| NodeState {
                    death_mark: n.death_mark,
                    last_check: n.last_check,
                    refs: n.refs,
                    requests: n.requests,
                });
            let link_mtime = fs::symlink_metadata(self.config_path(&name))
                .ok()
                .map(|m| m.mtime());
            let (imports, workers) =
                read_app_log(&self.dir.join("state").join(format!("{name}.log")));
            vassals.insert(
                name.clone(),
                VassalState {
                    name,
                    in_emperor: v.is_some(),
                    pid: v.map_or(0, |v| v.pid),
                    respawns: v.map_or(-1, |v| v.respawns),
                    last_mod: v.map_or(0, |v| v.last_mod),
                    accepting: v.is_some_and(|v| v.accepting == 1),
                    cursed: v.is_some_and(|v| v.cursed != 0),
                    blacklisted: emp.blacklisted(&id).is_some(),
                    node,
                    link_mtime,
                    imports,
                    workers,
                },
            );
        }
        Fleet { vassals }
    }

    /// Polls the Emperor until some vassal's reload (or death) shows
    /// (`last_mod`, `respawns` or pid differ from `before`). Returns their
    /// names.
    pub fn wait_reload_started(&self, before: &Fleet, timeout: Duration) -> Option<Vec<String>> {
        super::poll(timeout, Duration::from_millis(20), || {
            let emp = self.emperor_stats().ok()?;
            let started: Vec<String> = before
                .vassals
                .values()
                .filter(|b| b.in_emperor)
                .filter(|b| match emp.vassal(&self.config_file(&b.name)) {
                    None => true,
                    Some(v) => {
                        v.last_mod != b.last_mod || v.respawns != b.respawns || v.pid != b.pid
                    }
                })
                .map(|b| b.name.clone())
                .collect();
            (!started.is_empty()).then_some(started)
        })
    }

    // ---- changing the stack ----

    /// Moves the mtime of `name`'s config (the link itself) forward the way a
    /// careful operator would: `max(now, mtime + 1)`. The Emperor reloads it.
    pub fn touch(&self, name: &str) {
        let path = self.config_path(name);
        let m = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let t = now_secs().max(m.mtime() + 1);
        let ts = TimeSpec::new(t, 0);
        utimensat(None, &path, &ts, &ts, UtimensatFlags::NoFollowSymlink)
            .unwrap_or_else(|e| panic!("touch -h {}: {e}", path.display()));
    }

    /// Adds a vassal (a new link to vassal.ini): the Emperor starts it.
    pub fn add_vassal(&self, name: &str) {
        symlink("../vassal.ini", self.config_path(name)).unwrap();
    }

    /// Replaces `name`'s config by `content` without the Emperor noticing
    /// (the new file gets the old `last_mod` as mtime): a deployment that
    /// the next reload will pick up.
    pub fn replace_config_quietly(&self, name: &str, content: &str) {
        let emp = self.emperor_stats().expect("emperor stats");
        let last_mod = emp
            .vassal(&self.config_file(name))
            .expect("vassal in emperor stats")
            .last_mod;
        replace_keeping_mtime(&self.config_path(name), content, last_mod);
    }

    /// vassal.ini as written for this stack.
    pub fn vassal_ini(&self) -> String {
        fs::read_to_string(self.dir.join("vassal.ini")).unwrap()
    }

    /// Sends a uWSGI unsubscribe packet for `name`'s node (what a drain
    /// does), then waits until the fastrouter dropped the node (its sessions
    /// ended), then removes the config: the Emperor stops the vassal, and no
    /// request is in flight on it. Returns whether the node went away in time.
    pub fn remove_vassal_drained(&self, name: &str, timeout: Duration) -> bool {
        self.send_subscription(name, true);
        let node = self.node_name(name);
        let gone = super::poll(timeout, Duration::from_millis(20), || {
            let fr = self.fastrouter_stats().ok()?;
            let present = fr.nodes().any(|(k, n)| k == self.key && n.name == node);
            (!present).then_some(())
        })
        .is_some();
        fs::remove_file(self.config_path(name)).unwrap();
        gone
    }

    /// A subscription packet (modifier1 224; modifier2 0 subscribe, 1
    /// unsubscribe) for `name`'s node, sent to the subscription server.
    pub fn send_subscription(&self, name: &str, unsubscribe: bool) {
        fn kv(out: &mut Vec<u8>, k: &str, v: &str) {
            out.extend_from_slice(&(k.len() as u16).to_le_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u16).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        let mut body = Vec::new();
        kv(&mut body, "key", &self.key);
        kv(&mut body, "address", &self.node_name(name));
        kv(&mut body, "modifier1", "0");
        kv(&mut body, "modifier2", "0");
        let mut pkt = vec![224u8];
        pkt.extend_from_slice(&(body.len() as u16).to_le_bytes());
        pkt.push(u8::from(unsubscribe));
        pkt.extend_from_slice(&body);
        let s = UnixDatagram::unbound().unwrap();
        s.send_to(&pkt, self.subscription_path())
            .expect("send subscription packet");
    }

    /// The log tails, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "---- stack {} (port {}) ----",
            self.dir.display(),
            self.port
        );
        let mut files = vec![
            self.dir.join("logs/emperor.log"),
            self.dir.join("logs/fastrouter.log"),
            self.dir.join("logs/fastrouter-b.log"),
            self.dir.join("logs/nginx-error.log"),
        ];
        for n in self.config_names() {
            files.push(self.vassal_log(&n));
        }
        for f in files {
            if let Ok(t) = fs::read_to_string(&f) {
                let _ = writeln!(s, "---- {} ----\n{}", f.display(), tail(&t, 25));
            }
        }
        s
    }

    /// Stops nginx and the Emperor (SIGINT, then SIGKILL of its process
    /// group). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut n) = self.nginx.take() {
            let pg = Pid::from_raw(-(n.id() as i32));
            let _ = kill(Pid::from_raw(n.id() as i32), Signal::SIGQUIT);
            if !wait_child(&mut n, Duration::from_secs(2)) {
                let _ = kill(pg, Signal::SIGKILL);
                let _ = n.wait();
            }
            // the workers, should any be left
            let _ = kill(pg, Signal::SIGKILL);
        }
        if let Some(mut e) = self.emperor.take() {
            let pg = Pid::from_raw(-(e.id() as i32));
            // SIGINT: the Emperor stops every vassal, then exits (~4 s)
            let _ = kill(Pid::from_raw(e.id() as i32), Signal::SIGINT);
            if !wait_child(&mut e, Duration::from_secs(6)) {
                let _ = kill(pg, Signal::SIGKILL);
                let _ = e.wait();
            }
            // vassals or workers that outlived it
            let _ = kill(pg, Signal::SIGKILL);
        }
        self.stop_fastrouter();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking {
            eprintln!("{}", self.diagnostics());
        }
        self.stop();
        if panicking || std::env::var_os("E2E_KEEP").is_some() {
            eprintln!("[e2e harness] kept {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// (master pid, time) of one app import.
pub type Import = (i64, f64);
/// (worker pid, master pid, time) of one forked worker.
pub type Worker = (i64, i64, f64);

fn read_app_log(path: &Path) -> (Vec<Import>, Vec<Worker>) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut imports = Vec::new();
    let mut workers = Vec::new();
    for line in text.lines() {
        let fields: HashMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let num = |k: &str| fields.get(k).and_then(|v| v.parse::<f64>().ok());
        if line.starts_with("import ") {
            if let (Some(p), Some(t)) = (num("pid"), num("time")) {
                imports.push((p as i64, t));
            }
        } else if line.starts_with("worker ") {
            if let (Some(p), Some(m), Some(t)) = (num("pid"), num("master"), num("time")) {
                workers.push((p as i64, m as i64, t));
            }
        }
    }
    (imports, workers)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeState {
    pub death_mark: i64,
    pub last_check: i64,
    pub refs: i64,
    pub requests: i64,
}

/// One vassal as the Emperor, the fastrouter, the file system and the app
/// itself see it.
#[derive(Clone, Debug)]
pub struct VassalState {
    pub name: String,
    pub in_emperor: bool,
    pub pid: i64,
    pub respawns: i64,
    pub last_mod: i64,
    pub accepting: bool,
    pub cursed: bool,
    pub blacklisted: bool,
    /// Its node under the stack's key, if any.
    pub node: Option<NodeState>,
    /// lstat() mtime of its config (None: no config).
    pub link_mtime: Option<i64>,
    /// (master pid, time) per app import: one per generation.
    pub imports: Vec<Import>,
    /// (worker pid, master pid, time) per forked worker.
    pub workers: Vec<Worker>,
}

impl VassalState {
    pub fn worker_pid(&self) -> Option<i64> {
        self.workers.last().map(|w| w.0)
    }
    /// Accepting, not cursed, and a node with death_mark 0.
    pub fn live(&self) -> bool {
        self.in_emperor
            && self.accepting
            && !self.cursed
            && self.node.as_ref().is_some_and(|n| n.death_mark == 0)
    }
}

#[derive(Clone, Debug)]
pub struct Fleet {
    pub vassals: BTreeMap<String, VassalState>,
}

impl Fleet {
    pub fn get(&self, name: &str) -> &VassalState {
        self.vassals
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in the fleet: {}", self.describe()))
    }

    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "  {:<8} {:>7} {:>8} {:>11} {:>5} {:>6} {:>5} {:>13} {:>11} {:>7} {:>7}",
            "vassal",
            "pid",
            "respawns",
            "last_mod",
            "acc",
            "cursed",
            "black",
            "node dm/ref",
            "mtime",
            "imports",
            "worker"
        );
        for v in self.vassals.values() {
            let node = match &v.node {
                Some(n) => format!("{}/{}", n.death_mark, n.refs),
                None => "-".into(),
            };
            let _ = writeln!(
                s,
                "  {:<8} {:>7} {:>8} {:>11} {:>5} {:>6} {:>5} {:>13} {:>11} {:>7} {:>7}",
                v.name,
                v.pid,
                v.respawns,
                v.last_mod,
                v.accepting as u8,
                v.cursed as u8,
                v.blacklisted as u8,
                node,
                v.link_mtime.map_or("-".into(), |m| m.to_string()),
                v.imports.len(),
                v.worker_pid().map_or("-".into(), |p| p.to_string())
            );
        }
        s
    }
}

/// Reloaded exactly once, gracefully, and live again.
pub fn check_reloaded_once(b: &VassalState, a: &VassalState) -> Result<(), String> {
    if !b.in_emperor || !b.live() {
        return Err("was not live before the rollout".into());
    }
    if !a.in_emperor {
        return Err("is not in the Emperor's stats after the rollout".into());
    }
    if a.pid != b.pid {
        return Err(format!(
            "master pid changed {} -> {} (it died and was respawned)",
            b.pid, a.pid
        ));
    }
    if a.respawns != b.respawns + 1 {
        return Err(format!(
            "respawns {} -> {}: expected exactly one reload",
            b.respawns, a.respawns
        ));
    }
    if a.last_mod <= b.last_mod {
        return Err(format!(
            "last_mod did not move ({} -> {})",
            b.last_mod, a.last_mod
        ));
    }
    if a.imports.len() != b.imports.len() + 1 {
        return Err(format!(
            "app imported {} times, expected once more than the {} before",
            a.imports.len(),
            b.imports.len()
        ));
    }
    match (b.worker_pid(), a.worker_pid()) {
        (Some(wb), Some(wa)) if wb != wa => {}
        (wb, wa) => return Err(format!("worker pid did not change ({wb:?} -> {wa:?})")),
    }
    if !a.live() {
        return Err(format!(
            "not live after the rollout (accepting {}, cursed {}, node {:?})",
            a.accepting, a.cursed, a.node
        ));
    }
    Ok(())
}

/// Not touched and still live.
pub fn check_untouched(b: &VassalState, a: &VassalState) -> Result<(), String> {
    if a.link_mtime != b.link_mtime {
        return Err(format!(
            "config mtime changed {:?} -> {:?}",
            b.link_mtime, a.link_mtime
        ));
    }
    if (a.pid, a.respawns, a.last_mod) != (b.pid, b.respawns, b.last_mod) {
        return Err(format!(
            "pid/respawns/last_mod changed ({}, {}, {}) -> ({}, {}, {})",
            b.pid, b.respawns, b.last_mod, a.pid, a.respawns, a.last_mod
        ));
    }
    if a.imports.len() != b.imports.len() || a.worker_pid() != b.worker_pid() {
        return Err("the app was restarted".into());
    }
    if !a.live() {
        return Err(format!(
            "not live after the rollout (accepting {}, node {:?})",
            a.accepting, a.node
        ));
    }
    Ok(())
}
