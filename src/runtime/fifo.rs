//! Finding a vassal's master FIFO and writing one command byte to it.
//!
//! Used for the FIFO repair: a vassal that accepts again but never announced
//! (docs/UWSGI.md §9.6: its `hook-accepting1-once = writefifo:... S` ran before the
//! FIFO existed) is unblocked by writing `S` to its master FIFO.
//!
//! Two uWSGI behaviours shape this file (core/fifo.c, 2.0.21):
//! - The master holds only its *active* FIFO open (slot 0 unless switched),
//!   and recreates it (unlink + mkfifo + open) whenever a writer closes it.
//!   So the path on disk names the FIFO the master reads only when its inode
//!   is the one the master holds; an fd whose path was deleted or replaced is
//!   a leftover nobody reads (e.g. one leaked across the re-exec of a reload).
//! - The master reads one byte per wake-up and acts on it; `S` *toggles*
//!   subscriptions. Writing it twice undoes it, so we write exactly once.
//!
//! And one rule of a root tool on a shared host (docs/SECURITY.md, the
//! repair): `S` goes only to a FIFO the vassal's own master holds open. The
//! configured `master-fifo` path alone is never written: it may name another
//! tenant's FIFO, and a path can be swapped for a device between a check and
//! the open. The write opens the master's own descriptor through its magic
//! link `/proc/<pid>/fd/<N>` and checks the opened file is that very FIFO.
//! Where `/proc` cannot tell (no pid, unreadable), nothing is written.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use nix::libc;

use crate::vassal_config::VassalConfig;

/// A named FIFO a process holds open on descriptor `fd`, whose path still
/// names that FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub pid: i32,
    pub fd: u64,
    pub path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Held {
    fn id(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// The master FIFO of the vassal master `pid`: among the named FIFOs it
/// holds open (`/proc/<pid>/fd`), the one that is a `master-fifo` of
/// `config` (by inode), or without one in the config the only one it
/// holds.
pub fn find_master_fifo(pid: i32, config: Option<&VassalConfig>) -> Result<Held, String> {
    if pid <= 0 {
        return Err(format!(
            "pid {pid}: no master pid to look up, so which FIFO it holds is unknown; S is written only to a FIFO the master holds open"
        ));
    }
    let held = held_fifos(pid).map_err(|e| {
        format!("pid {pid}: cannot list its open files ({e}); S is written only to a FIFO the master holds open")
    })?;
    let configured: Vec<(PathBuf, Option<(u64, u64)>)> = config
        .map(|c| c.master_fifo_paths())
        .unwrap_or_default()
        .into_iter()
        .map(|path| {
            let id = fs::metadata(&path)
                .ok()
                .filter(|m| m.file_type().is_fifo())
                .map(|m| (m.dev(), m.ino()));
            (path, id)
        })
        .collect();
    select(pid, &held, &configured)
}

/// What [`found_no_reader`] recognises: the master has not opened its FIFO
/// (yet), or nobody reads it.
const NOT_HELD: &str = "holds no FIFO that is its master-fifo";

/// The decision of [`find_master_fifo`], apart from the file system.
fn select(
    pid: i32,
    held: &[Held],
    configured: &[(PathBuf, Option<(u64, u64)>)],
) -> Result<Held, String> {
    if !configured.is_empty() {
        // A held FIFO that is one of the configured ones, by inode.
        for (_, id) in configured {
            if let Some(h) = held.iter().find(|h| Some(h.id()) == *id) {
                return Ok(h.clone());
            }
        }
        let names: Vec<String> = configured
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        return Err(format!(
            "pid {pid}: {NOT_HELD} ({}); not written",
            names.join(", ")
        ));
    }
    // Without a configured master-fifo, a single held FIFO is the one; two
    // or more could be application FIFOs, and a wrong `S` is not harmless.
    match held {
        [only] => Ok(only.clone()),
        [] => Err(format!(
            "pid {pid}: {NOT_HELD} (it holds no named FIFO open, and its config names no master-fifo); not written"
        )),
        many => {
            let names: Vec<String> = many.iter().map(|h| h.path.display().to_string()).collect();
            Err(format!(
                "pid {pid}: holds several FIFOs ({}), expected one master FIFO; set master-fifo in the vassal config",
                names.join(", ")
            ))
        }
    }
}

/// Named FIFOs `pid` holds open whose path still names the same FIFO,
/// in fd order. Anonymous pipes are never among them.
fn held_fifos(pid: i32) -> Result<Vec<Held>, String> {
    let fd_dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let entries = fs::read_dir(&fd_dir).map_err(|e| format!("{}: {e}", fd_dir.display()))?;
    let mut found: Vec<Held> = Vec::new();
    for entry in entries.flatten() {
        let fd_path = entry.path();
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        // stat() through the magic link gives the open object itself, even
        // when its path is gone. Closed meanwhile: skip.
        let Ok(open) = fs::metadata(&fd_path) else {
            continue;
        };
        if !open.file_type().is_fifo() {
            continue;
        }
        // Anonymous pipes are FIFOs too; they read as "pipe:[inode]".
        let Ok(target) = fs::read_link(&fd_path) else {
            continue;
        };
        if !target.is_absolute() {
            continue;
        }
        // The path must still lead to this very FIFO: a deleted one reads as
        // "/path (deleted)", a replaced one has another inode.
        match fs::metadata(&target) {
            Ok(m) if m.file_type().is_fifo() && m.dev() == open.dev() && m.ino() == open.ino() => {
                found.push(Held {
                    pid,
                    fd,
                    path: target,
                    dev: open.dev(),
                    ino: open.ino(),
                });
            }
            _ => continue,
        }
    }
    found.sort_by_key(|h| h.fd);
    let mut held: Vec<Held> = Vec::new();
    for h in found {
        // The same FIFO open twice counts once.
        if !held.iter().any(|x| x.id() == h.id()) {
            held.push(h);
        }
    }
    Ok(held)
}

const NO_READER: &str = "no process has the FIFO open for reading";

/// The error of [`find_master_fifo`] or [`write_fifo_command`] says the
/// master does not hold its FIFO open, or no process reads it: a master
/// that has not entered its loop yet, or none. A repair may wait for it.
pub fn found_no_reader(error: &str) -> bool {
    error.contains(NO_READER) || error.contains(NOT_HELD)
}

/// Writes the single command byte `byte` to the FIFO `fifo` its master
/// holds, through the master's own descriptor (`/proc/<pid>/fd/<N>`).
///
/// Non-blocking open: with no reader it fails with ENXIO at once instead of
/// waiting for one. The opened file must be that same FIFO (dev, inode):
/// the descriptor may have been closed and reused since it was listed. One
/// `write` of one byte, then close.
pub fn write_fifo_command(fifo: &Held, byte: u8) -> Result<(), String> {
    let shown = fifo.path.display();
    let magic = PathBuf::from(format!("/proc/{}/fd/{}", fifo.pid, fifo.fd));
    // Checked before the open too, so a reused descriptor that is now a
    // device is not even opened (the check after the open is the proof).
    let same = |m: &fs::Metadata| m.file_type().is_fifo() && (m.dev(), m.ino()) == fifo.id();
    match fs::metadata(&magic) {
        Ok(m) if same(&m) => {}
        Ok(_) | Err(_) => {
            return Err(format!(
                "{shown}: the master (pid {}) no longer holds it on fd {}; not written",
                fifo.pid, fifo.fd
            ))
        }
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&magic)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => format!("{shown}: {NO_READER} (is the vassal master running?)"),
            _ => format!("{shown}: cannot open the master FIFO for writing: {e}"),
        })?;
    match file.metadata() {
        Ok(m) if same(&m) => {}
        Ok(_) => {
            return Err(format!(
                "{shown}: the opened file is not the FIFO the master holds; not written"
            ))
        }
        Err(e) => return Err(format!("{shown}: cannot stat the opened FIFO: {e}")),
    }
    match file.write(&[byte]) {
        Ok(1) => Ok(()),
        Ok(n) => Err(format!("{shown}: wrote {n} bytes, expected 1")),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Err(format!(
            "{shown}: the FIFO is full, its reader is not reading; command {:?} not sent",
            byte as char
        )),
        Err(e) if e.raw_os_error() == Some(libc::EPIPE) => Err(format!(
            "{shown}: the reader closed the FIFO before the write; command {:?} not sent",
            byte as char
        )),
        Err(e) => Err(format!("{shown}: write to the master FIFO failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::Mode;
    use nix::unistd::mkfifo;
    use std::io::Read;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "uwsgi-reload-fifo-{}-{}-{tag}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn fifo(&self, name: &str) -> PathBuf {
            let p = self.0.join(name);
            mkfifo(&p, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Open a FIFO for reading the way the uWSGI master does.
    fn reader(p: &Path) -> fs::File {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(p)
            .unwrap()
    }

    fn config_with_fifo(dir: &Path, fifo: &str) -> VassalConfig {
        VassalConfig::parse(
            &format!("[uwsgi]\nmaster-fifo = {fifo}\n"),
            "app.ini",
            &dir.to_string_lossy(),
        )
    }

    fn me() -> i32 {
        std::process::id() as i32
    }

    /// A child that holds `fifo` (read-write, so it does not block) like a
    /// vassal master, or only sleeps (`None`); killed on drop.
    struct Master(std::process::Child);

    impl Master {
        fn start(fifo: Option<&Path>) -> Master {
            use std::io::BufRead;
            use std::process::{Command, Stdio};
            let script = match fifo {
                Some(_) => "exec 3<>\"$0\"; echo ready; exec sleep 600",
                None => "echo ready; exec sleep 600",
            };
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg(fifo.unwrap_or(Path::new("-")))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line, "ready\n");
            Master(child)
        }
        fn pid(&self) -> i32 {
            self.0.id() as i32
        }
    }

    impl Drop for Master {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn writes_exactly_one_byte_through_the_masters_descriptor() {
        let d = TempDir::new("write");
        let p = d.fifo("m.fifo");
        let mut r = reader(&p);
        let cfg = config_with_fifo(&d.0, "m.fifo");
        let held = find_master_fifo(me(), Some(&cfg)).unwrap();
        assert_eq!(held.path, p);
        write_fifo_command(&held, b'S').unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], b'S');
        // The writer is closed: end of file, nothing more was written.
        assert_eq!(r.read(&mut buf).unwrap(), 0);
    }

    /// The master holds its FIFO only for writing and nobody reads it: the
    /// non-blocking open fails at once, and a repair may wait for a reader.
    #[test]
    fn no_reader_is_reported() {
        let d = TempDir::new("noreader");
        let p = d.fifo("m.fifo");
        let r = reader(&p);
        let _w = fs::OpenOptions::new().write(true).open(&p).unwrap();
        drop(r);
        let cfg = config_with_fifo(&d.0, "m.fifo");
        let held = find_master_fifo(me(), Some(&cfg)).unwrap();
        let e = write_fifo_command(&held, b'S').unwrap_err();
        assert!(found_no_reader(&e), "{e}");
        assert!(e.starts_with(&p.display().to_string()), "{e}");
        assert!(!e.contains('\n'));
    }

    /// A master-fifo naming a regular file, a directory, a missing path or
    /// a device the process holds open: never a FIFO it holds, so nothing
    /// is opened for writing and the file keeps its bytes.
    #[test]
    fn a_master_fifo_that_is_no_held_fifo_is_never_written() {
        let d = TempDir::new("notfifo");
        let f = d.0.join("plain");
        fs::write(&f, b"keep").unwrap();
        let _f = fs::File::open(&f).unwrap();
        let _null = fs::File::open("/dev/null").unwrap();
        for path in [
            f.clone(),
            d.0.clone(),
            d.0.join("missing"),
            "/dev/null".into(),
        ] {
            let cfg = config_with_fifo(&d.0, &path.to_string_lossy());
            let e = find_master_fifo(me(), Some(&cfg)).unwrap_err();
            assert!(e.contains(NOT_HELD) && e.contains("not written"), "{e}");
            assert!(!e.contains('\n'));
        }
        assert_eq!(fs::read(&f).unwrap(), b"keep");
    }

    #[test]
    fn finds_the_configured_fifo_this_process_holds() {
        let d = TempDir::new("find");
        let p = d.fifo("app.fifo");
        let _r = reader(&p);
        // Relative master-fifo, resolved against the vassal's directory.
        let cfg = config_with_fifo(&d.0, "app.fifo");
        assert_eq!(find_master_fifo(me(), Some(&cfg)).unwrap().path, p);
    }

    #[test]
    fn held_fifos_sees_named_fifos_not_pipes_nor_replaced_ones() {
        let d = TempDir::new("held");
        let live = d.fifo("live.fifo");
        let _r1 = reader(&live);
        let old = d.fifo("old.fifo");
        let _r2 = reader(&old);
        // Replaced like the master does on EOF: the fd now points to an
        // unlinked FIFO, and the path to a new one nobody holds.
        fs::remove_file(&old).unwrap();
        mkfifo(&old, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
        let (_pipe_r, _pipe_w) = nix::unistd::pipe().unwrap();

        let held = held_fifos(me()).unwrap();
        let ours: Vec<&Held> = held.iter().filter(|h| h.path.starts_with(&d.0)).collect();
        assert_eq!(ours.len(), 1, "{held:?}");
        assert_eq!(ours[0].path, live);
        assert!(held.iter().all(|h| h.path.is_absolute()));
    }

    #[test]
    fn finds_and_writes_the_only_fifo_another_process_holds() {
        let d = TempDir::new("child");
        let p = d.fifo("master.fifo");
        let master = Master::start(Some(&p));
        let found = find_master_fifo(master.pid(), None).unwrap();
        assert_eq!(found.path, p);
        assert_eq!(found.pid, master.pid());
        write_fifo_command(&found, b'S').unwrap();
        // The byte is in the FIFO the master holds.
        let mut r = reader(&p);
        let mut buf = [0u8; 4];
        assert_eq!(r.read(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], b'S');
    }

    /// Another tenant's FIFO, with a reader, named by this vassal's
    /// master-fifo: its master (the pid) does not hold it, so nothing is
    /// written to it; a master that holds only pipes (its stdin here) has
    /// no FIFO to write either.
    #[test]
    fn refuses_to_write_when_the_master_holds_no_fifo() {
        let d = TempDir::new("foreign");
        let foreign = d.fifo("other-tenant.fifo");
        let mut r = reader(&foreign);
        let master = Master::start(None);
        let cfg = config_with_fifo(&d.0, &foreign.to_string_lossy());
        let e = find_master_fifo(master.pid(), Some(&cfg)).unwrap_err();
        assert!(
            e.contains(NOT_HELD) && e.contains("other-tenant.fifo"),
            "{e}"
        );
        let e = find_master_fifo(master.pid(), None).unwrap_err();
        assert!(e.contains("holds no named FIFO"), "{e}");
        let mut buf = [0u8; 4];
        assert!(matches!(r.read(&mut buf), Ok(0) | Err(_)), "written");
    }

    #[test]
    fn nothing_found_is_one_clear_line() {
        let d = TempDir::new("none");
        let cfg = config_with_fifo(&d.0, "gone.fifo");
        let e = find_master_fifo(me(), Some(&cfg)).unwrap_err();
        assert!(e.contains("gone.fifo"), "{e}");
        assert!(!e.contains('\n'));
        // A pid that cannot exist (above pid_max), and no pid at all.
        let e = find_master_fifo(i32::MAX, None).unwrap_err();
        assert!(e.contains("cannot list its open files"), "{e}");
        let e = find_master_fifo(0, Some(&cfg)).unwrap_err();
        assert!(e.contains("no master pid"), "{e}");
        assert!(!found_no_reader(&e), "{e}");
    }

    fn held(path: &str, ino: u64) -> Held {
        Held {
            pid: 1,
            fd: ino,
            path: PathBuf::from(path),
            dev: 1,
            ino,
        }
    }

    fn configured(path: &str, ino: Option<u64>) -> (PathBuf, Option<(u64, u64)>) {
        (PathBuf::from(path), ino.map(|i| (1, i)))
    }

    #[test]
    fn select_prefers_the_held_configured_fifo() {
        let h = [held("/app/other.fifo", 7), held("/app/m1.fifo", 9)];
        // Slot 0 exists on disk but is not held; slot 1 is the active one.
        let c = [
            configured("/app/m0.fifo", Some(3)),
            configured("/app/m1.fifo", Some(9)),
        ];
        assert_eq!(
            select(1, &h, &c).unwrap().path,
            PathBuf::from("/app/m1.fifo")
        );
    }

    #[test]
    fn select_matches_by_inode_only() {
        let h = [held("/real/app.fifo", 9)];
        let c = [configured("/link/app.fifo", Some(9))];
        assert_eq!(
            select(1, &h, &c).unwrap().path,
            PathBuf::from("/real/app.fifo")
        );
        // The same path string, but not the held inode: not written.
        let c = [configured("/real/app.fifo", None)];
        assert!(select(1, &h, &c).is_err());
    }

    #[test]
    fn select_without_config() {
        assert_eq!(
            select(1, &[held("/a.fifo", 1)], &[]).unwrap().path,
            PathBuf::from("/a.fifo")
        );
        let e = select(1, &[held("/a.fifo", 1), held("/b.fifo", 2)], &[]).unwrap_err();
        assert!(e.contains("several FIFOs") && e.contains("/b.fifo"), "{e}");
        let e = select(1, &[], &[]).unwrap_err();
        assert!(e.contains("holds no named FIFO"), "{e}");
    }

    #[test]
    fn select_ignores_unrelated_held_fifos_when_configured() {
        let h = [held("/app/other.fifo", 7)];
        let c = [configured("/app/m.fifo", Some(3))];
        let e = select(1, &h, &c).unwrap_err();
        assert!(e.contains(NOT_HELD) && e.contains("/app/m.fifo"), "{e}");
    }
}
