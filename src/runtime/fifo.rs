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

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;

use crate::vassal_config::VassalConfig;

/// A named FIFO a process holds open, whose path still names that FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// A `master-fifo` path from the config, with its identity if it is a FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Configured {
    path: PathBuf,
    fifo_id: Option<(u64, u64)>,
}

/// The master FIFO of the vassal master `pid`.
///
/// Looks at the FIFOs the process holds open (`/proc/<pid>/fd`), preferring
/// one that is a `master-fifo` of `config`; falls back to the config's
/// `master-fifo` path when it exists and is a FIFO (e.g. `/proc/<pid>/fd` is
/// not readable because the vassal runs as another user).
pub fn find_master_fifo(pid: i32, config: Option<&VassalConfig>) -> Result<PathBuf, String> {
    let (held, proc_error) = match held_fifos(pid) {
        Ok(h) => (h, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let configured: Vec<Configured> = config
        .map(|c| c.master_fifo_paths())
        .unwrap_or_default()
        .into_iter()
        .map(|path| {
            let fifo_id = fs::metadata(&path)
                .ok()
                .filter(|m| m.file_type().is_fifo())
                .map(|m| (m.dev(), m.ino()));
            Configured { path, fifo_id }
        })
        .collect();
    select(pid, &held, &configured, proc_error.as_deref())
}

/// The decision of [`find_master_fifo`], apart from the file system.
fn select(
    pid: i32,
    held: &[Held],
    configured: &[Configured],
    proc_error: Option<&str>,
) -> Result<PathBuf, String> {
    // 1. A held FIFO that is one of the configured ones (same inode, or the
    //    same path string if the configured path could not be stat'ed).
    for c in configured {
        if let Some(h) = held
            .iter()
            .find(|h| c.fifo_id == Some((h.dev, h.ino)) || h.path == c.path)
        {
            return Ok(h.path.clone());
        }
    }
    // 2. Without a configured master-fifo, a single held FIFO is the one; two
    //    or more could be application FIFOs, and a wrong `S` is not harmless.
    if configured.is_empty() {
        match held {
            [only] => return Ok(only.path.clone()),
            [] => {}
            many => {
                let names: Vec<String> =
                    many.iter().map(|h| h.path.display().to_string()).collect();
                return Err(format!(
                    "pid {pid}: holds several FIFOs ({}), expected one master FIFO; set master-fifo in the vassal config",
                    names.join(", ")
                ));
            }
        }
    }
    // 3. The configured path, if it is a FIFO on disk.
    if let Some(c) = configured.iter().find(|c| c.fifo_id.is_some()) {
        return Ok(c.path.clone());
    }

    let seen = match (proc_error, held.is_empty()) {
        (Some(e), _) => format!("cannot list its open files ({e})"),
        (None, true) => "holds no named FIFO open".to_string(),
        (None, false) => {
            let names: Vec<String> = held.iter().map(|h| h.path.display().to_string()).collect();
            format!("holds {} but none is its master-fifo", names.join(", "))
        }
    };
    let wanted = if configured.is_empty() {
        "no master-fifo in its config".to_string()
    } else {
        let names: Vec<String> = configured
            .iter()
            .map(|c| c.path.display().to_string())
            .collect();
        format!("master-fifo {} is not a FIFO on disk", names.join(", "))
    };
    Err(format!(
        "pid {pid}: no master FIFO found: it {seen}, and {wanted}"
    ))
}

/// Named FIFOs `pid` holds open whose path still names the same FIFO,
/// in fd order.
fn held_fifos(pid: i32) -> Result<Vec<Held>, String> {
    let fd_dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let entries = fs::read_dir(&fd_dir).map_err(|e| format!("{}: {e}", fd_dir.display()))?;
    let mut found: Vec<(u64, Held)> = Vec::new();
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
                found.push((
                    fd,
                    Held {
                        path: target,
                        dev: open.dev(),
                        ino: open.ino(),
                    },
                ));
            }
            _ => continue,
        }
    }
    found.sort_by_key(|(fd, _)| *fd);
    let mut held: Vec<Held> = Vec::new();
    for (_, h) in found {
        // The same FIFO open twice counts once.
        if !held.contains(&h) {
            held.push(h);
        }
    }
    Ok(held)
}

const NO_READER: &str = "no process has the FIFO open for reading";

/// The error of [`write_fifo_command`] says no process had the FIFO open
/// for reading: a master that has not entered its loop yet, or none.
pub fn found_no_reader(error: &str) -> bool {
    error.contains(NO_READER)
}

/// Write the single command byte `byte` to the FIFO at `path`.
///
/// Non-blocking open: with no reader it fails with ENXIO at once instead of
/// waiting for one (the master may be between closing and recreating it, or
/// dead). One `write` of one byte, then close.
pub fn write_fifo_command(path: &Path, byte: u8) -> Result<(), String> {
    let shown = path.display();
    // Check first, so a wrong path is never opened for writing (a regular
    // file would not be truncated, but a device could react to the open).
    match fs::metadata(path) {
        Ok(m) if m.file_type().is_fifo() => {}
        Ok(m) => {
            return Err(format!(
                "{shown}: expected a FIFO, found {}",
                kind_of(&m.file_type())
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(format!(
                "{shown}: expected the master FIFO, it does not exist"
            ))
        }
        Err(e) => return Err(format!("{shown}: cannot stat the master FIFO: {e}")),
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => format!("{shown}: {NO_READER} (is the vassal master running?)"),
            Some(libc::ENOENT) => {
                format!("{shown}: expected the master FIFO, it disappeared (being recreated?)")
            }
            _ => format!("{shown}: cannot open the master FIFO for writing: {e}"),
        })?;
    // Between the check and the open the path may have been replaced.
    match file.metadata() {
        Ok(m) if m.file_type().is_fifo() => {}
        Ok(m) => {
            return Err(format!(
                "{shown}: expected a FIFO, found {}",
                kind_of(&m.file_type())
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

fn kind_of(t: &fs::FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        "something else"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::Mode;
    use nix::unistd::mkfifo;
    use std::io::Read;
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

    #[test]
    fn writes_exactly_one_byte() {
        let d = TempDir::new("write");
        let p = d.fifo("m.fifo");
        let mut r = reader(&p);
        write_fifo_command(&p, b'S').unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], b'S');
        // The writer is closed: end of file, nothing more was written.
        assert_eq!(r.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn no_reader_is_reported() {
        let d = TempDir::new("noreader");
        let p = d.fifo("m.fifo");
        let e = write_fifo_command(&p, b'S').unwrap_err();
        assert!(
            e.contains("no process has the FIFO open for reading"),
            "{e}"
        );
        assert!(e.starts_with(&p.display().to_string()), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn refuses_what_is_not_a_fifo() {
        let d = TempDir::new("notfifo");
        let f = d.0.join("plain");
        fs::write(&f, b"keep").unwrap();
        let e = write_fifo_command(&f, b'S').unwrap_err();
        assert!(e.contains("expected a FIFO, found a regular file"), "{e}");
        assert_eq!(fs::read(&f).unwrap(), b"keep");

        let e = write_fifo_command(&d.0, b'S').unwrap_err();
        assert!(e.contains("found a directory"), "{e}");

        let e = write_fifo_command(&d.0.join("missing"), b'S').unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn finds_the_configured_fifo_this_process_holds() {
        let d = TempDir::new("find");
        let p = d.fifo("app.fifo");
        let _r = reader(&p);
        // Relative master-fifo, resolved against the vassal's directory.
        let cfg = config_with_fifo(&d.0, "app.fifo");
        assert_eq!(find_master_fifo(me(), Some(&cfg)).unwrap(), p);
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
    fn finds_the_only_fifo_another_process_holds() {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let d = TempDir::new("child");
        let p = d.fifo("master.fifo");
        // The child opens the FIFO (read-write, so it does not block), says
        // so, then holds it like a vassal master would.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("exec 3<>\"$0\"; echo ready; exec sleep 600")
            .arg(&p)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        let found = find_master_fifo(child.id() as i32, None);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(found.unwrap(), p);
    }

    #[test]
    fn falls_back_to_the_configured_path_when_not_held() {
        let d = TempDir::new("fallback");
        let p = d.fifo("app.fifo");
        let cfg = config_with_fifo(&d.0, &p.to_string_lossy());
        assert_eq!(find_master_fifo(me(), Some(&cfg)).unwrap(), p);
    }

    #[test]
    fn nothing_found_is_one_clear_line() {
        let d = TempDir::new("none");
        let cfg = config_with_fifo(&d.0, "gone.fifo");
        let e = find_master_fifo(me(), Some(&cfg)).unwrap_err();
        assert!(e.contains("gone.fifo"), "{e}");
        assert!(e.contains("not a FIFO on disk"), "{e}");
        assert!(!e.contains('\n'));

        // A pid that cannot exist (above pid_max).
        let e = find_master_fifo(i32::MAX, None).unwrap_err();
        assert!(e.contains("cannot list its open files"), "{e}");
        assert!(e.contains("no master-fifo in its config"), "{e}");
    }

    fn held(path: &str, ino: u64) -> Held {
        Held {
            path: PathBuf::from(path),
            dev: 1,
            ino,
        }
    }

    fn configured(path: &str, ino: Option<u64>) -> Configured {
        Configured {
            path: PathBuf::from(path),
            fifo_id: ino.map(|i| (1, i)),
        }
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
            select(1, &h, &c, None).unwrap(),
            PathBuf::from("/app/m1.fifo")
        );
    }

    #[test]
    fn select_matches_by_inode_across_path_spellings() {
        let h = [held("/real/app.fifo", 9)];
        let c = [configured("/link/app.fifo", Some(9))];
        assert_eq!(
            select(1, &h, &c, None).unwrap(),
            PathBuf::from("/real/app.fifo")
        );
    }

    #[test]
    fn select_without_config() {
        assert_eq!(
            select(1, &[held("/a.fifo", 1)], &[], None).unwrap(),
            PathBuf::from("/a.fifo")
        );
        let e = select(1, &[held("/a.fifo", 1), held("/b.fifo", 2)], &[], None).unwrap_err();
        assert!(e.contains("several FIFOs") && e.contains("/b.fifo"), "{e}");
        let e = select(1, &[], &[], None).unwrap_err();
        assert!(e.contains("holds no named FIFO"), "{e}");
    }

    #[test]
    fn select_ignores_unrelated_held_fifos_when_configured() {
        let h = [held("/app/other.fifo", 7)];
        let c = [configured("/app/m.fifo", Some(3))];
        assert_eq!(
            select(1, &h, &c, None).unwrap(),
            PathBuf::from("/app/m.fifo")
        );
        let c = [configured("/app/m.fifo", None)];
        let e = select(1, &h, &c, None).unwrap_err();
        assert!(e.contains("none is its master-fifo"), "{e}");
    }

    #[test]
    fn select_falls_back_when_proc_is_unreadable() {
        let c = [configured("/app/m.fifo", Some(3))];
        assert_eq!(
            select(1, &[], &c, Some("permission denied")).unwrap(),
            PathBuf::from("/app/m.fifo")
        );
        let c = [configured("/app/m.fifo", None)];
        let e = select(1, &[], &c, Some("permission denied")).unwrap_err();
        assert!(
            e.contains("permission denied") && e.contains("/app/m.fifo"),
            "{e}"
        );
    }
}
