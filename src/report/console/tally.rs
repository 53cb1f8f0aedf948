//! Live counts for the progress view: how many instances are done, running,
//! waiting, failed or skipped, and the credits spent so far.

use std::collections::HashSet;

use crate::engine::{InstanceId, RunEvent};

#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Every instance mentioned so far; some are skipped without being created.
    seen: HashSet<InstanceId>,
    running: HashSet<InstanceId>,
    pub(crate) succeeded: usize,
    pub(crate) failed: usize,
    pub(crate) skipped: usize,
    pub(crate) charged: u64,
    pub(crate) refunded: u64,
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
            RunEvent::Submitted { credits, .. } => self.charged += credits,
            RunEvent::Retrying { refunded, .. } => self.refunded += refunded,
            RunEvent::Succeeded { id, .. } => {
                self.running.remove(id);
                self.succeeded += 1;
            }
            RunEvent::Failed { id, refunded, .. } => {
                self.running.remove(id);
                self.refunded += refunded;
                self.failed += 1;
            }
            RunEvent::Skipped { id, .. } => {
                self.seen.insert(id.clone());
                self.running.remove(id);
                self.skipped += 1;
            }
            RunEvent::Reused { id, credits, .. } => {
                self.seen.insert(id.clone());
                self.succeeded += 1;
                self.charged += credits;
            }
            RunEvent::Attached { id, credits, .. } => {
                self.seen.insert(id.clone());
                self.running.insert(id.clone());
                self.charged += credits;
            }
            RunEvent::Throttled { .. } | RunEvent::Stopping { .. } | RunEvent::Finished { .. } => {}
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

    /// Credits spent: charged minus refunded.
    pub(crate) fn spent(&self) -> u64 {
        self.charged.saturating_sub(self.refunded)
    }

    /// `3 running, 10 waiting, 1 failed, 0 skipped, 45 credits`.
    pub(crate) fn message(&self) -> String {
        format!(
            "{} running, {} waiting, {} failed, {} skipped, {} credits",
            self.running(),
            self.waiting(),
            self.failed,
            self.skipped,
            self.spent()
        )
    }
}
