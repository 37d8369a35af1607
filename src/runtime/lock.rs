//! One rollout per Emperor directory: an exclusive flock on a lock file
//! only the tool's own user can create, named by the directory's device
//! and inode (so every spelling of the directory, links included, is one
//! lock). Not a flock on the directory itself: any local user can open a
//! directory and flock it, and would lock every rollout out
//! (docs/SECURITY.md, the lock).
//!
//! Where the lock files live: `$UWSGI_RELOAD_LOCK_DIR` if set (tests, odd
//! hosts); else `/run/uwsgi-reload` as root, `$XDG_RUNTIME_DIR/uwsgi-reload`
//! or `/tmp/uwsgi-reload-<uid>` as another user. The directory is created
//! 0700 and must be a real directory owned by the tool's user that no one
//! else can write; anything else is refused (exit 3).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

#[allow(deprecated)] // nix's Flock wrapper wants ownership of a File.
use nix::fcntl::{flock, open, openat, FlockArg, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

use crate::error::Error;

/// Held for the life of the value.
pub struct DirLock {
    _file: File,
    /// Another instance held it first (`--wait-lock` waited): what was read
    /// before is older than that instance's rollout.
    pub waited: bool,
}

/// How often a `--wait-lock` looks again.
const POLL_MS: u64 = 100;

impl DirLock {
    /// `dir` is an open descriptor of the Emperor directory `path` (used in
    /// messages). With `wait_ms` > 0 a held lock is tried again every
    /// 100 ms for that long (`--wait-lock`).
    pub fn acquire(dir: &OwnedFd, path: &Path, wait_ms: u64) -> Result<DirLock, Error> {
        let st = fstat(dir.as_raw_fd())
            .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e.into()))?;
        let locks = lock_dir()?;
        let name = format!("{}-{}.lock", st.st_dev, st.st_ino);
        let fd = openat(
            Some(locks.as_raw_fd()),
            name.as_str(),
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| {
            Error::Precondition(format!("cannot open the lock file {name}: {}", e.desc()))
        })?;
        // SAFETY: `openat` just returned this descriptor; nothing else owns it.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut tries = wait_ms.div_ceil(POLL_MS);
        let mut waited = false;
        loop {
            #[allow(deprecated)] // nix's Flock wrapper wants ownership of a File.
            match flock(file.as_raw_fd(), FlockArg::LockExclusiveNonblock) {
                Ok(()) => break,
                Err(nix::errno::Errno::EWOULDBLOCK) if tries > 0 => {
                    tries -= 1;
                    waited = true;
                    std::thread::sleep(std::time::Duration::from_millis(POLL_MS));
                }
                Err(nix::errno::Errno::EWOULDBLOCK) => {
                    let mut holder = String::new();
                    let _ = (&file).take(32).read_to_string(&mut holder);
                    let holder = match holder.trim().parse::<u32>() {
                        Ok(pid) => format!("pid {pid}"),
                        Err(_) => "pid unknown".to_string(),
                    };
                    let waited = if wait_ms > 0 {
                        format!(" (waited {} ms)", wait_ms)
                    } else {
                        String::new()
                    };
                    return Err(Error::Precondition(format!(
                        "another uwsgi-reload ({holder}) is running and holds the lock for {}{waited}; nothing was touched",
                        path.display()
                    )));
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot lock {}", path.display()),
                        std::io::Error::from(e),
                    ))
                }
            }
        }
        // The holder's pid, for the refusal of the next instance.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(DirLock {
            _file: file,
            waited,
        })
    }
}

/// The directory of lock files, created if missing, checked (see the
/// module doc) and opened.
fn lock_dir() -> Result<OwnedFd, Error> {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let euid = unsafe { nix::libc::geteuid() };
    let path = match std::env::var_os("UWSGI_RELOAD_LOCK_DIR").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None if euid == 0 => PathBuf::from("/run/uwsgi-reload"),
        None => match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            Some(x) => Path::new(&x).join("uwsgi-reload"),
            None => PathBuf::from(format!("/tmp/uwsgi-reload-{euid}")),
        },
    };
    let shown = path.display();
    let _ = nix::unistd::mkdir(&path, Mode::from_bits_truncate(0o700));
    let fd = open(
        &path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        Error::Precondition(format!(
            "lock directory {shown}: cannot open it as a directory ({}): expected a directory owned by uid {euid}, not a link",
            e.desc()
        ))
    })?;
    // SAFETY: `open` just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st =
        fstat(fd.as_raw_fd()).map_err(|e| Error::io(format!("cannot stat {shown}"), e.into()))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFDIR || st.st_uid != euid || st.st_mode & 0o022 != 0 {
        return Err(Error::Precondition(format!(
            "lock directory {shown}: owned by uid {} with mode {:o}: expected a directory owned by uid {euid} that group and others cannot write",
            st.st_uid,
            st.st_mode & 0o7777
        )));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock directory someone else could write, or a link, is refused
    /// with one line naming it; the tool's own 0700 one is used.
    #[test]
    fn only_a_private_lock_directory_is_used() {
        use std::os::unix::fs::PermissionsExt;
        let base =
            std::env::temp_dir().join(format!("uwsgi-reload-lockdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let check = |p: &Path| {
            std::env::set_var("UWSGI_RELOAD_LOCK_DIR", p);
            let r = lock_dir();
            std::env::remove_var("UWSGI_RELOAD_LOCK_DIR");
            r
        };
        let fresh = base.join("fresh");
        check(&fresh).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check(&open).err().unwrap().to_string();
        assert!(
            e.contains("open") && e.contains("others cannot write"),
            "{e}"
        );
        let link = base.join("link");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        let e = check(&link).err().unwrap().to_string();
        assert!(e.contains("not a link") && !e.contains('\n'), "{e}");
        let _ = std::fs::remove_dir_all(&base);
    }
}
