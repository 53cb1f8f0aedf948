//! Finding an earlier answer to a request: candidates from the run's own
//! journal, from runs that never finished and from the index, ranked, and
//! the best taken.

use std::collections::HashSet;
use std::path::Path;

use super::entry::Outcome;
use super::history::{InstanceLog, Seen};
use super::memory::{Inner, RunMemory};
use crate::engine::{ErrorKind, Job, Outputs, TaskRef};

/// A candidate answer from the past, ranked: a result beats a task to
/// poll, which beats a request in doubt.
pub(super) enum Found {
    Reuse(Outputs, Option<String>, u64),
    Attach(TaskRef, Option<String>, u64),
    InDoubt(Option<String>, String),
}

impl RunMemory {
    pub(super) fn find(
        &self,
        inner: &Inner,
        job: &Job,
        inst: &str,
    ) -> Option<((String, String), Found)> {
        let may_reuse = self.policy.reuse && !self.policy.force.contains(&job.id.step_id);
        let hash = job.request_hash.as_str();
        let mut found: Vec<Candidate> = Vec::new();
        let claimed = &inner.claimed;
        // This run's own journal comes first, and only for the same instance.
        if let Some(own) = &self.known.own
            && let Some(i) = own.instances.get(inst)
            && i.hash == hash
        {
            let key = (own.id().to_owned(), inst.to_owned());
            let own_run = Journaled {
                dir: &own.dir,
                from: None,
                credits: i.credits,
                ranks: [6, 5, 4],
            };
            if let Some((rank, f)) = self.answer_in(inner, i, own_run, may_reuse, false) {
                offer(&mut found, claimed, rank, key, f);
            }
        }
        let own_found = !found.is_empty();
        // Then other runs: those that never finished, and the index.
        let same = |i: &str| u8::from(i == inst);
        let others = if own_found || !self.policy.others {
            &[][..]
        } else {
            &self.known.unfinished[..]
        };
        for log in others {
            for (k, i) in log.instances.iter().filter(|(_, i)| i.hash == hash) {
                let s = same(k);
                let other_run = Journaled {
                    dir: &log.dir,
                    from: Some(log.id().to_owned()),
                    credits: 0,
                    ranks: [4 + s, 2 + s, s],
                };
                let settled = self.settled(&log.header.pipeline, k, hash, &i.at);
                if let Some((rank, f)) = self.answer_in(inner, i, other_run, may_reuse, settled) {
                    offer(
                        &mut found,
                        claimed,
                        rank,
                        (log.id().to_owned(), k.clone()),
                        f,
                    );
                }
            }
        }
        for e in self
            .known
            .indexed(hash)
            .filter(|_| !own_found && self.policy.others)
        {
            let key = (e.run.clone(), e.inst.clone());
            let from = Some(e.run.clone());
            let s = same(&e.inst);
            match (e.outcome, &e.outputs, &e.task) {
                (Outcome::Succeeded, Some(outputs), _) if may_reuse => {
                    if let Some(o) = self.usable(inner, Path::new(&e.dir), &e.at, outputs) {
                        offer(&mut found, claimed, 4 + s, key, Found::Reuse(o, from, 0));
                    }
                }
                (Outcome::Unfinished, _, Some(t)) => {
                    offer(
                        &mut found,
                        claimed,
                        2 + s,
                        key,
                        Found::Attach(t.clone(), from, 0),
                    );
                }
                (Outcome::InDoubt, ..)
                    if !self.policy.resend_in_doubt
                        && !self.settled(&e.pipeline, &e.inst, hash, &e.at) =>
                {
                    offer(
                        &mut found,
                        claimed,
                        s,
                        key,
                        Found::InDoubt(from, e.at.clone()),
                    );
                }
                _ => {}
            }
        }
        // The best rank wins; among equals, the newest.
        let mut best: Option<Candidate> = None;
        for candidate in found {
            if best.as_ref().is_none_or(|(r, ..)| candidate.0 >= *r) {
                best = Some(candidate);
            }
        }
        best.map(|(_, k, f)| (k, f))
    }

    /// What an instance's journal offers a new request: its result, its
    /// task to poll, or a send in doubt (unless resending is allowed or a
    /// later answer `settled` it), each with its rank from `run.ranks`.
    fn answer_in(
        &self,
        inner: &Inner,
        i: &InstanceLog,
        run: Journaled<'_>,
        may_reuse: bool,
        settled: bool,
    ) -> Option<(u8, Found)> {
        let [reuse, attach, doubt] = run.ranks;
        match &i.seen {
            Seen::Succeeded { outputs, .. } if may_reuse => {
                let o = self.usable(inner, run.dir, &i.at, outputs)?;
                Some((reuse, Found::Reuse(o, run.from, run.credits)))
            }
            Seen::Accepted { task: Some(t) } | Seen::Failed { task: Some(t), .. } => {
                Some((attach, Found::Attach(t.clone(), run.from, run.credits)))
            }
            Seen::Sent { .. }
            | Seen::Accepted { task: None }
            | Seen::Failed {
                kind: ErrorKind::InDoubt,
                ..
            } if !self.policy.resend_in_doubt && !settled => {
                Some((doubt, Found::InDoubt(run.from, i.at.clone())))
            }
            _ => None,
        }
    }

    /// Whether a send left in doubt at `at` by another run was answered by
    /// a later attempt at the same request.
    fn settled(&self, pipeline: &str, inst: &str, hash: &str, at: &str) -> bool {
        self.known
            .settled(pipeline, inst, hash)
            .is_some_and(|later| later > at)
    }
}

type Candidate = (u8, (String, String), Found);

/// A run's journal as a source of answers: where its files are, its name
/// (`None`: the run being resumed), the credits an answer carries, and the
/// ranks of a result, a task and a send in doubt.
struct Journaled<'a> {
    dir: &'a Path,
    from: Option<String>,
    credits: u64,
    ranks: [u8; 3],
}

/// Adds a candidate unless an instance of this run already took it.
fn offer(
    found: &mut Vec<Candidate>,
    claimed: &HashSet<(String, String)>,
    rank: u8,
    key: (String, String),
    f: Found,
) {
    if !claimed.contains(&key) {
        found.push((rank, key, f));
    }
}
