//! Changing a running stack the way an operator or a deploy does: a touch,
//! a new vassal, a config replaced quietly, a drained removal, a raw
//! subscription packet.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::{now_secs, Stack};

/// Replaces the file at `path` by `content` whose mtime is `mtime` (a
/// temporary file beside it, then rename): a config the Emperor, which has
/// seen `mtime` already, does not notice until the next touch.
pub fn replace_keeping_mtime(path: &Path, content: &str, mtime: i64) {
    let name = path.file_name().expect("a file name").to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, content).unwrap();
    let ts = TimeSpec::new(mtime, 0);
    utimensat(None, &tmp, &ts, &ts, UtimensatFlags::NoFollowSymlink).unwrap();
    fs::rename(&tmp, path).unwrap();
}

impl Stack {
    /// Moves the mtime of `name`'s config (the link itself) forward the way a
    /// careful operator would: `max(now, mtime + 1)`. The Emperor reloads it.
    pub fn touch(&self, name: &str) {
        let path = self.config_path(name);
        let m = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let t = now_secs().max(m.mtime() + 1);
        let ts = TimeSpec::new(t, 0);
        utimensat(None, &path, &ts, &ts, UtimensatFlags::NoFollowSymlink)
            .unwrap_or_else(|e| panic!("touch -h {}: {e}", path.display()));
    }

    /// Adds a vassal (a new link to vassal.ini): the Emperor starts it.
    pub fn add_vassal(&self, name: &str) {
        symlink("../vassal.ini", self.config_path(name)).unwrap();
    }

    /// Replaces `name`'s config by `content` without the Emperor noticing
    /// (the new file gets the old `last_mod` as mtime): a deployment that
    /// the next reload will pick up.
    pub fn replace_config_quietly(&self, name: &str, content: &str) {
        let emp = self.emperor_stats().expect("emperor stats");
        let last_mod = emp
            .vassal(&self.config_file(name))
            .expect("vassal in emperor stats")
            .last_mod;
        replace_keeping_mtime(&self.config_path(name), content, last_mod);
    }

    /// Deploys, without the Emperor noticing, vassal.ini with `name`'s
    /// accepting hook (`writefifo:<its master FIFO> S`) replaced by the
    /// option line `hook`: what its next generation runs instead.
    pub fn replace_accepting_hook_quietly(&self, name: &str, hook: &str) {
        let ini = self.vassal_ini();
        let ours = format!(
            "hook-accepting1-once = writefifo:{}/%n.fifo S",
            self.dir.display()
        );
        assert!(ini.contains(&ours), "vassal.ini has no `{ours}`");
        self.replace_config_quietly(name, &ini.replace(&ours, hook));
    }

    /// vassal.ini as written for this stack.
    pub fn vassal_ini(&self) -> String {
        fs::read_to_string(self.dir.join("vassal.ini")).unwrap()
    }

    /// Sends a uWSGI unsubscribe packet for `name`'s node (what a drain
    /// does), then waits until the fastrouter dropped the node (its sessions
    /// ended), then removes the config: the Emperor stops the vassal, and no
    /// request is in flight on it. Returns whether the node went away in time.
    pub fn remove_vassal_drained(&self, name: &str, timeout: Duration) -> bool {
        self.send_subscription(name, true);
        let node = self.node_name(name);
        let gone = super::poll(timeout, Duration::from_millis(20), || {
            let fr = self.fastrouter_stats().ok()?;
            let present = fr.nodes().any(|(k, n)| k == self.key && n.name == node);
            (!present).then_some(())
        })
        .is_some();
        fs::remove_file(self.config_path(name)).unwrap();
        gone
    }

    /// A subscription packet (modifier1 224; modifier2 0 subscribe, 1
    /// unsubscribe) for `name`'s node, sent to the subscription server.
    pub fn send_subscription(&self, name: &str, unsubscribe: bool) {
        fn kv(out: &mut Vec<u8>, k: &str, v: &str) {
            out.extend_from_slice(&(k.len() as u16).to_le_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u16).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        let mut body = Vec::new();
        kv(&mut body, "key", &self.key);
        kv(&mut body, "address", &self.node_name(name));
        kv(&mut body, "modifier1", "0");
        kv(&mut body, "modifier2", "0");
        let mut pkt = vec![224u8];
        pkt.extend_from_slice(&(body.len() as u16).to_le_bytes());
        pkt.push(u8::from(unsubscribe));
        pkt.extend_from_slice(&body);
        let s = UnixDatagram::unbound().unwrap();
        s.send_to(&pkt, self.subscription_path())
            .expect("send subscription packet");
    }
}
