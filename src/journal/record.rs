//! Writing what the engine records: each record as a journal line, and a
//! finished request as a line of the index too.

use super::entry::{Entry, IndexEntry, Outcome};
use super::error::JournalError;
use super::history::Seen;
use super::memory::{Inner, RunMemory, Writing};
use crate::engine::{ErrorKind, Job, Outputs, Record, Reused, StepError, TaskRef};

impl RunMemory {
    pub(super) fn write_record(
        &self,
        inner: &mut Inner,
        record: Record<'_>,
        at: String,
    ) -> Result<(), JournalError> {
        match record {
            Record::Intent { job, credits } => {
                let entry = Entry::Intent {
                    inst: job.id.to_string(),
                    hash: job.request_hash.clone(),
                    attempt: job.attempt,
                    fields: job.fields.clone(),
                    credits,
                    at,
                };
                self.write(inner, &entry, None)
            }
            Record::Accepted { job, task, credits } => self.accepted(inner, job, task, credits, at),
            Record::Released {
                job,
                error,
                refunded,
            } => self.released(inner, job, error, refunded, at),
            // Taken up on resume from this run's journal, where it already
            // is, unless its files were fetched since (or its answer was
            // kept when they could not be saved).
            Record::Succeeded {
                job,
                outputs,
                reused_from: Some(Reused::ThisRun),
                ..
            } => {
                if self
                    .journaled(&job.id.to_string())
                    .is_some_and(|was| was != outputs)
                {
                    self.succeeded(inner, job, outputs, None, 0, at)
                } else {
                    Ok(())
                }
            }
            Record::Succeeded {
                job,
                outputs,
                reused_from: None,
                credits,
            } => self.succeeded(inner, job, outputs, None, credits, at),
            Record::Succeeded {
                job,
                outputs,
                reused_from: Some(Reused::Run(run)),
                credits,
            } => self.succeeded(inner, job, outputs, Some(run), credits, at),
            Record::Failed {
                job,
                error,
                credits,
            } => self.failed(inner, job, error, credits, at),
            Record::Observed { window } => {
                self.write(inner, &Entry::Observed(window.clone()), None)
            }
        }
    }

    fn accepted(
        &self,
        inner: &mut Inner,
        job: &Job,
        task: Option<&TaskRef>,
        credits: u64,
        at: String,
    ) -> Result<(), JournalError> {
        let inst = job.id.to_string();
        if let Some(t) = task {
            inner.tasks.insert(inst.clone(), t.clone());
        }
        let entry = Entry::Accepted {
            inst,
            hash: job.request_hash.clone(),
            attempt: job.attempt,
            task: task.cloned(),
            credits,
            at,
        };
        self.write(inner, &entry, None)
    }

    fn released(
        &self,
        inner: &mut Inner,
        job: &Job,
        error: &StepError,
        refunded: u64,
        at: String,
    ) -> Result<(), JournalError> {
        let inst = job.id.to_string();
        inner.tasks.remove(&inst);
        let entry = Entry::Released {
            inst,
            hash: job.request_hash.clone(),
            attempt: job.attempt,
            kind: error.kind,
            message: Some(error.message.clone()),
            refunded,
            at,
        };
        self.write(inner, &entry, None)
    }

    /// `reused_from`: the other run the result was taken from.
    fn succeeded(
        &self,
        inner: &mut Inner,
        job: &Job,
        outputs: &Outputs,
        reused_from: Option<&str>,
        credits: u64,
        at: String,
    ) -> Result<(), JournalError> {
        let inst = job.id.to_string();
        // The result of a task whose id is durable is fetched again, for
        // free, by a resume that finds no `succeeded`: it need not wait for
        // the disk. A synchronous answer (no task) is known nowhere else.
        let sync = if inner.tasks.remove(&inst).is_some() {
            Durability::Lazy
        } else {
            Durability::Now
        };
        // Only a result this run paid for is news to the index.
        let index = match (reused_from, inner.writing.as_ref()) {
            (None, Some(w)) => {
                w.index_entry(job, &inst, Outcome::Succeeded, &at)
                    .map(|e| IndexEntry {
                        outputs: Some(outputs.clone()),
                        ..e
                    })
            }
            _ => None,
        };
        let entry = Entry::Succeeded {
            inst,
            hash: job.request_hash.clone(),
            fields: job.fields.clone(),
            outputs: outputs.clone(),
            reused_from: reused_from.map(str::to_owned),
            credits,
            at,
        };
        self.write_synced(inner, &entry, index, sync)
    }

    /// The outputs this run's journal (as read on resume) holds for `inst`:
    /// a success's, or the answer kept when its files could not be saved.
    fn journaled(&self, inst: &str) -> Option<&Outputs> {
        match &self.known().own.as_ref()?.instances.get(inst)?.seen {
            Seen::Succeeded { outputs, .. } | Seen::Unsaved { outputs, .. } => Some(outputs),
            _ => None,
        }
    }

    fn failed(
        &self,
        inner: &mut Inner,
        job: &Job,
        error: &StepError,
        credits: u64,
        at: String,
    ) -> Result<(), JournalError> {
        let inst = job.id.to_string();
        let task = inner.tasks.remove(&inst);
        if let Some(paid) = &error.paid {
            return self.unsaved(inner, job, error, credits, paid, at);
        }
        let outcome = match (error.kind, &task) {
            (ErrorKind::InDoubt, _) => Outcome::InDoubt,
            (_, Some(_)) => Outcome::Unfinished,
            _ => Outcome::Failed,
        };
        // A local failure with no task (say, the journal could not
        // take the intent) says nothing about the request itself.
        let local = error.kind == ErrorKind::Local && task.is_none();
        let index = inner
            .writing
            .as_ref()
            .filter(|_| !local)
            .and_then(|w| w.index_entry(job, &inst, outcome, &at))
            .map(|e| IndexEntry {
                task,
                error: Some(error.message.clone()),
                ..e
            });
        let entry = failed_entry(job, inst, error, error.charged, credits, None, at);
        self.write(inner, &entry, index)
    }

    /// A paid answer whose files could not be saved: the journal keeps the
    /// answer, and the index offers it as a result (without files) so that
    /// no later run pays for it again.
    fn unsaved(
        &self,
        inner: &mut Inner,
        job: &Job,
        error: &StepError,
        credits: u64,
        paid: &Outputs,
        at: String,
    ) -> Result<(), JournalError> {
        let inst = job.id.to_string();
        let kept = Outputs {
            value: paid.value.clone(),
            files: Vec::new(),
        };
        let index = inner.writing.as_ref().and_then(|w| {
            w.index_entry(job, &inst, Outcome::Succeeded, &at)
                .map(|e| IndexEntry {
                    outputs: Some(kept.clone()),
                    ..e
                })
        });
        let entry = failed_entry(job, inst, error, true, credits, Some(kept), at);
        self.write(inner, &entry, index)
    }

    /// Appends `entry` to the journal, and `index` to the index unless
    /// other runs are not to see this one.
    fn write(
        &self,
        inner: &mut Inner,
        entry: &Entry,
        index: Option<IndexEntry>,
    ) -> Result<(), JournalError> {
        self.write_synced(inner, entry, index, Durability::Now)
    }

    fn write_synced(
        &self,
        inner: &mut Inner,
        entry: &Entry,
        index: Option<IndexEntry>,
        sync: Durability,
    ) -> Result<(), JournalError> {
        let Some(w) = inner.writing.as_mut() else {
            return Ok(());
        };
        match sync {
            Durability::Now => w.journal.append(entry)?,
            Durability::Lazy => w.journal.append_unsynced(entry)?,
        }
        // An index line is derived from the journal's: a resume writes it
        // again with the record it follows. It is synced with that record.
        if let Some(e) = index.filter(|_| self.policy.others) {
            match sync {
                Durability::Now => w.index.append(&e)?,
                Durability::Lazy => w.index.append_unsynced(&e)?,
            }
        }
        Ok(())
    }
}

/// Whether a record waits for the disk before the engine goes on.
#[derive(Clone, Copy)]
enum Durability {
    Now,
    /// Left to the kernel: a record whose loss a resume repairs for free.
    Lazy,
}

impl Writing {
    /// The index line for how this run ended `job`'s request; `None` for a
    /// throwaway sandbox, whose answers no later run may take.
    fn index_entry(&self, job: &Job, inst: &str, outcome: Outcome, at: &str) -> Option<IndexEntry> {
        Some(IndexEntry {
            api: self.api.clone()?,
            pipeline: self.pipeline.clone(),
            run: self.id.clone(),
            dir: self.dir.display().to_string(),
            inst: inst.to_owned(),
            hash: job.request_hash.clone(),
            outcome,
            fields: job.fields.clone(),
            outputs: None,
            task: None,
            error: None,
            at: at.to_owned(),
        })
    }
}

/// The journal's line for a failed attempt of `job`'s instance `inst`.
fn failed_entry(
    job: &Job,
    inst: String,
    error: &StepError,
    charged: bool,
    credits: u64,
    outputs: Option<Outputs>,
    at: String,
) -> Entry {
    Entry::Failed {
        inst,
        hash: job.request_hash.clone(),
        fields: job.fields.clone(),
        kind: error.kind,
        message: error.message.clone(),
        charged,
        credits,
        outputs,
        at,
    }
}

#[cfg(test)]
mod tests {
    use super::super::file::read_lines;
    use super::super::known::Known;
    use super::super::policy::Policy;
    use super::super::state::{JOURNAL, StateDir};
    use super::super::testkit::{header, job};
    use super::*;
    use crate::engine::Memory;

    #[test]
    fn a_result_is_journaled_by_where_it_came_from_and_indexed_only_when_paid() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = StateDir::local(root.path().join("state"));
        let dir = root.path().join("this");
        let memory = RunMemory::start(
            &state,
            &dir,
            &header("this"),
            Known::default(),
            Policy::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (job, outputs) = (job(), Outputs::default());
        for reused_from in [None, Some(Reused::Run("r0")), Some(Reused::ThisRun)] {
            let record = Record::Succeeded {
                job: &job,
                outputs: &outputs,
                reused_from,
                credits: 0,
            };
            memory.record(record).unwrap_or_else(|e| panic!("{e}"));
        }
        let journal: Vec<Entry> = read_lines(&dir.join(JOURNAL)).unwrap_or_else(|e| panic!("{e}"));
        let from: Vec<Option<&str>> = journal
            .iter()
            .filter_map(|e| match e {
                Entry::Succeeded { reused_from, .. } => Some(reused_from.as_deref()),
                _ => None,
            })
            .collect();
        // This run's own earlier result is in its journal already.
        assert_eq!(from, [None, Some("r0")]);
        let index: Vec<IndexEntry> =
            read_lines(&state.index_path()).unwrap_or_else(|e| panic!("{e}"));
        let indexed: Vec<_> = index.iter().map(|e| (e.run.as_str(), e.outcome)).collect();
        assert_eq!(indexed, [("this", Outcome::Succeeded)]);
    }
}
