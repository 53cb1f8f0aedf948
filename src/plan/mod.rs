//! From specs to a `Plan`: references parsed and type-checked, edges
//! inferred, cycles reported with their path, per-model limits checked, every
//! step priced from a dated table. Pure: no network, and no file reads beyond
//! what the loader already did.

mod analysis;
mod build;
pub mod catalog;
pub mod condition;
pub mod graph;
pub mod hash;
mod limits;
pub mod models;
pub mod names;
mod refs;
pub mod resolve;
pub mod rules;
pub mod select;
pub mod shape;
pub mod shard;

use std::time::Duration;

use indexmap::IndexMap;

use crate::action::Action;
use crate::prices::PriceTable;
pub use build::{Options, build};
use condition::When;
pub use limits::PaceFlags;
pub use resolve::FieldValue;
use shape::Count;

/// The plan of a manifest given as text, for tests; panics on any diagnostic.
#[cfg(test)]
pub(crate) fn from_yaml(yaml: &str) -> Plan {
    let loaded =
        crate::manifest::load::load_str("t.yaml", yaml.to_owned(), std::path::Path::new("."))
            .unwrap_or_else(|d| panic!("{d:?}"));
    let options = Options {
        require_inputs: true,
        ..Options::default()
    };
    build(&loaded, &options).unwrap_or_else(|d| panic!("{d:?}"))
}

/// A validated, resolved, priced pipeline. Immutable once built.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub file: String,
    pub description: Option<String>,
    /// Steps in execution order (dependencies first, then file order).
    pub steps: Vec<PlanStep>,
    /// One instance of the graph per matrix row; a single unnamed one without a matrix.
    pub instances: Vec<Instance>,
    /// Input values after `--input` overrides.
    pub inputs: IndexMap<String, serde_json::Value>,
    pub prices: PriceTable,
    pub limits: Limits,
    /// The credit cap, from `--max-credits` or `limits.max_credits`.
    pub max_credits: Option<u64>,
    /// Result files the manifest asks to download.
    pub artifacts: crate::manifest::spec::ArtifactsSpec,
    /// How saved files are named (`artifacts.name`, checked).
    pub file_names: crate::steps::naming::FileNames,
    /// Problems found that do not stop the plan (see `Options::require_inputs`).
    pub warnings: Vec<crate::diag::Diagnostic>,
}

/// One instance of the whole graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The matrix key value; `None` without a matrix.
    pub key: Option<String>,
    pub matrix: IndexMap<String, serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct PlanStep {
    pub id: String,
    pub action: Action,
    /// The operation submitted: the `task_type` or endpoint, also the price key.
    pub operation: &'static str,
    pub fields: IndexMap<String, FieldValue>,
    pub for_each: Option<FieldValue>,
    /// Positions in `Plan::steps` of the steps this one waits for.
    pub deps: Vec<usize>,
    /// Those of `deps` whose outputs it reads (the others are `needs` only).
    pub data_deps: Vec<usize>,
    /// The fanned-out steps this step runs once per element of, outermost first
    /// (positions in `Plan::steps`; includes itself when it has `for_each`).
    pub axis: Vec<usize>,
    /// Remote calls per graph instance.
    pub fan_out: u64,
    /// True when `fan_out` is a documented expectation rather than a known count.
    pub fan_out_expected: bool,
    /// True when `fan_out` is a bound: a fan-out over a list known only to
    /// have at most that many elements.
    pub fan_out_at_most: bool,
    /// Positions in `Plan::steps` of the fanned-out steps it reads as one
    /// list (`steps.<id>.outputs[*]`): it waits for all their instances.
    pub fan_ins: Vec<usize>,
    /// Runs once in the whole run (`per: pipeline`) rather than once per
    /// matrix row. Its one instance stands in row 0 with no row key, so it
    /// is named by the step id alone in plans, events, results and the
    /// journal; what reads it in any row reads that instance.
    pub per_pipeline: bool,
    /// What its fan-ins do with an instance that failed or was skipped.
    pub on_missing: crate::manifest::spec::OnMissing,
    /// The parsed `if:`, evaluated per instance before its request is built.
    pub condition: Option<FieldValue>,
    /// Per matrix row (as `Plan::instances`): whether the step runs there,
    /// from the conditions known before the run.
    pub when: Vec<condition::When>,
    pub unit_credits: u64,
    pub retry: RetryPolicy,
    pub poll: PollPolicy,
    pub timeout: Option<Duration>,
    /// Whether `--select` / `--exclude` keep the step.
    pub scope: Scope,
    /// `key:`: the field of each `for_each` element that names its instance.
    pub key: Option<String>,
}

/// What a run may do with a step once `--select` / `--exclude` are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Selected (or nothing was selected): reused or run.
    Run,
    /// Not selected, but a selected step needs it: reused or run.
    Needed,
    /// Excluded, but a selected step needs it: reused if an earlier run has it, never paid for.
    ReuseOnly,
    /// Left out: neither run nor reused.
    Out,
}

impl Scope {
    /// Whether the step's instances may be paid for.
    pub fn may_submit(self) -> bool {
        matches!(self, Scope::Run | Scope::Needed)
    }
}

impl PlanStep {
    /// Calls in matrix row `row`: none where a condition known before the
    /// run is false; "at most" where one is known only at run time or the
    /// fan-out is over a list of bounded length.
    pub fn calls_in(&self, row: usize) -> Count {
        if self.per_pipeline && row > 0 {
            return Count::Exact(0);
        }
        match self.when.get(row).copied().unwrap_or(When::Always) {
            When::Never => Count::Exact(0),
            When::Maybe => Count::AtMost(self.fan_out),
            When::Always if self.fan_out_at_most => Count::AtMost(self.fan_out),
            When::Always if self.fan_out_expected => Count::Expected(self.fan_out),
            When::Always => Count::Exact(self.fan_out),
        }
    }

    /// Calls over every matrix row, at most.
    pub fn max_calls(&self) -> u64 {
        (0..self.when.len()).map(|r| self.calls_in(r).value()).sum()
    }
}

impl Plan {
    /// The row where step `s`'s instances stand when read from `row`.
    pub fn home_row(&self, s: usize, row: usize) -> usize {
        if self.steps[s].per_pipeline { 0 } else { row }
    }

    /// Credits for the whole plan (steps that may be paid for); the most it
    /// can cost where a count is "at most".
    pub fn total_credits(&self) -> u64 {
        self.steps
            .iter()
            .filter(|s| s.scope.may_submit())
            .map(|s| s.max_calls() * s.unit_credits)
            .sum()
    }

    /// Whether any count in the total is only an expectation.
    pub fn total_expected(&self) -> bool {
        self.steps
            .iter()
            .any(|s| s.fan_out_expected && s.unit_credits > 0)
    }

    /// Whether the total is a maximum: some paid step runs only if a
    /// condition known at run time holds, or fans out over a bounded list.
    pub fn total_at_most(&self) -> bool {
        self.steps.iter().any(|s| {
            s.scope.may_submit()
                && s.unit_credits > 0
                && (0..self.instances.len()).any(|r| s.calls_in(r).is_at_most())
        })
    }
}

/// Run-wide limits, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_in_flight: u32,
    /// Generation submits per minute.
    pub submits_per_minute: u32,
    /// Quick paid calls per minute.
    pub quick_calls_per_minute: u32,
    pub polls_per_second: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
    pub factor: f64,
    pub jitter: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PollPolicy {
    pub schedule: PollSchedule,
    /// Spread of the delays: either way for a fixed schedule, only shorter
    /// for an adaptive one (which must keep its lateness budget).
    pub jitter: f64,
    pub timeout: Duration,
}

/// When a task is asked again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PollSchedule {
    /// From the latency window expected of the step's operation, as the
    /// run learns it, each task seen done within `lateness` of finishing.
    Adaptive { lateness: Lateness },
    /// `poll: { initial_delay, interval }`: the first poll after
    /// `initial_delay`, then one every `interval`.
    Fixed {
        initial_delay: Duration,
        interval: Duration,
    },
}

/// How late a poll may see a finished task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lateness {
    /// At most this fraction of the time the task took (`25%`).
    Fraction(f64),
    /// At most this long after it finished (`20s`).
    Within(Duration),
}

impl std::fmt::Display for Lateness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lateness::Fraction(x) => write!(f, "{}%", x * 100.0),
            Lateness::Within(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}
