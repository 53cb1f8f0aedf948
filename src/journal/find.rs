//! Finding an earlier answer to a request: candidates from the run's own
//! journal, from runs that never finished and from the index, each with
//! its [`Rank`]; the best one is taken.

use std::collections::HashSet;
use std::path::Path;

use super::entry::Outcome;
use super::history::{InstanceLog, Known, Seen};
use super::policy::Policy;
use super::rank::{Offer, Rank};
use super::reuse::usable;
use crate::engine::{ErrorKind, Job, Outputs, Recall, TaskRef};

/// An earlier request as `(run, instance)`: once an instance of this run
/// takes it, no other instance may.
pub(super) type Key = (String, String);

/// What an earlier request offers.
enum Found {
    Reuse(Outputs),
    Attach(TaskRef),
    InDoubt { since: String },
}

impl Found {
    fn offer(&self) -> Offer {
        match self {
            Found::Reuse(_) => Offer::Result,
            Found::Attach(_) => Offer::Task,
            Found::InDoubt { .. } => Offer::InDoubt,
        }
    }
}

/// A candidate answer and where it comes from.
struct Candidate {
    rank: Rank,
    key: Key,
    /// The run it was found in; `None` for the run being resumed.
    from: Option<String>,
    /// What this run already paid for it (on resume).
    credits: u64,
    found: Found,
}

impl Candidate {
    fn recall(self) -> (Key, Recall) {
        let Candidate {
            key,
            from,
            credits,
            found,
            ..
        } = self;
        let recall = match found {
            Found::Reuse(outputs) => Recall::Reuse {
                outputs,
                from,
                credits,
            },
            Found::Attach(task) => Recall::Attach {
                task,
                from,
                credits,
            },
            Found::InDoubt { since } => Recall::InDoubt { from, since },
        };
        (key, recall)
    }
}

/// The search for earlier answers to one request of instance `inst`.
pub(super) struct Search<'a> {
    known: &'a Known,
    policy: &'a Policy,
    /// Earlier requests that instances of this run already took.
    claimed: &'a HashSet<Key>,
    /// This run's folder, where a result's files are brought; `None` when
    /// nothing is written.
    target: Option<&'a Path>,
    inst: &'a str,
    hash: &'a str,
    may_reuse: bool,
    found: Vec<Candidate>,
}

impl<'a> Search<'a> {
    pub(super) fn new(
        known: &'a Known,
        policy: &'a Policy,
        claimed: &'a HashSet<Key>,
        target: Option<&'a Path>,
        job: &'a Job,
        inst: &'a str,
    ) -> Search<'a> {
        Search {
            known,
            policy,
            claimed,
            target,
            inst,
            hash: &job.request_hash,
            may_reuse: policy.reuse && !policy.force.contains(&job.id.step_id),
            found: Vec::new(),
        }
    }

    /// The best answer, with the earlier request it takes.
    pub(super) fn best(mut self) -> Option<(Key, Recall)> {
        self.own_journal();
        // Other runs count only when the run's own journal has no answer.
        if self.found.is_empty() && self.policy.others {
            self.unfinished_runs();
            self.index();
        }
        let best = self.found.into_iter().max_by_key(|c| c.rank)?;
        Some(best.recall())
    }

    /// The run being resumed, for the same instance only.
    fn own_journal(&mut self) {
        let Some(own) = &self.known.own else {
            return;
        };
        let Some(i) = own.instances.get(self.inst).filter(|i| i.hash == self.hash) else {
            return;
        };
        if let Some(found) = self.journaled(i, &own.dir, false) {
            let key = (own.id().to_owned(), self.inst.to_owned());
            self.offer(key, None, i.credits, found);
        }
    }

    /// Runs that stopped without finishing, any instance.
    fn unfinished_runs(&mut self) {
        let (known, hash) = (self.known, self.hash);
        for log in &known.unfinished {
            for (k, i) in log.instances.iter().filter(|(_, i)| i.hash == hash) {
                let settled = self.settled(&log.header.pipeline, k, &i.at);
                if let Some(found) = self.journaled(i, &log.dir, settled) {
                    let key = (log.id().to_owned(), k.clone());
                    self.offer(key, Some(log.id().to_owned()), 0, found);
                }
            }
        }
    }

    /// Requests other runs finished (or left in doubt), any instance.
    fn index(&mut self) {
        let known = self.known;
        for e in known.indexed(self.hash) {
            let found = match (e.outcome, &e.outputs, &e.task) {
                (Outcome::Succeeded, Some(outputs), _) if self.may_reuse => self
                    .usable(Path::new(&e.dir), &e.at, outputs)
                    .map(Found::Reuse),
                (Outcome::Unfinished, _, Some(t)) => Some(Found::Attach(t.clone())),
                (Outcome::InDoubt, ..)
                    if !self.policy.resend_in_doubt
                        && !self.settled(&e.pipeline, &e.inst, &e.at) =>
                {
                    Some(Found::InDoubt {
                        since: e.at.clone(),
                    })
                }
                _ => None,
            };
            if let Some(found) = found {
                let key = (e.run.clone(), e.inst.clone());
                self.offer(key, Some(e.run.clone()), 0, found);
            }
        }
    }

    /// What an instance's journal offers: its result, its task to poll, or
    /// a send in doubt (unless resending is allowed or a later answer
    /// `settled` it).
    fn journaled(&self, i: &InstanceLog, dir: &Path, settled: bool) -> Option<Found> {
        match &i.seen {
            Seen::Succeeded { outputs, .. } if self.may_reuse => {
                self.usable(dir, &i.at, outputs).map(Found::Reuse)
            }
            Seen::Accepted { task: Some(t) } | Seen::Failed { task: Some(t), .. } => {
                Some(Found::Attach(t.clone()))
            }
            Seen::Sent { .. }
            | Seen::Accepted { task: None }
            | Seen::Failed {
                kind: ErrorKind::InDoubt,
                ..
            } if !self.policy.resend_in_doubt && !settled => Some(Found::InDoubt {
                since: i.at.clone(),
            }),
            _ => None,
        }
    }

    fn usable(&self, dir: &Path, at: &str, outputs: &Outputs) -> Option<Outputs> {
        usable(self.policy, self.target, dir, at, outputs)
    }

    /// Whether a send left in doubt at `at` by another run was answered by
    /// a later attempt at the same request.
    fn settled(&self, pipeline: &str, inst: &str, at: &str) -> bool {
        self.known
            .settled(pipeline, inst, self.hash)
            .is_some_and(|later| later > at)
    }

    /// Adds a candidate unless an instance of this run already took it.
    fn offer(&mut self, key: Key, from: Option<String>, credits: u64, found: Found) {
        if self.claimed.contains(&key) {
            return;
        }
        let rank = Rank {
            own_run: from.is_none(),
            offer: found.offer(),
            same_instance: key.1 == self.inst,
            found: self.found.len(),
        };
        self.found.push(Candidate {
            rank,
            key,
            from,
            credits,
            found,
        });
    }
}
