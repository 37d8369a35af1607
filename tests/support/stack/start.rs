//! Starting a stack (configs written from the templates, the processes
//! spawned), waiting until every vassal is ready (repairing the race of
//! docs/UWSGI.md §9.6), the log tails for failure messages, and stopping.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{configs, tail, vassal_name, Host, StackSpec};
use crate::temp_dir::TempDir;

/// One stack at a time in this process: stacks compete for 2 cores, and a
/// rollout's timing must not depend on a neighbour's.
static E2E_LOCK: Mutex<()> = Mutex::new(());

/// A running stack. Dropping it stops everything it started.
pub struct Stack {
    pub dir: PathBuf,
    pub port: u16,
    pub key: String,
    /// The vassals the (first) host was started with.
    pub names: Vec<String>,
    pub spec: StackSpec,
    /// Repairs of the docs/UWSGI.md §9.6 race done while waiting for the
    /// stack to come up.
    pub start_repairs: Vec<String>,
    /// The Emperors: one, or one per `StackSpec::host`.
    pub hosts: Vec<Host>,
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
        for sub in ["logs", "nginx-temp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let user = current_user();
        // One host in the stack's own directory, or `host-<id>/` per host.
        let hosts: Vec<Host> = if spec.hosts.is_empty() {
            let names = (1..=spec.vassals).map(vassal_name).collect();
            vec![configs::write_host(
                &spec,
                "",
                dir.clone(),
                &dir,
                names,
                &user,
            )]
        } else {
            assert!(
                spec.standalone_fastrouter && !spec.two_fastrouters && !spec.fastrouter_vassal,
                "hosts share one standalone fastrouter"
            );
            spec.hosts
                .iter()
                .map(|(id, numbers)| {
                    let names = numbers.iter().copied().map(vassal_name).collect();
                    let host_dir = dir.join(format!("host-{id}"));
                    configs::write_host(&spec, id, host_dir, &dir, names, &user)
                })
                .collect()
        };
        configs::write_routers(&spec, &dir, &user);
        let mut stack = Stack {
            dir: dir.clone(),
            port: 0,
            key: spec.key.clone(),
            names: hosts[0].names.clone(),
            spec: spec.clone(),
            start_repairs: Vec::new(),
            hosts,
            nginx: None,
            fastrouter: Mutex::new(None),
            fastrouter_b: Mutex::new(None),
            tmp,
            _lock: lock,
        };
        if spec.standalone_fastrouter {
            if let Err(e) = stack
                .start_fastrouter()
                .and_then(|()| stack.start_fastrouter_b())
            {
                panic!("{e}\n{}", stack.diagnostics());
            }
        }

        for host in &mut stack.hosts {
            let log = fs::File::create(host.dir.join("logs/emperor.out")).unwrap();
            let emperor = Command::new(super::uwsgi_under_test::bin())
                .arg("--ini")
                .arg(host.dir.join("emperor.ini"))
                .current_dir(&host.dir)
                .env("APP_IMPORT_DELAY", spec.import_delay_secs.to_string())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .process_group(0)
                .spawn()
                .expect("start uwsgi");
            host.emperor = Some(emperor);
        }
        stack.start_nginx(&user);

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

    fn start_nginx(&mut self, user: &str) {
        let from = super::topology::template_path(&self.spec, "nginx.conf");
        let template =
            fs::read_to_string(&from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
        let template = super::topology::adapt_nginx(&self.spec, template);
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            fs::write(
                self.dir.join("nginx.conf"),
                configs::substitute(&template, &self.dir, &self.key, port, user),
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
            let mut pending = Vec::new();
            for host in &self.hosts {
                let (emp, fr) = match self.both_stats(host) {
                    Ok(x) => x,
                    Err(e) => {
                        pending.push(e);
                        continue;
                    }
                };
                for name in &host.config_names() {
                    let tag = host.tag(name);
                    let v = emp.vassal(&host.config_file(name));
                    let accepting = v.is_some_and(|v| v.accepting == 1 && v.cursed == 0);
                    let node = host.node_name(name);
                    let live = fr
                        .nodes()
                        .any(|(k, n)| k == self.key && n.name == node && n.death_mark == 0)
                        && self.live_on_other_routers(name);
                    if accepting && live {
                        accepting_since.remove(&tag);
                        continue;
                    }
                    pending.push(format!(
                        "{tag}: {}, {}",
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
                            .entry(tag.clone())
                            .or_insert_with(Instant::now);
                        let recently = repaired_at
                            .get(&tag)
                            .is_some_and(|t| t.elapsed() < Duration::from_secs(12));
                        if since.elapsed() > Duration::from_secs(4)
                            && !recently
                            && !host.subscriptions_unblocked(name)
                        {
                            eprintln!(
                                "[e2e harness] {tag} accepts but is not subscribed and its subscriptions are \
                                 blocked (docs/UWSGI.md §9.6): writing S to its FIFO"
                            );
                            match host.write_fifo(name, "S") {
                                Ok(()) => {
                                    repaired_at.insert(tag.clone(), Instant::now());
                                    repairs.push(tag);
                                }
                                Err(e) => {
                                    eprintln!("[e2e harness] writing S to {tag}'s FIFO: {e}")
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
            for host in &mut self.hosts {
                if let Some(Ok(Some(st))) = host.emperor.as_mut().map(Child::try_wait) {
                    let of = if host.id.is_empty() {
                        String::new()
                    } else {
                        format!(" of host {}", host.id)
                    };
                    return Err(format!("the Emperor{of} exited with {st}"));
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
            self.dir.join("logs/fastrouter.log"),
            self.dir.join("logs/fastrouter-b.log"),
            self.dir.join("logs/nginx-error.log"),
        ];
        for host in &self.hosts {
            files.push(host.dir.join("logs/emperor.log"));
            for n in host.config_names() {
                files.push(host.vassal_log(&n));
            }
        }
        for f in files {
            if let Ok(t) = fs::read_to_string(&f) {
                let _ = writeln!(s, "---- {} ----\n{}", f.display(), tail(&t, 25));
            }
        }
        s
    }

    /// Stops nginx and the Emperors (SIGINT, then SIGKILL of each one's
    /// process group), then the standalone fastrouter(s). Idempotent.
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
        let emperors: Vec<Child> = self
            .hosts
            .iter_mut()
            .filter_map(|h| h.emperor.take())
            .collect();
        // SIGINT: each Emperor stops every vassal, then exits (~4 s)
        for e in &emperors {
            let _ = kill(Pid::from_raw(e.id() as i32), Signal::SIGINT);
        }
        for mut e in emperors {
            let pg = Pid::from_raw(-(e.id() as i32));
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
