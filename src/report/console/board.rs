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
    /// Its dependencies are met; it waits for a submit slot.
    Queued,
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
            TaskState::Queued => "queued",
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
            } => {
                let new = self.step(id).known.insert(id.clone());
                self.planned_known += if new { *planned_credits } else { 0 };
            }
            RunEvent::Ready { id } => self.enter(id, TaskState::Queued, now),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Outputs, StepError};
    use crate::prices::OpClass;
    use crate::report::console::eta::StepPace;

    fn id(row: &str) -> InstanceId {
        InstanceId {
            row: 0,
            row_key: Some(row.to_owned()),
            step: 0,
            step_id: "song".to_owned(),
            path: Vec::new(),
            names: Vec::new(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_780_800 + secs)
    }

    fn submitting(row: &str) -> RunEvent {
        RunEvent::Submitting {
            id: id(row),
            attempt: 1,
            request_hash: String::new(),
            fields: serde_json::Value::Null,
        }
    }

    fn accepted(row: &str) -> RunEvent {
        RunEvent::Submitted {
            id: id(row),
            attempt: 1,
            task_id: Some(format!("task-{row}")),
            credits: 20,
        }
    }

    #[test]
    fn tasks_move_from_sending_to_polling_to_retrying_and_leave_when_done() {
        let mut board = Board::default();
        board.apply(&submitting("calm"), at(0));
        board.apply(&submitting("dark"), at(1));
        board.apply(&accepted("calm"), at(2));
        let states: Vec<_> = board.tasks().map(|t| (t.state, t.since)).collect();
        assert_eq!(
            states,
            [(TaskState::Polling, at(2)), (TaskState::Sending, at(1))]
        );
        let retrying = RunEvent::Retrying {
            id: id("dark"),
            attempt: 1,
            error: StepError::new(crate::engine::ErrorKind::Transient, "503"),
            delay_ms: 2000,
            refunded: 0,
        };
        board.apply(&retrying, at(3));
        board.apply(
            &RunEvent::Succeeded {
                id: id("calm"),
                outputs: Outputs::default(),
            },
            at(12),
        );
        let left: Vec<_> = board.tasks().map(|t| (t.id.to_string(), t.state)).collect();
        assert_eq!(left, [("song[dark]".to_owned(), TaskState::Retrying)]);
    }

    #[test]
    fn what_is_left_counts_the_plan_the_tasks_out_and_the_waits_seen() {
        let pace = Pace {
            steps: vec![StepPace {
                class: OpClass::Generation,
                deps: Vec::new(),
                calls: 4,
                first_guess: Duration::from_secs(20),
            }],
            ..Pace::default()
        };
        let mut board = Board::default();
        board.apply(
            &RunEvent::Reused {
                id: id("warm"),
                request_hash: String::new(),
                from: Some("earlier".to_owned()),
                credits: 20,
                outputs: Outputs::default(),
            },
            at(0),
        );
        for (row, secs) in [("calm", 0), ("dark", 4)] {
            board.apply(&submitting(row), at(secs));
            board.apply(&accepted(row), at(secs + 1));
        }
        board.apply(
            &RunEvent::Succeeded {
                id: id("calm"),
                outputs: Outputs::default(),
            },
            at(9),
        );
        let left = board.left(&pace, at(10));
        assert_eq!(
            left,
            [StepLeft {
                to_submit: 1,
                in_flight: 1,
                observed_wait: Some(Duration::from_secs(8)),
                youngest: Duration::from_secs(5),
            }]
        );
    }
}
