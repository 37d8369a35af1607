//! Following includes (`includes.rs`, docs/UWSGI.md §20), with the files
//! given from a map instead of read.

use std::collections::BTreeMap;

use super::*;

const DIR: &str = "/srv/vassals/";

/// Parses `main` as `/srv/vassals/app_01.ini` with `files` (absolute path
/// to text) readable; returns the config and the paths the reader was
/// asked for.
fn with_files(main: &str, files: &[(&str, &str)]) -> (VassalConfig, Vec<String>) {
    let files: BTreeMap<String, String> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    let mut asked = Vec::new();
    let mut read = |path: &str, cap: usize| {
        asked.push(path.to_string());
        match files.get(path) {
            Some(t) if t.len() <= cap => Ok(Included {
                real_path: path.to_string(),
                text: t.clone(),
            }),
            Some(_) => Err(format!("{path}: refused: over {cap} bytes")),
            None => Err(format!("{path}: cannot read: No such file or directory")),
        }
    };
    let c = VassalConfig::parse_following(main, "app_01.ini", DIR, &mut read, 1 << 20);
    (c, asked)
}

const COMMON: &str = "[uwsgi]\nsocket = /run/app/%N.sock\nsubscribe2 = server=/run/ss.sock,key=%N.example\nmaster-fifo = %d%N.fifo\n";

#[test]
fn socket_and_subscription_from_an_included_ini_name_the_node() {
    let (c, asked) = with_files(
        "[uwsgi]\nini = /etc/uwsgi/common.ini\n",
        &[("/etc/uwsgi/common.ini", COMMON)],
    );
    assert_eq!(asked, ["/etc/uwsgi/common.ini"]);
    assert_eq!(c.node_name().as_deref(), Some("/run/app/app_01.sock"));
    assert_eq!(c.subscriptions[0].key, "app_01.example");
    // %d is the included file's directory, %N the vassal's name.
    assert_eq!(c.master_fifos, ["/etc/uwsgi/app_01.fifo"]);
    assert!(c.includes.is_empty(), "{c:?}");
    assert_eq!(c.followed_includes, ["/etc/uwsgi/common.ini"]);
    // The pure parse reads nothing and records it, as before.
    let p = VassalConfig::parse("[uwsgi]\nini = /etc/uwsgi/common.ini\n", "app_01.ini", DIR);
    assert_eq!(p.includes, ["/etc/uwsgi/common.ini"]);
    assert!(p.sockets.is_empty() && p.warnings.is_empty());
}

#[test]
fn an_include_s_options_stand_where_its_line_is() {
    let files = [("/etc/f.ini", "[uwsgi]\nsubscribe-freq = 20\n")];
    let (before, _) = with_files(
        "[uwsgi]\nsubscribe-freq = 5\ninclude = /etc/f.ini\n",
        &files,
    );
    assert_eq!(before.subscribe_freq(), Some(20));
    let (after, _) = with_files(
        "[uwsgi]\ninclude = /etc/f.ini\nsubscribe-freq = 5\n",
        &files,
    );
    assert_eq!(after.subscribe_freq(), Some(5));
    let keys: Vec<&str> = after.options.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["include", "subscribe-freq", "subscribe-freq"]);
}

#[test]
fn lower_case_magic_is_the_included_file_upper_case_the_vassal() {
    let (c, _) = with_files(
        "[uwsgi]\nini = %dshared/base.ini\n",
        &[(
            "/srv/vassals/shared/base.ini",
            "[uwsgi]\na = %n|%s|%d|%c|%o\nb = %N|%S|%D|%C|%O\n",
        )],
    );
    assert_eq!(
        c.get("a"),
        Some("base|base.ini|/srv/vassals/shared/|shared|/srv/vassals/shared/base.ini")
    );
    assert_eq!(
        c.get("b"),
        Some("app_01|app_01.ini|/srv/vassals/|vassals|app_01.ini")
    );
}

#[test]
fn relative_paths_are_opened_from_the_vassal_s_directory() {
    let (c, asked) = with_files(
        "[uwsgi]\nini = common/x.ini\n",
        &[("/srv/vassals/common/x.ini", "[uwsgi]\nsocket = /x\n")],
    );
    assert_eq!(asked, ["/srv/vassals/common/x.ini"]);
    assert_eq!(c.sockets, ["/x"]);
}

#[test]
fn placeholders_resolve_across_files() {
    let (c, _) = with_files(
        "[uwsgi]\nbase = /run/app\nini = /etc/f.ini\nsubscribe2 = server=%(ss),key=k\n",
        &[(
            "/etc/f.ini",
            "[uwsgi]\nss = /run/ss.sock\nsocket = %(base)/s.sock\n",
        )],
    );
    assert_eq!(c.sockets, ["/run/app/s.sock"]);
    assert_eq!(c.subscriptions[0].server, "/run/ss.sock");
}

#[test]
fn nesting_stops_at_the_depth_cap() {
    let names: Vec<String> = (0..=12).map(|i| format!("/etc/d{i}.ini")).collect();
    let texts: Vec<String> = (0..=12)
        .map(|i| format!("[uwsgi]\nlevel = {i}\nini = /etc/d{}.ini\n", i + 1))
        .collect();
    let files: Vec<(&str, &str)> = names
        .iter()
        .zip(&texts)
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let (c, asked) = with_files("[uwsgi]\nini = /etc/d0.ini\n", &files);
    assert_eq!(asked.len(), MAX_INCLUDE_DEPTH);
    assert_eq!(c.get_all("level").count(), MAX_INCLUDE_DEPTH);
    assert_eq!(c.includes, [format!("/etc/d{MAX_INCLUDE_DEPTH}.ini")]);
    assert!(
        c.warnings.iter().any(|w| w.contains("deep")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn a_cycle_is_stopped_and_recorded() {
    let (c, _) = with_files(
        "[uwsgi]\nini = /etc/a.ini\n",
        &[
            ("/etc/a.ini", "[uwsgi]\nsocket = /a\nini = /etc/b.ini\n"),
            ("/etc/b.ini", "[uwsgi]\nini = /etc/a.ini\nsocket = /b\n"),
        ],
    );
    assert_eq!(c.sockets, ["/a", "/b"]);
    assert_eq!(c.includes, ["/etc/a.ini"]);
    assert!(
        c.warnings.iter().any(|w| w.contains("cycle")),
        "{:?}",
        c.warnings
    );
}

const JSON: &str = r#"{"uwsgi": {"socket": "/j.sock", "subscribe-freq": 7}}"#;

#[test]
fn json_is_chosen_by_the_option_or_by_the_extension() {
    let files = [("/etc/j", JSON), ("/etc/j.json", JSON)];
    let (by_option, _) = with_files("[uwsgi]\njson = /etc/j\n", &files);
    assert_eq!(by_option.sockets, ["/j.sock"]);
    assert_eq!(by_option.subscribe_freq(), Some(7));
    let (by_ext, _) = with_files("[uwsgi]\ninclude = /etc/j.json\n", &files);
    assert_eq!(by_ext.sockets, ["/j.sock"]);
    // `include` of an unknown extension goes to a plugin: not followed.
    let (plugin, asked) = with_files("[uwsgi]\ninclude = /etc/j\n", &files);
    assert!(asked.is_empty() && plugin.sockets.is_empty());
    assert_eq!(plugin.includes, ["/etc/j"]);
    // A broken included file is not followed either.
    let (broken, _) = with_files(
        "[uwsgi]\njson = /etc/x.json\n",
        &[("/etc/x.json", "not json")],
    );
    assert_eq!(broken.includes, ["/etc/x.json"]);
}

#[test]
fn inherit_comes_after_everything_and_keeps_its_placeholders() {
    let (c, _) = with_files(
        "[uwsgi]\nt = /etc\ninherit = %(t)/tpl.ini\nsubscribe-freq = 5\nsocket = /own\n",
        &[(
            "/etc/tpl.ini",
            "[uwsgi]\nsubscribe-freq = 30\nsocket = /tpl\nlogto = %(t)/x.log\n",
        )],
    );
    assert_eq!(c.subscribe_freq(), Some(30));
    assert_eq!(c.sockets, ["/own", "/tpl"]);
    assert_eq!(c.get("logto"), Some("%(t)/x.log"));
    assert_eq!(c.followed_includes, ["/etc/tpl.ini"]);
}

#[test]
fn remote_sources_are_never_asked_for() {
    let (c, asked) = with_files(
        "[uwsgi]\nini = http://example.com/x.ini\ninclude = exec://cat x.ini\nini = -\nconfig = /etc/x.ini\nini = %(x).ini\n",
        &[],
    );
    assert!(asked.is_empty(), "{asked:?}");
    assert_eq!(c.includes.len(), 5);
}

#[test]
fn a_section_of_an_ini_and_of_the_last_ini() {
    let shared =
        "[uwsgi]\nsocket = /u\n[prod]\nsocket = /p\nname = %x\nini = :extra\n[extra]\nlogto = /l\n";
    let (c, asked) = with_files(
        "[uwsgi]\nini = /etc/s.ini:prod\n",
        &[("/etc/s.ini", shared)],
    );
    assert_eq!(asked, ["/etc/s.ini"]);
    assert_eq!(c.sockets, ["/p"]);
    assert_eq!(c.get("name"), Some("prod"));
    assert_eq!(c.get("logto"), Some("/l"));
    // `include` takes no section: `f.ini:s` does not end in `.ini`.
    let (i, _) = with_files(
        "[uwsgi]\ninclude = /etc/s.ini:prod\n",
        &[("/etc/s.ini", shared)],
    );
    assert_eq!(i.includes, ["/etc/s.ini:prod"]);
}

#[test]
fn what_the_reader_refuses_stays_not_followed_with_why() {
    let (c, _) = with_files("[uwsgi]\nini = /etc/missing.ini\nsocket = /a\n", &[]);
    assert_eq!(c.includes, ["/etc/missing.ini"]);
    assert_eq!(c.sockets, ["/a"]);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("not followed") && w.contains("No such file")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn the_budget_is_shared_by_every_file() {
    let big = format!("[uwsgi]\nsocket = /b\n{}", "#\n".repeat(300 << 10));
    let (c, _) = with_files(
        "[uwsgi]\nini = /etc/a.ini\nini = /etc/b.ini\n",
        &[("/etc/a.ini", big.as_str()), ("/etc/b.ini", big.as_str())],
    );
    assert_eq!(c.followed_includes, ["/etc/a.ini"]);
    assert_eq!(c.includes, ["/etc/b.ini"]);
}

/// `ini = :section` reads the last ini again: charged to the byte budget
/// again, or 63 of them over one big section parse it 63 times.
#[test]
fn a_section_read_again_is_charged_again() {
    let mut main = String::from("[uwsgi]\n");
    for _ in 0..63 {
        main.push_str("ini = :a\n");
    }
    main.push_str("[a]\n");
    let lines = 16 * 1024;
    for i in 0..lines {
        main.push_str(&format!("o{i}=v\n"));
    }
    let mut read = |p: &str, _: usize| -> Result<Included, String> { Err(format!("{p}: no")) };
    let c = VassalConfig::parse_following(&main, "app_01.ini", DIR, &mut read, 1 << 20);
    let bytes: usize = c.options.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(
        bytes <= main.len() * 8,
        "{} options, {bytes} bytes from a {}-byte config",
        c.options.len(),
        main.len()
    );
}
