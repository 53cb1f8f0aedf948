//! The state folder: where the index, the registry and (by default) the
//! runs live, and the names of the files and folders in it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::entry::RunRef;
use super::error::JournalError;
use super::file::{LineLog, read_lines};
use super::lock::LockStore;
use super::store::{BucketState, LocalState, StateStore};

/// The journal's file name inside a run folder.
pub const JOURNAL: &str = "journal.jsonl";

/// The state folder: the index, the registry and (by default) the runs.
/// With state in a bucket, it is the bucket's local working copy.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
    /// Where the state is kept: the folder itself, or a bucket.
    pub store: Arc<dyn StateStore>,
    /// The bucket's URL, when the state is in one.
    pub url: Option<String>,
}

impl StateDir {
    /// A state folder on the local disk.
    pub fn local(root: PathBuf) -> StateDir {
        StateDir {
            root,
            store: Arc::new(LocalState),
            url: None,
        }
    }

    /// `dir`, or `.sonicflow/` beside the manifest.
    pub fn new(dir: Option<&Path>, manifest: &Path) -> StateDir {
        let root = match dir {
            Some(d) => d.to_owned(),
            None => default_root(manifest),
        };
        StateDir::local(root)
    }

    /// The state `given` names (`--state`): a bucket URL (worked on
    /// through a working copy under `.sonicflow/stores/` beside the
    /// manifest) or a folder; `.sonicflow/` beside the manifest if none.
    /// `what` names where `given` came from, for the message of a bad URL.
    pub fn open(given: Option<&str>, manifest: &Path, what: &str) -> Result<StateDir, String> {
        let Some(given) = given else {
            return Ok(StateDir::new(None, manifest));
        };
        if crate::store::Scheme::of(given).is_none() {
            if given.contains("://") {
                return Err(format!(
                    "{what} `{given}` is neither a folder nor a store URL sonicflow knows: use s3://bucket/prefix, gs://bucket/prefix, az://container/prefix, file:///path, or a folder path"
                ));
            }
            return Ok(StateDir::new(Some(Path::new(given)), manifest));
        }
        let bucket = crate::store::Bucket::open(given).map_err(|e| {
            format!("{what} `{given}`: {e}; give a URL like s3://bucket/prefix, with the credentials in the cloud's usual environment variables")
        })?;
        let root = default_root(manifest)
            .join("stores")
            .join(safe_name(bucket.url()));
        Ok(StateDir {
            root,
            url: Some(bucket.url().to_owned()),
            store: Arc::new(BucketState::new(bucket)),
        })
    }

    /// The folder or URL, for messages.
    pub fn describe(&self) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| self.root.display().to_string())
    }

    /// Brings a working copy up to date with its bucket (nothing for a local folder).
    pub fn hydrate(&self) -> Result<(), JournalError> {
        self.store.hydrate(self)
    }

    /// Where the pipelines' locks live.
    pub fn locks(&self) -> Arc<dyn LockStore> {
        self.store.locks(&self.root)
    }

    /// Keeps run `run`'s results (in `dir`) with the state, for machines
    /// that read it later.
    pub fn keep_results(&self, run: &str, dir: &Path) -> Result<(), JournalError> {
        self.store.keep_results(run, dir)
    }

    /// Where runs sharing this state claim the requests they pay for.
    pub fn claims(&self) -> Arc<dyn super::claims::ClaimStore> {
        self.store.claims(&self.root)
    }

    /// The runs whose lock a live holder holds, as far as the store tells
    /// beyond this machine's file locks.
    pub fn live_runs(&self) -> HashSet<String> {
        self.store.live_runs(&self.root)
    }

    /// Opens run `run`'s journal at `path` for writing (exclusive), its
    /// records made durable in the store too.
    pub fn open_journal(&self, path: &Path, run: &str) -> Result<LineLog, JournalError> {
        let log = LineLog::open(path, true)?;
        let records = match std::fs::read(path) {
            Ok(bytes) => bytes.iter().filter(|&&b| b == b'\n').count() as u64,
            Err(source) => {
                return Err(JournalError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Ok(log.replicated(self.store.journal(run, records)))
    }

    /// Opens the index for the lines run `run` writes.
    pub fn open_index(&self, run: &str) -> Result<LineLog, JournalError> {
        Ok(LineLog::open(&self.index_path(), false)?.replicated(self.store.index(run)))
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
        LineLog::open(&self.registry_path(), false)?
            .replicated(self.store.registry())
            .append(run)
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

/// `.sonicflow/` beside the manifest.
fn default_root(manifest: &Path) -> PathBuf {
    manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(".sonicflow")
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
        let state = StateDir::local(dir.path().to_owned());
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
