//! The Emperor stats document (`--emperor-stats-server`), docs/UWSGI.md §4-§7, §13.4.

use serde::Deserialize;

use super::{body, ParseError};

/// One read of the Emperor stats socket.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct EmperorSnapshot {
    /// uWSGI's version string (`2.0.21-debian`), for the report, the
    /// metrics and the known reload defects (`crate::uwsgi_version`);
    /// absent in old or foreign documents.
    #[serde(default)]
    pub version: String,
    /// The Emperor's own pid.
    #[serde(default)]
    pub pid: i64,
    /// One entry per scanner: for a directory monitor, its real path.
    #[serde(default)]
    pub emperor: Vec<String>,
    pub vassals: Vec<VassalStats>,
    #[serde(default)]
    pub blacklist: Vec<BlacklistEntry>,
}

/// One vassal record. All times are wall-clock seconds.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct VassalStats {
    /// The config file name as the directory scanner sees it (`app_01.ini`).
    pub id: String,
    /// The vassal master pid: unchanged by a graceful reload, new after a
    /// crash-respawn (docs/UWSGI.md §5).
    pub pid: i64,
    /// The config mtime that triggered the last (re)load.
    pub last_mod: i64,
    /// Never returns to 1 after a graceful reload (docs/UWSGI.md §6): kept only for
    /// display, never used as a readiness signal.
    pub ready: i64,
    /// Worker 1 entered its accept loop since the last reload request.
    pub accepting: i64,
    pub last_accepting: i64,
    /// Reload requests the Emperor sent to this record.
    pub respawns: i64,
    /// Non-zero while the Emperor is stopping or burying the vassal.
    pub cursed: i64,
    #[serde(default)]
    pub loyal: i64,
    #[serde(default)]
    pub born: i64,
    #[serde(default)]
    pub first_run: i64,
    #[serde(default)]
    pub last_run: i64,
}

/// A vassal that failed to start and is being throttled (docs/UWSGI.md §7).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct BlacklistEntry {
    pub id: String,
    pub throttle_level: i64,
    pub attempt: i64,
}

impl EmperorSnapshot {
    /// Parses one Emperor stats answer, strictly.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let b = body(bytes)?;
        serde_json::from_slice(b).map_err(|e| ParseError::Invalid {
            detail: e.to_string(),
        })
    }

    pub fn vassal(&self, id: &str) -> Option<&VassalStats> {
        self.vassals.iter().find(|v| v.id == id)
    }

    pub fn blacklisted(&self, id: &str) -> Option<&BlacklistEntry> {
        self.blacklist.iter().find(|b| b.id == id)
    }
}
