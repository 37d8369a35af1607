//! Sending one datagram to a uWSGI subscription server.
//!
//! The address rule is uWSGI's own (`send_subscription` in
//! core/subscription.c): no `:` means a unix datagram socket path, otherwise
//! `host:port` over UDP, split at the first `:` and with the host an IPv4
//! literal (uWSGI uses `inet_addr`, no name lookup, no IPv6). Like uWSGI we
//! send once, non-blocking, and do not wait for any answer: the protocol has
//! none.
//!
//! Caveat: a fastrouter with `subscriptions-use-credentials` records the
//! *sender's* pid/uid/gid on the node it creates (the kernel attaches our
//! credentials to a unix datagram). A node the tool re-creates therefore
//! carries the tool's pid, not the vassal's, until it is re-created by the
//! vassal itself; with `subscriptions-credentials-check` it may be refused.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::unix::net::UnixDatagram;

/// Send `packet` to the subscription server `server` in one datagram.
/// Like [`send_datagram`], but a full queue on the subscription server is
/// not an error: `Ok(false)` says "not sent, try again shortly". A unix
/// datagram socket's queue holds `net.unix.max_dgram_qlen` (often 10)
/// messages, so a burst of unsubscribes for a large fleet fills it.
pub fn try_send(server: &str, packet: &[u8]) -> Result<bool, String> {
    match send_datagram(server, packet) {
        Ok(()) => Ok(true),
        Err(e) if e.ends_with(QUEUE_FULL) => Ok(false),
        Err(e) => Err(e),
    }
}

const QUEUE_FULL: &str = "the subscription server's queue is full; datagram not sent";

pub fn send_datagram(server: &str, packet: &[u8]) -> Result<(), String> {
    let sent = match server.split_once(':') {
        None => send_unix(server, packet),
        Some((host, port)) => send_udp(server, host, port, packet)?,
    };
    match sent {
        Ok(n) if n == packet.len() => Ok(()),
        Ok(n) => Err(format!(
            "{server}: sent {n} of {} bytes, expected one whole datagram",
            packet.len()
        )),
        Err(e) => Err(describe(server, &e)),
    }
}

fn send_unix(path: &str, packet: &[u8]) -> std::io::Result<usize> {
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    sock.send_to(packet, path)
}

/// The outer error is a malformed address, the inner one the send itself.
fn send_udp(
    server: &str,
    host: &str,
    port: &str,
    packet: &[u8],
) -> Result<std::io::Result<usize>, String> {
    let ip: Ipv4Addr = host.parse().map_err(|_| {
        format!("{server}: expected a unix socket path or IPV4:PORT (uWSGI takes no host names)")
    })?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{server}: expected a port number after ':'"))?;
    Ok((|| {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        sock.set_nonblocking(true)?;
        sock.send_to(packet, (ip, port))
    })())
}

/// One line: the address, then what was expected of it.
fn describe(server: &str, e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::NotFound => {
            format!("{server}: no such subscription socket (is the fastrouter running?)")
        }
        ErrorKind::ConnectionRefused => {
            format!("{server}: nothing is bound to this subscription socket (stale path?)")
        }
        ErrorKind::WouldBlock => format!("{server}: {QUEUE_FULL}"),
        ErrorKind::PermissionDenied => {
            format!("{server}: permission denied sending to the subscription socket")
        }
        _ => format!("{server}: cannot send to the subscription server: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::{self, Kind};
    use std::path::PathBuf;
    use std::time::Duration;

    fn temp_path(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "uwsgi-reload-dgram-{}-{tag}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn unix_datagram_reaches_a_bound_receiver() {
        let path = temp_path("unix");
        let rx = UnixDatagram::bind(&path).unwrap();
        let pkt = subscription::encode(Kind::Unsubscribe, "example.com", "/run/a.sock", 0).unwrap();
        send_datagram(path.to_str().unwrap(), &pkt).unwrap();
        // A unix datagram is queued at the receiver before send returns.
        rx.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &pkt[..]);
        let p = subscription::decode(&buf[..n]).unwrap();
        assert_eq!(p.kind, Kind::Unsubscribe);
        assert_eq!(p.get("address"), Some("/run/a.sock"));
        // Exactly one datagram.
        assert_eq!(rx.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn unix_errors_name_the_path() {
        let path = temp_path("missing");
        let e = send_datagram(path.to_str().unwrap(), b"x").unwrap_err();
        assert!(e.starts_with(path.to_str().unwrap()), "{e}");
        assert!(e.contains("no such subscription socket"), "{e}");

        // A path left behind by a receiver that is gone.
        let stale = temp_path("stale");
        drop(UnixDatagram::bind(&stale).unwrap());
        let e = send_datagram(stale.to_str().unwrap(), b"x").unwrap_err();
        assert!(e.contains("nothing is bound"), "{e}");
        std::fs::remove_file(&stale).unwrap();
    }

    #[test]
    fn udp_datagram_reaches_a_loopback_receiver() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Only a guard against hanging the suite, not an assertion on time.
        rx.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let server = format!("127.0.0.1:{}", rx.local_addr().unwrap().port());
        let pkt =
            subscription::encode(Kind::Subscribe, "example.com", "127.0.0.1:3031", 0).unwrap();
        send_datagram(&server, &pkt).unwrap();
        let mut buf = [0u8; 4096];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &pkt[..]);
    }

    #[test]
    fn malformed_udp_addresses() {
        let e = send_datagram("localhost:3031", b"x").unwrap_err();
        assert!(
            e.contains("localhost:3031") && e.contains("IPV4:PORT"),
            "{e}"
        );
        let e = send_datagram(":3031", b"x").unwrap_err();
        assert!(e.contains("IPV4:PORT"), "{e}");
        let e = send_datagram("127.0.0.1:http", b"x").unwrap_err();
        assert!(e.contains("port number"), "{e}");
        let e = send_datagram("127.0.0.1:70000", b"x").unwrap_err();
        assert!(e.contains("port number"), "{e}");
    }
}
