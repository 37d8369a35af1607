//! The only place the tool reads clocks: monotonic for its own deadlines,
//! wall-clock seconds for uWSGI's timestamps and mtimes (docs/UWSGI.md §13).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::engine::Now;

/// Copied, not re-made: every time a run reports counts from one start
/// (the reporter's `at_ms` and the engine's `mono_ms` alike).
#[derive(Clone, Copy)]
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

    /// Monotonic now, for the driver's IO deadlines (stats reads, probes,
    /// the datagram retry queue, the timerfd).
    pub fn instant_now(&self) -> Instant {
        Instant::now()
    }

    /// Wall-clock seconds since the epoch, fractional (the metrics file's
    /// timestamp).
    pub fn wall_f64(&self) -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }

    /// Seconds since this clock was made (a run's duration).
    pub fn elapsed_s(&self) -> f64 {
        self.base.elapsed().as_secs_f64()
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
