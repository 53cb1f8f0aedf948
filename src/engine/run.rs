//! The driver: dispatches ready instances under the limits, follows each
//! through submit, polls and retries, and reports every step as an event.
//!
//! One loop owns all state; submits and polls run as tasks that report back
//! through a `JoinSet`, so no state is shared between tasks beyond the gates.
//! What to do when an attempt goes wrong is decided in [`super::reaction`],
//! what to do with a ready instance in [`super::decide`]; the driver carries
//! both out.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, Id, JoinError, JoinSet};
use tokio::time::Instant;

use super::backoff;
use super::budget::Budget;
use super::decide::{Decision, decide};
use super::gate::Gate;
use super::graph::{Graph, Readiness};
use super::reaction::{Reaction, Situation, Trouble, react};
use super::slot::{Fetching, Polling, Rows, Slot, State};
use super::{
    EngineConfig, ErrorKind, Job, Memory, Outputs, PollOutcome, Record, RunEvent, StepError,
    StepExecutor, StopReason, Submission, Summary, TaskRef,
};
use crate::plan::{Plan, Scope};

/// A finished submit or poll.
enum Done {
    Submit {
        idx: usize,
        result: Result<Submission, StepError>,
    },
    Poll {
        idx: usize,
        result: Result<PollOutcome, StepError>,
    },
    /// A retry's backoff is over; the instance may be sent again.
    RetryDue { idx: usize },
    /// The files of a reused result were downloaded (or not).
    Fetched {
        idx: usize,
        result: Result<Outputs, StepError>,
    },
}

/// The tasks the driver waits on, each owned by one instance.
#[derive(Default)]
struct Tasks {
    set: JoinSet<Done>,
    owner: HashMap<Id, usize>,
}

impl Tasks {
    fn spawn(
        &mut self,
        idx: usize,
        task: impl Future<Output = Done> + Send + 'static,
    ) -> AbortHandle {
        let handle = self.set.spawn(task);
        self.owner.insert(handle.id(), idx);
        handle
    }

    fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The next task to end: what it reported, or the instance whose task died.
    async fn next(&mut self) -> Option<Result<Done, (usize, JoinError)>> {
        loop {
            match self.set.join_next_with_id().await? {
                Ok((id, done)) => {
                    self.owner.remove(&id);
                    return Some(Ok(done));
                }
                Err(e) => {
                    if let Some(idx) = self.owner.remove(&e.id()) {
                        return Some(Err((idx, e)));
                    }
                }
            }
        }
    }

    fn abort_all(&mut self) {
        self.set.abort_all();
    }
}

/// Runs the plan to the end, reporting on `events`. `cancel` turning true is
/// Ctrl-C. `memory` is asked about every request before it is sent and told
/// of everything that happens to it.
pub async fn run<E: StepExecutor>(
    plan: Arc<Plan>,
    executor: Arc<E>,
    memory: Arc<dyn Memory>,
    config: EngineConfig,
    events: mpsc::UnboundedSender<RunEvent>,
    cancel: watch::Receiver<bool>,
) -> Summary {
    let mut driver = Driver::new(&plan, executor, memory, config, events);
    driver.drive(cancel).await
}

struct Driver<'p, E> {
    plan: &'p Plan,
    graph: Graph<'p>,
    slots: Vec<Slot>,
    rows: Rows,
    /// Queued instances: later steps first (they finish pipelines and free
    /// their inputs), then matrix rows in order.
    ready: BinaryHeap<(usize, Reverse<usize>, Reverse<usize>)>,
    /// Instances whose state is in flight (see [`State::in_flight`]).
    in_flight: usize,
    tasks: Tasks,
    executor: Arc<E>,
    memory: Arc<dyn Memory>,
    config: EngineConfig,
    events: mpsc::UnboundedSender<RunEvent>,
    submit_gate: Arc<Gate>,
    poll_gate: Arc<Gate>,
    /// Bounds the downloads of reused results running at once.
    fetch_slots: Arc<tokio::sync::Semaphore>,
    rng: StdRng,
    budget: Budget,
    /// Counts so far, and why the run stopped (if it did).
    summary: Summary,
}

impl<'p, E: StepExecutor> Driver<'p, E> {
    fn new(
        plan: &'p Plan,
        executor: Arc<E>,
        memory: Arc<dyn Memory>,
        config: EngineConfig,
        events: mpsc::UnboundedSender<RunEvent>,
    ) -> Self {
        let (graph, created) = Graph::new(plan);
        let mut driver = Driver {
            plan,
            graph,
            slots: Vec::new(),
            rows: Rows::new(plan.instances.len()),
            ready: BinaryHeap::new(),
            in_flight: 0,
            tasks: Tasks::default(),
            executor,
            memory,
            submit_gate: Arc::new(Gate::new(config.submit_period())),
            poll_gate: Arc::new(Gate::new(config.poll_period())),
            fetch_slots: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight.max(1))),
            rng: StdRng::seed_from_u64(config.seed),
            budget: Budget::new(config.max_credits),
            config,
            events,
            summary: Summary::default(),
        };
        driver.created(created);
        driver
    }

    fn emit(&self, event: RunEvent) {
        let _ = self.events.send(event);
    }

    /// Moves instance `idx` to `state`, keeping the in-flight count; returns its old state.
    fn set_state(&mut self, idx: usize, state: State) -> State {
        let now = state.in_flight();
        let old = std::mem::replace(&mut self.slots[idx].state, state);
        match (old.in_flight(), now) {
            (false, true) => self.in_flight += 1,
            (true, false) => self.in_flight -= 1,
            _ => {}
        }
        old
    }

    /// Reports new instances and queues them (placeholders are reported as skipped).
    fn created(&mut self, created: Vec<usize>) {
        self.slots.resize_with(self.graph.len(), Slot::default);
        for idx in created {
            let step = self.graph.step(idx);
            let id = self.graph.id(idx).clone();
            self.emit(RunEvent::Created {
                id: id.clone(),
                action: step.action,
                operation: step.operation,
                planned_credits: step.unit_credits,
            });
            let placeholder = match self.graph.standing(idx) {
                super::graph::Standing::Skipped(reason) => Some(reason.clone()),
                _ => None,
            };
            match placeholder {
                Some(_) if step.scope == Scope::Out => {
                    self.slots[idx].state = State::Done;
                    self.summary.unselected += 1;
                    let reason = "not selected (`--select` / `--exclude`)".to_owned();
                    self.emit(RunEvent::Skipped { id, reason });
                }
                Some(reason) => {
                    self.slots[idx].state = State::Done;
                    self.summary.skipped += 1;
                    self.emit(RunEvent::Skipped { id, reason });
                }
                None => self.rows.wait(id.row, idx),
            }
        }
    }

    async fn drive(&mut self, mut cancel: watch::Receiver<bool>) -> Summary {
        let mut grace_deadline: Option<Instant> = None;
        let mut cancel_open = true;
        loop {
            self.settle();
            let next_slot = self.dispatch();
            if self.tasks.is_empty() && next_slot.is_none() {
                break;
            }
            let grace = grace_deadline;
            let slot = next_slot.map(|d| Instant::now() + d);
            tokio::select! {
                joined = self.tasks.next(), if !self.tasks.is_empty() => self.joined(joined),
                _ = sleep_until_opt(slot), if slot.is_some() => {}
                changed = cancel.changed(), if cancel_open => {
                    if changed.is_err() {
                        cancel_open = false;
                    } else if *cancel.borrow() {
                        cancel_open = false;
                        self.interrupt();
                        grace_deadline = Some(Instant::now() + self.config.grace);
                    }
                }
                _ = sleep_until_opt(grace), if grace.is_some() => {
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        self.finish()
    }

    /// Ctrl-C: nothing new is sent, and the run ends as interrupted (resumable)
    /// whatever else stopped it first.
    fn interrupt(&mut self) {
        self.stop(StopReason::Interrupted);
        self.summary.stopped = Some(StopReason::Interrupted);
    }

    /// The reason the run stopped, as skipped instances quote it.
    fn stopped_because(&self) -> Option<String> {
        self.summary.stopped.as_ref().map(ToString::to_string)
    }

    /// Expands fan-outs and moves waiting instances to ready or skipped.
    fn settle(&mut self) {
        while let Some(row) = self.rows.next_dirty() {
            let created = self.graph.expand(row);
            self.created(created);
            for idx in self.rows.take(row) {
                if self.graph.step(idx).scope == Scope::Out {
                    self.unselect(idx);
                    continue;
                }
                if let Some(reason) = self.stopped_because() {
                    self.skip(idx, format!("not started: the run stopped ({reason})"));
                    continue;
                }
                match self.graph.readiness(idx) {
                    Readiness::Ready => self.make_ready(idx),
                    Readiness::Wait => self.rows.keep_waiting(row, idx),
                    Readiness::Blocked(reason) => self.skip(idx, reason),
                }
            }
        }
    }

    /// Carries out the decision about an instance whose dependencies are done.
    fn make_ready(&mut self, idx: usize) {
        match decide(self.plan, &self.graph, idx, &*self.memory) {
            Decision::Unresolved(message) => {
                self.fail_with(idx, None, StepError::new(ErrorKind::Invalid, message), 0);
            }
            Decision::Excluded(_) => self.skip(
                idx,
                "only reused in this run (excluded, or needed only by excluded steps), and no earlier run has its result".to_owned(),
            ),
            Decision::Send(job) => {
                self.set_state(idx, State::Queued(job));
                let id = self.graph.id(idx);
                self.ready.push((id.step, Reverse(id.row), Reverse(idx)));
            }
            Decision::Reuse {
                job,
                outputs,
                from,
                credits,
            } => self.reuse(idx, job, outputs, from, credits),
            Decision::Attach {
                job,
                task,
                from,
                credits,
            } => self.attach(idx, job, task, credits, from),
            Decision::InDoubt { job, from, since } => self.in_doubt(idx, job, from, since),
        }
    }

    /// A request sent before with no recorded answer fails unsent.
    fn in_doubt(&mut self, idx: usize, job: Job, from: Option<String>, since: String) {
        let run = match &from {
            Some(run) => format!("in run `{run}`"),
            None => {
                // Charged, as far as anyone knows, by this run's earlier process.
                self.budget.charge(self.graph.step(idx).unit_credits);
                "earlier in this run".to_owned()
            }
        };
        let message = format!(
            "sent {run} at {since} and no answer was recorded; it may have been charged, so it is not sent again (pass `--resend-in-doubt` to pay for it again)"
        );
        let mut error = StepError::new(ErrorKind::InDoubt, message);
        error.charged = from.is_none();
        self.fail_with(idx, Some(job), error, 0);
    }

    /// Takes an earlier run's result for the instance: nothing is sent. A
    /// result without files, when this run downloads, gets its files first.
    fn reuse(
        &mut self,
        idx: usize,
        job: Job,
        outputs: Outputs,
        from: Option<String>,
        credits: u64,
    ) {
        if !(outputs.files.is_empty() && self.executor.wants_files()) {
            return self.reused(idx, job, outputs, from, credits);
        }
        let executor = Arc::clone(&self.executor);
        let slots = Arc::clone(&self.fetch_slots);
        let (fetch_job, value) = (job.clone(), outputs.clone());
        let abort = self.tasks.spawn(idx, async move {
            // Downloads of reused results share the in-flight limit's width.
            let _slot = slots.acquire_owned().await;
            Done::Fetched {
                idx,
                result: executor.fetch(&fetch_job, value).await,
            }
        });
        let fetching = Fetching {
            job,
            from,
            credits,
            outputs,
            abort,
        };
        self.set_state(idx, State::Fetching(fetching));
    }

    /// A reused result's files were fetched, or not (the download failed,
    /// its task ended abnormally, or the run stopped). Then this run's own
    /// result, already paid and journaled, is kept without its files:
    /// failing it would have the next resume pay for it again. Another run's
    /// result is skipped if the run stopped and fails the instance otherwise;
    /// either way it stays reusable for a later run.
    fn fetched(&mut self, idx: usize, result: Result<Outputs, StepError>) {
        if !matches!(self.slots[idx].state, State::Fetching(_)) {
            return;
        }
        let State::Fetching(f) = self.set_state(idx, State::Done) else {
            return;
        };
        match result {
            Ok(outputs) => self.reused(idx, f.job, outputs, f.from, f.credits),
            Err(_) if f.from.is_none() => self.reused(idx, f.job, f.outputs, None, f.credits),
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

    fn reused(
        &mut self,
        idx: usize,
        job: Job,
        outputs: Outputs,
        from: Option<String>,
        credits: u64,
    ) {
        if from.is_some() {
            self.summary.reused += 1;
        }
        self.budget.charge(credits);
        self.emit(RunEvent::Reused {
            id: job.id.clone(),
            request_hash: job.request_hash.clone(),
            from: from.clone(),
            credits,
            outputs: outputs.clone(),
        });
        self.succeed_with(idx, job, outputs, Some(from.as_deref().unwrap_or("")), 0);
    }

    /// Polls a task accepted by an earlier attempt instead of sending the request again.
    fn attach(&mut self, idx: usize, job: Job, task: TaskRef, credits: u64, from: Option<String>) {
        self.summary.attached += 1;
        self.budget.charge(credits);
        self.emit(RunEvent::Attached {
            id: job.id.clone(),
            request_hash: job.request_hash.clone(),
            task_id: task.id.clone(),
            credits,
            from,
        });
        self.slots[idx].first_sent.get_or_insert(Instant::now());
        self.start_polling(idx, job, task, credits, Duration::ZERO);
    }

    /// The instance's task is followed from now on, first asked after `delay`.
    /// It must finish within the poll timeout of now, and within the step
    /// timeout of the instance's first request.
    fn start_polling(
        &mut self,
        idx: usize,
        job: Job,
        task: TaskRef,
        charged: u64,
        delay: Duration,
    ) {
        let step = self.graph.step(idx);
        let mut deadline = Instant::now() + self.config.scale(step.poll.timeout);
        if let (Some(timeout), Some(first)) = (step.timeout, self.slots[idx].first_sent) {
            deadline = deadline.min(first + self.config.scale(timeout));
        }
        let polling = Polling {
            job,
            task,
            charged,
            deadline,
        };
        self.set_state(idx, State::Polling(polling));
        self.poll(idx, delay);
    }

    /// Leaves out an instance of a step `--select` / `--exclude` did not keep.
    fn unselect(&mut self, idx: usize) {
        let id = self.graph.id(idx).clone();
        self.rows.mark(id.row);
        self.graph.skip(idx, "not selected");
        self.set_state(idx, State::Done);
        self.summary.unselected += 1;
        let reason = "not selected (`--select` / `--exclude`)".to_owned();
        self.emit(RunEvent::Skipped { id, reason });
    }

    fn skip(&mut self, idx: usize, reason: String) {
        let id = self.graph.id(idx).clone();
        self.rows.mark(id.row);
        self.graph.skip(idx, reason.clone());
        self.set_state(idx, State::Done);
        self.summary.skipped += 1;
        self.emit(RunEvent::Skipped { id, reason });
    }

    /// Sends queued instances while there is room in flight and the submit
    /// quota has a slot; returns how long until the next slot if it has none.
    fn dispatch(&mut self) -> Option<Duration> {
        while self.in_flight < self.config.max_in_flight.max(1) {
            let &(_, _, Reverse(idx)) = self.ready.peek()?;
            if let Some(reason) = self.stopped_because() {
                self.ready.pop();
                self.skip(idx, format!("not started: the run stopped ({reason})"));
                continue;
            }
            let unit = self.graph.step(idx).unit_credits;
            let name = self.graph.id(idx).to_string();
            if let Some(over) = self.budget.would_cross(&name, unit) {
                self.stop(over);
                continue;
            }
            if let Err(wait) = self.submit_gate.try_acquire() {
                return Some(wait);
            }
            self.ready.pop();
            self.send(idx);
        }
        None
    }

    fn send(&mut self, idx: usize) {
        let State::Queued(job) = self.set_state(idx, State::Done) else {
            return;
        };
        // The intent must be durable before the request leaves: a crash
        // after this line leaves the submit in doubt, never forgotten.
        if let Err(e) = self.memory.record(Record::Intent { job: &job }) {
            let message = format!("not sent: the journal could not record it ({e})");
            self.fail_with(idx, Some(job), StepError::new(ErrorKind::Local, message), 0);
            self.stop(StopReason::Journal { error: None });
            return;
        }
        self.budget.reserve(self.graph.step(idx).unit_credits);
        self.slots[idx].first_sent.get_or_insert(Instant::now());
        self.emit(RunEvent::Submitting {
            id: job.id.clone(),
            attempt: job.attempt,
            request_hash: job.request_hash.clone(),
            fields: serde_json::Value::Object(job.fields.clone()),
        });
        let executor = Arc::clone(&self.executor);
        let gate = Arc::clone(&self.submit_gate);
        let sent = job.clone();
        self.set_state(idx, State::Submitting(job));
        self.tasks.spawn(idx, async move {
            tokio::time::sleep_until(gate.reserve_send()).await;
            Done::Submit {
                idx,
                result: executor.submit(&sent).await,
            }
        });
    }

    fn poll(&mut self, idx: usize, delay: Duration) {
        let State::Polling(p) = &self.slots[idx].state else {
            return;
        };
        let (job, task) = (p.job.clone(), p.task.clone());
        let executor = Arc::clone(&self.executor);
        let gate = Arc::clone(&self.poll_gate);
        self.tasks.spawn(idx, async move {
            tokio::time::sleep(delay).await;
            gate.acquire().await;
            Done::Poll {
                idx,
                result: executor.poll(&job, &task).await,
            }
        });
    }

    fn joined(&mut self, joined: Option<Result<Done, (usize, JoinError)>>) {
        match joined {
            Some(Ok(Done::Submit { idx, result })) => self.submitted(idx, result),
            Some(Ok(Done::Poll { idx, result })) => self.polled(idx, result),
            Some(Ok(Done::Fetched { idx, result })) => self.fetched(idx, result),
            Some(Ok(Done::RetryDue { idx })) => self.retry_due(idx),
            Some(Err((idx, e))) => {
                if matches!(self.slots[idx].state, State::Fetching(_)) {
                    let message = format!("the download of its files ended abnormally: {e}");
                    return self.fetched(idx, Err(StepError::new(ErrorKind::Local, message)));
                }
                let message = format!("the step's task ended abnormally: {e}");
                self.fail(idx, StepError::new(ErrorKind::Local, message), 0);
            }
            None => {}
        }
    }

    fn retry_due(&mut self, idx: usize) {
        if let Some(reason) = self.stopped_because() {
            return self.skip(idx, format!("retry not sent: the run stopped ({reason})"));
        }
        if let State::BackingOff(job) = self.set_state(idx, State::Done) {
            self.set_state(idx, State::Queued(job));
            let id = self.graph.id(idx);
            self.ready.push((id.step, Reverse(id.row), Reverse(idx)));
        }
    }

    fn submitted(&mut self, idx: usize, result: Result<Submission, StepError>) {
        let unit = self.graph.step(idx).unit_credits;
        self.budget.settle(unit);
        let State::Submitting(job) = self.set_state(idx, State::Done) else {
            return;
        };
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
        self.submit_gate.speed_up(1.002);
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
                let poll = &self.graph.step(idx).poll;
                let first = self.config.scale(poll.initial_delay);
                let delay = backoff::jittered(first, poll.jitter, &mut self.rng);
                self.start_polling(idx, job, task, unit, delay);
            }
        }
    }

    /// What [`react`] weighs for instance `idx` at `attempt`.
    fn situation(&self, idx: usize, attempt: u32, retry_after: Option<Duration>) -> Situation<'p> {
        let step = self.graph.step(idx);
        Situation {
            retry: &step.retry,
            poll: &step.poll,
            attempt,
            throttles: self.slots[idx].throttles,
            retry_after,
            overdue: false,
            stopping: self.summary.stopped.is_some(),
            any_accepted: self.summary.submits > 0,
            time_scale: self.config.time_scale,
        }
    }

    fn submit_failed(&mut self, idx: usize, job: Job, error: StepError) {
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
                self.submit_gate.pause(delay);
                self.submit_gate.slow_down(1.02);
                self.emit(RunEvent::Throttled {
                    delay_ms: delay.as_millis() as u64,
                });
                self.retry(idx, job, error, delay, 0, false);
            }
            Reaction::Retry { delay } => self.retry(idx, job, error, delay, 0, true),
            Reaction::FailAndStop(reason) => self.fail_and_stop(idx, job, error, reason),
            Reaction::Fail | Reaction::Repoll { .. } | Reaction::Timeout => {
                if error.charged {
                    // In doubt: as far as anyone knows, it was paid for.
                    self.budget.charge(self.graph.step(idx).unit_credits);
                }
                self.fail_with(idx, Some(job), error, 0);
            }
        }
    }

    fn fail_and_stop(&mut self, idx: usize, job: Job, error: StepError, reason: StopReason) {
        let abandon = reason.abandons_in_flight();
        self.fail_with(idx, Some(job), error, 0);
        self.stop(reason);
        if abandon {
            self.tasks.abort_all();
        }
    }

    /// Sends the same request again after `delay`, through the submit queue;
    /// `counts` when it uses up an attempt.
    fn retry(
        &mut self,
        idx: usize,
        mut job: Job,
        error: StepError,
        delay: Duration,
        refunded: u64,
        counts: bool,
    ) {
        if counts {
            job.attempt += 1;
        }
        self.emit(RunEvent::Retrying {
            id: job.id.clone(),
            attempt: job.attempt,
            error,
            delay_ms: delay.as_millis() as u64,
            refunded,
        });
        self.set_state(idx, State::BackingOff(job));
        self.tasks.spawn(idx, async move {
            tokio::time::sleep(delay).await;
            Done::RetryDue { idx }
        });
    }

    fn polled(&mut self, idx: usize, result: Result<PollOutcome, StepError>) {
        self.summary.polls += 1;
        let State::Polling(p) = self.set_state(idx, State::Done) else {
            return;
        };
        let (trouble, retry_after) = match &result {
            Ok(PollOutcome::Done(_)) => (None, None),
            Ok(PollOutcome::Pending) => (Some(Trouble::Pending), None),
            Ok(PollOutcome::Failed { .. }) => (Some(Trouble::TaskFailed), None),
            Err(e) => (Some(Trouble::Poll(e.kind)), e.retry_after),
        };
        let Some(trouble) = trouble else {
            if let Ok(PollOutcome::Done(outputs)) = result {
                self.succeed_with(idx, p.job, outputs, None, 0);
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
        let error = result.err();
        match (react(trouble, &situation, &mut self.rng), error) {
            (Reaction::Repoll { delay }, _) => {
                self.set_state(idx, State::Polling(p));
                self.poll(idx, delay);
            }
            (Reaction::Timeout, _) => {
                let message = format!(
                    "task `{}` did not finish in time; it was paid for and may still finish",
                    p.task.id
                );
                let error = StepError::new(ErrorKind::Timeout, message);
                self.fail_with(idx, Some(p.job), error, 0);
            }
            (Reaction::FailAndStop(reason), Some(error)) => {
                self.fail_and_stop(idx, p.job, error, reason);
            }
            (_, error) => {
                let error = error.unwrap_or_else(|| StepError::new(ErrorKind::Local, "no answer"));
                self.fail_with(idx, Some(p.job), error, 0);
            }
        }
    }

    /// The remote task failed. The service refunds whoever paid: this run,
    /// or the run the task came from.
    fn task_failed(&mut self, idx: usize, p: Polling, message: String) {
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
            Reaction::Retry { delay } => self.retry(idx, p.job, error, delay, refunded, true),
            _ => self.fail_with(idx, Some(p.job), error, refunded),
        }
    }

    /// `credits`: what a synchronous call that just succeeded was charged.
    fn succeed_with(
        &mut self,
        idx: usize,
        job: Job,
        outputs: Outputs,
        reused_from: Option<&str>,
        credits: u64,
    ) {
        let record = Record::Succeeded {
            job: &job,
            outputs: &outputs,
            reused_from,
            credits,
        };
        if let Err(e) = self.memory.record(record) {
            self.stop(StopReason::Journal { error: Some(e) });
        }
        self.set_state(idx, State::Done);
        self.rows.mark(job.id.row);
        self.summary.succeeded += 1;
        self.graph.succeed(idx, outputs.value.clone());
        if reused_from.is_none() {
            self.emit(RunEvent::Succeeded {
                id: job.id,
                outputs,
            });
        }
    }

    /// Fails the instance with whatever request it has.
    fn fail(&mut self, idx: usize, error: StepError, refunded: u64) {
        let job = match self.set_state(idx, State::Done) {
            State::Queued(job) | State::Submitting(job) | State::BackingOff(job) => Some(job),
            State::Polling(p) => Some(p.job),
            State::Fetching(f) => Some(f.job),
            State::Waiting | State::Done => None,
        };
        self.fail_with(idx, job, error, refunded);
    }

    fn fail_with(&mut self, idx: usize, job: Option<Job>, error: StepError, refunded: u64) {
        if let Some(job) = &job
            && let Err(e) = self.memory.record(Record::Failed { job, error: &error })
        {
            self.stop(StopReason::Journal { error: Some(e) });
        }
        self.set_state(idx, State::Done);
        let id = self.graph.id(idx).clone();
        self.rows.mark(id.row);
        self.summary.failed += 1;
        self.graph.fail(idx);
        let attempt = job.map_or(1, |j| j.attempt.max(1));
        self.emit(RunEvent::Failed {
            id,
            attempt,
            error,
            refunded,
        });
        if self.config.fail_fast {
            self.stop(StopReason::FailFast);
        }
    }

    /// Stops new submits; what is in flight is still followed.
    fn stop(&mut self, reason: StopReason) {
        if self.summary.stopped.is_some() {
            return;
        }
        let text = reason.to_string();
        self.summary.stopped = Some(reason.clone());
        self.emit(RunEvent::Stopping { reason });
        for slot in &self.slots {
            if let State::Fetching(f) = &slot.state {
                f.abort.abort();
            }
        }
        while let Some((_, _, Reverse(idx))) = self.ready.pop() {
            self.skip(idx, format!("not started: the run stopped ({text})"));
        }
        let placeholders = self
            .graph
            .abandon_pending(&format!("not started: the run stopped ({text})"));
        self.created(placeholders);
        self.rows.mark_all();
    }

    fn finish(&mut self) -> Summary {
        // Downloads cut short when the grace period ran out.
        for idx in 0..self.slots.len() {
            if matches!(self.slots[idx].state, State::Fetching(_)) {
                let error = StepError::new(ErrorKind::Local, "the run ended first");
                self.fetched(idx, Err(error));
            }
        }
        let placeholders = self.graph.abandon_pending("its list was never produced");
        self.created(placeholders);
        for idx in self.rows.take_all() {
            if matches!(self.slots[idx].state, State::Waiting) {
                let reason = self.stopped_because().map_or_else(
                    || "its dependencies never finished".to_owned(),
                    |r| format!("not started: the run stopped ({r})"),
                );
                self.skip(idx, reason);
            }
        }
        self.summary.credits_charged = self.budget.charged();
        self.summary.credits_refunded = self.budget.refunded();
        let summary = self.summary.clone();
        self.emit(RunEvent::Finished {
            summary: summary.clone(),
        });
        summary
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
