//! Non-blocking `--probe` requests to vassal sockets, several at once.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};

use crate::probe;

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Unix(s) => s,
            Stream::Tcp(s) => s,
        }
    }
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(b),
            Stream::Tcp(s) => s.read(b),
        }
    }
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(b),
            Stream::Tcp(s) => s.write(b),
        }
    }
}

struct InFlight {
    vassal: String,
    node: String,
    stream: Stream,
    out: Vec<u8>,
    written: usize,
    buf: Vec<u8>,
    deadline: Instant,
}

/// Probes in flight, by token. Tokens from `first_token` up are ours.
pub struct Prober {
    next: usize,
    first: usize,
    timeout: Duration,
    inflight: BTreeMap<usize, InFlight>,
}

/// (vassal, Ok(detail) if healthy / Err(why)).
pub type ProbeResult = (String, Result<String, String>);

impl Prober {
    pub fn new(first_token: usize, timeout: Duration) -> Prober {
        Prober {
            next: first_token,
            first: first_token,
            timeout,
            inflight: BTreeMap::new(),
        }
    }

    pub fn owns(&self, t: Token) -> bool {
        t.0 >= self.first
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.inflight.values().map(|f| f.deadline).min()
    }

    /// Starts a probe of `node` (a unix path or host:port, as the fastrouter
    /// connects to it). `Some` if it failed at once.
    pub fn start(
        &mut self,
        registry: &Registry,
        vassal: String,
        node: String,
        path: &str,
        host: &str,
        now: Instant,
    ) -> Option<ProbeResult> {
        let stream = if node.contains('/') || !node.contains(':') {
            UnixStream::connect(&node).map(Stream::Unix)
        } else {
            // `:3031` means every interface; the vassal is local.
            let addr = if node.starts_with(':') {
                format!("127.0.0.1{node}")
            } else {
                node.clone()
            };
            match addr.to_socket_addrs().ok().and_then(|mut a| a.next()) {
                Some(a) => TcpStream::connect(a).map(Stream::Tcp),
                None => Err(std::io::Error::other("not a socket address")),
            }
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => return Some((vassal, Err(format!("probe: cannot connect to {node}: {e}")))),
        };
        let token = self.next;
        self.next += 1;
        if let Err(e) = registry.register(
            stream.source(),
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return Some((vassal, Err(format!("probe: cannot poll {node}: {e}"))));
        }
        self.inflight.insert(
            token,
            InFlight {
                vassal,
                node,
                stream,
                out: probe::request(path, host),
                written: 0,
                buf: Vec::new(),
                deadline: now + self.timeout,
            },
        );
        self.on_ready(registry, Token(token))
    }

    /// Progresses the probe behind `t`; `Some` once it has a verdict.
    pub fn on_ready(&mut self, registry: &Registry, t: Token) -> Option<ProbeResult> {
        let f = self.inflight.get_mut(&t.0)?;
        let verdict = loop {
            if f.written < f.out.len() {
                match f.stream.write(&f.out[f.written..]) {
                    Ok(n) => {
                        f.written += n;
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(format!("probe: writing to {}: {e}", f.node)),
                }
            }
            let mut chunk = [0u8; 4096];
            match f.stream.read(&mut chunk) {
                Ok(0) => {
                    break match probe::status(&f.buf) {
                        Some(r) => verdict(r, &f.node),
                        None => Err(format!(
                            "probe: {} closed without an HTTP status line",
                            f.node
                        )),
                    }
                }
                Ok(n) => {
                    f.buf.extend_from_slice(&chunk[..n]);
                    if let Some(r) = probe::status(&f.buf) {
                        break verdict(r, &f.node);
                    }
                    if f.buf.len() > 64 * 1024 {
                        break Err(format!("probe: {} sent no status line in 64 KiB", f.node));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(format!("probe: reading from {}: {e}", f.node)),
            }
        };
        let mut f = self.inflight.remove(&t.0)?;
        let _ = registry.deregister(f.stream.source());
        Some((f.vassal, verdict))
    }

    /// Probes past their deadline, failed.
    pub fn expire(&mut self, registry: &Registry, now: Instant) -> Vec<ProbeResult> {
        let late: Vec<usize> = self
            .inflight
            .iter()
            .filter(|(_, f)| now >= f.deadline)
            .map(|(t, _)| *t)
            .collect();
        late.into_iter()
            .filter_map(|t| self.inflight.remove(&t))
            .map(|mut f| {
                let _ = registry.deregister(f.stream.source());
                (
                    f.vassal,
                    Err(format!(
                        "probe: {} did not answer within {} ms",
                        f.node,
                        self.timeout.as_millis()
                    )),
                )
            })
            .collect()
    }
}

fn verdict(r: Result<u16, String>, node: &str) -> Result<String, String> {
    match r {
        Ok(c) if probe::healthy(c) => Ok(format!("HTTP {c}")),
        Ok(c) => Err(format!(
            "probe: {node} answered HTTP {c}; expected 2xx or 3xx"
        )),
        Err(e) => Err(format!("probe: {node}: {e}")),
    }
}
