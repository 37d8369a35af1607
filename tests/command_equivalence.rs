//! `status`, `--dry-run` and a rollout read one setup by one code path
//! (`runtime/session.rs`): for the same fake stack the three print the same
//! header (`uwsgi-reload X, uWSGI ...; K per key ...; subscription
//! tolerance ...; drain via ...; timeout ...`) and the same notes, in the
//! same order, and with `--json` the same settings and note texts. The
//! stack draws every kind of note the setup says: a router config left out,
//! a server no router names, the doctor's warnings, the routers' own
//! options (an HA pair whose subscription-tolerances differ, one of them
//! `fastrouter-cheap`). The rollout runs with `--stale-since` before every
//! vassal's generation: it prints its header and notes, finds nothing
//! stale and touches nothing.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/fakes.rs"]
mod fakes;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use fakes::{run, Answer, FakeSocket, Run, World};
use serde_json::Value;

const BOUND: Duration = Duration::from_secs(30);
/// Before every fake vassal's generation (`fakes::OLD_MTIME`): all current.
const STALE_SINCE: &str = "1500000000";

/// A process whose command line reads as a fastrouter's options (what
/// `runtime/fastrouter_setup.rs` reads through the pid its stats give):
/// `sh -c 'read x' uwsgi OPTIONS...`, blocked on its stdin. Killed on drop.
struct FakeRouterProcess(Child);

impl FakeRouterProcess {
    fn spawn(options: &[String]) -> FakeRouterProcess {
        let child = std::process::Command::new("sh")
            .args(["-c", "read x", "uwsgi"])
            .args(options)
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        FakeRouterProcess(child)
    }
}

impl Drop for FakeRouterProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The fake stack, with what it must be kept alive for. Fields drop in
/// order: the sockets before the world's directory they live in (a fake
/// socket wakes its accept loop through its path).
struct Stack {
    _served: Vec<FakeSocket>,
    _processes: Vec<FakeRouterProcess>,
    _server: UnixDatagram,
    routers: Vec<PathBuf>,
    w: World,
}

/// `n` app configs subscribing to one server the routers name and one no
/// router names, a router config in the directory, and one fastrouter per
/// `options` entry (its process's command line), each knowing every node.
fn stack(tag: &str, n: usize, router_options: &[&[&str]]) -> Stack {
    let w = World::new(tag, n);
    let sub = w.tmp.path.join("sub.sock");
    let server = UnixDatagram::bind(&sub).expect("bind the subscription server");
    let elsewhere = w.tmp.path.join("elsewhere.sock");
    for name in &w.names {
        let text = format!(
            "[uwsgi]\nmaster = true\nsocket = /run/fake/%n.sock\nprocesses = 1\n\
             subscribe2 = server={},key={}\nsubscribe2 = server={},key={}\n",
            sub.display(),
            fakes::KEY,
            elsewhere.display(),
            fakes::KEY
        );
        let p = w.dir.join(name);
        std::fs::write(&p, text).unwrap();
        fakes::set_mtime(&p, fakes::OLD_MTIME);
    }
    let router_ini = w.dir.join("router.ini");
    std::fs::write(
        &router_ini,
        format!(
            "[uwsgi]\nfastrouter = /run/fake/fr.sock\nfastrouter-subscription-server = {}\n",
            sub.display()
        ),
    )
    .unwrap();
    fakes::set_mtime(&router_ini, fakes::OLD_MTIME);
    fakes::set_mtime(&w.dir, fakes::OLD_MTIME);

    let mut served = vec![FakeSocket::fixed(
        &w.emperor_sock,
        Answer::Bytes(w.emperor_doc().into_bytes()),
    )];
    let mut processes = Vec::new();
    let mut routers = Vec::new();
    for (i, opts) in router_options.iter().enumerate() {
        let mut args: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        args.extend([
            "--fastrouter-subscription-server".to_string(),
            sub.to_str().unwrap().to_string(),
        ]);
        let p = FakeRouterProcess::spawn(&args);
        let pid = p.0.id();
        processes.push(p);
        let path = w.tmp.path.join(format!("fr-{i}.sock"));
        let names = w.names.clone();
        served.push(FakeSocket::scripted(&path, move |_| {
            let doc = fakes::fastrouter_doc(&names, fakes::wall_now(), false);
            Answer::Bytes(
                doc.replacen("\"pid\":5999", &format!("\"pid\":{pid}"), 1)
                    .into_bytes(),
            )
        }));
        routers.push(path);
    }
    Stack {
        _served: served,
        _processes: processes,
        _server: server,
        routers,
        w,
    }
}

impl Stack {
    /// The command line of `command` ("status", "dry-run", "rollout").
    fn args(&self, command: &str, extra: &[&str]) -> Vec<String> {
        let mut a = Vec::new();
        if command == "status" {
            a.push("status".to_string());
        }
        a.extend([
            "--emperor-path".to_string(),
            self.w.dir_str().to_string(),
            "--emperor-stats-socket".to_string(),
            self.w.emperor_sock.to_str().unwrap().to_string(),
        ]);
        for r in &self.routers {
            a.push("--fastrouter-stats-socket".to_string());
            a.push(r.to_str().unwrap().to_string());
        }
        a.extend(["--stale-since", STALE_SINCE, "--stats-timeout", "5"].map(String::from));
        if command == "dry-run" {
            a.push("--dry-run".to_string());
        }
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }
}

/// A line as written, without the journal's `<N>` priority prefix.
fn plain(line: &str) -> &str {
    match line.strip_prefix('<') {
        Some(rest) if rest.find('>') == Some(1) => &rest[2..],
        _ => line,
    }
}

/// What a human report says of the setup: its header line, and its notes
/// on stdout and on stderr, each in order (a note is a whole line starting
/// `note:` or `warning:`; the engine's events carry their time first).
#[derive(Debug, PartialEq, Eq)]
struct Said {
    header: String,
    notes_out: Vec<String>,
    notes_err: Vec<String>,
}

fn said(r: &Run) -> Said {
    let notes = |text: &str| -> Vec<String> {
        text.lines()
            .map(plain)
            .filter(|l| l.starts_with("note: ") || l.starts_with("warning: "))
            .map(str::to_string)
            .collect()
    };
    let header = r
        .stdout
        .lines()
        .find(|l| l.starts_with("uwsgi-reload "))
        .unwrap_or_else(|| panic!("no header\n{}", r.describe()))
        .to_string();
    Said {
        header,
        notes_out: notes(&r.stdout),
        notes_err: notes(&r.stderr),
    }
}

/// The same with `--json`: the settings and versions of the run, and the
/// note texts (status: its `notes`; the others: their `note` events).
fn said_json(command: &str, r: &Run) -> (Value, Value, Vec<String>) {
    let objs: Vec<Value> = if command == "status" {
        vec![serde_json::from_str(r.stdout.trim())
            .unwrap_or_else(|e| panic!("status --json: {e}\n{}", r.describe()))]
    } else {
        r.events()
    };
    // A dry run that finds nothing stale ends with the rollout's summary
    // (no waves to write); one with a plan writes `dry_run`.
    let carrier = match command {
        "status" => &objs[0],
        _ => objs
            .iter()
            .find(|o| o["event"] == "dry_run" || o["event"] == "summary")
            .unwrap_or_else(|| panic!("{command}: no summary\n{}", r.describe())),
    };
    let notes: Vec<String> = if command == "status" {
        carrier["notes"]
            .as_array()
            .expect("status notes")
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    } else {
        objs.iter()
            .filter(|o| o["event"] == "note")
            .map(|o| o["message"].as_str().unwrap().to_string())
            .collect()
    };
    (
        carrier["settings"].clone(),
        carrier["uwsgi_version"].clone(),
        notes,
    )
}

/// Runs the three commands on `s` and checks they say the same; returns
/// what they said.
fn the_three_agree(s: &Stack) -> Said {
    let before = s.w.mtimes();
    let mut said_by = Vec::new();
    let mut json_by = Vec::new();
    for command in ["status", "dry-run", "rollout"] {
        let r = run(&s.args(command, &[]), BOUND);
        assert_eq!(r.code, Some(0), "{command}\n{}", r.describe());
        said_by.push((command, said(&r), r.describe()));
        let r = run(&s.args(command, &["--json"]), BOUND);
        assert_eq!(r.code, Some(0), "{command} --json\n{}", r.describe());
        json_by.push((command, said_json(command, &r), r.describe()));
    }
    assert_eq!(s.w.mtimes(), before, "a config was touched");
    let (_, first, first_out) = &said_by[0];
    for (command, other, out) in &said_by[1..] {
        assert_eq!(
            first, other,
            "status and {command} say different things of one setup\n--- status\n{first_out}\n--- {command}\n{out}"
        );
    }
    let (_, first_json, first_out) = &json_by[0];
    for (command, other, out) in &json_by[1..] {
        assert_eq!(
            first_json, other,
            "status --json and {command} --json differ\n--- status\n{first_out}\n--- {command}\n{out}"
        );
    }
    // The human notes are the JSON notes, in the same order per stream.
    let (settings, _, json_notes) = first_json;
    let human: Vec<&String> = first.notes_out.iter().chain(&first.notes_err).collect();
    let mut sorted_json: Vec<&String> = json_notes.iter().collect();
    let mut sorted_human = human.clone();
    sorted_json.sort();
    sorted_human.sort();
    assert_eq!(sorted_human, sorted_json, "{first_out}");
    assert!(settings.is_object(), "{first_out}");
    said_by.swap_remove(0).1
}

/// An HA pair (two `--fastrouter-stats-socket`s) whose routers' own
/// tolerances differ (30 s and 40 s: the smallest counts), the first one
/// `fastrouter-cheap`.
#[test]
fn status_dry_run_and_rollout_say_the_same_of_an_ha_pair() {
    let s = stack(
        "equiv-ha",
        3,
        &[
            &["--subscription-tolerance", "30", "--fastrouter-cheap"],
            &["--subscription-tolerance=40"],
        ],
    );
    let said = the_three_agree(&s);
    let sub = s.w.tmp.path.join("sub.sock");
    let h = &said.header;
    assert!(
        h.contains("uWSGI 2.0.21-debian (emperor, fastrouter)"),
        "{h}"
    );
    assert!(h.contains("subscription tolerance 30 s;"), "{h}");
    assert!(
        h.contains(&format!("drain via {} up to", sub.display())),
        "{h}"
    );
    assert!(h.contains("(--stale-since)"), "{h}");
    let all: Vec<&String> = said.notes_out.iter().chain(&said.notes_err).collect();
    let has = |what: &str| all.iter().any(|n| n.contains(what));
    let cheap = format!(
        "the fastrouter behind {} runs with fastrouter-cheap",
        s.routers[0].display()
    );
    for what in [
        "router.ini run(s) a fastrouter",
        "elsewhere.sock: named by a vassal config",
        "subscription-tolerances differ (30 s on ",
        cheap.as_str(),
    ] {
        assert!(has(what), "no note with {what:?}: {said:#?}");
    }
    // The doctor's warnings (these configs lack need-app, ...).
    assert!(
        said.notes_err
            .iter()
            .any(|n| n.starts_with("warning: ") && !n.contains("fastrouter")),
        "{said:#?}"
    );
}

/// One router: the same, with its tolerance learnt from its command line.
#[test]
fn status_dry_run_and_rollout_say_the_same_of_one_router() {
    let s = stack("equiv-one", 2, &[&["--subscription-tolerance", "25"]]);
    let said = the_three_agree(&s);
    assert!(
        said.header.contains("subscription tolerance 25 s;"),
        "{said:#?}"
    );
    assert!(
        said.notes_out.iter().any(|n| n.contains(
            "the fastrouter's subscription-tolerance is 25 s (from the fastrouter's command line)"
        )),
        "{said:#?}"
    );
}

/// A rollout that had to wait for its lock (`--wait-lock`) sets itself up
/// again once it holds it: while the other instance held the lock, its
/// rollout restarted the fastrouter with another `subscription-tolerance`
/// (here: the router's stats now give the pid of a process whose command
/// line says 45 instead of 30). The header must say 45: the setup read
/// before the wait is older than the other instance's rollout.
#[test]
fn a_rollout_that_waited_for_its_lock_sets_up_again() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    let w = World::new("waitlock", 2);
    let old = FakeRouterProcess::spawn(&["--subscription-tolerance".into(), "30".into()]);
    let new = FakeRouterProcess::spawn(&["--subscription-tolerance".into(), "45".into()]);
    let pid = Arc::new(AtomicU32::new(old.0.id()));
    let _emp = FakeSocket::fixed(&w.emperor_sock, Answer::Bytes(w.emperor_doc().into_bytes()));
    let names = w.names.clone();
    let served = pid.clone();
    let _fr = FakeSocket::scripted(&w.fastrouter_sock, move |_| {
        let doc = fakes::fastrouter_doc(&names, fakes::wall_now(), false);
        let p = served.load(Ordering::SeqCst);
        Answer::Bytes(
            doc.replacen("\"pid\":5999", &format!("\"pid\":{p}"), 1)
                .into_bytes(),
        )
    });
    // The other instance: the lock file the tool uses for this directory,
    // held by the test.
    let locks = w.tmp.path.join("locks");
    std::fs::create_dir(&locks).unwrap();
    std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o700)).unwrap();
    let meta = std::fs::metadata(&w.dir).unwrap();
    let lock_file =
        std::fs::File::create(locks.join(format!("{}-{}.lock", meta.dev(), meta.ino()))).unwrap();
    #[allow(deprecated)]
    nix::fcntl::flock(lock_file.as_raw_fd(), nix::fcntl::FlockArg::LockExclusive).unwrap();

    let mut args = w.base_args();
    args.extend(["--stale-since", STALE_SINCE, "--wait-lock", "10"].map(String::from));
    let locks_env = locks.clone();
    let tool = binary::Tool::spawn_with(args, move |c| {
        c.env("UWSGI_RELOAD_LOCK_DIR", &locks_env);
    });
    // The tool has read the routers and waits for the lock; the router is
    // restarted with its new options, then the lock is released.
    std::thread::sleep(Duration::from_millis(800));
    pid.store(new.0.id(), Ordering::SeqCst);
    drop(lock_file);
    let r = tool.wait(BOUND);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    assert!(
        r.stdout.contains("subscription tolerance 45 s"),
        "the setup read before the wait was kept: {}",
        r.describe()
    );
}
