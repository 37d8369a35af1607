//! The fastrouter stats document (`--fastrouter-stats-server`),
//! docs/UWSGI.md §8-§11, §13.5-§13.6.

use serde::Deserialize;

use super::{body, repair, ParseError};

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
}

impl FastrouterSnapshot {
    /// Parses one fastrouter stats answer: strictly, and if that fails, once
    /// more after removing the trailing commas uWSGI's bug inserts.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let b = body(bytes)?;
        match serde_json::from_slice(b) {
            Ok(s) => Ok(s),
            Err(first) => {
                let fixed = repair::strip_trailing_commas(b);
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
