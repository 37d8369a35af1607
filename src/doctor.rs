//! Doctor checks on the vassal configs, before anything is read or touched:
//! setups that work, but lose requests or hide a broken deploy. Each finding
//! says what to change. Sans-IO: it looks at parsed configs only.

use std::collections::BTreeMap;

use crate::vassal_config::VassalConfig;

/// One finding; the same message for many vassals is reported once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub vassals: Vec<String>,
    pub message: String,
}

/// `parsed`: every selected config with its parse (or why it could not be
/// read). `drain`: whether the tool will unsubscribe vassals itself.
pub fn check(parsed: &[(String, Result<&VassalConfig, String>)], drain: bool) -> Vec<Finding> {
    let mut by_message: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |name: &str, m: String| by_message.entry(m).or_default().push(name.to_string());
    for (name, cfg) in parsed {
        let c = match cfg {
            Ok(c) => *c,
            Err(e) => {
                add(name, format!("its config could not be read ({e}); drain, repair and node mapping fall back to defaults"));
                continue;
            }
        };
        if let Some(w) = c.warnings.iter().find(|w| w.starts_with("not read as ")) {
            add(name, format!("its config was {w}; node mapping falls back to the config's file stem, its subscribe-freq to uWSGI's 10 s, and drain and repair find nothing in it"));
            continue;
        }
        if c.subscriptions.is_empty() {
            add(name, "subscribes to no fastrouter (no subscribe2/subscribe-to): it can never count as live; add `subscribe2 = server=…,key=…`".into());
        }
        if !c.unsubscribe_on_graceful_reload && !drain {
            add(name, "has no `unsubscribe-on-graceful-reload = true` and drain is off: requests routed to it during its reload wait in its socket backlog, and if the reload fails they fail; add the option (or let uwsgi-reload drain with --subscription-server)".into());
        }
        if !c.need_app {
            add(name, "has no `need-app = true`: a deploy whose app fails to import still starts, accepts and answers 500; add it (or pass --probe PATH)".into());
        }
        if c.start_unsubscribed && c.writefifo_hook().is_some() {
            add(name, "subscribes from `hook-accepting1-once = writefifo:… S`, which can run before the master FIFO exists and leave it accepting but never subscribed (docs/UWSGI.md §9.6); uwsgi-reload repairs that unless --no-repair; the safe form drops `start-unsubscribed` and the hook and keeps `unsubscribe-on-graceful-reload` (without lazy-apps the app is loaded before the first announce)".into());
        }
        if !c.includes.is_empty() {
            // Why each was not followed (`vassal_config::includes`).
            let why: Vec<&str> = c
                .warnings
                .iter()
                .filter(|w| w.contains(crate::vassal_config::NOT_FOLLOWED))
                .map(String::as_str)
                .collect();
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join("; "))
            };
            add(
                name,
                format!(
                    "includes files the tool does not follow ({}){why}: options set there are not seen; an include is followed when it is a local regular file, not a link, within the limits of docs/SECURITY.md",
                    c.includes.join(", ")
                ),
            );
        }
    }
    by_message
        .into_iter()
        .map(|(message, vassals)| Finding { vassals, message })
        .collect()
}

impl Finding {
    pub fn render(&self, total: usize) -> String {
        let who = if self.vassals.len() == total && total > 1 {
            format!("all {total} vassals")
        } else if self.vassals.len() > 3 {
            format!(
                "{}, {} and {} more",
                self.vassals[0],
                self.vassals[1],
                self.vassals.len() - 2
            )
        } else {
            self.vassals.join(", ")
        };
        format!("{who}: {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "[uwsgi]\nsocket = /r/%n.sock\nsubscribe2 = server=/r/sub.sock,key=k\nunsubscribe-on-graceful-reload = true\nneed-app = true\n";

    #[test]
    fn an_unreadable_format_says_what_falls_back() {
        let c = VassalConfig::parse("{not json", "a.json", "/r/");
        let f = check(&[("a.json".into(), Ok(&c))], false);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].message.contains("not read as Json"), "{f:?}");
        assert!(f[0].message.contains("file stem"), "{f:?}");
        // The same vassal in good JSON is read like its ini twin.
        let c = VassalConfig::parse(
            r#"{"uwsgi": {"socket": "/r/%n.sock", "subscribe2": "server=/r/sub.sock,key=k",
                "unsubscribe-on-graceful-reload": true, "need-app": true, "subscribe-freq": 25}}"#,
            "a.json",
            "/r/",
        );
        assert_eq!(check(&[("a.json".into(), Ok(&c))], false), vec![]);
        assert_eq!(c.node_name().as_deref(), Some("/r/a.sock"));
        assert_eq!(c.subscribe_freq(), Some(25));
    }

    #[test]
    fn a_careful_config_has_no_findings() {
        let c = VassalConfig::parse(GOOD, "a.ini", "/r/");
        assert_eq!(check(&[("a.ini".into(), Ok(&c))], false), vec![]);
    }

    #[test]
    fn findings_are_grouped_and_say_the_fix() {
        let bare = VassalConfig::parse(
            "[uwsgi]\nsocket = /r/%n.sock\nsubscribe2 = server=/r/sub.sock,key=k\n",
            "a.ini",
            "/r/",
        );
        let bare_b = VassalConfig::parse(
            "[uwsgi]\nsocket = /r/%n.sock\nsubscribe2 = server=/r/sub.sock,key=k\n",
            "b.ini",
            "/r/",
        );
        let f = check(
            &[("a.ini".into(), Ok(&bare)), ("b.ini".into(), Ok(&bare_b))],
            false,
        );
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f.iter().all(|x| x.vassals == ["a.ini", "b.ini"]));
        assert!(f.iter().any(|x| x.message.contains("need-app = true")));
        assert!(f
            .iter()
            .any(|x| x.message.contains("unsubscribe-on-graceful-reload = true")));
        assert!(f[0].render(2).starts_with("all 2 vassals: "));
        // With the drain on, the missing unsubscribe is covered by the tool.
        assert_eq!(check(&[("a.ini".into(), Ok(&bare))], true).len(), 1);
    }

    #[test]
    fn an_include_not_followed_is_named_with_why_and_a_followed_one_is_not() {
        let text = format!("{GOOD}ini = /etc/common.ini\n");
        let mut refuse = |p: &str, _: usize| -> Result<crate::vassal_config::Included, String> {
            Err(format!("{p}: refused: it is a symbolic link"))
        };
        let c = VassalConfig::parse_following(&text, "a.ini", "/r/", &mut refuse, 1024);
        let f = check(&[("a.ini".into(), Ok(&c))], false);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].message.contains("/etc/common.ini"), "{f:?}");
        assert!(f[0].message.contains("symbolic link"), "{f:?}");
        let mut read = |p: &str, _: usize| {
            Ok(crate::vassal_config::Included {
                real_path: p.to_string(),
                text: "[uwsgi]\n".into(),
            })
        };
        let c = VassalConfig::parse_following(&text, "a.ini", "/r/", &mut read, 1024);
        assert_eq!(check(&[("a.ini".into(), Ok(&c))], false), vec![]);
    }
}
