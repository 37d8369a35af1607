//! A real `ansible-playbook` for the fleet test: ansible-core from PyPI in a
//! private venv under the target directory (made once, nothing installed on
//! the machine), an inventory of this machine's "hosts" (one Emperor each,
//! `connection: local`, per-host variables), and the play's recap read back.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::hosts::MultiHost;

/// ansible-core's controller supports Debian 12's Python 3.11 in this
/// series; pinned so that the test does not change under our feet.
const ANSIBLE_CORE: &str = "ansible-core>=2.16,<2.18";

/// The venv's `ansible-playbook`, made once per target directory.
pub fn playbook_bin() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ansible-venv");
    let bin = venv.join("bin/ansible-playbook");
    let works = |b: &Path| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !works(&bin) {
        let s = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status();
        assert!(
            s.is_ok_and(|s| s.success()),
            "python3 -m venv failed (apt-get install python3-venv)"
        );
        let out = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                ANSIBLE_CORE,
            ])
            .output()
            .expect("run pip");
        assert!(
            out.status.success(),
            "pip install {ANSIBLE_CORE} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            works(&bin),
            "ansible-playbook does not run after pip install"
        );
    }
    bin
}

/// One `ansible-playbook` run.
pub struct Play {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Play {
    /// The PLAY RECAP counters per host (`changed`, `failed`, `ok`, ...).
    pub fn recap(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        let recap = self.stdout.rsplit("PLAY RECAP").next().unwrap_or("");
        for line in recap.lines() {
            let Some((host, counts)) = line.split_once(" : ") else {
                continue;
            };
            let mut m = BTreeMap::new();
            for kv in counts.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=') {
                    if let Ok(v) = v.parse() {
                        m.insert(k.to_string(), v);
                    }
                }
            }
            out.insert(host.trim().to_string(), m);
        }
        out
    }

    /// `recap[host][counter]`, 0 when the host or the counter is absent.
    pub fn count(&self, host: &str, counter: &str) -> u64 {
        self.recap()
            .get(host)
            .and_then(|m| m.get(counter))
            .copied()
            .unwrap_or(0)
    }

    /// Where in the output the first result of `task` for `host` is
    /// (`changed: [host_a]`, `ok: [host_a]` or `fatal: [host_a]`).
    pub fn first_result_of(&self, task: &str, host: &str) -> Option<usize> {
        let start = self.stdout.find(&format!("TASK [{task}]"))?;
        ["changed", "ok", "fatal"]
            .iter()
            .filter_map(|w| self.stdout[start..].find(&format!("{w}: [{host}]")))
            .min()
            .map(|i| start + i)
    }

    pub fn describe(&self) -> String {
        format!(
            "ansible-playbook exited with {:?}\n---- stdout ----\n{}\n---- stderr ----\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Writes the inventory for the hosts of `mh` (`host_a`, `host_b`, ...) and
/// runs `examples/ansible/reload.yml` with `extra` variables.
pub fn run_play(mh: &MultiHost, ids: &[&str], tool: &str, extra: &[(&str, &str)]) -> Play {
    let bin = playbook_bin();
    let dir = mh.dir.join("ansible");
    fs::create_dir_all(dir.join("tmp")).unwrap();
    let python = bin.with_file_name("python");
    let mut inv = String::from("uwsgi_hosts:\n  hosts:\n");
    for id in ids {
        let h = mh.host(id);
        inv += &format!(
            "    host_{id}:\n      emperor_dir: {}\n      emperor_stats: {}\n",
            h.vassals_dir().display(),
            h.emperor_stats_path().display()
        );
    }
    inv += &format!(
        "  vars:\n    ansible_connection: local\n    ansible_python_interpreter: {}\n    fastrouter_stats: {}\n    uwsgi_reload: {tool}\n",
        python.display(),
        mh.fastrouter_stats_path().display()
    );
    fs::write(dir.join("inventory.yml"), inv).unwrap();
    let playbook = crate::stack::repo_root().join("examples/ansible/reload.yml");
    let mut cmd = Command::new(&bin);
    cmd.arg("-i")
        .arg(dir.join("inventory.yml"))
        .arg(playbook)
        .env("ANSIBLE_HOME", dir.join("home"))
        .env("ANSIBLE_LOCAL_TEMP", dir.join("tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_STDOUT_CALLBACK", "default")
        .env("ANSIBLE_PYTHON_INTERPRETER", &python);
    for (k, v) in extra {
        cmd.arg("-e").arg(format!("{k}={v}"));
    }
    let out = cmd.output().expect("run ansible-playbook");
    Play {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
