//! `sonicflow credits`: print the balance of the configured API key; and
//! asking for the balance within a deadline, for it and for `run`'s check
//! before the first submit.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::{ApiError, Client, ClientConfig, Credits};
use crate::exit;

/// How long asking for the balance may take in all, retries and their
/// waits included (README, "Running"): a server that stalls or asks to wait
/// longer than this is given up on.
pub const BALANCE_DEADLINE: Duration = Duration::from_secs(60);

/// Why the balance is not known.
#[derive(Debug)]
pub enum BalanceError {
    /// The service refused, or kept failing until the attempts ran out.
    Api(ApiError),
    /// No answer within the deadline; `last` is the failure of the last
    /// attempt, if one was answered.
    Deadline {
        deadline: Duration,
        last: Option<ApiError>,
    },
}

impl fmt::Display for BalanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BalanceError::Api(e) => e.fmt(f),
            BalanceError::Deadline { deadline, last } => {
                write!(f, "no balance within {} s", deadline.as_secs())?;
                match last {
                    Some(e) => write!(f, " (last answer: {e})"),
                    None => f.write_str(" (no answer)"),
                }
            }
        }
    }
}

/// Asks for the balance, retrying a failure that may pass (a refused key
/// fails at once) with the delay the server asks for or a doubling one,
/// waits divided by `scale`; gives up when the answer, or the end of a
/// wait, would come after `deadline`.
pub async fn balance(
    client: &Client,
    deadline: Duration,
    scale: f64,
) -> Result<Credits, BalanceError> {
    const ATTEMPTS: u32 = 5;
    let end = Instant::now() + deadline;
    let mut delay = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        let error = match tokio::time::timeout_at(end, client.credits()).await {
            Ok(Ok(credits)) => return Ok(credits),
            Ok(Err(error)) => error,
            Err(_) => {
                return Err(BalanceError::Deadline {
                    deadline,
                    last: None,
                });
            }
        };
        if attempt == ATTEMPTS || matches!(error, ApiError::Unauthorised { .. }) {
            return Err(BalanceError::Api(error));
        }
        let wait = error.retry_after().unwrap_or(delay).div_f64(scale);
        if Instant::now() + wait >= end {
            let last = Some(error);
            return Err(BalanceError::Deadline { deadline, last });
        }
        tokio::time::sleep(wait).await;
        delay *= 2;
        attempt += 1;
    }
}

/// Where the API is and which key to use; shared by commands that talk to it.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Where it runs")]
pub struct ApiArgs {
    /// Base URL of the API (else `MUSICAPI_BASE_URL`, else the production API).
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
    /// Read the API key from FILE instead of `MUSICAPI_KEY`.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
}

/// What to check when nothing answered at the API's address.
const UNREACHABLE_HELP: &str =
    "nothing answered: check the address (`--api-base` or `MUSICAPI_BASE_URL`) and the network";

/// What to check when the API cannot be used: the key when it was
/// refused, the address and the network when nothing answered, the
/// service itself when it answered with a failure.
pub fn api_help(error: &ApiError) -> &'static str {
    match error {
        ApiError::Unauthorised { .. } => {
            "check the key: `MUSICAPI_KEY`, or the file given to `--api-key-file`"
        }
        ApiError::Transient { status: None, .. } => UNREACHABLE_HELP,
        ApiError::Redirected { .. } => "fix the address: `--api-base` or `MUSICAPI_BASE_URL`",
        _ => "the service answered with a failure; try again later",
    }
}

/// Why the balance could not be had, and what to check.
fn balance_failure(error: &BalanceError, base_url: &str) -> (String, &'static str) {
    match error {
        BalanceError::Api(ApiError::Transient {
            status: None,
            message,
            ..
        }) => (
            format!("cannot reach `{base_url}`: {message}"),
            UNREACHABLE_HELP,
        ),
        BalanceError::Api(e) => (
            format!("cannot get the balance from `{base_url}`: {e}"),
            api_help(e),
        ),
        BalanceError::Deadline { last: Some(e), .. } => (
            format!("cannot get the balance from `{base_url}`: {error}"),
            api_help(e),
        ),
        BalanceError::Deadline { last: None, .. } => (
            format!("cannot get the balance from `{base_url}`: {error}"),
            "the service did not answer in time: check the address (`--api-base` or `MUSICAPI_BASE_URL`) and try again later",
        ),
    }
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  MUSICAPI_KEY=… sonicflow credits
  sonicflow credits --json
  sonicflow credits --sandbox --sandbox-balance 5000")]
pub struct CreditsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Ask a sandbox started for this command instead of the API (no key needed).
    #[arg(long, conflicts_with_all = ["api_base", "api_key_file"])]
    pub sandbox: bool,
    #[command(flatten)]
    pub sandbox_knobs: super::sandbox::OneShotSandboxArgs,
    #[command(flatten)]
    pub format: crate::format::FormatArgs<crate::format::HumanOrJson>,
    /// Divide the waits between retries by N (as for `run`).
    #[arg(long, value_name = "N", env = "SONICFLOW_TIME_SCALE", hide = true)]
    pub time_scale: Option<f64>,
}

/// `sonicflow credits --json`.
#[derive(Debug, serde::Serialize)]
struct Balance<'a> {
    /// The API asked, without user name, password or query.
    service: &'a str,
    sandbox: bool,
    credits: i64,
    extra_credits: i64,
}

pub fn run(args: &CreditsArgs) -> u8 {
    let sandbox = match args.sandbox {
        true => match args.sandbox_knobs.config(1.0) {
            Ok(config) => Some(config),
            Err(e) => {
                crate::errln!("error: {e}");
                return exit::INVALID;
            }
        },
        false => None,
    };
    let config = match sandbox {
        Some(_) => None,
        None => match ClientConfig::from_env(
            args.api.api_base.as_deref(),
            args.api.api_key_file.as_deref(),
        ) {
            Ok(config) => Some(config),
            Err(e) => {
                crate::errln!("error: {e}");
                crate::errln!("help: `sonicflow credits --sandbox` asks a local sandbox instead");
                return exit::API_UNAVAILABLE;
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::errln!("error: cannot start the async runtime: {e}");
            return exit::API_UNAVAILABLE;
        }
    };
    let result = runtime.block_on(async {
        let (config, handle) = match (config, sandbox) {
            (Some(config), _) => (config, None),
            (None, sandbox) => {
                let (config, handle) = super::sandbox::start_one_shot(sandbox.unwrap_or_default())
                    .await
                    .map_err(|e| {
                        (
                            format!("cannot start the sandbox: {e}"),
                            "check that a loopback port is free",
                        )
                    })?;
                (config, Some(handle))
            }
        };
        let client = Client::new(&config)
            .map_err(|e| (e.to_string(), "check `--api-base` or `MUSICAPI_BASE_URL`"))?;
        let scale = args
            .time_scale
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(1.0);
        let answer = balance(&client, BALANCE_DEADLINE, scale)
            .await
            .map_err(|e| balance_failure(&e, &config.base_url));
        if let Some(handle) = handle {
            handle.shutdown().await;
        }
        answer.map(|credits| (credits, config.base_url.clone()))
    });
    match result {
        Ok((credits, base_url)) => {
            let service = crate::report::Service::of(&base_url, args.sandbox);
            let shown = Balance {
                service: &service.base_url,
                sandbox: args.sandbox,
                credits: credits.credits,
                extra_credits: credits.extra_credits,
            };
            crate::format::print(args.format.get(), &shown, |b| {
                format!(
                    "credits: {}\nextra_credits: {}\n",
                    b.credits, b.extra_credits
                )
            });
            exit::SUCCESS
        }
        Err((message, help)) => {
            crate::errln!("error: {message}");
            crate::errln!("help: {help}");
            exit::API_UNAVAILABLE
        }
    }
}
