//! The engine walks a `Plan`: it creates step instances (matrix rows ×
//! `for_each` elements), hands ready ones to a `StepExecutor`, enforces
//! concurrency, rate limits, polling, retries, timeouts and cancellation,
//! and reports everything as `RunEvent`s.
//!
//! It knows no YAML and no HTTP: the executor (`crate::steps`) talks to the
//! API, and reporters (`crate::report`) consume the events.

mod backoff;
mod budget;
mod config;
mod decide;
mod forecast;
mod gate;
mod graph;
mod history;
mod outcome;
mod reaction;
mod run;
mod slot;
#[cfg(test)]
mod tests;
mod types;

pub use config::EngineConfig;
pub use forecast::{Fate, Forecast, Outlook, forecast};
pub use history::{InstanceHistory, ReuseStatus, RowHistory, row_histories};
pub use outcome::{RunOutcome, StopReason};
pub use run::run;
pub use types::*;
