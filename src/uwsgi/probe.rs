//! `--probe PATH`: one uwsgi-protocol request straight to a vassal's own
//! socket, bypassing the fastrouter. A vassal whose app failed to load still
//! accepts and subscribes and answers 500 (docs/UWSGI.md §6.4); only a request tells.
//! Sans-IO: the request bytes and the verdict on the answer.

/// Encodes a uwsgi request (modifier1 0: WSGI) for `GET path` with the
/// fastrouter key as host.
pub fn request(path: &str, host: &str) -> Vec<u8> {
    let (path_info, query) = match path.split_once('?') {
        Some((p, q)) => (p, q),
        None => (path, ""),
    };
    let vars: [(&str, &str); 10] = [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", path),
        ("PATH_INFO", path_info),
        ("QUERY_STRING", query),
        ("SERVER_PROTOCOL", "HTTP/1.0"),
        ("HTTP_HOST", host),
        ("SERVER_NAME", host),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_USER_AGENT", "uwsgi-reload-probe"),
    ];
    let mut body = Vec::new();
    for (k, v) in vars {
        // Variables over 64 KiB cannot be encoded; a path that long is
        // refused by the command line long before.
        let (k, v) = (
            k.as_bytes(),
            &v.as_bytes()[..v.len().min(u16::MAX as usize)],
        );
        body.extend_from_slice(&(k.len() as u16).to_le_bytes());
        body.extend_from_slice(k);
        body.extend_from_slice(&(v.len() as u16).to_le_bytes());
        body.extend_from_slice(v);
    }
    let mut pkt = Vec::with_capacity(body.len() + 4);
    pkt.push(0);
    pkt.extend_from_slice(&(body.len().min(u16::MAX as usize) as u16).to_le_bytes());
    pkt.push(0);
    pkt.extend_from_slice(&body);
    pkt
}

/// The HTTP status of an answer, once its first line is complete.
pub fn status(answer: &[u8]) -> Option<Result<u16, String>> {
    let end = answer.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&answer[..end]);
    let mut parts = line.split_whitespace();
    let proto = parts.next().unwrap_or("");
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    Some(match code {
        Some(c) if proto.starts_with("HTTP/") => Ok(c),
        _ => Err(format!("expected an HTTP status line, got {line:?}")),
    })
}

/// 2xx and 3xx count as healthy.
pub fn healthy(code: u16) -> bool {
    (200..400).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_a_uwsgi_packet() {
        let r = request("/health?x=1", "example.com");
        assert_eq!(r[0], 0);
        assert_eq!(u16::from_le_bytes([r[1], r[2]]) as usize, r.len() - 4);
        let s = String::from_utf8_lossy(&r);
        assert!(s.contains("PATH_INFO") && s.contains("/health") && s.contains("x=1"));
    }

    #[test]
    fn status_lines() {
        assert_eq!(status(b"HTTP/1.0 200 OK\r\n"), Some(Ok(200)));
        assert_eq!(status(b"HTTP/1.1 500 Internal"), None);
        assert_eq!(status(b"HTTP/1.1 503 x\r\nfoo"), Some(Ok(503)));
        assert!(matches!(status(b"garbage\r\n"), Some(Err(_))));
        assert!(healthy(302) && !healthy(500) && !healthy(199));
    }
}
