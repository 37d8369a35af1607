//! Reading a vassal's config the way uWSGI 2.0 reads it (sans-IO): ini
//! here, the other formats in `config_formats`.
//!
//! The tool needs a few facts from each vassal config: the address its
//! fastrouter node is named after, where it subscribes, its master FIFO, and
//! the options that change how a reload looks (unsubscribe-on-graceful-reload,
//! start-unsubscribed, need-app, lazy-apps, accepting hooks). Nothing links a
//! fastrouter node to an Emperor vassal except that address, so it has to come
//! out exactly as uWSGI computes it; the steps below follow uWSGI 2.0.21:
//!
//! 1. `magic_sub` (core/utils.c) replaces `%X` in the *whole file text* before
//!    parsing, from a table filled by `config_magic_table_fill`
//!    (core/uwsgi.c). Every byte has an entry: letters it does not know become
//!    the empty string, `%%` becomes `%`, and `%(` is kept for step 3.
//! 2. `uwsgi_ini_config` (core/ini.c) splits lines on `\n`, strips spaces,
//!    tabs and `\r`, takes `[section]` headers, skips lines starting with `;`
//!    or `#` (no inline comments), and splits `key = value` at the first `=`.
//!    A line without `=` is the key with an empty value (a bare boolean).
//! 3. After every config is loaded, `uwsgi_apply_config_pass('%', ...)`
//!    replaces `%(name)` in each value with the value of the *first* option
//!    called `name` (core/config.c), whether it comes before or after.
//!
//! Only the `[uwsgi]` section is read. Includes (`ini = other.ini` and the
//! like) are recorded in `includes`, not followed, so callers can warn that
//! what we extracted may be incomplete. Anything we could not resolve
//! statically (`%h`, `%(a + 1)`, auto-assigned ports...) is kept literally and
//! noted in `warnings`.

use std::path::{Path, PathBuf};

use crate::config_formats::{self, Format};

/// One place the vassal announces itself (a `subscribe2` or `subscribe-to`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeTarget {
    /// Subscription server: a unix datagram path, or `host:port` for UDP.
    pub server: String,
    /// Fastrouter key.
    pub key: String,
    /// Address the vassal subscribes with when it is not its first socket
    /// (`addr=`, `socket=N`, or the `addr=server:key` form). `None` means the
    /// first socket; see [`VassalConfig::address_of`].
    pub addr: Option<String>,
    /// modifier1/modifier2 the vassal announces. The fastrouter stores them
    /// only when a node is created, so a re-subscribe must repeat them.
    pub modifier1: u8,
    pub modifier2: u8,
    /// subscribe2 `check=FILE`: no announce while FILE exists.
    pub check: Option<String>,
}

/// What the tool knows about one vassal config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VassalConfig {
    /// The config file name as the Emperor passes it (e.g. `app_01.ini`).
    pub name: String,
    /// Absolute directory the vassal runs in, with a trailing slash (`%d`).
    pub dir: String,
    /// Every `[uwsgi]` option, placeholders resolved, in file order.
    pub options: Vec<(String, String)>,
    /// Bound sockets in order (`socket`, `uwsgi-socket`, and the other
    /// `*-socket` options that add to uWSGI's socket list: the first of any
    /// of them is the subscription address).
    pub sockets: Vec<String>,
    /// In the order uWSGI sends them: every `subscribe-to`, then every
    /// `subscribe2`.
    pub subscriptions: Vec<SubscribeTarget>,
    /// `master-fifo` paths as written; slot 0 is the one active at start.
    pub master_fifos: Vec<String>,
    pub unsubscribe_on_graceful_reload: bool,
    pub start_unsubscribed: bool,
    pub need_app: bool,
    pub lazy_apps: bool,
    /// Values of `hook-accepting`, `hook-accepting1`, `hook-accepting-once`
    /// and `hook-accepting1-once`, in file order.
    pub accepting_hooks: Vec<String>,
    /// Other config files this one loads (`ini`, `include`, `inherit`, ...),
    /// not followed.
    pub includes: Vec<String>,
    /// What could not be resolved statically, one line each.
    pub warnings: Vec<String>,
}

/// Options that add a socket to `uwsgi.sockets` (core/uwsgi.c option table).
const SOCKET_OPTIONS: &[&str] = &[
    "socket",
    "uwsgi-socket",
    "http-socket",
    "http11-socket",
    "fastcgi-socket",
    "fastcgi-nph-socket",
    "scgi-socket",
    "scgi-nph-socket",
    "raw-socket",
    "puwsgi-socket",
];

/// SSL variants take `addr,crt,key[,...]`; the socket is named by `addr`.
const SSL_SOCKET_OPTIONS: &[&str] = &["suwsgi-socket", "ssl-socket", "https-socket"];

const ACCEPTING_HOOKS: &[&str] = &[
    "hook-accepting",
    "hook-accepting1",
    "hook-accepting-once",
    "hook-accepting1-once",
];

/// Options that load another config file.
const INCLUDE_OPTIONS: &[&str] = &[
    "ini", "include", "inherit", "config", "json", "js", "yaml", "yml", "xml",
];

/// Magic letters whose value needs the running system (hostname, clock, uid,
/// inode, binary path...). uWSGI would substitute them; we keep them literal.
const RUNTIME_MAGIC: &[u8] = b"bhiIjJtTVkuUgG[";

impl VassalConfig {
    /// Parse `text`, the content of the config file `name` that the vassal
    /// reads from directory `dir` (absolute; the Emperor's directory, which
    /// is the vassal's working directory). No I/O.
    pub fn parse(text: &str, name: &str, dir: &str) -> VassalConfig {
        let mut cfg = VassalConfig {
            name: name.to_string(),
            dir: with_slash(dir),
            ..VassalConfig::default()
        };
        let magic = MagicTable::new(name, &cfg.dir);
        let text = magic_sub(text.as_bytes(), &magic, &mut cfg.warnings);
        cfg.options = match Format::of(name) {
            Format::Ini => ini_section(&text, "uwsgi"),
            other => config_formats::options(other, &text).unwrap_or_else(|e| {
                cfg.warnings.push(format!("not read as {other:?}: {e}"));
                Vec::new()
            }),
        };
        resolve_placeholders(&mut cfg.options, &mut cfg.warnings);
        cfg.extract();
        cfg
    }

    /// First value of an option (the one `%(name)` would use).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of an option, in file order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.options
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// It runs a fastrouter (a router vassal, not an app): the tool leaves
    /// it out of a rollout unless `--only` names it.
    pub fn is_router(&self) -> bool {
        self.options.iter().any(|(k, _)| {
            matches!(
                k.as_str(),
                "fastrouter" | "fastrouter-subscription-server" | "fastrouter-ss"
            )
        })
    }

    /// Its `subscribe-freq` in seconds, if it sets a usable one (uWSGI reads
    /// it with atoi; 0 or garbage would mean its default, 10).
    pub fn subscribe_freq(&self) -> Option<i64> {
        let v: i64 = self.get("subscribe-freq")?.trim().parse().ok()?;
        (v > 0).then_some(v)
    }

    /// The address `target` announces: its own, else the first socket
    /// (`uwsgi_send_subscription_from_fd`). `None`: uWSGI sends nothing.
    pub fn address_of(&self, target: &SubscribeTarget) -> Option<String> {
        target
            .addr
            .clone()
            .or_else(|| self.sockets.first().cloned())
    }

    /// The fastrouter node name of this vassal: the address of its first
    /// subscription, else its first socket.
    pub fn node_name(&self) -> Option<String> {
        match self.subscriptions.first() {
            Some(t) => self.address_of(t),
            None => self.sockets.first().cloned(),
        }
    }

    /// The first accepting hook of the form `writefifo:PATH PAYLOAD`
    /// (the "subscribe once worker 1 accepts" pattern), with PATH resolved
    /// against the vassal's directory. PAYLOAD is everything after the first
    /// space, as `uwsgi_hook_writefifo` writes it.
    pub fn writefifo_hook(&self) -> Option<(PathBuf, String)> {
        self.options
            .iter()
            .filter(|(k, _)| ACCEPTING_HOOKS.contains(&k.as_str()))
            .find_map(|(_, v)| {
                let (action, arg) = v.split_once(':')?;
                // A leading '!' only hides the hook from the log.
                if action.strip_prefix('!').unwrap_or(action) != "writefifo" {
                    return None;
                }
                let (path, payload) = arg.split_once(' ')?;
                Some((self.resolve_path(path), payload.to_string()))
            })
    }

    /// `master_fifos`, resolved against the vassal's directory.
    pub fn master_fifo_paths(&self) -> Vec<PathBuf> {
        self.master_fifos
            .iter()
            .map(|p| self.resolve_path(p))
            .collect()
    }

    /// A path as the vassal process sees it: relative paths are relative to
    /// its working directory, the Emperor's directory.
    pub fn resolve_path(&self, p: &str) -> PathBuf {
        Path::new(&self.dir).join(p)
    }

    /// Fill the typed fields from `options`.
    fn extract(&mut self) {
        let mut shared_sockets = Vec::new();
        let mut subscribe_to = Vec::new();
        let mut subscribe2 = Vec::new();
        let mut forced_modifier1 = None;

        for (k, v) in &self.options {
            let k = k.as_str();
            if SOCKET_OPTIONS.contains(&k) {
                self.sockets.push(socket_name(v));
            } else if SSL_SOCKET_OPTIONS.contains(&k) {
                let addr = v.split(',').next().unwrap_or("");
                self.sockets.push(socket_name(addr));
            } else if k == "shared-socket" || k == "undeferred-shared-socket" {
                shared_sockets.push(socket_name(v));
            } else if k == "subscribe-to" || k == "st" || k == "subscribe" {
                subscribe_to.push(v.clone());
            } else if k == "subscribe2" {
                subscribe2.push(v.clone());
            } else if k == "subscribe-with-modifier1" {
                forced_modifier1 = Some(atoi_u8(v));
            } else if k == "master-fifo" {
                self.master_fifos.push(v.clone());
            } else if k == "unsubscribe-on-graceful-reload" {
                self.unsubscribe_on_graceful_reload = opt_true(v);
            } else if k == "start-unsubscribed" {
                self.start_unsubscribed = opt_true(v);
            } else if k == "need-app" {
                self.need_app = opt_true(v);
            } else if k == "lazy-apps" {
                self.lazy_apps = opt_true(v);
            } else if ACCEPTING_HOOKS.contains(&k) {
                self.accepting_hooks.push(v.clone());
            } else if INCLUDE_OPTIONS.contains(&k) {
                self.includes.push(v.clone());
            } else if k.starts_with("if-") || k == "for" || k.starts_with("for-") {
                self.warnings.push(format!(
                    "logic block `{k}` not evaluated: its options are read as if unconditional"
                ));
            }
        }

        for s in &self.sockets {
            if s.ends_with(':') || s.ends_with(":0") || s.contains('*') || s.starts_with('=') {
                self.warnings.push(format!(
                    "socket {s:?} gets its real name when uWSGI binds it; node names will differ"
                ));
            }
        }

        for v in &subscribe_to {
            match parse_subscribe_to(v, &shared_sockets) {
                Ok(t) => self.subscriptions.push(t),
                Err(why) => self
                    .warnings
                    .push(format!("subscribe-to {v:?} ignored: {why}")),
            }
        }
        for v in &subscribe2 {
            match parse_subscribe2(v, &self.sockets) {
                Ok(t) => self.subscriptions.push(t),
                Err(why) => self
                    .warnings
                    .push(format!("subscribe2 {v:?} ignored: {why}")),
            }
        }
        if let Some(m) = forced_modifier1 {
            for t in &mut self.subscriptions {
                t.modifier1 = m;
            }
        }
        if self.sockets.is_empty() && self.subscriptions.iter().any(|t| t.addr.is_none()) {
            self.warnings
                .push("subscriptions without addr= and no socket: uWSGI sends none".into());
        }
    }
}

/// Read and parse a vassal config file. The directory is canonicalised as
/// the vassal's `getcwd()` would be, the file name is kept as given: the
/// Emperor passes symlinks by name, and `%n` is the link's name.
pub fn load(path: &Path) -> Result<VassalConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read vassal config: {e}", path.display()))?;
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: expected a config file path", path.display()))?
        .to_string_lossy()
        .into_owned();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&parent).map_err(|e| {
        format!(
            "{}: cannot resolve the config's directory: {e}",
            parent.display()
        )
    })?;
    Ok(VassalConfig::parse(&text, &name, &dir.to_string_lossy()))
}

fn with_slash(dir: &str) -> String {
    if dir.ends_with('/') {
        dir.to_string()
    } else {
        format!("{dir}/")
    }
}

/// The per-file magic variables of `config_magic_table_fill`, computed from
/// the name and directory instead of the file system.
struct MagicTable {
    /// `%o`: the name as passed.
    o: String,
    /// `%p`: absolute path. uWSGI does not resolve a symlinked file, only the
    /// directory (`getcwd`), which the caller's `dir` already is.
    p: String,
    /// `%s`: file name with extension.
    s: String,
    /// `%d`: directory of `%p`, trailing slash kept.
    d: String,
    /// `%c`: last component of `%d`.
    c: String,
    /// `%e`: extension (after the last dot of `%s`).
    e: String,
    /// `%n`: `%s` without extension.
    n: String,
    /// `%v`: the working directory (no trailing slash).
    v: String,
    /// `%0`..`%9`: components of `%d`.
    digits: Vec<String>,
}

impl MagicTable {
    fn new(name: &str, dir: &str) -> MagicTable {
        let p = if name.starts_with('/') {
            name.to_string()
        } else {
            format!("{dir}{name}")
        };
        let slash = p.rfind('/').map_or(0, |i| i + 1);
        let s = p[slash..].to_string();
        let d = p[..slash].to_string();
        let d_trimmed = d.strip_suffix('/').unwrap_or(&d);
        let c = d_trimmed
            .rfind('/')
            .map_or(String::new(), |i| d_trimmed[i + 1..].to_string());
        let (n, e) = match s.rfind('.') {
            Some(i) => (s[..i].to_string(), s[i + 1..].to_string()),
            None => (s.clone(), String::new()),
        };
        let digits = d
            .split('/')
            .filter(|t| !t.is_empty())
            .take(10)
            .map(str::to_string)
            .collect();
        let v = dir.strip_suffix('/').unwrap_or(dir);
        MagicTable {
            o: name.to_string(),
            p,
            s,
            d,
            c,
            e,
            n,
            v: if v.is_empty() { "/".into() } else { v.into() },
            digits,
        }
    }

    /// What `%` followed by `c` becomes; `None` keeps `%c` literally.
    fn lookup(&self, c: u8) -> Option<&str> {
        Some(match c {
            b'%' => "%",
            b'(' => "%(",
            // Upper case is the first config's value; a vassal's ini is it.
            b'o' | b'O' => &self.o,
            b'p' | b'P' => &self.p,
            b's' | b'S' => &self.s,
            b'd' | b'D' => &self.d,
            b'c' | b'C' => &self.c,
            b'e' | b'E' => &self.e,
            b'n' | b'N' => &self.n,
            // No `file.ini:section` suffix for vassals.
            b'x' | b'X' => "",
            b'v' => &self.v,
            b'0'..=b'9' => self
                .digits
                .get((c - b'0') as usize)
                .map_or("", |s| s.as_str()),
            c if RUNTIME_MAGIC.contains(&c) => return None,
            // init_magic_table maps every other byte to "".
            _ => "",
        })
    }
}

/// uWSGI's `magic_sub` over the raw file bytes.
fn magic_sub(text: &[u8], magic: &MagicTable, warnings: &mut Vec<String>) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%' && i + 1 < text.len() {
            let c = text[i + 1];
            match magic.lookup(c) {
                Some(v) => out.extend_from_slice(v.as_bytes()),
                None => {
                    out.extend_from_slice(&[b'%', c]);
                    warn_once(
                        warnings,
                        format!(
                            "magic variable %{} depends on the running system; kept literally",
                            c as char
                        ),
                    );
                }
            }
            i += 2;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A placeholder rescanned after each substitution would repeat its warning.
fn warn_once(warnings: &mut Vec<String>, w: String) {
    if !warnings.contains(&w) {
        warnings.push(w);
    }
}

/// `uwsgi_ini_config`: the `key = value` pairs of one section, in order.
fn ini_section(text: &str, wanted: &str) -> Vec<(String, String)> {
    const WS: &[char] = &[' ', '\t', '\r'];
    let mut options = Vec::new();
    let mut section = String::new();
    for line in text.split('\n') {
        let line = line.trim_matches(WS);
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            // uWSGI drops the last character, whatever it is.
            let mut chars = rest.chars();
            chars.next_back();
            section = chars.as_str().to_string();
            continue;
        }
        if section != wanted {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        options.push((
            key.trim_end_matches(WS).to_string(),
            value.trim_matches(WS).to_string(),
        ));
    }
    options
}

/// The `%(name)` pass of `uwsgi_apply_config_pass`. Each value is rescanned
/// from the start after a substitution (so references nest). A reference
/// cycle makes uWSGI loop forever, and a value that refers to itself doubles
/// on every round, so both a count and a length cap stop it here.
fn resolve_placeholders(options: &mut [(String, String)], warnings: &mut Vec<String>) {
    const MAX_SUBSTITUTIONS: usize = 64;
    const MAX_LEN: usize = 64 * 1024;
    for i in 0..options.len() {
        let mut substitutions = 0;
        let mut from = 0;
        while let Some((start, end)) = find_placeholder(&options[i].1, from) {
            let inner = options[i].1[start + 2..end].to_string();
            let found = if inner.contains(' ') {
                None
            } else {
                options
                    .iter()
                    .find(|(k, _)| *k == inner)
                    .map(|(_, v)| v.clone())
            };
            match found {
                Some(v)
                    if substitutions < MAX_SUBSTITUTIONS
                        && options[i].1.len() + v.len() <= MAX_LEN =>
                {
                    let value = &options[i].1;
                    options[i].1 = format!("{}{}{}", &value[..start], v, &value[end + 1..]);
                    substitutions += 1;
                    from = 0;
                }
                Some(_) => {
                    let w = format!(
                        "option {}: %({inner}) refers back to itself; left unresolved",
                        options[i].0
                    );
                    warn_once(warnings, w);
                    break;
                }
                None => {
                    let w = format!(
                        "option {}: %({inner}) not resolved (unknown option or expression)",
                        options[i].0
                    );
                    warn_once(warnings, w);
                    from = end + 1;
                }
            }
        }
    }
}

/// Next `%(...)` at or after `from`: byte offsets of `%` and of the closing
/// `)`, parentheses nesting as in uWSGI. `%()` is not a placeholder.
fn find_placeholder(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut i = from;
    while i + 1 < b.len() {
        if b[i] == b'%' && b[i + 1] == b'(' {
            let mut depth = 0;
            for (j, &c) in b.iter().enumerate().skip(i + 2) {
                match c {
                    b'(' => depth += 1,
                    b')' if depth > 0 => depth -= 1,
                    b')' if j == i + 2 => break,
                    b')' => return Some((i, j)),
                    _ => {}
                }
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    None
}

/// `generate_socket_name`: leading whitespace is dropped, the rest kept.
fn socket_name(v: &str) -> String {
    v.trim_start().to_string()
}

/// `uwsgi_opt_true`: anything but false/off/no (any case) or "0" is true,
/// including the empty value of a bare key.
fn opt_true(v: &str) -> bool {
    !(v.eq_ignore_ascii_case("false")
        || v.eq_ignore_ascii_case("off")
        || v.eq_ignore_ascii_case("no")
        || v == "0")
}

/// C `atoi` then a cast to `uint8_t`, as uWSGI stores modifiers.
fn atoi_u8(v: &str) -> u8 {
    let v = v.trim_start();
    let (neg, digits) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0u64, |n, d| {
            n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
        });
    let n = if neg { n.wrapping_neg() } else { n };
    n as u8
}

/// `uwsgi_kvlist_parse(arg, ',', '=')`: items split on unescaped `,`
/// (backslash escapes), key up to the first `=`, no trimming; a repeated key
/// keeps the last value; items without `=` are ignored.
fn kvlist(arg: &str) -> Vec<(String, String)> {
    let mut items = vec![String::new()];
    let mut escaped = false;
    for c in arg.chars() {
        if escaped {
            items.last_mut().unwrap().push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            items.push(String::new());
        } else {
            items.last_mut().unwrap().push(c);
        }
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for item in items {
        if let Some((k, v)) = item.split_once('=') {
            match out.iter_mut().find(|(ok, _)| ok == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => out.push((k.to_string(), v.to_string())),
            }
        }
    }
    out
}

/// `uwsgi_subscribe2`.
fn parse_subscribe2(arg: &str, sockets: &[String]) -> Result<SubscribeTarget, String> {
    let kv = kvlist(arg);
    let get = |name: &str| kv.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let server = get("server").ok_or("no server=")?;
    let key = get("key").ok_or("no key=")?;
    let mut addr = get("addr");
    // socket=N (0-based) wins over addr= when that socket exists.
    if let Some(n) = get("socket") {
        if let Some(s) = usize::try_from(atoi_i64(&n))
            .ok()
            .and_then(|n| sockets.get(n))
        {
            addr = Some(s.clone());
        }
    }
    Ok(SubscribeTarget {
        server,
        key,
        addr,
        modifier1: get("modifier1").map_or(0, |m| atoi_u8(&m)),
        modifier2: get("modifier2").map_or(0, |m| atoi_u8(&m)),
        check: get("check"),
    })
}

/// `uwsgi_subscribe`: `[addr=|=N=]server:key[,modifier1[,sign]]`.
fn parse_subscribe_to(arg: &str, shared_sockets: &[String]) -> Result<SubscribeTarget, String> {
    let (addr, rest) = match arg.find('=') {
        Some(0) => {
            // =N=server:key, N a shared socket.
            let (n, rest) = arg[1..].split_once('=').ok_or("expected =N=server:key")?;
            let s = usize::try_from(atoi_i64(n))
                .ok()
                .and_then(|n| shared_sockets.get(n))
                .ok_or_else(|| format!("no shared-socket number {n}"))?;
            (Some(s.clone()), rest)
        }
        Some(i) => (Some(arg[..i].to_string()), &arg[i + 1..]),
        None => (None, arg),
    };
    // A unix server path starts with '/'; anything else needs host:port
    // before the key's colon.
    let key_colon = if let Some(path) = rest.strip_prefix('/') {
        path.find(':').map(|i| i + 1)
    } else {
        let port = rest
            .find(':')
            .ok_or("expected /unix/path:key or host:port:key")?;
        rest[port + 1..].find(':').map(|i| i + port + 1)
    }
    .ok_or("no :key after the server")?;
    let server = rest[..key_colon].to_string();
    let spec = &rest[key_colon + 1..];
    if let Some(file) = spec.strip_prefix('@') {
        return Err(format!("keys are read from {file}, not followed"));
    }
    let (key, modifier1) = match spec.split_once(',') {
        Some((k, m)) => (k, m.split(',').next().unwrap_or("")),
        None => (spec, ""),
    };
    Ok(SubscribeTarget {
        server,
        key: key.to_string(),
        addr,
        modifier1: atoi_u8(modifier1),
        modifier2: 0,
        check: None,
    })
}

fn atoi_i64(v: &str) -> i64 {
    let v = v.trim_start();
    let (sign, digits) = match v.as_bytes().first() {
        Some(b'-') => (-1, &v[1..]),
        Some(b'+') => (1, &v[1..]),
        _ => (1, v),
    };
    sign * digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vassal of the uwsgi_reload.py setup (docs/UWSGI.md §18), one file behind
    /// many `app_NN.ini` symlinks, with DIR, SS_SOCK and KEY filled in.
    const SEED_INI: &str = "\
[uwsgi]
processes = 1
socket = /srv/vassals/%n.sock
subscribe2 = server=/run/uwsgi/ss.sock,key=example.com
unsubscribe-on-graceful-reload
start-unsubscribed
master-fifo = /srv/vassals/%n.fifo
hook-accepting1-once = writefifo:/srv/vassals/%n.fifo S
";

    /// experiments/app1.ini.good, verbatim.
    const APP1_GOOD: &str = "[uwsgi]
plugins = python3
master = true
processes = 2
socket = /tmp/uwsgi-lab/%n.sock
wsgi-file = /tmp/uwsgi-lab/app.py
env = APPNAME=%n
subscribe2 = server=/tmp/uwsgi-lab/sub.sock,key=example.com
stats = /tmp/uwsgi-lab/%n-stats.sock
master-fifo = /tmp/uwsgi-lab/%n.fifo
logto = /tmp/uwsgi-lab/logs/%n.log
log-date = %%Y-%%m-%%d %%H:%%M:%%S
unsubscribe-on-graceful-reload = true
";

    fn parse(text: &str) -> VassalConfig {
        VassalConfig::parse(text, "app_01.ini", "/srv/vassals")
    }

    #[test]
    fn seed_setup_vassal() {
        let c = parse(SEED_INI);
        assert_eq!(c.sockets, ["/srv/vassals/app_01.sock"]);
        assert_eq!(
            c.subscriptions,
            [SubscribeTarget {
                server: "/run/uwsgi/ss.sock".into(),
                key: "example.com".into(),
                ..SubscribeTarget::default()
            }]
        );
        assert_eq!(c.master_fifos, ["/srv/vassals/app_01.fifo"]);
        assert!(c.unsubscribe_on_graceful_reload);
        assert!(c.start_unsubscribed);
        assert!(!c.need_app);
        assert!(!c.lazy_apps);
        assert_eq!(c.accepting_hooks, ["writefifo:/srv/vassals/app_01.fifo S"]);
        assert_eq!(c.node_name().as_deref(), Some("/srv/vassals/app_01.sock"));
        assert_eq!(
            c.writefifo_hook(),
            Some((PathBuf::from("/srv/vassals/app_01.fifo"), "S".to_string()))
        );
        assert!(c.includes.is_empty());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn seed_setup_each_symlink_name_gives_its_own_paths() {
        let c = VassalConfig::parse(SEED_INI, "app_17.ini", "/srv/vassals/");
        assert_eq!(c.node_name().as_deref(), Some("/srv/vassals/app_17.sock"));
        assert_eq!(c.master_fifos, ["/srv/vassals/app_17.fifo"]);
    }

    #[test]
    fn experiments_app1_good() {
        let c = VassalConfig::parse(APP1_GOOD, "app1.ini", "/tmp/uwsgi-lab");
        assert_eq!(c.sockets, ["/tmp/uwsgi-lab/app1.sock"]);
        assert_eq!(c.node_name().as_deref(), Some("/tmp/uwsgi-lab/app1.sock"));
        assert_eq!(c.subscriptions.len(), 1);
        assert_eq!(c.subscriptions[0].server, "/tmp/uwsgi-lab/sub.sock");
        assert_eq!(c.subscriptions[0].key, "example.com");
        assert_eq!(c.subscriptions[0].addr, None);
        assert_eq!(c.master_fifos, ["/tmp/uwsgi-lab/app1.fifo"]);
        assert!(c.unsubscribe_on_graceful_reload);
        assert!(!c.start_unsubscribed);
        assert!(c.accepting_hooks.is_empty());
        assert_eq!(c.writefifo_hook(), None);
        // `%%` is a literal percent after substitution.
        assert_eq!(c.get("log-date"), Some("%Y-%m-%d %H:%M:%S"));
        assert_eq!(c.get("env"), Some("APPNAME=app1"));
        assert_eq!(c.get("stats"), Some("/tmp/uwsgi-lab/app1-stats.sock"));
        assert_eq!(c.get("master"), Some("true"));
        assert_eq!(c.options.len(), 12);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn magic_variables() {
        let text = "[uwsgi]\n\
            n = %n\nN = %N\ne = %e\ns = %s\np = %p\nd = %d\nc = %c\no = %o\n\
            v = %v\nzero = %0\none = %1\nnine = %9\nx = %x\npct = 100%%\n\
            unknown = a%zb\nf = %f\n";
        let c = VassalConfig::parse(text, "app.prod.ini", "/srv/uwsgi/vassals");
        let g = |k| c.get(k).unwrap();
        assert_eq!(g("n"), "app.prod");
        assert_eq!(g("N"), "app.prod");
        assert_eq!(g("e"), "ini");
        assert_eq!(g("s"), "app.prod.ini");
        assert_eq!(g("p"), "/srv/uwsgi/vassals/app.prod.ini");
        assert_eq!(g("d"), "/srv/uwsgi/vassals/");
        assert_eq!(g("c"), "vassals");
        assert_eq!(g("o"), "app.prod.ini");
        assert_eq!(g("v"), "/srv/uwsgi/vassals");
        assert_eq!(g("zero"), "srv");
        assert_eq!(g("one"), "uwsgi");
        assert_eq!(g("nine"), "");
        assert_eq!(g("x"), "");
        assert_eq!(g("pct"), "100%");
        // uWSGI maps every letter it does not know to "" (there is no %f:
        // the file name is %s).
        assert_eq!(g("unknown"), "ab");
        assert_eq!(g("f"), "");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    /// Expected values printed by `uwsgi --ini app_07.ini --get KEY`
    /// (Debian uWSGI 2.0), app_07.ini a symlink to this file in
    /// /tmp/vc-check/sub.
    #[test]
    fn agrees_with_uwsgi_get() {
        let text = "[uwsgi]\nn = %n\ne = %e\ns = %s\np = %p\nd = %d\nc = %c\no = %o\n\
            v = %v\nzero = %0\nf = %f\npct = 100%%\nref = %(base)/x\nbase = /run/app\n\
            base = /ignored\ndd = /run/%%(n).sock\nunk = a%(nope)b\nlog-date = %%Y-%%m\nbare\n";
        let c = VassalConfig::parse(text, "app_07.ini", "/tmp/vc-check/sub");
        for (k, want) in [
            ("n", "app_07"),
            ("e", "ini"),
            ("s", "app_07.ini"),
            ("p", "/tmp/vc-check/sub/app_07.ini"),
            ("d", "/tmp/vc-check/sub/"),
            ("c", "sub"),
            ("o", "app_07.ini"),
            ("v", "/tmp/vc-check/sub"),
            ("zero", "tmp"),
            ("f", ""),
            ("pct", "100%"),
            ("ref", "/run/app/x"),
            ("dd", "/run/app_07.sock"),
            ("unk", "a%(nope)b"),
            ("log-date", "%Y-%m"),
            ("bare", ""),
        ] {
            assert_eq!(c.get(k), Some(want), "option {k}");
        }
    }

    #[test]
    fn magic_without_extension_and_at_root() {
        let c = VassalConfig::parse("[uwsgi]\na = %n|%e|%c|%d\n", "vassal", "/");
        assert_eq!(c.get("a"), Some("vassal|||/"));
        // `%` as the very last byte stays.
        let c = VassalConfig::parse("[uwsgi]\na = 50%", "x.ini", "/d");
        assert_eq!(c.get("a"), Some("50%"));
    }

    #[test]
    fn runtime_magic_is_kept_and_warned_once() {
        let c = parse("[uwsgi]\nsocket = /run/%h.sock\nlogto = /var/log/%h-%t.log\n");
        assert_eq!(c.sockets, ["/run/%h.sock"]);
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("%h"));
        assert!(c.warnings[1].contains("%t"));
    }

    #[test]
    fn placeholders_use_the_first_option_of_that_name_anywhere() {
        let text = "[uwsgi]\n\
            socket = %(base)/%n.sock\n\
            base = /run/app\n\
            base = /ignored\n\
            fifo = %(sock)\n\
            sock = %(base)/x\n\
            nested = [%(fifo)]\n";
        let c = parse(text);
        assert_eq!(c.sockets, ["/run/app/app_01.sock"]);
        assert_eq!(c.get("nested"), Some("[/run/app/x]"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn double_percent_paren_becomes_a_placeholder_like_uwsgi() {
        let c = parse("[uwsgi]\nname = web\nsocket = /run/%%(name).sock\n");
        assert_eq!(c.sockets, ["/run/web.sock"]);
    }

    #[test]
    fn unresolved_placeholders_stay_with_a_warning() {
        let c = parse("[uwsgi]\na = %(nope)-%(b + 1)-%()\nb = 2\nloop = x%(loop)\n");
        assert_eq!(c.get("a"), Some("%(nope)-%(b + 1)-%()"));
        assert!(c.get("loop").unwrap().contains("%(loop)"));
        assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
    }

    #[test]
    fn reference_cycles_terminate() {
        let c = parse("[uwsgi]\na = <%(b)>\nb = [%(a)]\n");
        assert!(c.get("a").unwrap().len() <= 64 * 1024);
        assert!(!c.warnings.is_empty());
    }

    #[test]
    fn ini_syntax() {
        let text = "\
master = outside-any-section
[other]
socket = /wrong.sock
[uwsgi]
  ; comment
# comment too
socket=/a.sock   \r
socket = /b.sock ; not a comment
 need-app \t
lazy-apps = off
weird = a = b
[uwsgi]
socket = /c.sock
";
        let c = parse(text);
        assert_eq!(c.sockets, ["/a.sock", "/b.sock ; not a comment", "/c.sock"]);
        assert!(c.need_app);
        assert!(!c.lazy_apps);
        assert_eq!(c.get("weird"), Some("a = b"));
        assert_eq!(c.get("master"), None);
    }

    #[test]
    fn booleans_follow_uwsgi_opt_true_and_last_wins() {
        for (v, want) in [
            ("", true),
            ("true", true),
            ("1", true),
            ("yes", true),
            ("on", true),
            ("anything", true),
            ("false", false),
            ("FALSE", false),
            ("Off", false),
            ("no", false),
            ("0", false),
        ] {
            let c = parse(&format!("[uwsgi]\nstart-unsubscribed = {v}\n"));
            assert_eq!(c.start_unsubscribed, want, "value {v:?}");
        }
        let c = parse("[uwsgi]\nneed-app\nneed-app = false\n");
        assert!(!c.need_app);
    }

    #[test]
    fn sockets_of_every_protocol_in_order() {
        let c = parse(
            "[uwsgi]\nhttp-socket = :8080\nsocket = /run/a.sock\n\
             https-socket = 0.0.0.0:8443,c.crt,c.key\nuwsgi-socket = 127.0.0.1:3031\n\
             shared-socket = 127.0.0.1:4000\n",
        );
        assert_eq!(
            c.sockets,
            [":8080", "/run/a.sock", "0.0.0.0:8443", "127.0.0.1:3031"]
        );
        assert_eq!(c.node_name().as_deref(), Some(":8080"));
    }

    #[test]
    fn auto_port_socket_is_warned() {
        let c = parse("[uwsgi]\nsocket = 127.0.0.1:0\n");
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("127.0.0.1:0"));
    }

    #[test]
    fn subscribe2_forms() {
        let c = parse(
            "[uwsgi]\nsocket = /run/a.sock\nsocket = 127.0.0.1:3031\n\
             subscribe2 = server=127.0.0.1:7000,key=a.example,addr=10.0.0.1:3031,modifier1=30,modifier2=2,weight=4\n\
             subscribe2 = server=/run/ss.sock,key=b.example,socket=1,addr=ignored\n\
             subscribe2 = server=/run/ss.sock,key=c.example,socket=9,addr=kept\n\
             subscribe2 = server=/run/ss.sock,key=d.example,check=/run/maint\n\
             subscribe2 = server=/run/ss.sock,key=e\\,x.example\n\
             subscribe2 = server=/run/ss.sock, key=spaces-matter\n\
             subscribe2 = key=no-server\n",
        );
        let s = &c.subscriptions;
        assert_eq!(s.len(), 5, "{s:?}");
        assert_eq!(
            s[0],
            SubscribeTarget {
                server: "127.0.0.1:7000".into(),
                key: "a.example".into(),
                addr: Some("10.0.0.1:3031".into()),
                modifier1: 30,
                modifier2: 2,
                check: None,
            }
        );
        assert_eq!(s[1].addr.as_deref(), Some("127.0.0.1:3031"));
        assert_eq!(s[2].addr.as_deref(), Some("kept"));
        assert_eq!(s[3].check.as_deref(), Some("/run/maint"));
        assert_eq!(c.address_of(&s[3]).as_deref(), Some("/run/a.sock"));
        assert_eq!(s[4].key, "e,x.example");
        assert_eq!(c.node_name().as_deref(), Some("10.0.0.1:3031"));
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    }

    #[test]
    fn subscribe_to_forms() {
        let c = parse(
            "[uwsgi]\nsocket = /run/a.sock\nshared-socket = 127.0.0.1:4000\n\
             subscribe-to = /run/ss.sock:a.example\n\
             subscribe-to = 127.0.0.1:7000:b.example,5\n\
             st = 10.0.0.2:3031=127.0.0.1:7000:c.example\n\
             subscribe = =0=/run/ss.sock:d.example,7,/etc/key.pem\n\
             subscribe-to = /run/ss.sock:@/etc/keys.txt\n\
             subscribe-to = noport\n\
             subscribe-to = =3=/run/ss.sock:e.example\n",
        );
        let s = &c.subscriptions;
        assert_eq!(s.len(), 4, "{s:?}");
        assert_eq!(
            s[0],
            SubscribeTarget {
                server: "/run/ss.sock".into(),
                key: "a.example".into(),
                ..SubscribeTarget::default()
            }
        );
        assert_eq!(s[1].server, "127.0.0.1:7000");
        assert_eq!(s[1].key, "b.example");
        assert_eq!(s[1].modifier1, 5);
        assert_eq!(s[2].addr.as_deref(), Some("10.0.0.2:3031"));
        assert_eq!(s[2].server, "127.0.0.1:7000");
        assert_eq!(s[3].addr.as_deref(), Some("127.0.0.1:4000"));
        assert_eq!(s[3].key, "d.example");
        assert_eq!(s[3].modifier1, 7);
        assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("keys.txt"), "{:?}", c.warnings);
    }

    #[test]
    fn subscribe_to_is_sent_before_subscribe2() {
        let c = parse(
            "[uwsgi]\nsocket = /a.sock\nsubscribe2 = server=/ss,key=two\nsubscribe-to = /ss:one\n",
        );
        let keys: Vec<&str> = c.subscriptions.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["one", "two"]);
    }

    #[test]
    fn subscribe_with_modifier1_overrides_all() {
        let c = parse(
            "[uwsgi]\nsocket = /a.sock\nsubscribe2 = server=/ss,key=k,modifier1=1\n\
             subscribe-with-modifier1 = 9\n",
        );
        assert_eq!(c.subscriptions[0].modifier1, 9);
    }

    #[test]
    fn no_socket_and_no_addr_means_no_node() {
        let c = parse("[uwsgi]\nsubscribe2 = server=/ss,key=k\n");
        assert_eq!(c.node_name(), None);
        assert_eq!(c.warnings.len(), 1);
        assert_eq!(parse("[uwsgi]\nmaster = true\n").node_name(), None);
    }

    #[test]
    fn node_name_without_subscription_is_first_socket() {
        let c = parse("[uwsgi]\nsocket = /a.sock\nsocket = /b.sock\n");
        assert_eq!(c.node_name().as_deref(), Some("/a.sock"));
    }

    #[test]
    fn includes_are_recorded_not_followed() {
        let c = parse("[uwsgi]\nini = %dbase.ini\ninclude = /etc/uwsgi/common.ini\nsocket = /a\n");
        assert_eq!(
            c.includes,
            ["/srv/vassals/base.ini", "/etc/uwsgi/common.ini"]
        );
        assert_eq!(c.sockets, ["/a"]);
    }

    #[test]
    fn logic_blocks_are_warned() {
        let c = parse("[uwsgi]\nif-env = PROD\nsocket = /a\nendif =\n");
        assert_eq!(c.sockets, ["/a"]);
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn accepting_hooks_and_writefifo_variants() {
        let c = parse(
            "[uwsgi]\nhook-accepting = exec:true\nhook-accepting1 = !writefifo:run/%n.fifo S1\n\
             hook-accepting1-once = writefifo:/x.fifo S\n",
        );
        assert_eq!(c.accepting_hooks.len(), 3);
        // First writefifo in file order, private marker dropped, relative
        // path resolved against the vassal's directory, payload verbatim.
        assert_eq!(
            c.writefifo_hook(),
            Some((PathBuf::from("/srv/vassals/run/app_01.fifo"), "S1".into()))
        );
        let c = parse("[uwsgi]\nhook-accepting1-once = writefifo:/x.fifo\n");
        assert_eq!(c.writefifo_hook(), None, "no payload: uWSGI refuses it");
    }

    #[test]
    fn master_fifo_paths_resolve_relative_ones() {
        let c = parse("[uwsgi]\nmaster-fifo = %n.fifo\nmaster-fifo = /abs.fifo\n");
        assert_eq!(
            c.master_fifo_paths(),
            [
                PathBuf::from("/srv/vassals/app_01.fifo"),
                PathBuf::from("/abs.fifo")
            ]
        );
    }

    #[test]
    fn kvlist_escapes_and_last_value_wins() {
        assert_eq!(
            kvlist("a=1,b=x\\,y,a=2,junk,c=d=e"),
            vec![
                ("a".to_string(), "2".to_string()),
                ("b".to_string(), "x,y".to_string()),
                ("c".to_string(), "d=e".to_string()),
            ]
        );
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi_u8("30"), 30);
        assert_eq!(atoi_u8(" 7x"), 7);
        assert_eq!(atoi_u8("abc"), 0);
        assert_eq!(atoi_u8("256"), 0);
        assert_eq!(atoi_u8("-1"), 255);
    }

    #[test]
    fn load_reads_a_file_keeping_the_link_name() {
        let base = std::env::temp_dir().join(format!("uwsgi-reload-vc-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let target = base.join("shared.ini");
        std::fs::write(&target, SEED_INI).unwrap();
        let link = base.join("app_03.ini");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let c = load(&link).unwrap();
        let dir = std::fs::canonicalize(&base).unwrap();
        assert_eq!(c.name, "app_03.ini");
        assert_eq!(c.dir, format!("{}/", dir.display()));
        assert_eq!(c.node_name().as_deref(), Some("/srv/vassals/app_03.sock"));
        let err = load(&base.join("missing.ini")).unwrap_err();
        assert!(err.contains("missing.ini"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
