//! uWSGI's formats, pure: the two stats documents, vassal configs (ini and
//! the other formats the Emperor loads), subscription packets, the uwsgi
//! request of `--probe`, and the log line of a lost accepting hook. Nothing here does IO; `runtime` reads and sends.

pub mod config_formats;
pub mod hook_log;
pub mod printable;
pub mod probe;
pub mod stats;
pub mod subscription;
pub mod vassal_config;
pub mod version;
