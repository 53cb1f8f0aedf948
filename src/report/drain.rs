//! Fans one event stream out to the results writer and the console.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use crate::engine::{RunEvent, Summary};

use super::console::{Console, ConsoleMode, LIVE_TICK};
use super::writer::{ResultsWriteError, ResultsWriter};

/// A zero write interval must not make the quiet-time flush spin.
const MIN_TICK: Duration = Duration::from_millis(50);

/// Most events taken from the stream at once.
const BATCH: usize = 256;

/// The reporters of one run.
pub struct Reporters {
    pub writer: ResultsWriter,
    pub console: Console,
    summary: Option<Summary>,
    error: Option<ResultsWriteError>,
}

/// What the reporters saw when the stream ended.
#[derive(Debug)]
pub struct Drained {
    /// The engine's summary, or one counted from the events if the stream
    /// ended without `Finished`.
    pub summary: Summary,
    /// The last failure to write the results file, if the final write
    /// failed too; the run command should report it and exit non-zero.
    pub results_error: Option<ResultsWriteError>,
    /// The run's summary for machines (`console::run_summary`).
    pub run_summary: serde_json::Value,
}

impl Reporters {
    pub fn new(writer: ResultsWriter, console: Console) -> Reporters {
        Reporters {
            writer,
            console,
            summary: None,
            error: None,
        }
    }

    /// Shows and records one event. A results file that cannot be written
    /// does not stop the run (work in flight would be lost): the console
    /// says so once, and the writer tries again at its next write.
    pub fn apply(&mut self, event: &RunEvent) {
        self.console.apply(event);
        if let RunEvent::Finished { summary } = event {
            self.summary = Some(summary.clone());
        }
        if let Err(e) = self.writer.apply(event) {
            self.remember(e);
        }
    }

    /// Writes whatever changed if the write interval has passed.
    pub fn tick(&mut self) {
        if let Err(e) = self.writer.tick() {
            self.remember(e);
        }
    }

    /// Writes the results one last time and prints the summary.
    pub fn finish(mut self) -> Drained {
        match self.writer.flush() {
            Ok(()) => self.error = None,
            Err(e) => self.remember(e),
        }
        let path = self.writer.path().to_owned();
        let console = &mut self.console;
        let (counted, run_summary) = self.writer.with_results(|results| {
            console.finish(results, &path);
            let counted = Summary {
                succeeded: results.totals.succeeded,
                failed: results.totals.failed,
                skipped: results.totals.skipped,
                credits: results.totals.credits(),
                ..Summary::default()
            };
            (counted, super::console::run_summary(results, &path))
        });
        Drained {
            summary: self.summary.unwrap_or(counted),
            results_error: self.error,
            run_summary,
        }
    }

    fn remember(&mut self, error: ResultsWriteError) {
        if self.error.is_none() {
            self.console.warn(&error.to_string().replace('\n', "; "));
        }
        self.error = Some(error);
    }
}

/// Applies every event from `rx` until the engine drops its sender, then
/// finishes the reporters. While the run is quiet (long polls, no events)
/// the results file is still brought up to date once per write interval,
/// so what a kill leaves behind is never older than that.
pub async fn drain(mut rx: UnboundedReceiver<RunEvent>, mut reporters: Reporters) -> Drained {
    let period = reporters.writer.interval().max(MIN_TICK);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live = reporters.console.mode() == ConsoleMode::Tty;
    let mut redraw = tokio::time::interval(LIVE_TICK);
    redraw.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Every event waiting is taken at once: one wake-up per burst.
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            taken = rx.recv_many(&mut batch, BATCH) => {
                if taken == 0 {
                    break;
                }
                for event in batch.drain(..) {
                    reporters.apply(&event);
                }
            }
            _ = ticker.tick() => reporters.tick(),
            _ = redraw.tick(), if live => reporters.console.tick(),
        }
    }
    reporters.finish()
}
