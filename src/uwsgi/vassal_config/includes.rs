//! Following a config's includes in the order uWSGI 2.0 applies them
//! (docs/UWSGI.md §20), sans-IO: the files are read by the caller's
//! [`IncludeReader`], which holds the security rules (docs/SECURITY.md,
//! includes).
//!
//! - `ini`, `include`, `json`/`js`, `yaml`/`yml`, `xml`/`xmlconfig` are
//!   immediate: the included file's options take the place of the line.
//! - `inherit` is not: its value goes through the `%(name)` pass, then its
//!   file's options are appended after every other option, and are not
//!   themselves placeholder-resolved (the pass has run).
//! - `config`, a remote or special source (`scheme://`, `-`), a path that
//!   still holds `%(`, a format only a plugin reads: never followed.
//!
//! What is not followed stays in `includes` (today's "not followed"); what
//! is, in `followed_includes`.

use super::*;

/// One included file as read: its real path (the file itself is never a
/// link, so this is its directory's real path plus its name, what uWSGI's
/// `%p` is) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Included {
    pub real_path: String,
    pub text: String,
}

/// Reads an included file: `(absolute path as the vassal opens it, most
/// bytes it may have)`; `Err` is why it is not followed, one line.
pub type IncludeReader<'a> = &'a mut dyn FnMut(&str, usize) -> Result<Included, String>;

/// Deepest nesting followed. uWSGI has no limit (a cycle loops until it
/// crashes); ours also stops a cycle of `inherit`, which is not nested.
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// What joins an include to the reason it was not followed in its
/// warning (`{opt} "{value}" not followed: {why}`): `doctor` finds the
/// reasons by it.
pub const NOT_FOLLOWED: &str = " not followed: ";

/// Most include lines tried per config: each is an open.
pub const MAX_INCLUDES: usize = 64;

/// Options whose file is parsed where the option stands.
const IMMEDIATE: &[&str] = &[
    "ini",
    "include",
    "json",
    "js",
    "yaml",
    "yml",
    "xml",
    "xmlconfig",
    "config",
];

/// The state of one config's walk through its includes.
pub(super) struct Walk<'r> {
    reader: Option<IncludeReader<'r>>,
    /// The vassal's working directory, trailing slash: relative include
    /// paths are opened from it.
    cwd: String,
    /// The vassal's own table (the upper-case magic letters).
    first: MagicTable,
    /// Bytes still readable over all files.
    budget: usize,
    /// Growth still allowed to the `%` magic and the format readers.
    pub(super) allowance: usize,
    tries: usize,
    /// `path:section` of the files being read, for cycles.
    stack: Vec<String>,
    /// uWSGI's `last_file` for `ini = :section`: the last ini read, its
    /// text and table.
    last_ini: Option<(String, String, MagicTable)>,
    /// Why the last included file read could not be parsed.
    unreadable: Option<String>,
    pub(super) followed: Vec<String>,
    pub(super) not_followed: Vec<String>,
    pub(super) warnings: Vec<String>,
    pub(super) over_limit: Option<String>,
}

impl<'r> Walk<'r> {
    pub(super) fn new(
        reader: Option<IncludeReader<'r>>,
        cwd: &str,
        first: MagicTable,
        budget: usize,
    ) -> Walk<'r> {
        Walk {
            reader,
            cwd: cwd.to_string(),
            first,
            budget,
            allowance: MAX_EXPANSION,
            tries: 0,
            stack: Vec::new(),
            last_ini: None,
            unreadable: None,
            followed: Vec::new(),
            not_followed: Vec::new(),
            warnings: Vec::new(),
            over_limit: None,
        }
    }

    /// The options of one file's text (magic applied here), with its
    /// immediate includes in place. `name` names it in warnings; `section`
    /// is the ini section read (other formats read their `uwsgi` block).
    pub(super) fn file_options(
        &mut self,
        text: &str,
        name: &str,
        magic: &MagicTable,
        (format, section): (Format, &str),
        depth: usize,
    ) -> Vec<(String, String)> {
        let expanded = magic_sub(
            text.as_bytes(),
            magic,
            &mut self.allowance,
            &mut self.warnings,
            &mut self.over_limit,
        );
        let options = match format {
            Format::Ini => {
                self.last_ini = Some((name.to_string(), text.to_string(), magic.clone()));
                ini_section(&expanded, section)
            }
            other => match config_formats::options(other, &expanded) {
                Ok(o) => {
                    let size: usize = o.iter().map(|(k, v)| k.len() + v.len()).sum();
                    let growth = size.saturating_sub(expanded.len());
                    if growth > self.allowance {
                        self.over_limit = Some(config_formats::over());
                        return Vec::new();
                    }
                    self.allowance -= growth;
                    o
                }
                Err(e) if e == config_formats::over() => {
                    self.over_limit = Some(e);
                    Vec::new()
                }
                Err(e) if depth == 0 => {
                    self.warnings.push(format!("not read as {other:?}: {e}"));
                    Vec::new()
                }
                Err(e) => {
                    // uWSGI stops on it; for us the include is not followed.
                    self.unreadable = Some(format!("not read as {other:?}: {e}"));
                    Vec::new()
                }
            },
        };
        let mut out = Vec::with_capacity(options.len());
        for (k, v) in options {
            if self.over_limit.is_some() {
                break;
            }
            let immediate = IMMEDIATE.contains(&k.as_str());
            out.push((k.clone(), v.clone()));
            if immediate {
                out.extend(self.follow(&k, &v, depth + 1));
            }
        }
        out
    }

    /// Appends each `inherit`'s file after everything, as uWSGI's configure
    /// pass does; the files appended may inherit in turn (they are reached
    /// later in the same loop).
    pub(super) fn inherit(&mut self, options: &mut Vec<(String, String)>) {
        let mut depth_of: Vec<usize> = vec![0; options.len()];
        let mut i = 0;
        while i < options.len() && self.over_limit.is_none() {
            if options[i].0 == "inherit" {
                let v = options[i].1.clone();
                let added = self.follow("inherit", &v, depth_of[i] + 1);
                if added.iter().any(|(_, v)| v.contains("%(")) {
                    warn_once(
                        &mut self.warnings,
                        format!("inherit {v:?}: its %(name) placeholders are kept as written, as uWSGI applies it after the placeholder pass"),
                    );
                }
                depth_of.extend(std::iter::repeat(depth_of[i] + 1).take(added.len()));
                options.extend(added);
            }
            i += 1;
        }
    }

    /// The options of the file `value` names, or none (and the value
    /// recorded as not followed).
    fn follow(&mut self, opt: &str, value: &str, depth: usize) -> Vec<(String, String)> {
        match self.try_follow(opt, value, depth) {
            Ok(options) => {
                self.followed.push(value.to_string());
                options
            }
            Err(why) => {
                if !why.is_empty() {
                    warn_once(
                        &mut self.warnings,
                        format!("{opt} {value:?}{NOT_FOLLOWED}{why}"),
                    );
                }
                self.not_followed.push(value.to_string());
                Vec::new()
            }
        }
    }

    fn try_follow(
        &mut self,
        opt: &str,
        value: &str,
        depth: usize,
    ) -> Result<Vec<(String, String)>, String> {
        if self.reader.is_none() {
            return Err(String::new());
        }
        let (path, x, format) = target(opt, value)?;
        let section = match x.as_deref() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => "uwsgi".to_string(),
        };
        if depth > MAX_INCLUDE_DEPTH {
            return Err(format!("nested more than {MAX_INCLUDE_DEPTH} deep"));
        }
        if self.tries >= MAX_INCLUDES {
            return Err(format!("more than {MAX_INCLUDES} includes"));
        }
        self.tries += 1;
        // `ini = :section`: another section of the last ini read, with the
        // magic table as it stands (docs/UWSGI.md §20).
        let (real, text, magic): (String, String, MagicTable) = if path.is_empty() {
            let Some((name, text, magic)) = self.last_ini.clone() else {
                return Err("no ini file was read before it".into());
            };
            // Read again, so charged again: 63 of them over one big
            // section would otherwise parse it 63 times for free.
            if text.len() > self.budget {
                return Err("the files of this config are over their size limit".into());
            }
            self.budget -= text.len();
            let mut magic = magic;
            magic.x = x.unwrap_or_default();
            (name, text, magic)
        } else {
            let abs = if path.starts_with('/') {
                path.clone()
            } else {
                format!("{}{path}", self.cwd)
            };
            let read = self.reader.as_mut().expect("checked above");
            let got = read(&abs, self.budget)?;
            if got.text.len() > self.budget {
                return Err("the files of this config are over their size limit".into());
            }
            self.budget -= got.text.len();
            let x = x.unwrap_or_default();
            let magic = MagicTable::included(value, &got.real_path, &x, &self.cwd, &self.first);
            (got.real_path, got.text, magic)
        };
        let key = format!("{real}:{section}");
        if self.stack.contains(&key) {
            return Err("it includes itself (a cycle)".into());
        }
        self.stack.push(key);
        let out = self.file_options(&text, &real, &magic, (format, &section), depth);
        self.stack.pop();
        match self.unreadable.take() {
            Some(why) => Err(why),
            None => Ok(out),
        }
    }
}

/// `(path, section as written after a colon, format)` of an include
/// option's value, or why it is not followed: the loader uWSGI picks (by
/// option, or by extension for `include`/`inherit`), and only local files.
fn target(opt: &str, value: &str) -> Result<(String, Option<String>, Format), String> {
    if value.is_empty() || value == "-" || value.contains("://") {
        return Err("a remote or special source".into());
    }
    if value.contains("%(") {
        return Err("its path holds a placeholder uWSGI does not resolve there".into());
    }
    let by_ext = |v: &str| -> Option<Format> {
        [".ini", ".xml", ".yaml", ".yml", ".json", ".js"]
            .iter()
            .any(|e| v.ends_with(e))
            .then(|| Format::of(v))
    };
    let format = match opt {
        "ini" => Format::Ini,
        "json" | "js" => Format::Json,
        "yaml" | "yml" => Format::Yaml,
        "xml" | "xmlconfig" => Format::Xml,
        "include" | "inherit" => {
            by_ext(value).ok_or("uWSGI loads it through a plugin, by its extension")?
        }
        _ => return Err("uWSGI loads it through a plugin".into()),
    };
    // `file:section` (`uwsgi_ini_config`): the last colon, only for `ini`
    // (`include = f.ini:s` does not end in `.ini`).
    if opt == "ini" {
        if let Some((file, section)) = value.rsplit_once(':') {
            return Ok((file.to_string(), Some(section.to_string()), format));
        }
    } else if value.contains(':') {
        return Err("a section of a non-ini file".into());
    }
    Ok((value.to_string(), None, format))
}
