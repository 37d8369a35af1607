//! Listing the vassal configs of the Emperor directory and reading their
//! mtimes the way the Emperor does (docs/UWSGI.md §2-§3).

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};

use super::safe_read::{ReadError, MAX_CONFIG_BYTES};
use crate::engine::ConfigFile;
use crate::error::Error;
use crate::vassal_config::{Included, VassalConfig};

/// The open Emperor directory and how its entries are looked at.
pub struct EmperorDir {
    pub path: PathBuf,
    pub fd: OwnedFd,
    pub suffix: String,
    /// Look at the link itself (the default, as `--emperor-nofollow`
    /// Emperors do) or at its target (`--touch-target`).
    pub follow: bool,
    /// With `--touch-target`: each selected config's target (dev, inode),
    /// recorded when the configs were selected; a touch goes only to that
    /// very file (`touch.rs`, docs/SECURITY.md).
    pub targets: std::collections::BTreeMap<String, (u64, u64)>,
}

impl EmperorDir {
    pub fn open(path: &Path, suffix: &str, follow: bool) -> Result<EmperorDir, Error> {
        let fd = open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            Error::Usage(format!(
                "--emperor-path expects a readable directory, {}: {}",
                path.display(),
                e.desc()
            ))
        })?;
        // SAFETY: `open` just returned this descriptor; nothing else owns or
        // closes it.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(EmperorDir {
            path: path.to_path_buf(),
            fd,
            suffix: suffix.to_string(),
            follow,
            targets: Default::default(),
        })
    }

    pub fn is_config(&self, name: &OsStr) -> bool {
        let b = name.as_bytes();
        b.len() > self.suffix.len() && b.ends_with(self.suffix.as_bytes()) && !b.starts_with(b".")
    }

    /// The mtime of `name` as the Emperor sees it, if it is a config it
    /// would load (a regular file, or a link).
    pub fn mtime(&self, name: &OsStr) -> Option<i64> {
        let flags = if self.follow {
            AtFlags::empty()
        } else {
            AtFlags::AT_SYMLINK_NOFOLLOW
        };
        let st = fstatat(Some(self.fd.as_raw_fd()), name, flags).ok()?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFREG || kind == SFlag::S_IFLNK {
            Some(st.st_mtime)
        } else {
            None
        }
    }

    /// Every config file, sorted by name.
    pub fn list(&self) -> Result<Vec<ConfigFile>, Error> {
        let rd = std::fs::read_dir(&self.path).map_err(|e| {
            Error::Usage(format!(
                "--emperor-path expects a readable directory, {}: {e}",
                self.path.display()
            ))
        })?;
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(format!("reading {}", self.path.display()), e))?;
            let name = ent.file_name();
            if !self.is_config(&name) {
                continue;
            }
            let Some(utf8) = name.to_str() else { continue };
            if let Some(mtime) = self.mtime(&name) {
                out.push(ConfigFile {
                    name: utf8.to_string(),
                    mtime,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// For each config that is a symlink, its mtime as the Emperor would see
    /// it in the mode we do not touch in (see `Settings::other_mode_mtimes`).
    pub fn other_mode_mtimes(
        &self,
        configs: &[ConfigFile],
    ) -> std::collections::BTreeMap<String, i64> {
        let mut out = std::collections::BTreeMap::new();
        for c in configs {
            let link = fstatat(
                Some(self.fd.as_raw_fd()),
                c.name.as_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            );
            let Ok(link) = link else { continue };
            let kind = SFlag::from_bits_truncate(link.st_mode) & SFlag::S_IFMT;
            if kind != SFlag::S_IFLNK {
                continue;
            }
            let other = if self.follow {
                Some(link.st_mtime)
            } else {
                fstatat(Some(self.fd.as_raw_fd()), c.name.as_str(), AtFlags::empty())
                    .ok()
                    .map(|t| t.st_mtime)
            };
            if let Some(m) = other {
                out.insert(c.name.clone(), m);
            }
        }
        out
    }

    /// With `--touch-target`: records the identity of each config's target
    /// (the whole link chain resolved), which the touch checks again.
    pub fn record_targets(&mut self, configs: &[ConfigFile]) {
        if !self.follow {
            return;
        }
        for c in configs {
            if let Ok(m) = std::fs::metadata(self.path.join(&c.name)) {
                use std::os::unix::fs::MetadataExt;
                self.targets.insert(c.name.clone(), (m.dev(), m.ino()));
            }
        }
    }

    /// Configs that are one file under several names (hard links): the
    /// Emperor sees every name's mtime move at one touch (docs/SECURITY.md).
    pub fn hard_links(&self, configs: &[ConfigFile]) -> Vec<Vec<String>> {
        let mut by_inode: std::collections::BTreeMap<(u64, u64), Vec<String>> = Default::default();
        for c in configs {
            let st = fstatat(
                Some(self.fd.as_raw_fd()),
                c.name.as_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            );
            if let Some(st) = st.ok().filter(|st| st.st_nlink > 1) {
                let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
                if kind == SFlag::S_IFREG {
                    by_inode
                        .entry((st.st_dev, st.st_ino))
                        .or_default()
                        .push(c.name.clone());
                }
            }
        }
        by_inode.into_values().filter(|v| v.len() > 1).collect()
    }

    /// With `--touch-target`: configs whose links lead to the same file.
    /// Touching that file would reload all of them at once (docs/UWSGI.md §3).
    pub fn shared_targets(&self, configs: &[ConfigFile]) -> Vec<(PathBuf, Vec<String>)> {
        let mut by_target: std::collections::BTreeMap<PathBuf, Vec<String>> = Default::default();
        for c in configs {
            if let Ok(t) = std::fs::canonicalize(self.path.join(&c.name)) {
                by_target.entry(t).or_default().push(c.name.clone());
            }
        }
        by_target.into_iter().filter(|(_, v)| v.len() > 1).collect()
    }
}

/// The `--only`/`--exclude` patterns as given, for the error when they
/// select nothing.
fn filters_given(cfg: &crate::run_config::Config) -> String {
    let only = cfg.only.iter().map(|g| format!("--only '{g}'"));
    let exclude = cfg.exclude.iter().map(|g| format!("--exclude '{g}'"));
    only.chain(exclude).collect::<Vec<_>>().join(" ")
}

/// The configs a command works on: listed, filtered by `--only`/`--exclude`,
/// and (with `--touch-target`) refused when links share a target. Every
/// problem is a usage error (exit 2) naming what was expected.
/// The configs the rollout acts on, in one listing of the directory, and
/// the names of those the selection matched but left out because they run
/// a fastrouter (a router, not an app vassal: named only with `--only`).
pub struct Selection {
    pub configs: Vec<ConfigFile>,
    pub routers_left_out: Vec<String>,
}

pub fn select(cfg: &crate::run_config::Config, dir: &EmperorDir) -> Result<Selection, Error> {
    let all = dir.list()?;
    if all.is_empty() {
        return Err(Error::Usage(format!(
            "--emperor-path {} has no vassal configs: expected files ending in {:?} (see --vassal-config-file-suffix)",
            dir.path.display(),
            dir.suffix
        )));
    }
    let (configs, routers): (Vec<ConfigFile>, Vec<ConfigFile>) = all
        .into_iter()
        .filter(|c| cfg.selected(&c.name))
        .partition(|c| named_by_only(cfg, &c.name) || !is_router(dir, &c.name));
    let routers_left_out = routers.into_iter().map(|c| c.name).collect();
    if configs.is_empty() {
        return Err(Error::Usage(format!(
            "no vassal config in {} matches {}",
            dir.path.display(),
            filters_given(cfg)
        )));
    }
    if let Some(names) = dir.hard_links(&configs).into_iter().next() {
        return Err(Error::Usage(format!(
            "{} in {} are hard links to one file: touching one reloads all of them at once, behind K; expected one directory entry per config file (use symlinks)",
            names.join(" and "),
            dir.path.display()
        )));
    }
    if dir.follow {
        if let Some((target, names)) = dir.shared_targets(&configs).into_iter().next() {
            return Err(Error::Usage(format!(
                "--touch-target would touch {} for {} at once (they link to it); expected one link per target, or drop --touch-target and run the Emperor with --emperor-nofollow",
                target.display(),
                names.join(", ")
            )));
        }
    }
    Ok(Selection {
        configs,
        routers_left_out,
    })
}

/// Does an `--only` pattern name this config?
fn named_by_only(cfg: &crate::run_config::Config, name: &str) -> bool {
    cfg.only.iter().any(|g| crate::glob::matches(g, name))
}

/// A config in the Emperor directory that runs a fastrouter is the router
/// the apps subscribe to, not one of them: it is never counted as an app
/// vassal nor touched, unless `--only` names it. A config that cannot be
/// read safely is not a router here; `setup::parse_configs` refuses it.
pub fn is_router(dir: &EmperorDir, name: &str) -> bool {
    load_vassal_config(&dir.path.join(name)).is_ok_and(|c| c.is_router())
}

/// Reads and parses a vassal config file (the parsing is the pure
/// `uwsgi::vassal_config`). The directory is canonicalised as
/// the vassal's `getcwd()` would be, the file name is kept as given: the
/// Emperor passes symlinks by name, and `%n` is the link's name.
///
/// The read is `safe_read`'s (a regular file of at most
/// `MAX_CONFIG_BYTES`, never blocking), and a file whose `%` expansions go
/// over `MAX_EXPANSION` is refused too: `ReadError::Refused` is a
/// precondition failure for the caller, not a config to skip.
///
/// Its includes are followed (docs/UWSGI.md §20) through
/// [`read_include`]: all its files together hold at most `MAX_CONFIG_BYTES`.
/// One that cannot be read safely is not followed (it stays in
/// `includes`), never a refusal: uWSGI would read it, the tool only does
/// not know what it sets.
pub fn load_vassal_config(path: &Path) -> Result<VassalConfig, ReadError> {
    let top = super::safe_read::read_config(path, false, MAX_CONFIG_BYTES)?;
    let (text, owner) = (top.text, top.stat.st_uid);
    let name = path
        .file_name()
        .ok_or_else(|| {
            ReadError::Failed(format!("{}: expected a config file path", path.display()))
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&parent).map_err(|e| {
        ReadError::Failed(format!(
            "{}: cannot resolve the config's directory: {e}",
            parent.display()
        ))
    })?;
    let budget = (MAX_CONFIG_BYTES as usize).saturating_sub(text.len());
    let c = VassalConfig::parse_following(
        &text,
        &name,
        &dir.to_string_lossy(),
        &mut |p: &str, cap: usize| read_include(p, cap, owner),
        budget,
    );
    match &c.over_limit {
        Some(why) => Err(ReadError::Refused(format!(
            "{}: refused: {why}",
            path.display()
        ))),
        None => Ok(c),
    }
}

/// Reads a file a config includes (`path` absolute, as the vassal opens
/// it) under docs/SECURITY.md's rules for includes: never through a link
/// (`O_NOFOLLOW`: the file belongs to the app's user, the tool is root),
/// a regular file only, opened without blocking, at most `cap` bytes, and
/// only what the config's owner (`owner`, a uid) could read itself: the
/// tool reads as root, and what it reads may reach a subscription key, a
/// packet, a line of output. Its real path (uWSGI's `%p`) is its
/// directory's real path and its name.
pub fn read_include(path: &str, cap: usize, owner: u32) -> Result<Included, String> {
    let p = Path::new(path);
    let (Some(parent), Some(file)) = (p.parent(), p.file_name()) else {
        return Err(format!("{path}: expected a file path"));
    };
    let dir = std::fs::canonicalize(parent)
        .map_err(|e| format!("{}: cannot resolve: {e}", parent.display()))?;
    let read =
        super::safe_read::read_config(p, true, cap as u64).map_err(|e| e.message().to_string())?;
    if !readable_by(owner, &read.stat, &dir) {
        return Err(format!(
            "{path}: refused: the config's owner (uid {owner}) could not read it itself"
        ));
    }
    Ok(Included {
        real_path: dir.join(file).to_string_lossy().into_owned(),
        text: read.text,
    })
}

/// Could user `uid` read a file of status `st` in directory `dir` (its real
/// path)? Root could; the file's owner could (when the directories let it
/// through); anyone could read a world-readable file behind directories
/// that let anyone through. Groups are not looked at: a file only a group
/// may read is not followed (the safe side: its options are then unknown).
fn readable_by(uid: u32, st: &nix::sys::stat::FileStat, dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if uid == 0 {
        return true;
    }
    let mine = st.st_uid == uid;
    if !mine && st.st_mode & 0o004 == 0 {
        return false;
    }
    dir.ancestors()
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.mode() & 0o001 != 0 || m.uid() == uid))
}

#[cfg(test)]
#[path = "configs_tests.rs"]
mod tests;
