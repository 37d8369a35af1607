//! `--syslog`: event lines to the local syslog socket too (RFC 3164 over
//! the unix datagram socket /dev/log), for runs from cron or a deploy hook.

use std::os::unix::net::UnixDatagram;

pub struct Syslog {
    sock: UnixDatagram,
    pid: u32,
}

#[derive(Clone, Copy)]
pub enum Severity {
    Error = 3,
    Warning = 4,
    Info = 6,
}

/// Facility `user`.
const FACILITY: u8 = 1;

impl Syslog {
    pub fn open(path: &str) -> Result<Syslog, String> {
        let sock = UnixDatagram::unbound()
            .map_err(|e| format!("cannot create a socket for syslog: {e}"))?;
        sock.connect(path)
            .map_err(|e| format!("--syslog expects a syslog daemon listening on {path}: {e}"))?;
        sock.set_nonblocking(true)
            .map_err(|e| format!("syslog socket: {e}"))?;
        Ok(Syslog {
            sock,
            pid: std::process::id(),
        })
    }

    /// One message; a full or absent daemon never blocks or stops a rollout.
    pub fn send(&self, sev: Severity, msg: &str) {
        let pri = FACILITY * 8 + sev as u8;
        // One datagram, one line: a config value or log line in `msg`
        // cannot forge another entry (docs/SECURITY.md, output).
        let msg = crate::uwsgi::printable::printable(msg.as_bytes(), usize::MAX);
        let line = format!("<{pri}>uwsgi-reload[{}]: {msg}", self.pid);
        let _ = self.sock.send(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_rfc3164_lines() {
        let dir = std::env::temp_dir().join(format!("uwsgi-reload-syslog-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        let s = Syslog::open(path.to_str().unwrap()).unwrap();
        s.send(Severity::Error, "app_01.ini: FAILED");
        let mut buf = [0u8; 256];
        let n = rx.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(got.starts_with("<11>uwsgi-reload["), "{got}");
        assert!(got.ends_with("]: app_01.ini: FAILED"), "{got}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
