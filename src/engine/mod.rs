//! The engine walks a `Plan`: it creates step instances (matrix rows ×
//! `for_each` elements), hands ready ones to a `StepExecutor`, enforces
//! concurrency, rate limits, polling, retries, timeouts and cancellation,
//! and reports everything as `RunEvent`s.
//!
//! It knows no YAML and no HTTP: the executor (`crate::steps`) talks to the
//! API, and reporters (`crate::report`) consume the events.
//!
//! Each decision has one home:
//! - what to do with an instance whose dependencies are done (send, reuse,
//!   re-attach, in doubt): `decide`, for the run and the forecast alike;
//! - what to do when a submit or a poll goes wrong: `reaction::react`;
//! - whether the next submit fits the credit cap: `budget`;
//! - which gate a submit of each rate-limit class takes, and what a 429
//!   teaches about the service's slot: `gate::SubmitGates`;
//! - how a run ended, and the exit code, results status and journal line
//!   that follow: `outcome`;
//! - how the plan stands against earlier runs: `history`, read off `forecast`.
//!
//! The driver (`run`) carries these out; `graph` knows which instances
//! exist and what their references resolve to, `slot` where each is.

mod backoff;
mod budget;
mod config;
mod decide;
mod forecast;
mod gate;
mod graph;
mod history;
pub mod observe;
#[cfg(test)]
mod observe_tests;
mod outcome;
pub(crate) mod poll_schedule;
#[cfg(test)]
mod poll_tests;
mod reaction;
mod run;
mod slot;
#[cfg(test)]
mod tests;
mod types;

pub use budget::{Account, over_cap};
pub use config::EngineConfig;
pub use forecast::{Fate, Forecast, Outlook, forecast};
pub use history::{InstanceHistory, ReuseStatus, RowHistory, row_histories};
pub use outcome::{RunOutcome, Standing, StopReason, verdict};
pub use run::run;
pub use types::*;
