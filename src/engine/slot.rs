//! The driver's bookkeeping: where each instance is in its life (one enum,
//! so an instance cannot be polled without a task or fetched without a
//! result), and which matrix rows have instances to look at again.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::decide::Taken;
use super::poll_schedule::TaskClock;
use super::{Job, TaskRef};

/// One instance's progress through the driver.
#[derive(Debug, Default)]
pub(super) struct Slot {
    /// 429s its submits met (they do not use up attempts).
    pub throttles: u32,
    /// When its first request was sent (for the step timeout).
    pub first_sent: Option<Instant>,
    /// The balance window its latest submit lay in, when observed.
    pub submit_window: Option<u64>,
    pub state: State,
}

/// Where an instance is.
#[derive(Debug, Default)]
pub(super) enum State {
    /// Waiting for its dependencies; its request is not built yet.
    #[default]
    Waiting,
    /// Its request is built and waits in the send queue.
    Queued(Job),
    /// Its submit is on its way.
    /// Shared with the submit in flight.
    Submitting(std::sync::Arc<Job>),
    /// Its task was accepted and is being polled.
    Polling(Polling),
    /// An attempt failed; the request goes back in the queue after a delay.
    BackingOff(Job),
    /// An earlier result is taken; its files are being downloaded.
    Fetching(Fetching),
    /// Another run sharing the state pays for its request: this one waits
    /// for that run's answer (the task ends when it should look again).
    Sharing { job: Job, abort: AbortHandle },
    /// Succeeded, failed or skipped.
    Done,
}

impl State {
    /// Whether remote work of the instance is outstanding (counted against `max_in_flight`).
    pub fn in_flight(&self) -> bool {
        matches!(self, State::Submitting(_) | State::Polling(_))
    }
}

/// A task accepted by the service.
#[derive(Debug)]
pub(super) struct Polling {
    /// Shared with the poll in flight, if any.
    pub job: std::sync::Arc<Job>,
    pub task: TaskRef,
    /// Credits this run paid for the task (0 for a task of another run).
    pub charged: u64,
    /// When the task must have finished.
    pub deadline: Instant,
    /// Why the latest poll failed, if it did: the cause a timeout reports.
    pub last_error: Option<String>,
    /// What the latest pending poll said the task waits on, if it said.
    pub waiting: Option<String>,
    /// The first balance window a refund of the task may lie in: that of
    /// its submit, then of each poll that saw it pending (`None` until one
    /// is known, for a task taken up on resume).
    pub refund_since: Option<u64>,
    /// Where the task is in its poll schedule.
    pub clock: TaskClock,
}

/// A reused result waiting for its files.
#[derive(Debug)]
pub(super) struct Fetching {
    pub job: Job,
    pub taken: Taken,
    pub abort: AbortHandle,
}

/// Instances waiting for their dependencies, per matrix row, and the rows
/// where something changed since they were last looked at. Rows are looked
/// at lowest first, as the forecast does, so that where two instances could
/// take the same earlier result the run gives it where the plan said.
#[derive(Debug)]
pub(super) struct Rows {
    /// A step runs once per pipeline: what happens in one row may concern
    /// every other, so a change marks them all.
    linked: bool,
    waiting: Vec<Vec<usize>>,
    dirty: Vec<bool>,
    dirty_rows: BinaryHeap<Reverse<usize>>,
}

impl Rows {
    pub fn new(rows: usize, linked: bool) -> Rows {
        Rows {
            linked,
            waiting: vec![Vec::new(); rows],
            dirty: vec![false; rows],
            dirty_rows: BinaryHeap::new(),
        }
    }

    /// `idx` waits in `row`, which is looked at again.
    pub fn wait(&mut self, row: usize, idx: usize) {
        self.waiting[row].push(idx);
        self.mark(row);
    }

    /// `idx` still waits; nothing changed.
    pub fn keep_waiting(&mut self, row: usize, idx: usize) {
        self.waiting[row].push(idx);
    }

    /// Something changed in `row`: its waiting instances and fan-outs are looked at again.
    pub fn mark(&mut self, row: usize) {
        if self.linked {
            for row in 0..self.waiting.len() {
                self.mark_one(row);
            }
        } else {
            self.mark_one(row);
        }
    }

    fn mark_one(&mut self, row: usize) {
        if let Some(flag) = self.dirty.get_mut(row)
            && !*flag
        {
            *flag = true;
            self.dirty_rows.push(Reverse(row));
        }
    }

    pub fn mark_all(&mut self) {
        for row in 0..self.waiting.len() {
            self.mark(row);
        }
    }

    /// A row where something changed.
    pub fn next_dirty(&mut self) -> Option<usize> {
        let Reverse(row) = self.dirty_rows.pop()?;
        self.dirty[row] = false;
        Some(row)
    }

    /// The instances waiting in `row` (put back those that still wait).
    pub fn take(&mut self, row: usize) -> Vec<usize> {
        std::mem::take(&mut self.waiting[row])
    }

    /// Every instance still waiting, in any row.
    pub fn take_all(&mut self) -> Vec<usize> {
        self.waiting.iter_mut().flat_map(std::mem::take).collect()
    }
}
