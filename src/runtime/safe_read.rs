//! The one way the tool reads a file that someone else may control: a
//! vassal config (often a link into an application's directory), the ini
//! files a fastrouter's command line names, `/proc/PID/cmdline`
//! (docs/SECURITY.md, bounded reads).
//!
//! The path is first opened with `O_PATH`, which reads nothing and has no
//! effect of its own; only a regular file is then opened for reading,
//! through that very descriptor (`/proc/self/fd/N`), so a FIFO, a device
//! or a socket is never opened at all (opening `/dev/watchdog` arms it, a
//! serial device resets what hangs on it), and nothing can be swapped in
//! between the check and the read. The read never blocks (`O_NONBLOCK`),
//! and at most `cap + 1` bytes are read: a sparse 10 GiB file costs
//! nothing. A config is also refused on a kernel pseudo-filesystem
//! (`/proc`, `/sys`...: reading `/proc/kmsg` takes the kernel's messages
//! from whoever logs them). Following a link is intended for a vassal
//! config: the Emperor reads it through its link too.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};
use nix::sys::statfs::{self, FsType};

/// The largest config file read (README "Security", docs/SECURITY.md): a
/// real vassal config is a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why a file was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// It is there but not safe to read: not a regular file, or over the
    /// cap. One line naming the file and the limit.
    Refused(String),
    /// It could not be opened or read (missing, permissions).
    Failed(String),
}

impl ReadError {
    pub fn message(&self) -> &str {
        match self {
            ReadError::Refused(m) | ReadError::Failed(m) => m,
        }
    }
}

/// The refusal's common tail: what is accepted.
fn limit(cap: u64) -> String {
    format!("expected a regular file of at most {} KiB", cap / 1024)
}

/// Opens `path` for reading without blocking (`O_NONBLOCK|O_NOCTTY`, and
/// `O_NOFOLLOW` with `nofollow`) if it is a regular file, found with an
/// `O_PATH` descriptor first: a FIFO, device, directory, socket or link is
/// refused without ever being opened. Returns the file and its status.
pub fn open_regular(path: &Path, nofollow: bool, cap: u64) -> Result<(File, FileStat), ReadError> {
    let shown = path.display();
    let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    if nofollow {
        flags |= OFlag::O_NOFOLLOW;
    }
    let fd = open(path, flags, Mode::empty())
        .map_err(|e| ReadError::Failed(format!("{shown}: cannot read: {}", e.desc())))?;
    // SAFETY: `open` just returned this descriptor; nothing else owns it.
    let at = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = fstat(at.as_raw_fd())
        .map_err(|e| ReadError::Failed(format!("{shown}: cannot stat: {}", e.desc())))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG {
        return Err(ReadError::Refused(format!(
            "{shown}: refused: it is {}, {}",
            kind_name(kind),
            limit(cap)
        )));
    }
    // The same file, now for reading. Without /proc, by its path again,
    // kept only if it is still the file just checked.
    let read_flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    let fd = open(
        format!("/proc/self/fd/{}", at.as_raw_fd()).as_str(),
        read_flags,
        Mode::empty(),
    )
    .or_else(|_| {
        open(
            path,
            read_flags | (flags & OFlag::O_NOFOLLOW),
            Mode::empty(),
        )
    })
    .map_err(|e| ReadError::Failed(format!("{shown}: cannot read: {}", e.desc())))?;
    // SAFETY: as above.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let now = fstat(fd.as_raw_fd())
        .map_err(|e| ReadError::Failed(format!("{shown}: cannot stat: {}", e.desc())))?;
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
        return Err(ReadError::Refused(format!(
            "{shown}: refused: it was replaced while it was opened, {}",
            limit(cap)
        )));
    }
    Ok((File::from(fd), now))
}

/// Kernel pseudo-filesystems: their "regular files" are the kernel's
/// (reading some has effects) and no config lives there.
const PSEUDO_FS: &[FsType] = &[
    statfs::PROC_SUPER_MAGIC,
    statfs::SYSFS_MAGIC,
    statfs::DEBUGFS_MAGIC,
    statfs::TRACEFS_MAGIC,
    statfs::SECURITYFS_MAGIC,
    statfs::CGROUP_SUPER_MAGIC,
    statfs::CGROUP2_SUPER_MAGIC,
    statfs::BPF_FS_MAGIC,
    statfs::SELINUX_MAGIC,
    statfs::SMACK_MAGIC,
];

/// A config file as read: its text and its status (owner, mode).
pub struct ConfigText {
    pub text: String,
    pub stat: FileStat,
}

/// Reads a config file (a vassal's, one it includes, a router's ini):
/// [`read_capped`]'s rules, `O_NOFOLLOW` with `nofollow`, and never on a
/// kernel pseudo-filesystem.
pub fn read_config(path: &Path, nofollow: bool, cap: u64) -> Result<ConfigText, ReadError> {
    let (file, stat) = open_regular(path, nofollow, cap)?;
    let on = statfs::fstatfs(&file)
        .map_err(|e| ReadError::Failed(format!("{}: cannot stat: {}", path.display(), e.desc())))?;
    if PSEUDO_FS.contains(&on.filesystem_type()) {
        return Err(ReadError::Refused(format!(
            "{}: refused: it is on a kernel pseudo-filesystem, {}",
            path.display(),
            limit(cap)
        )));
    }
    let bytes = read_open(file, stat.st_size as u64, path, cap)?;
    Ok(ConfigText {
        text: lossy(bytes),
        stat,
    })
}

/// Reads `path` (following links) if it is a regular file of at most `cap`
/// bytes.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let (file, stat) = open_regular(path, false, cap)?;
    read_open(file, stat.st_size as u64, path, cap)
}

/// At most `cap` bytes of an open regular file of `size` bytes.
fn read_open(file: File, size: u64, path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let shown = path.display();
    if size > cap {
        return Err(ReadError::Refused(format!(
            "{shown}: refused: it has {size} bytes, {}",
            limit(cap)
        )));
    }
    let mut out = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| ReadError::Failed(format!("{shown}: cannot read: {e}")))?;
    if out.len() as u64 > cap {
        // It grew after the fstat (or is a /proc file that reports 0).
        return Err(ReadError::Refused(format!(
            "{shown}: refused: it has more than {cap} bytes, {}",
            limit(cap)
        )));
    }
    Ok(out)
}

/// A config as text (invalid UTF-8 replaced, as the parsers expect),
/// through its link if it is one ([`read_config`]).
pub fn read_text(path: &Path, cap: u64) -> Result<String, ReadError> {
    read_config(path, false, cap).map(|c| c.text)
}

fn lossy(b: Vec<u8>) -> String {
    match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn kind_name(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFLNK => "a symbolic link",
        _ => "not a regular file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "uwsgi-reload-safe-read-{}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A FIFO with no writer, /dev/zero, a directory, a sparse 10 GiB file:
    /// each refused at once with one line naming it and the limit, having
    /// read at most cap + 1 bytes (the guard thread only ends a hang).
    #[test]
    fn what_is_not_a_small_regular_file_is_refused_without_blocking() {
        let d = tmp("kinds");
        let fifo = d.join("app.ini");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).unwrap();
        let sparse = d.join("big.ini");
        std::fs::File::create(&sparse)
            .unwrap()
            .set_len(10 << 30)
            .unwrap();
        let grown = d.join("grown.ini");
        std::fs::write(&grown, vec![b'x'; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let paths = [
            fifo.clone(),
            "/dev/zero".into(),
            d.clone(),
            sparse.clone(),
            grown,
        ];
        std::thread::spawn(move || {
            let r: Vec<_> = paths
                .iter()
                .map(|p| (p.clone(), read_capped(p, MAX_CONFIG_BYTES)))
                .collect();
            tx.send(r).unwrap();
        });
        let results = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
                panic!("a read blocked");
            });
        for (p, r) in results {
            match r {
                Err(ReadError::Refused(m)) => {
                    assert!(m.starts_with(&p.display().to_string()), "{m}");
                    assert!(m.contains("at most 1024 KiB"), "{m}");
                    assert!(!m.contains('\n'));
                }
                other => panic!("{}: {other:?}", p.display()),
            }
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_small_file_through_a_link_is_read_and_a_missing_one_fails() {
        let d = tmp("ok");
        std::fs::write(d.join("t.ini"), "[uwsgi]\n").unwrap();
        std::os::unix::fs::symlink(d.join("t.ini"), d.join("l.ini")).unwrap();
        assert_eq!(read_text(&d.join("l.ini"), 64).unwrap(), "[uwsgi]\n");
        assert!(matches!(
            read_capped(&d.join("none.ini"), 64),
            Err(ReadError::Failed(_))
        ));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A config on /proc is refused (reading some of its files has
    /// effects: /proc/kmsg), while a process's command line, which the
    /// tool means to read, still is.
    #[test]
    fn a_config_on_a_kernel_pseudo_filesystem_is_refused() {
        let e = read_config(Path::new("/proc/self/status"), false, MAX_CONFIG_BYTES).err();
        assert!(
            matches!(&e, Some(ReadError::Refused(m)) if m.contains("pseudo-filesystem")),
            "{e:?}"
        );
        assert!(read_capped(Path::new("/proc/self/cmdline"), MAX_CONFIG_BYTES).is_ok());
    }

    /// A device is refused without being opened for reading, and a link
    /// with `nofollow` is named as one.
    #[test]
    fn a_device_or_a_link_is_refused_by_its_kind() {
        let e = read_config(Path::new("/dev/null"), false, MAX_CONFIG_BYTES).err();
        assert!(
            matches!(&e, Some(ReadError::Refused(m)) if m.contains("character device")),
            "{e:?}"
        );
        let d = tmp("link");
        std::fs::write(d.join("t.ini"), "[uwsgi]\n").unwrap();
        std::os::unix::fs::symlink(d.join("t.ini"), d.join("l.ini")).unwrap();
        let e = read_config(&d.join("l.ini"), true, MAX_CONFIG_BYTES).err();
        assert!(
            matches!(&e, Some(ReadError::Refused(m)) if m.contains("symbolic link")),
            "{e:?}"
        );
        assert!(read_config(&d.join("l.ini"), false, MAX_CONFIG_BYTES).is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
