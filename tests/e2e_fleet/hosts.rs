//! Several "hosts" behind ONE fastrouter, for the fleet scenarios: the
//! stack harness's hosts (`StackSpec::host`, tests/support/stack/host.rs),
//! each an Emperor in its own directory (its own vassal dir, Emperor stats
//! socket, vassal sockets, FIFOs and logs), every vassal subscribed to the
//! one standalone fastrouter, nginx in front of it. Node names differ
//! between hosts because each host's sockets live in its own directory
//! (`<stack>/host-a/app_01.sock`, `<stack>/host-b/app_01.sock`): the same
//! config names on every host, as a fleet deployed by Ansible has.
//!
//! This is a thin layer: starting, waiting until ready (with the repair of
//! docs/UWSGI.md §9.6), reading the state and stopping are the stack's.

use std::ops::Deref;

use crate::stack::{Fleet, Stack, StackSpec};

/// A stack of several hosts; derefs to the [`Stack`].
pub struct MultiHost(Stack);

impl Deref for MultiHost {
    type Target = Stack;
    fn deref(&self) -> &Stack {
        &self.0
    }
}

impl MultiHost {
    /// Starts the fastrouter, one Emperor per `(id, vassal numbers)` (3 ->
    /// `app_03.ini`), and nginx; waits until every vassal of every host
    /// accepts and has a live node.
    pub fn start(key: &str, hosts: &[(&str, &[usize])]) -> MultiHost {
        let mut spec = StackSpec::new(0);
        spec.key = key.to_string();
        for (id, numbers) in hosts {
            spec = spec.host(id, numbers);
        }
        MultiHost(Stack::start(spec))
    }

    /// The real state of host `id`'s vassals.
    pub fn fleet(&self, id: &str) -> Fleet {
        self.0.host_fleet(id)
    }

    /// The uwsgi_reload.py arguments for host `id`: its directory and
    /// Emperor stats socket, the shared fastrouter's stats socket.
    pub fn tool_args(&self, id: &str) -> Vec<String> {
        self.0.host_args(id)
    }
}
