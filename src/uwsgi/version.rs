//! uWSGI versions and the reload defects known per version (pure, no IO).
//!
//! Both stats documents carry uWSGI's version string at the top level
//! (`"version": "2.0.21-debian"`, `"2.0.27"`, `"2.0.19.1"`): the Emperor's
//! and the fastrouter's ([`crate::stats`]). Stats JSON and subscription
//! packets did not change across 2.0.x, but the reload machinery did, and on
//! one release (2.0.27) the reload uwsgi-reload drives, a touched config
//! through the Emperor, never reloads the workers: the rollout would take
//! vassals out one by one and none would come back. [`known_reload_defect`]
//! says so before the first touch. `docs/VERSIONS.md` has the table with its
//! evidence, and the version matrix (`tests/matrix.sh`) that measured it.

use std::cmp::Ordering;
use std::fmt;

/// A parsed `major.minor.patch[.extra]` uWSGI release; a distribution
/// suffix ("-debian", "-dev-f2a1c3") is kept apart and ignored in
/// comparisons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UwsgiVersion {
    /// `[major, minor, patch, extra]`: 2.0.19.1 is `[2, 0, 19, 1]`, 2.0.21 is
    /// `[2, 0, 21, 0]`.
    pub parts: [u32; 4],
    /// What followed the numbers ("-debian"), empty if nothing.
    pub suffix: String,
}

impl UwsgiVersion {
    pub const fn new(major: u32, minor: u32, patch: u32, extra: u32) -> Self {
        UwsgiVersion {
            parts: [major, minor, patch, extra],
            suffix: String::new(),
        }
    }

    /// Parses the stats `version` field. None when it does not start with a
    /// dotted number of 2 to 4 parts (an empty field, a build that renamed
    /// itself): the version is then unknown, never guessed.
    pub fn parse(s: &str) -> Option<UwsgiVersion> {
        let s = s.trim();
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (numbers, suffix) = s.split_at(end);
        let numbers = numbers.strip_suffix('.').unwrap_or(numbers);
        let fields: Vec<&str> = numbers.split('.').collect();
        if !(2..=4).contains(&fields.len()) {
            return None;
        }
        let mut parts = [0u32; 4];
        for (slot, f) in parts.iter_mut().zip(&fields) {
            *slot = f.parse().ok()?;
        }
        Some(UwsgiVersion {
            parts,
            suffix: suffix.to_string(),
        })
    }
}

impl PartialOrd for UwsgiVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UwsgiVersion {
    /// By the numbers only: "2.0.21-debian" is 2.0.21.
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl fmt::Display for UwsgiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.parts;
        write!(f, "{a}.{b}.{c}")?;
        if d != 0 {
            write!(f, ".{d}")?;
        }
        f.write_str(&self.suffix)
    }
}

/// What a defect means for a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impact {
    /// The reload uwsgi-reload drives (config touch, the Emperor reloads the
    /// vassal) does not work: refuse, unless the user accepts the risk.
    BreaksRollout,
    /// Another reload path is broken (one uwsgi-reload does not use); worth
    /// a line in the doctor, never a refusal.
    Advisory,
}

/// One known defect of a range of releases.
#[derive(Clone, Debug)]
pub struct ReloadDefect {
    /// First affected release.
    pub first: UwsgiVersion,
    /// First release with the fix (affected: `first <= v < fixed`).
    pub fixed: UwsgiVersion,
    pub impact: Impact,
    /// One line for the user, naming the fix.
    pub summary: &'static str,
    /// Where it is documented (upstream issues, changelog).
    pub evidence: &'static str,
}

impl ReloadDefect {
    pub fn affects(&self, v: &UwsgiVersion) -> bool {
        self.first <= *v && *v < self.fixed
    }
}

/// Every known defect, oldest first. Sources: the uWSGI changelogs and issue
/// tracker, and the version matrix of this repository (docs/VERSIONS.md).
pub fn known_defects() -> [ReloadDefect; 2] {
    [
        ReloadDefect {
            first: UwsgiVersion::new(2, 0, 27, 0),
            fixed: UwsgiVersion::new(2, 0, 28, 0),
            impact: Impact::BreaksRollout,
            summary: "uWSGI 2.0.27 does not reload its workers on a touched config or SIGHUP \
                      (a touched vassal never comes back); fixed in 2.0.28",
            evidence: "unbit/uwsgi issues 2681 and 2688, fixed by pull request 2689 \
                       (Changelog-2.0.28: \"Fix reload-on-touch/change regression from 2.0.27\")",
        },
        ReloadDefect {
            first: UwsgiVersion::new(2, 0, 27, 0),
            fixed: UwsgiVersion::new(2, 0, 31, 0),
            impact: Impact::Advisory,
            summary:
                "uWSGI 2.0.27 to 2.0.30: a master-FIFO fork reload (`f`, then `2q` to the old \
                      master) leaves the old master hanging; uwsgi-reload never sends these \
                      (it writes only `S`); fixed in 2.0.31",
            evidence: "unbit/uwsgi#2722; Changelog-2.0.31: \"Fix gracefully_kill_them_all() \
                       for setups using fifo-based master graceful reload\"",
        },
    ]
}

/// Every known defect of the release named by a stats `version` string
/// (none for an unparseable or empty one).
pub fn defects_of(version: &str) -> Vec<ReloadDefect> {
    let Some(v) = UwsgiVersion::parse(version) else {
        return Vec::new();
    };
    known_defects()
        .into_iter()
        .filter(|d| d.affects(&v))
        .collect()
}

/// The reason to refuse a rollout on this uWSGI, if its reload is known to
/// be broken (the first [`Impact::BreaksRollout`] defect's summary).
pub fn known_reload_defect(version: &str) -> Option<&'static str> {
    defects_of(version)
        .into_iter()
        .find(|d| d.impact == Impact::BreaksRollout)
        .map(|d| d.summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> UwsgiVersion {
        UwsgiVersion::parse(s).unwrap_or_else(|| panic!("{s:?} did not parse"))
    }

    #[test]
    fn parses_every_form_the_stats_show() {
        assert_eq!(v("2.0.21-debian").parts, [2, 0, 21, 0]);
        assert_eq!(v("2.0.21-debian").suffix, "-debian");
        assert_eq!(v("2.0.27").parts, [2, 0, 27, 0]);
        assert_eq!(v("2.0.19.1").parts, [2, 0, 19, 1]);
        assert_eq!(v("2.0.25.1").parts, [2, 0, 25, 1]);
        assert_eq!(v("2.1-dev-f2a1c3").parts, [2, 1, 0, 0]);
        assert_eq!(v(" 2.0.31\n").parts, [2, 0, 31, 0]);
        assert_eq!(v("2.0.18").to_string(), "2.0.18");
        assert_eq!(v("2.0.19.1").to_string(), "2.0.19.1");
        assert_eq!(v("2.0.21-debian").to_string(), "2.0.21-debian");
    }

    #[test]
    fn refuses_to_guess() {
        for s in [
            "",
            "debian",
            "2",
            "x2.0.27",
            "2.0.27.1.5",
            "2..27",
            ".2.0",
            "99999999999.0",
        ] {
            assert_eq!(UwsgiVersion::parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn orders_by_numbers_only() {
        assert!(v("2.0.19.1") > v("2.0.19"));
        assert!(v("2.0.19.1") < v("2.0.20"));
        assert!(v("2.0.9") < v("2.0.10"));
        assert_eq!(v("2.0.21-debian").cmp(&v("2.0.21")), Ordering::Equal);
    }

    #[test]
    fn only_2_0_27_breaks_the_rollout() {
        let reason = known_reload_defect("2.0.27").expect("2.0.27 is defective");
        assert!(reason.contains("2.0.28"), "names the fix: {reason}");
        assert!(known_reload_defect("2.0.27-el8").is_some());
        assert!(known_reload_defect("2.0.27.1").is_some());
        for ok in [
            "2.0.18",
            "2.0.19.1",
            "2.0.20",
            "2.0.21-debian",
            "2.0.24",
            "2.0.26",
            "2.0.28",
            "2.0.30",
            "2.0.31",
            "2.1-dev",
            "",
            "garbage",
        ] {
            assert_eq!(known_reload_defect(ok), None, "{ok}");
        }
    }

    #[test]
    fn the_fifo_fork_reload_defect_is_advisory_until_2_0_31() {
        for s in ["2.0.27", "2.0.28", "2.0.30"] {
            let d = defects_of(s);
            assert!(d.iter().any(|d| d.impact == Impact::Advisory), "{s}: {d:?}");
        }
        assert!(defects_of("2.0.26").is_empty());
        assert!(defects_of("2.0.31").is_empty());
        assert_eq!(defects_of("2.0.27").len(), 2);
    }

    #[test]
    fn both_stats_documents_carry_the_version() {
        use crate::stats::{EmperorSnapshot, FastrouterSnapshot};
        let emp = br#"{"version":"2.0.27","pid":7,"emperor":["/etc/uwsgi.d"],"vassals":[],"blacklist":[]}"#;
        let e = EmperorSnapshot::parse(emp).unwrap();
        assert_eq!(e.version, "2.0.27");
        assert!(known_reload_defect(&e.version).is_some());
        let fr =
            br#"{"version":"2.0.21-debian","pid":8,"fastrouter":[],"subscriptions":[],"cheap":0}"#;
        let f = FastrouterSnapshot::parse(fr).unwrap();
        assert_eq!(f.version, "2.0.21-debian");
        assert_eq!(known_reload_defect(&f.version), None);
        // absent: empty, the version is unknown (no refusal on a guess)
        let e = EmperorSnapshot::parse(br#"{"vassals":[]}"#).unwrap();
        assert_eq!(e.version, "");
        assert_eq!(UwsgiVersion::parse(&e.version), None);
    }

    #[test]
    fn every_defect_names_its_evidence_and_a_non_empty_range() {
        for d in known_defects() {
            assert!(d.first < d.fixed, "{d:?}");
            assert!(d.evidence.contains("unbit/uwsgi"), "{d:?}");
            assert!(d.summary.contains(&d.fixed.to_string()), "{d:?}");
        }
    }
}
