//! What `plan` and `run` share about the past: the flags for the state
//! folder, reuse, `--force`, in-doubt requests and `--select` / `--exclude`,
//! and reading the state folder. How the plan then stands against it is
//! `engine::row_histories`.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::journal::{Known, Policy, RunLog, StateDir};
use crate::plan::Plan;
use crate::plan::select::Selection;

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "State and reuse")]
pub struct HistoryArgs {
    /// Where earlier runs, the reuse index and the locks are kept: a folder, or a bucket URL (s3://bucket/prefix, gs://…, az://…, file:///…) with credentials from the cloud's usual environment [default: the manifest's `state:`, else .sonicflow beside the manifest].
    #[arg(long = "state", visible_alias = "state-dir", value_name = "URL|DIR")]
    pub state: Option<String>,
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
    /// Only the matrix rows of shard K of N (`--shard 2/4`): a row's shard follows from its key, so adding rows moves no other.
    #[arg(long, value_name = "K/N", value_parser = crate::plan::shard::parse_shard)]
    pub shard: Option<crate::journal::Shard>,
}

impl HistoryArgs {
    pub fn selection(&self) -> Selection {
        Selection {
            select: self.select.clone(),
            exclude: self.exclude.clone(),
            shard: self.shard,
        }
    }

    /// The state `--state` names, else the manifest's `state:` (read from
    /// `manifest`), else `.sonicflow/` beside it.
    pub fn state(&self, manifest: &Path) -> Result<StateDir, String> {
        state_for(self.state.as_deref(), manifest)
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

/// The state `given` on the command line names, else the one the manifest
/// at `manifest` names in `state:`, else `.sonicflow/` beside it.
pub fn state_for(given: Option<&str>, manifest: &Path) -> Result<StateDir, String> {
    if given.is_some() {
        return StateDir::open(given, manifest, "`--state`");
    }
    let declared = crate::manifest::load::load_file(manifest)
        .ok()
        .and_then(|l| l.manifest.state)
        .map(|s| match crate::store::Scheme::of(&s) {
            // A folder named in the manifest is relative to the manifest.
            None if !s.contains("://") => manifest
                .parent()
                .unwrap_or(Path::new(""))
                .join(&s)
                .display()
                .to_string(),
            _ => s,
        });
    StateDir::open(declared.as_deref(), manifest, "the manifest's `state:`")
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

/// Warns when a live run holds the lock `pipeline` (a pipeline's, or a
/// shard's) in `state`: what it is paying for now is not in the state
/// folder yet, so a plan counts it as still to spend.
pub fn warn_if_locked(state: &StateDir, pipeline: &str) {
    use crate::journal::lock;
    let Ok(Some(held)) = state.locks().read(pipeline) else {
        return;
    };
    let process = lock::process_of(&held.holder);
    if lock::stale(&held.holder, process, SystemTime::now()).is_none() {
        crate::errln!(
            "warning: {} is running `{pipeline}` now; what it has not finished yet is counted here as still to spend",
            held.holder
        );
    }
}

/// Reads what the state folder knows for `plan` (and the run being resumed).
pub fn known(state: &StateDir, plan: &Plan, api: Option<&str>, own: Option<RunLog>) -> Known {
    let known = Known::load(state, &plan.name, api, own);
    for w in &known.warnings {
        crate::errln!("warning: {w}");
    }
    known
}
