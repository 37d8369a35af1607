//! uwsgi-reload: graceful, K-safe reload of every uWSGI vassal behind a
//! fastrouter.
//!
//! The crate is split the way quinn-proto sits beside quinn:
//! - [`engine`] and [`stats`] are sans-IO: no syscalls, no clock, no threads.
//!   They decide everything and are tested exhaustively.
//! - [`runtime`] is the thin single-threaded mio driver that carries out the
//!   engine's actions on the real system.
//! - [`cli`] turns raw arguments into a validated configuration.

pub mod cli;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod glob;
pub mod plan;
pub mod probe;
pub mod report;
pub mod runtime;
pub mod stats;
pub mod status;
pub mod subscription;
pub mod uwsgi_version;
pub mod vassal_config;

pub use error::Error;
