//! Several "hosts" behind ONE fastrouter: each host is an Emperor in its own
//! directory (its own vassal dir, Emperor stats socket, vassal sockets, FIFOs
//! and logs), and every vassal of every host subscribes to the subscription
//! server of one standalone fastrouter, with nginx in front of it. Node names
//! differ between hosts because each host's sockets live in its own directory
//! (`<base>/host-a/app_01.sock`, `<base>/host-b/app_01.sock`): the same config
//! names on every host, as a fleet deployed by Ansible has.
//!
//! Built from the files of `examples/stack/` (the same ones the single-host
//! harness in `tests/support/stack/stack.rs` uses): the Emperor config minus its
//! fastrouter lines, the fastrouter lines alone in a config of their own, the
//! vassal config with its `subscribe2 server=` pointed at the shared
//! subscription server.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{symlink, MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use uwsgi_reload::stats::{EmperorSnapshot, FastrouterSnapshot};

use crate::stack::tail;
use crate::stack::{read_stats, repo_root, vassal_name, Fleet, NodeState, VassalState};

/// One host: an Emperor and its vassals.
pub struct Host {
    /// "a", "b", ...
    pub id: String,
    pub dir: PathBuf,
    /// Vassal stems, `app_01` ...
    pub names: Vec<String>,
    emperor: Option<Child>,
}

impl Host {
    pub fn vassals_dir(&self) -> PathBuf {
        self.dir.join("vassals")
    }
    pub fn emperor_stats_path(&self) -> PathBuf {
        self.dir.join("emperor-stats.sock")
    }
    pub fn config_path(&self, name: &str) -> PathBuf {
        self.vassals_dir().join(format!("{name}.ini"))
    }
    /// The node name the fastrouter shows for this host's vassal `name`.
    pub fn node_name(&self, name: &str) -> String {
        format!("{}/{name}.sock", self.dir.display())
    }
    pub fn fifo_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.fifo"))
    }
    pub fn vassal_log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }
    pub fn emperor_stats(&self) -> Result<EmperorSnapshot, String> {
        let b = read_stats(&self.emperor_stats_path())?;
        EmperorSnapshot::parse(&b).map_err(|e| format!("host {} emperor stats: {e:?}", self.id))
    }
}

/// The whole multi-host fleet. Dropping it stops everything it started.
pub struct MultiHost {
    pub dir: PathBuf,
    pub port: u16,
    pub key: String,
    pub hosts: Vec<Host>,
    fastrouter: Option<Child>,
    nginx: Option<Child>,
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn template(f: &str) -> String {
    fs::read_to_string(repo_root().join("examples/stack").join(f))
        .unwrap_or_else(|e| panic!("examples/stack/{f}: {e}"))
}

/// The option name of an ini line (`fastrouter-stats-server = x` ->
/// `fastrouter-stats-server`), None for comments and sections.
fn ini_key(line: &str) -> Option<&str> {
    let l = line.trim();
    if l.is_empty() || l.starts_with(';') || l.starts_with('#') || l.starts_with('[') {
        return None;
    }
    Some(l.split('=').next().unwrap_or("").trim())
}

fn wait_child(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => return false,
        }
    }
}

fn stop_group(child: &mut Option<Child>, first: Signal, grace: Duration) {
    if let Some(mut c) = child.take() {
        let pg = Pid::from_raw(-(c.id() as i32));
        let _ = kill(Pid::from_raw(c.id() as i32), first);
        if !wait_child(&mut c, grace) {
            let _ = kill(pg, Signal::SIGKILL);
            let _ = c.wait();
        }
        let _ = kill(pg, Signal::SIGKILL);
    }
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let f = fs::File::create(log).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"))
}

impl MultiHost {
    /// Starts the fastrouter, one Emperor per `(id, vassal numbers)` (3 ->
    /// `app_03.ini`), and nginx; waits until every vassal of every host
    /// accepts and has a live node.
    pub fn start(key: &str, hosts: &[(&str, &[usize])]) -> MultiHost {
        let base = std::env::var_os("E2E_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let mut n = 0;
        let dir = loop {
            let d = base.join(format!("ur-fleet-{}-{n}", std::process::id()));
            if fs::create_dir(&d).is_ok() {
                break d;
            }
            n += 1;
        };
        for sub in ["logs", "nginx-temp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let base_s = dir.to_str().expect("utf-8 temp dir").to_string();
        let user = current_user();
        let mut mh = MultiHost {
            dir: dir.clone(),
            port: 0,
            key: key.to_string(),
            hosts: Vec::new(),
            fastrouter: None,
            nginx: None,
        };

        // ---- the shared fastrouter: the fastrouter lines of emperor.ini ----
        let emperor_t = template("emperor.ini");
        let mut fr_ini = String::from("[uwsgi]\nplugins = fastrouter\nmaster = true\n");
        for line in emperor_t.lines() {
            if ini_key(line).is_some_and(|k| k.starts_with("fastrouter")) {
                fr_ini.push_str(&line.replace("@STACK_DIR@", &base_s));
                fr_ini.push('\n');
            }
        }
        assert!(
            fr_ini.contains("fastrouter-subscription-server")
                && fr_ini.contains("fastrouter-stats-server"),
            "examples/stack/emperor.ini lost its fastrouter lines:\n{fr_ini}"
        );
        let _ = writeln!(
            fr_ini,
            "pidfile = {base_s}/fastrouter.pid\nlogto = {base_s}/logs/fastrouter.log"
        );
        fs::write(dir.join("fastrouter.ini"), &fr_ini).unwrap();
        let fr = spawn_logged(
            Command::new(crate::stack::uwsgi_under_test::bin())
                .arg("--ini")
                .arg(dir.join("fastrouter.ini"))
                .current_dir(&dir),
            &dir.join("logs/fastrouter.out"),
        );
        mh.fastrouter = Some(fr);
        let ok = crate::stack::poll(Duration::from_secs(20), Duration::from_millis(50), || {
            read_stats(&mh.fastrouter_stats_path()).ok()
        });
        if ok.is_none() {
            panic!("the fastrouter did not come up\n{}", mh.diagnostics());
        }

        // ---- the hosts ----
        let vassal_t = crate::stack::uwsgi_under_test::adapt_vassal_ini(&template("vassal.ini"));
        let app = template("app.py");
        for (id, numbers) in hosts {
            let hdir = dir.join(format!("host-{id}"));
            for sub in ["vassals", "logs", "state"] {
                fs::create_dir_all(hdir.join(sub)).unwrap();
            }
            let h_s = hdir.to_str().unwrap().to_string();
            // the Emperor without the fastrouter
            let mut emp = String::new();
            for line in emperor_t.lines() {
                match ini_key(line) {
                    Some(k) if k.starts_with("fastrouter") || k == "plugins" => {}
                    _ => {
                        emp.push_str(&line.replace("@STACK_DIR@", &h_s));
                        emp.push('\n');
                    }
                }
            }
            fs::write(hdir.join("emperor.ini"), emp).unwrap();
            // the vassals subscribe to the shared subscription server
            let own = format!("server={h_s}/subscription.sock");
            let shared = format!("server={base_s}/subscription.sock");
            let v = vassal_t.replace("@STACK_DIR@", &h_s).replace("@KEY@", key);
            assert!(
                v.contains(&own),
                "examples/stack/vassal.ini has no `subscribe2 = {own}`"
            );
            fs::write(hdir.join("vassal.ini"), v.replace(&own, &shared)).unwrap();
            fs::write(hdir.join("app.py"), &app).unwrap();
            let names: Vec<String> = numbers.iter().copied().map(vassal_name).collect();
            for name in &names {
                symlink(
                    "../vassal.ini",
                    hdir.join("vassals").join(format!("{name}.ini")),
                )
                .unwrap();
            }
            let emperor = spawn_logged(
                Command::new(crate::stack::uwsgi_under_test::bin())
                    .arg("--ini")
                    .arg(hdir.join("emperor.ini"))
                    .current_dir(&hdir)
                    .env("APP_IMPORT_DELAY", "0"),
                &hdir.join("logs/emperor.out"),
            );
            mh.hosts.push(Host {
                id: id.to_string(),
                dir: hdir,
                names,
                emperor: Some(emperor),
            });
        }

        // ---- nginx in front of the fastrouter ----
        let nginx_t = template("nginx.conf");
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let conf = nginx_t
                .replace("@STACK_DIR@", &base_s)
                .replace("@KEY@", key)
                .replace("@PORT@", &port.to_string())
                .replace("@USER@", &user);
            fs::write(dir.join("nginx.conf"), conf).unwrap();
            let mut child = spawn_logged(
                Command::new("nginx")
                    .arg("-p")
                    .arg(&dir)
                    .arg("-c")
                    .arg(dir.join("nginx.conf"))
                    .arg("-e")
                    .arg(dir.join("logs/nginx-error.log"))
                    .current_dir(&dir),
                &dir.join("logs/nginx.out"),
            );
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let up = crate::stack::poll(Duration::from_secs(10), Duration::from_millis(50), || {
                if let Ok(Some(st)) = child.try_wait() {
                    return Some(Err(format!("nginx exited with {st}")));
                }
                TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                    .is_ok()
                    .then_some(Ok(()))
            });
            match up {
                Some(Ok(())) => {
                    mh.port = port;
                    mh.nginx = Some(child);
                    break;
                }
                other => {
                    last_err = format!("{other:?}");
                    let _ = kill(Pid::from_raw(-(child.id() as i32)), Signal::SIGKILL);
                    let _ = child.wait();
                }
            }
        }
        if mh.nginx.is_none() {
            panic!("cannot start nginx: {last_err}\n{}", mh.diagnostics());
        }

        if let Err(e) = mh.wait_ready(Duration::from_secs(60)) {
            panic!(
                "the multi-host fleet did not come up: {e}\n{}",
                mh.diagnostics()
            );
        }
        let http = crate::stack::poll(Duration::from_secs(20), Duration::from_millis(100), || {
            crate::stack::load::get(mh.port, "/", Duration::from_secs(5)).ok()
        });
        if http.is_none() {
            panic!("nginx does not answer 200\n{}", mh.diagnostics());
        }
        mh
    }

    pub fn host(&self, id: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.id == id)
            .unwrap_or_else(|| panic!("no host {id}"))
    }
    pub fn fastrouter_stats_path(&self) -> PathBuf {
        self.dir.join("fastrouter-stats.sock")
    }
    pub fn fastrouter_stats(&self) -> Result<FastrouterSnapshot, String> {
        let b = read_stats(&self.fastrouter_stats_path())?;
        FastrouterSnapshot::parse(&b).map_err(|e| format!("fastrouter stats: {e:?}"))
    }

    /// The uwsgi_reload.py arguments for one host: its directory and Emperor
    /// stats socket, the shared fastrouter's stats socket.
    pub fn tool_args(&self, id: &str) -> Vec<String> {
        let h = self.host(id);
        vec![
            "--emperor-path".into(),
            h.vassals_dir().display().to_string(),
            "--fastrouter-stats-socket".into(),
            self.fastrouter_stats_path().display().to_string(),
            "--emperor-stats-socket".into(),
            h.emperor_stats_path().display().to_string(),
        ]
    }

    /// Whether the current generation of a vassal unblocked its
    /// subscriptions (the single-host harness's test of docs/UWSGI.md §9.6).
    fn subscriptions_unblocked(h: &Host, name: &str) -> bool {
        let log = fs::read_to_string(h.vassal_log(name)).unwrap_or_default();
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

    /// Waits until every vassal of every host accepts and has a live node,
    /// writing `S` to the FIFO of one that accepts but stays unsubscribed
    /// with blocked subscriptions (docs/UWSGI.md §9.6), as the single-host harness.
    pub fn wait_ready(&self, timeout: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + timeout;
        let mut accepting_since: HashMap<String, Instant> = HashMap::new();
        let mut repaired_at: HashMap<String, Instant> = HashMap::new();
        let mut repairs = Vec::new();
        loop {
            let mut pending = Vec::new();
            match self.fastrouter_stats() {
                Err(e) => pending.push(e),
                Ok(fr) => {
                    for h in &self.hosts {
                        let emp = match h.emperor_stats() {
                            Ok(e) => e,
                            Err(e) => {
                                pending.push(e);
                                continue;
                            }
                        };
                        for name in &h.names {
                            let tag = format!("{}:{name}", h.id);
                            let accepting = emp
                                .vassal(&format!("{name}.ini"))
                                .is_some_and(|v| v.accepting == 1 && v.cursed == 0);
                            let node = h.node_name(name);
                            let live = fr
                                .nodes()
                                .any(|(k, n)| k == self.key && n.name == node && n.death_mark == 0);
                            if accepting && live {
                                accepting_since.remove(&tag);
                                continue;
                            }
                            pending.push(format!("{tag}: accepting {accepting}, live node {live}"));
                            if accepting {
                                let since = *accepting_since
                                    .entry(tag.clone())
                                    .or_insert_with(Instant::now);
                                let recently = repaired_at
                                    .get(&tag)
                                    .is_some_and(|t| t.elapsed() < Duration::from_secs(12));
                                if since.elapsed() > Duration::from_secs(4)
                                    && !recently
                                    && !Self::subscriptions_unblocked(h, name)
                                {
                                    eprintln!("[e2e fleet] {tag} accepts, not subscribed (docs/UWSGI.md §9.6): writing S");
                                    let w = fs::OpenOptions::new()
                                        .write(true)
                                        .custom_flags(nix::libc::O_NONBLOCK)
                                        .open(h.fifo_path(name))
                                        .and_then(|mut f| f.write_all(b"S"));
                                    if w.is_ok() {
                                        repaired_at.insert(tag.clone(), Instant::now());
                                        repairs.push(tag.clone());
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if pending.is_empty() {
                return Ok(repairs);
            }
            if Instant::now() > deadline {
                return Err(format!("still waiting for: {}", pending.join("; ")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The real state of one host's vassals (same record as the single-host
    /// harness, so its reloaded/untouched checks apply).
    pub fn fleet(&self, id: &str) -> Fleet {
        let h = self.host(id);
        let mut last = String::new();
        for _ in 0..3 {
            match (h.emperor_stats(), self.fastrouter_stats()) {
                (Ok(emp), Ok(fr)) => {
                    let mut vassals = BTreeMap::new();
                    for name in &h.names {
                        let v = emp.vassal(&format!("{name}.ini"));
                        let node_name = h.node_name(name);
                        let node = fr
                            .nodes()
                            .find(|(k, n)| *k == self.key && n.name == node_name)
                            .map(|(_, n)| NodeState {
                                death_mark: n.death_mark,
                                last_check: n.last_check,
                                refs: n.refs,
                                requests: n.requests,
                            });
                        let link_mtime = fs::symlink_metadata(h.config_path(name))
                            .ok()
                            .map(|m| m.mtime());
                        let (imports, workers) =
                            read_app_log(&h.dir.join("state").join(format!("{name}.log")));
                        vassals.insert(
                            name.clone(),
                            VassalState {
                                name: name.clone(),
                                in_emperor: v.is_some(),
                                pid: v.map_or(0, |v| v.pid),
                                respawns: v.map_or(-1, |v| v.respawns),
                                last_mod: v.map_or(0, |v| v.last_mod),
                                accepting: v.is_some_and(|v| v.accepting == 1),
                                cursed: v.is_some_and(|v| v.cursed != 0),
                                blacklisted: emp.blacklisted(&format!("{name}.ini")).is_some(),
                                node,
                                link_mtime,
                                imports,
                                workers,
                            },
                        );
                    }
                    return Fleet { vassals };
                }
                (Err(e), _) | (_, Err(e)) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "cannot read the stats of host {id}: {last}\n{}",
            self.diagnostics()
        );
    }

    pub fn diagnostics(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "---- multi-host fleet {} (port {}) ----",
            self.dir.display(),
            self.port
        );
        let mut files = vec![
            self.dir.join("logs/fastrouter.log"),
            self.dir.join("logs/nginx-error.log"),
        ];
        for h in &self.hosts {
            files.push(h.dir.join("logs/emperor.log"));
            for n in &h.names {
                files.push(h.vassal_log(n));
            }
        }
        for f in files {
            if let Ok(t) = fs::read_to_string(&f) {
                let _ = writeln!(s, "---- {} ----\n{}", f.display(), tail(&t, 20));
            }
        }
        s
    }

    pub fn stop(&mut self) {
        stop_group(&mut self.nginx, Signal::SIGQUIT, Duration::from_secs(2));
        for h in &mut self.hosts {
            stop_group(&mut h.emperor, Signal::SIGINT, Duration::from_secs(6));
        }
        stop_group(&mut self.fastrouter, Signal::SIGINT, Duration::from_secs(3));
    }
}

impl Drop for MultiHost {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking {
            eprintln!("{}", self.diagnostics());
        }
        self.stop();
        if panicking || std::env::var_os("E2E_KEEP").is_some() {
            eprintln!("[e2e fleet] kept {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// (master pid, time) per app import.
type Imports = Vec<(i64, f64)>;
/// (worker pid, master pid, time) per forked worker.
type Workers = Vec<(i64, i64, f64)>;

/// `import` and `worker` lines of the app's state log (see app.py).
fn read_app_log(path: &Path) -> (Imports, Workers) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut imports = Vec::new();
    let mut workers = Vec::new();
    for line in text.lines() {
        let f: HashMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let num = |k: &str| f.get(k).and_then(|v| v.parse::<f64>().ok());
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
