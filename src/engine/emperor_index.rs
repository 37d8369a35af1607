//! One Emperor snapshot with its records and blacklist entries indexed by
//! config name, built once per read: the engine looks each vassal up
//! several times per snapshot, and a scan of every record for each lookup
//! made a snapshot cost grow with the square of the fleet (the fastrouter
//! side is indexed the same way by `nodes::Matcher`).

use super::fxhash::FxMap;
use crate::stats::{BlacklistEntry, EmperorSnapshot, VassalStats};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexedEmperor {
    pub snap: EmperorSnapshot,
    vassals: FxMap<String, usize>,
    blacklist: FxMap<String, usize>,
    /// The record of the engine's vassal number i, resolved once per
    /// snapshot ([`IndexedEmperor::for_vassals`]): the hottest lookups
    /// then hash no name.
    at: Vec<Option<usize>>,
}

impl IndexedEmperor {
    pub fn new(snap: EmperorSnapshot) -> IndexedEmperor {
        // The first of duplicate ids wins, as `EmperorSnapshot::vassal`'s
        // scan gives it.
        let mut vassals = FxMap::default();
        vassals.reserve(snap.vassals.len());
        for (i, v) in snap.vassals.iter().enumerate() {
            vassals.entry(v.id.clone()).or_insert(i);
        }
        let mut blacklist = FxMap::default();
        for (i, b) in snap.blacklist.iter().enumerate() {
            blacklist.entry(b.id.clone()).or_insert(i);
        }
        IndexedEmperor {
            snap,
            vassals,
            blacklist,
            at: Vec::new(),
        }
    }

    /// [`IndexedEmperor::new`], with the records of `names` (the engine's
    /// vassals, in order) resolved at once.
    pub fn for_vassals<'n>(
        snap: EmperorSnapshot,
        names: impl Iterator<Item = &'n str>,
    ) -> IndexedEmperor {
        let mut e = IndexedEmperor::new(snap);
        e.at = names.map(|n| e.vassals.get(n).copied()).collect();
        e
    }

    /// The record of the engine's vassal number `i`, called `id`: the same
    /// as [`IndexedEmperor::vassal`]`(id)`, without hashing when `i` was
    /// resolved (a vassal added after this snapshot was not).
    pub fn vassal_at(&self, i: usize, id: &str) -> Option<&VassalStats> {
        match self.at.get(i) {
            Some(pos) => self.snap.vassals.get((*pos)?),
            None => self.vassal(id),
        }
    }

    /// The record of config `id`: `EmperorSnapshot::vassal`, in O(1).
    pub fn vassal(&self, id: &str) -> Option<&VassalStats> {
        self.snap.vassals.get(*self.vassals.get(id)?)
    }

    /// Its blacklist entry: `EmperorSnapshot::blacklisted`, in O(1).
    pub fn blacklisted(&self, id: &str) -> Option<&BlacklistEntry> {
        self.snap.blacklist.get(*self.blacklist.get(id)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index answers exactly what the scans answer, duplicates and
    /// misses included.
    #[test]
    fn index_agrees_with_the_scans() {
        let rec = |id: &str, pid: i64| VassalStats {
            id: id.into(),
            pid,
            ..Default::default()
        };
        let bl = |id: &str, attempt: i64| BlacklistEntry {
            id: id.into(),
            attempt,
            throttle_level: 0,
        };
        let snap = EmperorSnapshot {
            vassals: vec![rec("a.ini", 1), rec("b.ini", 2), rec("a.ini", 3)],
            blacklist: vec![bl("c.ini", 1), bl("c.ini", 2), bl("a.ini", 5)],
            ..Default::default()
        };
        let idx = IndexedEmperor::new(snap.clone());
        for id in ["a.ini", "b.ini", "c.ini", "d.ini", ""] {
            assert_eq!(idx.vassal(id), snap.vassal(id), "{id}");
            assert_eq!(idx.blacklisted(id), snap.blacklisted(id), "{id}");
        }
        // By position: resolved ones, and one added after the snapshot.
        let ids = ["b.ini", "a.ini", "d.ini"];
        let at = IndexedEmperor::for_vassals(snap.clone(), ids.into_iter());
        for (i, id) in ids.iter().chain(&["c.ini", "a.ini"]).enumerate() {
            assert_eq!(at.vassal_at(i, id), snap.vassal(id), "{i} {id}");
        }
    }
}
