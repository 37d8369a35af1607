//! Preflight proves the rollout may act before anything is drained or
//! touched: a config this process may not set the mtime of, a subscription
//! server it may not send to, a master FIFO it may not write (repair on) is
//! ONE line naming the file and the missing right, exit 3; no stats socket
//! was read, the subscription server received nothing, no mtime changed.
//! The binary runs as uid/gid 65534 (nobody); the tests run as root, which
//! creates the files with the owners each row needs.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/fakes.rs"]
mod fakes;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use fakes::{run_cmd, World};

const BOUND: Duration = Duration::from_secs(20);
const NOBODY: u32 = 65534;

struct Row {
    what: &'static str,
    /// The configs belong to nobody (else to root).
    configs_ours: bool,
    /// The subscription server's socket mode (root-owned).
    server_mode: u32,
    /// The master FIFO's mode (root-owned).
    fifo_mode: u32,
    extra: &'static [&'static str],
    /// Fragments of the one stderr line (`{dir}`, `{sub}`, `{fifo}`); empty:
    /// the checks pass.
    must: &'static [&'static str],
    code: i32,
}

const ROWS: &[Row] = &[
    Row {
        what: "a config owned by root, run as nobody",
        configs_ours: false,
        server_mode: 0o666,
        fifo_mode: 0o666,
        extra: &[],
        must: &[
            "{dir}/app_01.ini",
            "may not set its mtime",
            "uid 0",
            "uid 65534",
        ],
        code: 3,
    },
    Row {
        what: "a subscription server nobody may send to",
        configs_ours: true,
        server_mode: 0o600,
        fifo_mode: 0o666,
        extra: &[],
        must: &[
            "subscription server {sub}",
            "no write permission",
            "--no-drain",
        ],
        code: 3,
    },
    Row {
        what: "a master FIFO nobody may write, repair on",
        configs_ours: true,
        server_mode: 0o666,
        fifo_mode: 0o600,
        extra: &[],
        must: &[
            "{fifo}",
            "master FIFO of app_01.ini",
            "may not write",
            "--no-repair",
        ],
        code: 3,
    },
    Row {
        what: "the same FIFO with --no-repair: the checks pass (dry run)",
        configs_ours: true,
        server_mode: 0o666,
        fifo_mode: 0o600,
        extra: &["--no-repair", "--dry-run"],
        must: &[],
        code: 0,
    },
    Row {
        what: "every right present: the checks pass (dry run)",
        configs_ours: true,
        server_mode: 0o666,
        fifo_mode: 0o666,
        extra: &["--dry-run"],
        must: &[],
        code: 0,
    },
];

fn mkfifo(p: &Path, mode: u32) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(mode)).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn preflight_refuses_what_this_process_may_not_do() {
    let mut problems = Vec::new();
    for (i, row) in ROWS.iter().enumerate() {
        let w = World::new(&format!("perm{i}"), 2);
        std::fs::set_permissions(&w.tmp.path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sub = w.tmp.path.join("sub.sock");
        let server = UnixDatagram::bind(&sub).unwrap();
        server.set_nonblocking(true).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(row.server_mode)).unwrap();
        let fifo = w.tmp.path.join("app_01.fifo");
        for n in &w.names {
            let stem = n.trim_end_matches(".ini");
            let f = w.tmp.path.join(format!("{stem}.fifo"));
            mkfifo(&f, row.fifo_mode);
            let text = format!(
                "[uwsgi]\nsocket = /run/fake/%n.sock\nmaster-fifo = {f}\nstart-unsubscribed = true\n\
                 subscribe2 = server={sub},key={key}\nhook-accepting1-once = writefifo:{f} S\nneed-app = true\n",
                f = f.display(),
                sub = sub.display(),
                key = fakes::KEY,
            );
            let p = w.dir.join(n);
            std::fs::write(&p, text).unwrap();
            fakes::set_mtime(&p, fakes::OLD_MTIME);
            if row.configs_ours {
                chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        fakes::set_mtime(&w.dir, fakes::OLD_MTIME);
        let (emp, fr) = w.serve_consistent(false);
        for s in [&w.emperor_sock, &w.fastrouter_sock] {
            std::fs::set_permissions(s, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
        let before = w.mtimes();
        let mut args = w.base_args();
        args.extend(row.extra.iter().map(|s| s.to_string()));
        let r = run_cmd(&args, BOUND, |c| {
            c.uid(NOBODY).gid(NOBODY);
        });
        let expand = |s: &str| {
            s.replace("{dir}", w.dir_str())
                .replace("{sub}", sub.to_str().unwrap())
                .replace("{fifo}", fifo.to_str().unwrap())
        };
        let mut p = Vec::new();
        if r.code != Some(row.code) {
            p.push(format!("exit {:?}, expected {}", r.code, row.code));
        }
        if row.code != 0 {
            if r.stderr.lines().count() != 1 || !r.stdout.is_empty() {
                p.push("expected one line on stderr and nothing on stdout".into());
            }
            // The Emperor is never read before a refusal; each fastrouter
            // at most once, for its own options (which subscription servers
            // it names: setup::checked_servers), when the files passed.
            if emp.hits() != 0 || fr.hits() > 1 {
                p.push("a stats socket was read before the refusal".into());
            }
        }
        for m in row.must {
            if !r.stderr.contains(&expand(m)) {
                p.push(format!("stderr lacks {:?}", expand(m)));
            }
        }
        let mut buf = [0u8; 4096];
        if server.recv(&mut buf).is_ok() {
            p.push("the subscription server received a packet".into());
        }
        if w.mtimes() != before {
            p.push("an mtime changed".into());
        }
        if !p.is_empty() {
            problems.push(format!("{}: {}\n{}", row.what, p.join("; "), r.describe()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
