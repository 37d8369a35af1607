//! Starting a stack (configs written from the templates, the processes
//! spawned), waiting until every vassal is ready (repairing the race of
//! docs/UWSGI.md §9.6), the log tails for failure messages, and stopping.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{repo_root, tail, vassal_name, StackSpec};
use crate::temp_dir::TempDir;

/// One stack at a time in this process: stacks compete for 2 cores, and a
/// rollout's timing must not depend on a neighbour's.
static E2E_LOCK: Mutex<()> = Mutex::new(());

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
    /// The directory `dir`: removed after everything above is stopped,
    /// unless kept.
    tmp: TempDir,
    // last: released after everything above is stopped
    _lock: MutexGuard<'static, ()>,
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

impl Stack {
    /// Starts the stack and waits until every vassal accepts and is
    /// subscribed, and nginx answers. Panics (after stopping what it started)
    /// if that does not happen within a minute or so.
    pub fn start(spec: StackSpec) -> Stack {
        let lock = E2E_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        super::uwsgi_under_test::require_bin();
        require_program("nginx");
        let tmp = TempDir::new("e2e");
        let dir = tmp.path.clone();
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
            tmp,
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
}

impl Stack {
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
            self.tmp.keep();
        }
    }
}
