//! `sonicflow run`: execute a pipeline against the API or the sandbox.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

mod download_args;
mod error;
mod prepare;
pub(crate) mod publish;

pub use download_args::DownloadArgs;
pub use error::RunError;
use prepare::{Prepared, prepare};

use super::credits::{ApiArgs, BALANCE_DEADLINE, BalanceError, balance};
use crate::api::{ApiError, Client, ClientConfig};
use crate::engine::{self, EngineConfig};
use crate::exit;
use crate::format::{FormatArgs, Formats, OutputFormat};
use crate::plan::Plan;
use crate::plan::models::Models;
use crate::report::{self, Console, ConsoleMode, Drained, Pace, Reporters, ResultsWriter};
use crate::sandbox::{SandboxConfig, SandboxHandle};
use crate::steps::{ApiExecutor, DownloadKinds, DownloadOptions, ExecutorError};

/// Time scale of `--sandbox` runs unless `--time-scale` says otherwise: a
/// two-minute song takes 0.6 s, so the examples finish in seconds.
pub const SANDBOX_TIME_SCALE: f64 = 200.0;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sonicflow run pipelines/nightly.yaml --sandbox --download   # a local sandbox, no credits
  sonicflow run pipelines/nightly.yaml --max-credits 500      # the real API, capped
  sonicflow run --resume last pipelines/nightly.yaml          # take up where a run stopped

Exit codes: 0 succeeded; 1 some steps failed or did not run; 2 invalid, or locked by another run;
3 the budget or the balance; 4 the key or the API; 7 not all published; 130 interrupted.")]
pub struct RunArgs {
    /// The pipeline manifest (optional with `--resume RUN_DIR`).
    #[arg(value_name = "FILE", required_unless_present = "resume")]
    pub file: Option<PathBuf>,
    /// Take up an interrupted run: `--resume RUN_DIR`, or `--resume last` for
    /// the newest run of FILE. Tasks already accepted are polled, never sent again.
    #[arg(help_heading = "Pipeline", long, value_name = "RUN_DIR|last")]
    pub resume: Option<String>,
    /// Override an input: `--input name=value` (repeatable).
    #[arg(help_heading = "Pipeline", long = "input", value_name = "NAME=VALUE", value_parser = super::parse_input)]
    pub inputs: Vec<(String, String)>,
    /// Read the matrix rows from this CSV or JSONL file instead of the manifest's `matrix.file` or `matrix.rows` (a resume reads the file its run began with).
    #[arg(help_heading = "Pipeline", long, value_name = "FILE")]
    pub matrix: Option<PathBuf>,
    /// Stop submitting after the first failed step.
    #[arg(help_heading = "Pipeline", long)]
    pub fail_fast: bool,
    /// A price table (YAML) to use instead of the built-in one.
    #[arg(help_heading = "Pipeline", long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// Run against a local sandbox started for this run, spending no real credits.
    #[arg(help_heading = "Where it runs", long)]
    pub sandbox: bool,
    #[command(flatten)]
    pub sandbox_knobs: super::sandbox::OneShotSandboxArgs,
    /// Divide every duration (poll schedule, backoff, quotas) by N; with `--sandbox` the sandbox's too [default with --sandbox: 200].
    #[arg(
        help_heading = "Where it runs",
        long,
        value_name = "N",
        env = "SONICFLOW_TIME_SCALE"
    )]
    pub time_scale: Option<f64>,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Remote tasks in flight at most (overrides `limits.max_in_flight`).
    #[arg(help_heading = "Pace", long, value_name = "N")]
    pub max_in_flight: Option<u32>,
    /// Generation submits (creates, covers, stems, …) per minute at most (overrides `limits.submits_per_minute`).
    #[arg(help_heading = "Pace", long, value_name = "N")]
    pub submits_per_minute: Option<u32>,
    /// Quick paid calls (bpm, wav, midi, upload, …) per minute at most (overrides `limits.quick_calls_per_minute`).
    #[arg(help_heading = "Pace", long, value_name = "N")]
    pub quick_calls_per_minute: Option<u32>,
    /// Status polls per second at most (overrides `limits.polls_per_second`).
    #[arg(help_heading = "Pace", long, value_name = "N")]
    pub polls_per_second: Option<u32>,
    /// Before the first submit, do not check that the balance covers what the run will spend.
    #[arg(help_heading = "Budget", long)]
    pub no_balance_check: bool,
    /// Read the (free) balance around submits to record what each really cost [default: on].
    #[arg(help_heading = "Budget", long, overrides_with = "no_observe_charges")]
    pub observe_charges: bool,
    /// Do not read the balance around submits: results show planned credits only.
    #[arg(help_heading = "Budget", long, overrides_with = "observe_charges")]
    pub no_observe_charges: bool,
    /// Spend at most this many credits: the submit that would cross it is not sent (overrides `limits.max_credits`).
    #[arg(help_heading = "Budget", long, value_name = "CREDITS")]
    pub max_credits: Option<u64>,
    /// Start even when the plan needs more than the cap: spend up to the cap and stop there.
    #[arg(help_heading = "Budget", long)]
    pub allow_partial: bool,
    #[command(flatten)]
    pub history: super::history::HistoryArgs,
    /// Name the run, so that its shards share it and a restarted one takes it up (default with `--shard`: `$SONICFLOW_RUN_ID`, else `$GITHUB_RUN_ID`).
    #[arg(help_heading = "State and reuse", long, value_name = "ID")]
    pub run_id: Option<String>,
    /// How long to wait for another run of the pipeline on the same state folder to let go of its lock [default: refuse at once].
    #[arg(help_heading = "State and reuse", long, value_name = "DURATION", default_value = "0s", hide_default_value = true, value_parser = humantime::parse_duration)]
    pub lock_timeout: std::time::Duration,
    /// Folder for the results manifest and downloads [default: .sonicflow/runs/<name>-<time> beside the manifest]; or a bucket URL (s3://, gs://, az://, file://) to publish them to when the run ends, from the default folder.
    #[arg(help_heading = "Results and files", long, value_name = "DIR|URL")]
    pub out: Option<PathBuf>,
    /// Download audio with its cover art, WAV, stems and MIDI into the output folder, named by `artifacts.name`.
    #[arg(help_heading = "Results and files", long)]
    pub download: bool,
    /// Send uploads in the service's task mode, which answers with a task id at once (the service POSTs the finished upload to URL; sonicflow polls it).
    #[arg(help_heading = "Results and files", long, value_name = "URL", env = "SONICFLOW_UPLOAD_CALLBACK", value_parser = crate::steps::parse_upload_callback)]
    pub upload_callback: Option<String>,
    #[command(flatten)]
    pub download_limits: DownloadArgs,
    /// How to log progress on stderr: `human`, a live view on a terminal and a line per event otherwise; `json`, one JSON object per event.
    #[arg(
        help_heading = "Results and files",
        long,
        value_enum,
        default_value = "human"
    )]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub format: FormatArgs<RunFormats>,
    /// When the run ends, write a Markdown summary of it (status, credits, failures) to FILE; it is also appended to `$GITHUB_STEP_SUMMARY` when that is set.
    #[arg(help_heading = "Results and files", long, value_name = "FILE")]
    pub summary_md: Option<PathBuf>,
}

/// What `run` prints on stdout when it ends, and how it prints problems
/// with the manifest (its progress log is `--log-format`).
#[derive(Debug, Clone, Copy)]
pub struct RunFormats;

impl Formats for RunFormats {
    const ALLOWED: &'static [OutputFormat] = &OutputFormat::ALL;
    const HELP: &'static str = "What to print on stdout when the run ends, and how to print problems with the manifest: `human`, the path of results.json (the default); `json`, a summary object (`path`, `status`, `stop_reason`, `totals`) and problems as JSON; `markdown`, the run's Markdown summary; `github`, the path, with problems as GitHub Actions annotations (progress is `--log-format`)";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    // Live progress on a terminal, one line per event otherwise.
    Human,
    // One JSON object per event.
    Json,
}

pub fn run(args: &RunArgs) -> u8 {
    match start(args) {
        Ok(code) => code,
        Err(e) => {
            e.print();
            e.exit_code()
        }
    }
}

/// Runs the pipeline; `Ok` carries the exit code of the run's own outcome.
fn start(args: &RunArgs) -> Result<u8, RunError> {
    if let Some(scale) = args.time_scale
        && !(scale.is_finite() && scale > 0.0)
    {
        return Err(RunError::TimeScale(scale));
    }
    publish::given(args)?;
    // The key is read before the state folder is touched: a key file that
    // cannot be used stops the run with no lock taken and no folder made.
    let configured = if args.sandbox {
        None
    } else {
        match ClientConfig::from_env(
            args.api.api_base.as_deref(),
            args.api.api_key_file.as_deref(),
        ) {
            Ok(config) => Some(config),
            Err(e) => {
                prepare::check_manifest(args)?;
                return Err(RunError::Config(e));
            }
        }
    };
    // A faults file that cannot be used is refused before anything else.
    let sandbox = match args.sandbox {
        true => Some(args.sandbox_knobs.config(1.0).map_err(RunError::Usage)?),
        false => None,
    };
    let prepared = prepare(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| RunError::Runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run_async(args, prepared, configured, sandbox))
}

/// The API to talk to: a sandbox started here, or the configured service.
async fn connect(
    scale: f64,
    configured: Option<ClientConfig>,
    sandbox: Option<SandboxConfig>,
) -> Result<(ClientConfig, Option<SandboxHandle>), RunError> {
    if let Some(config) = configured {
        return Ok((config, None));
    }
    let sandbox = sandbox.unwrap_or_default().with_time_scale(scale);
    let (config, sandbox) = super::sandbox::start_one_shot(sandbox)
        .await
        .map_err(RunError::Sandbox)?;
    Ok((config, Some(sandbox)))
}

/// Talks to the API (a sandbox started for the run is always shut down after).
async fn run_async(
    args: &RunArgs,
    prepared: Prepared,
    configured: Option<ClientConfig>,
    sandbox: Option<SandboxConfig>,
) -> Result<u8, RunError> {
    let scale = args.time_scale.unwrap_or(if args.sandbox {
        SANDBOX_TIME_SCALE
    } else {
        1.0
    });
    let (config, sandbox) = connect(scale, configured, sandbox).await?;
    let result = execute(args, prepared, &config, scale).await;
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    result
}

/// Checks the key and the balance, opens the journal and runs the engine
/// with its reporters.
async fn execute(
    args: &RunArgs,
    prepared: Prepared,
    config: &ClientConfig,
    scale: f64,
) -> Result<u8, RunError> {
    let client = Client::new(config).map_err(|e| RunError::Client(e.to_string()))?;
    check_balance(args, &client, config, &prepared, scale).await?;
    let Prepared {
        plan,
        models,
        out,
        manifest_sha,
        journal,
        download,
        upload_callback,
        lock,
        spent_before,
        to_spend,
        mut context,
        saved,
        publish: bucket,
    } = prepared;
    context.service = Some(report::Service::of(&config.base_url, args.sandbox));
    let state = journal.state().clone();
    let memory = Arc::new(journal.open(&out, scale)?);
    let engine_config = engine_config(args, &plan, scale);
    let limits = &args.download_limits;
    let files = DownloadOptions::new(&out).with_saved(saved);
    let executor = make_executor(client, models, files, &plan, download, scale, limits)
        .map_err(|e| RunError::Client(e.to_string()))?
        .with_upload_callback(upload_callback);
    let (tx, rx) = mpsc::unbounded_channel();
    let clock = report::system_clock();
    let writer = ResultsWriter::new(
        out.join("results.json"),
        &plan,
        &manifest_sha,
        clock.clone(),
    )
    .with_context(context);
    let console = Console::new(
        ConsoleMode::detect(args.log_format == LogFormat::Json),
        clock,
    )
    .with_pace(Pace::of(&plan, &engine_config, spent_before + to_spend));
    let reporting = spawn_reporters(rx, Reporters::new(writer, console));
    let (cancel_tx, cancel_rx) = watch::channel(false);
    if let Some(lock) = &lock {
        // A run whose lock was taken over stops sending, as on Ctrl-C.
        let cancel = cancel_tx.clone();
        lock.on_lost(move || {
            let _ = cancel.send(true);
        });
    }
    let interrupt = tokio::spawn(watch_ctrl_c(cancel_tx));
    let memory_dyn = Arc::clone(&memory) as Arc<dyn engine::Memory>;
    let summary = engine::run(
        plan,
        Arc::new(executor),
        memory_dyn,
        engine_config,
        tx,
        cancel_rx,
    )
    .await;
    interrupt.abort();
    let outcome = summary.outcome();
    // The resume keeps the cap: one that stopped at it needs a higher one.
    let needed_cap = match outcome.stop_reason() {
        Some(engine::StopReason::Budget {
            needs, committed, ..
        }) => Some((spent_before + to_spend).max(committed + needs)),
        _ => None,
    };
    if let Some(status) = outcome.journal_status()
        && let Err(e) = memory.finish(status, outcome.verdict(), summary.credits, needed_cap)
    {
        crate::errln!("warning: {e}");
    }
    let mut outcome_code = outcome.exit_code();
    // The summary is printed when the reporters drain; the report, the
    // Markdown summary, the publish and the resume hint come after it.
    let drained = reporting.await;
    publish_report(&out);
    report::markdown::publish(&out, args.summary_md.as_deref());
    let written = matches!(
        drained,
        Ok(Ok(Drained {
            results_error: None,
            ..
        }))
    );
    if written
        && let Some(run) = memory.run_id()
        && let Err(e) = state.keep_results(&run, &out)
    {
        crate::errln!(
            "warning: the results were not kept in {} ({e}); `sonicflow merge` and `status` on another machine will not see them until this run is resumed",
            state.describe()
        );
    }
    if let Some(bucket) = &bucket {
        outcome_code = publish::deliver(bucket, &out, outcome_code, written);
    }
    if outcome.resumable() {
        let raise = needed_cap.map_or_else(String::new, |n| format!(" --max-credits {n}"));
        crate::errln!(
            "resume with: sonicflow run --resume {}{raise}",
            out.display()
        );
    }
    let message = match drained {
        Ok(Ok(Drained {
            results_error: None,
            run_summary,
            ..
        })) => {
            print_outcome(args, &run_summary);
            return Ok(outcome_code);
        }
        Ok(Ok(Drained {
            results_error: Some(e),
            ..
        })) => e.to_string(),
        Ok(Err(e)) => format!("the results could not be written: {e}"),
        Err(_) => "the results could not be written: the reporting thread stopped".to_owned(),
    };
    Err(RunError::Results {
        message,
        outcome_code,
    })
}

/// Writes the run folder's report.html, whatever way the run ended; a
/// report that cannot be written is a warning, never the run's outcome.
fn publish_report(out: &Path) {
    match report::html::write_report(out) {
        Ok(_) if crate::output::quiet() => {}
        Ok(path) => crate::errln!("report: {}", path.display()),
        Err(e) => crate::errln!("warning: no report.html: {e}"),
    }
}

/// What `$(sonicflow run …)` captures: the results path, or with
/// `--format json` the run's summary, with `--format markdown` the
/// Markdown summary; everything else went to stderr.
fn print_outcome(args: &RunArgs, run_summary: &serde_json::Value) {
    let path = run_summary.get("path").and_then(serde_json::Value::as_str);
    match (args.format.get(), path) {
        (OutputFormat::Json, _) | (_, None) => crate::outln!("{run_summary}"),
        (OutputFormat::Markdown, Some(path)) => {
            let dir = Path::new(path).parent().unwrap_or(Path::new(""));
            match report::markdown::render(dir) {
                Ok(text) => crate::outln!("{text}"),
                Err(e) => {
                    crate::errln!("warning: no Markdown summary: {e}");
                    crate::outln!("{path}");
                }
            }
        }
        (_, Some(path)) => crate::outln!("{path}"),
    }
}

/// Proves the key works and that the balance covers the run, before
/// anything is paid for.
async fn check_balance(
    args: &RunArgs,
    client: &Client,
    config: &ClientConfig,
    prepared: &Prepared,
    scale: f64,
) -> Result<(), RunError> {
    // The free balance call proves the key works before anything is paid for.
    let answer = balance(client, BALANCE_DEADLINE, scale)
        .await
        .map(|c| u64::try_from(c.credits.saturating_add(c.extra_credits).max(0)).unwrap_or(0));
    match answer {
        Ok(balance) if !args.no_balance_check => {
            let plan = &prepared.plan;
            let need = plan.max_credits.map_or(prepared.to_spend, |cap| {
                prepared
                    .to_spend
                    .min(cap.saturating_sub(prepared.spent_before))
            });
            if balance < need {
                return Err(RunError::BalanceShort {
                    balance,
                    need,
                    sandbox: args.sandbox,
                });
            }
        }
        Ok(_) => {}
        // A refused key or a host that never answers ends the run here; an API
        // that answers but misbehaves is left to the run's own retries.
        Err(BalanceError::Api(
            error @ (ApiError::Unauthorised { .. } | ApiError::Transient { status: None, .. }),
        )) => {
            return Err(RunError::ApiUnusable {
                base_url: config.base_url.clone(),
                error,
            });
        }
        // One that keeps the run waiting for its balance past the deadline
        // does not start it, unless the balance was not asked for.
        Err(error @ BalanceError::Deadline { .. }) if !args.no_balance_check => {
            return Err(RunError::BalanceDeadline {
                base_url: config.base_url.clone(),
                error: Box::new(error),
            });
        }
        Err(e) => crate::errln!("warning: the balance check failed ({e}); starting anyway"),
    }
    Ok(())
}

/// The plan's pace (the pace flags are part of the plan, checked as their
/// `limits:` keys are), and how the run stops.
fn engine_config(args: &RunArgs, plan: &Plan, scale: f64) -> EngineConfig {
    let mut config = EngineConfig::from_plan(plan, scale);
    config.fail_fast = args.fail_fast;
    config.observe_charges = !args.no_observe_charges;
    config
}

/// Ctrl-C stops new submits; a second one stops at once.
async fn watch_ctrl_c(cancel: watch::Sender<bool>) {
    if tokio::signal::ctrl_c().await.is_ok() {
        // The run's status says `interrupted` once, in its summary.
        crate::errln!(
            "Ctrl-C: no new submits; waiting for what is in flight (Ctrl-C again to stop now)"
        );
        let _ = cancel.send(true);
        if tokio::signal::ctrl_c().await.is_ok() {
            report::close_live_view();
            crate::journal::lock::release_held();
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
    }
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
        crate::errln!("error: cannot start the reporting thread: {e}");
    }
    done_rx
}

/// The executor for this run: the API client, the plan's models for
/// re-checking resolved values, and which files to save (`files`: where,
/// and those a resumed run saved already).
fn make_executor(
    client: Client,
    models: Models,
    files: DownloadOptions,
    plan: &Plan,
    download_all: bool,
    scale: f64,
    limits: &DownloadArgs,
) -> Result<ApiExecutor, ExecutorError> {
    let a = &plan.artifacts;
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
    let mut downloads = files
        .with_names(plan.file_names.clone())
        .with_kinds(kinds)
        .with_time_scale(scale);
    downloads.enabled = enabled;
    ApiExecutor::new(client, models, limits.apply(downloads))
}
