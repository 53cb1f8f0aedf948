//! The shape of `results.json`: what a run did, per step
//! instance, in a form a later run, a script or a person can read.
//!
//! Field order is declaration order and steps are sorted, so two runs of the
//! same plan produce files that diff line by line. The JSON Schema in
//! `schema/results.schema.json` is generated from these types.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::engine::observe::Observations;
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
    /// What the service was seen to charge, read off the balance around
    /// each submit; absent when charges were not observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_charges: Option<ObservedCharges>,
    /// Which API the run talked to; absent in files written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// The run id (`--run-id`) the shards of one batch share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The shard of the batch this run covered (`--shard K/N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// The pipeline's inputs as the run resolved them (defaults and `--input`).
    #[serde(default)]
    pub inputs: indexmap::IndexMap<String, serde_json::Value>,
    /// The matrix the run expanded, row by row; absent without a matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<MatrixInfo>,
    /// Milliseconds from `started_at` to `finished_at` (to the last write
    /// while the run goes on).
    #[serde(default)]
    pub wall_ms: Option<u64>,
    /// One entry per step instance, ordered by matrix row, then plan step
    /// position, then fan-out path.
    pub steps: Vec<StepResult>,
}

/// The part of a batch one shard covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShardInfo {
    /// K: this shard, from 1.
    pub index: u32,
    /// N: how many shards the batch was split into.
    pub count: u32,
    /// The keys of every matrix row of the batch (all shards), in matrix
    /// order: how `sonicflow merge` orders the shards' rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matrix_keys: Vec<String>,
}

/// The API a run talked to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Base URL of the API (never with a key in it).
    pub base_url: String,
    /// Whether it was a local sandbox.
    pub sandbox: bool,
}

/// The matrix of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatrixInfo {
    /// The CSV or JSONL file the rows came from; `null` for rows in the manifest.
    pub file: Option<String>,
    /// Hex SHA-256 of that file's bytes.
    pub sha256: Option<String>,
    /// Every row the run expanded, in order.
    pub rows: Vec<MatrixRow>,
}

/// One matrix row: its key and its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatrixRow {
    pub key: String,
    pub values: indexmap::IndexMap<String, serde_json::Value>,
}

/// The run's charges as the balance showed them, against the price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservedCharges {
    /// Net credits the balance went down by across the windows read on
    /// both sides (negative: more came back than went).
    pub spent: i64,
    /// Per step, in name order: the table's price of the submits seen
    /// against what the balance showed they cost.
    pub steps: Vec<ObservedStep>,
    /// Per operation submitted, in name order.
    pub operations: Vec<ObservedOperation>,
    /// Balance changes no request explains (another user of the key):
    /// never counted in any operation or step.
    pub unattributed: Vec<UnattributedChange>,
    /// Sum of `unattributed`.
    pub unattributed_total: i64,
    /// Changes shared by several requests that the balance cannot tell apart.
    pub shared: Vec<SharedChange>,
    /// Requests (`instance #attempt`) whose window was not read on both
    /// sides, so what they cost is not known.
    pub unknown: Vec<String>,
    /// Balance reads that failed or took too long.
    pub failed_reads: u32,
    /// One line per operation charged differently from the table.
    pub warnings: Vec<String>,
}

/// What one step's submits were seen to cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservedStep {
    pub step: String,
    /// The table's price of every submit of it seen.
    pub planned: u64,
    /// What its submits observed on their own were charged.
    pub observed: u64,
    /// Credits seen coming back for its failed tasks.
    pub refunded: u64,
    /// Submits whose charge was not seen on its own (shared or unknown).
    pub unobserved_calls: u64,
}

/// What one operation was seen to cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservedOperation {
    pub operation: String,
    /// The price table's price.
    pub table_price: u64,
    /// Each price the service charged, with how many submits it charged it.
    pub observed: Vec<ObservedPrice>,
    /// Submits whose charge was not seen on its own (shared or unknown).
    pub unobserved_calls: u64,
    /// Credits seen coming back for its failed tasks.
    pub refunded: u64,
}

/// A price seen charged, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservedPrice {
    pub credits: u64,
    pub calls: u64,
}

/// A balance change no request explains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnattributedChange {
    /// The balance window it was seen in (numbered over the run from 0).
    pub window: u64,
    /// Credits spent (negative: credits came back).
    pub credits: i64,
}

/// A change shared by requests whose exchanges fell in the same windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SharedChange {
    /// `instance #attempt` of each request, `(refund)` for a failed task's.
    pub requests: Vec<String>,
    /// Credits spent over them (negative: more came back than went).
    pub credits: i64,
}

impl ObservedCharges {
    /// The results' view of what the balance windows say.
    pub fn of(obs: &Observations) -> ObservedCharges {
        ObservedCharges {
            spent: obs.spent,
            steps: obs
                .steps
                .iter()
                .map(|(step, s)| ObservedStep {
                    step: step.clone(),
                    planned: s.planned,
                    observed: s.charged,
                    refunded: s.refunded,
                    unobserved_calls: s.unobserved,
                })
                .collect(),
            operations: obs
                .operations
                .iter()
                .map(|(operation, op)| ObservedOperation {
                    operation: operation.clone(),
                    table_price: op.table,
                    observed: op
                        .observed
                        .iter()
                        .map(|(&credits, &calls)| ObservedPrice { credits, calls })
                        .collect(),
                    unobserved_calls: op.unobserved_calls,
                    refunded: op.refunded,
                })
                .collect(),
            unattributed: obs
                .unattributed
                .iter()
                .map(|u| UnattributedChange {
                    window: u.window,
                    credits: u.spent,
                })
                .collect(),
            unattributed_total: obs.unattributed_spent(),
            shared: obs
                .shared
                .iter()
                .map(|s| SharedChange {
                    requests: s.requests.clone(),
                    credits: s.spent,
                })
                .collect(),
            unknown: obs.unknown.clone(),
            failed_reads: obs.failed_reads,
            warnings: obs.differences().iter().map(ToString::to_string).collect(),
        }
    }

    /// The tables a person reads, per step and per operation, then [`notes`](Self::notes).
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "observed charges (the balance read around each submit):"
        );
        let width = self
            .steps
            .iter()
            .map(|s| s.step.len())
            .chain(self.operations.iter().map(|o| o.operation.len()))
            .chain([9])
            .max()
            .unwrap_or(9);
        let _ = writeln!(
            out,
            "  {:<width$}  planned  observed  refunded  unobserved",
            "step"
        );
        for s in &self.steps {
            let _ = writeln!(
                out,
                "  {:<width$}  {:>7}  {:>8}  {:>8}  {:>10}",
                s.step, s.planned, s.observed, s.refunded, s.unobserved_calls
            );
        }
        let _ = writeln!(out, "  {:<width$}  table  observed", "operation");
        for o in &self.operations {
            let seen: Vec<String> = o
                .observed
                .iter()
                .map(|p| format!("{} x{}", p.credits, p.calls))
                .chain((o.unobserved_calls > 0).then(|| format!("? x{}", o.unobserved_calls)))
                .collect();
            let _ = writeln!(
                out,
                "  {:<width$}  {:>5}  {}",
                o.operation,
                o.table_price,
                seen.join(", ")
            );
        }
        for note in self.notes() {
            let _ = writeln!(out, "{note}");
        }
        out
    }

    /// The lines a person reads: warnings, unattributed and unknown changes.
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self
            .warnings
            .iter()
            .map(|w| format!("warning: {w}"))
            .collect();
        if self.unattributed_total != 0 || !self.unattributed.is_empty() {
            let windows: Vec<String> = self
                .unattributed
                .iter()
                .map(|u| u.window.to_string())
                .collect();
            notes.push(format!(
                "warning: the balance moved by {} that no request of this run explains (another user of the key?), in window {}; not counted in any step",
                crate::format::credits(self.unattributed_total),
                windows.join(", ")
            ));
        }
        if !self.unknown.is_empty() {
            notes.push(format!(
                "note: what {} cost is not known: the balance could not be read around them",
                crate::format::count(self.unknown.len(), "request", "requests")
            ));
        }
        notes
    }
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

    /// The word every rendering of a run uses, as `results.json` spells it.
    pub fn word(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Incomplete => "incomplete",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Stopped => "stopped",
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
    /// Instances skipped because a condition was false (not in `skipped`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_condition: usize,
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
    /// The resolved request fields of the last submit (what was sent);
    /// `null` when this run sent nothing for it (reused, attached, skipped).
    #[serde(default)]
    pub request: Option<serde_json::Value>,
    pub credits: Credits,
    /// Every submit, first to last.
    pub attempts: Vec<Attempt>,
    /// The outputs, shaped like the action's outputs; `null` until it succeeds.
    pub outputs: serde_json::Value,
    /// Files downloaded into the output folder.
    pub files: Vec<FileRecord>,
    /// When its dependencies were met and it was decided what to do with
    /// it: from then it waited for a submit slot (a reused, attached or
    /// in-doubt instance is taken up at that moment); `null` if it never got
    /// that far (skipped, or a condition was false).
    #[serde(default)]
    pub queued_at: Option<String>,
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

impl Results {
    /// The instances that failed for good, in results order.
    pub fn failed_steps(&self) -> Vec<&StepResult> {
        self.steps
            .iter()
            .filter(|s| s.status == StepStatus::Failed)
            .collect()
    }
}

impl StepResult {
    /// The instance's name as events and the journal write it: `song`, `song[rain/0]`.
    pub fn name(&self) -> String {
        match &self.instance {
            Some(instance) => format!("{}[{instance}]", self.step),
            None => self.step.clone(),
        }
    }
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
    /// Its condition, or that of an instance it needs, was false: it did
    /// not run, and the run is complete without it.
    SkippedCondition,
}

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded
                | StepStatus::Failed
                | StepStatus::Skipped
                | StepStatus::SkippedCondition
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
    /// What the balance showed this instance's submits cost; absent when
    /// charges were not observed or it sent nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedCredits>,
}

/// An instance's credits as the balance showed them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservedCredits {
    /// Seen taken by its submits.
    pub charged: u64,
    /// Seen given back for its failed tasks.
    pub refunded: u64,
    /// Its submits whose charge was not seen on its own (shared or unknown).
    pub unobserved_attempts: u64,
}

/// One submit of a step instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    /// 1 for the first.
    pub attempt: u32,
    pub task_id: Option<String>,
    pub error: Option<ErrorRecord>,
    /// When the request was sent.
    pub started_at: String,
    /// When the service accepted it; `null` if it never did.
    #[serde(default)]
    pub accepted_at: Option<String>,
    pub finished_at: Option<String>,
}

/// An error as recorded: its class and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorRecord {
    /// `invalid`, `unauthorised`, `out_of_credits`, `moderation`,
    /// `rate_limited`, `transient`, `in_doubt`, `task_failed`, `timeout` or `local`.
    pub kind: String,
    pub message: String,
}

impl ErrorRecord {
    /// What a person does about an error of this class (the engine's
    /// word for it, [`ErrorKind::fix`](crate::engine::ErrorKind::fix)), for
    /// every rendering of a run that shows its failures; `None` for a kind
    /// this sonicflow does not know.
    pub fn fix(&self) -> Option<&'static str> {
        let kind: crate::engine::ErrorKind =
            serde_json::from_value(serde_json::Value::String(self.kind.clone())).ok()?;
        Some(kind.fix())
    }
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
    /// The matrix key of the row it belongs to.
    #[serde(default)]
    pub row: Option<String>,
    /// The step id that made it.
    #[serde(default)]
    pub step: String,
    /// The step instance's name (`rain/0.1`), `null` when the step runs once.
    #[serde(default)]
    pub instance: Option<String>,
    /// The clip it is of (for a stem: the stem's own clip id).
    #[serde(default)]
    pub clip_id: Option<String>,
    /// What it is.
    #[serde(default)]
    pub kind: FileKind,
    /// For a stem: its name (`vocals`, `drums`, …).
    #[serde(default)]
    pub stem: Option<String>,
    /// The clip's title, when the service gave one.
    #[serde(default)]
    pub title: Option<String>,
}

/// What a downloaded file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A generated clip's MP3.
    #[default]
    Audio,
    /// A clip's cover art.
    Image,
    /// A WAV export.
    Wav,
    /// A MIDI export.
    Midi,
    /// One stem of a split.
    Stem,
}

/// The JSON Schema of `results.json`, as committed in `schema/results.schema.json`.
pub fn results_schema() -> serde_json::Value {
    schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<Results>()
        .to_value()
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::observe::{Window, WindowSubmit, attribute};

    #[test]
    fn the_observed_tables_name_each_step_operation_difference_and_unattributed_change() {
        let submit = |inst: &str| WindowSubmit {
            inst: inst.to_owned(),
            attempt: 1,
            operation: "create_music".to_owned(),
            planned: 15,
            since: None,
        };
        let windows = [
            Window {
                seq: 1,
                before: Some(100),
                after: Some(60),
                submits: vec![submit("song[a]"), submit("song[b]")],
                failures: Vec::new(),
                failed_reads: 0,
            },
            Window {
                seq: 2,
                before: Some(60),
                after: Some(57),
                submits: Vec::new(),
                failures: Vec::new(),
                failed_reads: 0,
            },
        ];
        let text = ObservedCharges::of(&attribute(&windows)).render();
        assert_eq!(
            text,
            "observed charges (the balance read around each submit):\n\
             \x20 step          planned  observed  refunded  unobserved\n\
             \x20 song               30        40         0           0\n\
             \x20 operation     table  observed\n\
             \x20 create_music     15  20 x2\n\
             warning: create_music: the price table says 15, the service charged 20 (2 calls)\n\
             warning: the balance moved by 3 credits that no request of this run explains (another user of the key?), in window 2; not counted in any step\n"
        );
    }
}
