//! The tasks the driver waits on: submits, polls, backoffs and fetches,
//! each reporting back which instance it belongs to.

use std::collections::HashMap;

use tokio::task::{AbortHandle, Id, JoinError, JoinSet};

use crate::engine::{Outputs, PollOutcome, StepError, Submission};

/// A finished submit or poll.
pub(super) enum Done {
    /// `window`: where its exchange lay among the balance windows, when observed.
    Submit {
        idx: usize,
        result: Result<Submission, StepError>,
        window: Option<super::observing::SubmitWindow>,
    },
    /// `window`: the balance window open when the poll was sent.
    Poll {
        idx: usize,
        result: Result<PollOutcome, StepError>,
        window: u64,
    },
    /// A balance read came back (`None`: it failed or took too long).
    Balance { balance: Option<u64> },
    /// A retry's backoff is over; the instance may be sent again.
    RetryDue { idx: usize },
    /// The run paying for an instance's request answered it, or is gone.
    Shared { idx: usize },
    /// The files of a reused result were downloaded (or not).
    Fetched {
        idx: usize,
        result: Result<Outputs, StepError>,
    },
}

/// The tasks the driver waits on, each owned by one instance.
#[derive(Default)]
pub(super) struct Tasks {
    set: JoinSet<Done>,
    owner: HashMap<Id, usize>,
}

impl Tasks {
    pub(super) fn spawn(
        &mut self,
        idx: usize,
        task: impl Future<Output = Done> + Send + 'static,
    ) -> AbortHandle {
        let handle = self.set.spawn(task);
        self.owner.insert(handle.id(), idx);
        handle
    }

    /// A task owned by no instance (a balance read).
    pub(super) fn spawn_unowned(&mut self, task: impl Future<Output = Done> + Send + 'static) {
        self.set.spawn(task);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The next task to end: what it reported, or the instance whose task died.
    pub(super) async fn next(&mut self) -> Option<Result<Done, (usize, JoinError)>> {
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

    pub(super) fn abort_all(&mut self) {
        self.set.abort_all();
    }
}
