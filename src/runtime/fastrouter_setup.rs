//! What this host can tell about the fastrouter's own settings (its
//! `subscription-tolerance`, `fastrouter-cheap`), from the command line of the process behind its
//! stats socket (`/proc/PID/cmdline`, the pid the stats give) and the ini
//! files that command line names, and what that changes for every router of
//! an HA pair ([`learn_fastrouter_options`]). Node freshness is then exact
//! instead of derived from the vassals' subscribe-freq (fsm/AVAILABILITY.md).

use std::path::{Path, PathBuf};

use super::safe_read::{self, MAX_CONFIG_BYTES};
use crate::vassal_config::VassalConfig;

const OPTION: &str = "subscription-tolerance";

/// What the fastrouter's own command line (and the ini files it names) say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FastrouterOptions {
    /// `subscription-tolerance` in seconds, and where it was found.
    pub tolerance: Option<(i64, String)>,
    /// `fastrouter-cheap` is set: the router stops accepting when its last
    /// node goes, of any key (on a one-key router: when that key empties;
    /// docs/UWSGI.md §15).
    pub cheap: bool,
    /// Its `fastrouter-subscription-server` (`fastrouter-ss`) values: the
    /// only servers the tool's datagrams may go to (docs/SECURITY.md).
    pub servers: Vec<String>,
    /// `subscriptions-sign-check` is set: it ignores unsigned packets, as
    /// the tool's are.
    pub sign_check: bool,
    /// Its command line was read (the pid is visible here).
    pub known: bool,
}

/// The fastrouter's options, if the process `pid` is visible here.
pub fn options(pid: i64) -> FastrouterOptions {
    if pid <= 0 {
        return FastrouterOptions::default();
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    // Every read is bounded and never blocks (safe_read.rs): the ini a
    // router's command line names may live in a directory others write.
    let Ok(raw) = safe_read::read_capped(&proc_dir.join("cmdline"), MAX_CONFIG_BYTES) else {
        return FastrouterOptions::default();
    };
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let cwd = std::fs::read_link(proc_dir.join("cwd")).unwrap_or_else(|_| PathBuf::from("/"));
    let read = |p: &Path| safe_read::read_text(p, MAX_CONFIG_BYTES).ok();
    let line = CommandLine::read(&args, &cwd, &read);
    let mut servers = Vec::new();
    for name in ["fastrouter-subscription-server", "fastrouter-ss"] {
        servers.extend(line.values(name));
    }
    FastrouterOptions {
        tolerance: line.tolerance(),
        cheap: line.option_set("fastrouter-cheap"),
        servers,
        sign_check: !line.values("subscriptions-sign-check").is_empty(),
        known: true,
    }
}

/// What the routers' own options change (`routers`: each one's, where
/// its command line could be read, `session::router_options`). Their real
/// `subscription-tolerance` makes node freshness exact when
/// `--subscription-tolerance` is not given (fsm/AVAILABILITY.md); of an HA
/// pair, only when every router's is known, and then the smallest (a node
/// its own router still routes to is at worst not counted live: the safe
/// side of K). `fastrouter-cheap` on any router is worth a warning.
/// Returns the notes to print.
pub fn learn_fastrouter_options(
    cfg: &crate::run_config::Config,
    s: &mut crate::engine::Settings,
    routers: &[Option<FastrouterOptions>],
) -> Vec<String> {
    let mut notes = Vec::new();
    let one = routers.len() == 1;
    let tolerances: Vec<Option<&(i64, String)>> = routers
        .iter()
        .map(|r| r.as_ref().and_then(|o| o.tolerance.as_ref()))
        .collect();
    let known: Vec<&(i64, String)> = tolerances.iter().flatten().copied().collect();
    if !s.node_tolerance_known && !known.is_empty() {
        if known.len() == routers.len() {
            let t = known.iter().map(|(t, _)| *t).min().expect("not empty");
            s.node_tolerance_s = t;
            s.node_tolerance_known = true;
            let from: Vec<String> = known.iter().map(|(_, f)| format!("from {f}")).collect();
            notes.push(if one {
                format!("note: the fastrouter's subscription-tolerance is {t} s ({}): nodes older than that are not live", from[0])
            } else if known.iter().all(|(x, _)| *x == t) {
                format!("note: the fastrouters' subscription-tolerance is {t} s ({}): nodes older than that are not live", from.join("; "))
            } else {
                let each: Vec<String> = cfg
                    .fastrouter_stats
                    .iter()
                    .zip(&known)
                    .map(|(spec, (x, f))| format!("{x} s on {spec} (from {f})"))
                    .collect();
                format!("note: the fastrouters' subscription-tolerances differ ({}): nodes older than the smallest, {t} s, are not counted live", each.join(", "))
            });
        } else {
            let unknown: Vec<String> = cfg
                .fastrouter_stats
                .iter()
                .zip(&tolerances)
                .filter(|(_, t)| t.is_none())
                .map(|(spec, _)| spec.to_string())
                .collect();
            notes.push(format!(
                "note: the subscription-tolerance of the fastrouter behind {} cannot be read here: node freshness is judged by the default for every fastrouter; pass --subscription-tolerance to give it",
                unknown.join(", ")
            ));
        }
    }
    let cheap: Vec<String> = cfg
        .fastrouter_stats
        .iter()
        .zip(routers)
        .filter(|(_, r)| r.as_ref().is_some_and(|o| o.cheap))
        .map(|(spec, _)| spec.to_string())
        .collect();
    if !cheap.is_empty() {
        let who = if one {
            "the fastrouter runs".to_string()
        } else {
            format!("the fastrouter behind {} runs", cheap.join(", "))
        };
        notes.push(format!(
            "warning: {who} with fastrouter-cheap: when it has no node left (for any key) it stops accepting and drops the requests in flight (unbit/uwsgi#2302, docs/UWSGI.md §15); keep K >= 1 (never --allow-downtime to 0) or drop fastrouter-cheap"
        ));
    }
    notes
}

/// A router's command line with the ini files it names, each read and
/// parsed once (with what it includes): every option the tool asks of the
/// router is answered from it.
struct CommandLine<'a> {
    args: &'a [String],
    /// Each ini the command line loads: (its path, what it sets).
    inis: Vec<(PathBuf, VassalConfig)>,
}

impl<'a> CommandLine<'a> {
    /// `args` run in `cwd`, its ini files read with `read` (pure but for
    /// `read`, so it is tested without a process). Relative paths are
    /// resolved against the directory uWSGI resolves them in (its cwd).
    fn read(
        args: &'a [String],
        cwd: &Path,
        read: &dyn Fn(&Path) -> Option<String>,
    ) -> CommandLine<'a> {
        let inis = inis(args)
            .into_iter()
            .filter_map(|f| {
                let path = resolve(cwd, &f);
                let c = parse_ini(&path, &f, read)?;
                Some((path, c))
            })
            .collect();
        CommandLine { args, inis }
    }

    /// Every value of option `name` on the command line (`--name V`,
    /// `--name=V`) and in the ini files it names.
    fn values(&self, name: &str) -> Vec<String> {
        let flag = format!("--{name}");
        let mut out = Vec::new();
        for (i, a) in self.args.iter().enumerate().skip(1) {
            if *a == flag {
                out.extend(self.args.get(i + 1).cloned());
            } else if let Some(v) = a.strip_prefix(&flag).and_then(|r| r.strip_prefix('=')) {
                out.push(v.to_string());
            }
        }
        for (_, c) in &self.inis {
            out.extend(c.get_all(name).map(str::to_string));
        }
        out
    }

    /// Is the boolean option `name` set on the command line or in an ini
    /// it names?
    fn option_set(&self, name: &str) -> bool {
        let flag = format!("--{name}");
        if self
            .args
            .iter()
            .any(|a| *a == flag || a.starts_with(&format!("{flag}=")))
        {
            return true;
        }
        self.inis.iter().any(|(_, c)| {
            c.get_all(name)
                .last()
                .is_some_and(|v| !matches!(v.trim(), "false" | "0" | "off" | "no"))
        })
    }

    /// Its `subscription-tolerance` and where it was read, if known.
    fn tolerance(&self) -> Option<(i64, String)> {
        let flag = format!("--{OPTION}");
        for (i, a) in self.args.iter().enumerate().skip(1) {
            let v = if *a == flag {
                self.args.get(i + 1).and_then(|v| seconds(v))
            } else {
                a.strip_prefix(&format!("{flag}=")).and_then(seconds)
            };
            if let Some(v) = v {
                return Some((v, "the fastrouter's command line".into()));
            }
        }
        for (path, cfg) in &self.inis {
            // A file it loads but the tool could not read may set it
            // again: then the value is not known (the safe side: each
            // vassal's subscribe-freq sets the tolerance,
            // `Settings::tolerance_s`).
            if !cfg.includes.is_empty() {
                return None;
            }
            // uWSGI keeps the last value set.
            if let Some(v) = cfg.get_all(OPTION).last().and_then(seconds) {
                return Some((v, path.display().to_string()));
            }
        }
        None
    }
}

/// An ini of the router's command line, with the files it includes
/// (docs/UWSGI.md §20) read through `read` as well: the router's own files,
/// read the way its command line's are.
fn parse_ini(path: &Path, f: &str, read: &dyn Fn(&Path) -> Option<String>) -> Option<VassalConfig> {
    let text = read(path)?;
    let dir = path
        .parent()
        .map_or("/".into(), |d| d.display().to_string());
    let mut include = |abs: &str, cap: usize| {
        let text = read(Path::new(abs)).ok_or_else(|| format!("{abs}: not read"))?;
        if text.len() > cap {
            return Err(format!("{abs}: over the size limit"));
        }
        Ok(crate::vassal_config::Included {
            real_path: abs.to_string(),
            text,
        })
    };
    let budget = (MAX_CONFIG_BYTES as usize).saturating_sub(text.len());
    Some(VassalConfig::parse_following(
        &text,
        f,
        &dir,
        &mut include,
        budget,
    ))
}

/// The ini files a uWSGI command line loads (`--ini F`, `--ini=F`, or a bare
/// `F.ini` as its first argument); `F:section` forms are not followed.
fn inis(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate().skip(1) {
        if a == "--ini" {
            if let Some(f) = args.get(i + 1) {
                out.push(f.clone());
            }
        } else if let Some(f) = a.strip_prefix("--ini=") {
            out.push(f.to_string());
        } else if !a.starts_with('-') && a.ends_with(".ini") && i == 1 {
            out.push(a.clone());
        }
    }
    out.retain(|f| !f.contains(':'));
    out
}

fn resolve(cwd: &Path, f: &str) -> PathBuf {
    if Path::new(f).is_absolute() {
        PathBuf::from(f)
    } else {
        cwd.join(f)
    }
}

fn seconds(v: &str) -> Option<i64> {
    let n: i64 = v.trim().parse().ok()?;
    (n > 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cheap_from_the_command_line_or_an_ini() {
        let none = |_: &Path| None;
        let a = args(&["uwsgi", "--fastrouter-cheap", "--master"]);
        assert!(CommandLine::read(&a, Path::new("/"), &none).option_set("fastrouter-cheap"));
        let ini = |_: &Path| Some("[uwsgi]\nfastrouter-cheap = true\n".to_string());
        let a = args(&["uwsgi", "--ini", "/e.ini"]);
        assert!(CommandLine::read(&a, Path::new("/"), &ini).option_set("fastrouter-cheap"));
        assert!(!CommandLine::read(&a, Path::new("/"), &none).option_set("fastrouter-cheap"));
    }

    #[test]
    fn subscription_servers_from_the_command_line_and_an_ini() {
        let ini = |_: &Path| {
            Some("[uwsgi]\nfastrouter-subscription-server = /r/ss.sock\nsubscriptions-sign-check = SHA1:/k\n".to_string())
        };
        let a = args(&["uwsgi", "--fastrouter-ss=127.0.0.1:7000", "--ini", "/e.ini"]);
        let line = CommandLine::read(&a, Path::new("/"), &ini);
        let mut got = line.values("fastrouter-ss");
        got.extend(line.values("fastrouter-subscription-server"));
        assert_eq!(got, ["127.0.0.1:7000", "/r/ss.sock"]);
        assert_eq!(line.values("subscriptions-sign-check").len(), 1);
    }

    #[test]
    fn from_the_command_line() {
        let none = |_: &Path| None;
        let a = args(&["uwsgi", "--master", "--subscription-tolerance", "60"]);
        assert_eq!(
            CommandLine::read(&a, Path::new("/"), &none)
                .tolerance()
                .map(|x| x.0),
            Some(60)
        );
        let a = args(&["uwsgi", "--subscription-tolerance=45"]);
        assert_eq!(
            CommandLine::read(&a, Path::new("/"), &none)
                .tolerance()
                .map(|x| x.0),
            Some(45)
        );
        let a = args(&["uwsgi", "--master", "--emperor", "/etc/uwsgi"]);
        assert_eq!(
            CommandLine::read(&a, Path::new("/"), &none).tolerance(),
            None
        );
    }

    /// The tolerance set in a file the router's ini includes is read there,
    /// the last value winning; one the tool cannot read makes it unknown.
    #[test]
    fn from_a_file_the_ini_includes() {
        let read = |p: &Path| {
            match p.to_str()? {
            "/srv/emperor.ini" => Some(
                "[uwsgi]\nsubscription-tolerance = 10\nini = /srv/common.ini\nfastrouter-ss = /r/a.sock\n".to_string(),
            ),
            "/srv/common.ini" => Some(
                "[uwsgi]\nsubscription-tolerance = 60\nfastrouter-cheap = true\n".to_string(),
            ),
            _ => None,
        }
        };
        let a = args(&["uwsgi", "--ini", "/srv/emperor.ini"]);
        let line = CommandLine::read(&a, Path::new("/"), &read);
        assert_eq!(line.tolerance().map(|x| x.0), Some(60));
        assert!(line.option_set("fastrouter-cheap"));
        let unreadable = |p: &Path| match p.to_str()? {
            "/srv/emperor.ini" => {
                Some("[uwsgi]\nsubscription-tolerance = 10\nini = /srv/common.ini\n".to_string())
            }
            _ => None,
        };
        assert_eq!(
            CommandLine::read(&a, Path::new("/"), &unreadable).tolerance(),
            None
        );
    }

    #[test]
    fn from_an_ini_it_names_relative_to_its_cwd() {
        let read = |p: &Path| {
            (p == Path::new("/srv/emperor.ini"))
                .then(|| "[uwsgi]\nemperor = /srv/v\nsubscription-tolerance = 60\n".to_string())
        };
        let a = args(&["uwsgi", "--ini", "emperor.ini"]);
        let got = CommandLine::read(&a, Path::new("/srv"), &read).tolerance();
        assert_eq!(got, Some((60, "/srv/emperor.ini".into())));
        let a = args(&["uwsgi", "emperor.ini"]);
        assert_eq!(
            CommandLine::read(&a, Path::new("/srv"), &read)
                .tolerance()
                .map(|x| x.0),
            Some(60)
        );
        // An ini without the option: unknown.
        let plain = |_: &Path| Some("[uwsgi]\nmaster = true\n".to_string());
        assert_eq!(
            CommandLine::read(&a, Path::new("/srv"), &plain).tolerance(),
            None
        );
    }

    fn tolerant(t: Option<i64>, cheap: bool) -> Option<FastrouterOptions> {
        Some(FastrouterOptions {
            tolerance: t.map(|t| (t, "its command line".to_string())),
            cheap,
            known: true,
            ..FastrouterOptions::default()
        })
    }

    fn cfg_with_routers(n: usize) -> crate::run_config::Config {
        let mut args = vec!["--emperor-path".to_string(), "/tmp".to_string()];
        for i in 0..n {
            args.push("--fastrouter-stats-socket".into());
            args.push(format!("/run/fr{i}.sock"));
        }
        args.extend(["--emperor-stats-socket".into(), "/run/emp.sock".into()]);
        crate::cli::parse(args.into_iter().map(std::ffi::OsString::from)).unwrap()
    }

    /// Of an HA pair the tolerance is learnt only when every router's is
    /// known, and then the smallest; one unknown keeps the default (with a
    /// note naming it); `fastrouter-cheap` on any router is warned of,
    /// naming it. One router keeps its one-router wording.
    #[test]
    fn every_router_counts_for_the_tolerance_and_cheap() {
        let cfg = cfg_with_routers(2);
        let mut s = cfg.settings.clone();
        let notes = learn_fastrouter_options(
            &cfg,
            &mut s,
            &[tolerant(Some(40), false), tolerant(Some(30), true)],
        );
        assert!(
            s.node_tolerance_known && s.node_tolerance_s == 30,
            "{notes:?}"
        );
        assert!(
            notes[0].contains("differ (40 s on /run/fr0.sock"),
            "{notes:?}"
        );
        assert!(
            notes[1].contains("the fastrouter behind /run/fr1.sock runs with fastrouter-cheap"),
            "{notes:?}"
        );

        let mut s = cfg.settings.clone();
        let notes = learn_fastrouter_options(&cfg, &mut s, &[tolerant(Some(40), false), None]);
        assert!(
            !s.node_tolerance_known && s.node_tolerance_s == 17,
            "{notes:?}"
        );
        assert!(
            notes[0].contains("behind /run/fr1.sock cannot be read"),
            "{notes:?}"
        );

        let cfg = cfg_with_routers(1);
        let mut s = cfg.settings.clone();
        let notes = learn_fastrouter_options(&cfg, &mut s, &[tolerant(Some(25), true)]);
        assert_eq!(s.node_tolerance_s, 25);
        assert!(
            notes[0].starts_with(
                "note: the fastrouter's subscription-tolerance is 25 s (from its command line)"
            ),
            "{notes:?}"
        );
        assert!(
            notes[1].starts_with("warning: the fastrouter runs with fastrouter-cheap"),
            "{notes:?}"
        );
    }
}
