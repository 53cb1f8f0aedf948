//! How a run ended, as one value: why it stopped early ([`StopReason`]) and
//! what that means as a whole ([`RunOutcome`]). The exit code, the results'
//! status, the journal's closing line and the console all derive from it.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::exit;

/// Why a run stopped submitting before it ran out of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Ctrl-C.
    Interrupted,
    /// The service refused the key; `before_any_accepted` when nothing had
    /// been accepted yet (the run could not use the API at all).
    Unauthorised { before_any_accepted: bool },
    /// The service said the balance cannot pay for a submit.
    OutOfCredits,
    /// The next submit would have crossed the credit cap.
    Budget {
        instance: String,
        needs: u64,
        committed: u64,
        cap: u64,
    },
    /// A step failed and the run was told to stop at the first failure.
    FailFast,
    /// The journal could not record something; going on could lose a paid result.
    Journal { error: Option<String> },
}

impl StopReason {
    /// Whether nothing more may be asked of the service, not even polls of
    /// what is in flight.
    pub fn abandons_in_flight(&self) -> bool {
        matches!(self, StopReason::Unauthorised { .. })
    }

    /// Whether the run stopped for lack of credits (the budget or the balance).
    pub fn is_budget(&self) -> bool {
        matches!(self, StopReason::Budget { .. } | StopReason::OutOfCredits)
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Interrupted => f.write_str("interrupted"),
            StopReason::Unauthorised { .. } => f.write_str("the API key was refused"),
            StopReason::OutOfCredits => f.write_str("out of credits"),
            StopReason::Budget {
                instance,
                needs,
                committed,
                cap,
            } => write!(
                f,
                "budget: `{instance}` needs {} and {committed} of the {cap}-credit cap are spent or reserved",
                crate::format::credits(*needs)
            ),
            StopReason::FailFast => f.write_str("fail-fast: a step failed"),
            StopReason::Journal { error: None } => f.write_str("the journal cannot be written"),
            StopReason::Journal { error: Some(e) } => {
                write!(f, "the journal cannot be written ({e})")
            }
        }
    }
}

/// Logs and results carry the reason as the sentence people read.
impl Serialize for StopReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What a run amounts to, once it is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every instance succeeded (or was left out by the selection).
    Succeeded,
    /// Nothing failed, but some instances did not run (a dependency was
    /// never produced, or an excluded step had no earlier result).
    Incomplete,
    /// Every instance ended, and some failed.
    Failed,
    /// The run stopped early; `failed` when some instance had failed too.
    Stopped { reason: StopReason, failed: bool },
}

impl RunOutcome {
    /// The process exit code (README, "Exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            RunOutcome::Stopped {
                reason:
                    StopReason::Unauthorised {
                        before_any_accepted: true,
                    },
                ..
            } => exit::API_UNAVAILABLE,
            RunOutcome::Stopped {
                reason: StopReason::Interrupted,
                ..
            } => exit::INTERRUPTED,
            RunOutcome::Stopped { reason, .. } if reason.is_budget() => exit::BUDGET,
            RunOutcome::Stopped { .. } | RunOutcome::Failed | RunOutcome::Incomplete => {
                exit::FAILED_STEPS
            }
            RunOutcome::Succeeded => exit::SUCCESS,
        }
    }

    /// The status the journal closes with, `None` when the run was
    /// interrupted and stays open for a resume.
    pub fn journal_status(&self) -> Option<&'static str> {
        match self {
            RunOutcome::Stopped {
                reason: StopReason::Interrupted,
                ..
            } => None,
            RunOutcome::Failed | RunOutcome::Stopped { failed: true, .. } => Some("failed"),
            RunOutcome::Succeeded | RunOutcome::Incomplete | RunOutcome::Stopped { .. } => {
                Some("finished")
            }
        }
    }

    /// Whether a resume can take the run further (it was cut short).
    pub fn resumable(&self) -> bool {
        matches!(
            self,
            RunOutcome::Stopped { reason, .. }
                if *reason == StopReason::Interrupted || matches!(reason, StopReason::Budget { .. })
        )
    }

    /// How the run ended, in a word the journal keeps for `status`:
    /// `succeeded`, `incomplete`, `failed`, `budget` (the cap or the
    /// balance stopped it), `interrupted` or `stopped`.
    pub fn verdict(&self) -> &'static str {
        match self {
            RunOutcome::Succeeded => verdict::SUCCEEDED,
            RunOutcome::Incomplete => "incomplete",
            RunOutcome::Failed => "failed",
            RunOutcome::Stopped { reason, .. } if reason.is_budget() => verdict::BUDGET,
            RunOutcome::Stopped {
                reason: StopReason::Interrupted,
                ..
            } => "interrupted",
            RunOutcome::Stopped { .. } => "stopped",
        }
    }

    pub fn stop_reason(&self) -> Option<&StopReason> {
        match self {
            RunOutcome::Stopped { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// The words of [`RunOutcome::verdict`] that readers of a journal act on.
pub mod verdict {
    /// Every selected step succeeded.
    pub const SUCCEEDED: &str = "succeeded";
    /// The cap or the balance stopped the run.
    pub const BUDGET: &str = "budget";
}

/// Where a run stands for a machine (`sonicflow status`), from its journal:
/// what is still open, what is unknown, and how it ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// Still running, or unfinished (interrupted, killed), or tasks of it
    /// still outstanding: a resume takes it further.
    pub in_flight: bool,
    /// Some send has no recorded answer: it may have been charged.
    pub in_doubt: bool,
    /// The credit cap or the balance stopped it.
    pub budget: bool,
    /// Some selected step failed or did not run.
    pub failed: bool,
}

impl Standing {
    /// `status`'s exit code (README, "Exit codes"): 0 only when every
    /// selected step succeeded; when several apply, the first of in flight,
    /// in doubt, budget, failed.
    pub fn exit_code(&self) -> u8 {
        if self.in_flight {
            exit::STATUS_IN_FLIGHT
        } else if self.in_doubt {
            exit::STATUS_IN_DOUBT
        } else if self.budget {
            exit::BUDGET
        } else if self.failed {
            exit::FAILED_STEPS
        } else {
            exit::SUCCESS
        }
    }

    /// The word `status` shows for it.
    pub fn word(&self) -> &'static str {
        match self.exit_code() {
            exit::STATUS_IN_FLIGHT => "in flight",
            exit::STATUS_IN_DOUBT => "in doubt",
            exit::BUDGET => "stopped by the budget",
            exit::FAILED_STEPS => "failed",
            _ => "succeeded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stopped(reason: StopReason) -> RunOutcome {
        RunOutcome::Stopped {
            reason,
            failed: false,
        }
    }

    #[test]
    fn every_outcome_has_one_exit_code_and_one_journal_status() {
        let budget = StopReason::Budget {
            instance: "song".into(),
            needs: 15,
            committed: 30,
            cap: 40,
        };
        let cases = [
            (RunOutcome::Succeeded, 0, Some("finished")),
            (RunOutcome::Incomplete, 1, Some("finished")),
            (RunOutcome::Failed, 1, Some("failed")),
            (stopped(StopReason::Interrupted), 130, None),
            (
                stopped(StopReason::Unauthorised {
                    before_any_accepted: true,
                }),
                4,
                Some("finished"),
            ),
            (
                RunOutcome::Stopped {
                    reason: StopReason::Unauthorised {
                        before_any_accepted: false,
                    },
                    failed: true,
                },
                1,
                Some("failed"),
            ),
            (stopped(StopReason::OutOfCredits), 3, Some("finished")),
            (stopped(budget), 3, Some("finished")),
            (
                RunOutcome::Stopped {
                    reason: StopReason::FailFast,
                    failed: true,
                },
                1,
                Some("failed"),
            ),
            (
                stopped(StopReason::Journal { error: None }),
                1,
                Some("finished"),
            ),
        ];
        for (outcome, code, journal) in cases {
            assert_eq!(outcome.exit_code(), code, "{outcome:?}");
            assert_eq!(outcome.journal_status(), journal, "{outcome:?}");
        }
    }

    #[test]
    fn status_exit_codes_are_one_table_and_the_most_urgent_wins() {
        let s = |in_flight, in_doubt, budget, failed| Standing {
            in_flight,
            in_doubt,
            budget,
            failed,
        };
        let cases = [
            (s(false, false, false, false), 0, "succeeded"),
            (s(false, false, false, true), 1, "failed"),
            (s(false, false, true, false), 3, "stopped by the budget"),
            (s(false, false, true, true), 3, "stopped by the budget"),
            (s(false, true, false, true), 5, "in doubt"),
            (s(false, true, true, true), 5, "in doubt"),
            (s(true, false, false, false), 6, "in flight"),
            (s(true, true, true, true), 6, "in flight"),
        ];
        for (standing, code, word) in cases {
            assert_eq!(standing.exit_code(), code, "{standing:?}");
            assert_eq!(standing.word(), word, "{standing:?}");
        }
        let verdicts = [
            (RunOutcome::Succeeded, "succeeded"),
            (RunOutcome::Incomplete, "incomplete"),
            (RunOutcome::Failed, "failed"),
            (stopped(StopReason::OutOfCredits), "budget"),
            (stopped(StopReason::Interrupted), "interrupted"),
            (stopped(StopReason::FailFast), "stopped"),
        ];
        for (outcome, verdict) in verdicts {
            assert_eq!(outcome.verdict(), verdict);
        }
    }

    #[test]
    fn the_readme_documents_every_status_exit_code() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("| code | `status` says |")
            .nth(1)
            .unwrap_or_default();
        let codes: Vec<u8> = table
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.split('|').nth(1)?.trim().parse().ok())
            .collect();
        let documented = [
            exit::STATUS_IN_FLIGHT,
            exit::STATUS_IN_DOUBT,
            exit::BUDGET,
            exit::FAILED_STEPS,
            exit::SUCCESS,
            exit::INVALID,
        ];
        assert_eq!(codes, documented, "README, Exit codes: the `status` table");
    }

    #[test]
    fn reasons_read_as_sentences_in_logs() {
        let budget = StopReason::Budget {
            instance: "song[rain]".into(),
            needs: 15,
            committed: 30,
            cap: 40,
        };
        assert_eq!(
            serde_json::to_value(&budget).unwrap_or_default(),
            "budget: `song[rain]` needs 15 credits and 30 of the 40-credit cap are spent or reserved"
        );
        assert_eq!(
            StopReason::Journal {
                error: Some("disk full".into())
            }
            .to_string(),
            "the journal cannot be written (disk full)"
        );
    }
}
