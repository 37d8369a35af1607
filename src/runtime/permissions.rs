//! Preflight's proof that this process may do what the rollout will do,
//! before anything is drained or touched: set each selected config's mtime,
//! send to each subscription server the drain uses, and write to each
//! master FIFO a repair may write `S` to. A run that lacks one of these
//! rights would otherwise find out mid-rollout, with a vassal already
//! unsubscribed. Each refusal is one line naming the file and the missing
//! right (exit 3). Every check here only reads: no packet is sent, no file
//! opened for writing.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;
use nix::unistd::{faccessat, AccessFlags};

use super::configs::EmperorDir;
use crate::engine::ConfigFile;
use crate::error::Error;
use crate::vassal_config::VassalConfig;

/// CAP_FOWNER: may set the times of files one does not own.
const CAP_FOWNER: u32 = 3;

/// The files the rollout will act on, before anything is read of uWSGI:
/// each config's mtime, and each master FIFO a repair may write.
pub fn check(
    dir: &EmperorDir,
    configs: &[ConfigFile],
    parsed: &[(String, Result<VassalConfig, String>)],
    repair: bool,
) -> Result<(), Error> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(euid) = effective_uid(&status) else {
        // Without /proc the kernel will say at the touch; nothing to prove.
        return Ok(());
    };
    let fowner = euid == 0 || has_capability(&status, CAP_FOWNER);
    for c in configs {
        may_set_mtime(dir, &c.name, euid, fowner)?;
    }
    if repair {
        for (name, p) in parsed {
            // Only the vassals a repair can concern: those that start with
            // their subscriptions blocked (`Settings::repairable`).
            let Ok(p) = p else { continue };
            if !p.start_unsubscribed {
                continue;
            }
            for fifo in p.master_fifo_paths() {
                may_write_fifo(&fifo, name)?;
            }
        }
    }
    Ok(())
}

/// Each subscription server the drain will use accepts a datagram from us.
/// Checked once the servers are known, which may take a look at the
/// routers' own options (`setup::checked_servers`): a server no router
/// names is dropped, never refused.
pub fn check_servers(servers: &[String]) -> Result<(), Error> {
    servers.iter().try_for_each(|s| may_send_to(s))
}

/// utimensat(2) with explicit times needs the file's owner or CAP_FOWNER,
/// and a writable filesystem; the file is the one the touch changes (the
/// link itself, or its target with `--touch-target`).
fn may_set_mtime(dir: &EmperorDir, name: &str, euid: u32, fowner: bool) -> Result<(), Error> {
    let shown = dir.path.join(name);
    let flags = if dir.follow {
        AtFlags::empty()
    } else {
        AtFlags::AT_SYMLINK_NOFOLLOW
    };
    let st = fstatat(Some(dir.fd.as_raw_fd()), name, flags).map_err(|e| {
        Error::Precondition(format!(
            "{}: cannot stat it to check that its mtime may be set: {}; nothing was touched",
            shown.display(),
            e.desc()
        ))
    })?;
    if st.st_uid != euid && !fowner {
        return Err(Error::Precondition(format!(
            "{}: this process (uid {euid}) may not set its mtime: the file belongs to uid {}; run as its owner or root (CAP_FOWNER); nothing was touched",
            shown.display(),
            st.st_uid
        )));
    }
    if let Ok(vfs) = nix::sys::statvfs::fstatvfs(&dir.fd) {
        if vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
            return Err(Error::Precondition(format!(
                "{}: its mtime cannot be set: it is on a read-only filesystem; nothing was touched",
                shown.display()
            )));
        }
    }
    Ok(())
}

/// A unix datagram server accepts our packets when a datagram socket can
/// `connect()` to it: that needs write permission on the socket file and a
/// bound receiver. Nothing is sent. UDP servers cannot be checked without
/// sending (a datagram has no handshake): skipped.
fn may_send_to(server: &str) -> Result<(), Error> {
    if server.contains(':') {
        return Ok(());
    }
    let sock = UnixDatagram::unbound().map_err(|e| Error::io("cannot create a socket", e))?;
    sock.connect(server).map_err(|e| {
        let why = match e.raw_os_error() {
            Some(libc_eacces) if libc_eacces == nix::errno::Errno::EACCES as i32 => {
                "no write permission on the socket".to_string()
            }
            Some(n) if n == nix::errno::Errno::ECONNREFUSED as i32 => {
                "nobody is bound to it (is the fastrouter running?)".to_string()
            }
            _ => nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))
                .desc()
                .to_string(),
        };
        Error::Precondition(format!(
            "subscription server {server}: this process cannot send the drain's unsubscribe to it: {why}; pass --no-drain to reload without draining; nothing was drained or touched"
        ))
    })
}

/// The repair writes `S` to the master FIFO; one that exists and is not
/// writable by us would fail it mid-rollout. A FIFO that does not exist
/// yet is the master's to create (the repair waits for it).
fn may_write_fifo(fifo: &Path, vassal: &str) -> Result<(), Error> {
    match faccessat(None, fifo, AccessFlags::W_OK, AtFlags::AT_EACCESS) {
        // Only the right itself refuses: a path that does not resolve
        // (missing, a loop, not a directory) is the master's to create, and
        // must not let one tenant's config veto every rollout.
        Ok(()) => Ok(()),
        Err(e) if !matches!(
            e,
            nix::errno::Errno::EACCES | nix::errno::Errno::EPERM | nix::errno::Errno::EROFS
        ) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::Precondition(format!(
            "{} (master FIFO of {vassal}): this process may not write to it ({}), which the repair of a lost subscription needs; pass --no-repair or fix its permissions; nothing was touched",
            fifo.display(),
            e.desc()
        ))),
    }
}

/// The effective uid: the second field of `Uid:` in /proc/self/status
/// (nix's `Uid` would need another of its features, and a bigger binary).
fn effective_uid(status: &str) -> Option<u32> {
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}

/// Whether capability `cap` is in the effective set (`CapEff:`).
fn has_capability(status: &str, cap: u32) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << cap) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_and_capability_from_proc_status() {
        let st = "Name:\tx\nUid:\t1000\t65534\t65534\t65534\nCapEff:\t0000000000000008\n";
        assert_eq!(effective_uid(st), Some(65534));
        assert!(has_capability(st, CAP_FOWNER));
        assert!(!has_capability("CapEff:\t0000000000000000\n", CAP_FOWNER));
    }

    #[test]
    fn udp_servers_are_not_probed() {
        assert!(may_send_to("127.0.0.1:1").is_ok());
    }

    #[test]
    fn a_missing_unix_server_is_named() {
        let e = may_send_to("/nonexistent/sub.sock")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/sub.sock"), "{e}");
        assert!(e.contains("--no-drain"), "{e}");
    }

    #[test]
    fn a_missing_fifo_is_the_masters_to_create() {
        assert!(may_write_fifo(Path::new("/nonexistent/fifo"), "a.ini").is_ok());
    }
}
