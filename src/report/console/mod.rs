//! `Console`: what a person (or a log collector) sees during a run.
//!
//! Three modes: a live progress bar on a terminal, one plain line per event
//! worth a line when stderr is not a terminal, and JSON lines for log
//! pipelines. Every mode ends with `finish`; the human modes print a summary
//! table there. Times come from the injected clock. Events carry no
//! secrets, and nothing here adds any.

mod json;
pub use json::run_summary;
mod lines;
mod progress;
mod summary;
mod tally;

use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::engine::RunEvent;

use super::clock::Clock;
use super::results::Results;
use progress::Progress;
use tally::Tally;

/// How the console shows a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleMode {
    /// Live progress on a terminal.
    Tty,
    /// One plain line per event worth a line.
    Plain,
    /// One JSON object per event (`--log-format json`).
    Json,
}

impl ConsoleMode {
    /// JSON when asked for, else live progress when stderr is a terminal,
    /// else plain lines.
    pub fn detect(json: bool) -> ConsoleMode {
        if json {
            ConsoleMode::Json
        } else if std::io::stderr().is_terminal() {
            ConsoleMode::Tty
        } else {
            ConsoleMode::Plain
        }
    }
}

/// Shows run events as they are applied.
pub struct Console {
    mode: ConsoleMode,
    clock: Clock,
    out: Box<dyn Write + Send>,
    tally: Tally,
    progress: Option<Progress>,
}

impl Console {
    /// A console writing to stderr.
    pub fn new(mode: ConsoleMode, clock: Clock) -> Console {
        Console::with_output(mode, clock, Box::new(std::io::stderr()))
    }

    /// A console writing lines and the summary to `out`. The live bar of
    /// `Tty` mode always draws on stderr, the terminal that was detected.
    pub fn with_output(mode: ConsoleMode, clock: Clock, out: Box<dyn Write + Send>) -> Console {
        let progress = (mode == ConsoleMode::Tty).then(Progress::new);
        Console {
            mode,
            clock,
            out,
            tally: Tally::default(),
            progress,
        }
    }

    pub fn mode(&self) -> ConsoleMode {
        self.mode
    }

    /// Shows one event.
    pub fn apply(&mut self, event: &RunEvent) {
        let now = (self.clock)();
        self.tally.apply(event);
        match self.mode {
            ConsoleMode::Json => self.write_line(&json::json_line(event, now)),
            ConsoleMode::Plain => {
                if let Some(line) = lines::line(event, now) {
                    self.write_line(&line);
                }
            }
            ConsoleMode::Tty => self.show_progress(event, now),
        }
    }

    /// Ends the live view and prints the summary table; a JSON log gets one
    /// last object instead, saying where the results are and how it ended.
    pub fn finish(&mut self, results: &Results, results_path: &Path) {
        if let Some(progress) = self.progress.take() {
            progress.clear();
        }
        if self.mode == ConsoleMode::Json {
            let now = (self.clock)();
            let notes = results.observed_charges.as_ref().map(|o| o.notes());
            for note in notes.unwrap_or_default() {
                self.write_line(&json::note_line(&note, now));
            }
            let line = json::results_line(results, results_path, now);
            self.write_line(&line);
        } else {
            let text = summary::summary(results, results_path);
            let _ = self.out.write_all(text.as_bytes());
        }
        let _ = self.out.flush();
    }

    /// Reports a problem of the reporters themselves (e.g. the results
    /// file cannot be written) in the console's own format.
    pub fn warn(&mut self, message: &str) {
        let now = (self.clock)();
        let line = match self.mode {
            ConsoleMode::Json => serde_json::json!({
                "ts": crate::timestamp::rfc3339(now),
                "event": "warning",
                "message": message,
            })
            .to_string(),
            _ => format!(
                "{} {:<10} {message}",
                super::clock::time_of_day(now),
                "warning"
            ),
        };
        match &self.progress {
            Some(progress) => progress.println(&line),
            None => self.write_line(&line),
        }
    }

    fn show_progress(&mut self, event: &RunEvent, now: std::time::SystemTime) {
        let Some(progress) = &self.progress else {
            return;
        };
        // Successes and submits show in the counts; the rest deserve a line.
        let worth_a_line = matches!(
            event,
            RunEvent::Retrying { .. }
                | RunEvent::Failed { .. }
                | RunEvent::Throttled { .. }
                | RunEvent::Stopping { .. }
        );
        if worth_a_line && let Some(line) = lines::line(event, now) {
            progress.println(&line);
        }
        progress.update(&self.tally);
    }

    fn write_line(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
    }
}
