//! Non-blocking reads of one stats socket: connect, read to EOF, bounded in
//! time and size. uWSGI writes the document and closes (docs/UWSGI.md §13.1-§13.3); its
//! loops can stall, so every read has a deadline.

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};

use crate::error::Error;
use crate::run_config::SocketSpec;
use crate::stats::{StatsSource, MAX_STATS_BYTES};

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Unix(s) => s,
            Stream::Tcp(s) => s,
        }
    }
}

struct InFlight {
    stream: Stream,
    buf: Vec<u8>,
    deadline: Instant,
}

pub struct StatsReader {
    pub source: StatsSource,
    pub spec: SocketSpec,
    tcp: Vec<SocketAddr>,
    token: Token,
    timeout: Duration,
    inflight: Option<InFlight>,
    /// Reads started, for the report and the benchmark.
    pub reads: u64,
}

/// What a finished read produced.
pub type ReadResult = Result<Vec<u8>, String>;

impl StatsReader {
    pub fn new(
        source: StatsSource,
        spec: SocketSpec,
        token: Token,
        timeout: Duration,
    ) -> Result<StatsReader, Error> {
        let tcp = match &spec {
            SocketSpec::Tcp(a) => a
                .to_socket_addrs()
                .map_err(|e| {
                    Error::Precondition(format!(
                        "cannot resolve the {source} stats socket {a}: {e}"
                    ))
                })?
                .collect(),
            SocketSpec::Unix(_) => Vec::new(),
        };
        Ok(StatsReader {
            source,
            spec,
            tcp,
            token,
            timeout,
            inflight: None,
            reads: 0,
        })
    }

    pub fn in_flight(&self) -> bool {
        self.inflight.is_some()
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.inflight.as_ref().map(|f| f.deadline)
    }

    /// Starts a read. `Some` if it ended at once (a refused connection).
    pub fn start(&mut self, registry: &Registry, now: Instant) -> Option<ReadResult> {
        debug_assert!(self.inflight.is_none(), "the engine never asks twice");
        if self.inflight.is_some() {
            return None;
        }
        self.reads += 1;
        let stream = match &self.spec {
            SocketSpec::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
            SocketSpec::Tcp(_) => match self.tcp.first() {
                Some(a) => TcpStream::connect(*a).map(Stream::Tcp),
                None => Err(std::io::Error::other("no address")),
            },
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => return Some(Err(connect_error(&self.spec, &e))),
        };
        if let Err(e) = registry.register(stream.source(), self.token, Interest::READABLE) {
            return Some(Err(format!("cannot poll {}: {e}", self.spec)));
        }
        self.inflight = Some(InFlight {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            deadline: now + self.timeout,
        });
        // Edge-triggered: data may already be there.
        self.on_ready(registry)
    }

    /// Reads what is there; `Some` once the peer closed or it failed.
    pub fn on_ready(&mut self, registry: &Registry) -> Option<ReadResult> {
        let f = self.inflight.as_mut()?;
        let mut chunk = [0u8; 16 * 1024];
        let result = loop {
            match f.stream.read(&mut chunk) {
                Ok(0) => break Ok(std::mem::take(&mut f.buf)),
                Ok(n) => {
                    if f.buf.len() + n > MAX_STATS_BYTES {
                        break Err(format!(
                            "{} sent more than {MAX_STATS_BYTES} bytes; expected a stats document",
                            self.spec
                        ));
                    }
                    f.buf.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // A non-blocking TCP connect reports a refusal at the read.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    break Err(connect_error(&self.spec, &e))
                }
                Err(e) => break Err(format!("reading {}: {e}", self.spec)),
            }
        };
        self.close(registry);
        Some(result)
    }

    /// Fails the read in flight if its deadline passed.
    pub fn check_deadline(&mut self, registry: &Registry, now: Instant) -> Option<ReadResult> {
        let f = self.inflight.as_ref()?;
        if now < f.deadline {
            return None;
        }
        let got = f.buf.len();
        self.close(registry);
        Some(Err(format!(
            "{} did not send a complete answer within --stats-timeout {} ms ({got} bytes received)",
            self.spec,
            self.timeout.as_millis()
        )))
    }

    fn close(&mut self, registry: &Registry) {
        if let Some(mut f) = self.inflight.take() {
            let _ = registry.deregister(f.stream.source());
        }
    }
}

/// Why a connect failed, in the operator's terms: a path that is a file or
/// a directory says so (the kernel only says "Connection refused"), and a
/// socket nobody listens on is named as such.
pub fn connect_error(spec: &SocketSpec, e: &std::io::Error) -> String {
    use std::os::unix::fs::FileTypeExt;
    // The errno's text without Rust's " (os error N)" tail.
    let e_text = e.to_string();
    let e_text = e_text.split(" (os error").next().unwrap_or_default();
    let SocketSpec::Unix(p) = spec else {
        return format!("cannot connect to {spec}: {e_text}");
    };
    let what = match std::fs::metadata(p) {
        Ok(m) if m.is_file() => "it is a regular file, not a socket",
        Ok(m) if m.is_dir() => "it is a directory, not a socket",
        Ok(m) if !m.file_type().is_socket() => "it is not a socket",
        Ok(_) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            "a socket nobody listens on (is uWSGI running, with this stats socket?)"
        }
        _ => return format!("cannot connect to {spec}: {e_text}"),
    };
    format!("cannot connect to {spec}: {what}")
}

/// One read on its own small event loop, for the one-shot commands (`status`,
/// `--dry-run`): the same non-blocking connect, overall deadline and size cap
/// as the rollout's reads, so a stuck peer cannot hang them either.
pub fn read_once(source: StatsSource, spec: &SocketSpec, timeout: Duration) -> ReadResult {
    let mut poll = mio::Poll::new().map_err(|e| format!("cannot create an event loop: {e}"))?;
    let mut reader =
        StatsReader::new(source, spec.clone(), Token(0), timeout).map_err(|e| e.to_string())?;
    let clock = crate::clock::Clock::new();
    if let Some(r) = reader.start(poll.registry(), clock.instant_now()) {
        return r;
    }
    let mut events = mio::Events::with_capacity(4);
    loop {
        let now = clock.instant_now();
        if let Some(r) = reader.check_deadline(poll.registry(), now) {
            return r;
        }
        let wait = reader.deadline().map(|d| d.saturating_duration_since(now));
        match poll.poll(&mut events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("waiting for {spec}: {e}")),
        }
        if !events.is_empty() {
            if let Some(r) = reader.on_ready(poll.registry()) {
                return r;
            }
        }
    }
}

/// A stats answer parsed into the engine's input, or why it is not one;
/// errors name the socket and what was expected.
pub fn to_input(source: StatsSource, spec: &SocketSpec, r: ReadResult) -> crate::engine::Input {
    use crate::engine::Input;
    use crate::stats::{EmperorSnapshot, FastrouterSnapshot};
    let parsed = r.and_then(|bytes| {
        match source {
            StatsSource::Emperor => EmperorSnapshot::parse(&bytes).map(Input::Emperor),
            StatsSource::Fastrouter => FastrouterSnapshot::parse(&bytes).map(Input::Fastrouter),
        }
        .map_err(|e| format!("{spec}: {e}"))
    });
    parsed.unwrap_or_else(|error| Input::ReadFailed { source, error })
}
