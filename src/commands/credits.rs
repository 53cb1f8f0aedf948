//! `sonicflow credits`: print the balance of the configured API key.

use std::path::PathBuf;

use crate::api::{Client, ClientConfig};
use crate::exit;

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
        client.credits().await.map_err(anyhow::Error::from)
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
