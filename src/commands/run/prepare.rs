//! Everything `run` settles before it talks to the API: the manifest (or
//! the journal of the run to resume), the plan and its selection, the
//! state folder's answers, and what is left to spend.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{RunArgs, RunError};
use crate::commands::history;
use crate::engine::{self, Outlook};
use crate::journal::{self, Known, Policy, RunHeader, RunLog, RunMemory, StateDir};
use crate::manifest::load::Loaded;
use crate::plan::Plan;
use crate::plan::models::Models;
use crate::report;

/// Everything a run needs once its arguments (and, on resume, its journal) are read.
pub(super) struct Prepared {
    pub plan: Arc<Plan>,
    pub models: Models,
    pub out: PathBuf,
    pub manifest_sha: String,
    pub journal: JournalPlan,
    /// Credits the run is expected to spend, after reuse.
    pub to_spend: u64,
    pub download: bool,
}

/// The journal to open once the API has answered (so a run that cannot
/// start leaves nothing behind).
pub(super) struct JournalPlan {
    state: StateDir,
    known: Known,
    policy: Policy,
    /// `None` when resuming `known.own`.
    header: Option<RunHeader>,
}

impl JournalPlan {
    pub(super) fn open(self, out: &Path) -> Result<RunMemory, RunError> {
        let opened = match self.header {
            Some(header) => RunMemory::start(&self.state, out, &header, self.known, self.policy),
            None => RunMemory::resume(&self.state, self.known, self.policy),
        };
        opened.map_err(|e| RunError::State(e.to_string()))
    }
}

/// The manifest as the run reads it, planned and narrowed to the selection.
struct Planned {
    file: PathBuf,
    loaded: Loaded,
    plan: Plan,
    inputs: Vec<(String, String)>,
    prices: Option<PathBuf>,
    select: Vec<String>,
    exclude: Vec<String>,
}

/// Reads the manifest (or the journal of the run to resume), plans, applies
/// the selection, reads the state folder and prices what is left.
pub(super) fn prepare(args: &RunArgs) -> Result<Prepared, RunError> {
    let own = resumed_run(args)?;
    let header = own.as_ref().map(|o| o.header.clone());
    let planned = plan(args, header.as_ref())?;
    let manifest_sha = sha256_file(&planned.file);
    if let Some(h) = &header
        && h.manifest_sha256 != manifest_sha
    {
        crate::errln!(
            "warning: `{}` changed since the run began; steps whose requests changed are sent as new",
            planned.file.display()
        );
    }
    let mut policy = args
        .history
        .policy(&planned.plan)
        .map_err(RunError::Usage)?;
    if args.sandbox {
        // Each in-process sandbox is new: nothing an earlier one answered can be used.
        policy.reuse = false;
        policy.others = false;
    }
    let saved_state = header.as_ref().and_then(|h| h.state_dir.clone());
    let state = match (&args.history.state_dir, saved_state) {
        (None, Some(saved)) => StateDir {
            root: PathBuf::from(saved),
        },
        _ => args.history.state(&planned.file),
    };
    let api = history::api_identity(args.api.api_base.as_deref(), args.sandbox);
    let known = history::known(&state, &planned.plan, api.as_deref(), own);
    let outlook = {
        let preview = RunMemory::read_only(known.clone(), policy.clone());
        engine::forecast(&planned.plan, &preview)
    };
    let download = args.download || header.as_ref().is_some_and(|h| h.download);
    let (out, header) = match known.own.as_ref() {
        Some(own) => {
            if args.sandbox {
                crate::errln!(
                    "warning: `--sandbox` starts a new sandbox, which knows none of the tasks of the run being resumed"
                );
            }
            (own.dir.clone(), None)
        }
        None => {
            let (out, header) = new_run(args, &state, &planned, &manifest_sha, api);
            (out, Some(header))
        }
    };
    announce(&planned.plan, &outlook, &out, known.own.is_some());
    let models = Models::with_declared(&planned.loaded.manifest.models);
    Ok(Prepared {
        plan: Arc::new(planned.plan),
        models,
        out,
        manifest_sha,
        journal: JournalPlan {
            state,
            known,
            policy,
            header,
        },
        to_spend: outlook.total_to_spend(),
        download,
    })
}

/// The run being resumed: its journal, read back.
fn resumed_run(args: &RunArgs) -> Result<Option<RunLog>, RunError> {
    let Some(target) = args.resume.as_deref() else {
        return Ok(None);
    };
    let dir = if target == "last" {
        let file = args.file.as_ref().ok_or(RunError::ResumeLastNeedsFile)?;
        let loaded = crate::manifest::load::load_file(file).map_err(|d| RunError::Manifest {
            diagnostics: d,
            format: args.format,
        })?;
        let name = loaded.manifest.name.clone();
        let state = args.history.state(file);
        match state.last_run(&name) {
            Ok(Some(run)) => PathBuf::from(run.dir),
            Ok(None) => {
                return Err(RunError::NoEarlierRun {
                    pipeline: name,
                    state: state.root.clone(),
                    file: file.clone(),
                });
            }
            Err(e) => return Err(RunError::State(e.to_string())),
        }
    } else {
        PathBuf::from(target)
    };
    RunLog::read(&dir)
        .map(Some)
        .map_err(|e| RunError::CannotResume(e.to_string()))
}

/// Loads and plans the manifest; on resume the journal says how the run
/// was started, and the command line may override it.
fn plan(args: &RunArgs, header: Option<&RunHeader>) -> Result<Planned, RunError> {
    let manifest_error = |diagnostics| RunError::Manifest {
        diagnostics,
        format: args.format,
    };
    let file = match (&args.file, header) {
        (Some(f), _) => f.clone(),
        (None, Some(h)) => PathBuf::from(&h.manifest),
        (None, None) => return Err(RunError::NoManifest),
    };
    let pick = |given: &[String], saved: Option<&Vec<String>>| -> Vec<String> {
        if given.is_empty() {
            saved.cloned().unwrap_or_default()
        } else {
            given.to_vec()
        }
    };
    let inputs = match (header, args.inputs.is_empty()) {
        (Some(h), true) => h.inputs.clone(),
        _ => args.inputs.clone(),
    };
    let prices = args
        .prices
        .clone()
        .or_else(|| header.and_then(|h| h.prices.clone().map(PathBuf::from)));
    let table = crate::commands::plan::price_table(prices.as_ref()).map_err(manifest_error)?;
    let options = crate::plan::Options {
        inputs: inputs.clone(),
        require_inputs: true,
        prices: table,
        max_credits: args
            .max_credits
            .or_else(|| header.and_then(|h| h.max_credits)),
        pace: crate::plan::PaceFlags {
            max_in_flight: args.max_in_flight,
            submits_per_minute: args.submits_per_minute,
            polls_per_second: args.polls_per_second,
        },
    };
    let (loaded, mut plan) =
        crate::commands::load_and_plan(&file, &options).map_err(manifest_error)?;
    if let Some(h) = header
        && h.pipeline != plan.name
    {
        return Err(RunError::WrongPipeline {
            journal: h.pipeline.clone(),
            manifest: plan.name.clone(),
        });
    }
    let mut selection = args.history.selection();
    selection.select = pick(&selection.select, header.map(|h| &h.select));
    selection.exclude = pick(&selection.exclude, header.map(|h| &h.exclude));
    history::select(&mut plan, &selection).map_err(RunError::Usage)?;
    Ok(Planned {
        file,
        loaded,
        plan,
        inputs,
        prices,
        select: selection.select,
        exclude: selection.exclude,
    })
}

/// The folder and journal header of a run that starts now.
fn new_run(
    args: &RunArgs,
    state: &StateDir,
    planned: &Planned,
    manifest_sha: &str,
    api: Option<String>,
) -> (PathBuf, RunHeader) {
    let plan = &planned.plan;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| state.new_run_dir(&plan.name));
    let id = out
        .file_name()
        .map_or_else(|| "run".to_owned(), |n| n.to_string_lossy().into_owned());
    let header = RunHeader {
        id,
        pipeline: plan.name.clone(),
        manifest: journal::absolute(&planned.file).display().to_string(),
        manifest_sha256: manifest_sha.to_owned(),
        price_version: plan.prices.version(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: crate::timestamp::rfc3339(std::time::SystemTime::now()),
        inputs: planned.inputs.clone(),
        prices: planned
            .prices
            .as_ref()
            .map(|p| journal::absolute(p).display().to_string()),
        select: planned.select.clone(),
        exclude: planned.exclude.clone(),
        max_credits: args.max_credits,
        download: args.download,
        state_dir: Some(journal::absolute(&state.root).display().to_string()),
        api,
    };
    (out, header)
}

/// Says what the run takes from earlier work and whether the cap will stop it.
fn announce(plan: &Plan, outlook: &Outlook, out: &Path, resuming: bool) {
    let to_spend = outlook.total_to_spend();
    let reused = outlook
        .instances
        .iter()
        .filter(|f| {
            matches!(
                f.fate,
                engine::Fate::Reuse { .. } | engine::Fate::Attach { .. }
            )
        })
        .count();
    if resuming || reused > 0 {
        crate::errln!(
            "{} `{}`: {reused} step instance(s) taken from earlier work, about {to_spend} credits left to spend",
            if resuming { "resuming" } else { "starting" },
            out.display()
        );
    }
    if let Some(cap) = plan.max_credits
        && to_spend > cap
    {
        crate::errln!(
            "warning: the run needs about {to_spend} credits and the cap is {cap}; it stops before the submit that would cross it"
        );
    }
}

fn sha256_file(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| report::manifest_sha256(&bytes))
        .unwrap_or_default()
}
