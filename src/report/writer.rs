//! `ResultsWriter`: keeps `results.json` up to date while a run goes on.
//!
//! The file is replaced atomically (temp file in the same folder, fsync,
//! rename, fsync of the folder) so a kill at any moment leaves either the
//! previous or the new complete file, never a torn one. Writes are
//! debounced: a run of thousands of instances must not rewrite the whole
//! file on every event, so the writer writes at most once per interval and
//! always when the run stops or finishes, or when asked to `flush`.
//!
//! Knows events, the plan and the file system; never HTTP or YAML.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::engine::RunEvent;
use crate::plan::Plan;

use super::clock::Clock;
use super::results::Results;
use super::state::RunState;

/// How often the file is rewritten at most while nothing terminal happens.
pub const DEFAULT_WRITE_INTERVAL: Duration = Duration::from_secs(2);

/// A big run's file takes a while to write (about 90 ms for 10,000
/// instances); waiting this many times the last write's cost before the
/// next keeps writing to about a fiftieth of the run's time however large
/// the run grows.
const COST_FACTOR: u32 = 50;

/// The results file could not be written.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write the results file `{}`: {source}\nhelp: check that the folder exists and is writable and the disk is not full, or pass another results path",
    path.display()
)]
pub struct ResultsWriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Applies run events and keeps the results file current.
pub struct ResultsWriter {
    path: PathBuf,
    state: RunState,
    clock: Clock,
    interval: Duration,
    last_write: Option<SystemTime>,
    /// How long the last write took, measured on the real monotonic clock.
    last_cost: Duration,
    dirty: bool,
    writes: u64,
}

impl ResultsWriter {
    /// A writer for `path`; `manifest_sha256` is the hex digest of the
    /// manifest file's bytes. Nothing is written until the first event.
    pub fn new(
        path: impl Into<PathBuf>,
        plan: &Plan,
        manifest_sha256: &str,
        clock: Clock,
    ) -> ResultsWriter {
        let state = RunState::new(plan, manifest_sha256, clock());
        ResultsWriter {
            path: path.into(),
            state,
            clock,
            interval: DEFAULT_WRITE_INTERVAL,
            last_write: None,
            last_cost: Duration::ZERO,
            dirty: true,
            writes: 0,
        }
    }

    /// Records which service the run talks to and where its matrix came
    /// from (see [`RunContext`](super::RunContext)).
    pub fn with_context(mut self, context: super::RunContext) -> ResultsWriter {
        self.state.set_context(context);
        self
    }

    /// Sets the debounce interval; zero writes on every event.
    pub fn with_interval(mut self, interval: Duration) -> ResultsWriter {
        self.interval = interval;
        self
    }

    /// The debounce interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Where the results are written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The results as they stand, whether written yet or not.
    pub fn results(&self) -> Results {
        self.state.snapshot()
    }

    /// Lends the results as they stand to `f`, copying no instance.
    pub fn with_results<R>(&mut self, f: impl FnOnce(&Results) -> R) -> R {
        self.state.lend(f)
    }

    /// How many times the file has been written (for tests and diagnostics).
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Applies one event; writes the file if the interval has passed or the
    /// run is stopping or finished.
    pub fn apply(&mut self, event: &RunEvent) -> Result<(), ResultsWriteError> {
        let now = (self.clock)();
        self.state.apply(event, now);
        self.dirty = true;
        let terminal = matches!(event, RunEvent::Stopping { .. } | RunEvent::Finished { .. });
        if terminal || self.due(now) {
            self.write(now)?;
        }
        Ok(())
    }

    /// Writes the file if anything changed and the interval has passed:
    /// for a timer while the run is quiet.
    pub fn tick(&mut self) -> Result<(), ResultsWriteError> {
        let now = (self.clock)();
        if self.dirty && self.due(now) {
            self.write(now)?;
        }
        Ok(())
    }

    /// Writes the file now if anything changed since the last write.
    pub fn flush(&mut self) -> Result<(), ResultsWriteError> {
        if self.dirty {
            let now = (self.clock)();
            self.write(now)?;
        }
        Ok(())
    }

    /// Whether the run has reported `Finished`.
    pub fn is_finished(&self) -> bool {
        self.state.is_finished()
    }

    fn due(&self, now: SystemTime) -> bool {
        // Zero asks for every event (tests, tools that read the file as it
        // changes): the cost of the last write does not stretch it.
        let wait = if self.interval.is_zero() {
            Duration::ZERO
        } else {
            self.interval.max(self.last_cost * COST_FACTOR)
        };
        self.last_write
            .is_none_or(|last| now.duration_since(last).unwrap_or_default() >= wait)
    }

    fn write(&mut self, now: SystemTime) -> Result<(), ResultsWriteError> {
        let started = std::time::Instant::now();
        self.state.touch(now);
        let mut text =
            self.state
                .lend(serde_json::to_vec_pretty)
                .map_err(|e| ResultsWriteError {
                    path: self.path.clone(),
                    source: std::io::Error::other(e),
                })?;
        text.push(b'\n');
        write_atomically(&self.path, &text).map_err(|source| ResultsWriteError {
            path: self.path.clone(),
            source,
        })?;
        self.last_write = Some(now);
        self.last_cost = started.elapsed();
        self.dirty = false;
        self.writes += 1;
        Ok(())
    }
}

/// Hex SHA-256 of the manifest file's bytes, for `ResultsWriter::new`.
pub fn manifest_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Replaces `path` with `bytes` so readers see the old or the new file, whole.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // A leftover temp file would only confuse whoever looks in the folder.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(path);
    Ok(())
}

/// `results.json` → `results.json.tmp`, in the same folder so the rename is atomic.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Makes the rename itself durable. Not every platform can open a folder
/// for syncing; the rename is still atomic there, so failures are ignored.
fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
