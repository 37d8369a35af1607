//! The text steps of reading a config the way uWSGI 2.0 does: the `%X`
//! magic table, the ini section, and the `%(name)` placeholder pass (see the
//! module above for the order).

use super::*;

/// The per-file magic variables of `config_magic_table_fill`, computed from
/// the name and directory instead of the file system.
#[derive(Clone)]
pub(super) struct MagicTable {
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
    /// `%x`: the section asked after a colon (`ini = f.ini:s`).
    pub(super) x: String,
    /// For an included file, the vassal's own table: upper-case letters
    /// keep describing the first config (docs/UWSGI.md §20).
    first: Option<Box<MagicTable>>,
}

impl MagicTable {
    pub(super) fn new(name: &str, dir: &str) -> MagicTable {
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
            x: String::new(),
            first: None,
        }
    }

    /// The table of a file the vassal includes as `written` (after the
    /// including file's magic), whose real path is `real_path`: lower-case
    /// letters describe it, upper-case ones still the vassal's file.
    pub(super) fn included(
        written: &str,
        real_path: &str,
        x: &str,
        cwd: &str,
        first: &MagicTable,
    ) -> MagicTable {
        let mut t = MagicTable::new(real_path, cwd);
        t.o = written.to_string();
        t.x = x.to_string();
        let mut first = first.clone();
        first.first = None;
        t.first = Some(Box::new(first));
        t
    }

    /// What `%` followed by `c` becomes; `None` keeps `%c` literally.
    pub(super) fn lookup(&self, c: u8) -> Option<&str> {
        Some(match c {
            b'%' => "%",
            b'(' => "%(",
            // Upper case is the first config's value: the vassal's file.
            b'O' | b'P' | b'S' | b'D' | b'C' | b'E' | b'N' | b'X' if self.first.is_some() => {
                return self.first.as_ref()?.lookup(c);
            }
            b'o' | b'O' => &self.o,
            b'p' | b'P' => &self.p,
            b's' | b'S' => &self.s,
            b'd' | b'D' => &self.d,
            b'c' | b'C' => &self.c,
            b'e' | b'E' => &self.e,
            b'n' | b'N' => &self.n,
            // `:section` of an `ini = f.ini:section`; the vassal's own
            // file has none.
            b'x' | b'X' => &self.x,
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
/// Stops (and sets `over_limit`) once the text grew by `allowance` (at
/// first [`MAX_EXPANSION`], shared by a config and its includes), which it
/// lowers by the growth: `%p` is a whole path for two bytes of input.
pub(super) fn magic_sub(
    text: &[u8],
    magic: &MagicTable,
    allowance: &mut usize,
    warnings: &mut Vec<String>,
    over_limit: &mut Option<String>,
) -> String {
    let limit = text.len().saturating_add(*allowance);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%' && i + 1 < text.len() {
            let c = text[i + 1];
            match magic.lookup(c) {
                Some(v) if out.len() + v.len() > limit => {
                    *over_limit = Some(over_expansion());
                    break;
                }
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
    *allowance = (*allowance).min(limit.saturating_sub(out.len()));
    String::from_utf8_lossy(&out).into_owned()
}

const MAX_WARNINGS: usize = 64;

/// A placeholder rescanned after each substitution would repeat its warning.
/// At most [`MAX_WARNINGS`] are kept: a file of thousands of unresolved
/// placeholders would otherwise make this check quadratic.
pub(super) fn warn_once(warnings: &mut Vec<String>, w: String) {
    if warnings.len() < MAX_WARNINGS && !warnings.contains(&w) {
        warnings.push(w);
    }
}

/// `uwsgi_ini_config`: the `key = value` pairs of one section, in order.
pub(super) fn ini_section(text: &str, wanted: &str) -> Vec<(String, String)> {
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

/// Most bytes the `%` passes of one config file may produce beyond its own
/// text: the magic pass's growth, plus every value the `%(name)` pass builds
/// (docs/SECURITY.md, expansion). A real config stays far below; a file of
/// chained placeholders would otherwise grow to hundreds of MB. Over it the
/// config is refused (`VassalConfig::over_limit`).
pub const MAX_EXPANSION: usize = 4 << 20;

/// The refusal's text, naming the limit.
pub(super) fn over_expansion() -> String {
    format!(
        "its % expansions produce more than {} KiB (the limit per config file)",
        MAX_EXPANSION / 1024
    )
}

/// The `%(name)` pass of `uwsgi_apply_config_pass`. Each value is rescanned
/// from the start after a substitution (so references nest). A reference
/// cycle makes uWSGI loop forever, and a value that refers to itself doubles
/// on every round, so both a count and a length cap stop it here; and every
/// value built counts against [`MAX_EXPANSION`] for the whole file, which
/// bounds the work too (each rescan is linear in the value it reads).
pub(super) fn resolve_placeholders(
    options: &mut [(String, String)],
    warnings: &mut Vec<String>,
    over_limit: &mut Option<String>,
) {
    const MAX_SUBSTITUTIONS: usize = 64;
    const MAX_LEN: usize = 64 * 1024;
    // The first option of each name, as `%(name)` uses it.
    let mut first: std::collections::BTreeMap<String, usize> = Default::default();
    for (i, (k, _)) in options.iter().enumerate() {
        first.entry(k.clone()).or_insert(i);
    }
    let mut budget = MAX_EXPANSION;
    for i in 0..options.len() {
        let mut substitutions = 0;
        let mut found_at = placeholders(&options[i].1);
        let mut next = 0;
        while let Some(&(start, end)) = found_at.get(next) {
            let inner = &options[i].1[start + 2..end];
            let found = if inner.contains(' ') {
                None
            } else {
                first.get(inner).map(|&j| options[j].1.clone())
            };
            let inner = inner.to_string();
            match found {
                Some(v)
                    if substitutions < MAX_SUBSTITUTIONS
                        && options[i].1.len() + v.len() <= MAX_LEN =>
                {
                    let value = &options[i].1;
                    let built = value.len() - (end + 1 - start) + v.len();
                    if built > budget {
                        *over_limit = Some(over_expansion());
                        return;
                    }
                    budget -= built;
                    options[i].1 = format!("{}{}{}", &value[..start], v, &value[end + 1..]);
                    substitutions += 1;
                    found_at = placeholders(&options[i].1);
                    next = 0;
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
                    // The next placeholder after this one's `)`.
                    while found_at.get(next).is_some_and(|&(s, _)| s <= end) {
                        next += 1;
                    }
                }
            }
        }
    }
}

/// Every `%(...)` of `s`: byte offsets of `%` and of the closing `)`,
/// parentheses nesting as in uWSGI, in order of their `%`. `%()` is not a
/// placeholder. One pass with a stack: the `)` that closes a `%(` is the one
/// that matches its `(`, so an unclosed `%(` costs nothing more however many
/// follow it (scanning to the end for each was quadratic).
pub(super) fn placeholders(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    // Every `(` in order with its closing `)` (0: none), and the indexes of
    // those still open.
    let mut parens: Vec<(usize, usize)> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for (j, &c) in b.iter().enumerate() {
        match c {
            b'(' => {
                open.push(parens.len());
                parens.push((j, 0));
            }
            b')' => {
                if let Some(i) = open.pop() {
                    parens[i].1 = j;
                }
            }
            _ => {}
        }
    }
    parens
        .into_iter()
        .filter(|&(p, j)| p > 0 && b[p - 1] == b'%' && j > p + 1)
        .map(|(p, j)| (p - 1, j))
        .collect()
}
