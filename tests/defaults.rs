//! Each default is written once, in the flag table (`src/cli/flags.rs`),
//! which `--help`, the man page and the parser all read; the engine's own
//! `Settings::default()` must say the same, or a library user and the
//! command line would disagree. This ties them.

use uwsgi_reload::cli::{self, flags};
use uwsgi_reload::engine::Settings;

fn resolved() -> cli::Config {
    let args = [
        "--emperor-path",
        "/tmp",
        "--fastrouter-stats-socket",
        "/run/fr.sock",
        "--emperor-stats-socket",
        "/run/emp.sock",
    ];
    cli::parse(args.iter().map(std::ffi::OsString::from)).expect("the required flags parse")
}

#[test]
fn settings_defaults_are_the_flag_tables() {
    let cfg = resolved();
    let d = Settings::default();
    assert_eq!(cfg.settings.timeout_ms, d.timeout_ms, "--timeout");
    assert_eq!(
        cfg.settings.check_interval_ms, d.check_interval_ms,
        "--check-interval"
    );
    assert_eq!(
        cfg.settings.min_live, d.min_live,
        "--minimum-active-vassals"
    );
    assert_eq!(cfg.settings.max_failures, d.max_failures, "--max-failures");
    // The table's text is what the parser used.
    assert_eq!(flags::default_of("timeout"), "60");
    assert_eq!(cfg.settings.timeout_ms, 60_000);
    assert_eq!(cfg.suffix, flags::default_of("vassal-config-file-suffix"));
    assert_eq!(
        cfg.drain_timeout_ms,
        flags::default_of("drain-timeout").parse::<u64>().unwrap() * 1000
    );
    assert_eq!(
        cfg.stats_timeout_ms,
        flags::default_of("stats-timeout").parse::<u64>().unwrap() * 1000
    );
}
