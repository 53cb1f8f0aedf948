//! Writing what the engine records: each record as a journal line, and a
//! finished request as a line of the index too.

use super::entry::{Entry, IndexEntry, Outcome};
use super::memory::{Inner, RunMemory};
use crate::engine::{ErrorKind, Record};

impl RunMemory {
    fn write(
        &self,
        inner: &mut Inner,
        entry: &Entry,
        index: Option<IndexEntry>,
    ) -> Result<(), String> {
        let Some(w) = inner.writing.as_mut() else {
            return Ok(());
        };
        w.journal.append(entry)?;
        if let Some(e) = index.filter(|_| self.policy.others) {
            w.index.append(&e)?;
        }
        Ok(())
    }

    pub(super) fn write_record(
        &self,
        inner: &mut Inner,
        record: Record<'_>,
        at: String,
    ) -> Result<(), String> {
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
            Record::Accepted { job, task, credits } => {
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
            Record::Released {
                job,
                error,
                refunded,
            } => {
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
            } => {
                let inst = job.id.to_string();
                inner.tasks.remove(&inst);
                let index = match (reused_from, inner.writing.as_ref()) {
                    (None, Some(w)) => w.api.clone().map(|api| IndexEntry {
                        api,
                        pipeline: w.pipeline.clone(),
                        run: w.id.clone(),
                        dir: w.dir.display().to_string(),
                        inst: inst.clone(),
                        hash: job.request_hash.clone(),
                        outcome: Outcome::Succeeded,
                        fields: job.fields.clone(),
                        outputs: Some(outputs.clone()),
                        task: None,
                        error: None,
                        at: at.clone(),
                    }),
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
            Record::Failed { job, error } => {
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
                let index = inner.writing.as_ref().filter(|_| !local).and_then(|w| {
                    Some(IndexEntry {
                        api: w.api.clone()?,
                        pipeline: w.pipeline.clone(),
                        run: w.id.clone(),
                        dir: w.dir.display().to_string(),
                        inst: inst.clone(),
                        hash: job.request_hash.clone(),
                        outcome,
                        fields: job.fields.clone(),
                        outputs: None,
                        task,
                        error: Some(error.message.clone()),
                        at: at.clone(),
                    })
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
        }
    }
}
