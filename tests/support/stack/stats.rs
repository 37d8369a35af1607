//! Reading stats sockets; where the fastrouter's sockets are (each host's
//! own paths are in host.rs).

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uwsgi_reload::stats::{EmperorSnapshot, FastrouterSnapshot};

use super::{Host, Stack};

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
    /// The (first) fastrouter's stats socket.
    pub fn fastrouter_stats_path(&self) -> PathBuf {
        self.fastrouter_stats_paths().remove(0)
    }
    /// The (first) fastrouter's subscription server.
    pub fn subscription_path(&self) -> PathBuf {
        self.subscription_paths().remove(0)
    }
    pub fn fastrouter_stats(&self) -> Result<FastrouterSnapshot, String> {
        self.fastrouter_stats_at(&self.fastrouter_stats_path())
    }
    pub fn fastrouter_stats_at(&self, path: &Path) -> Result<FastrouterSnapshot, String> {
        let b = read_stats(path)?;
        FastrouterSnapshot::parse(&b)
            .map_err(|e| format!("fastrouter stats {}: {e:?}", path.display()))
    }
    /// `host`'s Emperor stats and the (first) fastrouter's, three tries.
    pub(super) fn both_stats(
        &self,
        host: &Host,
    ) -> Result<(EmperorSnapshot, FastrouterSnapshot), String> {
        let mut last = String::new();
        for _ in 0..3 {
            match (host.emperor_stats(), self.fastrouter_stats()) {
                (Ok(e), Ok(f)) => return Ok((e, f)),
                (Err(e), _) | (_, Err(e)) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last)
    }
}
