//! The fastrouter stats document (`--fastrouter-stats-server`),
//! docs/UWSGI.md §8-§11, §13.5-§13.6.

use serde::Deserialize;

use super::{body, trailing_commas, ParseError};

/// One read of the fastrouter stats socket.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct FastrouterSnapshot {
    /// uWSGI's version string (`2.0.21-debian`), for the report and the
    /// metrics only; absent in old or foreign documents.
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub pid: i64,
    pub subscriptions: Vec<Subscription>,
    /// With several fastrouters (HA): each one's `pid`, in the order of the
    /// command line (see [`FastrouterSnapshot::merge`]); empty with one.
    #[serde(skip)]
    pub router_pids: Vec<i64>,
}

/// All nodes subscribed under one key (the virtual host nginx passes).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Subscription {
    pub key: String,
    pub nodes: Vec<Node>,
}

/// One subscribed backend.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Node {
    /// The address the vassal subscribed with, literally (its first socket
    /// as written in its config, or `subscribe2 addr=`).
    pub name: String,
    /// Wall second of the last announce (1 s resolution).
    pub last_check: i64,
    /// 1: excluded from routing, freed once `ref` reaches 0.
    pub death_mark: i64,
    /// Sessions currently routed to the node.
    #[serde(rename = "ref")]
    pub refs: i64,
    /// The vassal master pid with `subscriptions-use-credentials`, else 0.
    /// Recorded when the node is created only: stale after a crash.
    #[serde(default)]
    pub pid: i64,
    #[serde(default)]
    pub modifier1: i64,
    #[serde(default)]
    pub modifier2: i64,
    #[serde(default)]
    pub requests: i64,
    /// `cores` of the last subscription packet that refreshed the node
    /// (uWSGI copies it from every packet, `uwsgi_add_subscribe_node`). A
    /// vassal always sends its `processes × cores`, at least 1; the tool's
    /// own packets send none, which the router stores as 0. So `Some(0)`
    /// says the node's last refresh was the tool's, not the vassal's
    /// (docs/UWSGI.md §9.8). `None`: an old stats format without it.
    #[serde(default)]
    pub cores: Option<i64>,
}

impl Node {
    /// Was the last packet that refreshed this node the vassal's own? The
    /// tool's packets (an early announce, an undone drain) keep a node
    /// routable, but they are not evidence of the vassal: `cores == 0`
    /// marks them (see `cores`).
    pub fn refreshed_by_vassal(&self) -> bool {
        self.cores != Some(0)
    }
}

impl FastrouterSnapshot {
    /// Parses one fastrouter stats answer: strictly, and if that fails, once
    /// more after removing the trailing commas uWSGI's bug inserts.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let b = body(bytes)?;
        match serde_json::from_slice(b) {
            Ok(s) => Ok(s),
            Err(first) => {
                let fixed = trailing_commas::strip_trailing_commas(b);
                if fixed.len() == b.len() {
                    return Err(ParseError::Invalid {
                        detail: first.to_string(),
                    });
                }
                serde_json::from_slice(&fixed).map_err(|_| ParseError::Invalid {
                    detail: first.to_string(),
                })
            }
        }
    }

    /// Every (key, node) pair, in document order.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.subscriptions
            .iter()
            .flat_map(|s| s.nodes.iter().map(move |n| (s.key.as_str(), n)))
    }
}

/// The key under which the engine sees `key` of fastrouter number `router`
/// (0-based): the first router's keys as they are, the others' with the
/// router's number, so each (key, router) pair is a key of its own and K is
/// kept on every router of an HA pair.
pub fn router_key(key: &str, router: usize) -> String {
    if router == 0 {
        key.to_string()
    } else {
        format!("{key} (fastrouter {})", router + 1)
    }
}

/// The real key and the router (0-based) of an engine key made by
/// [`router_key`].
pub fn split_router_key(key: &str) -> (&str, usize) {
    if let Some(rest) = key.strip_suffix(')') {
        if let Some((real, n)) = rest.rsplit_once(" (fastrouter ") {
            if let Ok(n) = n.parse::<usize>() {
                if n >= 2 {
                    return (real, n - 1);
                }
            }
        }
    }
    (key, 0)
}

impl FastrouterSnapshot {
    /// One view of several fastrouters (HA: every vassal subscribes to each).
    /// Their keys are told apart with [`router_key`]; `router_pids` keeps
    /// each one's pid, so a restart of any is seen. One router: unchanged.
    pub fn merge(mut routers: Vec<FastrouterSnapshot>) -> FastrouterSnapshot {
        if routers.len() == 1 {
            return routers.pop().expect("one");
        }
        let mut out = FastrouterSnapshot {
            pid: routers.first().map_or(0, |r| r.pid),
            router_pids: routers.iter().map(|r| r.pid).collect(),
            ..Default::default()
        };
        for (i, r) in routers.into_iter().enumerate() {
            if i == 0 {
                out.version = r.version.clone();
            }
            for mut sub in r.subscriptions {
                sub.key = router_key(&sub.key, i);
                out.subscriptions.push(sub);
            }
        }
        out
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    #[test]
    fn router_keys_round_trip() {
        for (k, r) in [("a.com", 0), ("a.com", 1), ("x (fastrouter 9)", 2)] {
            let tagged = router_key(k, r);
            assert_eq!(split_router_key(&tagged), (k, r), "{tagged}");
        }
        assert_eq!(
            split_router_key("a (fastrouter one)"),
            ("a (fastrouter one)", 0)
        );
    }

    #[test]
    fn merge_keeps_each_routers_keys_apart() {
        let node = |n: &str| Node {
            name: n.into(),
            ..Default::default()
        };
        let r = |pid, nodes: Vec<Node>| FastrouterSnapshot {
            pid,
            subscriptions: vec![Subscription {
                key: "k".into(),
                nodes,
            }],
            ..Default::default()
        };
        let one = FastrouterSnapshot::merge(vec![r(1, vec![node("/a")])]);
        assert!(one.router_pids.is_empty());
        assert_eq!(one.subscriptions[0].key, "k");
        let m = FastrouterSnapshot::merge(vec![r(1, vec![node("/a")]), r(2, vec![node("/a")])]);
        assert_eq!(m.router_pids, vec![1, 2]);
        let keys: Vec<&str> = m.subscriptions.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["k", "k (fastrouter 2)"]);
        assert_eq!(m.nodes().count(), 2);
    }
}
