//! Typed, sans-IO models of the two stats documents uWSGI serves.
//!
//! Both sockets answer a connection with one JSON document and close it
//! (docs/UWSGI.md §13.4-§13.5). Parsing is strict: every field the reload logic reads
//! must be present with the right type, so a changed or truncated document is
//! an error that names the field, never a silently wrong decision. The single
//! exception is the trailing comma that uWSGI's fastrouter emits when another
//! router shares the instance (docs/UWSGI.md §13.6), fixed in [`trailing_commas`].

pub mod emperor;
pub mod fastrouter;
pub mod trailing_commas;

pub use emperor::{BlacklistEntry, EmperorSnapshot, VassalStats};
pub use fastrouter::{router_key, split_router_key, FastrouterSnapshot, Node, Subscription};

/// Largest stats document accepted. The Emperor's document for 1,000
/// vassals is about 500 KiB; anything near this cap is not a stats socket.
pub const MAX_STATS_BYTES: usize = 16 * 1024 * 1024;

/// Which of the two stats documents a value or an error belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatsSource {
    Emperor,
    Fastrouter,
}

impl StatsSource {
    pub fn as_str(self) -> &'static str {
        match self {
            StatsSource::Emperor => "emperor",
            StatsSource::Fastrouter => "fastrouter",
        }
    }
}

impl std::fmt::Display for StatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a stats document was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Nothing was received before the peer closed the connection.
    Empty,
    /// The document is larger than [`MAX_STATS_BYTES`].
    TooLarge { len: usize },
    /// The bytes are not UTF-8 JSON of the expected shape.
    Invalid { detail: String },
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Empty => f.write_str("expected a JSON document, got an empty answer"),
            ParseError::TooLarge { len } => write!(
                f,
                "expected at most {MAX_STATS_BYTES} bytes of JSON, got {len}"
            ),
            ParseError::Invalid { detail } => write!(f, "expected uWSGI stats JSON: {detail}"),
        }
    }
}

/// Strips an optional HTTP response head (`--stats-http`) and checks size.
fn body(bytes: &[u8]) -> Result<&[u8], ParseError> {
    if bytes.len() > MAX_STATS_BYTES {
        return Err(ParseError::TooLarge { len: bytes.len() });
    }
    let mut b = bytes;
    if b.starts_with(b"HTTP/") {
        // `stats-http` prefixes a response head; the JSON follows the blank line.
        match b.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => b = &b[i + 4..],
            None => {
                return Err(ParseError::Invalid {
                    detail: "HTTP response head without an end".into(),
                })
            }
        }
    }
    if b.iter().all(|c| c.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    Ok(b)
}
