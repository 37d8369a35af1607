//! uwsgi-reload: graceful, K-safe reload of every uWSGI vassal behind a
//! fastrouter.
//!
//! The crate is split the way quinn-proto sits beside quinn:
//! - [`engine`] and [`uwsgi`] (the formats: stats, configs, packets) are
//!   sans-IO: no syscalls, no clock, no threads.
//!   They decide everything and are tested exhaustively.
//! - [`runtime`] is the thin single-threaded mio driver that carries out the
//!   engine's actions on the real system.
//! - [`cli`] turns raw arguments into a validated configuration
//!   ([`run_config`]), which the commands and the runtime take.

pub mod cli;
pub mod clock;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod glob;
pub mod plan;
pub mod report;
pub mod run_config;
pub mod runtime;
pub mod status;
// uWSGI's formats and wire protocols, reached from outside by one path
// each: `crate::stats`, `crate::vassal_config`, ... (re-exported below);
// the module itself is private, so `uwsgi::stats` is not a second name.
mod uwsgi;

pub use error::Error;
// The formats keep their short paths (`crate::stats`, `uwsgi_reload::stats`).
pub use uwsgi::{
    config_formats, probe, stats, subscription, vassal_config, version as uwsgi_version,
};
