//! The other config formats the Emperor loads (`.json`/`.js`, `.yaml`/`.yml`,
//! `.xml`), read into the same ordered `(option, value)` list as the ini
//! reader in `vassal_config` (sans-IO). Only the `uwsgi` block is read, as
//! uWSGI does by default; what a format cannot say literally is noted.
//!
//! - JSON (`core/json.c`, `uwsgi_json_config`): `{"uwsgi": {...}}`; a string
//!   value is the option, a number is written out, `true` is `1`, `false`
//!   and `null` set nothing, an array repeats the option per element.
//! - YAML (`core/yaml.c`, the built-in reader): a `uwsgi:` line at column 0
//!   opens the block; each indented `key: value` line is an option (repeats
//!   allowed); `- value` under a key repeats it; the next column-0 line ends
//!   the block; `#` starts a comment line.
//! - XML (`core/xmlconf.c`): the children of the `<uwsgi>` element,
//!   `<option>value</option>`, or `<option/>` for a bare flag (`1`).

/// The format of a config file, by its name, as the Emperor decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Ini,
    Json,
    Yaml,
    Xml,
}

impl Format {
    pub fn of(name: &str) -> Format {
        let ext = name.rsplit('.').next().unwrap_or("");
        match ext {
            "json" | "js" => Format::Json,
            "yaml" | "yml" => Format::Yaml,
            "xml" => Format::Xml,
            _ => Format::Ini,
        }
    }
}

/// The options of the `uwsgi` block of a non-ini config, in order.
/// A list repeats its option's name per item, so a long name over many
/// short items would multiply the input: the options may hold at most the
/// text's length plus `MAX_EXPANSION` bytes in all, else [`over`] is the
/// error (docs/SECURITY.md, expansion).
pub fn options(format: Format, text: &str) -> Result<Vec<(String, String)>, String> {
    let out = match format {
        Format::Ini => Err("ini is read by vassal_config".into()),
        Format::Json => json(text),
        Format::Yaml => yaml(text),
        Format::Xml => xml(text),
    }?;
    let limit = text.len() + crate::vassal_config::MAX_EXPANSION;
    let mut total = 0;
    for (k, v) in &out {
        total += k.len() + v.len();
        if total > limit {
            return Err(over());
        }
    }
    Ok(out)
}

/// The error of [`options`] over its budget.
pub fn over() -> String {
    format!(
        "its options would hold more than {} KiB beyond the file's own size (the limit per config file)",
        crate::vassal_config::MAX_EXPANSION / 1024
    )
}

fn json(text: &str) -> Result<Vec<(String, String)>, String> {
    use serde_json::Value;
    let top: JsonTop =
        serde_json::from_str(text).map_err(|e| format!("expected a JSON object: {e}"))?;
    let Some(JsonBlock(block)) = top.uwsgi else {
        return Err("expected a JSON object with a \"uwsgi\" object".into());
    };
    let mut out = Vec::new();
    // Bytes left before the budget of `options` (a list repeats its key).
    let mut left = text.len() + crate::vassal_config::MAX_EXPANSION;
    let mut push = |k: &str, v: &Value| {
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(true) => "1".into(),
            _ => return,
        };
        left = left.saturating_sub(k.len() + v.len());
        if left > 0 {
            out.push((k.to_string(), v));
        }
    };
    // In file order, as uWSGI walks the object (`core/json.c`): the order
    // of different options decides which socket is the first (the node
    // name) and what `subscribe2 socket=N` points at.
    for (k, val) in &block {
        match val {
            Value::Array(items) => items.iter().for_each(|i| push(k, i)),
            other => push(k, other),
        }
    }
    if left == 0 {
        return Err(over());
    }
    Ok(out)
}

/// The document's top level: only its `uwsgi` object is read.
#[derive(serde::Deserialize)]
struct JsonTop {
    uwsgi: Option<JsonBlock>,
}

/// A JSON object's members in file order (serde_json's own map sorts them).
struct JsonBlock(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for JsonBlock {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> serde::de::Visitor<'de> for InOrder {
            type Value = JsonBlock;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<JsonBlock, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = m.next_entry::<String, serde_json::Value>()? {
                    members.push(member);
                }
                Ok(JsonBlock(members))
            }
        }
        d.deserialize_map(InOrder)
    }
}

fn yaml(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    // Bytes left before the budget of `options` (list items repeat a key).
    let mut left = text.len() + crate::vassal_config::MAX_EXPANSION + 1;
    let mut inside = false;
    let mut last_key: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim_end_matches(['\r', ' ', '\t']);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indented = trimmed.len() < line.len();
        if !indented {
            inside = trimmed.trim_end_matches(':') == "uwsgi" && trimmed.ends_with(':');
            last_key = None;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(item) = trimmed.strip_prefix("- ") {
            if let Some(k) = &last_key {
                left = left.saturating_sub(k.len() + item.len());
                if left > 0 {
                    out.push((k.clone(), unquote(item.trim())));
                }
            }
            continue;
        }
        let (k, v) = trimmed.split_once(':').unwrap_or((trimmed, ""));
        let (k, v) = (k.trim().to_string(), unquote(v.trim()));
        if v.is_empty() {
            // A key whose values follow as `- item` lines, or a bare flag.
            last_key = Some(k.clone());
            out.push((k, String::new()));
        } else {
            last_key = Some(k.clone());
            out.push((k, v));
        }
    }
    // A key followed by list items is not itself an option.
    let listed: std::collections::BTreeSet<String> = out
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, _)| k.clone())
        .collect();
    out.retain(|(k, v)| !v.is_empty() || !listed.contains(k));
    if left == 0 {
        return Err(over());
    }
    Ok(out)
}

fn unquote(v: &str) -> String {
    let q = |c: char| v.len() >= 2 && v.starts_with(c) && v.ends_with(c);
    if q('"') || q('\'') {
        v[1..v.len() - 1].to_string()
    } else {
        v.to_string()
    }
}

fn xml(text: &str) -> Result<Vec<(String, String)>, String> {
    // a comment may mention `<uwsgi>` or `</uwsgi>` (libxml2 skips it): out
    // before looking for the element
    let text = &strip_xml_comments(text);
    let start = find_open(text, "uwsgi").ok_or("expected an <uwsgi> element")?;
    let end = text[start..]
        .find("</uwsgi>")
        .map(|e| start + e)
        .ok_or("expected </uwsgi>")?;
    let mut body = &text[start..end];
    let mut out = Vec::new();
    while let Some(lt) = body.find('<') {
        body = &body[lt + 1..];
        if body.starts_with("!--") {
            match body.find("-->") {
                Some(e) => body = &body[e + 3..],
                None => break,
            }
            continue;
        }
        let Some(gt) = body.find('>') else { break };
        let tag = &body[..gt];
        body = &body[gt + 1..];
        if tag.starts_with('/') || tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        let name = tag
            .trim_end_matches('/')
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            continue;
        }
        if tag.ends_with('/') {
            out.push((name, "1".into()));
            continue;
        }
        let close = format!("</{name}>");
        let Some(c) = body.find(&close) else {
            return Err(format!("expected {close}"));
        };
        out.push((name, entities(body[..c].trim())));
        body = &body[c + close.len()..];
    }
    Ok(out)
}

/// `text` without its `<!-- ... -->` comments (an unterminated one runs to
/// the end, as for an XML parser).
fn strip_xml_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("<!--") {
        out.push_str(&rest[..i]);
        match rest[i + 4..].find("-->") {
            Some(e) => rest = &rest[i + 4 + e + 3..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// The position right after `<name ...>`.
fn find_open(text: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(&format!("<{name}")) {
        let at = from + i + name.len() + 1;
        match text[at..].chars().next() {
            Some('>') => return Some(at + 1),
            Some(c) if c.is_whitespace() => return text[at..].find('>').map(|g| at + g + 1),
            _ => from = at,
        }
    }
    None
}

fn entities(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(o: &'a [(String, String)], k: &str) -> Vec<&'a str> {
        o.iter()
            .filter(|(x, _)| x == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn json_strings_numbers_flags_and_lists() {
        let o = options(
            Format::Json,
            r#"{"uwsgi": {"socket": ["/r/a.sock", "/r/b.sock"], "subscribe-freq": 25,
                "master": true, "lazy-apps": false,
                "subscribe2": "server=/r/sub.sock,key=k"}}"#,
        )
        .unwrap();
        assert_eq!(get(&o, "socket"), ["/r/a.sock", "/r/b.sock"]);
        assert_eq!(get(&o, "subscribe-freq"), ["25"]);
        assert_eq!(get(&o, "master"), ["1"]);
        assert!(get(&o, "lazy-apps").is_empty());
        assert!(options(Format::Json, "[1]").is_err());
    }

    /// uWSGI walks a JSON object in file order: with `socket` after
    /// `http-socket`, the first socket (the node name, what `socket=N`
    /// counts from) is the http one. A sorted map would say the opposite.
    #[test]
    fn json_options_keep_the_files_order() {
        let o = options(
            Format::Json,
            r#"{"other": {"socket": "/nope"}, "uwsgi": {"subscribe2": "server=/r/s,key=k",
                "socket": "/r/b.sock", "http-socket": "/r/a.sock"}}"#,
        )
        .unwrap();
        let keys: Vec<&str> = o.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["subscribe2", "socket", "http-socket"]);
        let c = crate::vassal_config::VassalConfig::parse(
            r#"{"uwsgi": {"http-socket": "/r/h.sock", "socket": "/r/u.sock",
                "subscribe2": "server=/r/s,key=k"}}"#,
            "app_01.json",
            "/srv",
        );
        assert_eq!(c.node_name().as_deref(), Some("/r/h.sock"));
        assert!(options(Format::Json, r#"{"uwsgi": [1]}"#).is_err());
    }

    #[test]
    fn yaml_block_repeats_and_lists() {
        let o = options(
            Format::Yaml,
            "# a vassal\nuwsgi:\n  socket: /r/%n.sock\n  subscribe2: \"server=/r/sub.sock,key=k\"\n  env:\n    - A=1\n    - B=2\n  master: true\nother:\n  socket: /nope\n",
        )
        .unwrap();
        assert_eq!(get(&o, "socket"), ["/r/%n.sock"]);
        assert_eq!(get(&o, "subscribe2"), ["server=/r/sub.sock,key=k"]);
        assert_eq!(get(&o, "env"), ["A=1", "B=2"]);
        assert_eq!(get(&o, "master"), ["true"]);
    }

    #[test]
    fn xml_children_of_uwsgi() {
        let o = options(
            Format::Xml,
            "<?xml version=\"1.0\"?>\n<uwsgi>\n  <!-- node -->\n  <socket>/r/a.sock</socket>\n  <master/>\n  <subscribe2>server=/r/sub.sock,key=a&amp;b</subscribe2>\n</uwsgi>\n",
        )
        .unwrap();
        assert_eq!(get(&o, "socket"), ["/r/a.sock"]);
        assert_eq!(get(&o, "master"), ["1"]);
        assert_eq!(get(&o, "subscribe2"), ["server=/r/sub.sock,key=a&b"]);
        assert!(options(Format::Xml, "<x/>").is_err());
    }

    /// tests/e2e_topology.rs found it with examples/one-file-per-vassal/app_02.xml:
    /// a comment naming `<uwsgi>` before the element was taken for it.
    #[test]
    fn xml_comments_naming_the_element_are_skipped() {
        let o = options(
            Format::Xml,
            "<!-- reads the children of <uwsgi> -->\n<uwsgi>\n  <!-- not </uwsgi> yet -->\n  <socket>127.0.0.1:9002</socket>\n</uwsgi>\n",
        )
        .unwrap();
        assert_eq!(get(&o, "socket"), ["127.0.0.1:9002"]);
        assert_eq!(strip_xml_comments("a<!-- b -->c<!-- d"), "ac");
    }

    #[test]
    fn formats_by_name() {
        assert_eq!(Format::of("a.json"), Format::Json);
        assert_eq!(Format::of("a.js"), Format::Json);
        assert_eq!(Format::of("a.yml"), Format::Yaml);
        assert_eq!(Format::of("a.xml"), Format::Xml);
        assert_eq!(Format::of("a.ini"), Format::Ini);
    }
}
