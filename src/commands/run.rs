//! `sonicflow run`: execute a pipeline against the API or the sandbox.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::credits::ApiArgs;
use crate::api::{ApiError, ApiKey, Client, ClientConfig, ConfigError};
use crate::diag::Format;
use crate::engine::{self, EngineConfig, Summary};
use crate::exit;
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
    /// The pipeline manifest.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
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
    /// Refuse to start when the plan costs more (overrides `limits.max_credits`).
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

pub fn run(args: &RunArgs) -> u8 {
    let prices = match super::plan::price_table(args.prices.as_ref()) {
        Ok(p) => p,
        Err(d) => {
            super::print_diagnostics(&d, args.format);
            return exit::INVALID;
        }
    };
    let options = crate::plan::Options {
        inputs: args.inputs.clone(),
        require_inputs: true,
        prices,
        max_credits: args.max_credits,
    };
    let (loaded, plan) = match super::load_and_plan(&args.file, &options) {
        Ok(x) => x,
        Err(d) => {
            super::print_diagnostics(&d, args.format);
            return exit::INVALID;
        }
    };
    if let Some(max) = plan.max_credits
        && plan.total_credits() > max
    {
        eprintln!(
            "error: the plan needs {} credits, more than the budget of {max}; nothing was sent",
            plan.total_credits()
        );
        eprintln!(
            "  help: run `sonicflow plan {}` to see where they go; raise `limits.max_credits` or `--max-credits`",
            args.file.display()
        );
        return exit::BUDGET;
    }
    if let Some(scale) = args.time_scale
        && !(scale.is_finite() && scale > 0.0)
    {
        eprintln!("error: `--time-scale {scale}` must be a positive number");
        return exit::INVALID;
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_run_dir(&args.file, &plan.name));
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!(
            "error: cannot create the output folder `{}`: {e}",
            out.display()
        );
        return exit::INVALID;
    }
    let manifest_sha = sha256_file(&args.file);
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
    let models = Models::with_declared(&loaded.manifest.models);
    runtime.block_on(run_async(args, Arc::new(plan), models, out, manifest_sha))
}

/// `.sonicflow/runs/<name>-<UTC time>` beside the manifest.
fn default_run_dir(manifest: &Path, name: &str) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    let base = manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    base.join(".sonicflow")
        .join("runs")
        .join(format!("{safe}-{stamp}"))
}

fn sha256_file(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| report::manifest_sha256(&bytes))
        .unwrap_or_default()
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

async fn run_async(
    args: &RunArgs,
    plan: Arc<Plan>,
    models: Models,
    out: PathBuf,
    manifest_sha: String,
) -> u8 {
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
    if let Err(e) = preflight(&client, scale).await {
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
    let executor = match make_executor(client, models, &out, &plan, args.download, scale) {
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
    let summary = engine::run(Arc::clone(&plan), executor, engine_config, tx, cancel_rx).await;
    interrupt.abort();
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
async fn preflight(client: &Client, scale: f64) -> Result<(), ApiError> {
    const ATTEMPTS: u32 = 5;
    let mut delay = std::time::Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        match client.credits().await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < ATTEMPTS && !matches!(e, ApiError::Unauthorised { .. }) => {
                tokio::time::sleep(e.retry_after().unwrap_or(delay).div_f64(scale)).await;
                delay *= 2;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The exit code a run's summary means (README, "Exit codes").
pub fn exit_code(summary: &Summary) -> u8 {
    if summary.unauthorised {
        exit::API_UNAVAILABLE
    } else if summary.interrupted {
        exit::INTERRUPTED
    } else if summary.stopped.as_deref() == Some("out of credits") {
        exit::BUDGET
    } else if summary.failed > 0 || summary.skipped > 0 {
        exit::FAILED_STEPS
    } else {
        exit::SUCCESS
    }
}
