//! uWSGI's formats, pure: the two stats documents, vassal configs (ini and
//! the other formats the Emperor loads), subscription packets, and the uwsgi
//! request of `--probe`. Nothing here does IO; `runtime` reads and sends.

pub mod config_formats;
pub mod probe;
pub mod stats;
pub mod subscription;
pub mod vassal_config;
pub mod version;
