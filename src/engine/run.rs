//! The driver: dispatches ready instances under the limits, follows each
//! through submit, polls and retries, and reports every step as an event.
//!
//! One loop owns all state; submits and polls run as tasks that report back
//! through a `JoinSet`, so no state is shared between tasks beyond the gates.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, watch};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

use super::backoff;
use super::gate::Gate;
use super::graph::{Graph, Readiness};
use super::{
    ErrorKind, Job, Memory, Outputs, PollOutcome, Recall, Record, RunEvent, Status, StepError,
    StepExecutor, Submission, Summary, TaskRef,
};
use crate::plan::hash::request_hash;
use crate::plan::{Plan, Scope};

/// How a run is paced. Durations in the plan are divided by `time_scale`.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub max_in_flight: usize,
    pub submits_per_minute: u32,
    pub polls_per_second: u32,
    /// Divides every duration (poll schedule, backoff, quotas, timeouts).
    pub time_scale: f64,
    /// Stop submitting after the first failure.
    pub fail_fast: bool,
    /// After Ctrl-C, how long to keep polling what is in flight (already scaled).
    pub grace: Duration,
    /// Seeds the jitter.
    pub seed: u64,
    /// Extra spacing between submits, as a fraction of the quota's period, so
    /// that network jitter never makes two submits arrive too close together.
    pub submit_margin: f64,
    /// Credits the run may commit at most; a submit that would cross it is not sent.
    pub max_credits: Option<u64>,
}

impl EngineConfig {
    /// The plan's limits at the given time scale.
    pub fn from_plan(plan: &Plan, time_scale: f64) -> EngineConfig {
        let time_scale = if time_scale > 0.0 { time_scale } else { 1.0 };
        EngineConfig {
            max_in_flight: plan.limits.max_in_flight as usize,
            submits_per_minute: plan.limits.submits_per_minute,
            polls_per_second: plan.limits.polls_per_second,
            time_scale,
            fail_fast: false,
            // Long enough for a song in flight to finish; a second Ctrl-C stops at once.
            grace: Duration::from_secs(600).div_f64(time_scale),
            seed: 0,
            submit_margin: 0.05,
            max_credits: plan.max_credits,
        }
    }

    fn scale(&self, d: Duration) -> Duration {
        d.div_f64(self.time_scale)
    }
}

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

/// Per-instance progress the graph does not track.
#[derive(Default)]
struct Progress {
    attempt: u32,
    throttles: u32,
    job: Option<Job>,
    task: Option<TaskRef>,
    /// When the current task must have finished.
    deadline: Option<Instant>,
    /// When the first request of this instance was sent (for the step timeout).
    first_sent: Option<Instant>,
    /// Whether remote work of this instance is outstanding (counted in `in_flight`).
    in_flight: bool,
    /// Credits this run paid for the current task (0 for a task of another run).
    charged: u64,
    /// A reused result whose files are being downloaded.
    fetching: Option<Fetching>,
}

/// A reused result waiting for its files.
struct Fetching {
    from: Option<String>,
    credits: u64,
    outputs: Outputs,
    abort: tokio::task::AbortHandle,
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
    progress: Vec<Progress>,
    executor: Arc<E>,
    memory: Arc<dyn Memory>,
    config: EngineConfig,
    events: mpsc::UnboundedSender<RunEvent>,
    submit_gate: Arc<Gate>,
    poll_gate: Arc<Gate>,
    stopping: Arc<AtomicBool>,
    stop_reason: Option<String>,
    ready: BinaryHeap<(usize, Reverse<usize>, Reverse<usize>)>,
    /// Instances waiting for their dependencies, per matrix row.
    waiting: Vec<Vec<usize>>,
    /// Rows where something changed since they were last examined.
    dirty: Vec<bool>,
    dirty_rows: Vec<usize>,
    in_flight: usize,
    tasks: JoinSet<Done>,
    task_owner: HashMap<Id, usize>,
    /// Bounds the downloads of reused results running at once.
    fetch_slots: Arc<tokio::sync::Semaphore>,
    rng: StdRng,
    summary: Summary,
    any_accepted: bool,
    /// Credits of submits sent and not yet answered.
    reserved: u64,
}

impl<'p, E: StepExecutor> Driver<'p, E> {
    fn new(
        plan: &'p Plan,
        executor: Arc<E>,
        memory: Arc<dyn Memory>,
        config: EngineConfig,
        events: mpsc::UnboundedSender<RunEvent>,
    ) -> Self {
        let submit_period = (config.submits_per_minute > 0).then(|| {
            config
                .scale(Duration::from_secs(60) / config.submits_per_minute)
                .mul_f64(1.0 + config.submit_margin.max(0.0))
        });
        let poll_period = (config.polls_per_second > 0)
            .then(|| config.scale(Duration::from_secs(1) / config.polls_per_second));
        let (graph, created) = Graph::new(plan);
        let fetch_slots = Arc::new(tokio::sync::Semaphore::new(config.max_in_flight.max(1)));
        let mut driver = Driver {
            plan,
            graph,
            progress: Vec::new(),
            executor,
            memory,
            rng: StdRng::seed_from_u64(config.seed),
            config,
            events,
            submit_gate: Arc::new(Gate::new(submit_period)),
            poll_gate: Arc::new(Gate::new(poll_period)),
            stopping: Arc::new(AtomicBool::new(false)),
            stop_reason: None,
            ready: BinaryHeap::new(),
            waiting: vec![Vec::new(); plan.instances.len()],
            dirty: vec![false; plan.instances.len()],
            dirty_rows: Vec::new(),
            in_flight: 0,
            tasks: JoinSet::new(),
            task_owner: HashMap::new(),
            fetch_slots,
            summary: Summary::default(),
            any_accepted: false,
            reserved: 0,
        };
        driver.created(created);
        driver
    }

    fn emit(&self, event: RunEvent) {
        let _ = self.events.send(event);
    }

    /// Reports new instances and queues them (placeholders are reported as skipped).
    fn created(&mut self, created: Vec<usize>) {
        for idx in created {
            self.progress
                .resize_with(self.graph.insts.len(), Progress::default);
            let step = self.graph.step(idx);
            let inst = &self.graph.insts[idx];
            self.emit(RunEvent::Created {
                id: inst.id.clone(),
                action: step.action,
                operation: step.operation,
                planned_credits: step.unit_credits,
            });
            match inst.status {
                Status::Skipped if step.scope == Scope::Out => {
                    self.summary.unselected += 1;
                    self.emit(RunEvent::Skipped {
                        id: inst.id.clone(),
                        reason: "not selected (`--select` / `--exclude`)".to_owned(),
                    });
                }
                Status::Skipped => {
                    let reason = inst.skip_reason.clone().unwrap_or_default();
                    self.summary.skipped += 1;
                    self.emit(RunEvent::Skipped {
                        id: inst.id.clone(),
                        reason,
                    });
                }
                _ => {
                    let row = inst.id.row;
                    self.waiting[row].push(idx);
                    self.mark_dirty(row);
                }
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
                joined = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => self.joined(joined),
                _ = sleep_until_opt(slot), if slot.is_some() => {}
                changed = cancel.changed(), if cancel_open => {
                    if changed.is_err() {
                        cancel_open = false;
                    } else if *cancel.borrow() {
                        cancel_open = false;
                        self.summary.interrupted = true;
                        self.stop("interrupted");
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

    /// Expands fan-outs and moves waiting instances to ready or skipped.
    fn settle(&mut self) {
        while let Some(row) = self.dirty_rows.pop() {
            self.dirty[row] = false;
            let created = self.graph.expand(row);
            self.created(created);
            for idx in std::mem::take(&mut self.waiting[row]) {
                if self.graph.step(idx).scope == Scope::Out {
                    self.unselect(idx);
                    continue;
                }
                if let Some(reason) = self.stop_reason.clone() {
                    self.skip(idx, format!("not started: the run stopped ({reason})"));
                    continue;
                }
                match self.graph.readiness(idx) {
                    Readiness::Ready => {
                        self.make_ready(idx);
                    }
                    Readiness::Wait => self.waiting[row].push(idx),
                    Readiness::Blocked(reason) => self.skip(idx, reason),
                }
            }
        }
    }

    /// Something changed in `row`: its waiting instances and fan-outs are examined again.
    fn mark_dirty(&mut self, row: usize) {
        if let Some(flag) = self.dirty.get_mut(row)
            && !*flag
        {
            *flag = true;
            self.dirty_rows.push(row);
        }
    }

    /// Resolves the instance's request and queues it; a request that cannot
    /// be resolved fails the instance (returns true then).
    fn make_ready(&mut self, idx: usize) -> bool {
        let fields = match self.graph.resolve_fields(idx) {
            Ok(f) => f,
            Err(message) => {
                self.fail(idx, StepError::new(ErrorKind::Invalid, message), 0);
                return true;
            }
        };
        let step = self.graph.step(idx);
        let job = Job {
            id: self.graph.insts[idx].id.clone(),
            action: step.action,
            operation: step.operation,
            request_hash: request_hash(step.operation, &fields, &self.plan.prices.version()),
            fields,
            attempt: 1,
        };
        let recall = self.memory.recall(&job);
        let p = &mut self.progress[idx];
        p.attempt = 1;
        p.job = Some(job);
        match recall {
            Recall::New if !step.scope.may_submit() => self.skip(
                idx,
                "only reused in this run (excluded, or needed only by excluded steps), and no earlier run has its result".to_owned(),
            ),
            Recall::New => self.queue(idx),
            Recall::Reuse {
                outputs,
                from,
                credits,
            } => self.reuse(idx, outputs, from, credits),
            Recall::Attach {
                task,
                credits,
                from,
            } => self.attach(idx, task, credits, from),
            Recall::InDoubt { from, since } => {
                let run = match &from {
                    Some(run) => format!("in run `{run}`"),
                    None => {
                        // Charged, as far as anyone knows, by this run's earlier process.
                        self.summary.credits_charged += step.unit_credits;
                        "earlier in this run".to_owned()
                    }
                };
                let message = format!(
                    "sent {run} at {since} and no answer was recorded; it may have been charged, so it is not sent again (pass `--resend-in-doubt` to pay for it again)"
                );
                let mut error = StepError::new(ErrorKind::InDoubt, message);
                error.charged = from.is_none();
                self.fail(idx, error, 0);
            }
        }
        false
    }

    /// Takes an earlier run's result for the instance: nothing is sent. A
    /// result without files, when this run downloads, gets its files first.
    fn reuse(&mut self, idx: usize, outputs: Outputs, from: Option<String>, credits: u64) {
        let Some(job) = self.progress[idx].job.clone() else {
            return;
        };
        if outputs.files.is_empty() && self.executor.wants_files() {
            self.graph.insts[idx].status = Status::Running;
            let executor = Arc::clone(&self.executor);
            let slots = Arc::clone(&self.fetch_slots);
            let value = outputs.clone();
            let handle = self.tasks.spawn(async move {
                // Downloads of reused results share the in-flight limit's width.
                let _slot = slots.acquire_owned().await;
                Done::Fetched {
                    idx,
                    result: executor.fetch(&job, value).await,
                }
            });
            self.task_owner.insert(handle.id(), idx);
            self.progress[idx].fetching = Some(Fetching {
                from,
                credits,
                outputs,
                abort: handle,
            });
            return;
        }
        self.reused(idx, outputs, from, credits);
    }

    /// A reused result's files were fetched, or not (the download failed,
    /// its task ended abnormally, or the run stopped). Then this run's own
    /// result, already paid and journaled, is kept without its files:
    /// failing it would have the next resume pay for it again. Another run's
    /// result is skipped if the run stopped and fails the instance otherwise;
    /// either way it stays reusable for a later run.
    fn fetched(&mut self, idx: usize, result: Result<Outputs, StepError>) {
        let Some(f) = self.progress[idx].fetching.take() else {
            return;
        };
        match result {
            Ok(outputs) => self.reused(idx, outputs, f.from, f.credits),
            Err(_) if f.from.is_none() => self.reused(idx, f.outputs, None, f.credits),
            Err(_) if self.stop_reason.is_some() => {
                let reason = self.stop_reason.clone().unwrap_or_default();
                self.skip(
                    idx,
                    format!("files not fetched: the run stopped ({reason})"),
                );
            }
            Err(error) => self.fail(idx, error, 0),
        }
    }

    /// Stops the downloads of reused results still going (the run is stopping).
    fn abort_fetches(&mut self) {
        for p in &self.progress {
            if let Some(f) = &p.fetching {
                f.abort.abort();
            }
        }
    }

    fn reused(&mut self, idx: usize, outputs: Outputs, from: Option<String>, credits: u64) {
        let Some(job) = self.progress[idx].job.clone() else {
            return;
        };
        if from.is_some() {
            self.summary.reused += 1;
        }
        self.summary.credits_charged += credits;
        self.emit(RunEvent::Reused {
            id: job.id.clone(),
            request_hash: job.request_hash.clone(),
            from: from.clone(),
            credits,
            outputs: outputs.clone(),
        });
        let reused = from
            .as_deref()
            .map_or(super::Reused::ThisRun, super::Reused::Run);
        self.succeed_with(idx, outputs, Some(reused), 0);
    }

    /// Polls a task accepted by an earlier attempt instead of sending the request again.
    fn attach(&mut self, idx: usize, task: TaskRef, credits: u64, from: Option<String>) {
        let Some(job) = self.progress[idx].job.clone() else {
            return;
        };
        self.summary.attached += 1;
        self.summary.credits_charged += credits;
        self.emit(RunEvent::Attached {
            id: job.id.clone(),
            request_hash: job.request_hash.clone(),
            task_id: task.id.clone(),
            credits,
            from,
        });
        let p = &mut self.progress[idx];
        p.first_sent.get_or_insert(Instant::now());
        p.in_flight = true;
        p.charged = credits;
        p.task = Some(task);
        self.in_flight += 1;
        self.graph.insts[idx].status = Status::Running;
        self.set_deadline(idx);
        self.poll(idx, Duration::ZERO);
    }

    /// Leaves out an instance of a step `--select` / `--exclude` did not keep.
    fn unselect(&mut self, idx: usize) {
        self.mark_dirty(self.graph.insts[idx].id.row);
        self.graph.insts[idx].status = Status::Skipped;
        self.summary.unselected += 1;
        self.emit(RunEvent::Skipped {
            id: self.graph.insts[idx].id.clone(),
            reason: "not selected (`--select` / `--exclude`)".to_owned(),
        });
    }

    /// Credits committed so far: charged and not refunded, plus submits awaiting an answer.
    fn committed(&self) -> u64 {
        (self.summary.credits_charged + self.reserved).saturating_sub(self.summary.credits_refunded)
    }

    /// Puts an instance in the send queue: later steps first (they finish
    /// pipelines and free their inputs), then matrix rows in order.
    fn queue(&mut self, idx: usize) {
        let id = &self.graph.insts[idx].id;
        self.ready.push((id.step, Reverse(id.row), Reverse(idx)));
    }

    fn skip(&mut self, idx: usize, reason: String) {
        self.mark_dirty(self.graph.insts[idx].id.row);
        self.graph.insts[idx].status = Status::Skipped;
        self.summary.skipped += 1;
        self.emit(RunEvent::Skipped {
            id: self.graph.insts[idx].id.clone(),
            reason,
        });
    }

    /// Sends queued instances while there is room in flight and the submit
    /// quota has a slot; returns how long until the next slot if it has none.
    fn dispatch(&mut self) -> Option<Duration> {
        while self.in_flight < self.config.max_in_flight.max(1) {
            let &(_, _, Reverse(idx)) = self.ready.peek()?;
            if let Some(reason) = self.stop_reason.clone() {
                self.ready.pop();
                self.skip(idx, format!("not started: the run stopped ({reason})"));
                continue;
            }
            let unit = self.graph.step(idx).unit_credits;
            if let Some(cap) = self.config.max_credits
                && self.committed() + unit > cap
            {
                let committed = self.committed();
                self.summary.over_budget = true;
                self.stop(&format!(
                    "budget: `{}` needs {unit} credits and {committed} of the {cap}-credit cap are spent or reserved",
                    self.graph.insts[idx].id
                ));
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
        let Some(job) = self.progress[idx].job.clone() else {
            return;
        };
        // The intent must be durable before the request leaves: a crash
        // after this line leaves the submit in doubt, never forgotten.
        if let Err(e) = self.memory.record(Record::Intent { job: &job }) {
            let message = format!("not sent: the journal could not record it ({e})");
            self.fail(idx, StepError::new(ErrorKind::Local, message), 0);
            self.stop("the journal cannot be written");
            return;
        }
        self.reserved += self.graph.step(idx).unit_credits;
        let now = Instant::now();
        let p = &mut self.progress[idx];
        p.first_sent.get_or_insert(now);
        p.in_flight = true;
        self.in_flight += 1;
        self.graph.insts[idx].status = Status::Running;
        self.emit(RunEvent::Submitting {
            id: job.id.clone(),
            attempt: job.attempt,
            request_hash: job.request_hash.clone(),
            fields: serde_json::Value::Object(job.fields.clone()),
        });
        let executor = Arc::clone(&self.executor);
        let gate = Arc::clone(&self.submit_gate);
        let handle = self.tasks.spawn(async move {
            tokio::time::sleep_until(gate.reserve_send()).await;
            Done::Submit {
                idx,
                result: executor.submit(&job).await,
            }
        });
        self.task_owner.insert(handle.id(), idx);
    }

    /// The instance's remote work is over (or waits for a retry).
    fn leave_flight(&mut self, idx: usize) {
        let p = &mut self.progress[idx];
        if p.in_flight {
            p.in_flight = false;
            self.in_flight -= 1;
        }
    }

    fn poll(&mut self, idx: usize, delay: Duration) {
        let (Some(job), Some(task)) = (
            self.progress[idx].job.clone(),
            self.progress[idx].task.clone(),
        ) else {
            return;
        };
        let executor = Arc::clone(&self.executor);
        let gate = Arc::clone(&self.poll_gate);
        let handle = self.tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            gate.acquire().await;
            Done::Poll {
                idx,
                result: executor.poll(&job, &task).await,
            }
        });
        self.task_owner.insert(handle.id(), idx);
    }

    fn joined(&mut self, joined: Option<Result<(Id, Done), tokio::task::JoinError>>) {
        match joined {
            Some(Ok((id, done))) => {
                self.task_owner.remove(&id);
                match done {
                    Done::Submit { idx, result } => self.submitted(idx, result),
                    Done::Poll { idx, result } => self.polled(idx, result),
                    Done::Fetched { idx, result } => self.fetched(idx, result),
                    Done::RetryDue { idx } => match self.stop_reason.clone() {
                        Some(reason) => {
                            self.skip(idx, format!("retry not sent: the run stopped ({reason})"))
                        }
                        None => self.queue(idx),
                    },
                }
            }
            Some(Err(e)) => {
                if let Some(idx) = self.task_owner.remove(&e.id()) {
                    if self.progress[idx].fetching.is_some() {
                        let message = format!("the download of its files ended abnormally: {e}");
                        return self.fetched(idx, Err(StepError::new(ErrorKind::Local, message)));
                    }
                    let error = StepError::new(
                        ErrorKind::Local,
                        format!("the step's task ended abnormally: {e}"),
                    );
                    self.fail(idx, error, 0);
                }
            }
            None => {}
        }
    }

    fn submitted(&mut self, idx: usize, result: Result<Submission, StepError>) {
        let unit = self.graph.step(idx).unit_credits;
        self.reserved = self.reserved.saturating_sub(unit);
        let attempt = self.progress[idx].attempt;
        let id = self.graph.insts[idx].id.clone();
        match result {
            Ok(submission) => {
                if let (Some(job), Submission::Task(task)) =
                    (self.progress[idx].job.clone(), &submission)
                {
                    let accepted = Record::Accepted {
                        job: &job,
                        task: Some(task),
                        credits: unit,
                    };
                    if let Err(e) = self.memory.record(accepted) {
                        // Paid for and followed to the end, but a crash now would lose it.
                        self.stop(&format!("the journal cannot be written ({e})"));
                    }
                }
                self.any_accepted = true;
                // Each accepted submit earns back a tenth of a 429's slow-down.
                self.submit_gate.speed_up(1.002);
                self.summary.submits += 1;
                self.summary.credits_charged += unit;
                match submission {
                    Submission::Done(outputs) => {
                        self.emit(RunEvent::Submitted {
                            id,
                            attempt,
                            task_id: None,
                            credits: unit,
                        });
                        self.succeed_with(idx, outputs, None, unit);
                    }
                    Submission::Task(task) => {
                        self.emit(RunEvent::Submitted {
                            id,
                            attempt,
                            task_id: Some(task.id.clone()),
                            credits: unit,
                        });
                        self.progress[idx].task = Some(task);
                        self.progress[idx].charged = unit;
                        self.set_deadline(idx);
                        let poll = &self.graph.step(idx).poll;
                        let delay = backoff::jittered(
                            self.config.scale(poll.initial_delay),
                            poll.jitter,
                            &mut self.rng,
                        );
                        self.poll(idx, delay);
                    }
                }
            }
            Err(error) => self.submit_failed(idx, error),
        }
    }

    fn submit_failed(&mut self, idx: usize, error: StepError) {
        let step = self.graph.step(idx);
        if !error.charged
            && error.kind != ErrorKind::InDoubt
            && let Some(job) = self.progress[idx].job.clone()
        {
            let released = Record::Released {
                job: &job,
                error: &error,
                refunded: 0,
            };
            if let Err(e) = self.memory.record(released) {
                self.stop(&format!("the journal cannot be written ({e})"));
            }
        }
        match error.kind {
            ErrorKind::RateLimited => {
                let p = &mut self.progress[idx];
                p.throttles += 1;
                let delay = backoff::delay(
                    &step.retry,
                    p.throttles + 1,
                    error.retry_after,
                    &mut self.rng,
                );
                let delay = self
                    .config
                    .scale(delay)
                    .max(error.retry_after.unwrap_or_default());
                if p.throttles > 20 {
                    return self.fail(idx, error, 0);
                }
                self.submit_gate.pause(delay);
                self.submit_gate.slow_down(1.02);
                self.emit(RunEvent::Throttled {
                    delay_ms: delay.as_millis() as u64,
                });
                self.retry(idx, error, delay, 0, false);
            }
            ErrorKind::Transient if self.progress[idx].attempt < step.retry.attempts => {
                let delay = self.config.scale(backoff::delay(
                    &step.retry,
                    self.progress[idx].attempt + 1,
                    error.retry_after,
                    &mut self.rng,
                ));
                self.retry(idx, error, delay, 0, true);
            }
            ErrorKind::InDoubt => {
                self.summary.credits_charged += step.unit_credits;
                self.fail(idx, error, 0);
            }
            ErrorKind::OutOfCredits => {
                self.fail(idx, error, 0);
                self.stop("out of credits");
            }
            ErrorKind::Unauthorised => {
                self.summary.unauthorised = !self.any_accepted;
                self.fail(idx, error, 0);
                self.stop("the API key was refused");
                self.tasks.abort_all();
            }
            _ => self.fail(idx, error, 0),
        }
    }

    /// Sends the same request again after `delay`, through the submit queue.
    fn retry(
        &mut self,
        idx: usize,
        error: StepError,
        delay: Duration,
        refunded: u64,
        counts: bool,
    ) {
        self.leave_flight(idx);
        self.graph.insts[idx].status = Status::Waiting;
        let p = &mut self.progress[idx];
        if counts {
            p.attempt += 1;
        }
        p.task = None;
        let attempt = p.attempt;
        if let Some(job) = p.job.as_mut() {
            job.attempt = attempt;
        }
        let id = self.graph.insts[idx].id.clone();
        self.emit(RunEvent::Retrying {
            id,
            attempt,
            error,
            delay_ms: delay.as_millis() as u64,
            refunded,
        });
        let handle = self.tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            Done::RetryDue { idx }
        });
        self.task_owner.insert(handle.id(), idx);
    }

    /// A task must finish within the poll timeout of its submit, and within
    /// the step timeout of the instance's first request.
    fn set_deadline(&mut self, idx: usize) {
        let step = self.graph.step(idx);
        let now = Instant::now();
        let p = &mut self.progress[idx];
        let mut deadline = now + self.config.scale(step.poll.timeout);
        if let (Some(timeout), Some(first)) = (step.timeout, p.first_sent) {
            deadline = deadline.min(first + self.config.scale(timeout));
        }
        p.deadline = Some(deadline);
    }

    fn polled(&mut self, idx: usize, result: Result<PollOutcome, StepError>) {
        self.summary.polls += 1;
        let step = self.graph.step(idx);
        let overdue = self.progress[idx]
            .deadline
            .is_some_and(|d| Instant::now() >= d);
        match result {
            Ok(PollOutcome::Done(outputs)) => self.succeed(idx, outputs),
            Ok(PollOutcome::Failed { message }) => {
                // The service refunds whoever paid: this run, or the run the task came from.
                let refunded = std::mem::take(&mut self.progress[idx].charged);
                self.summary.credits_refunded += refunded;
                let error = StepError::new(ErrorKind::TaskFailed, message);
                if let Some(job) = self.progress[idx].job.clone() {
                    let released = Record::Released {
                        job: &job,
                        error: &error,
                        refunded,
                    };
                    if let Err(e) = self.memory.record(released) {
                        self.stop(&format!("the journal cannot be written ({e})"));
                    }
                }
                if self.progress[idx].attempt < step.retry.attempts && self.stop_reason.is_none() {
                    let delay = self.config.scale(backoff::delay(
                        &step.retry,
                        self.progress[idx].attempt + 1,
                        None,
                        &mut self.rng,
                    ));
                    self.retry(idx, error, delay, refunded, true);
                } else {
                    self.fail(idx, error, refunded);
                }
            }
            Ok(PollOutcome::Pending)
            | Err(StepError {
                kind: ErrorKind::Transient | ErrorKind::RateLimited | ErrorKind::Local,
                ..
            }) if overdue => {
                let task = self.progress[idx]
                    .task
                    .as_ref()
                    .map(|t| t.id.clone())
                    .unwrap_or_default();
                let message = format!(
                    "task `{task}` did not finish in time; it was paid for and may still finish"
                );
                self.fail(idx, StepError::new(ErrorKind::Timeout, message), 0);
            }
            Ok(PollOutcome::Pending) => {
                let delay = backoff::jittered(
                    self.config.scale(step.poll.interval),
                    step.poll.jitter,
                    &mut self.rng,
                );
                self.poll(idx, delay);
            }
            Err(error) => match error.kind {
                ErrorKind::Transient | ErrorKind::RateLimited | ErrorKind::Local => {
                    let wait = self
                        .config
                        .scale(step.poll.interval)
                        .max(error.retry_after.unwrap_or_default());
                    self.poll(idx, wait);
                }
                ErrorKind::Unauthorised => {
                    self.fail(idx, error, 0);
                    self.stop("the API key was refused");
                    self.tasks.abort_all();
                }
                _ => self.fail(idx, error, 0),
            },
        }
    }

    fn succeed(&mut self, idx: usize, outputs: Outputs) {
        self.succeed_with(idx, outputs, None, 0);
    }

    /// `credits`: what a synchronous call that just succeeded was charged.
    fn succeed_with(
        &mut self,
        idx: usize,
        outputs: Outputs,
        reused_from: Option<super::Reused<'_>>,
        credits: u64,
    ) {
        if let Some(job) = self.progress[idx].job.clone() {
            let record = Record::Succeeded {
                job: &job,
                outputs: &outputs,
                reused_from,
                credits,
            };
            if let Err(e) = self.memory.record(record) {
                self.stop(&format!("the journal cannot be written ({e})"));
            }
        }
        self.leave_flight(idx);
        self.mark_dirty(self.graph.insts[idx].id.row);
        self.summary.succeeded += 1;
        let inst = &mut self.graph.insts[idx];
        inst.status = Status::Succeeded;
        inst.outputs = Some(outputs.value.clone());
        let id = inst.id.clone();
        if reused_from.is_none() {
            self.emit(RunEvent::Succeeded { id, outputs });
        }
    }

    fn fail(&mut self, idx: usize, error: StepError, refunded: u64) {
        if let Some(job) = self.progress[idx].job.clone()
            && let Err(e) = self.memory.record(Record::Failed {
                job: &job,
                error: &error,
            })
        {
            self.stop(&format!("the journal cannot be written ({e})"));
        }
        self.leave_flight(idx);
        self.mark_dirty(self.graph.insts[idx].id.row);
        self.summary.failed += 1;
        self.graph.insts[idx].status = Status::Failed;
        let id = self.graph.insts[idx].id.clone();
        let attempt = self.progress[idx].attempt.max(1);
        self.emit(RunEvent::Failed {
            id,
            attempt,
            error,
            refunded,
        });
        if self.config.fail_fast {
            self.stop("fail-fast: a step failed");
        }
    }

    /// Stops new submits; what is in flight is still followed.
    fn stop(&mut self, reason: &str) {
        if self.stop_reason.is_some() {
            return;
        }
        self.stop_reason = Some(reason.to_owned());
        self.stopping.store(true, Ordering::SeqCst);
        self.summary.stopped = Some(reason.to_owned());
        self.emit(RunEvent::Stopping {
            reason: reason.to_owned(),
        });
        self.abort_fetches();
        while let Some((_, _, Reverse(idx))) = self.ready.pop() {
            self.skip(idx, format!("not started: the run stopped ({reason})"));
        }
        let placeholders = self
            .graph
            .abandon_pending(&format!("not started: the run stopped ({reason})"));
        self.created(placeholders);
        for row in 0..self.waiting.len() {
            self.mark_dirty(row);
        }
    }

    fn finish(&mut self) -> Summary {
        // Downloads cut short when the grace period ran out.
        for idx in 0..self.progress.len() {
            if self.progress[idx].fetching.is_some() {
                let error = StepError::new(ErrorKind::Local, "the run ended first");
                self.fetched(idx, Err(error));
            }
        }
        let placeholders = self.graph.abandon_pending("its list was never produced");
        self.created(placeholders);
        let leftover: Vec<usize> = std::mem::take(&mut self.waiting)
            .into_iter()
            .flatten()
            .collect();
        for idx in leftover {
            if self.graph.insts[idx].status == Status::Waiting {
                let reason = self.stop_reason.clone().map_or_else(
                    || "its dependencies never finished".to_owned(),
                    |r| format!("not started: the run stopped ({r})"),
                );
                self.skip(idx, reason);
            }
        }
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
