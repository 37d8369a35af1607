//! `--generate`: the man page renders with `man -l` without a warning, and
//! the bash, zsh and fish completions load in the real shells and complete
//! every flag `--help` lists. zsh, fish and man-db are installed by
//! examples/install-packages.sh (tests/run.sh runs it): a missing shell is a
//! failure here, not a skip.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

#[path = "support/binary.rs"]
mod binary;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use binary::BIN;
use temp_dir::TempDir;

fn generate(what: &str) -> String {
    let o = binary::command(["--generate", what])
        .output()
        .expect("run uwsgi-reload");
    assert!(o.status.success(), "--generate {what}: {o:?}");
    assert!(
        o.stderr.is_empty(),
        "--generate {what} wrote to stderr: {o:?}"
    );
    String::from_utf8(o.stdout).expect("utf-8")
}

/// Runs `prog args` with a private HOME; panics with a hint when the
/// program is not installed.
fn shell(prog: &str, args: &[&str], home: &std::path::Path) -> Output {
    Command::new(prog)
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("XDG_DATA_HOME", home)
        .env("PATH", path_with_bin())
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e} (run bash examples/install-packages.sh)"))
}

/// PATH with the directory of the binary under test first.
fn path_with_bin() -> String {
    let dir = PathBuf::from(BIN).parent().unwrap().to_path_buf();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A private HOME, removed at the end of the test.
fn tmp(tag: &str) -> TempDir {
    TempDir::new(&format!("gen-{tag}"))
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The long flags `--help` defines (the leading tokens of its option lines).
fn help_longs() -> BTreeSet<String> {
    let o = binary::command(["--help"]).output().unwrap();
    let help = String::from_utf8(o.stdout).unwrap();
    let mut out = BTreeSet::new();
    for line in help.lines() {
        let t = line.trim_start();
        for tok in t.split_whitespace().take_while(|_| t.starts_with('-')) {
            let tok = tok.trim_end_matches(',');
            if !tok.starts_with('-') {
                break;
            }
            if tok.starts_with("--") {
                out.insert(tok.to_string());
            }
        }
    }
    assert!(out.len() > 30, "too few flags in --help: {out:?}");
    out
}

#[test]
fn man_page_renders_without_warnings_and_documents_every_flag() {
    let d = tmp("man");
    let page = d.join("uwsgi-reload.1");
    std::fs::write(&page, generate("man")).unwrap();
    let o = Command::new("man")
        .args(["--warnings", "-l", "-P", "cat"])
        .arg(&page)
        .env("LC_ALL", "C")
        .env("MANWIDTH", "100")
        .output()
        .expect("man (run bash examples/install-packages.sh)");
    let (out, err) = text(&o);
    assert!(o.status.success(), "man -l failed: {err}");
    assert!(err.trim().is_empty(), "man/groff warnings:\n{err}");
    for s in [
        "NAME",
        "SYNOPSIS",
        "OPTIONS",
        "EXIT STATUS",
        "SIGNALS",
        "uwsgi-reload",
    ] {
        assert!(out.contains(s), "rendered page lacks {s}:\n{out}");
    }
    for f in help_longs() {
        assert!(out.contains(&f), "rendered page lacks {f}");
    }
}

#[test]
fn bash_completion_loads_and_completes() {
    let d = tmp("bash");
    let o = shell(
        "bash",
        &[
            "-c",
            "source <(uwsgi-reload --generate complete-bash); complete -p uwsgi-reload",
        ],
        &d,
    );
    let (out, err) = text(&o);
    assert!(o.status.success() && err.is_empty(), "{out}{err}");
    assert!(
        out.contains("-F _uwsgi_reload") && out.contains("uwsgi-reload"),
        "{out}"
    );
    // Drive the function as bash's completion would.
    let script = "source <(uwsgi-reload --generate complete-bash)
        c() { COMP_WORDS=(\"$@\"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _uwsgi_reload; echo \"${COMPREPLY[*]}\"; }
        c uwsgi-reload --emp
        c uwsgi-reload --generate complete-
        c uwsgi-reload st
        c uwsgi-reload --timeout ''
        c uwsgi-reload --";
    let o = shell("bash", &["-c", script], &d);
    let (out, err) = text(&o);
    assert!(o.status.success() && err.is_empty(), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "--emperor-path --emperor-stats-socket", "{out}");
    assert_eq!(
        lines[1], "complete-bash complete-zsh complete-fish",
        "{out}"
    );
    assert_eq!(lines[2], "status", "{out}");
    assert_eq!(lines[3], "", "a number gets no completion: {out}");
    let offered: BTreeSet<String> = lines[4].split_whitespace().map(String::from).collect();
    for f in help_longs() {
        assert!(offered.contains(&f), "bash does not offer {f}");
    }
}

#[test]
fn zsh_completion_loads_sourced_and_from_fpath() {
    let d = tmp("zsh");
    let file = d.join("_uwsgi-reload");
    let script = generate("complete-zsh");
    std::fs::write(&file, &script).unwrap();
    let o = shell("zsh", &["-n", file.to_str().unwrap()], &d);
    assert!(o.status.success(), "zsh -n: {:?}", text(&o));
    let sourced = "autoload -U compinit && compinit -u -D
        source <(uwsgi-reload --generate complete-zsh) || exit 3
        print -r -- \"$_comps[uwsgi-reload]\"";
    let o = shell("zsh", &["-f", "-c", sourced], &d);
    let (out, err) = text(&o);
    assert!(o.status.success() && err.is_empty(), "{out}{err}");
    assert_eq!(out.trim(), "_uwsgi-reload", "{out}");
    let from_fpath = format!(
        "fpath=({} $fpath); autoload -U compinit && compinit -u -D
        print -r -- \"$_comps[uwsgi-reload]\"",
        d.display()
    );
    let o = shell("zsh", &["-f", "-c", &from_fpath], &d);
    let (out, err) = text(&o);
    assert!(o.status.success() && err.is_empty(), "{out}{err}");
    assert_eq!(out.trim(), "_uwsgi-reload", "{out}");
    for f in help_longs() {
        assert!(
            script.contains(&format!("{f}[")) || script.contains(&format!("{f}}}")),
            "zsh lacks {f}"
        );
    }
}

#[test]
fn fish_completion_loads_and_completes() {
    let d = tmp("fish");
    let file = d.join("uwsgi-reload.fish");
    std::fs::write(&file, generate("complete-fish")).unwrap();
    let o = shell("fish", &["--no-execute", file.to_str().unwrap()], &d);
    assert!(o.status.success(), "fish --no-execute: {:?}", text(&o));
    let script = format!(
        "source {}; complete -C'uwsgi-reload --emp'; echo ==; complete -C'uwsgi-reload --generate '; echo ==; complete -C'uwsgi-reload --'",
        file.display()
    );
    let o = shell("fish", &["--no-config", "-c", &script], &d);
    let (out, err) = text(&o);
    assert!(o.status.success() && err.is_empty(), "{out}{err}");
    let parts: Vec<&str> = out.split("==\n").collect();
    let words = |s: &str| -> BTreeSet<String> {
        s.lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        words(parts[0]),
        ["--emperor-path", "--emperor-stats-socket"]
            .map(String::from)
            .into(),
        "{out}"
    );
    assert!(words(parts[1]).contains("complete-fish"), "{out}");
    let all = words(parts[2]);
    for f in help_longs() {
        assert!(all.contains(&f), "fish does not offer {f}: {out}");
    }
}

#[test]
fn generate_rejects_an_unknown_kind() {
    let o = binary::command(["--generate", "complete-tcsh"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--generate")
            && err.contains("complete-fish")
            && err.contains("complete-tcsh"),
        "{err}"
    );
}

#[test]
fn readme_documents_every_flag() {
    // README.md's option tables are prose, not generated: hold them to the
    // flag table so that a new flag cannot go undocumented there.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("\n## Options").expect("an Options section");
    let rest = &readme[start + 1..];
    let options = &rest[..rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3)];
    for f in help_longs() {
        if matches!(f.as_str(), "--help" | "--version") {
            continue;
        }
        assert!(
            options.contains(&format!("`{f}")),
            "README.md's Options section does not document {f}"
        );
    }
}

#[test]
fn generated_text_to_a_closed_pipe_is_not_a_crash() {
    // stdout is a pipe whose reader is already gone: every write is EPIPE.
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    for what in [&["--generate", "man"][..], &["--help"][..]] {
        let o = binary::command(what)
            .stdout(std::process::Stdio::from(writer.try_clone().unwrap()))
            .output()
            .unwrap();
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{what:?}: {err}");
        assert!(err.is_empty(), "{what:?}: {err}");
    }
}
