//! One rollout per Emperor directory: an exclusive flock on the directory
//! itself, so nothing is created inside it and the lock dies with us.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

#[allow(deprecated)] // nix's Flock wrapper wants ownership of a File.
use nix::fcntl::{flock, FlockArg};

use crate::error::Error;

/// Held for the life of the value.
pub struct DirLock {
    _fd: OwnedFd,
}

impl DirLock {
    /// `dir` is an open directory descriptor for `path` (used in messages).
    pub fn acquire(dir: &OwnedFd, path: &Path) -> Result<DirLock, Error> {
        // A duplicate shares the open file description, so the lock lives as
        // long as either; keeping our own copy makes the guard independent.
        let fd = dir
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io(format!("cannot lock {}", path.display()), e))?;
        #[allow(deprecated)] // nix's Flock wrapper wants ownership of a File.
        match flock(fd.as_raw_fd(), FlockArg::LockExclusiveNonblock) {
            Ok(()) => Ok(DirLock { _fd: fd }),
            Err(nix::errno::Errno::EWOULDBLOCK) => Err(Error::Precondition(format!(
                "another uwsgi-reload is already running on {} (it holds the directory lock); nothing was touched",
                path.display()
            ))),
            Err(e) => Err(Error::io(
                format!("cannot lock {}", path.display()),
                std::io::Error::from(e),
            )),
        }
    }
}
