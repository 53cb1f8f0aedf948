//! [`Policy`]: what the user allows a run to take from the past, from the
//! command line's reuse flags.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

/// What the user allows a run to take from the past.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Reuse results of earlier runs (`--no-reuse` turns it off).
    pub reuse: bool,
    /// Step ids to pay for again even when a result exists (`--force`).
    pub force: HashSet<String>,
    /// Send again requests whose earlier answer never came (`--resend-in-doubt`).
    pub resend_in_doubt: bool,
    /// How long remote URLs stay valid; older results are reused only with their files.
    pub retention: Duration,
    pub now: SystemTime,
    /// Whether other runs (the index, unfinished runs) count at all; off for
    /// a throwaway sandbox, whose answers mean nothing to later runs. The
    /// run's own journal always counts.
    pub others: bool,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            reuse: true,
            force: HashSet::new(),
            resend_in_doubt: false,
            retention: Duration::from_secs(14 * 24 * 3600),
            now: SystemTime::now(),
            others: true,
        }
    }
}
