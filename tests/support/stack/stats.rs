//! Where a stack's files and sockets are, and reading its stats sockets.

use std::fs;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uwsgi_reload::stats::{EmperorSnapshot, FastrouterSnapshot};

use super::Stack;

/// Timeout of one stats read (connect + read to EOF), docs/UWSGI.md §13.
const STATS_TIMEOUT: Duration = Duration::from_secs(3);

/// Connect + read to EOF with a timeout.
pub fn read_stats(path: &Path) -> Result<Vec<u8>, String> {
    let mut s =
        UnixStream::connect(path).map_err(|e| format!("connect {}: {e}", path.display()))?;
    s.set_read_timeout(Some(STATS_TIMEOUT)).unwrap();
    let deadline = Instant::now() + STATS_TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return Ok(buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read {}: {e}", path.display())),
        }
        if Instant::now() > deadline {
            return Err(format!("read {}: timed out", path.display()));
        }
    }
}

impl Stack {
    // ---- paths ----
    pub fn vassals_dir(&self) -> PathBuf {
        self.dir.join("vassals")
    }
    pub fn emperor_stats_path(&self) -> PathBuf {
        self.dir.join("emperor-stats.sock")
    }
    /// The (first) fastrouter's stats socket.
    pub fn fastrouter_stats_path(&self) -> PathBuf {
        self.fastrouter_stats_paths().remove(0)
    }
    /// The (first) fastrouter's subscription server.
    pub fn subscription_path(&self) -> PathBuf {
        self.subscription_paths().remove(0)
    }
    /// The config file name of vassal `name` (what the Emperor calls it).
    pub fn config_file(&self, name: &str) -> String {
        match self.spec.vassal_files.get(name) {
            Some((file, _)) => file.clone(),
            None => format!("{name}.ini"),
        }
    }
    pub fn config_path(&self, name: &str) -> PathBuf {
        self.vassals_dir().join(self.config_file(name))
    }
    /// The node name the fastrouter shows for `name`.
    pub fn node_name(&self, name: &str) -> String {
        match self.spec.node_names.get(name) {
            Some(n) => n.clone(),
            None => format!("{}/{name}.sock", self.dir.display()),
        }
    }
    pub fn fifo_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.fifo"))
    }
    pub fn vassal_log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    // ---- stats ----
    pub fn emperor_stats(&self) -> Result<EmperorSnapshot, String> {
        let b = read_stats(&self.emperor_stats_path())?;
        EmperorSnapshot::parse(&b).map_err(|e| format!("emperor stats: {e:?}"))
    }
    pub fn fastrouter_stats(&self) -> Result<FastrouterSnapshot, String> {
        self.fastrouter_stats_at(&self.fastrouter_stats_path())
    }
    pub fn fastrouter_stats_at(&self, path: &Path) -> Result<FastrouterSnapshot, String> {
        let b = read_stats(path)?;
        FastrouterSnapshot::parse(&b)
            .map_err(|e| format!("fastrouter stats {}: {e:?}", path.display()))
    }
    pub(super) fn both_stats(&self) -> Result<(EmperorSnapshot, FastrouterSnapshot), String> {
        let mut last = String::new();
        for _ in 0..3 {
            match (self.emperor_stats(), self.fastrouter_stats()) {
                (Ok(e), Ok(f)) => return Ok((e, f)),
                (Err(e), _) | (_, Err(e)) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last)
    }

    /// The app vassal configs present in the directory (stems), in every
    /// format the Emperor loads; not a fastrouter vassal's.
    pub fn config_names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.vassals_dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()
                            .and_then(super::topology::config_stem)
                            .filter(|s| !(self.spec.fastrouter_vassal && s == "fastrouter"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}
