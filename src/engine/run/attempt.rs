//! One attempt at an instance's request: the submit, the polls of its
//! task, and what [`react`] says to do when either goes wrong.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Driver;
use super::observing::{Observer, SubmitWindow};
use super::tasks::Done;
use crate::engine::gate::Lesson;
use crate::engine::poll_schedule::TaskClock;
use crate::engine::reaction::{Reaction, Situation, Trouble, react};
use crate::engine::slot::{Polling, State};
use crate::engine::{
    ErrorKind, Job, PollOutcome, Record, RunEvent, StepError, StepExecutor, StopReason, Submission,
    TaskRef,
};

impl<'p, E: StepExecutor> Driver<'p, E> {
    /// The instance's task is followed from now on, first asked after
    /// `delay`, on the schedule `clock` keeps. It must finish within the
    /// poll timeout of now, and within the step timeout of the instance's
    /// first request.
    pub(super) fn start_polling(
        &mut self,
        idx: usize,
        job: Job,
        task: TaskRef,
        charged: u64,
        (clock, delay): (TaskClock, Duration),
    ) {
        let step = self.graph.step(idx);
        let mut deadline = Instant::now() + self.config.scale(step.poll.timeout);
        if let (Some(timeout), Some(first)) = (step.timeout, self.slots[idx].first_sent) {
            deadline = deadline.min(first + self.config.scale(timeout));
        }
        let polling = Polling {
            job: Arc::new(job),
            task,
            charged,
            deadline,
            last_error: None,
            waiting: None,
            refund_since: self.submit_window(idx),
            clock,
        };
        self.set_state(idx, State::Polling(polling));
        self.poll(idx, delay);
    }

    pub(super) fn send(&mut self, idx: usize) {
        let State::Queued(job) = self.set_state(idx, State::Done) else {
            return;
        };
        // The intent must be durable before the request leaves: a crash
        // after this line leaves the submit in doubt, never forgotten.
        let credits = self.graph.step(idx).unit_credits;
        if let Err(e) = self.memory.record(Record::Intent { job: &job, credits }) {
            let message = format!("not sent: the journal could not record it ({e})");
            self.fail_with(idx, Some(job), StepError::new(ErrorKind::Local, message), 0);
            self.stop(StopReason::Journal { error: None });
            return;
        }
        self.budget.reserve(credits);
        self.slots[idx].first_sent.get_or_insert(Instant::now());
        self.emit(RunEvent::Submitting {
            id: job.id.clone(),
            attempt: job.attempt,
            request_hash: job.request_hash.clone(),
            fields: serde_json::Value::Object(job.fields.clone()),
        });
        let executor = Arc::clone(&self.executor);
        let gate = Arc::clone(self.submit_gates.gate(self.class(idx)));
        let job = Arc::new(job);
        let sent = Arc::clone(&job);
        let window = self.observer.as_ref().map(Observer::window);
        // One whose answer waits for work on the service holds no window.
        let holds = !crate::prices::answered_after_work(job.operation);
        self.set_state(idx, State::Submitting(job));
        self.tasks.spawn(idx, async move {
            let mut at = gate.reserve_send();
            let entered = loop {
                tokio::time::sleep_until(at).await;
                // No balance is read while the request is on the wire; and
                // none leaves while a read is on its way (the opening read
                // above all, so every charge lies after a known balance).
                let entered = match &window {
                    Some(w) => Some(w.clone().enter().await),
                    None => None,
                };
                // Waiting for a read may have taken it past the next one's moment.
                match gate.claim_send() {
                    Ok(()) => break entered,
                    Err(next) => at = next,
                }
            };
            let (held, window) = match entered {
                Some(held) if holds => {
                    let seq = held.seq;
                    (Some(held), Some(SubmitWindow::Held(seq)))
                }
                // One that holds no window lets go before it is sent.
                Some(entered) => (None, Some(SubmitWindow::Since(entered.seq))),
                None => (None, None),
            };
            let result = Box::pin(executor.submit(&sent)).await;
            // The window is let go only once the answer is in.
            drop(held);
            Done::Submit {
                idx,
                result,
                window,
            }
        });
    }

    pub(super) fn poll(&mut self, idx: usize, delay: Duration) {
        let State::Polling(p) = &self.slots[idx].state else {
            return;
        };
        // The job is shared with the poll, not copied: the driver gets it
        // back whole when the poll is over.
        let (job, task) = (Arc::clone(&p.job), p.task.clone());
        let executor = Arc::clone(&self.executor);
        let gate = Arc::clone(&self.poll_gate);
        let window = self.observer.as_ref().map(Observer::window);
        self.tasks.spawn(idx, async move {
            tokio::time::sleep(delay).await;
            gate.acquire().await;
            let window = window.map_or(0, |w| w.current());
            // Boxed, so that a poll waiting for its moment holds a pointer
            // to the request's state, not the state itself.
            let result = Box::pin(executor.poll(&job, &task)).await;
            Done::Poll {
                idx,
                result,
                window,
            }
        });
    }

    pub(super) fn retry_due(&mut self, idx: usize) {
        if let Some(reason) = self.stopped_because() {
            return self.skip(idx, format!("retry not sent: the run stopped ({reason})"));
        }
        if let State::BackingOff(job) = self.set_state(idx, State::Done) {
            self.enqueue(idx, job);
        }
    }

    pub(super) fn submitted(&mut self, idx: usize, result: Result<Submission, StepError>) {
        let unit = self.graph.step(idx).unit_credits;
        self.budget.settle(unit);
        let State::Submitting(job) = self.set_state(idx, State::Done) else {
            return;
        };
        let job = Arc::unwrap_or_clone(job);
        let submission = match result {
            Ok(submission) => submission,
            Err(error) => return self.submit_failed(idx, job, error),
        };
        if let Submission::Task(task) = &submission {
            let accepted = Record::Accepted {
                job: &job,
                task: Some(task),
                credits: unit,
            };
            if let Err(e) = self.memory.record(accepted) {
                // Paid for and followed to the end, but a crash now would lose it.
                self.stop(StopReason::Journal { error: Some(e) });
            }
        }
        // Each accepted submit earns back a tenth of a 429's slow-down.
        self.submit_gates.gate(self.class(idx)).speed_up(1.002);
        self.summary.submits += 1;
        self.budget.charge(unit);
        let (id, attempt) = (job.id.clone(), job.attempt);
        let task_id = match &submission {
            Submission::Done(_) => None,
            Submission::Task(task) => Some(task.id.clone()),
        };
        self.emit(RunEvent::Submitted {
            id,
            attempt,
            task_id,
            credits: unit,
        });
        match submission {
            Submission::Done(outputs) => self.succeed_with(idx, job, outputs, None, unit),
            Submission::Task(task) => {
                let step = self.graph.step(idx);
                let first = self.learned.accepted(
                    step.operation,
                    &step.poll,
                    self.config.time_scale,
                    &mut self.rng,
                );
                self.start_polling(idx, job, task, unit, first);
            }
        }
    }

    /// What [`react`] weighs for instance `idx` at `attempt`.
    pub(super) fn situation(
        &self,
        idx: usize,
        attempt: u32,
        retry_after: Option<Duration>,
    ) -> Situation<'p> {
        let step = self.graph.step(idx);
        Situation {
            retry: &step.retry,
            next_poll: Duration::ZERO,
            attempt,
            throttles: self.slots[idx].throttles,
            retry_after,
            overdue: false,
            stopping: self.summary.stopped.is_some(),
            any_accepted: self.summary.submits > 0,
            time_scale: self.config.time_scale,
        }
    }

    pub(super) fn submit_failed(&mut self, idx: usize, job: Job, error: StepError) {
        if !error.charged && error.kind != ErrorKind::InDoubt {
            let released = Record::Released {
                job: &job,
                error: &error,
                refunded: 0,
            };
            if let Err(e) = self.memory.record(released) {
                self.stop(StopReason::Journal { error: Some(e) });
            }
        }
        if error.kind == ErrorKind::RateLimited {
            self.slots[idx].throttles += 1;
        }
        let situation = self.situation(idx, job.attempt, error.retry_after);
        match react(Trouble::Submit(error.kind), &situation, &mut self.rng) {
            Reaction::Throttle { delay } => {
                let class = self.class(idx);
                if self.submit_gates.throttled(class, delay) == Lesson::SharedSlot {
                    self.summary.rate_limit_shared = true;
                }
                self.emit(RunEvent::Throttled {
                    delay_ms: delay.as_millis() as u64,
                });
                self.retry(idx, job, error, delay, 0, false);
            }
            Reaction::Retry { delay } => self.retry(idx, job, error, delay, 0, true),
            Reaction::FailAndStop(reason) => self.fail_and_stop(idx, job, error, reason),
            Reaction::Fail | Reaction::Repoll { .. } | Reaction::Timeout => {
                let unit = self.graph.step(idx).unit_credits;
                let charged = match (error.charged, error.kind) {
                    (false, _) => 0,
                    // A synchronous call answered and paid; only its files failed.
                    (true, ErrorKind::Local) => {
                        self.budget.charge(unit);
                        unit
                    }
                    // In doubt: as far as anyone knows, it was paid for.
                    (true, _) => {
                        self.budget.doubt(unit);
                        unit
                    }
                };
                self.fail_charged(idx, Some(job), error, 0, charged);
            }
        }
    }

    pub(super) fn fail_and_stop(
        &mut self,
        idx: usize,
        job: Job,
        error: StepError,
        reason: StopReason,
    ) {
        let abandon = reason.abandons_in_flight();
        self.fail_with(idx, Some(job), error, 0);
        self.stop(reason);
        if abandon {
            self.tasks.abort_all();
        }
    }

    /// Sends the same request again after `delay`, through the submit queue;
    /// `counts` when it uses up an attempt.
    pub(super) fn retry(
        &mut self,
        idx: usize,
        mut job: Job,
        error: StepError,
        delay: Duration,
        refunded: u64,
        counts: bool,
    ) {
        // The event names the attempt that failed; the retry is the next one.
        self.emit(RunEvent::Retrying {
            id: job.id.clone(),
            attempt: job.attempt,
            error,
            delay_ms: delay.as_millis() as u64,
            refunded,
        });
        if counts {
            job.attempt += 1;
        }
        self.set_state(idx, State::BackingOff(job));
        self.tasks.spawn(idx, async move {
            tokio::time::sleep(delay).await;
            Done::RetryDue { idx }
        });
    }

    pub(super) fn polled(&mut self, idx: usize, result: Result<PollOutcome, StepError>) {
        self.summary.polls += 1;
        let State::Polling(mut p) = self.set_state(idx, State::Done) else {
            return;
        };
        let (trouble, retry_after) = match &result {
            Ok(PollOutcome::Done(_)) => (None, None),
            Ok(PollOutcome::Pending { .. }) => (Some(Trouble::Pending), None),
            Ok(PollOutcome::Failed { .. }) => (Some(Trouble::TaskFailed), None),
            Err(e) => (Some(Trouble::Poll(e.kind)), e.retry_after),
        };
        let step = self.graph.step(idx);
        let Some(trouble) = trouble else {
            self.learned.done(step.operation, &step.poll, &p.clock);
            if let Ok(PollOutcome::Done(outputs)) = result {
                self.succeed_with(idx, Arc::unwrap_or_clone(p.job), outputs, None, 0);
            }
            return;
        };
        if trouble == Trouble::TaskFailed {
            let message = match result {
                Ok(PollOutcome::Failed { message }) => message,
                _ => String::new(),
            };
            return self.task_failed(idx, p, message);
        }
        let mut situation = self.situation(idx, p.job.attempt, retry_after);
        situation.overdue = Instant::now() >= p.deadline;
        if matches!(
            trouble,
            Trouble::Pending | Trouble::Poll(ErrorKind::Transient | ErrorKind::RateLimited)
        ) {
            situation.next_poll = self.learned.pending(
                step.operation,
                &step.poll,
                &mut p.clock,
                self.config.time_scale,
                &mut self.rng,
            );
        }
        if let Ok(PollOutcome::Pending { waiting }) = &result {
            p.waiting.clone_from(waiting);
        }
        let error = result.err();
        match (react(trouble, &situation, &mut self.rng), error) {
            (Reaction::Repoll { delay }, error) => {
                p.last_error = error.map(|e| e.message);
                self.set_state(idx, State::Polling(p));
                self.poll(idx, delay);
            }
            (Reaction::Timeout, error) => {
                let cause = match (error.map(|e| e.message).or(p.last_error), p.waiting) {
                    (Some(c), _) => format!("; the last poll failed: {c}"),
                    (None, Some(w)) => format!("; {w}"),
                    (None, None) => String::new(),
                };
                let message = format!(
                    "task `{}` did not finish in time{cause}; it was paid for and may still finish",
                    p.task.id
                );
                let error = StepError::new(ErrorKind::Timeout, message);
                self.fail_with(idx, Some(Arc::unwrap_or_clone(p.job)), error, 0);
            }
            (Reaction::FailAndStop(reason), Some(error)) => {
                self.fail_and_stop(idx, Arc::unwrap_or_clone(p.job), error, reason);
            }
            (_, error) => {
                let error = error.unwrap_or_else(|| StepError::new(ErrorKind::Local, "no answer"));
                self.fail_with(idx, Some(Arc::unwrap_or_clone(p.job)), error, 0);
            }
        }
    }

    /// The remote task failed. The service refunds whoever paid: this run,
    /// or the run the task came from.
    pub(super) fn task_failed(&mut self, idx: usize, p: Polling, message: String) {
        let refunded = p.charged;
        self.budget.refund(refunded);
        let error = StepError::new(ErrorKind::TaskFailed, message);
        let released = Record::Released {
            job: &p.job,
            error: &error,
            refunded,
        };
        if let Err(e) = self.memory.record(released) {
            self.stop(StopReason::Journal { error: Some(e) });
        }
        let situation = self.situation(idx, p.job.attempt, None);
        match react(Trouble::TaskFailed, &situation, &mut self.rng) {
            Reaction::Retry { delay } => self.retry(
                idx,
                Arc::unwrap_or_clone(p.job),
                error,
                delay,
                refunded,
                true,
            ),
            _ => self.fail_with(idx, Some(Arc::unwrap_or_clone(p.job)), error, refunded),
        }
    }
}
