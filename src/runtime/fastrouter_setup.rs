//! What this host can tell about the fastrouter's own settings: its
//! `subscription-tolerance`, from the command line of the process behind its
//! stats socket (`/proc/PID/cmdline`, the pid the stats give) and the ini
//! files that command line names. Node freshness is then exact instead of
//! derived from the vassals' subscribe-freq (fsm/AVAILABILITY.md).

use std::path::{Path, PathBuf};

use crate::vassal_config::VassalConfig;

const OPTION: &str = "subscription-tolerance";

/// The fastrouter's `subscription-tolerance` in seconds and where it was
/// found, if the process `pid` is visible here and sets it (uWSGI's default,
/// 17 s, is what the engine assumes otherwise).
pub fn subscription_tolerance(pid: i64) -> Option<(i64, String)> {
    if pid <= 0 {
        return None;
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let raw = std::fs::read(proc_dir.join("cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let cwd = std::fs::read_link(proc_dir.join("cwd")).unwrap_or_else(|_| PathBuf::from("/"));
    from_args(&args, &cwd, &|p: &Path| std::fs::read_to_string(p).ok())
}

/// The same from a command line, reading ini files with `read` (pure but
/// for `read`, so it is tested without a process).
pub fn from_args(
    args: &[String],
    cwd: &Path,
    read: &dyn Fn(&Path) -> Option<String>,
) -> Option<(i64, String)> {
    let flag = format!("--{OPTION}");
    let mut inis = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        let next = args.get(i + 1);
        if *a == flag {
            if let Some(v) = next.and_then(|v| seconds(v)) {
                return Some((v, "the fastrouter's command line".into()));
            }
        } else if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
            if let Some(v) = seconds(v) {
                return Some((v, "the fastrouter's command line".into()));
            }
        } else if a == "--ini" {
            if let Some(f) = next {
                inis.push(f.clone());
            }
        } else if let Some(f) = a.strip_prefix("--ini=") {
            inis.push(f.to_string());
        } else if !a.starts_with('-') && a.ends_with(".ini") && i == 1 {
            inis.push(a.clone());
        }
        i += 1;
    }
    for f in inis {
        // `file.ini:section` names another section: not followed here.
        if f.contains(':') {
            continue;
        }
        let path = if Path::new(&f).is_absolute() {
            PathBuf::from(&f)
        } else {
            cwd.join(&f)
        };
        let Some(text) = read(&path) else { continue };
        let dir = path
            .parent()
            .map_or("/".into(), |d| d.display().to_string());
        let cfg = VassalConfig::parse(&text, &f, &dir);
        if let Some(v) = cfg.get(OPTION).and_then(seconds) {
            return Some((v, path.display().to_string()));
        }
    }
    None
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
    fn from_the_command_line() {
        let none = |_: &Path| None;
        let a = args(&["uwsgi", "--master", "--subscription-tolerance", "60"]);
        assert_eq!(from_args(&a, Path::new("/"), &none).map(|x| x.0), Some(60));
        let a = args(&["uwsgi", "--subscription-tolerance=45"]);
        assert_eq!(from_args(&a, Path::new("/"), &none).map(|x| x.0), Some(45));
        let a = args(&["uwsgi", "--master", "--emperor", "/etc/uwsgi"]);
        assert_eq!(from_args(&a, Path::new("/"), &none), None);
    }

    #[test]
    fn from_an_ini_it_names_relative_to_its_cwd() {
        let read = |p: &Path| {
            (p == Path::new("/srv/emperor.ini"))
                .then(|| "[uwsgi]\nemperor = /srv/v\nsubscription-tolerance = 60\n".to_string())
        };
        let a = args(&["uwsgi", "--ini", "emperor.ini"]);
        let got = from_args(&a, Path::new("/srv"), &read);
        assert_eq!(got, Some((60, "/srv/emperor.ini".into())));
        let a = args(&["uwsgi", "emperor.ini"]);
        assert_eq!(
            from_args(&a, Path::new("/srv"), &read).map(|x| x.0),
            Some(60)
        );
        // An ini without the option: unknown.
        let plain = |_: &Path| Some("[uwsgi]\nmaster = true\n".to_string());
        assert_eq!(from_args(&a, Path::new("/srv"), &plain), None);
    }
}
