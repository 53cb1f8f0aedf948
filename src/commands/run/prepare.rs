//! Everything `run` settles before it talks to the API: the manifest (or
//! the journal of the run to resume), the plan and its selection, the
//! state folder's answers, and what is left to spend.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{RunArgs, RunError};
use crate::commands::history;
use crate::engine::{self, Outlook};
use crate::journal::claims::Claims;
use crate::journal::group::{self, RUN_ID_VARS};
use crate::journal::lock::{self, AcquireError, Holder, StateLock};
use crate::journal::{self, Known, Policy, RunHeader, RunLog, RunMemory, Shard, StateDir};
use crate::manifest::load::Loaded;
use crate::plan::Plan;
use crate::plan::models::Models;
use crate::report;
use crate::steps::naming;

/// Everything a run needs once its arguments (and, on resume, its journal) are read.
pub(super) struct Prepared {
    pub plan: Arc<Plan>,
    pub models: Models,
    pub out: PathBuf,
    pub manifest_sha: String,
    pub journal: JournalPlan,
    /// Credits the run is expected to spend, after reuse.
    pub to_spend: u64,
    /// What the run being resumed was charged before, net of refunds.
    pub spent_before: u64,
    pub download: bool,
    /// Where the service announces a finished upload sent in task mode.
    pub upload_callback: Option<String>,
    /// The pipeline's lock, held until the run ends (`None` for `--sandbox`).
    pub lock: Option<StateLock>,
    /// What results.json says of the run beyond its plan (the service is
    /// filled in once it is known).
    pub context: report::RunContext,
    /// The files the run being resumed saved already: path and owner.
    pub saved: Vec<(String, String)>,
    /// `--out URL`: the bucket the results are published to.
    pub publish: Option<crate::store::Bucket>,
}

/// The journal to open once the API has answered (so a run that cannot
/// start leaves nothing behind).
pub(super) struct JournalPlan {
    state: StateDir,
    known: Known,
    policy: Policy,
    /// `None` when resuming `known.own`.
    header: Option<RunHeader>,
    /// For a run of a batch (`--run-id`): the name of the lock it holds,
    /// which tells the other runs of the state folder it is still at work.
    sharing: Option<String>,
}

impl JournalPlan {
    /// The state the run's journal goes to.
    pub(super) fn state(&self) -> &StateDir {
        &self.state
    }

    /// Opens the journal; `scale` divides how often a request another run
    /// pays for is looked at.
    pub(super) fn open(self, out: &Path, scale: f64) -> Result<RunMemory, RunError> {
        let state = self.state.clone();
        let opened = match self.header {
            Some(header) => RunMemory::start(&self.state, out, &header, self.known, self.policy),
            None => RunMemory::resume(&self.state, self.known, self.policy),
        };
        let memory = opened.map_err(|e| RunError::State(e.to_string()))?;
        let (Some(lock), Some(run)) = (self.sharing, memory.run_id()) else {
            return Ok(memory);
        };
        let claims = Claims::new(state.claims(), state.locks(), &run, &lock);
        let interval = std::time::Duration::from_secs(2)
            .div_f64(scale)
            .max(std::time::Duration::from_millis(5));
        Ok(memory.with_shared(journal::Shared {
            state,
            claims,
            interval,
        }))
    }
}

/// The manifest as the run reads it, planned and narrowed to the selection.
struct Planned {
    file: PathBuf,
    loaded: Loaded,
    plan: Plan,
    inputs: Vec<(String, String)>,
    prices: Option<PathBuf>,
    /// `--matrix`, given now or when the run began.
    matrix: Option<PathBuf>,
    select: Vec<String>,
    exclude: Vec<String>,
    /// `--shard`, given now or when the run began.
    shard: Option<Shard>,
    /// The run id (`--run-id`) shared by the shards of one batch.
    group: Option<String>,
    /// The keys of every matrix row, before any was left out.
    matrix_keys: Vec<String>,
}

/// Takes the pipeline's lock, then reads the journal of the run to resume
/// (if any), plans, applies the selection, reads the state folder and
/// prices what is left.
pub(super) fn prepare(args: &RunArgs) -> Result<Prepared, RunError> {
    let api = history::api_identity(args.api.api_base.as_deref(), args.sandbox);
    let Locked {
        lock,
        own,
        out,
        planned,
        state,
    } = lock_and_read(args, api.as_deref())?;
    let header = own.as_ref().map(|o| o.header.clone());
    let publish = super::publish::target(args, header.as_ref())?;
    // The text that was loaded, not the file read again: it may have
    // changed since, and a manifest from stdin has no file.
    let manifest_sha = report::manifest_sha256(planned.loaded.source.text.as_bytes());
    if let Some(h) = &header
        && h.manifest_sha256 != manifest_sha
    {
        crate::errln!(
            "warning: `{}` changed since the run began; steps whose requests changed are sent as new",
            planned.file.display()
        );
    }
    if let Some(h) = &header
        && h.matrix_sha256.is_some()
        && h.matrix_sha256 != matrix_sha256(&planned.loaded)
    {
        let file = planned.loaded.matrix.as_ref().and_then(|m| m.file.as_ref());
        crate::errln!(
            "warning: the matrix file `{}` changed since the run began; steps whose requests changed are sent as new",
            file.map_or_else(|| "(none now)".to_owned(), |f| f.display().to_string())
        );
    }
    let mut policy = args
        .history
        .policy(&planned.plan)
        .map_err(RunError::Usage)?;
    if let Some(h) = &header {
        keep_reuse_policy(&mut policy, h);
    }
    if args.sandbox {
        // Each in-process sandbox is new: nothing an earlier one answered can be used.
        policy.reuse = false;
        policy.others = false;
    }
    let state = match state {
        Some(s) => s,
        None => state_of(args, header.as_ref(), &planned.file)?,
    };
    let known = history::known(&state, &planned.plan, api.as_deref(), own);
    let preview = RunMemory::read_only(known.clone(), policy.clone());
    let outlook = engine::forecast(&planned.plan, &preview);
    let download = args.download || header.as_ref().is_some_and(|h| h.download);
    let upload_callback = args
        .upload_callback
        .clone()
        .or_else(|| header.as_ref().and_then(|h| h.upload_callback.clone()));
    let allow_partial = args.allow_partial || header.as_ref().is_some_and(|h| h.allow_partial);
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
            let out = out.unwrap_or_else(|| fresh_dir(args, &state, &planned));
            let header = new_run(args, &state, &planned, &manifest_sha, api, &out);
            (out, Some(header))
        }
    };
    let spent_before = known.own.as_ref().map_or(0, |o| o.credits.net);
    let sharing = (planned.group.is_some() && !args.sandbox)
        .then(|| group::lock_name(&planned.plan.name, planned.shard));
    let saved = known.own.as_ref().map(saved_files).unwrap_or_default();
    if let Some(cap) = planned.plan.max_credits
        && engine::over_cap(cap, spent_before, outlook.total_to_spend())
        && !allow_partial
    {
        let past = engine::row_histories(&planned.plan, &preview, &outlook);
        return Err(RunError::OverBudget {
            plan: crate::commands::plan::render_human_with(&planned.plan, &past),
            to_spend: outlook.total_to_spend(),
            spent: spent_before,
            cap,
        });
    }
    announce(
        &planned.plan,
        &outlook,
        &out,
        known.own.is_some(),
        spent_before,
    );
    let models = Models::with_declared(&planned.loaded.manifest.models);
    let context = report::RunContext {
        service: None,
        matrix_file: planned
            .loaded
            .matrix
            .as_ref()
            .and_then(|m| m.file.as_ref())
            .map(|f| f.display().to_string()),
        matrix_sha256: matrix_sha256(&planned.loaded),
        run_id: planned.group.clone(),
        shard: planned.shard.map(|s| report::ShardInfo {
            index: s.index,
            count: s.count,
            matrix_keys: planned.matrix_keys.clone(),
        }),
    };
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
            sharing,
        },
        to_spend: outlook.total_to_spend(),
        spent_before,
        download,
        upload_callback,
        lock,
        context,
        saved,
        publish,
    })
}

/// The files a run's journal says it saved of its own results, with whose
/// they are, so that its resume names no other file like them.
fn saved_files(own: &RunLog) -> Vec<(String, String)> {
    own.instances
        .iter()
        .filter_map(|(inst, log)| match &log.seen {
            journal::Seen::Succeeded {
                outputs,
                reused_from: None,
            } => Some((inst, outputs)),
            _ => None,
        })
        .flat_map(|(inst, outputs)| {
            outputs.files.iter().filter_map(move |f| {
                let clip = f.clip_id.as_deref()?;
                Some((f.path.clone(), naming::owner(inst, clip, f.kind)))
            })
        })
        .collect()
}

/// A resume keeps how the run was started: what `--no-reuse` and `--force`
/// kept it from taking from other runs, it does not take now either (the
/// command line may only add to them). Its own results are always taken
/// back whatever the flags (see `journal::find`), so nothing it finished is
/// paid again.
fn keep_reuse_policy(policy: &mut Policy, header: &RunHeader) {
    if header.no_reuse {
        policy.reuse = false;
    }
    policy.force.extend(header.force.iter().cloned());
}

/// The pipeline's lock (none for `--sandbox`, which shares nothing), and
/// what was read once it was held.
struct Locked {
    lock: Option<StateLock>,
    /// The run being resumed, read after the lock was taken.
    own: Option<RunLog>,
    /// A new run's folder, chosen while taking the lock.
    out: Option<PathBuf>,
    planned: Planned,
    /// The state the lock was taken in, up to date with its store.
    state: Option<StateDir>,
}

/// Takes the lock of the pipeline in its state folder before anything of
/// the state folder is read: a run that waited for another then sees all it
/// paid for, and two resumes of one run never act on the same journal.
/// What needs no state folder comes first, so that a run that cannot start
/// (a bad manifest or flag, a resume against another `api`) leaves nothing.
fn lock_and_read(args: &RunArgs, api: Option<&str>) -> Result<Locked, RunError> {
    let target = match args.resume.as_deref() {
        None => None,
        Some("last") => Some(None),
        Some(dir) => Some(Some(PathBuf::from(dir))),
    };
    let Some(target) = target else {
        let planned = plan(args, None)?;
        let pipeline = planned.plan.name.clone();
        let state = args.history.state(&planned.file).map_err(RunError::Usage)?;
        let lock_name = group::lock_name(&pipeline, planned.shard);
        if planned.group.is_some() {
            // A fresh working copy of a store learns of the batch's runs
            // before it looks for this shard's.
            state
                .hydrate()
                .map_err(|e| RunError::State(e.to_string()))?;
        }
        let mut out = None;
        // A named run (a shard) that started before is taken up: the
        // restarted CI job goes on with its part of the batch.
        let mut earlier = Ok(None);
        let lock = take_lock(args, &state, || {
            if let Some(g) = &planned.group {
                earlier = state.group_run(&pipeline, g, planned.shard);
                if let Ok(Some(run)) = &earlier {
                    return Holder::this_process(
                        &lock_name,
                        &run.id,
                        Path::new(&run.dir),
                        "resume",
                    );
                }
            }
            let dir = fresh_dir(args, &state, &planned);
            let holder = Holder::this_process(&lock_name, &run_id(&dir), &dir, "run");
            out = Some(dir);
            holder
        })?;
        let dir = match earlier {
            Ok(Some(run)) => PathBuf::from(run.dir),
            Ok(None) => {
                let state = lock.is_some().then_some(state);
                return Ok(Locked {
                    lock,
                    own: None,
                    out,
                    planned,
                    state,
                });
            }
            Err(e) => return Err(RunError::State(e.to_string())),
        };
        crate::errln!("run `{}` started before: taking it up", run_id(&dir));
        let own = RunLog::read(&dir).map_err(|e| RunError::CannotResume(e.to_string()))?;
        same_api(&own.header, api, args.sandbox)?;
        let planned = plan(args, Some(&own.header))?;
        let state = lock.is_some().then_some(state);
        return Ok(Locked {
            lock,
            own: Some(own),
            out: None,
            planned,
            state,
        });
    };
    let (lock, dir, planned, state) = match target {
        Some(dir) => {
            // The header never changes: it can be read before the lock.
            let header = RunLog::header(&dir).map_err(|e| RunError::CannotResume(e.to_string()))?;
            same_api(&header, api, args.sandbox)?;
            let planned = plan(args, Some(&header))?;
            let state = state_of(args, Some(&header), &planned.file)?;
            let lock_name = group::lock_name(&header.pipeline, header.shard);
            let lock = take_lock(args, &state, || {
                Holder::this_process(&lock_name, &header.id, &dir, "resume")
            })?;
            (lock, dir, Some(planned), state)
        }
        None => {
            let file = args.file.as_ref().ok_or(RunError::ResumeLastNeedsFile)?;
            let pipeline = pipeline_name(args, file)?;
            let state = args.history.state(file).map_err(RunError::Usage)?;
            // A fresh working copy of a store learns of the runs first.
            state
                .hydrate()
                .map_err(|e| RunError::State(e.to_string()))?;
            // "Last" is looked up again at every attempt: a run that waited
            // resumes the newest run as of when it got the lock.
            let mut last = Ok(None);
            let lock = take_lock(args, &state, || {
                last = state.last_run(&pipeline);
                let (id, dir, shard) = match &last {
                    Ok(Some(run)) => (run.id.clone(), PathBuf::from(&run.dir), run.shard),
                    _ => (String::new(), state.root.clone(), None),
                };
                Holder::this_process(&group::lock_name(&pipeline, shard), &id, &dir, "resume")
            })?;
            match last {
                Ok(Some(run)) => (lock, PathBuf::from(run.dir), None, state),
                Ok(None) => {
                    return Err(RunError::NoEarlierRun {
                        pipeline,
                        state: state.root.clone(),
                        file: file.clone(),
                    });
                }
                Err(e) => return Err(RunError::State(e.to_string())),
            }
        }
    };
    let own = RunLog::read(&dir).map_err(|e| RunError::CannotResume(e.to_string()))?;
    same_api(&own.header, api, args.sandbox)?;
    let planned = match planned {
        Some(p) => p,
        None => plan(args, Some(&own.header))?,
    };
    let state = lock.is_some().then_some(state);
    Ok(Locked {
        lock,
        own: Some(own),
        out: None,
        planned,
        state,
    })
}

/// Takes the lock of the pipeline `holder` names in `state`, waiting up to `--lock-timeout`.
fn take_lock(
    args: &RunArgs,
    state: &StateDir,
    holder: impl FnMut() -> Holder,
) -> Result<Option<StateLock>, RunError> {
    if args.sandbox {
        return Ok(None);
    }
    state.ensure().map_err(|e| RunError::State(e.to_string()))?;
    match lock::acquire(
        state.locks(),
        args.lock_timeout,
        &mut lock::Stderr::default(),
        holder,
    ) {
        Ok(lock) => {
            // Whatever the store learnt while the lock was free.
            state
                .hydrate()
                .map_err(|e| RunError::State(e.to_string()))?;
            Ok(Some(lock))
        }
        Err(AcquireError::Held(held)) => Err(RunError::Locked {
            held,
            state: state.root.clone(),
        }),
        Err(AcquireError::Store(e)) => Err(RunError::State(e.to_string())),
    }
}

/// The pipeline's name, from its manifest.
fn pipeline_name(args: &RunArgs, file: &Path) -> Result<String, RunError> {
    crate::manifest::load::load_file(file)
        .map(|loaded| loaded.manifest.name)
        .map_err(|d| RunError::Manifest {
            diagnostics: d,
            format: crate::diag::Format::for_output(args.format.get()),
        })
}

/// The state: `--state`, else the one the resumed run recorded (its
/// bucket, else its folder), else the manifest's `state:` or `.sonicflow/`
/// beside the manifest.
fn state_of(args: &RunArgs, header: Option<&RunHeader>, file: &Path) -> Result<StateDir, RunError> {
    if args.history.state.is_none()
        && let Some(h) = header
    {
        if let Some(url) = &h.state_url {
            return StateDir::open(Some(url), file, "the run's recorded state")
                .map_err(RunError::Usage);
        }
        if let Some(saved) = &h.state_dir {
            return Ok(StateDir::local(PathBuf::from(saved)));
        }
    }
    args.history.state(file).map_err(RunError::Usage)
}

/// A resumed run goes on against the service it was started against: its
/// tasks and in-doubt requests mean nothing to another one, which would
/// charge again for everything.
fn same_api(header: &RunHeader, api: Option<&str>, sandbox: bool) -> Result<(), RunError> {
    if sandbox || header.api.as_deref() == api {
        return Ok(());
    }
    Err(RunError::OtherApi {
        journal: header.api.clone(),
        now: api.unwrap_or_default().to_owned(),
    })
}

/// A new run's folder: `--out DIR`, or a new one in the state folder, named
/// by its run id when it has one.
fn fresh_dir(args: &RunArgs, state: &StateDir, planned: &Planned) -> PathBuf {
    let pipeline = &planned.plan.name;
    args.out
        .clone()
        .filter(|out| super::publish::is_folder(out))
        .unwrap_or_else(|| match &planned.group {
            Some(g) => state.group_run_dir(pipeline, g, planned.shard),
            None => state.new_run_dir(pipeline),
        })
}

/// The run id: `--run-id`, the one the resumed run began with, or for a
/// shard the CI's (`$SONICFLOW_RUN_ID`, `$GITHUB_RUN_ID`): shards of one
/// batch must share one, so a shard without any does not start.
fn group_of(
    args: &RunArgs,
    header: Option<&RunHeader>,
    shard: Option<Shard>,
) -> Result<Option<String>, RunError> {
    let given = args
        .run_id
        .clone()
        .or_else(|| header.and_then(|h| h.group.clone()));
    let from_env = || {
        RUN_ID_VARS
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|id| !id.trim().is_empty()))
    };
    let id = match (given, shard) {
        (Some(id), _) => id,
        (None, None) => return Ok(None),
        (None, Some(s)) => from_env().ok_or_else(|| {
            RunError::Usage(format!(
                "`--shard {s}` needs a run id shared by every shard of the batch: pass `--run-id ID` (or set `{}`)",
                RUN_ID_VARS[0]
            ))
        })?,
    };
    if id.trim().is_empty() || id.len() > 200 {
        return Err(RunError::Usage(format!(
            "`--run-id {id}`: a run id is 1 to 200 characters; use the CI's run number, for example `--run-id \"$GITHUB_RUN_ID\"`"
        )));
    }
    Ok(Some(id))
}

/// A run's id: the name of its folder.
fn run_id(out: &Path) -> String {
    out.file_name()
        .map_or_else(|| "run".to_owned(), |n| n.to_string_lossy().into_owned())
}

/// Loads and plans the manifest; on resume the journal says how the run
/// was started, and the command line may override it.
/// Whether a new run's manifest plans, touching nothing: its diagnostics
/// come before any complaint about the key (a resume's manifest is the
/// journal's and was checked when the run began).
pub(super) fn check_manifest(args: &RunArgs) -> Result<(), RunError> {
    if args.resume.is_some() {
        return Ok(());
    }
    plan(args, None).map(|_| ())
}

fn plan(args: &RunArgs, header: Option<&RunHeader>) -> Result<Planned, RunError> {
    let manifest_error = |diagnostics| RunError::Manifest {
        diagnostics,
        format: crate::diag::Format::for_output(args.format.get()),
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
    let matrix = args
        .matrix
        .clone()
        .or_else(|| header.and_then(|h| h.matrix.clone().map(PathBuf::from)));
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
            quick_calls_per_minute: args.quick_calls_per_minute,
            polls_per_second: args.polls_per_second,
        },
        matrix: matrix.clone(),
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
    selection.shard = selection.shard.or_else(|| header.and_then(|h| h.shard));
    if let (Some(h), Some(now)) = (header, selection.shard)
        && h.shard.is_some_and(|then| then != now)
    {
        return Err(RunError::Usage(format!(
            "the run being taken up is shard {} and `--shard {now}` was given; drop `--shard`, or start another run",
            h.shard.map(|s| s.to_string()).unwrap_or_default()
        )));
    }
    let group = group_of(args, header, selection.shard)?;
    let matrix_keys = plan
        .instances
        .iter()
        .filter_map(|i| i.key.clone())
        .collect();
    history::select(&mut plan, &selection).map_err(RunError::Usage)?;
    Ok(Planned {
        file,
        loaded,
        plan,
        inputs,
        prices,
        matrix,
        select: selection.select,
        exclude: selection.exclude,
        shard: selection.shard,
        group,
        matrix_keys,
    })
}

/// The journal header of a run that starts now in `out`.
fn new_run(
    args: &RunArgs,
    state: &StateDir,
    planned: &Planned,
    manifest_sha: &str,
    api: Option<String>,
    out: &Path,
) -> RunHeader {
    let plan = &planned.plan;
    RunHeader {
        id: run_id(out),
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
        matrix: planned
            .matrix
            .as_ref()
            .map(|p| journal::absolute(p).display().to_string()),
        matrix_sha256: matrix_sha256(&planned.loaded),
        select: planned.select.clone(),
        exclude: planned.exclude.clone(),
        max_credits: args.max_credits,
        allow_partial: args.allow_partial,
        download: args.download,
        state_dir: Some(journal::absolute(&state.root).display().to_string()),
        state_url: state.url.clone(),
        api,
        no_reuse: args.history.no_reuse,
        force: args.history.force.clone(),
        upload_callback: args.upload_callback.clone(),
        out_url: super::publish::given(args).ok().flatten(),
        price_table: Some(Box::new(plan.prices.clone())),
        group: planned.group.clone(),
        shard: planned.shard,
    }
}

/// Says what the run takes from earlier work and whether the cap will stop it.
fn announce(plan: &Plan, outlook: &Outlook, out: &Path, resuming: bool, spent_before: u64) {
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
    if (resuming || reused > 0) && !crate::output::quiet() {
        crate::errln!(
            "{} `{}`: {} taken from earlier work, about {} left to spend",
            if resuming { "resuming" } else { "starting" },
            out.display(),
            crate::format::count(reused, "step instance", "step instances"),
            crate::format::credits(to_spend)
        );
    }
    if let Some(cap) = plan.max_credits
        && engine::over_cap(cap, spent_before, to_spend)
    {
        crate::errln!(
            "warning: the run needs about {} and the cap is {cap}; with `--allow-partial` it stops before the submit that would cross it",
            crate::format::credits(spent_before + to_spend)
        );
    }
}

/// The digest of the matrix file the rows were read from, if they were.
fn matrix_sha256(loaded: &Loaded) -> Option<String> {
    let matrix = loaded.matrix.as_ref()?;
    matrix.file.as_ref()?;
    Some(report::manifest_sha256(matrix.source.text.as_bytes()))
}
