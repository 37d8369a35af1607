//! `uwsgi-reload`: parse, run, and own the exit policy.

use std::process::ExitCode;

use uwsgi_reload::cli::{self, Command};
use uwsgi_reload::error::exit;
use uwsgi_reload::report::metrics::{self, RunMetrics};
use uwsgi_reload::report::{journal, timeline, Reporter};

/// An error line's journal priority, when stderr is the journal.
fn err_prefix() -> &'static str {
    journal::stderr_prefix(journal::Level::Error)
}

fn main() -> ExitCode {
    let cfg = match cli::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}uwsgi-reload: {e}", err_prefix());
            return ExitCode::from(e.exit_code());
        }
    };
    if let Some(code) = informational(&cfg.command) {
        return code;
    }
    let mut rep = match reporter(&cfg) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let result = match cfg.command {
        Command::Status => uwsgi_reload::status::run(&cfg, &mut rep),
        _ if cfg.dry_run => uwsgi_reload::plan::run(&cfg, &mut rep),
        _ => rollout(&cfg, &mut rep),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{}uwsgi-reload: {e}", err_prefix());
            ExitCode::from(e.exit_code())
        }
    }
}

/// The commands that print something and touch nothing of uWSGI: their
/// exit code, or `None` for status and the rollout.
fn informational(command: &Command) -> Option<ExitCode> {
    Some(match command {
        Command::Help => print_text(&cli::help::help()),
        Command::Version => {
            println!("uwsgi-reload {}", env!("CARGO_PKG_VERSION"));
            ExitCode::from(exit::OK)
        }
        Command::Generate(what) => print_text(&cli::generate(*what)),
        Command::Timeline(input) => match std::fs::read_to_string(input) {
            Ok(log) => print_text(&timeline::render(&timeline::parse_log(&log))),
            Err(e) => {
                eprintln!(
                    "{}uwsgi-reload: timeline: cannot read the event log {}: {e}",
                    err_prefix(),
                    input.display()
                );
                ExitCode::from(exit::USAGE)
            }
        },
        Command::Status | Command::Reload => return None,
    })
}

/// The reporter the output options ask for; a syslog that cannot be
/// opened is a precondition error.
fn reporter(cfg: &cli::Config) -> Result<Reporter, ExitCode> {
    let rep = Reporter::new(cfg.output.quiet, cfg.output.json)
        .with_timestamps(cfg.output.timestamps)
        .recording(cfg.timeline.is_some());
    if !cfg.syslog {
        return Ok(rep);
    }
    match uwsgi_reload::report::syslog::Syslog::open("/dev/log") {
        Ok(s) => Ok(rep.with_syslog(s)),
        Err(e) => {
            eprintln!("{}uwsgi-reload: {e}", err_prefix());
            Err(ExitCode::from(exit::PRECONDITION))
        }
    }
}

/// The rollout, then the files it leaves: the metrics file for every
/// rollout (also one refused before the engine ran), the timeline for one
/// that ran (a refused one has no events to draw).
fn rollout(cfg: &cli::Config, rep: &mut Reporter) -> Result<u8, uwsgi_reload::error::Error> {
    // The run's duration, from the start every `at_ms` counts from (every
    // clock read goes through the Clock).
    let clock = rep.clock();
    let run = uwsgi_reload::runtime::run(cfg, rep);
    if let Some(path) = &cfg.metrics_file {
        let took = clock.elapsed_s();
        let m = match &run {
            Ok(s) => RunMetrics::from_outcome(&s.outcome, s.exit_code, &s.uwsgi_versions, took),
            Err(e) => RunMetrics::refused(e.exit_code(), took),
        };
        if let Err(e) = metrics::write(path, m, clock.wall_f64()) {
            warn_unwritten("the metrics file", path, &e);
        }
    }
    if let (Some(path), true) = (&cfg.timeline, run.is_ok()) {
        // As the metrics file: never through a link planted at the path,
        // never blocked by a FIFO there.
        if let Err(e) = metrics::write_atomic(path, &timeline::render(rep.recorded())) {
            warn_unwritten("the timeline", path, &e);
        }
    }
    run.map(|s| s.exit_code)
}

fn warn_unwritten(what: &str, path: &std::path::Path, e: &dyn std::fmt::Display) {
    eprintln!(
        "{}uwsgi-reload: warning: cannot write {what} {}: {e}",
        journal::stderr_prefix(journal::Level::Warning),
        path.display()
    );
}

/// Writes a generated text to stdout; a reader that closed the pipe early
/// (`| head`) is not an error worth a panic.
fn print_text(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("{}uwsgi-reload: cannot write to stdout: {e}", err_prefix());
            ExitCode::from(exit::FAILED)
        }
        _ => ExitCode::from(exit::OK),
    }
}
