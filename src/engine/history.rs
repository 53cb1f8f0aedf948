//! How the plan stands against earlier runs, instance by instance and row
//! by row: the status column of `sonicflow plan`. It is read off the
//! forecast, so what the plan says comes from the same decisions the run
//! makes.

use std::fmt;

use serde::Serialize;

use super::{Earlier, Fate, Forecast, Memory, Outlook};
use crate::plan::{Plan, Scope};

/// Where an instance, or a row of the plan, stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum ReuseStatus {
    /// Nothing earlier: it will be paid for.
    #[default]
    #[serde(rename = "new")]
    New,
    #[serde(rename = "reused")]
    Reused,
    /// An earlier run sent something else for it (which fields), or an input runs again.
    #[serde(rename = "changed")]
    Changed,
    /// The same request failed in an earlier run; it is sent again.
    #[serde(rename = "failed before")]
    FailedBefore,
    #[serde(rename = "in doubt")]
    InDoubt,
    /// A task accepted earlier will be polled.
    #[serde(rename = "in flight")]
    InFlight,
    #[serde(rename = "not selected")]
    NotSelected,
    /// Only reused in this run, and nothing earlier has its result.
    #[serde(rename = "excluded")]
    Excluded,
    /// A dependency will not succeed.
    #[serde(rename = "blocked")]
    Blocked,
    /// No request can be built: a reference has no value.
    #[serde(rename = "invalid")]
    Invalid,
    /// Its condition, or that of something it needs, is false: it does not run.
    #[serde(rename = "skipped (condition)")]
    SkippedCondition,
    /// A row whose instances stand differently.
    #[serde(rename = "mixed")]
    Mixed,
}

impl ReuseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReuseStatus::New => "new",
            ReuseStatus::Reused => "reused",
            ReuseStatus::Changed => "changed",
            ReuseStatus::FailedBefore => "failed before",
            ReuseStatus::InDoubt => "in doubt",
            ReuseStatus::InFlight => "in flight",
            ReuseStatus::NotSelected => "not selected",
            ReuseStatus::Excluded => "excluded",
            ReuseStatus::Blocked => "blocked",
            ReuseStatus::Invalid => "invalid",
            ReuseStatus::SkippedCondition => "skipped (condition)",
            ReuseStatus::Mixed => "mixed",
        }
    }
}

impl fmt::Display for ReuseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one (matrix row, step) of the plan stands against the past.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RowHistory {
    pub status: ReuseStatus,
    /// Which run, which inputs changed, or why.
    pub detail: String,
    /// Credits this row will actually spend.
    pub to_spend: u64,
    /// Calls the row makes, where its fan-outs are known now.
    #[serde(skip)]
    pub calls: Option<u64>,
    pub instances: Vec<InstanceHistory>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceHistory {
    pub instance: String,
    pub status: ReuseStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<String>,
}

/// The standing of one forecast instance, with the earlier run it refers to and what changed.
fn classify(memory: &dyn Memory, f: &Forecast) -> InstanceHistory {
    let inst = f.id.to_string();
    let (status, run, changed) = match &f.fate {
        Fate::Reuse { from } => (ReuseStatus::Reused, from.clone(), Vec::new()),
        Fate::Attach { from } => (ReuseStatus::InFlight, from.clone(), Vec::new()),
        Fate::InDoubt { from } => (ReuseStatus::InDoubt, from.clone(), Vec::new()),
        Fate::Unselected => (ReuseStatus::NotSelected, None, Vec::new()),
        Fate::Excluded => (ReuseStatus::Excluded, None, Vec::new()),
        Fate::Blocked { reason } => (ReuseStatus::Blocked, None, vec![reason.clone()]),
        Fate::Invalid { reason } => (ReuseStatus::Invalid, None, vec![reason.clone()]),
        Fate::Unmet { reason } => (ReuseStatus::SkippedCondition, None, vec![reason.clone()]),
        Fate::After { step } => match memory.earlier(&inst) {
            Some(p) => (
                ReuseStatus::Changed,
                Some(p.run),
                vec![format!("input from `{step}`, which runs again")],
            ),
            None => (ReuseStatus::New, None, Vec::new()),
        },
        Fate::Send => sent_again(memory.earlier(&inst), f),
    };
    InstanceHistory {
        instance: inst,
        status,
        run,
        changed,
        request_hash: f.request_hash.clone(),
    }
}

/// An instance that will be paid for, against what an earlier run asked for it.
fn sent_again(
    earlier: Option<Earlier>,
    f: &Forecast,
) -> (ReuseStatus, Option<String>, Vec<String>) {
    match (earlier, &f.request_hash, &f.fields) {
        (Some(p), Some(hash), _) if &p.hash == hash && p.failed => {
            (ReuseStatus::FailedBefore, Some(p.run), Vec::new())
        }
        (Some(p), Some(hash), Some(fields)) if &p.hash != hash => {
            let mut names: Vec<String> = fields
                .iter()
                .filter(|(k, v)| p.fields.get(*k) != Some(v))
                .map(|(k, _)| k.clone())
                .chain(
                    p.fields
                        .keys()
                        .filter(|k| !fields.contains_key(*k))
                        .cloned(),
                )
                .collect();
            if names.is_empty() {
                names.push("price table".to_owned());
            }
            (ReuseStatus::Changed, Some(p.run), names)
        }
        // Same request, but its result may not be used (forced, expired or `--no-reuse`).
        (Some(p), _, _) if p.succeeded => {
            (ReuseStatus::New, Some(p.run), vec!["paid again".to_owned()])
        }
        _ => (ReuseStatus::New, None, Vec::new()),
    }
}

/// The history of every (row, step) of the plan, in `rows` order (rows ×
/// steps), with credits to spend split over rows.
pub fn row_histories(plan: &Plan, memory: &dyn Memory, outlook: &Outlook) -> Vec<RowHistory> {
    let n_steps = plan.steps.len();
    let mut out = vec![RowHistory::default(); plan.instances.len() * n_steps];
    for f in &outlook.instances {
        let slot = f.id.row * n_steps + f.id.step;
        let h = classify(memory, f);
        if let Some(r) = out.get_mut(slot) {
            if f.fate.pays() {
                r.to_spend += f.unit_credits;
            }
            r.instances.push(h);
        }
    }
    spread_estimates(plan, outlook, &mut out);
    for (slot, r) in out.iter_mut().enumerate() {
        let step = &plan.steps[slot % n_steps];
        if !step.axis.is_empty() {
            r.calls = outlook.calls.get(slot).copied().flatten();
        }
        summarise(plan, slot % n_steps, r);
    }
    out
}

/// Fan-outs whose lists are unknown yet: the step's estimate, spread over rows.
fn spread_estimates(plan: &Plan, outlook: &Outlook, out: &mut [RowHistory]) {
    let n_steps = plan.steps.len();
    let rows = plan.instances.len().max(1) as u64;
    for s in 0..n_steps {
        let known_paid: u64 = (0..plan.instances.len())
            .map(|r| out[r * n_steps + s].to_spend)
            .sum();
        let extra = outlook.to_spend[s].saturating_sub(known_paid);
        if extra > 0 {
            for r in 0..plan.instances.len() {
                let share = extra / rows + u64::from((r as u64) < extra % rows);
                out[r * n_steps + s].to_spend += share;
            }
        }
    }
}

/// A row's status and detail, from its instances'.
fn summarise(plan: &Plan, s: usize, r: &mut RowHistory) {
    let step = &plan.steps[s];
    let mut statuses: Vec<ReuseStatus> = r.instances.iter().map(|i| i.status).collect();
    statuses.sort_unstable_by_key(|s| s.as_str());
    statuses.dedup();
    r.status = match statuses.as_slice() {
        [] if !step.scope.may_submit() && step.scope != Scope::ReuseOnly => {
            ReuseStatus::NotSelected
        }
        [] => ReuseStatus::New,
        [one] => *one,
        _ => ReuseStatus::Mixed,
    };
    let mut runs: Vec<&str> = r
        .instances
        .iter()
        .filter_map(|i| i.run.as_deref())
        .collect();
    runs.sort_unstable();
    runs.dedup();
    let mut changed: Vec<&str> = r
        .instances
        .iter()
        .flat_map(|i| i.changed.iter().map(String::as_str))
        .collect();
    changed.sort_unstable();
    changed.dedup();
    r.detail = match r.status {
        ReuseStatus::Mixed => statuses
            .iter()
            .map(|s| {
                let n = r.instances.iter().filter(|i| i.status == *s).count();
                format!("{n} {s}")
            })
            .collect::<Vec<_>>()
            .join(", "),
        ReuseStatus::Reused
        | ReuseStatus::InFlight
        | ReuseStatus::InDoubt
        | ReuseStatus::FailedBefore => match runs.as_slice() {
            [] => "this run, before it stopped".to_owned(),
            [one] => format!("run {one}"),
            many => format!("runs {}", many.join(", ")),
        },
        ReuseStatus::Changed
        | ReuseStatus::Blocked
        | ReuseStatus::Invalid
        | ReuseStatus::SkippedCondition => changed.join(", "),
        ReuseStatus::Excluded => "only reused, and no earlier run has its result".to_owned(),
        ReuseStatus::New if !changed.is_empty() => changed.join(", "),
        ReuseStatus::New if r.instances.is_empty() && !step.deps.is_empty() => format!(
            "after `{}`, which runs",
            step.deps
                .iter()
                .map(|&d| plan.steps[d].id.as_str())
                .collect::<Vec<_>>()
                .join("`, `")
        ),
        _ => String::new(),
    };
}
