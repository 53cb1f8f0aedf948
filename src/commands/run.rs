//! `sonicflow run`: execute a pipeline against the API or the sandbox.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::credits::ApiArgs;
use super::history;
use crate::api::{ApiError, ApiKey, Client, ClientConfig, ConfigError};
use crate::diag::Format;
use crate::engine::{self, EngineConfig, Summary};
use crate::exit;
use crate::journal::{self, Known, Policy, RunHeader, RunLog, RunMemory, StateDir};
use crate::plan::Plan;
use crate::plan::models::Models;
use crate::report::{self, Console, ConsoleMode, Drained, Reporters, ResultsWriter};
use crate::sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use crate::steps::{ApiExecutor, DownloadKinds, DownloadOptions};

/// Time scale of `--sandbox` runs unless `--time-scale` says otherwise: a
/// two-minute song takes 0.6 s, so the examples finish in seconds.
pub const SANDBOX_TIME_SCALE: f64 = 200.0;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The pipeline manifest (optional with `--resume RUN_DIR`).
    #[arg(value_name = "FILE", required_unless_present = "resume")]
    pub file: Option<PathBuf>,
    /// Take up an interrupted run: `--resume RUN_DIR`, or `--resume last` for
    /// the newest run of FILE. Tasks already accepted are polled, never sent again.
    #[arg(long, value_name = "RUN_DIR|last")]
    pub resume: Option<String>,
    /// Before the first submit, do not check that the balance covers what the run will spend.
    #[arg(long)]
    pub no_balance_check: bool,
    #[command(flatten)]
    pub history: super::history::HistoryArgs,
    /// Run against a local sandbox started for this run, spending no real credits.
    #[arg(long)]
    pub sandbox: bool,
    /// Divide every duration (poll schedule, backoff, quotas) by N; with `--sandbox` the sandbox's too [default with --sandbox: 200].
    #[arg(long, value_name = "N")]
    pub time_scale: Option<f64>,
    /// Override an input: `--input name=value` (repeatable).
    #[arg(long = "input", value_name = "NAME=VALUE", value_parser = super::parse_input)]
    pub inputs: Vec<(String, String)>,
    /// Folder for the results manifest and downloads [default: .sonicflow/runs/<name>-<time> beside the manifest].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Download audio, WAV, stems and MIDI into the output folder.
    #[arg(long)]
    pub download: bool,
    /// Remote tasks in flight at most (overrides `limits.max_in_flight`).
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// Paid submits per minute at most (overrides `limits.submits_per_minute`).
    #[arg(long, value_name = "N")]
    pub submits_per_minute: Option<u32>,
    /// Status polls per second at most (overrides `limits.polls_per_second`).
    #[arg(long, value_name = "N")]
    pub polls_per_second: Option<u32>,
    /// Stop submitting after the first failed step.
    #[arg(long)]
    pub fail_fast: bool,
    /// Spend at most this many credits: the submit that would cross it is not sent (overrides `limits.max_credits`).
    #[arg(long, value_name = "CREDITS")]
    pub max_credits: Option<u64>,
    /// A price table (YAML) to use instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// How to log progress when stderr is not a terminal.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// How to print problems with the manifest.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Live progress on a terminal, one line per event otherwise.
    Human,
    /// One JSON object per event.
    Json,
}

/// Everything a run needs once its arguments (and, on resume, its journal) are read.
struct Prepared {
    plan: Arc<Plan>,
    models: Models,
    out: PathBuf,
    manifest_sha: String,
    journal: JournalPlan,
    /// Credits the run is expected to spend, after reuse.
    to_spend: u64,
    download: bool,
}

/// The journal to open once the API has answered (so a run that cannot
/// start leaves nothing behind).
struct JournalPlan {
    state: StateDir,
    known: Known,
    policy: Policy,
    /// `None` when resuming `known.own`.
    header: Option<RunHeader>,
}

impl JournalPlan {
    fn open(self, out: &Path) -> Result<RunMemory, journal::JournalError> {
        match self.header {
            Some(header) => RunMemory::start(&self.state, out, &header, self.known, self.policy),
            None => RunMemory::resume(&self.state, self.known, self.policy),
        }
    }
}

pub fn run(args: &RunArgs) -> u8 {
    if let Some(scale) = args.time_scale
        && !(scale.is_finite() && scale > 0.0)
    {
        eprintln!("error: `--time-scale {scale}` must be a positive number");
        return exit::INVALID;
    }
    let prepared = match prepare(args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::API_UNAVAILABLE;
        }
    };
    runtime.block_on(run_async(args, prepared))
}

/// The run being resumed: its journal, read back.
fn resumed_run(args: &RunArgs) -> Result<Option<RunLog>, u8> {
    let Some(target) = args.resume.as_deref() else {
        return Ok(None);
    };
    let dir = if target == "last" {
        let Some(file) = args.file.as_ref() else {
            eprintln!(
                "error: `--resume last` needs the pipeline: `sonicflow run FILE --resume last`"
            );
            return Err(exit::INVALID);
        };
        let loaded = match crate::manifest::load::load_file(file) {
            Ok(l) => l,
            Err(d) => {
                super::print_diagnostics(&d, args.format);
                return Err(exit::INVALID);
            }
        };
        let name = loaded.manifest.name.clone();
        let state = args.history.state(file);
        match state.last_run(&name) {
            Ok(Some(run)) => PathBuf::from(run.dir),
            Ok(None) => {
                eprintln!(
                    "error: no earlier run of `{name}` in `{}`; start one with `sonicflow run {}`",
                    state.root.display(),
                    file.display()
                );
                return Err(exit::INVALID);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Err(exit::INVALID);
            }
        }
    } else {
        PathBuf::from(target)
    };
    match RunLog::read(&dir) {
        Ok(log) => Ok(Some(log)),
        Err(e) => {
            eprintln!("error: cannot resume: {e}");
            Err(exit::INVALID)
        }
    }
}

/// Reads the manifest (or the journal of the run to resume), plans, applies
/// the selection, opens the journal and prices what is left.
fn prepare(args: &RunArgs) -> Result<Prepared, u8> {
    let own = resumed_run(args)?;
    let header = own.as_ref().map(|o| o.header.clone());
    // On resume the journal says how the run was started; the command line may override.
    let file = match (&args.file, &header) {
        (Some(f), _) => f.clone(),
        (None, Some(h)) => PathBuf::from(&h.manifest),
        (None, None) => {
            eprintln!("error: give the pipeline manifest, or `--resume RUN_DIR`");
            return Err(exit::INVALID);
        }
    };
    let pick = |given: &[String], saved: Option<&Vec<String>>| -> Vec<String> {
        if given.is_empty() {
            saved.cloned().unwrap_or_default()
        } else {
            given.to_vec()
        }
    };
    let inputs = match (&header, args.inputs.is_empty()) {
        (Some(h), true) => h.inputs.clone(),
        _ => args.inputs.clone(),
    };
    let prices_path = args.prices.clone().or_else(|| {
        header
            .as_ref()
            .and_then(|h| h.prices.clone().map(PathBuf::from))
    });
    let prices = super::plan::price_table(prices_path.as_ref()).map_err(|d| {
        super::print_diagnostics(&d, args.format);
        exit::INVALID
    })?;
    let options = crate::plan::Options {
        inputs: inputs.clone(),
        require_inputs: true,
        prices,
        max_credits: args
            .max_credits
            .or_else(|| header.as_ref().and_then(|h| h.max_credits)),
    };
    let (loaded, mut plan) = super::load_and_plan(&file, &options).map_err(|d| {
        super::print_diagnostics(&d, args.format);
        exit::INVALID
    })?;
    if let Some(h) = &header
        && h.pipeline != plan.name
    {
        eprintln!(
            "error: the run to resume is a run of `{}`, not of `{}`",
            h.pipeline, plan.name
        );
        return Err(exit::INVALID);
    }
    let mut selection = args.history.selection();
    selection.select = pick(&selection.select, header.as_ref().map(|h| &h.select));
    selection.exclude = pick(&selection.exclude, header.as_ref().map(|h| &h.exclude));
    if let Err(e) = history::select(&mut plan, &selection) {
        eprintln!("error: {e}");
        return Err(exit::INVALID);
    }
    let manifest_sha = sha256_file(&file);
    if let Some(h) = &header
        && h.manifest_sha256 != manifest_sha
    {
        eprintln!(
            "warning: `{}` changed since the run began; steps whose requests changed are sent as new",
            file.display()
        );
    }
    let mut policy = args.history.policy(&plan).map_err(|e| {
        eprintln!("error: {e}");
        exit::INVALID
    })?;
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
        _ => args.history.state(&file),
    };
    let api = history::api_identity(args.api.api_base.as_deref(), args.sandbox);
    let known = history::known(&state, &plan, api.as_deref(), own);
    let outlook = {
        let preview = RunMemory::read_only(known.clone(), policy.clone());
        engine::forecast(&plan, &preview)
    };
    let to_spend = outlook.total_to_spend();
    let download = args.download || header.as_ref().is_some_and(|h| h.download);
    let resuming = known.own.is_some();
    let (out, header) = if let Some(own) = known.own.as_ref() {
        if args.sandbox {
            eprintln!(
                "warning: `--sandbox` starts a new sandbox, which knows none of the tasks of the run being resumed"
            );
        }
        (own.dir.clone(), None)
    } else {
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
            manifest: journal::absolute(&file).display().to_string(),
            manifest_sha256: manifest_sha.clone(),
            price_version: plan.prices.version(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            inputs,
            prices: prices_path.map(|p| journal::absolute(&p).display().to_string()),
            select: selection.select.clone(),
            exclude: selection.exclude.clone(),
            max_credits: args.max_credits,
            download: args.download,
            state_dir: Some(journal::absolute(&state.root).display().to_string()),
            api,
        };
        (out, Some(header))
    };
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
        eprintln!(
            "{} `{}`: {reused} step instance(s) taken from earlier work, about {to_spend} credits left to spend",
            if resuming { "resuming" } else { "starting" },
            out.display()
        );
    }
    if let Some(cap) = plan.max_credits
        && to_spend > cap
    {
        eprintln!(
            "warning: the run needs about {to_spend} credits and the cap is {cap}; it stops before the submit that would cross it"
        );
    }
    let models = Models::with_declared(&loaded.manifest.models);
    Ok(Prepared {
        plan: Arc::new(plan),
        models,
        out,
        manifest_sha,
        journal: JournalPlan {
            state,
            known,
            policy,
            header,
        },
        to_spend,
        download,
    })
}

/// The API to talk to: a sandbox started here, or the configured service.
async fn connect(args: &RunArgs, scale: f64) -> Result<(ClientConfig, Option<SandboxHandle>), u8> {
    if args.sandbox {
        let sandbox = Sandbox::start(SandboxConfig::default().with_time_scale(scale))
            .await
            .map_err(|e| {
                eprintln!("error: cannot start the sandbox: {e}");
                exit::API_UNAVAILABLE
            })?;
        let key = ApiKey::new("sandbox-key").map_err(|e| {
            eprintln!("error: {e}");
            exit::API_UNAVAILABLE
        })?;
        let config = ClientConfig::new(sandbox.base_url(), key).map_err(|e| {
            eprintln!("error: {e}");
            exit::API_UNAVAILABLE
        })?;
        return Ok((config, Some(sandbox)));
    }
    match ClientConfig::from_env(
        args.api.api_base.as_deref(),
        args.api.api_key_file.as_deref(),
    ) {
        Ok(config) => Ok((config, None)),
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, ConfigError::MissingKey | ConfigError::EmptyKey) {
                eprintln!("  help: to try the pipeline without a key or credits, add `--sandbox`");
            }
            Err(exit::API_UNAVAILABLE)
        }
    }
}

async fn run_async(args: &RunArgs, prepared: Prepared) -> u8 {
    let Prepared {
        plan,
        models,
        out,
        manifest_sha,
        journal,
        to_spend,
        download,
    } = prepared;
    let scale = args.time_scale.unwrap_or(if args.sandbox {
        SANDBOX_TIME_SCALE
    } else {
        1.0
    });
    let (config, sandbox) = match connect(args, scale).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let client = match Client::new(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::API_UNAVAILABLE;
        }
    };
    let balance = preflight(&client, scale).await;
    if let Ok(Some(balance)) = &balance
        && !args.no_balance_check
    {
        let need = plan.max_credits.map_or(to_spend, |cap| to_spend.min(cap));
        if *balance < need {
            eprintln!(
                "error: the balance is {balance} credits and the run needs about {need}; nothing was sent"
            );
            eprintln!(
                "  help: top up, narrow the run with `--select`, or pass `--no-balance-check` to start anyway"
            );
            if let Some(s) = sandbox {
                s.shutdown().await;
            }
            return exit::BUDGET;
        }
    }
    if let Err(e) = balance {
        // A refused key or a host that never answers ends the run here; an API
        // that answers but misbehaves is left to the run's own retries.
        let fatal = matches!(
            e,
            ApiError::Unauthorised { .. } | ApiError::Transient { status: None, .. }
        );
        if fatal {
            eprintln!("error: cannot use the API at `{}`: {e}", config.base_url);
            eprintln!(
                "  help: check `MUSICAPI_KEY` (or `--api-key-file`) and `MUSICAPI_BASE_URL` (or `--api-base`); add `--sandbox` to run locally"
            );
            return exit::API_UNAVAILABLE;
        }
        eprintln!("warning: the balance check failed ({e}); starting anyway");
    }
    let memory = match journal.open(&out) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(s) = sandbox {
                s.shutdown().await;
            }
            return exit::INVALID;
        }
    };
    let mut engine_config = EngineConfig::from_plan(&plan, scale);
    engine_config.fail_fast = args.fail_fast;
    if let Some(n) = args.max_in_flight {
        engine_config.max_in_flight = n.max(1);
    }
    if let Some(n) = args.submits_per_minute {
        engine_config.submits_per_minute = n;
    }
    if let Some(n) = args.polls_per_second {
        engine_config.polls_per_second = n;
    }
    let executor = match make_executor(client, models, &out, &plan, download, scale) {
        Ok(e) => Arc::new(e),
        Err(code) => return code,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let clock = report::system_clock();
    let results_path = out.join("results.json");
    let writer = ResultsWriter::new(results_path.clone(), &plan, &manifest_sha, clock.clone());
    let console = Console::new(
        ConsoleMode::detect(args.log_format == LogFormat::Json),
        clock,
    );
    let reporting = spawn_reporters(rx, Reporters::new(writer, console));
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let interrupt = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "interrupted: no new submits; waiting for what is in flight (Ctrl-C again to stop now)"
            );
            let _ = cancel_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
        }
    });
    let summary = engine::run(
        Arc::clone(&plan),
        executor,
        Arc::clone(&memory) as Arc<dyn engine::Memory>,
        engine_config,
        tx,
        cancel_rx,
    )
    .await;
    interrupt.abort();
    if !summary.interrupted
        && let Err(e) = memory.finish(if summary.failed > 0 {
            "failed"
        } else {
            "finished"
        })
    {
        eprintln!("warning: {e}");
    }
    if summary.interrupted || summary.over_budget {
        eprintln!("resume with: sonicflow run --resume {}", out.display());
    }
    let drained = reporting
        .await
        .map_err(|_| "the reporting thread stopped".to_owned())
        .and_then(|r| r);
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    match drained {
        Ok(Drained {
            results_error: Some(e),
            ..
        }) => {
            eprintln!("error: {e}");
            return exit::FAILED_STEPS.max(exit_code(&summary));
        }
        Err(e) => {
            eprintln!("error: the results could not be written: {e}");
            return exit::FAILED_STEPS.max(exit_code(&summary));
        }
        Ok(_) => {}
    }
    exit_code(&summary)
}

/// Runs the reporters on a thread of their own: rewriting a large
/// results.json and printing take milliseconds at a time, which must not
/// delay the submits and polls sharing the run's workers.
fn spawn_reporters(
    rx: mpsc::UnboundedReceiver<crate::engine::RunEvent>,
    reporters: Reporters,
) -> tokio::sync::oneshot::Receiver<Result<Drained, String>> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("reporters".to_owned())
        .spawn(move || {
            let drained = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .map(|rt| rt.block_on(report::drain(rx, reporters)))
                .map_err(|e| format!("cannot start the reporters' runtime: {e}"));
            let _ = done_tx.send(drained);
        });
    if let Err(e) = spawned {
        eprintln!("error: cannot start the reporting thread: {e}");
    }
    done_rx
}

/// The executor for this run: the API client, the plan's models for
/// re-checking resolved values, and which files to save.
fn make_executor(
    client: Client,
    models: Models,
    out: &Path,
    plan: &Plan,
    download_all: bool,
    scale: f64,
) -> Result<ApiExecutor, u8> {
    let a = plan.artifacts;
    let kinds = if download_all {
        DownloadKinds::all()
    } else {
        DownloadKinds {
            audio: a.audio,
            wav: a.wav,
            midi: a.midi,
            stems: a.stems,
        }
    };
    let enabled = download_all || a.audio || a.wav || a.midi || a.stems;
    let mut downloads = DownloadOptions::new(out)
        .with_kinds(kinds)
        .with_time_scale(scale);
    downloads.enabled = enabled;
    ApiExecutor::new(client, models, downloads).map_err(|e| {
        eprintln!("error: {e}");
        exit::API_UNAVAILABLE
    })
}

/// Proves the key works before anything is paid for: a free balance call,
/// retried while the failure is transient; a refused key fails at once.
/// Returns the balance.
async fn preflight(client: &Client, scale: f64) -> Result<Option<u64>, ApiError> {
    const ATTEMPTS: u32 = 5;
    let mut delay = std::time::Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        match client.credits().await {
            Ok(c) => {
                let total = c.credits.saturating_add(c.extra_credits).max(0);
                return Ok(Some(u64::try_from(total).unwrap_or(0)));
            }
            Err(e) if attempt < ATTEMPTS && !matches!(e, ApiError::Unauthorised { .. }) => {
                tokio::time::sleep(e.retry_after().unwrap_or(delay).div_f64(scale)).await;
                delay *= 2;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The exit code a run's summary means (README, "Exit codes").
pub fn exit_code(summary: &Summary) -> u8 {
    if summary.unauthorised {
        exit::API_UNAVAILABLE
    } else if summary.interrupted {
        exit::INTERRUPTED
    } else if summary.over_budget || summary.stopped.as_deref() == Some("out of credits") {
        exit::BUDGET
    } else if summary.failed > 0 || summary.skipped > 0 {
        exit::FAILED_STEPS
    } else {
        exit::SUCCESS
    }
}

fn sha256_file(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| report::manifest_sha256(&bytes))
        .unwrap_or_default()
}
