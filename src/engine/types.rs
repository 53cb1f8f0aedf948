//! The engine's contract with executors and reporters.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::observe::Window;
use super::{Account, RunOutcome, StopReason};
use crate::action::Action;

/// Identifies one step instance: a step, in one matrix row, at one position
/// of its `for_each` fan-out (outermost first; empty when not fanned out).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct InstanceId {
    /// Position of the matrix row (0 without a matrix).
    pub row: usize,
    /// The matrix key of the row, if the pipeline has a matrix.
    pub row_key: Option<String>,
    /// Position of the step in `Plan::steps`.
    pub step: usize,
    /// The step id.
    pub step_id: String,
    /// Element indices along the step's fan-out axis.
    pub path: Vec<usize>,
    /// The name of each element along `path` (its item, its `key:` field
    /// or its index, see `plan::names`); empty when every one is its index.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

impl InstanceId {
    /// The instance part of the name: `rain/0.1`, `rain/jazz-ballad.0`, `0`,
    /// `rain`, or `-` when there is nothing to tell apart.
    pub fn instance(&self) -> String {
        let path = self.fan_out();
        match (&self.row_key, path.is_empty()) {
            (Some(k), true) => k.clone(),
            (Some(k), false) => format!("{k}/{path}"),
            (None, false) => path,
            (None, true) => "-".to_owned(),
        }
    }
}

impl InstanceId {
    /// The fan-out part of the name: `0.1`, `jazz-ballad.0`; empty when
    /// the step does not fan out.
    pub fn fan_out(&self) -> String {
        if self.names.len() == self.path.len() {
            self.names.join(".")
        } else {
            self.path
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(".")
        }
    }

    /// The name with every fan-out level by its index (`cover[1]`), as
    /// sonicflow named instances before items and `key:` named them: a
    /// journal written then is still read by it.
    pub fn positional(&self) -> String {
        InstanceId {
            names: Vec::new(),
            ..self.clone()
        }
        .to_string()
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.row_key, self.path.is_empty()) {
            (None, true) => f.write_str(&self.step_id),
            _ => write!(f, "{}[{}]", self.step_id, self.instance()),
        }
    }
}

/// One unit of work handed to the executor: a step instance with every
/// reference resolved.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: InstanceId,
    pub action: Action,
    /// The operation submitted (`task_type` or endpoint; also the price key).
    pub operation: &'static str,
    /// The `with` block with every expression resolved, as the manifest names fields.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Identity of the request: operation, resolved fields and price table.
    pub request_hash: String,
}

/// What a submit returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Submission {
    /// A synchronous operation finished; these are its outputs.
    Done(Outputs),
    /// A remote task was created and must be polled.
    Task(TaskRef),
}

/// A remote task: its id, plus whatever the executor needs to read its
/// answer later (kept in the journal so a resumed run can read it too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
}

impl TaskRef {
    pub fn new(id: impl Into<String>) -> TaskRef {
        TaskRef {
            id: id.into(),
            context: None,
        }
    }
}

/// What a poll returned.
#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    /// Not finished yet; `waiting` says on what, when the answer told more
    /// than its states (a timeout reports it).
    Pending { waiting: Option<String> },
    /// Finished; these are the outputs.
    Done(Outputs),
    /// The remote task failed (the service refunds it); the message says why.
    Failed { message: String },
}

/// The outputs of a finished step instance, shaped like the action's
/// `outputs` type (`clips`, `clip_id`, `stems`, `wav_url`, …), plus the
/// files saved for it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Outputs {
    pub value: serde_json::Value,
    pub files: Vec<SavedFile>,
}

/// A file downloaded into the output folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFile {
    /// Path relative to the output folder.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    /// Where it was downloaded from.
    pub url: String,
    /// The clip it is of (a stem's own clip id; the source clip of a WAV or MIDI export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_id: Option<String>,
    /// What it holds.
    #[serde(default)]
    pub kind: crate::report::FileKind,
    /// A stem's name (`vocals`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stem: Option<String>,
    /// The clip's title, when the service gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// How a failure must be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request was rejected as invalid: fail the step, never retry.
    Invalid,
    /// The key was refused: stop the run.
    Unauthorised,
    /// Not enough credits: stop submitting, keep polling what is in flight.
    OutOfCredits,
    /// Rejected by moderation: fail the step, never retry, keep going.
    Moderation,
    /// 429: wait (Retry-After if given) and slow down.
    RateLimited,
    /// 5xx, timeouts or connection errors where nothing was charged: retry.
    Transient,
    /// The request may have been accepted and charged, but no answer came: never resend.
    InDoubt,
    /// The remote task failed (refunded): retry per policy.
    TaskFailed,
    /// The step did not finish within its timeout.
    Timeout,
    /// Something on this machine failed (e.g. writing a download).
    Local,
}

impl ErrorKind {
    /// What a person does about an instance that failed for good with
    /// this kind of error (`RUN_DIR` stands for the run's folder).
    pub fn fix(self) -> &'static str {
        match self {
            ErrorKind::Invalid => {
                "correct the step's fields in the manifest (`sonicflow validate` checks them), then `sonicflow run --resume RUN_DIR` sends it again"
            }
            ErrorKind::Unauthorised => {
                "check the API key (`MUSICAPI_KEY` or `--api-key-file`), then `sonicflow run --resume RUN_DIR`"
            }
            ErrorKind::OutOfCredits => {
                "add credits to the account (`sonicflow credits` shows the balance), then `sonicflow run --resume RUN_DIR`"
            }
            ErrorKind::Moderation => {
                "reword the prompt, lyrics or title the service refused, then `sonicflow run --resume RUN_DIR`"
            }
            ErrorKind::RateLimited => {
                "lower `limits.submits_per_minute` (or pass `--submits-per-minute`), then `sonicflow run --resume RUN_DIR`"
            }
            ErrorKind::Transient => {
                "the service or the network failed; `sonicflow run --resume RUN_DIR` tries again"
            }
            ErrorKind::InDoubt => {
                "check whether the service charged it; only if it did not, `sonicflow run --resume RUN_DIR --resend-in-doubt` sends it again"
            }
            ErrorKind::TaskFailed => {
                "the service's task failed and was refunded; `sonicflow run --resume RUN_DIR` tries again (raise `retry.attempts` to try more often)"
            }
            ErrorKind::Timeout => {
                "raise the step's `timeout` (or `poll.timeout`), then `sonicflow run --resume RUN_DIR` polls the task again without resending it"
            }
            ErrorKind::Local => {
                "something on this machine failed (a full disk, a folder without write access): fix it, then `sonicflow run --resume RUN_DIR`"
            }
        }
    }

    /// Whether the same request may be sent again.
    pub fn may_resend(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited | ErrorKind::Transient | ErrorKind::TaskFailed
        )
    }
}

/// A failed submit or poll.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepError {
    pub kind: ErrorKind,
    /// What went wrong, never containing secrets.
    pub message: String,
    /// From a `Retry-After` header.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    /// True when the failed call may have been charged (in doubt, or a garbled success).
    pub charged: bool,
    /// The answer of a paid call whose files could not be saved: kept, so
    /// that only the files are fetched again, never the call.
    #[serde(skip)]
    pub paid: Option<Box<Outputs>>,
}

impl StepError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> StepError {
        StepError {
            kind,
            message: message.into(),
            retry_after: None,
            charged: kind == ErrorKind::InDoubt,
            paid: None,
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

/// Talks to the remote service for the engine.
///
/// Implementations must never retry a paid submit themselves: the engine
/// decides, from the error kind, whether a request may be sent again.
pub trait StepExecutor: Send + Sync + 'static {
    /// Sends one step instance's request.
    fn submit(&self, job: &Job) -> impl Future<Output = Result<Submission, StepError>> + Send;
    /// Asks for the state of a remote task created by `submit`.
    fn poll(
        &self,
        job: &Job,
        task: &TaskRef,
    ) -> impl Future<Output = Result<PollOutcome, StepError>> + Send;
    /// Whether finished results should carry downloaded files; when true, a
    /// result reused without files is passed through [`fetch`](Self::fetch).
    fn wants_files(&self) -> bool {
        false
    }
    /// Downloads the files of a result taken from an earlier run, into this
    /// run's folder. Nothing is sent to the service and nothing is charged.
    fn fetch(
        &self,
        _job: &Job,
        outputs: Outputs,
    ) -> impl Future<Output = Result<Outputs, StepError>> + Send {
        std::future::ready(Ok(outputs))
    }
    /// Reads the account's balance once (a free call), for observing what
    /// submits really cost; an error says why it is not known.
    fn balance(&self) -> impl Future<Output = Result<u64, String>> + Send {
        std::future::ready(Err("this executor cannot read the balance".to_owned()))
    }
}

/// What is already known about a request before it is sent: from this
/// run's journal (resume) or from earlier runs (reuse).
#[derive(Debug, Clone, PartialEq)]
pub enum Recall {
    /// Nothing: send it.
    New,
    /// It succeeded before: take these outputs and pay nothing more.
    /// `from` names the earlier run, `None` when it is this run (a resume),
    /// whose `credits` then still count.
    Reuse {
        outputs: Outputs,
        from: Option<String>,
        credits: u64,
    },
    /// It was accepted before and never finished: poll the task, never resend.
    Attach {
        task: TaskRef,
        from: Option<String>,
        credits: u64,
    },
    /// It was sent at `since` (as `attempt`, when known) and no answer was
    /// recorded: never resend. `earlier` lists the submits of this request
    /// the journal holds, first to last.
    InDoubt {
        from: Option<String>,
        since: String,
        attempt: Option<u32>,
        earlier: Vec<EarlierAttempt>,
    },
}

/// A submit made before the run was resumed, as its journal tells it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EarlierAttempt {
    /// 1 for the first.
    pub attempt: u32,
    /// When it was sent.
    pub sent_at: String,
    /// The task it was accepted as.
    pub task_id: Option<String>,
    /// When the service's acceptance was recorded.
    pub accepted_at: Option<String>,
    /// How it ended, when it ended badly.
    pub error: Option<StepError>,
    /// When its answer (or its end) was recorded.
    pub finished_at: Option<String>,
}

/// A durable fact the engine records as it goes. The intent to submit must
/// be durable before the request leaves; an error there stops the run.
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    /// About to send `job`, priced `credits`.
    Intent { job: &'a Job, credits: u64 },
    /// The service accepted `job`; `task` is `None` for a synchronous operation.
    Accepted {
        job: &'a Job,
        task: Option<&'a TaskRef>,
        credits: u64,
    },
    /// The attempt ended with nothing charged (or refunded): it may be sent again.
    Released {
        job: &'a Job,
        error: &'a StepError,
        refunded: u64,
    },
    /// The instance finished; `reused_from` says where an earlier result
    /// was taken from, `None` when this attempt produced it.
    /// A synchronous operation is recorded by this alone, with the
    /// `credits` it was charged, so its result is durable in one write.
    Succeeded {
        job: &'a Job,
        outputs: &'a Outputs,
        reused_from: Option<Reused<'a>>,
        credits: u64,
    },
    /// The instance failed for good; `credits` were charged for an answer
    /// it got (a synchronous call whose files could not be saved, whose
    /// answer `error.paid` keeps).
    Failed {
        job: &'a Job,
        error: &'a StepError,
        credits: u64,
    },
    /// A balance window closed (or was left without a closing balance).
    Observed { window: &'a Window },
}

/// Where a reused result was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reused<'a> {
    /// This run, before it was resumed: the result is in its journal already.
    ThisRun,
    /// The earlier run of that name.
    Run(&'a str),
}

/// The last request an earlier run made for an instance, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Earlier {
    pub run: String,
    pub hash: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub succeeded: bool,
    /// It failed for good (refused, or its task failed).
    pub failed: bool,
}

/// The requests the instances reading a ready instance would make, were
/// its outputs these (see [`Memory::recall_preferring`]).
pub type Dependents<'a> = dyn Fn(&Outputs) -> Vec<Job> + 'a;

/// Durable run state: consulted before each submit and told of every step.
pub trait Memory: Send + Sync + 'static {
    fn recall(&self, job: &Job) -> Recall;
    /// [`Memory::recall`], where more than one earlier result would do:
    /// `dependents` gives the requests the instances reading `job`'s
    /// outputs would make with a result's outputs, and the result whose
    /// dependents' requests have the most results of their own is taken,
    /// so that taking one result does not make everything after it new.
    fn recall_preferring(&self, job: &Job, _dependents: &Dependents<'_>) -> Recall {
        self.recall(job)
    }
    fn record(&self, record: Record<'_>) -> Result<(), String>;
    /// What an earlier run last asked for the instance named `inst`
    /// (`step[key/0]`), for telling what changed since.
    fn earlier(&self, _inst: &str) -> Option<Earlier> {
        None
    }
    /// What the run had spent before this process took it up (a resume).
    fn spent(&self) -> Account {
        Account::default()
    }
    /// The balance windows earlier processes of the run journaled.
    fn observed(&self) -> Vec<Window> {
        Vec::new()
    }
    /// Before a new request is sent: whether this run pays for it, or
    /// another run sharing the state (a shard) is paying and this one waits.
    fn share(&self, _job: &Job) -> Share {
        Share::Pay
    }
    /// [`Memory::recall`] once a [`Share::Wait`] is over, with what the
    /// shared state holds now; `Recall::New` goes back to [`Memory::share`].
    fn recall_again(&self, job: &Job) -> Recall {
        self.recall(job)
    }
}

/// Who pays for a new request among runs sharing one state.
pub enum Share {
    /// This run sends it.
    Pay,
    /// Another run is paying for it: when this ends, the request is
    /// looked at again ([`Memory::recall_again`]).
    Wait(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>),
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Share::Pay => "Pay",
            Share::Wait(_) => "Wait",
        })
    }
}

/// No memory: every request is new and nothing is recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Forgetful;

impl Memory for Forgetful {
    fn recall(&self, _job: &Job) -> Recall {
        Recall::New
    }
    fn record(&self, _record: Record<'_>) -> Result<(), String> {
        Ok(())
    }
}

/// Everything the engine reports, in the order it happens.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// A step instance now exists (its fan-out is known); it waits for its dependencies.
    Created {
        id: InstanceId,
        action: Action,
        operation: &'static str,
        planned_credits: u64,
    },
    /// The instance's dependencies are met and what to do with it is
    /// decided: it waits for a submit slot (or is reused, attached or held
    /// in doubt at once). Emitted once per instance, before its next event.
    Ready { id: InstanceId },
    /// A request is about to be sent.
    Submitting {
        id: InstanceId,
        attempt: u32,
        request_hash: String,
        fields: serde_json::Value,
    },
    /// The request was accepted; `task_id` is `None` for synchronous operations.
    Submitted {
        id: InstanceId,
        attempt: u32,
        task_id: Option<String>,
        credits: u64,
    },
    /// An attempt failed and will be tried again after `delay`; `attempt`
    /// is the one that failed.
    Retrying {
        id: InstanceId,
        attempt: u32,
        error: StepError,
        delay_ms: u64,
        refunded: u64,
    },
    /// The step instance finished.
    Succeeded { id: InstanceId, outputs: Outputs },
    /// The submits of an instance made before the run was resumed, as the
    /// journal holds them: its attempts so far, before its next event.
    Recalled {
        id: InstanceId,
        attempts: Vec<EarlierAttempt>,
    },
    /// The step instance's request succeeded earlier: in run `from`, or in
    /// this run before it was resumed (`None`, its `credits` still count).
    /// Nothing was sent.
    Reused {
        id: InstanceId,
        request_hash: String,
        from: Option<String>,
        credits: u64,
        outputs: Outputs,
    },
    /// A task accepted earlier (in run `from`, or in this run before it was
    /// resumed) is polled again instead of being resubmitted.
    Attached {
        id: InstanceId,
        request_hash: String,
        task_id: String,
        credits: u64,
        from: Option<String>,
    },
    /// The step instance failed for good; `refunded` credits came back (a
    /// failed task); `charged` credits were (or, in doubt, may have been)
    /// taken by the attempt that failed and not reported by `Submitted`.
    Failed {
        id: InstanceId,
        attempt: u32,
        error: StepError,
        refunded: u64,
        charged: u64,
    },
    /// The step instance will not run.
    Skipped { id: InstanceId, reason: String },
    /// The step instance does not run because its condition, or that of
    /// an instance it needs, is false: skipped (condition), not a failure.
    #[serde(rename = "skipped_condition")]
    Unmet { id: InstanceId, reason: String },
    /// A rate limit answered 429; submits of its class (of every class,
    /// once the slot is known to be shared) pause for `delay_ms`.
    Throttled { delay_ms: u64 },
    /// The run is stopping (Ctrl-C, unauthorised, out of credits, fail-fast); in-flight tasks are still polled.
    Stopping { reason: StopReason },
    /// The run's credits changed (and, first, what a resumed run had
    /// spent before): the totals every view shows.
    Credits { credits: Account },
    /// A balance window closed: what the service was seen to take in it
    /// (also, first, the windows an earlier process of the run journaled).
    Observed { window: Window },
    /// Nothing is left to do.
    Finished { summary: Summary },
}

/// Totals at the end of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    /// The run's credits, earlier processes of a resumed run included.
    pub credits: Account,
    /// Submits the service accepted.
    pub submits: u64,
    pub polls: u64,
    /// Why the run stopped early, if it did.
    pub stopped: Option<StopReason>,
    /// Instances whose results were taken from earlier runs (counted in `succeeded`).
    pub reused: usize,
    /// Tasks of earlier attempts polled again instead of being resent.
    pub attached: usize,
    /// Instances left out by `--select` / `--exclude` (not counted in `skipped`).
    pub unselected: usize,
    /// Instances skipped by a condition (not counted in `skipped`: the run
    /// is complete without them).
    pub unmet: usize,
    /// The service's 429s showed that every paid call shares one submit
    /// slot, so quick calls took the generation pace from then on.
    pub rate_limit_shared: bool,
}

impl Summary {
    /// What the run amounts to; every view of its ending derives from this.
    pub fn outcome(&self) -> RunOutcome {
        match &self.stopped {
            Some(reason) => RunOutcome::Stopped {
                reason: reason.clone(),
                failed: self.failed > 0,
            },
            None if self.failed > 0 => RunOutcome::Failed,
            None if self.skipped > 0 => RunOutcome::Incomplete,
            None => RunOutcome::Succeeded,
        }
    }
}

/// The summary as logs carry it: the counts, the reason, and the flags
/// that readers of the JSON log test.
impl Serialize for Summary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            succeeded: usize,
            failed: usize,
            skipped: usize,
            credits_charged: u64,
            credits_refunded: u64,
            credits_in_doubt: u64,
            credits_net: u64,
            submits: u64,
            polls: u64,
            stopped: Option<&'a StopReason>,
            interrupted: bool,
            unauthorised: bool,
            reused: usize,
            attached: usize,
            unselected: usize,
            #[serde(skip_serializing_if = "is_zero")]
            skipped_condition: usize,
            over_budget: bool,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            rate_limit_shared: bool,
        }
        let stopped = self.stopped.as_ref();
        Wire {
            succeeded: self.succeeded,
            failed: self.failed,
            skipped: self.skipped,
            credits_charged: self.credits.charged,
            credits_refunded: self.credits.refunded,
            credits_in_doubt: self.credits.in_doubt,
            credits_net: self.credits.net,
            submits: self.submits,
            polls: self.polls,
            stopped,
            interrupted: stopped == Some(&StopReason::Interrupted),
            unauthorised: self.outcome().exit_code() == crate::exit::API_UNAVAILABLE,
            reused: self.reused,
            attached: self.attached,
            unselected: self.unselected,
            skipped_condition: self.unmet,
            over_budget: matches!(stopped, Some(StopReason::Budget { .. })),
            rate_limit_shared: self.rate_limit_shared,
        }
        .serialize(serializer)
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[cfg(test)]
mod fix_tests {
    use super::ErrorKind;

    #[test]
    fn every_kind_of_failure_says_how_to_take_the_run_up_again() {
        let kinds = [
            ErrorKind::Invalid,
            ErrorKind::Unauthorised,
            ErrorKind::OutOfCredits,
            ErrorKind::Moderation,
            ErrorKind::RateLimited,
            ErrorKind::Transient,
            ErrorKind::InDoubt,
            ErrorKind::TaskFailed,
            ErrorKind::Timeout,
            ErrorKind::Local,
        ];
        for kind in kinds {
            assert!(
                kind.fix().contains("sonicflow run --resume RUN_DIR"),
                "{kind:?}"
            );
        }
        assert!(ErrorKind::InDoubt.fix().contains("--resend-in-doubt"));
    }
}
