//! Why `sonicflow run` could not start or finish, as one type: each
//! failure knows its exit code and prints itself once, with its fix.

use std::fmt;
use std::path::PathBuf;

use crate::api::{ApiError, ConfigError};
use crate::diag::{Diagnostic, Format};
use crate::exit;

/// A run that ended before (or instead of) its steps' own outcome.
#[derive(Debug)]
pub enum RunError {
    /// `--time-scale` is not a positive number.
    TimeScale(f64),
    /// The manifest, the price table or an input is invalid.
    Manifest {
        diagnostics: Vec<Diagnostic>,
        format: Format,
    },
    /// `--resume last` without the pipeline.
    ResumeLastNeedsFile,
    /// `--resume last` found no earlier run.
    NoEarlierRun {
        pipeline: String,
        state: PathBuf,
        file: PathBuf,
    },
    /// The run folder's journal cannot be taken up.
    CannotResume(String),
    /// Neither a manifest nor `--resume RUN_DIR`.
    NoManifest,
    /// The journal to resume belongs to another pipeline.
    WrongPipeline { journal: String, manifest: String },
    /// Another run holds the pipeline's lock in the state folder.
    Locked {
        held: Box<crate::journal::lock::Held>,
        state: PathBuf,
    },
    /// The run to resume was started against another API (`None`: the
    /// in-process sandbox of `--sandbox`).
    OtherApi {
        journal: Option<String>,
        now: String,
    },
    /// A flag that names something the plan does not have (`--select`, `--force`, …).
    Usage(String),
    /// The state folder or the journal cannot be read or written.
    State(String),
    /// The async runtime or the reporting thread could not start.
    Runtime(String),
    /// The in-process sandbox could not start.
    Sandbox(String),
    /// The API key or base URL is missing or malformed.
    Config(ConfigError),
    /// The HTTP client could not be built.
    Client(String),
    /// The key was refused, or the API never answered, before anything was sent.
    ApiUnusable { base_url: String, error: ApiError },
    /// The API gave no balance within its deadline, before anything was sent.
    BalanceDeadline {
        base_url: String,
        error: Box<crate::commands::credits::BalanceError>,
    },
    /// The balance cannot pay for what the run will spend.
    BalanceShort {
        balance: u64,
        need: u64,
        /// The balance is a sandbox's, which `--sandbox-balance` sets.
        sandbox: bool,
    },
    /// The plan needs more than the cap, and `--allow-partial` was not given.
    OverBudget {
        /// The plan, as `sonicflow plan` prints it.
        plan: String,
        to_spend: u64,
        /// Charged before, by the run being resumed.
        spent: u64,
        cap: u64,
    },
    /// `--out` names a store that cannot be used: a bad URL, or a bucket
    /// that does not answer.
    Out { url: String, message: String },
    /// The run went to its end, but its results could not be written.
    Results {
        message: String,
        /// The exit code the run's own outcome means.
        outcome_code: u8,
    },
}

impl RunError {
    /// The process exit code (README, "Exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::TimeScale(_)
            | RunError::Manifest { .. }
            | RunError::ResumeLastNeedsFile
            | RunError::NoEarlierRun { .. }
            | RunError::CannotResume(_)
            | RunError::NoManifest
            | RunError::WrongPipeline { .. }
            | RunError::Locked { .. }
            | RunError::OtherApi { .. }
            | RunError::Usage(_)
            | RunError::Out { .. }
            | RunError::State(_) => exit::INVALID,
            RunError::Runtime(_)
            | RunError::Sandbox(_)
            | RunError::Config(_)
            | RunError::Client(_)
            | RunError::ApiUnusable { .. }
            | RunError::BalanceDeadline { .. } => exit::API_UNAVAILABLE,
            RunError::BalanceShort { .. } | RunError::OverBudget { .. } => exit::BUDGET,
            RunError::Results { outcome_code, .. } => exit::FAILED_STEPS.max(*outcome_code),
        }
    }

    /// Prints the error, and the fix where there is one, on stderr.
    pub fn print(&self) {
        if let RunError::Manifest {
            diagnostics,
            format,
        } = self
        {
            return super::super::print_diagnostics(diagnostics, *format);
        }
        if let RunError::OverBudget { plan, .. } = self {
            crate::errln!("{plan}");
        }
        crate::errln!("error: {self}");
        if let RunError::Locked { held, state } = self {
            crate::errln!(
                "  help: wait for it to end, or pass `--lock-timeout 10m` to wait; if it died on another host: `sonicflow unlock {} --state-dir {}`",
                held.holder.run,
                state.display()
            );
        }
        if let Some(help) = self.help() {
            crate::errln!("  help: {help}");
        }
    }

    fn help(&self) -> Option<&'static str> {
        match self {
            RunError::Config(ConfigError::MissingKey | ConfigError::EmptyKey) => {
                Some("to try the pipeline without a key or credits, add `--sandbox`")
            }
            RunError::ApiUnusable { error, .. } => Some(crate::commands::credits::api_help(error)),
            RunError::OtherApi {
                journal: Some(_), ..
            } => Some(
                "set `MUSICAPI_BASE_URL` (or `--api-base`) to the API the run was started against",
            ),
            RunError::OtherApi { journal: None, .. } => {
                Some("resume it with `--sandbox`, or start a new run against the API")
            }
            RunError::BalanceDeadline { .. } => Some(
                "try again later, or pass `--no-balance-check` to start without knowing the balance",
            ),
            RunError::BalanceShort { sandbox: true, .. } => Some(
                "give the sandbox more with `--sandbox-balance N`, narrow the run with `--select`, or pass `--no-balance-check` to start anyway",
            ),
            RunError::BalanceShort { .. } => Some(
                "top up, narrow the run with `--select`, or pass `--no-balance-check` to start anyway",
            ),
            RunError::Out { .. } => Some(
                "check the URL, and the store's credentials in the standard environment (S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL; GCS: GOOGLE_*; Azure: AZURE_*); or give `--out` a local folder",
            ),
            RunError::OverBudget { .. } => Some(
                "raise the cap (`--max-credits N` or `limits.max_credits`), narrow the run with `--select` / `--exclude`, or pass `--allow-partial` to spend up to the cap and stop",
            ),
            _ => None,
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::TimeScale(scale) => {
                write!(f, "`--time-scale {scale}` must be a positive number")
            }
            RunError::Manifest { diagnostics, .. } => {
                write!(f, "{} problem(s) with the manifest", diagnostics.len())
            }
            RunError::ResumeLastNeedsFile => f.write_str(
                "`--resume last` needs the pipeline: `sonicflow run FILE --resume last`",
            ),
            RunError::NoEarlierRun {
                pipeline,
                state,
                file,
            } => write!(
                f,
                "no earlier run of `{pipeline}` in `{}`; start one with `sonicflow run {}`",
                state.display(),
                file.display()
            ),
            RunError::CannotResume(e) => write!(f, "cannot resume: {e}"),
            RunError::NoManifest => {
                f.write_str("give the pipeline manifest, or `--resume RUN_DIR`")
            }
            RunError::Locked { held, .. } => write!(f, "{held}; nothing was sent"),
            RunError::OtherApi { journal, now } => write!(
                f,
                "the run to resume was started against {}, and this one would talk to `{now}`; its tasks are unknown there and everything would be paid again",
                journal.as_deref().map_or_else(
                    || "an in-process sandbox (`--sandbox`)".to_owned(),
                    |j| format!("`{j}`")
                )
            ),
            RunError::WrongPipeline { journal, manifest } => write!(
                f,
                "the run to resume is a run of `{journal}`, not of `{manifest}`"
            ),
            RunError::Usage(e)
            | RunError::State(e)
            | RunError::Runtime(e)
            | RunError::Client(e) => f.write_str(e),
            RunError::Sandbox(e) => write!(f, "cannot start the sandbox: {e}"),
            RunError::Config(e) => write!(f, "{e}"),
            RunError::ApiUnusable { base_url, error } => {
                write!(f, "cannot use the API at `{base_url}`: {error}")
            }
            RunError::BalanceDeadline { base_url, error } => write!(
                f,
                "the API at `{base_url}` did not tell the balance in time: {error}; nothing was sent"
            ),
            RunError::BalanceShort {
                balance,
                need,
                sandbox,
            } => write!(
                f,
                "the {}balance is {} and the run needs about {need}; nothing was sent",
                if *sandbox { "sandbox's " } else { "" },
                crate::format::count(*balance, "credit", "credits"),
            ),
            RunError::OverBudget {
                to_spend,
                spent,
                cap,
                ..
            } => {
                write!(
                    f,
                    "the run would spend {}",
                    crate::format::credits(*to_spend)
                )?;
                if *spent > 0 {
                    write!(f, " on top of the {spent} it has spent already")?;
                }
                write!(f, ", more than the cap of {cap}; nothing was sent")
            }
            RunError::Out { url, message } => {
                write!(
                    f,
                    "`--out {url}` cannot be used: {message}; nothing was sent"
                )
            }
            RunError::Results { message, .. } => f.write_str(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_exit_code() {
        let cases = [
            (RunError::TimeScale(0.0), exit::INVALID),
            (RunError::NoManifest, exit::INVALID),
            (
                RunError::Config(ConfigError::MissingKey),
                exit::API_UNAVAILABLE,
            ),
            (
                RunError::BalanceShort {
                    balance: 1,
                    need: 2,
                    sandbox: false,
                },
                exit::BUDGET,
            ),
            (
                RunError::Results {
                    message: "disk full".into(),
                    outcome_code: exit::SUCCESS,
                },
                exit::FAILED_STEPS,
            ),
            (
                RunError::Results {
                    message: "disk full".into(),
                    outcome_code: exit::INTERRUPTED,
                },
                exit::INTERRUPTED,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error}");
        }
    }
}
