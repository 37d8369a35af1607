//! Shared helpers for the integration tests that drive the real binary
//! without uWSGI: temporary Emperor directories, mtime snapshots, and
//! scripted fake stats sockets (unix
//! sockets served by threads: accept, write a scripted answer, close).
//!
//! The documents follow `docs/UWSGI.md` §13.4 (Emperor) and §13.5
//! (fastrouter), key order included.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The mtime every config gets before a test runs (2020-09-13).
pub const OLD_MTIME: i64 = 1_600_000_000;

/// The fastrouter key every fake vassal subscribes under.
pub const KEY: &str = "example.com";

/// Sets the mtime (and atime) of `path` itself, not following a symlink.
pub fn set_mtime(path: &Path, secs: i64) {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let t = TimeSpec::new(secs, 0);
    utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink)
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

/// (seconds, nanoseconds) of a modification time.
pub type Mtime = (i64, i64);

/// Entry name -> (its own mtime, its link target's mtime).
pub type MtimeMap = BTreeMap<String, (Mtime, Option<Mtime>)>;

/// Every mtime a run could change: the directory's own, and for each entry
/// the entry's (lstat) and, for a link, its target's (stat).
pub fn mtimes(dir: &Path) -> MtimeMap {
    let mut out = BTreeMap::new();
    let md = std::fs::symlink_metadata(dir).expect("stat dir");
    out.insert(".".to_string(), ((md.mtime(), md.mtime_nsec()), None));
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let l = std::fs::symlink_metadata(&p).expect("lstat entry");
            let followed = std::fs::metadata(&p)
                .ok()
                .map(|m| (m.mtime(), m.mtime_nsec()));
            out.insert(
                e.file_name().to_string_lossy().into_owned(),
                ((l.mtime(), l.mtime_nsec()), followed),
            );
        }
    }
    out
}

pub fn wall_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

// ----- running the binary --------------------------------------------------

#[allow(unused_imports)]
pub use crate::binary::{run, run_cmd, Run, BIN};
pub use crate::temp_dir::TempDir;

/// User + system CPU time of a live process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/pid/stat");
    // The command name is in parentheses and may hold spaces: split after it.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = f[11].parse().expect("utime");
    let stime: u64 = f[12].parse().expect("stime");
    utime + stime
}

// ----- fake stats sockets --------------------------------------------------

/// What a fake stats socket does with one connection.
#[derive(Clone, Debug)]
pub enum Answer {
    /// Write these bytes and close, as uWSGI does.
    Bytes(Vec<u8>),
    /// Accept and never write (a stalled Emperor loop); the connection is
    /// held open until the fake is dropped.
    Silent,
    /// Write these bytes, then hold the connection open and write nothing
    /// more (a stall mid-answer).
    Stall(Vec<u8>),
    /// Write `prefix`, then filler until `total` bytes were written or the
    /// client went away, then close.
    Stream { prefix: Vec<u8>, total: usize },
    /// Write one byte of `bytes` every `every`, until done or the client
    /// went away (a peer that is slow but never silent for long).
    Trickle { bytes: Vec<u8>, every: Duration },
}

type Script = Arc<dyn Fn(usize) -> Answer + Send + Sync>;

/// A unix stats socket served by a thread; stops and removes itself on drop.
pub struct FakeSocket {
    pub path: PathBuf,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<UnixStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeSocket {
    /// Serves the same answer to every connection.
    pub fn fixed(path: &Path, answer: Answer) -> FakeSocket {
        FakeSocket::scripted(path, move |_| answer.clone())
    }

    /// Serves `script(n)` to the n-th connection (0-based): documents with
    /// `last_check = now` are built when asked.
    pub fn scripted(
        path: &Path,
        script: impl Fn(usize) -> Answer + Send + Sync + 'static,
    ) -> FakeSocket {
        let _ = std::fs::remove_file(path);
        let listener =
            UnixListener::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(script);
        let thread = {
            let (hits, stop, held) = (hits.clone(), stop.clone(), held.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let n = hits.fetch_add(1, Ordering::SeqCst);
                    let answer = script(n);
                    let held = held.clone();
                    let stop = stop.clone();
                    std::thread::spawn(move || serve_one(conn, answer, &held, &stop));
                }
            })
        };
        FakeSocket {
            path: path.to_path_buf(),
            hits,
            stop,
            held,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` connections were accepted.
    pub fn wait_hits(&self, n: usize, bound: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < bound {
            if self.hits() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

fn serve_one(mut c: UnixStream, answer: Answer, held: &Mutex<Vec<UnixStream>>, stop: &AtomicBool) {
    match answer {
        Answer::Bytes(b) => {
            let _ = c.write_all(&b);
        }
        Answer::Silent => held.lock().unwrap().push(c),
        Answer::Stall(b) => {
            let _ = c.write_all(&b);
            held.lock().unwrap().push(c);
        }
        Answer::Stream { prefix, total } => {
            if c.write_all(&prefix).is_err() {
                return;
            }
            let filler = vec![b' '; 64 * 1024];
            let mut sent = prefix.len();
            while sent < total && !stop.load(Ordering::SeqCst) {
                let n = filler.len().min(total - sent);
                if c.write_all(&filler[..n]).is_err() {
                    return;
                }
                sent += n;
            }
        }
        Answer::Trickle { bytes, every } => {
            for b in bytes {
                if stop.load(Ordering::SeqCst) || c.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(every);
            }
        }
    }
}

impl Drop for FakeSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.held.lock().unwrap().clear();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A unix socket that is listening but never accepts, with its backlog
/// already full: a connect to it blocks (or fails with EAGAIN when
/// non-blocking), as with an Emperor stuck in a hook.
pub struct FullBacklog {
    pub path: PathBuf,
    _listener: std::os::fd::OwnedFd,
    _fillers: Vec<UnixStream>,
}

impl FullBacklog {
    pub fn new(path: &Path) -> FullBacklog {
        use nix::sys::socket::{
            bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
        };
        use std::os::fd::AsRawFd;
        let _ = std::fs::remove_file(path);
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        bind(fd.as_raw_fd(), &UnixAddr::new(path).expect("addr")).expect("bind");
        listen(&fd, Backlog::new(0).expect("backlog")).expect("listen");
        // Fill the backlog with non-blocking connects until one would block.
        let mut fillers = Vec::new();
        for _ in 0..64 {
            let s = socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                None,
            )
            .expect("socket");
            let r = nix::sys::socket::connect(s.as_raw_fd(), &UnixAddr::new(path).expect("addr"));
            match r {
                Ok(()) => fillers.push(UnixStream::from(s)),
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(e) => panic!("filling the backlog of {}: {e}", path.display()),
            }
        }
        assert!(!fillers.is_empty(), "no connection fit in the backlog");
        FullBacklog {
            path: path.to_path_buf(),
            _listener: fd,
            _fillers: fillers,
        }
    }
}

impl Drop for FullBacklog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

// ----- a fake world --------------------------------------------------------

/// A temporary Emperor directory with vassal configs (all at [`OLD_MTIME`]),
/// and a place for stats sockets outside it.
pub struct World {
    pub tmp: TempDir,
    /// The Emperor directory (`<tmp>/vassals`), as given to the binary.
    pub dir: PathBuf,
    /// Its canonical path, as the Emperor reports it.
    pub canonical: String,
    pub names: Vec<String>,
    pub emperor_sock: PathBuf,
    pub fastrouter_sock: PathBuf,
}

impl World {
    /// `n` configs `app_01.ini`.. with a socket line each.
    pub fn new(tag: &str, n: usize) -> World {
        let names: Vec<String> = (1..=n).map(|i| format!("app_{i:02}.ini")).collect();
        World::with_files(tag, &names.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Regular files with these names in the Emperor directory.
    pub fn with_files(tag: &str, files: &[&str]) -> World {
        let tmp = TempDir::new(tag);
        let dir = tmp.path.join("vassals");
        std::fs::create_dir(&dir).expect("mkdir vassals");
        let mut names = Vec::new();
        for f in files {
            let p = dir.join(f);
            std::fs::write(
                &p,
                "[uwsgi]\nmaster = true\nsocket = /run/fake/%n.sock\nprocesses = 1\n",
            )
            .expect("write config");
            set_mtime(&p, OLD_MTIME);
            names.push(f.to_string());
        }
        set_mtime(&dir, OLD_MTIME);
        let canonical = std::fs::canonicalize(&dir)
            .expect("canonical")
            .to_str()
            .expect("utf-8 path")
            .to_string();
        World {
            emperor_sock: tmp.path.join("emperor-stats.sock"),
            fastrouter_sock: tmp.path.join("fr-stats.sock"),
            tmp,
            dir,
            canonical,
            names,
        }
    }

    pub fn dir_str(&self) -> &str {
        self.dir.to_str().expect("utf-8 path")
    }

    /// `--emperor-path DIR --fastrouter-stats-socket FR --emperor-stats-socket EMP`.
    pub fn base_args(&self) -> Vec<String> {
        vec![
            "--emperor-path".into(),
            self.dir_str().into(),
            "--fastrouter-stats-socket".into(),
            self.fastrouter_sock.to_str().unwrap().into(),
            "--emperor-stats-socket".into(),
            self.emperor_sock.to_str().unwrap().into(),
        ]
    }

    pub fn mtimes(&self) -> MtimeMap {
        mtimes(&self.dir)
    }

    /// The Emperor document for every config here, each vassal accepting,
    /// with the Emperor watching `watching` (normally [`World::canonical`]).
    pub fn emperor_doc_watching(&self, watching: &str) -> String {
        let vassals: Vec<String> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| vassal_json(n, 4000 + i as i64, watching))
            .collect();
        format!(
            concat!(
                "{{\"version\":\"2.0.21-debian\",\"pid\":3999,\"uid\":0,\"gid\":0,",
                "\"cwd\":{w},\"emperor\":[{w}],\"emperor_tyrant\":0,\"throttle_level\":0,",
                "\"vassals\":[{v}],\"blacklist\":[]}}"
            ),
            w = json_str(watching),
            v = vassals.join(",")
        )
    }

    pub fn emperor_doc(&self) -> String {
        self.emperor_doc_watching(&self.canonical.clone())
    }

    /// The fastrouter document: one fresh node per config, all under
    /// [`KEY`], named `/run/fake/<stem>.sock` (the default stem match).
    /// `trailing_comma` reproduces the uWSGI bug of docs/UWSGI.md §13.6.
    pub fn fastrouter_doc(&self, trailing_comma: bool) -> String {
        fastrouter_doc(&self.names, wall_now(), trailing_comma)
    }

    /// Serves a consistent world: the Emperor knows every config and
    /// watches this directory; every vassal has a fresh node.
    pub fn serve_consistent(&self, trailing_comma: bool) -> (FakeSocket, FakeSocket) {
        let emp_doc = self.emperor_doc();
        let emp = FakeSocket::fixed(&self.emperor_sock, Answer::Bytes(emp_doc.into_bytes()));
        let fr = self.serve_fastrouter(trailing_comma);
        (emp, fr)
    }

    /// The fastrouter side of [`World::serve_consistent`], rebuilt per
    /// connection so `last_check` stays fresh.
    pub fn serve_fastrouter(&self, trailing_comma: bool) -> FakeSocket {
        let names = self.names.clone();
        FakeSocket::scripted(&self.fastrouter_sock, move |_| {
            Answer::Bytes(fastrouter_doc(&names, wall_now(), trailing_comma).into_bytes())
        })
    }
}

/// The fastrouter document for configs `names`: one node per config, fresh
/// at `now`, all under [`KEY`], named `/run/fake/<stem>.sock`.
pub fn fastrouter_doc(names: &[String], now: i64, trailing_comma: bool) -> String {
    let nodes: Vec<String> = names
        .iter()
        .map(|n| {
            let stem = n.rsplit_once('.').map_or(n.as_str(), |(s, _)| s);
            node_json(&format!("/run/fake/{stem}.sock"), now)
        })
        .collect();
    format!(
        concat!(
            "{{\"version\":\"2.0.21-debian\",\"pid\":5999,\"uid\":0,\"gid\":0,\"cwd\":\"/\",",
            "\"active_sessions\":0,",
            "\"fastrouter\":[\"/run/fake/fr.sock\",\"/run/fake/sub.sock\"{tc}],",
            "\"subscriptions\":[{{\"key\":{k},\"hash\":30778,\"hits\":0,\"sni_enabled\":0,",
            "\"nodes\":[{n}]}}],\"cheap\":0}}"
        ),
        tc = if trailing_comma { ",\n\t" } else { "" },
        k = json_str(KEY),
        n = nodes.join(",")
    )
}

pub fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("json string")
}

/// One Emperor vassal record, accepting and healthy, in uWSGI's key order.
pub fn vassal_json(id: &str, pid: i64, monitor: &str) -> String {
    let t = OLD_MTIME;
    format!(
        concat!(
            "{{\"id\":{id},\"pid\":{pid},\"born\":{t},\"last_mod\":{t},\"last_heartbeat\":0,",
            "\"loyal\":1,\"ready\":1,\"accepting\":1,\"last_loyal\":{t},\"last_ready\":{t},",
            "\"last_accepting\":{t},\"first_run\":{t},\"last_run\":{t},\"cursed\":0,\"zerg\":0,",
            "\"on_demand\":\"\",\"uid\":0,\"gid\":0,\"monitor\":{m},\"respawns\":0}}"
        ),
        id = json_str(id),
        pid = pid,
        t = t,
        m = json_str(monitor)
    )
}

/// One fastrouter node, fresh at `now`, not death-marked, idle.
pub fn node_json(name: &str, now: i64) -> String {
    format!(
        concat!(
            "{{\"name\":{n},\"modifier1\":0,\"modifier2\":0,\"last_check\":{now},",
            "\"pid\":0,\"uid\":0,\"gid\":0,\"requests\":0,\"last_requests\":0,\"tx\":0,\"rx\":0,",
            "\"cores\":1,\"load\":0,\"weight\":1,\"wrr\":0,\"ref\":0,\"failcnt\":0,\"death_mark\":0}}"
        ),
        n = json_str(name),
        now = now
    )
}
