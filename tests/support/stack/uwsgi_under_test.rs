//! Which uWSGI the end-to-end harness runs, and how its vassals serve.
//!
//! The same e2e tests run on every uWSGI of the version matrix
//! (`tests/matrix.sh`, `docs/VERSIONS.md`); only two environment variables
//! change:
//!
//! - `UWSGI_BIN`: the uwsgi binary for the Emperor (and so for every vassal:
//!   the Emperor spawns vassals with its own binary). Default `uwsgi` from
//!   `PATH` (Debian's uwsgi-core).
//! - `UWSGI_APP`: how a vassal answers requests.
//!   - `plugin` (default): `app.py` through Debian's `python3` plugin
//!     (`plugins = python3`, as `examples/stack/vassal.ini` says);
//!   - `builtin`: `app.py` through a Python built into the binary (a build
//!     from PyPI sources): the `plugins = python3` line goes;
//!   - `cgi`: no language at all (2.0.18's Python plugin does not compile
//!     against Python 3.11): an internal route runs `app.cgi` (a shell
//!     script beside `app.py`) through the `cgi` plugin, which sleeps the
//!     request's `?sleep=S` as `app.py` does and answers `app=NAME`, so the
//!     worker is busy for the request's delay and drains have something in
//!     flight; two hooks write the `import`/`worker` lines `app.py` would
//!     write, so every check on app imports and worker pids holds as it is.

use std::path::Path;

/// How the vassals of the stack serve requests (`UWSGI_APP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppKind {
    Plugin,
    Builtin,
    Cgi,
}

/// The uwsgi binary to start (`UWSGI_BIN`, else `uwsgi` from `PATH`).
pub fn bin() -> String {
    std::env::var("UWSGI_BIN")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "uwsgi".to_string())
}

pub fn app_kind() -> AppKind {
    match std::env::var("UWSGI_APP").as_deref() {
        Err(_) | Ok("") | Ok("plugin") => AppKind::Plugin,
        Ok("builtin") => AppKind::Builtin,
        Ok("cgi") => AppKind::Cgi,
        Ok(other) => panic!("UWSGI_APP={other}: expected plugin, builtin or cgi"),
    }
}

/// Panics with a useful message when the binary is missing.
pub fn require_bin() {
    let b = bin();
    let found = if b.contains('/') {
        Path::new(&b).is_file()
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(&b).is_file()))
            .unwrap_or(false)
    };
    assert!(
        found,
        "`{b}` is not installed: the end-to-end tests need uwsgi-core, uwsgi-plugin-python3 and nginx \
         (bash tests/run.sh installs them), or UWSGI_BIN set to a uwsgi binary"
    );
}

/// The option name of an ini line, None for comments, blanks and sections.
fn ini_key(line: &str) -> Option<&str> {
    let l = line.trim();
    if l.is_empty() || l.starts_with(';') || l.starts_with('#') || l.starts_with('[') {
        return None;
    }
    Some(l.split('=').next().unwrap_or("").trim())
}

/// What replaces `wsgi-file` for [`AppKind::Cgi`], `{CGI}` standing for
/// the script's path. `%%` is uWSGI's escaped `%`; backticks because uWSGI
/// reads `$(...)` in a config as an environment variable. `$PPID` of the
/// hook's shell is the process running the hook: the master for
/// `hook-pre-app` (before it forks), the worker for `hook-accepting`, whose
/// parent (field 4 of /proc/PID/stat) is the master.
const CGI_APP: &str = "\
; no language plugin (UWSGI_APP=cgi): every request runs app.cgi (the cgi plugin)
route-run = cgi:{CGI}
; the lines app.py would append to $APP_STATE_DIR/$APPNAME.log
hook-pre-app = exec:echo \"import pid=$PPID time=`date +%%s.%%N`\" >> \"$APP_STATE_DIR/$APPNAME.log\"
hook-accepting = exec:echo \"worker pid=$PPID master=`awk '{print $4}' /proc/$PPID/stat` time=`date +%%s.%%N`\" >> \"$APP_STATE_DIR/$APPNAME.log\"";

/// `app.cgi`: `app.py`'s request side as a CGI shell script. The cgi plugin
/// runs it in a child of the worker with the worker's environment
/// (`APPNAME`) plus the request's (`QUERY_STRING`), and the worker waits
/// for it: the request takes the `sleep=` it asks for.
pub const APP_CGI: &str = r#"#!/bin/sh
# The e2e app without a language (UWSGI_APP=cgi, tests/support/stack/uwsgi_under_test.rs)
s=0
for kv in $(printf '%s' "$QUERY_STRING" | tr '&' ' '); do
    case $kv in sleep=*) s=${kv#sleep=} ;; esac
done
[ "$s" = 0 ] || sleep "$s"
printf 'Status: 200 OK
Content-Type: text/plain

'
printf 'app=%s worker=%s
' "$APPNAME" "$PPID"
"#;

/// `examples/stack/vassal.ini` adapted to the app kind.
pub fn adapt_vassal_ini(text: &str) -> String {
    let kind = app_kind();
    let mut out = String::with_capacity(text.len() + 512);
    for line in text.lines() {
        match (kind, ini_key(line)) {
            (AppKind::Builtin | AppKind::Cgi, Some("plugins")) => {
                out.push_str("; (plugins = python3 dropped: UWSGI_APP says no plugin is loaded)\n");
            }
            // without a language there is no app, and need-app would refuse
            // to start; the broken deploy brings it back (broken_deploy_lines)
            (AppKind::Cgi, Some("need-app")) => {}
            (AppKind::Cgi, Some("wsgi-file")) => {
                let py = line.split_once('=').map_or("", |(_, v)| v.trim());
                let cgi = py.strip_suffix("app.py").map(|d| format!("{d}app.cgi"));
                let cgi = cgi.expect("examples/stack/vassal.ini: wsgi-file names app.py");
                out.push_str(&CGI_APP.replace("{CGI}", &cgi));
                out.push('\n');
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Lines appended to a vassal config to make its next generation fail to
/// start (a broken deployment): the app's import raises, and `need-app`
/// makes the vassal exit. Without a language, `need-app` alone does it (no
/// app is ever loaded).
pub fn broken_deploy_lines() -> &'static str {
    match app_kind() {
        AppKind::Plugin | AppKind::Builtin => {
            "\n; broken deployment (e2e)\nenv = APP_FAIL_IMPORT=1\n"
        }
        AppKind::Cgi => "\n; broken deployment (e2e): no app, and one is needed\nneed-app = true\n",
    }
}
