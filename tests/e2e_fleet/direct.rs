//! One request straight to a vassal's own unix socket in the uwsgi protocol
//! (what nginx and the fastrouter speak), bypassing the fastrouter, so a test
//! can ask one particular vassal what it answers. Written here rather than
//! borrowed from the tool's `probe` module, so that it checks the tool
//! instead of agreeing with it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// `GET path` to the uwsgi socket at `socket`; Ok(HTTP status code).
pub fn get_status(socket: &Path, path: &str, host: &str) -> Result<u16, String> {
    let vars = [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", path),
        ("PATH_INFO", path),
        ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.0"),
        ("HTTP_HOST", host),
        ("SERVER_NAME", host),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
    ];
    let mut body = Vec::new();
    for (k, v) in vars {
        body.extend_from_slice(&(k.len() as u16).to_le_bytes());
        body.extend_from_slice(k.as_bytes());
        body.extend_from_slice(&(v.len() as u16).to_le_bytes());
        body.extend_from_slice(v.as_bytes());
    }
    let mut pkt = vec![0u8];
    pkt.extend_from_slice(&(body.len() as u16).to_le_bytes());
    pkt.push(0);
    pkt.extend_from_slice(&body);
    let mut s =
        UnixStream::connect(socket).map_err(|e| format!("connect {}: {e}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&pkt).map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let line = text.lines().next().unwrap_or("");
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            format!(
                "no HTTP status line in {:?}",
                text.chars().take(120).collect::<String>()
            )
        })
}
