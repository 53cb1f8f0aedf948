//! The step executor adapter: one resolved step instance (a `Job`) becomes
//! one API call through `crate::api::Client`, and the answers become typed
//! outputs (`Action::outputs()`) and downloaded files.
//!
//! It owns: mapping manifest fields to request fields, re-checking the
//! plan's rules on resolved values, classifying client errors into engine
//! error kinds, shaping outputs, and saving result files safely.
//!
//! It must not know scheduling, retries, timeouts or reporting: the engine
//! decides what to do with each `StepError`, and this module never resends
//! a request itself.

mod download;
mod errors;
mod executor;
mod fields;
mod files;
mod hosts;
pub mod naming;
mod outputs;
mod recheck;
mod request;
pub(crate) mod sanitize;

pub use download::{
    DEFAULT_MAX_DOWNLOAD, DOWNLOAD_DEADLINE, DownloadKinds, DownloadOptions, parse_size,
};
pub use executor::{ApiExecutor, ExecutorError, parse_upload_callback};
pub use hosts::{HostRule, MAX_REDIRECTS, SERVICE_DOMAINS};
