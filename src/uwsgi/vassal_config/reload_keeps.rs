//! How many of a drained node's sessions a graceful reload of this vassal
//! cannot lose: the drain may touch once no more than that many are left
//! (docs/UWSGI.md §19).
//!
//! A fastrouter node's `ref` counts two kinds of session: requests a worker
//! is serving, and connections still waiting in the vassal's listen backlog.
//! - A request in a worker is finished: the reload's `SIGHUP` runs
//!   `gracefully_kill` (core/uwsgi.c), which only clears
//!   `manage_next_request` while `in_request` is set, and the master kills
//!   the worker only `worker-reload-mercy` seconds later
//!   (`uwsgi_curse`/`uwsgi_master_check_mercy`, core/master_utils.c,
//!   core/master.c; default 60).
//! - A connection in the backlog survives the re-exec (`uwsgi_reload`,
//!   core/master_utils.c, keeps every socket fd) but can be lost: a
//!   single-threaded worker that just finished a request accepts the next
//!   one (`wsgi_req_accept`, core/utils.c) and sets `in_request` only later
//!   (`wsgi_req_recv`); a `SIGHUP` in between makes `gracefully_kill` exit
//!   with the accepted connection (the reset race, docs/UWSGI.md §10.3).
//!
//! So the backlog must be empty at the touch: it is when the sessions left
//! are no more than the requests the vassal's workers serve at once, every
//! worker is there to take one, and the mercy is no shorter than the drain
//! would have waited. Anything that can leave a worker slot empty or serve
//! requests otherwise gives 0: wait for `ref == 0` as before.

use super::subscribe::opt_true;
use super::VassalConfig;

/// Options under which fewer workers than `processes` may be accepting at
/// a given moment (cheaper, recycled workers), or a worker serves requests
/// other than one at a time per thread (async cores, greenlets), or the
/// reload does not re-exec with the sockets (exit-on-reload), or a long
/// reload may be taken for a dead vassal (heartbeat).
const UNPROVABLE: &[&str] = &[
    "cheaper",
    "cheaper-algo",
    "cheaper-initial",
    "cheaper-busyness-max",
    "idle",
    "max-requests",
    "max-requests-delta",
    "max-worker-lifetime",
    "reload-on-rss",
    "reload-on-as",
    "evil-reload-on-rss",
    "evil-reload-on-as",
    "async",
    "gevent",
    "ugreen",
    "greenlet",
    "coroae",
    "asyncio",
    "tornado",
    "exit-on-reload",
    // The workers' heartbeat to the Emperor comes from `wsgi_req_accept`
    // (core/utils.c): a reload that waits for a long request sends none,
    // and the Emperor may take the vassal for dead.
    "heartbeat",
];

/// More workers than any real vassal runs: a larger count proves nothing.
const MAX_WORKERS: usize = 1 << 16;

/// uWSGI's default `worker-reload-mercy` (core/init.c).
const DEFAULT_WORKER_RELOAD_MERCY_S: u64 = 60;

impl VassalConfig {
    /// The value uWSGI uses for an option it reads into one variable: the
    /// last one set (`uwsgi_opt_set_int`, `uwsgi_opt_true`, core/uwsgi.c).
    fn last<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        self.get_all(key).last()
    }

    /// Sessions a drained node of this vassal may still hold when the drain
    /// touches it, every one of them a request a worker is serving and will
    /// finish: `processes` when the config proves it (master on, a plain
    /// number, one thread, nothing from [`UNPROVABLE`], and a
    /// `worker-reload-mercy` of at least `drain_timeout_s`, so a request
    /// gets at least the time the drain would have given it); else 0.
    pub fn sessions_a_reload_finishes(&self, drain_timeout_s: u64) -> usize {
        if !self.last("master").is_some_and(opt_true) {
            return 0;
        }
        if self
            .options
            .iter()
            .any(|(k, _)| UNPROVABLE.contains(&k.as_str()))
        {
            return 0;
        }
        let mercy = match self.last("worker-reload-mercy") {
            None => DEFAULT_WORKER_RELOAD_MERCY_S,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(m) => m,
                Err(_) => return 0,
            },
        };
        if mercy < drain_timeout_s {
            return 0;
        }
        let count = |names: &[&str]| -> Option<usize> {
            let mut set = self
                .options
                .iter()
                .filter(|(k, _)| names.contains(&k.as_str()));
            match set.next_back().map(|(_, v)| v) {
                None => Some(1),
                // Bounded: the count feeds the engine's arithmetic, and no
                // vassal runs more workers than this.
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0 && *n <= MAX_WORKERS),
            }
        };
        // One request at a time per worker: how a threaded worker meets the
        // `SIGHUP` changed between versions (2.0.21 joins its threads in
        // `gracefully_kill`, later ones stop them through a pipe), so it
        // is not counted on.
        match (count(&["processes", "workers"]), count(&["threads"])) {
            (Some(p), Some(1)) => p,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> VassalConfig {
        VassalConfig::parse(text, "app_01.ini", "/srv/vassals")
    }

    const BASE: &str = "[uwsgi]\nmaster = true\nsocket = /r/%n.sock\n";

    #[test]
    fn one_per_worker_when_the_config_proves_it() {
        assert_eq!(parse(BASE).sessions_a_reload_finishes(30), 1);
        let p4 = format!("{BASE}processes = 4\n");
        assert_eq!(parse(&p4).sessions_a_reload_finishes(30), 4);
        let huge = format!("{BASE}processes = 18446744073709551615\n");
        assert_eq!(parse(&huge).sessions_a_reload_finishes(30), 0);
        let mercy = format!("{BASE}worker-reload-mercy = 18446744073709551615\n");
        assert_eq!(parse(&mercy).sessions_a_reload_finishes(u64::MAX), 1);
        let w2 = format!("{BASE}workers = 2\nthreads = 1\n");
        assert_eq!(parse(&w2).sessions_a_reload_finishes(30), 2);
        // The last value set is the one uWSGI runs with.
        let twice = format!("{BASE}processes = 1\nprocesses = 4\n");
        assert_eq!(parse(&twice).sessions_a_reload_finishes(30), 4);
    }

    #[test]
    fn nothing_where_it_cannot_be_proven() {
        let no_master = "[uwsgi]\nprocesses = 4\nsocket = /r/%n.sock\n";
        assert_eq!(parse(no_master).sessions_a_reload_finishes(30), 0);
        let unresolved = format!("{BASE}processes = %k\n");
        assert_eq!(parse(&unresolved).sessions_a_reload_finishes(30), 0);
        for opt in [
            "threads = 4",
            "cheaper = 1",
            "max-requests = 1000",
            "gevent = 100",
            "exit-on-reload",
            "heartbeat = 10",
        ] {
            let cfg = format!("{BASE}processes = 4\n{opt}\n");
            assert_eq!(parse(&cfg).sessions_a_reload_finishes(30), 0, "{opt}");
        }
    }

    #[test]
    fn a_mercy_shorter_than_the_drain_keeps_it_waiting() {
        let short = format!("{BASE}processes = 4\nworker-reload-mercy = 10\n");
        assert_eq!(parse(&short).sessions_a_reload_finishes(30), 0);
        assert_eq!(parse(&short).sessions_a_reload_finishes(10), 4);
        // uWSGI's default mercy (60 s) against a longer drain.
        let p4 = format!("{BASE}processes = 4\n");
        assert_eq!(parse(&p4).sessions_a_reload_finishes(61), 0);
    }
}
