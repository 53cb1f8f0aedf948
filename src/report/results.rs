//! The shape of `results.json` (DESIGN §5): what a run did, per step
//! instance, in a form a later run, a script or a person can read.
//!
//! Field order is declaration order and steps are sorted, so two runs of the
//! same plan produce files that diff line by line. The JSON Schema in
//! `schema/results.schema.json` is generated from these types.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::engine::{Account, RunOutcome, StopReason};

/// Bumped when a field changes meaning or disappears; new fields do not bump it.
pub const SCHEMA_VERSION: u32 = 1;

/// The results manifest of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Results {
    /// Version of this file's format.
    pub schema_version: u32,
    pub tool: Tool,
    pub pipeline: Pipeline,
    /// The price table the plan was priced with.
    pub price_table: PriceTableRef,
    /// When the run began (RFC 3339, UTC, milliseconds).
    pub started_at: String,
    /// When the run finished; `null` while it runs.
    pub finished_at: Option<String>,
    pub status: RunStatus,
    /// Why the run stopped early, if it did.
    pub stop_reason: Option<String>,
    pub totals: Totals,
    /// One entry per step instance, ordered by matrix row, then plan step
    /// position, then fan-out path.
    pub steps: Vec<StepResult>,
}

/// The program that wrote the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

/// The pipeline manifest that was run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    pub name: String,
    /// The manifest file as given on the command line.
    pub file: String,
    /// Hex SHA-256 of the manifest file's bytes.
    pub sha256: String,
}

/// Which dated price table priced the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceTableRef {
    pub name: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub source: String,
    /// `name@date#hash` of the prices, changing whenever any price changes.
    pub version: String,
}

/// Where the run as a whole stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still running (or killed before it could say otherwise).
    Running,
    /// Every step instance succeeded.
    Succeeded,
    /// Nothing failed, but some step instances did not run (a dependency
    /// was never produced, or an excluded step had no earlier result); the
    /// run exits 1.
    Incomplete,
    /// Finished with at least one failed step instance.
    Failed,
    /// Interrupted by the user (Ctrl-C).
    Interrupted,
    /// Stopped early (out of credits, unauthorised, fail-fast).
    Stopped,
}

impl RunStatus {
    /// How a run that is over stands.
    pub fn of(outcome: &RunOutcome) -> RunStatus {
        match outcome {
            RunOutcome::Stopped {
                reason: StopReason::Interrupted,
                ..
            } => RunStatus::Interrupted,
            RunOutcome::Stopped { .. } => RunStatus::Stopped,
            RunOutcome::Failed => RunStatus::Failed,
            RunOutcome::Incomplete => RunStatus::Incomplete,
            RunOutcome::Succeeded => RunStatus::Succeeded,
        }
    }
}

/// Counts over every step instance created so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    pub instances: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub running: usize,
    pub waiting: usize,
    /// The plan's estimate for the whole run, before fan-outs were known.
    pub credits_estimated: u64,
    /// Sum of the planned credits of the instances created.
    pub credits_planned: u64,
    /// Credits the service took or may have taken over the run and its
    /// resumes: accepted submits, and sends in doubt counted as charged.
    pub credits_charged: u64,
    /// Credits given back for failed tasks.
    pub credits_refunded: u64,
    /// The part of `credits_charged` sent with no answer recorded.
    #[serde(default)]
    pub credits_in_doubt: u64,
    /// `credits_charged - credits_refunded`.
    #[serde(default)]
    pub credits_net: u64,
}

impl Totals {
    /// Takes the run's credits as the engine accounts them.
    pub fn set_credits(&mut self, credits: &Account) {
        self.credits_charged = credits.charged;
        self.credits_refunded = credits.refunded;
        self.credits_in_doubt = credits.in_doubt;
        self.credits_net = credits.net;
    }

    /// The run's credits, as [`set_credits`](Self::set_credits) took them.
    pub fn credits(&self) -> Account {
        Account {
            charged: self.credits_charged,
            refunded: self.credits_refunded,
            in_doubt: self.credits_in_doubt,
            net: self.credits_net,
        }
    }
}

/// One step instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepResult {
    /// The step id.
    pub step: String,
    /// `rain/0.1`-style name of the instance; `null` when the step runs once.
    pub instance: Option<String>,
    /// The matrix key of the row, if the pipeline has a matrix.
    pub row_key: Option<String>,
    /// Element indices along the step's fan-out axis, outermost first.
    pub path: Vec<usize>,
    pub action: Action,
    /// The operation submitted (`task_type` or endpoint).
    pub operation: String,
    pub status: StepStatus,
    /// Identity of the last request sent: operation, resolved fields, price table.
    pub request_hash: Option<String>,
    /// The remote task of the last accepted submit.
    pub task_id: Option<String>,
    pub credits: Credits,
    /// Every submit, first to last.
    pub attempts: Vec<Attempt>,
    /// The outputs, shaped like the action's outputs; `null` until it succeeds.
    pub outputs: serde_json::Value,
    /// Files downloaded into the output folder.
    pub files: Vec<FileRecord>,
    /// When the first attempt was submitted.
    pub started_at: Option<String>,
    /// When the instance succeeded, failed or was skipped.
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// Why it did not run, when skipped.
    pub skip_reason: Option<String>,
    /// The error that failed it for good.
    pub error: Option<ErrorRecord>,
    /// The run whose result was reused instead of paying again (nothing was sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
    /// The run whose accepted task this run polled again instead of resubmitting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_from: Option<String>,
}

/// Where a step instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Waiting,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped
        )
    }
}

/// Credits of one step instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credits {
    pub planned: u64,
    /// Taken, or in doubt and counted as taken, by this run's attempts.
    pub charged: u64,
    pub refunded: u64,
    /// The part of `charged` sent with no answer recorded.
    #[serde(default)]
    pub in_doubt: u64,
}

/// One submit of a step instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    /// 1 for the first.
    pub attempt: u32,
    pub task_id: Option<String>,
    pub error: Option<ErrorRecord>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// An error as recorded: its class (DESIGN §6) and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorRecord {
    /// `invalid`, `unauthorised`, `out_of_credits`, `moderation`,
    /// `rate_limited`, `transient`, `in_doubt`, `task_failed`, `timeout` or `local`.
    pub kind: String,
    pub message: String,
}

/// A downloaded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    /// Relative to the output folder.
    pub path: String,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    pub bytes: u64,
    /// Where it was downloaded from.
    pub url: String,
}

/// The JSON Schema of `results.json`, as committed in `schema/results.schema.json`.
pub fn results_schema() -> serde_json::Value {
    schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<Results>()
        .to_value()
}
