//! The driver and the OS pieces it uses. Everything here is thin: decisions
//! live in the sans-IO engine.

pub mod configs;
pub mod dgram;
pub mod driver;
pub mod fastrouter_setup;
pub mod fifo;
pub mod lock;
pub mod log_watch;
pub mod permissions;
pub mod prober;
pub mod repairs;
pub mod routers;
pub mod safe_read;
pub mod session;
pub mod setup;
pub mod stats_reader;
pub mod touch;
pub mod vassal_args;
pub mod watcher;

pub use driver::{run, RunSummary};
