//! What the live view knows of a run as it goes: the tasks that are out
//! (sending, polled, waiting to be tried again) and since when, and per
//! plan step how many instances are known, finished and how long its tasks
//! took, for the ETA.

use std::time::{Duration, SystemTime};

use indexmap::IndexMap;

use crate::engine::{InstanceId, RunEvent};
use crate::report::clock::millis_between;

use super::eta::{Pace, StepLeft};

/// Where a task that is out stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskState {
    /// Its request is waiting for its turn or on its way.
    Sending,
    /// Accepted; its task is asked about until it is done.
    Polling,
    /// An attempt failed; it is sent again after a delay.
    Retrying,
}

impl TaskState {
    pub(crate) fn word(self) -> &'static str {
        match self {
            TaskState::Sending => "sending",
            TaskState::Polling => "polling",
            TaskState::Retrying => "retrying",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub(crate) id: InstanceId,
    pub(crate) state: TaskState,
    /// When it entered its state.
    pub(crate) since: SystemTime,
    /// When its last submit was accepted, for the step's wait.
    accepted: Option<SystemTime>,
}

#[derive(Debug, Clone, Default)]
struct StepSeen {
    known: std::collections::HashSet<InstanceId>,
    finished: u64,
    wait_total: Duration,
    waits: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Board {
    /// Tasks out, in the order they went out.
    tasks: IndexMap<InstanceId, Task>,
    steps: Vec<StepSeen>,
    pub(crate) started: Option<SystemTime>,
    /// Credits of the instances known so far, for a run without a pace.
    pub(crate) planned_known: u64,
}

impl Board {
    pub(crate) fn apply(&mut self, event: &RunEvent, now: SystemTime) {
        self.started.get_or_insert(now);
        match event {
            RunEvent::Created {
                id,
                planned_credits,
                ..
            } if self.step(id).known.insert(id.clone()) => {
                self.planned_known += planned_credits;
            }
            RunEvent::Submitting { id, .. } => self.enter(id, TaskState::Sending, now),
            RunEvent::Submitted { id, task_id, .. } => {
                if task_id.is_some() {
                    self.enter(id, TaskState::Polling, now);
                }
                if let Some(task) = self.tasks.get_mut(id) {
                    task.accepted = Some(now);
                }
            }
            RunEvent::Attached { id, .. } => self.enter(id, TaskState::Polling, now),
            RunEvent::Retrying { id, .. } => self.enter(id, TaskState::Retrying, now),
            RunEvent::Succeeded { id, .. } => {
                let task = self.tasks.shift_remove(id);
                let step = self.step(id);
                if let Some(accepted) = task.and_then(|t| t.accepted) {
                    step.wait_total += Duration::from_millis(millis_between(accepted, now));
                    step.waits += 1;
                }
                step.finished += 1;
            }
            RunEvent::Failed { id, .. }
            | RunEvent::Skipped { id, .. }
            | RunEvent::Unmet { id, .. }
            | RunEvent::Reused { id, .. } => {
                self.tasks.shift_remove(id);
                let step = self.step(id);
                step.known.insert(id.clone());
                step.finished += 1;
            }
            _ => {}
        }
    }

    pub(crate) fn tasks(&self) -> impl ExactSizeIterator<Item = &Task> {
        self.tasks.values()
    }

    /// Per plan step, what is left, for [`super::eta::eta`].
    pub(crate) fn left(&self, pace: &Pace, now: SystemTime) -> Vec<StepLeft> {
        let steps = pace.steps.len().max(self.steps.len());
        let mut in_flight = vec![0u64; steps];
        let mut youngest: Vec<Option<Duration>> = vec![None; steps];
        for task in self.tasks.values() {
            let out_since = task.accepted.unwrap_or(task.since);
            let age = Duration::from_millis(millis_between(out_since, now));
            if let Some(n) = in_flight.get_mut(task.id.step) {
                *n += 1;
                let y = &mut youngest[task.id.step];
                *y = Some(y.map_or(age, |y| y.min(age)));
            }
        }
        (0..pace.steps.len())
            .map(|s| {
                let seen = self.steps.get(s).cloned().unwrap_or_default();
                let expected = pace.steps[s].calls.max(seen.known.len() as u64);
                let remaining = expected.saturating_sub(seen.finished);
                StepLeft {
                    to_submit: remaining.saturating_sub(in_flight[s]),
                    in_flight: in_flight[s].min(remaining),
                    observed_wait: (seen.waits > 0).then(|| seen.wait_total / seen.waits),
                    youngest: youngest[s].unwrap_or_default(),
                }
            })
            .collect()
    }

    fn enter(&mut self, id: &InstanceId, state: TaskState, now: SystemTime) {
        self.step(id).known.insert(id.clone());
        let task = self.tasks.entry(id.clone()).or_insert_with(|| Task {
            id: id.clone(),
            state,
            since: now,
            accepted: None,
        });
        if task.state != state {
            task.state = state;
            task.since = now;
        }
    }

    fn step(&mut self, id: &InstanceId) -> &mut StepSeen {
        if self.steps.len() <= id.step {
            self.steps.resize_with(id.step + 1, StepSeen::default);
        }
        &mut self.steps[id.step]
    }
}
