//! Moving a config's mtime forward, relative to the open directory.

use std::os::fd::AsRawFd;

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::configs::EmperorDir;

/// Sets `name`'s mtime to `mtime` whole seconds, leaving atime alone. On the
/// link itself by default (`touch -h`), on its target with `follow`.
pub fn touch(dir: &EmperorDir, name: &str, mtime: i64) -> Result<(), String> {
    let flags = if dir.follow {
        UtimensatFlags::FollowSymlink
    } else {
        UtimensatFlags::NoFollowSymlink
    };
    utimensat(
        Some(dir.fd.as_raw_fd()),
        name,
        &TimeSpec::UTIME_OMIT,
        &TimeSpec::new(mtime, 0),
        flags,
    )
    .map_err(|e| {
        format!(
            "cannot set the mtime of {}/{name}: {}",
            dir.path.display(),
            e.desc()
        )
    })
}
