//! The one temporary-directory helper of the tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory `<base>/ur-<tag>-<pid>-<n>`, removed on drop unless
/// [`TempDir::keep`] was called. `<base>` is `$E2E_TMPDIR`, else /tmp: short,
/// so that unix socket paths inside stay under the 108-byte `sun_path` limit.
pub struct TempDir {
    pub path: PathBuf,
    keep: bool,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let base = std::env::var_os("E2E_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let tag: String = tag.chars().take(12).collect();
        loop {
            let n = N.fetch_add(1, Ordering::SeqCst);
            let path = base.join(format!("ur-{tag}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return TempDir { path, keep: false },
                // left by an earlier process with the same pid: not ours
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", path.display()),
            }
        }
    }

    /// Leaves the directory on disk when dropped (a failed end-to-end
    /// test's logs, `E2E_KEEP`).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        // Undo any chmod a test made, so removal works.
        make_writable(&self.path);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn make_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(md) = std::fs::symlink_metadata(p) {
        if md.is_dir() {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    make_writable(&e.path());
                }
            }
        }
    }
}
