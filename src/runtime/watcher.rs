//! inotify on the Emperor directory, turned into engine config events.
//!
//! The Emperor itself only polls (docs/UWSGI.md §1); we watch so that someone
//! else's touch, a new config or a removed one reaches the engine at once.

use std::os::fd::{AsRawFd, RawFd};

use inotify::{EventMask, Inotify, WatchMask};

use super::configs::EmperorDir;
use crate::engine::ConfigEvent;
use crate::error::Error;

pub struct Watcher {
    inotify: Inotify,
    buf: Vec<u8>,
}

impl Watcher {
    pub fn new(dir: &EmperorDir) -> Result<Watcher, Error> {
        let inotify = Inotify::init().map_err(|e| Error::io("cannot start inotify", e))?;
        let mask = WatchMask::ATTRIB
            | WatchMask::CLOSE_WRITE
            | WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR;
        inotify
            .watches()
            .add(&dir.path, mask)
            .map_err(|e| Error::io(format!("cannot watch {}", dir.path.display()), e))?;
        Ok(Watcher {
            inotify,
            buf: vec![0; 64 * 1024],
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.inotify.as_raw_fd()
    }

    /// Reads every queued event until the queue is empty (the fd is
    /// registered edge-triggered).
    pub fn drain(&mut self, dir: &EmperorDir) -> Vec<ConfigEvent> {
        let mut out = Vec::new();
        loop {
            let events = match self.inotify.read_events(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // Unreadable watch: we can no longer trust what we know.
                    out.push(ConfigEvent::Overflow);
                    break;
                }
            };
            for ev in events {
                if ev.mask.intersects(
                    EventMask::Q_OVERFLOW | EventMask::DELETE_SELF | EventMask::MOVE_SELF,
                ) {
                    out.push(ConfigEvent::Overflow);
                    continue;
                }
                let Some(name) = ev.name else { continue };
                if !dir.is_config(name) {
                    continue;
                }
                let Some(n) = name.to_str() else { continue };
                let n = n.to_string();
                if ev
                    .mask
                    .intersects(EventMask::DELETE | EventMask::MOVED_FROM)
                {
                    out.push(ConfigEvent::Removed { name: n });
                } else if ev.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
                    out.push(ConfigEvent::Created {
                        mtime: dir.mtime(name),
                        name: n,
                    });
                } else if ev
                    .mask
                    .intersects(EventMask::ATTRIB | EventMask::CLOSE_WRITE)
                {
                    out.push(ConfigEvent::Changed {
                        mtime: dir.mtime(name),
                        name: n,
                    });
                }
            }
        }
        out
    }
}
