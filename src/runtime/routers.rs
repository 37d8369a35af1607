//! Reading every fastrouter's stats socket (one, or several for HA) as one
//! engine read: each socket is read without blocking, and when all have
//! answered, their documents become one `Input::Fastrouter`
//! (`FastrouterSnapshot::merge`: each router's keys apart, so K holds on
//! every router), or one `Input::ReadFailed` naming the socket that failed.

use std::time::{Duration, Instant};

use mio::{Registry, Token};

use super::stats_reader::{to_input, ReadResult, StatsReader};
use crate::engine::Input;
use crate::error::Error;
use crate::run_config::SocketSpec;
use crate::stats::{FastrouterSnapshot, StatsSource};

pub struct Routers {
    readers: Vec<StatsReader>,
    first_token: usize,
    /// This read's answers so far, one per router.
    answers: Vec<Option<ReadResult>>,
}

impl Routers {
    /// Router `i` is polled with token `first_token + i`.
    pub fn new(
        specs: &[SocketSpec],
        first_token: usize,
        timeout: Duration,
    ) -> Result<Routers, Error> {
        let readers = specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                StatsReader::new(
                    StatsSource::Fastrouter,
                    s.clone(),
                    Token(first_token + i),
                    timeout,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Routers {
            answers: vec![None; readers.len()],
            readers,
            first_token,
        })
    }

    /// Does `token` belong to one of the routers?
    pub fn owns(&self, token: Token) -> bool {
        (self.first_token..self.first_token + self.readers.len()).contains(&token.0)
    }

    /// Starts a read of every router; the merged answer if all answered at
    /// once.
    pub fn start(&mut self, registry: &Registry, now: Instant) -> Option<Input> {
        self.answers = vec![None; self.readers.len()];
        for (i, r) in self.readers.iter_mut().enumerate() {
            self.answers[i] = r.start(registry, now);
        }
        self.finish()
    }

    pub fn on_ready(&mut self, registry: &Registry, token: Token) -> Option<Input> {
        let i = token.0.checked_sub(self.first_token)?;
        let r = self.readers.get_mut(i)?.on_ready(registry)?;
        self.answers[i] = Some(r);
        self.finish()
    }

    pub fn check_deadline(&mut self, registry: &Registry, now: Instant) -> Option<Input> {
        let mut any = false;
        for (i, r) in self.readers.iter_mut().enumerate() {
            if let Some(res) = r.check_deadline(registry, now) {
                self.answers[i] = Some(res);
                any = true;
            }
        }
        if any {
            self.finish()
        } else {
            None
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.readers.iter().filter_map(StatsReader::deadline).min()
    }

    /// Reads started, over every router.
    pub fn reads(&self) -> u64 {
        self.readers.iter().map(|r| r.reads).sum()
    }

    /// Once every router answered: one input for the engine.
    fn finish(&mut self) -> Option<Input> {
        if self.answers.iter().any(Option::is_none) {
            return None;
        }
        let answers = std::mem::replace(&mut self.answers, vec![None; self.readers.len()]);
        let mut docs = Vec::new();
        for (i, a) in answers.into_iter().enumerate() {
            let a = a.expect("checked above");
            match to_input(StatsSource::Fastrouter, &self.readers[i].spec, a) {
                Input::Fastrouter(f) => docs.push(f),
                failed => return Some(failed),
            }
        }
        Some(Input::Fastrouter(FastrouterSnapshot::merge(docs)))
    }
}
