//! Moving a config's mtime forward, relative to the open directory.
//!
//! With `--touch-target` the file touched is the end of the config's link
//! chain, which an application user may re-point after preflight (at
//! another tenant's config, at /etc/shadow). So the target is resolved
//! again, opened `O_PATH|O_NOFOLLOW`, and touched only if it is the very
//! file (dev, inode) recorded when the configs were selected
//! (`EmperorDir::record_targets`); the mtime is then set through
//! `/proc/self/fd/N`, which leads to that inode and nothing else
//! (docs/SECURITY.md, touch).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::{fstat, utimensat, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::configs::EmperorDir;

/// Sets `name`'s mtime to `mtime` whole seconds, leaving atime alone. On the
/// link itself by default (`touch -h`), on its checked target with `follow`.
pub fn touch(dir: &EmperorDir, name: &str, mtime: i64) -> Result<(), String> {
    let shown = format!("{}/{name}", dir.path.display());
    let fail = |e: nix::errno::Errno| format!("cannot set the mtime of {shown}: {}", e.desc());
    let times = (&TimeSpec::UTIME_OMIT, &TimeSpec::new(mtime, 0));
    if !dir.follow {
        return utimensat(
            Some(dir.fd.as_raw_fd()),
            name,
            times.0,
            times.1,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(fail);
    }
    let target = std::fs::canonicalize(dir.path.join(name))
        .map_err(|e| format!("cannot set the mtime of {shown}: its link leads nowhere: {e}"))?;
    let fd = open(
        &target,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail)?;
    // SAFETY: `open` just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = fstat(fd.as_raw_fd()).map_err(fail)?;
    if dir.targets.get(name) != Some(&(st.st_dev, st.st_ino)) {
        return Err(format!(
            "refused to set the mtime of {shown}: its link now leads to {}, not the file checked before the rollout",
            target.display()
        ));
    }
    let magic = format!("/proc/self/fd/{}", fd.as_raw_fd());
    utimensat(
        None,
        magic.as_str(),
        times.0,
        times.1,
        UtimensatFlags::FollowSymlink,
    )
    .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A config link re-pointed between the selection and the touch (at
    /// another tenant's file): refused, and that file's mtime stays; the
    /// file recorded at selection is touched through the chain.
    #[test]
    fn a_link_re_pointed_after_selection_is_not_followed() {
        let d = std::env::temp_dir().join(format!("uwsgi-reload-touch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let (emperor, app) = (d.join("emperor"), d.join("app"));
        std::fs::create_dir_all(&emperor).unwrap();
        std::fs::create_dir_all(&app).unwrap();
        let mine = app.join("mine.ini");
        let other = d.join("other-tenant.ini");
        std::fs::write(&mine, "[uwsgi]\n").unwrap();
        std::fs::write(&other, "[uwsgi]\n").unwrap();
        // A chain: emperor/app_01.ini -> app/current.ini -> app/mine.ini.
        std::os::unix::fs::symlink(&mine, app.join("current.ini")).unwrap();
        std::os::unix::fs::symlink(app.join("current.ini"), emperor.join("app_01.ini")).unwrap();
        let mut dir = EmperorDir::open(&emperor, ".ini", true).unwrap();
        let configs = dir.list().unwrap();
        dir.record_targets(&configs);
        touch(&dir, "app_01.ini", 1_700_000_000).unwrap();
        assert_eq!(std::fs::metadata(&mine).unwrap().mtime(), 1_700_000_000);

        let before = std::fs::metadata(&other).unwrap().mtime();
        std::fs::remove_file(app.join("current.ini")).unwrap();
        std::os::unix::fs::symlink(&other, app.join("current.ini")).unwrap();
        let e = touch(&dir, "app_01.ini", 1_700_000_100).unwrap_err();
        assert!(
            e.contains("other-tenant.ini") && e.contains("not the file checked"),
            "{e}"
        );
        assert_eq!(std::fs::metadata(&other).unwrap().mtime(), before);
        assert_eq!(std::fs::metadata(&mine).unwrap().mtime(), 1_700_000_000);
        let _ = std::fs::remove_dir_all(&d);
    }
}
