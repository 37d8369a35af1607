//! End-to-end harness: a real uWSGI Emperor + fastrouter + vassals + nginx per
//! test (the files of `examples/stack/`), a load generator, a fastrouter stats
//! sampler, and the `uwsgi-reload` binary run against the stack. A crate
//! that includes it also includes tests/support/binary.rs and
//! tests/support/temp_dir.rs as `binary` and `temp_dir`.
//!
//! - [`spec`]: what to start ([`StackSpec`]).
//! - [`start`]: starts a stack in its own temporary directory (unix sockets,
//!   nginx on a free 127.0.0.1 port), waits until every vassal accepts and is
//!   subscribed (repairing the race of docs/UWSGI.md §9.6 at start), and
//!   stops everything it started when dropped, also when a test panics.
//!   Stacks are serialized by a global lock: one stack at a time per process.
//! - [`configs`]: the configs written from the templates of `examples/`.
//! - [`host`]: one Emperor with its vassals ([`Host`]); a stack has one, or
//!   several sharing one standalone fastrouter and nginx
//!   (`StackSpec::host`, tests/e2e_fleet.rs).
//! - [`stats`]: reading the stats sockets.
//! - [`fleet`]: the real state of every vassal ([`Fleet`]) and the checks
//!   "reloaded exactly once" and "untouched".
//! - [`change`]: touch, add, replace quietly, remove drained.
//! - [`rollout`]: the tool run under load and sampling ([`Rollout`]);
//!   [`checks`]: its expectations, every violation reported at once.
//! - [`load`]: HTTP/1.0 GETs to nginx from N threads; every connection error,
//!   timeout and non-2xx answer is a failure.
//! - [`sampler`]: reads the fastrouter stats every ~30 ms, records the lowest
//!   number of live nodes (`death_mark == 0`) per key and each node's `ref`.
//! - [`tool`]: runs `uwsgi-reload` and captures its exit status, stderr and
//!   `--json` events.
//! - [`fastrouter`]: the fastrouter as its own process, which a test can
//!   restart (`StackSpec::standalone_fastrouter`).
//! - [`faults`]: a vassal's master killed, a slow next start, waits on the
//!   Emperor's blacklist and on node ages.
//! - [`topology`]: two fastrouters for HA (`examples/ha/`), the fastrouter
//!   as a vassal, vassal configs in every format the Emperor loads.
//! - [`uwsgi_under_test`]: which uwsgi binary (`UWSGI_BIN`) and how vassals
//!   serve (`UWSGI_APP`), so the version matrix (tests/matrix.sh) runs these
//!   same tests on other uWSGI versions.
//! - [`trace`]: every fastrouter sample and every tool event on one clock
//!   (the drain checks of tests/e2e_fleet.rs and tests/e2e_liveness.rs).
//! - [`record`]: with `E2E_RECORD` set, one line per finished scenario
//!   (requests, failed, lowest live, exit) for the matrix's table.
#![allow(dead_code)]

pub mod change;
pub mod checks;
pub mod configs;
pub mod fastrouter;
pub mod faults;
pub mod fleet;
pub mod host;
pub mod load;
pub mod record;
pub mod rollout;
pub mod sampler;
pub mod spec;
pub mod start;
pub mod stats;
pub mod tool;
pub mod topology;
pub mod trace;
pub mod uwsgi_under_test;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// The harness's names at its root; each crate uses some of them.
#[allow(unused_imports)]
pub use crate::binary::tail;
#[allow(unused_imports)]
pub use change::replace_keeping_mtime;
#[allow(unused_imports)]
pub use checks::{ArrivedEvents, Checks};
#[allow(unused_imports)]
pub use fleet::{check_reloaded_once, check_untouched, Fleet, NodeState, VassalState};
#[allow(unused_imports)]
pub use host::Host;
#[allow(unused_imports)]
pub use load::{Load, LoadReport, LoadSpec};
#[allow(unused_imports)]
pub use rollout::{During, LeadIn, Rollout};
#[allow(unused_imports)]
pub use sampler::{SampleReport, Sampler};
#[allow(unused_imports)]
pub use spec::{vassal_name, StackSpec};
#[allow(unused_imports)]
pub use start::{free_port, Stack};
#[allow(unused_imports)]
pub use stats::read_stats;
#[allow(unused_imports)]
pub use tool::{Run, Tool};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Polls until `cond` returns `Some`, every `every`, at most `timeout`.
pub fn poll<T>(
    timeout: Duration,
    every: Duration,
    mut cond: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}
