//! What the Emperor gave a vassal besides its file: the options on its
//! master's command line (`/proc/<pid>/cmdline`). The Emperor passes its
//! `vassal-set` as `--set name=value`, and its `vassals-include` /
//! `vassals-inherit` as `--include FILE` / `--inherit FILE`
//! (`uwsgi_emperor_spawn_vassal`, docs/UWSGI.md §9.12).

use std::io::Read;

/// The most of a command line read: uWSGI's own argument table fits in a
/// few KiB; a longer one is not a vassal master the tool understands.
const MAX_CMDLINE: u64 = 256 * 1024;

/// The options the Emperor set for vassal master `pid`, in order, or why
/// the tool cannot know them all (unreadable, or files it does not follow).
pub fn emperor_options(pid: i64) -> Result<Vec<(String, String)>, String> {
    if pid <= 0 {
        return Err("not running".into());
    }
    let path = format!("/proc/{pid}/cmdline");
    let mut raw = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_CMDLINE + 1).read_to_end(&mut raw))
        .map_err(|e| format!("{path}: {e}"))?;
    if raw.len() as u64 > MAX_CMDLINE {
        return Err(format!("{path}: longer than {MAX_CMDLINE} bytes"));
    }
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    parse(&args)
}

/// The `--set` options of a vassal master's arguments; `Err` when they
/// load a file the tool does not follow.
pub fn parse(args: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let (name, inline) = match a.strip_prefix("--") {
            Some(rest) => match rest.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (rest, None),
            },
            None => continue,
        };
        match name {
            "set" => {
                let v = match inline {
                    Some(v) => v,
                    None => it.next().cloned().unwrap_or_default(),
                };
                if let Some((k, v)) = v.split_once('=') {
                    out.push((k.to_string(), v.to_string()));
                }
            }
            "include" | "inherit" => {
                let file = inline.or_else(|| it.next().cloned()).unwrap_or_default();
                return Err(format!(
                    "its master loads {file} (--{name}), which the tool does not read"
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_emperors_vassal_set_is_read_in_order() {
        let got = parse(&args(&[
            "uwsgi-core",
            "--set",
            "subscribe-freq=30",
            "--set=a=b=c",
            "--ini",
            "vassal_01.ini",
        ]))
        .unwrap();
        assert_eq!(
            got,
            [
                ("subscribe-freq".to_string(), "30".to_string()),
                ("a".to_string(), "b=c".to_string())
            ]
        );
        assert!(parse(&args(&["uwsgi", "--ini", "v.ini"]))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn an_included_file_makes_the_options_unknown() {
        let e = parse(&args(&[
            "uwsgi",
            "--inherit",
            "/etc/base.ini",
            "--ini",
            "v.ini",
        ]));
        assert!(e.unwrap_err().contains("/etc/base.ini"));
        assert!(parse(&args(&["uwsgi", "--include=/x.ini"])).is_err());
    }

    #[test]
    fn this_process_can_be_read_and_a_missing_one_cannot() {
        assert!(emperor_options(std::process::id() as i64).is_ok());
        assert!(emperor_options(0).is_err());
        assert!(emperor_options(i64::from(i32::MAX)).is_err());
    }
}
