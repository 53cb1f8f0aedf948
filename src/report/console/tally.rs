//! Live counts for the progress view: how many instances are done, running,
//! waiting, failed or skipped, and the credits spent so far.

use std::collections::HashSet;

use crate::engine::{Account, InstanceId, RunEvent};

#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Every instance mentioned so far; some are skipped without being created.
    seen: HashSet<InstanceId>,
    running: HashSet<InstanceId>,
    pub(crate) succeeded: usize,
    pub(crate) failed: usize,
    pub(crate) skipped: usize,
    /// The run's credits, as the engine last reported them.
    pub(crate) credits: Account,
}

impl Tally {
    pub(crate) fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Created { id, .. } => {
                self.seen.insert(id.clone());
            }
            RunEvent::Submitting { id, .. } => {
                self.seen.insert(id.clone());
                self.running.insert(id.clone());
            }
            RunEvent::Credits { credits } => self.credits = *credits,
            RunEvent::Observed { .. } => {}
            RunEvent::Succeeded { id, .. } => {
                self.running.remove(id);
                self.succeeded += 1;
            }
            RunEvent::Failed { id, .. } => {
                self.running.remove(id);
                self.failed += 1;
            }
            RunEvent::Skipped { id, .. } | RunEvent::Unmet { id, .. } => {
                self.seen.insert(id.clone());
                self.running.remove(id);
                self.skipped += 1;
            }
            RunEvent::Reused { id, .. } => {
                self.seen.insert(id.clone());
                self.succeeded += 1;
            }
            RunEvent::Attached { id, .. } => {
                self.seen.insert(id.clone());
                self.running.insert(id.clone());
            }
            RunEvent::Submitted { .. }
            | RunEvent::Ready { .. }
            | RunEvent::Recalled { .. }
            | RunEvent::Retrying { .. }
            | RunEvent::Throttled { .. }
            | RunEvent::Stopping { .. }
            | RunEvent::Finished { .. } => {}
        }
    }

    pub(crate) fn created(&self) -> usize {
        self.seen.len()
    }

    pub(crate) fn running(&self) -> usize {
        self.running.len()
    }

    pub(crate) fn done(&self) -> usize {
        self.succeeded + self.failed + self.skipped
    }

    pub(crate) fn waiting(&self) -> usize {
        self.created().saturating_sub(self.done() + self.running())
    }

    /// `3 running, 10 waiting, 1 failed, 0 skipped, 45 credits net`, with
    /// refunds and sends in doubt when there are any.
    pub(crate) fn message(&self) -> String {
        format!(
            "{} running, {} waiting, {} failed, {} skipped, {}",
            self.running(),
            self.waiting(),
            self.failed,
            self.skipped,
            self.credits
        )
    }
}
