//! Reporters: consumers of the engine's `RunEvent` stream.
//!
//! `ResultsWriter` keeps `results.json` current and atomic;
//! `Console` shows a person (or a log collector) what is happening; `drain`
//! feeds one event stream to both. Reporters know events and the plan, never
//! HTTP or YAML, and they never see secrets: events carry none.
//!
//! Wiring, for the run command:
//!
//! ```ignore
//! let clock = report::system_clock();
//! let writer = ResultsWriter::new(out_dir.join("results.json"), &plan,
//!     &report::manifest_sha256(manifest_bytes), clock.clone());
//! let console = Console::new(ConsoleMode::detect(log_json), clock);
//! let reporting = tokio::spawn(report::drain(rx, Reporters::new(writer, console)));
//! // … run the engine with the sender; it drops the sender when done …
//! let drained = reporting.await?;
//! ```

pub(crate) mod clock;
mod console;
mod drain;
pub mod html;
pub mod markdown;
pub mod merge;
pub mod overview;
mod results;
mod state;
mod writer;

pub use clock::{Clock, stepping_clock, system_clock};
pub use console::{Console, ConsoleMode, Pace, close_live_view, erase_live_view};
pub use drain::{Drained, Reporters, drain};
pub use results::{
    Attempt, Credits, ErrorRecord, FileKind, FileRecord, MatrixInfo, MatrixRow, ObservedCharges,
    ObservedCredits, ObservedOperation, ObservedPrice, ObservedStep, Pipeline, PriceTableRef,
    Results, RunStatus, SCHEMA_VERSION, Service, ShardInfo, SharedChange, StepResult, StepStatus,
    Tool, Totals, UnattributedChange, results_schema,
};
pub use state::RunContext;
pub(crate) use writer::write_atomically;
pub use writer::{DEFAULT_WRITE_INTERVAL, ResultsWriteError, ResultsWriter, manifest_sha256};
