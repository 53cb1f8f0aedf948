//! What `plan` and `run` share about the past: the state folder, reuse,
//! `--force`, in-doubt requests and `--select` / `--exclude`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::engine::{Fate, Outlook};
use crate::journal::{Known, Outcome, Policy, RunLog, StateDir};
use crate::plan::Plan;
use crate::plan::select::Selection;

#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// The state folder with earlier runs and the reuse index [default: .sonicflow beside the manifest].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Pay again for everything; reuse no earlier result.
    #[arg(long)]
    pub no_reuse: bool,
    /// Pay again for this step even if an earlier run has its result (repeatable, or comma-separated).
    #[arg(long, value_name = "STEP", value_delimiter = ',')]
    pub force: Vec<String>,
    /// Send again requests an earlier run sent without ever getting an answer (they may be paid twice).
    #[arg(long)]
    pub resend_in_doubt: bool,
    /// How long result URLs stay valid; older results are reused only if their files were downloaded.
    #[arg(long, value_name = "DURATION", default_value = "14d", value_parser = humantime::parse_duration)]
    pub url_retention: Duration,
    /// Only these steps (with what they need) or matrix keys; `step:ID` / `key:KEY` when a name is both (repeatable, or comma-separated).
    #[arg(long, value_name = "STEP|KEY")]
    pub select: Vec<String>,
    /// Leave out these steps or matrix keys; an excluded step a selected one needs is only reused, never paid for.
    #[arg(long, value_name = "STEP|KEY")]
    pub exclude: Vec<String>,
}

impl HistoryArgs {
    pub fn selection(&self) -> Selection {
        Selection {
            select: self.select.clone(),
            exclude: self.exclude.clone(),
        }
    }

    pub fn state(&self, manifest: &Path) -> StateDir {
        StateDir::new(self.state_dir.as_deref(), manifest)
    }

    /// The policy, checking that every `--force` names a step.
    pub fn policy(&self, plan: &Plan) -> Result<Policy, String> {
        for f in &self.force {
            if !plan.steps.iter().any(|s| &s.id == f) {
                let hint =
                    crate::suggest::did_you_mean(f, plan.steps.iter().map(|s| s.id.as_str()))
                        .map(|n| format!("; did you mean `{n}`?"))
                        .unwrap_or_default();
                return Err(format!(
                    "`--force {f}` names no step of `{}`{hint}",
                    plan.name
                ));
            }
        }
        Ok(Policy {
            reuse: !self.no_reuse,
            force: self.force.iter().cloned().collect::<HashSet<_>>(),
            resend_in_doubt: self.resend_in_doubt,
            retention: self.url_retention,
            now: SystemTime::now(),
            others: true,
        })
    }
}

/// Narrows the plan to `--select` / `--exclude`.
pub fn select(plan: &mut Plan, selection: &Selection) -> Result<(), String> {
    crate::plan::select::apply(plan, selection)
}

/// Which service a run talks to, as the state folder records it: the base
/// URL the client uses, or `None` for the in-process sandbox, whose answers
/// mean nothing to another run.
pub fn api_identity(api_base: Option<&str>, sandbox: bool) -> Option<String> {
    (!sandbox).then(|| crate::api::resolve_base_url(api_base))
}

/// Reads what the state folder knows for `plan` (and the run being resumed).
pub fn known(state: &StateDir, plan: &Plan, api: Option<&str>, own: Option<RunLog>) -> Known {
    let known = Known::load(state, &plan.name, api, own);
    for w in &known.warnings {
        eprintln!("warning: {w}");
    }
    known
}

/// How one (matrix row, step) of the plan stands against the past.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RowHistory {
    /// `new`, `reused`, `changed`, `failed before`, `in doubt`, `in flight`,
    /// `not selected`, `excluded`, `blocked`, or `mixed` when instances differ.
    pub status: String,
    /// Which run, which inputs changed, or why.
    pub detail: String,
    /// Credits this row will actually spend.
    pub to_spend: u64,
    pub instances: Vec<InstanceHistory>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceHistory {
    pub instance: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<String>,
}

/// The status of each instance, with the earlier run it refers to and what changed.
fn classify(known: &Known, f: &crate::engine::Forecast) -> InstanceHistory {
    let inst = f.id.to_string();
    let (status, run, changed) = match &f.fate {
        Fate::Reuse { from } => ("reused", from.clone(), Vec::new()),
        Fate::Attach { from } => ("in flight", from.clone(), Vec::new()),
        Fate::InDoubt { from } => ("in doubt", from.clone(), Vec::new()),
        Fate::Unselected => ("not selected", None, Vec::new()),
        Fate::Excluded => ("excluded", None, Vec::new()),
        Fate::Blocked { reason } => ("blocked", None, vec![reason.clone()]),
        Fate::After { step } => match known.previous(&inst) {
            Some(p) => (
                "changed",
                Some(p.run),
                vec![format!("input from `{step}`, which runs again")],
            ),
            None => ("new", None, Vec::new()),
        },
        Fate::Send => match (known.previous(&inst), &f.request_hash, &f.fields) {
            (Some(p), Some(hash), _) if &p.hash == hash && p.outcome == Outcome::Failed => {
                ("failed before", Some(p.run), Vec::new())
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
                ("changed", Some(p.run), names)
            }
            (Some(p), _, _) if p.outcome == Outcome::Succeeded => {
                // Same request, but its result may not be used (forced, expired or `--no-reuse`).
                ("new", Some(p.run), vec!["paid again".to_owned()])
            }
            _ => ("new", None, Vec::new()),
        },
    };
    InstanceHistory {
        instance: inst,
        status,
        run,
        changed,
        request_hash: f.request_hash.clone(),
    }
}

/// The history of every (row, step) of the plan, in `rows` order (rows ×
/// steps), with credits to spend split over rows.
pub fn row_histories(plan: &Plan, known: &Known, outlook: &Outlook) -> Vec<RowHistory> {
    let n_steps = plan.steps.len();
    let mut out = vec![RowHistory::default(); plan.instances.len() * n_steps];
    for f in &outlook.instances {
        let slot = f.id.row * n_steps + f.id.step;
        let h = classify(known, f);
        if let Some(r) = out.get_mut(slot) {
            if f.fate.pays() {
                r.to_spend += f.unit_credits;
            }
            r.instances.push(h);
        }
    }
    // Fan-outs whose lists are unknown yet: the step's estimate, spread over rows.
    for s in 0..plan.steps.len() {
        let rows = plan.instances.len().max(1) as u64;
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
    for (slot, r) in out.iter_mut().enumerate() {
        let step = &plan.steps[slot % n_steps];
        let mut statuses: Vec<&str> = r.instances.iter().map(|i| i.status).collect();
        statuses.sort_unstable();
        statuses.dedup();
        let status = match statuses.as_slice() {
            [] if !step.scope.may_submit() && step.scope != crate::plan::Scope::ReuseOnly => {
                "not selected"
            }
            [] => "new",
            [one] => one,
            _ => "mixed",
        };
        r.status = status.to_owned();
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
        r.detail = match status {
            "mixed" => {
                let mut counts: Vec<String> = Vec::new();
                for s in &statuses {
                    let n = r.instances.iter().filter(|i| i.status == *s).count();
                    counts.push(format!("{n} {s}"));
                }
                counts.join(", ")
            }
            "reused" | "in flight" | "in doubt" | "failed before" => match runs.as_slice() {
                [] => "this run, before it stopped".to_owned(),
                [one] => format!("run {one}"),
                many => format!("runs {}", many.join(", ")),
            },
            "changed" | "blocked" => changed.join(", "),
            "excluded" => "only reused, and no earlier run has its result".to_owned(),
            "new" if !changed.is_empty() => changed.join(", "),
            "new" if r.instances.is_empty() && !step.deps.is_empty() => format!(
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
    out
}
