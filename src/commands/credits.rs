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
pub struct ApiArgs {
    /// Base URL of the API (else `MUSICAPI_BASE_URL`, else the production API).
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
    /// Read the API key from FILE instead of `MUSICAPI_KEY`.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CreditsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

pub fn run(args: &CreditsArgs) -> u8 {
    let config = match ClientConfig::from_env(
        args.api.api_base.as_deref(),
        args.api.api_key_file.as_deref(),
    ) {
        Ok(config) => config,
        Err(e) => {
            crate::errln!("error: {e}");
            return exit::API_UNAVAILABLE;
        }
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
        let client = Client::new(&config)?;
        balance(&client, BALANCE_DEADLINE, 1.0)
            .await
            .map_err(|e| anyhow::anyhow!("cannot get the balance from `{}`: {e}", config.base_url))
    });
    match result {
        Ok(credits) => {
            crate::outln!("credits: {}", credits.credits);
            crate::outln!("extra_credits: {}", credits.extra_credits);
            exit::SUCCESS
        }
        Err(e) => {
            crate::errln!("error: {e}");
            crate::errln!(
                "help: check `MUSICAPI_KEY` (or `--api-key-file`) and `MUSICAPI_BASE_URL` (or `--api-base`)"
            );
            exit::API_UNAVAILABLE
        }
    }
}
