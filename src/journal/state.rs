//! The state folder: where the index, the registry and (by default) the
//! runs live, and the names of the files and folders in it.

use std::path::{Path, PathBuf};

use super::entry::RunRef;
use super::error::JournalError;
use super::file::{LineLog, read_lines};

/// The journal's file name inside a run folder.
pub const JOURNAL: &str = "journal.jsonl";

/// The state folder: the index, the registry and (by default) the runs.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    /// `dir`, or `.sonicflow/` beside the manifest.
    pub fn new(dir: Option<&Path>, manifest: &Path) -> StateDir {
        let root = match dir {
            Some(d) => d.to_owned(),
            None => manifest
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join(".sonicflow"),
        };
        StateDir { root }
    }

    pub fn index_path(&self) -> PathBuf {
        self.root.join("index.jsonl")
    }

    pub fn registry_path(&self) -> PathBuf {
        self.root.join("runs.jsonl")
    }

    /// Where a new run of `pipeline` started now goes: a folder named by
    /// the millisecond, with a suffix if a run of that millisecond exists
    /// (the pipeline's lock keeps another run from choosing at the same time).
    pub fn new_run_dir(&self, pipeline: &str) -> PathBuf {
        self.run_dir_at(pipeline, std::time::SystemTime::now())
    }

    fn run_dir_at(&self, pipeline: &str, at: std::time::SystemTime) -> PathBuf {
        let stamp = humantime::format_rfc3339_millis(at)
            .to_string()
            .replace([':', '-', '.'], "");
        let base = format!("{}-{stamp}", safe_name(pipeline));
        let runs = self.root.join("runs");
        std::iter::once(base.clone())
            .chain((2..).map(|n| format!("{base}-{n}")))
            .map(|name| runs.join(name))
            .find(|dir| !dir.exists())
            .unwrap_or_else(|| runs.join(base))
    }

    /// The runs started from this state folder, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRef>, JournalError> {
        read_lines(&self.registry_path())
    }

    /// The newest run of `pipeline`.
    pub fn last_run(&self, pipeline: &str) -> Result<Option<RunRef>, JournalError> {
        Ok(self
            .runs()?
            .into_iter()
            .rev()
            .find(|r| r.pipeline == pipeline))
    }

    /// Adds a run to the registry.
    pub fn register(&self, run: &RunRef) -> Result<(), JournalError> {
        self.ensure()?;
        LineLog::open(&self.registry_path(), false)?.append(run)
    }

    /// Creates the folder, with a `.gitignore` so its contents stay out of git.
    pub fn ensure(&self) -> Result<(), JournalError> {
        std::fs::create_dir_all(&self.root).map_err(|source| JournalError::CreateStateDir {
            dir: self.root.clone(),
            source,
        })?;
        let ignore = self.root.join(".gitignore");
        if !ignore.exists() {
            let _ = std::fs::write(&ignore, "*\n");
        }
        Ok(())
    }
}

/// A file-name-safe version of a pipeline name.
pub fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An absolute form of `path` (without resolving links), for records that
/// outlive the working directory.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_started_in_the_same_millisecond_as_another_gets_a_folder_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir {
            root: dir.path().to_owned(),
        };
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_800_000_000_123);
        let first = state.run_dir_at("nightly run", at);
        assert_eq!(
            first,
            dir.path().join("runs/nightly_run-20270115T080000123Z")
        );
        std::fs::create_dir_all(&first).unwrap();
        let second = state.run_dir_at("nightly run", at);
        assert_eq!(
            second,
            dir.path().join("runs/nightly_run-20270115T080000123Z-2")
        );
    }
}
