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
            // Submits, retries, throttles, stops and the rest change no count.
            _ => {}
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
}
