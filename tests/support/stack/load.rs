//! HTTP load on nginx: N threads of HTTP/1.0 GETs on new connections, bounded
//! by a request count and a duration. Every connection error, timeout and
//! non-2xx answer is a failure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub threads: usize,
    /// Path and query, e.g. `/?sleep=0.3`.
    pub path: String,
    /// Stop after this many requests in total (or at `stop()`).
    pub max_requests: u64,
    /// Stop after this long (or at `stop()`).
    pub max_duration: Duration,
    /// Bound on one request (connect, send, read to EOF).
    pub timeout: Duration,
}

impl Default for LoadSpec {
    /// 10 clients (as `ab -c 10`), 20 ms per request in the app.
    fn default() -> Self {
        LoadSpec {
            threads: 10,
            path: "/?sleep=0.02".into(),
            max_requests: u64::MAX,
            max_duration: Duration::from_secs(600),
            timeout: Duration::from_secs(30),
        }
    }
}

impl LoadSpec {
    pub fn path(mut self, p: &str) -> Self {
        self.path = p.to_string();
        self
    }
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }
}

#[derive(Clone, Debug)]
pub struct Failure {
    /// ms after t0 at which the request started.
    pub at_ms: u128,
    pub took_ms: u128,
    pub what: String,
}

#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub sent: u64,
    pub ok: u64,
    pub failures: Vec<Failure>,
    /// Successful answers per vassal (`app=` in the body).
    pub by_app: BTreeMap<String, u64>,
    pub max_latency: Duration,
    pub first_ms: u128,
    pub last_ms: u128,
}

impl LoadReport {
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "load: {} sent, {} ok, {} failed, max latency {} ms, from {} to {} ms; answers per vassal {:?}",
            self.sent,
            self.ok,
            self.failures.len(),
            self.max_latency.as_millis(),
            self.first_ms,
            self.last_ms,
            self.by_app
        );
        for f in self.failures.iter().take(30) {
            let _ = writeln!(
                s,
                "  failed request started at {} ms, after {} ms: {}",
                f.at_ms, f.took_ms, f.what
            );
        }
        if self.failures.len() > 30 {
            let _ = writeln!(s, "  ... {} more", self.failures.len() - 30);
        }
        s
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<LoadReport>>,
}

/// One GET through nginx on 127.0.0.1:`port`. Ok(body) on 2xx.
pub fn get(port: u16, path: &str, timeout: Duration) -> Result<String, String> {
    let started = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_write_timeout(Some(timeout)).unwrap();
    let req =
        format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: uwsgi-reload-e2e\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        let left = timeout
            .checked_sub(started.elapsed())
            .ok_or("timeout reading the answer")?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "timeout reading the answer ({} bytes so far)",
                    buf.len()
                ))
            }
            Err(e) => return Err(format!("read: {e} ({} bytes so far)", buf.len())),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        if buf.is_empty() {
            "empty answer".to_string()
        } else {
            format!("no header end in {:?}", text)
        }
    })?;
    let status_line = head.lines().next().unwrap_or("");
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    if !(200..300).contains(&code) {
        return Err(format!(
            "HTTP {code}: {:?}",
            body.chars().take(200).collect::<String>()
        ));
    }
    Ok(body.to_string())
}

impl Load {
    pub fn start(port: u16, spec: LoadSpec, t0: Instant) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicU64::new(0));
        let handles = (0..spec.threads)
            .map(|_| {
                let stop = stop.clone();
                let issued = issued.clone();
                let spec = spec.clone();
                std::thread::spawn(move || {
                    let mut r = LoadReport {
                        first_ms: u128::MAX,
                        ..LoadReport::default()
                    };
                    let started = Instant::now();
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < spec.max_duration {
                        if issued.fetch_add(1, Ordering::Relaxed) >= spec.max_requests {
                            break;
                        }
                        let at = Instant::now();
                        let at_ms = at.duration_since(t0).as_millis();
                        r.first_ms = r.first_ms.min(at_ms);
                        r.last_ms = r.last_ms.max(at_ms);
                        r.sent += 1;
                        let res = get(port, &spec.path, spec.timeout);
                        let took = at.elapsed();
                        r.max_latency = r.max_latency.max(took);
                        match res {
                            Ok(body) => {
                                r.ok += 1;
                                let app = body
                                    .split_whitespace()
                                    .find_map(|w| w.strip_prefix("app="))
                                    .unwrap_or("?")
                                    .to_string();
                                *r.by_app.entry(app).or_default() += 1;
                            }
                            Err(what) => r.failures.push(super::load::Failure {
                                at_ms,
                                took_ms: took.as_millis(),
                                what,
                            }),
                        }
                    }
                    r
                })
            })
            .collect();
        Load { stop, handles }
    }

    pub fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = LoadReport {
            first_ms: u128::MAX,
            ..LoadReport::default()
        };
        for h in self.handles {
            let r = h.join().expect("load thread panicked");
            total.sent += r.sent;
            total.ok += r.ok;
            total.failures.extend(r.failures);
            for (k, v) in r.by_app {
                *total.by_app.entry(k).or_default() += v;
            }
            total.max_latency = total.max_latency.max(r.max_latency);
            total.first_ms = total.first_ms.min(r.first_ms);
            total.last_ms = total.last_ms.max(r.last_ms);
        }
        if total.first_ms == u128::MAX {
            total.first_ms = 0;
        }
        total.failures.sort_by_key(|f| f.at_ms);
        total
    }
}
