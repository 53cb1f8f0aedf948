//! `sonicflow sandbox`: serve the local API simulator until Ctrl-C.
//!
//! The first line on stdout is the base URL, flushed at once, so scripts
//! can read it and export it as `MUSICAPI_BASE_URL`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::exit;
use crate::prices::PriceTable;
use crate::sandbox::{AnswerStyle, Faults, NotReadyForm, RateLimitScope, Sandbox, SandboxConfig};

/// `--style`: which forms the sandbox answers in (see [`AnswerStyle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StyleArg {
    Observed,
    Documented,
}

impl From<StyleArg> for AnswerStyle {
    fn from(style: StyleArg) -> AnswerStyle {
        match style {
            StyleArg::Observed => AnswerStyle::Observed,
            StyleArg::Documented => AnswerStyle::Documented,
        }
    }
}

/// `--not-ready-form`: how a poll answers before any clip exists (see
/// [`NotReadyForm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NotReadyArg {
    EmptyData,
    TypeObject,
    Accepted,
}

impl From<NotReadyArg> for NotReadyForm {
    fn from(form: NotReadyArg) -> NotReadyForm {
        match form {
            NotReadyArg::EmptyData => NotReadyForm::EmptyData,
            NotReadyArg::TypeObject => NotReadyForm::TypeObject,
            NotReadyArg::Accepted => NotReadyForm::Accepted,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
    /// Divide every latency and the rate-limit window by N.
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    pub time_scale: f64,
    /// Seed for ids, latencies and faults.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// YAML file of fault probabilities (`http_500: 0.05`, …).
    #[arg(long, value_name = "FILE")]
    pub faults: Option<PathBuf>,
    /// Starting balance of every API key.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub balance: u64,
    /// Seconds between paid submits per key, before time scaling.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub submit_interval: f64,
    /// Answer in the forms the live service was seen to use, or in the
    /// documented ones.
    #[arg(long, value_enum, default_value_t = StyleArg::Observed)]
    pub style: StyleArg,
    /// How a poll answers before any clip exists (default: `type-object`
    /// in the observed style, `empty-data` in the documented one).
    #[arg(long, value_enum, value_name = "FORM")]
    pub not_ready_form: Option<NotReadyArg>,
    /// Charge from this price table (the `--prices` format of `run`)
    /// instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// Number of stems a basic split returns.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub stems_basic: usize,
    /// Which paid submits that interval applies to: generation submits only,
    /// as documented, or every paid call sharing one slot.
    #[arg(long, value_enum, value_name = "SCOPE", default_value = "generation")]
    pub rate_limit_scope: RateLimitScope,
    /// Number of stems a full split returns.
    #[arg(long, value_name = "N", default_value_t = 24)]
    pub stems_full: usize,
    /// Accept only this API key (repeatable); by default any non-empty key
    /// is accepted, each with its own balance.
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
}

pub fn run(args: &SandboxArgs) -> u8 {
    let config = match config(args) {
        Ok(config) => config,
        Err(e) => {
            crate::errln!("error: {e}");
            return exit::INVALID;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::errln!("error: cannot start the async runtime: {e}");
            return exit::INVALID;
        }
    };
    runtime.block_on(serve(config))
}

fn config(args: &SandboxArgs) -> Result<SandboxConfig, String> {
    if !(args.submit_interval.is_finite() && args.submit_interval >= 0.0) {
        return Err(format!(
            "`--submit-interval {}` must be a non-negative number of seconds",
            args.submit_interval
        ));
    }
    let faults = match &args.faults {
        Some(path) => read_faults(path)?,
        None => Faults::default(),
    };
    let mut config = SandboxConfig::default();
    if !args.keys.is_empty() {
        config = config.with_keys(args.keys.clone());
    }
    if let Some(path) = &args.prices {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the price table `{name}`: {e}"))?;
        let table =
            PriceTable::from_yaml(&text, &name).map_err(|e| format!("{e}; {}", e.help()))?;
        config = config.with_prices(table);
    }
    if let Some(form) = args.not_ready_form {
        config = config.with_not_ready_form(form.into());
    }
    Ok(config
        .with_addr(args.addr)
        .with_time_scale(args.time_scale)
        .with_seed(args.seed)
        .with_balance(args.balance)
        .with_submit_interval(std::time::Duration::from_secs_f64(args.submit_interval))
        .with_style(args.style.into())
        .with_stems_basic_count(args.stems_basic)
        .with_rate_limit_scope(args.rate_limit_scope)
        .with_stems_full_count(args.stems_full)
        .with_faults(faults))
}

/// Reads a faults file (`--faults`, `--sandbox-faults`).
pub fn read_faults(path: &std::path::Path) -> Result<Faults, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the faults file `{}`: {e}", path.display()))?;
    Faults::from_yaml(&text, &path.display().to_string())
}

/// The knobs of a sandbox started for one command (`run --sandbox`,
/// `credits --sandbox`); `sonicflow sandbox` has them all, unprefixed.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Where it runs")]
pub struct OneShotSandboxArgs {
    /// Starting balance of the sandbox's key [default: 1000].
    #[arg(long, value_name = "N", requires = "sandbox")]
    pub sandbox_balance: Option<u64>,
    /// YAML file of fault probabilities for the sandbox (`http_500: 0.05`, …; as `sonicflow sandbox --faults`).
    #[arg(long, value_name = "FILE", requires = "sandbox")]
    pub sandbox_faults: Option<PathBuf>,
    /// Seed for the sandbox's ids, latencies and faults [default: 0].
    #[arg(long, value_name = "S", requires = "sandbox")]
    pub sandbox_seed: Option<u64>,
}

impl OneShotSandboxArgs {
    /// The sandbox these flags describe, at time scale `scale`.
    pub fn config(&self, scale: f64) -> Result<SandboxConfig, String> {
        let mut config = SandboxConfig::default().with_time_scale(scale);
        if let Some(balance) = self.sandbox_balance {
            config = config.with_balance(balance);
        }
        if let Some(seed) = self.sandbox_seed {
            config = config.with_seed(seed);
        }
        if let Some(path) = &self.sandbox_faults {
            config = config.with_faults(read_faults(path)?);
        }
        Ok(config)
    }
}

/// Starts a sandbox for one command (`run --sandbox`, `credits --sandbox`)
/// and the client configuration that talks to it.
pub async fn start_one_shot(
    config: SandboxConfig,
) -> Result<(crate::api::ClientConfig, crate::sandbox::SandboxHandle), String> {
    let handle = Sandbox::start(config).await.map_err(|e| e.to_string())?;
    let key = crate::api::ApiKey::new("sandbox-key").map_err(|e| e.to_string())?;
    let client =
        crate::api::ClientConfig::new(handle.base_url(), key).map_err(|e| e.to_string())?;
    Ok((client, handle))
}

async fn serve(config: SandboxConfig) -> u8 {
    let (scale, style) = (config.time_scale, config.style.name());
    let handle = match Sandbox::start(config).await {
        Ok(handle) => handle,
        Err(e) => {
            crate::errln!("error: {e}");
            return exit::INVALID;
        }
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{}", handle.base_url());
    let _ = stdout.flush();
    crate::errln!(
        "sandbox listening on {} (time scale {scale}, {style} style); Ctrl-C stops it",
        handle.base_url()
    );
    let _ = tokio::signal::ctrl_c().await;
    handle.shutdown().await;
    exit::SUCCESS
}
