//! Instances answered from the past: an earlier result taken (with its
//! files fetched when the run downloads), a task accepted earlier polled
//! again, or a send in doubt failed unsent.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Driver;
use super::tasks::Done;
use crate::engine::decide::Taken;
use crate::engine::poll_schedule::Learned;
use crate::engine::slot::{Fetching, State};
use crate::engine::{
    EarlierAttempt, ErrorKind, Job, Outputs, Reused, RunEvent, StepError, StepExecutor, TaskRef,
};

impl<'p, E: StepExecutor> Driver<'p, E> {
    /// A request sent before with no recorded answer fails unsent. One of
    /// this run's own sends is counted in what the run spent before it was
    /// resumed, and shows on the instance as in doubt, after the attempts
    /// the journal holds of it (`earlier`).
    pub(super) fn in_doubt(
        &mut self,
        idx: usize,
        job: Job,
        from: Option<String>,
        (since, attempt): (&str, Option<u32>),
        earlier: Vec<EarlierAttempt>,
    ) {
        let run = match &from {
            Some(run) => format!("in run `{run}`"),
            None => "earlier in this run".to_owned(),
        };
        let what = attempt.map_or_else(|| "it".to_owned(), |n| format!("attempt {n}"));
        let message = format!(
            "{what} was sent {run} at {since} and no answer was recorded; it may have been charged, so it is not sent again (pass `--resend-in-doubt` to pay for it again)"
        );
        let mut error = StepError::new(ErrorKind::InDoubt, message);
        error.charged = from.is_none();
        let charged = if from.is_none() {
            self.graph.step(idx).unit_credits
        } else {
            0
        };
        let job = Job {
            attempt: attempt.unwrap_or(job.attempt),
            ..job
        };
        // Another run's attempts are that run's to report.
        if from.is_none() && !earlier.is_empty() {
            self.emit(RunEvent::Recalled {
                id: job.id.clone(),
                attempts: earlier,
            });
        }
        self.fail_charged(idx, Some(job), error, 0, charged);
    }

    /// Takes an earlier run's result for the instance: nothing is sent. A
    /// result without files, when this run downloads, gets its files first.
    pub(super) fn reuse(&mut self, idx: usize, job: Job, taken: Taken) {
        if !(taken.outputs.files.is_empty() && self.executor.wants_files()) {
            return self.reused(idx, job, taken);
        }
        let executor = Arc::clone(&self.executor);
        let slots = Arc::clone(&self.fetch_slots);
        let (fetch_job, value) = (job.clone(), taken.outputs.clone());
        let abort = self.tasks.spawn(idx, async move {
            // Downloads of reused results share the in-flight limit's width.
            let _slot = slots.acquire_owned().await;
            Done::Fetched {
                idx,
                result: executor.fetch(&fetch_job, value).await,
            }
        });
        self.set_state(idx, State::Fetching(Fetching { job, taken, abort }));
    }

    /// A reused result's files were fetched, or not (the download failed,
    /// its task ended abnormally, or the run stopped). Then this run's own
    /// result, already paid and journaled, is kept without its files:
    /// failing it would have the next resume pay for it again. Another run's
    /// result is skipped if the run stopped and fails the instance otherwise;
    /// either way it stays reusable for a later run.
    pub(super) fn fetched(&mut self, idx: usize, result: Result<Outputs, StepError>) {
        if !matches!(self.slots[idx].state, State::Fetching(_)) {
            return;
        }
        let State::Fetching(f) = self.set_state(idx, State::Done) else {
            return;
        };
        match result {
            Ok(outputs) => self.reused(idx, f.job, Taken { outputs, ..f.taken }),
            Err(_) if f.taken.from.is_none() => self.reused(idx, f.job, f.taken),
            Err(_) if self.summary.stopped.is_some() => {
                let reason = self.stopped_because().unwrap_or_default();
                self.skip(
                    idx,
                    format!("files not fetched: the run stopped ({reason})"),
                );
            }
            Err(error) => self.fail_with(idx, Some(f.job), error, 0),
        }
    }

    pub(super) fn reused(&mut self, idx: usize, job: Job, taken: Taken) {
        let Taken {
            outputs,
            from,
            credits,
        } = taken;
        if from.is_some() {
            self.summary.reused += 1;
        }
        // A result of this run before it was resumed: its credits are in
        // what the run spent before (another run's cost this run nothing).
        self.emit(RunEvent::Reused {
            id: job.id.clone(),
            request_hash: job.request_hash.clone(),
            from: from.clone(),
            credits,
            outputs: outputs.clone(),
        });
        let reused = from.as_deref().map_or(Reused::ThisRun, Reused::Run);
        self.succeed_with(idx, job, outputs, Some(reused), 0);
    }

    /// Polls a task accepted by an earlier attempt instead of sending the request again.
    pub(super) fn attach(
        &mut self,
        idx: usize,
        job: Job,
        task: TaskRef,
        credits: u64,
        from: Option<String>,
    ) {
        // This run's own task was paid for before it was resumed; another
        // run's, by that run.
        self.summary.attached += 1;
        self.emit(RunEvent::Attached {
            id: job.id.clone(),
            request_hash: job.request_hash.clone(),
            task_id: task.id.clone(),
            credits,
            from,
        });
        self.slots[idx].first_sent.get_or_insert(Instant::now());
        let resumed = (Learned::resumed(), Duration::ZERO);
        self.start_polling(idx, job, task, credits, resumed);
    }
}
