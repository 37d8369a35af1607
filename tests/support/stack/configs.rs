//! A stack's configs, written from the templates of `examples/stack/` (and
//! `examples/ha/` for the HA pair): the fastrouter's in the stack's
//! directory, and per host its Emperor's, `vassal.ini`, `app.py` and the
//! vassal configs.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::{Host, StackSpec};

/// `template` with the placeholders of examples/stack filled in.
pub fn substitute(template: &str, dir: &Path, key: &str, port: u16, user: &str) -> String {
    template
        .replace("@STACK_DIR@", dir.to_str().expect("utf-8 temp dir"))
        .replace("@KEY@", key)
        .replace("@PORT@", &port.to_string())
        .replace("@USER@", user)
}

fn template(spec: &StackSpec, file: &str) -> String {
    let from = super::topology::template_path(spec, file);
    fs::read_to_string(&from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()))
}

/// Appends `lines` (placeholders filled in by `sub`) to `text`.
fn append(text: &mut String, lines: &[String], sub: &dyn Fn(&str) -> String) {
    if !lines.is_empty() {
        text.push_str("\n; added by the e2e harness\n");
        for l in lines {
            text.push_str(&sub(l));
            text.push('\n');
        }
    }
}

/// Whether the Emperors run without the fastrouter (it runs on its own or
/// as a vassal).
fn router_apart(spec: &StackSpec) -> bool {
    spec.standalone_fastrouter || spec.fastrouter_vassal
}

/// Writes the fastrouter's config(s) into the stack's directory `dir` when
/// it does not run inside the Emperor: the fastrouter lines of emperor.ini
/// (`topology::write_routers` says where they go).
pub fn write_routers(spec: &StackSpec, dir: &Path, user: &str) {
    if !router_apart(spec) {
        return;
    }
    let sub = |t: &str| substitute(t, dir, &spec.key, 0, user);
    let emperor_ini = sub(&template(spec, "emperor.ini"));
    let (_, mut router) = super::fastrouter::split_emperor_ini(&emperor_ini, dir);
    append(&mut router, &spec.fastrouter_extra, &sub);
    super::topology::write_routers(spec, dir, router, &sub);
}

/// Writes host `id`'s files into `host_dir` (`vassals/`, `logs/`, `state/`,
/// emperor.ini, vassal.ini, app.py, a config per vassal of `names`). With
/// several hosts (`stack_dir` is not `host_dir`), the vassals subscribe to
/// the fastrouter of `stack_dir`.
pub fn write_host(
    spec: &StackSpec,
    id: &str,
    host_dir: PathBuf,
    stack_dir: &Path,
    names: Vec<String>,
    user: &str,
) -> Host {
    for sub in ["vassals", "logs", "state"] {
        fs::create_dir_all(host_dir.join(sub)).unwrap();
    }
    let sub = |t: &str| substitute(t, &host_dir, &spec.key, 0, user);

    let mut emperor_ini = sub(&template(spec, "emperor.ini"));
    if router_apart(spec) {
        emperor_ini = super::fastrouter::split_emperor_ini(&emperor_ini, &host_dir).0;
    } else {
        append(&mut emperor_ini, &spec.fastrouter_extra, &sub);
    }
    append(&mut emperor_ini, &spec.emperor_extra, &sub);
    fs::write(host_dir.join("emperor.ini"), emperor_ini).unwrap();

    // UWSGI_APP: Debian's plugin, a built-in Python, or no language
    let mut vassal_ini =
        super::uwsgi_under_test::adapt_vassal_ini(&sub(&template(spec, "vassal.ini")));
    append(&mut vassal_ini, &spec.vassal_extra, &sub);
    if host_dir != stack_dir {
        let own = format!("server={}/subscription.sock", host_dir.display());
        let shared = format!("server={}/subscription.sock", stack_dir.display());
        assert!(
            vassal_ini.contains(&own),
            "examples/stack/vassal.ini has no `subscribe2 = ... {own}`"
        );
        vassal_ini = vassal_ini.replace(&own, &shared);
    }
    fs::write(host_dir.join("vassal.ini"), &vassal_ini).unwrap();
    fs::write(host_dir.join("app.py"), sub(&template(spec, "app.py"))).unwrap();
    for (file, text) in &spec.extra_files {
        fs::write(host_dir.join(file), sub(text)).unwrap();
    }
    if super::uwsgi_under_test::app_kind() == super::uwsgi_under_test::AppKind::Cgi {
        let cgi = host_dir.join("app.cgi");
        fs::write(&cgi, super::uwsgi_under_test::APP_CGI).unwrap();
        fs::set_permissions(&cgi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }

    for name in &names {
        if let Some((file, text)) = spec.vassal_files.get(name) {
            fs::write(host_dir.join("vassals").join(file), sub(text)).unwrap();
            continue;
        }
        let path = host_dir.join("vassals").join(format!("{name}.ini"));
        let lines = spec.vassal_own_lines.get(name);
        let drop = spec.vassal_own_drop.get(name);
        if lines.is_none() && drop.is_none() {
            symlink("../vassal.ini", path).unwrap();
            continue;
        }
        let dropped = |l: &str| {
            let opt = l.split('=').next().unwrap_or("").trim();
            drop.is_some_and(|d| d.iter().any(|o| o == opt))
        };
        let mut text: String = vassal_ini
            .lines()
            .filter(|l| !dropped(l))
            .flat_map(|l| [l, "\n"])
            .collect();
        append(&mut text, lines.map_or(&[][..], |v| v.as_slice()), &sub);
        fs::write(path, text).unwrap();
    }

    Host {
        id: id.to_string(),
        dir: host_dir,
        names,
        emperor: None,
        files: spec
            .vassal_files
            .iter()
            .map(|(name, (file, _))| (name.clone(), file.clone()))
            .collect(),
        nodes: spec.node_names.clone(),
        router_vassal: spec.fastrouter_vassal,
    }
}
