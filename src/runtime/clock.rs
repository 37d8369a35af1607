//! The only place the tool reads clocks: monotonic for its own deadlines,
//! wall-clock seconds for uWSGI's timestamps and mtimes (docs/UWSGI.md §13).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::engine::Now;

pub struct Clock {
    base: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            base: Instant::now(),
        }
    }

    pub fn now(&self) -> Now {
        let wall_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Now {
            mono_ms: self.base.elapsed().as_millis() as u64,
            wall_s,
        }
    }

    /// The monotonic instant of engine time `mono_ms`.
    pub fn instant(&self, mono_ms: u64) -> Instant {
        self.base + std::time::Duration::from_millis(mono_ms)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
