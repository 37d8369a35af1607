//! The one way the tool reads a file that someone else may control: a
//! vassal config (often a link into an application's directory), the ini
//! files a fastrouter's command line names, `/proc/PID/cmdline`
//! (docs/SECURITY.md, bounded reads).
//!
//! The open never blocks (`O_NONBLOCK`: a FIFO planted there opens at once
//! and is then refused), the type is checked on the open descriptor (no
//! swap between a check and the open), and at most `cap + 1` bytes are read:
//! `/dev/zero`, a directory or a sparse 10 GiB file cost nothing. Following
//! a link is intended: the Emperor reads a config through its link too.

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

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
/// `O_NOFOLLOW` with `nofollow`) and keeps it only if the open descriptor
/// is a regular file: a FIFO, device, directory or socket swapped in is
/// refused, never read. Returns the file and its size.
pub fn open_regular(path: &Path, nofollow: bool, cap: u64) -> Result<(File, u64), ReadError> {
    let shown = path.display();
    let mut flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    if nofollow {
        flags |= OFlag::O_NOFOLLOW;
    }
    let fd = open(path, flags, Mode::empty()).map_err(|e| match e {
        nix::errno::Errno::ELOOP if nofollow => ReadError::Refused(format!(
            "{shown}: refused: it is a symbolic link, {}",
            limit(cap)
        )),
        e => ReadError::Failed(format!("{shown}: cannot read: {}", e.desc())),
    })?;
    // SAFETY: `open` just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = fstat(std::os::fd::AsRawFd::as_raw_fd(&fd))
        .map_err(|e| ReadError::Failed(format!("{shown}: cannot stat: {}", e.desc())))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG {
        return Err(ReadError::Refused(format!(
            "{shown}: refused: it is {}, {}",
            kind_name(kind),
            limit(cap)
        )));
    }
    Ok((File::from(fd), st.st_size as u64))
}

/// Reads `path` (following links) if it is a regular file of at most `cap`
/// bytes.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    read_capped_with(path, false, cap)
}

/// The same, refusing a link with `nofollow` (`O_NOFOLLOW`).
fn read_capped_with(path: &Path, nofollow: bool, cap: u64) -> Result<Vec<u8>, ReadError> {
    let shown = path.display();
    let (file, size) = open_regular(path, nofollow, cap)?;
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

/// The same, as text (invalid UTF-8 replaced, as the parsers expect).
pub fn read_text(path: &Path, cap: u64) -> Result<String, ReadError> {
    read_capped(path, cap).map(lossy)
}

/// As text, refusing a link: for the files a config includes, which are
/// not the Emperor's to follow (docs/SECURITY.md, includes).
pub fn read_text_nofollow(path: &Path, cap: u64) -> Result<String, ReadError> {
    read_capped_with(path, true, cap).map(lossy)
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
}
