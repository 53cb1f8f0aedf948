//! `Console`: what a person (or a log collector) sees during a run.
//!
//! Three modes: a live view on a terminal (a header with the elapsed time,
//! credits and ETA over one line per task that is out), one plain line per
//! event worth a line when stderr is not a terminal, and JSON lines for log
//! pipelines. Every mode ends with `finish`; the human modes print a summary
//! table there. Times come from the injected clock. Events carry no
//! secrets, and nothing here adds any.

mod board;
mod eta;
mod frame;
mod json;
pub use eta::Pace;
pub use json::run_summary;
mod lines;
mod screen;
pub use screen::{close as close_live_view, erase as erase_live_view};
mod summary;
mod tally;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::engine::{RunEvent, StopReason};

use super::clock::{Clock, millis_between};
use super::results::Results;
use board::Board;
use lines::Episodes;
use tally::Tally;

/// Redraws of the live view on events, at most this often.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// How often the live view is redrawn while nothing happens (its clocks move).
pub(crate) const LIVE_TICK: Duration = Duration::from_millis(250);

/// How the console shows a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleMode {
    /// Live progress on a terminal.
    Tty,
    /// One plain line per event worth a line.
    Plain,
    /// One JSON object per event (`--log-format json`).
    Json,
    /// `-q`: no progress at all; the summary only for a run that did not
    /// succeed, and warnings.
    Quiet,
}

impl ConsoleMode {
    /// JSON when asked for, else live progress when stderr is a terminal,
    /// else plain lines.
    pub fn detect(json: bool) -> ConsoleMode {
        if json {
            ConsoleMode::Json
        } else if crate::output::quiet() {
            ConsoleMode::Quiet
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
    board: Board,
    episodes: Episodes,
    pace: Option<Pace>,
    /// What the live view says once the run stops sending.
    stopping: Option<String>,
    drawn_at: Option<SystemTime>,
}

impl Console {
    /// A console writing to stderr.
    pub fn new(mode: ConsoleMode, clock: Clock) -> Console {
        Console::with_output(mode, clock, Box::new(std::io::stderr()))
    }

    /// A console writing lines and the summary to `out`. The live view of
    /// `Tty` mode always draws on stderr, the terminal that was detected.
    pub fn with_output(mode: ConsoleMode, clock: Clock, out: Box<dyn Write + Send>) -> Console {
        Console {
            mode,
            clock,
            out,
            tally: Tally::default(),
            board: Board::default(),
            episodes: Episodes::default(),
            pace: None,
            stopping: None,
            drawn_at: None,
        }
    }

    /// The plan's pace and credits, for the live view's ETA and its
    /// "credits spent of planned".
    pub fn with_pace(mut self, pace: Pace) -> Console {
        self.pace = Some(pace);
        self
    }

    pub fn mode(&self) -> ConsoleMode {
        self.mode
    }

    /// Shows one event.
    pub fn apply(&mut self, event: &RunEvent) {
        let now = (self.clock)();
        self.tally.apply(event);
        self.board.apply(event, now);
        if let RunEvent::Stopping { reason } = event {
            self.stopping = Some(lines::stop_words(reason));
        }
        let worth_a_line = self.episodes.worth_a_line(event);
        match self.mode {
            ConsoleMode::Json => self.write_line(&json::json_line(event, now)),
            ConsoleMode::Plain => {
                if worth_a_line && let Some(line) = lines::line(event, now) {
                    self.write_line(&line);
                }
            }
            ConsoleMode::Tty => self.show_live(event, worth_a_line, now),
            ConsoleMode::Quiet => {}
        }
    }

    /// Redraws the live view, so its clocks move while nothing happens.
    pub fn tick(&mut self) {
        if self.mode == ConsoleMode::Tty {
            let now = (self.clock)();
            self.draw(now);
        }
    }

    /// Ends the live view and prints the summary table; a JSON log gets one
    /// last object instead, saying where the results are and how it ended.
    pub fn finish(&mut self, results: &Results, results_path: &Path) {
        let now = (self.clock)();
        let mut width = None;
        if self.mode == ConsoleMode::Tty {
            // Nothing of the live view is left above the summary.
            screen::close();
            width = Some(screen::size().1.saturating_sub(1));
        }
        if self.mode == ConsoleMode::Json {
            let notes = results.observed_charges.as_ref().map(|o| o.notes());
            for note in notes.unwrap_or_default() {
                self.write_line(&json::note_line(&note, now));
            }
            let line = json::results_line(results, results_path, now);
            self.write_line(&line);
        } else if self.mode == ConsoleMode::Quiet
            && results.status == crate::report::results::RunStatus::Succeeded
        {
            // Quiet: a run that succeeded says nothing but its result.
        } else {
            let wall = self
                .board
                .started
                .map(|start| Duration::from_millis(millis_between(start, now)));
            let layout = summary::Layout { width, wall };
            let text = summary::summary(results, results_path, layout);
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
        if self.mode == ConsoleMode::Tty && screen::on_terminal() {
            screen::print_above(&line);
            self.draw(now);
        } else {
            self.write_line(&line);
        }
    }

    fn show_live(&mut self, event: &RunEvent, worth_a_line: bool, now: SystemTime) {
        // Submits and successes show in the view; the rest deserve a line.
        // Ctrl-C was answered when it was pressed, so its stop is not said again.
        let keep = match event {
            RunEvent::Stopping {
                reason: StopReason::Interrupted,
            } => false,
            RunEvent::Retrying { .. }
            | RunEvent::Failed { .. }
            | RunEvent::Throttled { .. }
            | RunEvent::Stopping { .. } => worth_a_line,
            _ => false,
        };
        if keep && let Some(line) = lines::line(event, now) {
            screen::print_above(&line);
            self.draw(now);
            return;
        }
        let due = self
            .drawn_at
            .is_none_or(|at| millis_between(at, now) >= REDRAW_EVERY.as_millis() as u64);
        if due {
            self.draw(now);
        }
    }

    fn draw(&mut self, now: SystemTime) {
        let view = frame::View {
            board: &self.board,
            tally: &self.tally,
            pace: self.pace.as_ref(),
            stopping: self.stopping.as_deref(),
            now,
        };
        let (rows, cols) = screen::size();
        screen::draw(&frame::frame(&view, rows, cols));
        self.drawn_at = Some(now);
    }

    fn write_line(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
    }
}
