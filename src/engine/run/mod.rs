//! The driver: dispatches ready instances under the limits, follows each
//! through submit, polls and retries, and reports every step as an event.
//!
//! One loop owns all state; submits and polls run as tasks that report back
//! through a `JoinSet`, so no state is shared between tasks beyond the gates.
//! What to do when an attempt goes wrong is decided in [`super::reaction`],
//! what to do with a ready instance in [`super::decide`]; the driver carries
//! both out.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinError;
use tokio::time::Instant;

mod attempt;
mod observing;
mod reuse;
mod tasks;

use observing::Observer;
use tasks::{Done, Tasks};

use super::budget::Budget;
use super::decide::{Decision, decide, decision_of};
use super::gate::{Gate, SubmitGates};
use super::graph::{Graph, Readiness};
use super::poll_schedule::Learned;
use super::slot::{Rows, Slot, State};
use super::{
    Account, EngineConfig, ErrorKind, Job, Memory, Outputs, Record, Reused, RunEvent, Share,
    StepError, StepExecutor, StopReason, Summary,
};
use crate::plan::{Plan, Scope};
use crate::prices::OpClass;

/// A queued instance's place in its send queue: the expected work left
/// behind it (longest first), then matrix rows in order.
type Queued = (Duration, Reverse<usize>, Reverse<usize>);

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
    /// Queued instances per operation class (indexed by [`OpClass::index`]):
    /// the one with the longest expected chain of work still behind it
    /// first (see [`Graph::remaining`]), then matrix rows in order.
    ready: [BinaryHeap<Queued>; 2],
    /// Instances whose state is in flight (see [`State::in_flight`]).
    in_flight: usize,
    tasks: Tasks,
    executor: Arc<E>,
    memory: Arc<dyn Memory>,
    config: EngineConfig,
    events: mpsc::UnboundedSender<RunEvent>,
    submit_gates: SubmitGates,
    poll_gate: Arc<Gate>,
    /// When tasks of each operation finish, as far as the run has seen.
    learned: Learned,
    /// Bounds the downloads of reused results running at once.
    fetch_slots: Arc<tokio::sync::Semaphore>,
    rng: StdRng,
    budget: Budget,
    /// The credits last reported, to report each change once.
    reported: Option<Account>,
    /// Reads the balance around submits, when charges are observed.
    observer: Option<Observer>,
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
            memory: Arc::clone(&memory),
            plan,
            graph,
            slots: Vec::new(),
            rows: Rows::new(
                plan.instances.len(),
                plan.steps.iter().any(|s| s.per_pipeline),
            ),
            ready: [BinaryHeap::new(), BinaryHeap::new()],
            in_flight: 0,
            tasks: Tasks::default(),
            executor,
            submit_gates: SubmitGates::new(|class| config.submit_period(class)),
            poll_gate: Arc::new(Gate::new(config.poll_period())),
            learned: Learned::default(),
            fetch_slots: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight.max(1))),
            rng: StdRng::seed_from_u64(config.seed),
            budget: Budget::new(config.max_credits, memory.spent()),
            reported: None,
            observer: config
                .observe_charges
                .then(|| Observer::new(&memory.observed())),
            config,
            events,
            summary: Summary::default(),
        };
        driver.created(created);
        // A row may start with nothing but fan-outs over lists it already
        // knows (a literal `for_each`): each is looked at once at least.
        driver.rows.mark_all();
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
                super::graph::Standing::Unmet(reason) => {
                    self.slots[idx].state = State::Done;
                    self.summary.unmet += 1;
                    let reason = reason.clone();
                    self.emit(RunEvent::Unmet { id, reason });
                    continue;
                }
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
        self.observe_start();
        loop {
            self.settle();
            let next_slot = self.dispatch();
            self.report_credits();
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

    /// Reports the run's credits if they changed since last reported.
    fn report_credits(&mut self) {
        let credits = self.budget.account();
        if self.reported != Some(credits) {
            self.reported = Some(credits);
            self.emit(RunEvent::Credits { credits });
        }
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
                    Readiness::Unmet(reason) => self.unmet(idx, reason),
                }
            }
        }
    }

    /// Carries out the decision about an instance whose dependencies are done.
    fn make_ready(&mut self, idx: usize) {
        let decision = decide(self.plan, &self.graph, idx, &*self.memory);
        // Only an instance that goes on to be sent, reused or attached
        // waited in the queue; one refused here never did.
        if matches!(
            decision,
            Decision::Send(_)
                | Decision::Reuse { .. }
                | Decision::Attach { .. }
                | Decision::InDoubt { .. }
        ) {
            let id = self.graph.id(idx).clone();
            self.emit(RunEvent::Ready { id });
        }
        self.carry_out(idx, decision);
    }

    /// Acts on what was decided about a ready instance.
    fn carry_out(&mut self, idx: usize, decision: Decision) {
        if tracing::enabled!(tracing::Level::INFO) {
            let what = match &decision {
                Decision::Unresolved(message) => format!("fails: {message}"),
                Decision::Excluded(_) => "is skipped: excluded, with no earlier result".to_owned(),
                Decision::Unmet(reason) => format!("cannot run: {reason}"),
                Decision::Send(_) => "is sent".to_owned(),
                Decision::Reuse { .. } => "reuses an earlier result".to_owned(),
                Decision::Attach { .. } => "follows the task it already paid for".to_owned(),
                Decision::InDoubt { .. } => "is in doubt: not sent again".to_owned(),
            };
            tracing::info!("`{}` {what}", self.graph.id(idx));
        }
        match decision {
            Decision::Unresolved(message) => {
                self.fail_with(idx, None, StepError::new(ErrorKind::Invalid, message), 0);
            }
            Decision::Excluded(_) => self.skip(
                idx,
                "only reused in this run (excluded, or needed only by excluded steps), and no earlier run has its result".to_owned(),
            ),
            Decision::Unmet(reason) => self.unmet(idx, reason),
            Decision::Send(job) => self.pay_or_wait(idx, job),
            Decision::Reuse { job, taken } => self.reuse(idx, job, taken),
            Decision::Attach {
                job,
                task,
                from,
                credits,
            } => self.attach(idx, job, task, credits, from),
            Decision::InDoubt {
                job,
                from,
                since,
                attempt,
                earlier,
            } => self.in_doubt(idx, job, from, (&since, attempt), earlier),
        }
    }

    /// Queues a new request, unless another run sharing the state pays for
    /// it: then its answer is waited for (not holding a send slot).
    fn pay_or_wait(&mut self, idx: usize, job: Job) {
        match self.memory.share(&job) {
            Share::Pay => self.enqueue(idx, job),
            Share::Wait(until) => {
                let abort = self.tasks.spawn(idx, async move {
                    until.await;
                    Done::Shared { idx }
                });
                self.set_state(idx, State::Sharing { job, abort });
            }
        }
    }

    /// The run an instance waited for answered its request or is gone: what
    /// the shared state holds now decides (its result, its task, or this
    /// run pays after all).
    fn shared(&mut self, idx: usize) {
        if !matches!(self.slots[idx].state, State::Sharing { .. }) {
            return;
        }
        let State::Sharing { job, .. } = self.set_state(idx, State::Done) else {
            return;
        };
        if let Some(reason) = self.stopped_because() {
            return self.skip(idx, format!("not started: the run stopped ({reason})"));
        }
        let recall = self.memory.recall_again(&job);
        let decision = decision_of(job, recall, self.graph.step(idx).scope.may_submit());
        self.carry_out(idx, decision);
    }

    /// Puts an instance's request in the send queue.
    fn enqueue(&mut self, idx: usize, job: Job) {
        self.set_state(idx, State::Queued(job));
        let id = self.graph.id(idx);
        let entry = (self.graph.remaining(idx), Reverse(id.row), Reverse(idx));
        self.ready[self.class(idx).index()].push(entry);
    }

    /// The rate-limit class of instance `idx`'s request.
    fn class(&self, idx: usize) -> OpClass {
        OpClass::of(self.graph.step(idx).operation)
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

    /// An instance whose condition (or that of something it needs) is
    /// false: done, not failed, nothing sent.
    fn unmet(&mut self, idx: usize, reason: String) {
        let id = self.graph.id(idx).clone();
        self.rows.mark(id.row);
        self.graph.unmet(idx, reason.clone());
        self.set_state(idx, State::Done);
        self.summary.unmet += 1;
        self.emit(RunEvent::Unmet { id, reason });
    }

    fn skip(&mut self, idx: usize, reason: String) {
        let id = self.graph.id(idx).clone();
        self.rows.mark(id.row);
        self.graph.skip(idx, reason.clone());
        self.set_state(idx, State::Done);
        self.summary.skipped += 1;
        self.emit(RunEvent::Skipped { id, reason });
    }

    /// Sends queued instances, most urgent first, while there is room in
    /// flight and their class's quota has a slot; a class without one does
    /// not hold back the other. Returns how long until the next slot of a
    /// class that has none.
    fn dispatch(&mut self) -> Option<Duration> {
        let mut wait: Option<Duration> = None;
        let mut closed = [false; 2];
        while self.in_flight < self.config.max_in_flight.max(1) {
            let Some((&(_, _, Reverse(idx)), class)) = OpClass::ALL
                .into_iter()
                .filter(|c| !closed[c.index()])
                .filter_map(|c| self.ready[c.index()].peek().map(|e| (e, c)))
                .max_by_key(|(e, _)| **e)
            else {
                break;
            };
            let queue = class.index();
            if let Some(reason) = self.stopped_because() {
                self.ready[queue].pop();
                self.skip(idx, format!("not started: the run stopped ({reason})"));
                continue;
            }
            let unit = self.graph.step(idx).unit_credits;
            let name = self.graph.id(idx).to_string();
            match self.budget.would_cross(&name, unit) {
                Ok(None) => {}
                Ok(Some(over)) => {
                    self.stop(over);
                    continue;
                }
                // It fits unless a submit in flight is charged: its answer decides.
                Err(()) if !self.tasks.is_empty() => return wait,
                Err(()) => {
                    let over = self.budget.over(&name, unit);
                    self.stop(over);
                    continue;
                }
            }
            if let Err(until) = self.submit_gates.gate(class).try_acquire() {
                closed[queue] = true;
                wait = Some(wait.map_or(until, |w| w.min(until)));
                continue;
            }
            self.ready[queue].pop();
            self.send(idx);
        }
        wait
    }

    fn joined(&mut self, joined: Option<Result<Done, (usize, JoinError)>>) {
        match joined {
            Some(Ok(Done::Submit {
                idx,
                result,
                window,
            })) => {
                self.observe_submit(idx, &result, window);
                self.submitted(idx, result);
            }
            Some(Ok(Done::Poll {
                idx,
                result,
                window,
            })) => {
                self.observe_poll(idx, &result, window);
                self.polled(idx, result);
            }
            Some(Ok(Done::Balance { balance })) => self.balance_read(balance),
            Some(Ok(Done::Fetched { idx, result })) => self.fetched(idx, result),
            Some(Ok(Done::Shared { idx })) => self.shared(idx),
            Some(Ok(Done::RetryDue { idx })) => self.retry_due(idx),
            Some(Err((idx, e))) => {
                if matches!(self.slots[idx].state, State::Sharing { .. }) {
                    let reason = self.stopped_because().map_or_else(
                        || format!("the wait for the run paying for it ended abnormally: {e}"),
                        |r| format!("not started: the run stopped ({r})"),
                    );
                    return self.skip(idx, reason);
                }
                if matches!(self.slots[idx].state, State::Fetching(_)) {
                    let message = format!("the download of its files ended abnormally: {e}");
                    return self.fetched(idx, Err(StepError::new(ErrorKind::Local, message)));
                }
                if matches!(self.slots[idx].state, State::Submitting(_)) {
                    self.budget.settle(self.graph.step(idx).unit_credits);
                }
                let message = format!("the step's task ended abnormally: {e}");
                self.fail(idx, StepError::new(ErrorKind::Local, message), 0);
            }
            None => {}
        }
    }

    /// `credits`: what a synchronous call that just succeeded was charged.
    fn succeed_with(
        &mut self,
        idx: usize,
        job: Job,
        outputs: Outputs,
        reused_from: Option<Reused<'_>>,
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
            State::Queued(job) | State::BackingOff(job) => Some(job),
            State::Submitting(job) => Some(Arc::unwrap_or_clone(job)),
            State::Polling(p) => Some(Arc::unwrap_or_clone(p.job)),
            State::Fetching(f) => Some(f.job),
            State::Sharing { job, .. } => Some(job),
            State::Waiting | State::Done => None,
        };
        self.fail_with(idx, job, error, refunded);
    }

    /// `charged`: what the failing attempt was (or may have been) charged,
    /// not yet reported by a `Submitted`.
    fn fail_with(&mut self, idx: usize, job: Option<Job>, error: StepError, refunded: u64) {
        self.fail_charged(idx, job, error, refunded, 0);
    }

    fn fail_charged(
        &mut self,
        idx: usize,
        job: Option<Job>,
        error: StepError,
        refunded: u64,
        charged: u64,
    ) {
        // Only an answered, paid call's charge is the failure's own; a send
        // in doubt is priced by its intent.
        let paid = if error.kind == ErrorKind::InDoubt {
            0
        } else {
            charged
        };
        if let Some(job) = &job
            && let Err(e) = self.memory.record(Record::Failed {
                job,
                error: &error,
                credits: paid,
            })
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
            charged,
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
            match &slot.state {
                State::Fetching(f) => f.abort.abort(),
                State::Sharing { abort, .. } => abort.abort(),
                _ => {}
            }
        }
        for queue in 0..self.ready.len() {
            while let Some((_, _, Reverse(idx))) = self.ready[queue].pop() {
                self.skip(idx, format!("not started: the run stopped ({text})"));
            }
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
            if matches!(self.slots[idx].state, State::Sharing { .. }) {
                let reason = self.stopped_because().unwrap_or_default();
                self.skip(idx, format!("not started: the run stopped ({reason})"));
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
        self.observe_end();
        self.report_credits();
        self.summary.credits = self.budget.account();
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
