//! From specs to a `Plan`: references parsed and type-checked, edges
//! inferred, cycles reported with their path, per-model limits checked, every
//! step priced from a dated table. Pure: no network, and no file reads beyond
//! what the loader already did.

mod analysis;
mod build;
pub mod catalog;
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

use std::time::Duration;

use indexmap::IndexMap;

use crate::action::Action;
use crate::prices::PriceTable;
pub use build::{Options, build};
pub use limits::PaceFlags;
pub use resolve::FieldValue;

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
    /// Credits for one graph instance.
    pub fn credits(&self) -> u64 {
        self.unit_credits * self.fan_out
    }
}

impl Plan {
    /// Credits for the whole plan (steps that may be paid for).
    pub fn total_credits(&self) -> u64 {
        self.steps
            .iter()
            .filter(|s| s.scope.may_submit())
            .map(PlanStep::credits)
            .sum::<u64>()
            * self.instances.len() as u64
    }

    /// Whether any count in the total is only an expectation.
    pub fn total_expected(&self) -> bool {
        self.steps
            .iter()
            .any(|s| s.fan_out_expected && s.unit_credits > 0)
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
    pub initial_delay: Duration,
    pub interval: Duration,
    pub jitter: f64,
    pub timeout: Duration,
}
