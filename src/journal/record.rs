//! Writing what the engine records: each record as a journal line, and a
//! finished request as a line of the index too.

use super::entry::{Entry, IndexEntry, Outcome};
use super::error::JournalError;
use super::memory::{Inner, RunMemory, Writing};
use crate::engine::{ErrorKind, Job, Outputs, Record, StepError, TaskRef};

impl RunMemory {
    pub(super) fn write_record(
        &self,
        inner: &mut Inner,
        record: Record<'_>,
        at: String,
    ) -> Result<(), JournalError> {
        match record {
            Record::Intent { job } => {
                let entry = Entry::Intent {
                    inst: job.id.to_string(),
                    hash: job.request_hash.clone(),
                    attempt: job.attempt,
                    fields: job.fields.clone(),
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
            // This run's own earlier result, taken up on resume: already journaled.
            Record::Succeeded {
                reused_from: Some(""),
                ..
            } => Ok(()),
            Record::Succeeded {
                job,
                outputs,
                reused_from,
                credits,
            } => self.succeeded(inner, job, outputs, reused_from, credits, at),
            Record::Failed { job, error } => self.failed(inner, job, error, at),
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
            refunded,
            at,
        };
        self.write(inner, &entry, None)
    }

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
        inner.tasks.remove(&inst);
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
        self.write(inner, &entry, index)
    }

    fn failed(
        &self,
        inner: &mut Inner,
        job: &Job,
        error: &StepError,
        at: String,
    ) -> Result<(), JournalError> {
        let inst = job.id.to_string();
        let task = inner.tasks.remove(&inst);
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
        let entry = Entry::Failed {
            inst,
            hash: job.request_hash.clone(),
            fields: job.fields.clone(),
            kind: error.kind,
            message: error.message.clone(),
            charged: error.charged,
            at,
        };
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
        let Some(w) = inner.writing.as_mut() else {
            return Ok(());
        };
        w.journal.append(entry)?;
        if let Some(e) = index.filter(|_| self.policy.others) {
            w.index.append(&e)?;
        }
        Ok(())
    }
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
