//! Where run state lives: behind one trait, [`StateStore`], a local folder
//! (the default) or a bucket of an object store (`--state s3://…`).
//!
//! The trait sits in `journal` rather than in `store` because what it
//! stores is the journal's own data (journals, the reuse index, the
//! registry and the locks), and the rules about that data (a record durable
//! before the request it describes leaves, who may write a run's journal)
//! are the journal's; `crate::store` only knows buckets.
//!
//! # The local working copy
//!
//! The engine always works on a local state folder. With a bucket, that
//! folder is a working copy (`.sonicflow/stores/<url>/` beside the
//! manifest): [`StateStore::hydrate`] brings it up to date from the bucket
//! once the pipeline's lock is held (and before a read-only command reads
//! it), and every line appended to a journal, the index or the registry is
//! also made durable in the bucket before the append returns (a
//! [`Replica`] on the [`LineLog`](super::LineLog)). When the bucket does
//! not take a record, the local line is cut again and the append fails, so
//! the engine sends nothing the bucket could not record; when it cannot be
//! told whether the bucket took it, the log refuses every later append.
//!
//! # Layout in the bucket, and why create-only objects
//!
//! - `runs/<run>/run.json`: the run's registry entry;
//! - `runs/<run>/journal/<seq>.json`: one journal record per object, `seq`
//!   from 0 (the header) and contiguous, zero-padded to ten digits;
//! - `index/<request hash>/<run>-<seq>.json`: one index entry per object;
//! - `locks/<name>.json`: the pipeline's lock ([`BucketLocks`]).
//!
//! Every record object is written with `If-None-Match: *` (create-only).
//! An append is then one request that either lands whole or not at all, no
//! object is ever read back and rewritten, and a process that lost its lock
//! but still runs (a zombie: paused past its lease, then woken) can never
//! overwrite what the new holder wrote: the new holder wrote the next
//! sequence number first, so the zombie's write of the same number is
//! refused and its log stops. Index entries are named by request hash and
//! by the run (which has one writer at a time) so writers never conflict.
//! A reader lists a journal's objects, then reads numbers past the last one
//! listed until one is missing, so a listing that lags never hides the tail.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::bucket_locks::BucketLocks;
use super::claims::{BucketClaims, ClaimStore, LocalClaims};
use super::entry::{IndexEntry, RunRef};
use super::error::JournalError;
use super::file::{LineLog, Replica, ReplicaFailure, in_use, read_lines};
use super::lock::{LocalLocks, LockStore};
use super::state::{JOURNAL, StateDir};
use crate::store::{Bucket, Created, Scheme, StoreError};

/// How many taken names an index entry skips before giving up.
const INDEX_TRIES: usize = 1000;

/// The most a kept results.json or report.html may weigh when read back.
const RESULTS_LIMIT: u64 = 512 * 1024 * 1024;
/// The most a record object may weigh when read back.
const RECORD_LIMIT: u64 = 16 * 1024 * 1024;

/// Where a state folder's data is kept; see the module documentation.
pub trait StateStore: fmt::Debug + Send + Sync {
    /// The folder or URL, for messages.
    fn describe(&self) -> String;
    /// Where the pipelines' locks live, for the working copy at `root`.
    fn locks(&self, root: &Path) -> Arc<dyn LockStore>;
    /// Where runs sharing the state claim the requests they pay for.
    fn claims(&self, root: &Path) -> Arc<dyn ClaimStore>;
    /// Brings the working copy `state` up to date with the store.
    fn hydrate(&self, state: &StateDir) -> Result<(), JournalError>;
    /// The replica of run `run`'s journal, which holds `records` records now.
    fn journal(&self, run: &str, records: u64) -> Option<Box<dyn Replica>>;
    /// The replica of the index lines run `run` writes.
    fn index(&self, run: &str) -> Option<Box<dyn Replica>>;
    /// The replica of the registry.
    fn registry(&self) -> Option<Box<dyn Replica>>;
    /// The runs a live holder holds the lock of, when a file lock on the
    /// journal cannot tell (the holder may run on another machine).
    fn live_runs(&self, root: &Path) -> HashSet<String>;
    /// Keeps the results of run `run`, written in `dir`, where another
    /// machine reading the state finds them (`sonicflow merge` of shards
    /// that ran on runners of their own).
    fn keep_results(&self, run: &str, dir: &Path) -> Result<(), JournalError>;
}

/// The files of a run folder kept with its state, besides the journal.
pub const KEPT_RESULTS: [&str; 2] = ["results.json", "report.html"];

/// A state folder on a local (or mounted) disk: the files are the state.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalState;

impl StateStore for LocalState {
    fn describe(&self) -> String {
        "the local state folder".to_owned()
    }
    fn locks(&self, root: &Path) -> Arc<dyn LockStore> {
        Arc::new(LocalLocks::new(root))
    }
    fn claims(&self, root: &Path) -> Arc<dyn ClaimStore> {
        Arc::new(LocalClaims::new(root))
    }
    fn hydrate(&self, _: &StateDir) -> Result<(), JournalError> {
        Ok(())
    }
    fn journal(&self, _: &str, _: u64) -> Option<Box<dyn Replica>> {
        None
    }
    fn index(&self, _: &str) -> Option<Box<dyn Replica>> {
        None
    }
    fn registry(&self) -> Option<Box<dyn Replica>> {
        None
    }
    fn live_runs(&self, _: &Path) -> HashSet<String> {
        HashSet::new()
    }
    fn keep_results(&self, _: &str, _: &Path) -> Result<(), JournalError> {
        // The run folder in the state folder is where they are already.
        Ok(())
    }
}

/// State in a bucket, worked on through a local working copy.
#[derive(Debug)]
pub struct BucketState {
    bucket: Bucket,
    /// Per run, the next free number of its index objects (learnt on hydration).
    index_next: Arc<Mutex<HashMap<String, u64>>>,
}

impl BucketState {
    pub fn new(bucket: Bucket) -> BucketState {
        BucketState {
            bucket,
            index_next: Arc::default(),
        }
    }

    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    fn hydrate_registry(&self, state: &StateDir, listed: &[String]) -> Result<(), JournalError> {
        let local: Vec<RunRef> = read_lines(&state.registry_path())?;
        let have: HashSet<&str> = local.iter().map(|r| r.id.as_str()).collect();
        let mut missing = Vec::new();
        for rel in listed.iter().filter(|r| r.ends_with("/run.json")) {
            let Some(id) = rel
                .strip_prefix("runs/")
                .and_then(|r| r.strip_suffix("/run.json"))
            else {
                continue;
            };
            if have.contains(id) {
                continue;
            }
            let Some(mut run) = self.get_json::<RunRef>(rel)? else {
                continue;
            };
            run.dir = super::absolute(&state.root.join("runs").join(&run.id))
                .display()
                .to_string();
            missing.push(run);
        }
        missing.sort_by(|a, b| (&a.started_at, &a.id).cmp(&(&b.started_at, &b.id)));
        if missing.is_empty() {
            return Ok(());
        }
        let mut log = LineLog::open(&state.registry_path(), false)?;
        for run in &missing {
            log.append(run)?;
        }
        Ok(())
    }

    /// Brings the local journal of every listed run up to date, where the
    /// registry (already up to date) says the run's folder is.
    fn hydrate_journals(&self, state: &StateDir, listed: &[String]) -> Result<(), JournalError> {
        let mut last: BTreeMap<&str, Option<u64>> = BTreeMap::new();
        for rel in listed {
            let Some(rest) = rel.strip_prefix("runs/") else {
                continue;
            };
            let Some((run, tail)) = rest.split_once('/') else {
                continue;
            };
            let seq = tail
                .strip_prefix("journal/")
                .and_then(|t| t.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok());
            let slot = last.entry(run).or_insert(None);
            if let Some(seq) = seq {
                *slot = Some(slot.map_or(seq, |s| s.max(seq)));
            }
        }
        // A run started here with `--out` has its journal there.
        let dirs: HashMap<String, PathBuf> = read_lines::<RunRef>(&state.registry_path())?
            .into_iter()
            .map(|r| (r.id, PathBuf::from(r.dir)))
            .collect();
        for (run, listed_last) in last {
            let dir = dirs
                .get(run)
                .cloned()
                .unwrap_or_else(|| state.root.join("runs").join(run));
            let path = dir.join(JOURNAL);
            if in_use(&path) {
                continue;
            }
            let local = local_records(&path)?;
            let listed_count = listed_last.map_or(0, |s| s + 1);
            // The working copy holds a line the store lacks: start over from the store.
            let from = if (local as u64) > listed_count {
                0
            } else {
                local as u64
            };
            let tail = self.records_from(run, from)?;
            self.hydrate_results(&dir, run, listed, !tail.is_empty())?;
            if from == 0 && tail.is_empty() {
                continue;
            }
            std::fs::create_dir_all(&dir).map_err(|source| JournalError::CreateRunDir {
                dir: dir.clone(),
                source,
            })?;
            if from == 0 && local > 0 {
                let mut text = Vec::new();
                for record in &tail {
                    text.extend_from_slice(record);
                    text.push(b'\n');
                }
                replace_file(&path, &text)?;
                continue;
            }
            let mut log = LineLog::open(&path, true)?;
            for record in &tail {
                let value: serde_json::Value =
                    serde_json::from_slice(record).map_err(|source| JournalError::Decode {
                        path: path.clone(),
                        line: 0,
                        source,
                    })?;
                log.append(&value)?;
            }
        }
        Ok(())
    }

    /// Brings the kept results of `run` into `dir` when they are missing
    /// there, or its journal moved on since they were brought.
    fn hydrate_results(
        &self,
        dir: &Path,
        run: &str,
        listed: &[String],
        moved: bool,
    ) -> Result<(), JournalError> {
        for name in KEPT_RESULTS {
            let rel = format!("runs/{run}/{name}");
            let path = dir.join(name);
            if !listed.contains(&rel) || (path.exists() && !moved) {
                continue;
            }
            let Some(object) = self
                .bucket
                .get(&rel, RESULTS_LIMIT)
                .map_err(|e| store_error(&e))?
            else {
                continue;
            };
            std::fs::create_dir_all(dir).map_err(|source| JournalError::CreateRunDir {
                dir: dir.to_owned(),
                source,
            })?;
            replace_file(&path, &object.bytes)?;
        }
        Ok(())
    }

    /// The records of `run`'s journal from number `from` on, read one by
    /// one until one is missing.
    fn records_from(&self, run: &str, from: u64) -> Result<Vec<Bytes>, JournalError> {
        let mut out = Vec::new();
        for seq in from.. {
            match self.bucket.get(&journal_key(run, seq), RECORD_LIMIT) {
                Ok(Some(object)) => out.push(object.bytes),
                Ok(None) => break,
                Err(e) => return Err(store_error(&e)),
            }
        }
        Ok(out)
    }

    fn hydrate_index(&self, state: &StateDir) -> Result<(), JournalError> {
        let listed = self.bucket.list("index").map_err(|e| store_error(&e))?;
        let seen_path = state.root.join("index.keys");
        let seen_text = std::fs::read_to_string(&seen_path).unwrap_or_default();
        let seen: HashSet<&str> = seen_text.lines().collect();
        let mut next: HashMap<String, u64> = HashMap::new();
        for rel in &listed {
            if let Some((run, seq)) = index_name(rel) {
                let slot = next.entry(run.to_owned()).or_insert(0);
                *slot = (*slot).max(seq + 1);
            }
        }
        let fresh: Vec<&String> = listed
            .iter()
            .filter(|r| !seen.contains(r.as_str()))
            .collect();
        if !fresh.is_empty() {
            let local: Vec<IndexEntry> = read_lines(&state.index_path())?;
            let have: HashSet<String> = local.iter().map(identity).collect();
            let mut log = LineLog::open(&state.index_path(), false)?;
            for rel in &fresh {
                let Some(mut entry) = self.get_json::<IndexEntry>(rel)? else {
                    continue;
                };
                entry.dir = super::absolute(&state.root.join("runs").join(&entry.run))
                    .display()
                    .to_string();
                if !have.contains(&identity(&entry)) {
                    log.append(&entry)?;
                }
            }
            let mut keys = seen_text.clone();
            for rel in &fresh {
                keys.push_str(rel);
                keys.push('\n');
            }
            // Only saves reads next time: losing it costs a few GETs.
            let _ = replace_file(&seen_path, keys.as_bytes());
        }
        let mut shared = self.index_next.lock().unwrap_or_else(|p| p.into_inner());
        for (run, n) in next {
            let slot = shared.entry(run).or_insert(0);
            *slot = (*slot).max(n);
        }
        Ok(())
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        rel: &str,
    ) -> Result<Option<T>, JournalError> {
        let Some(object) = self
            .bucket
            .get(rel, RECORD_LIMIT)
            .map_err(|e| store_error(&e))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&object.bytes)
            .map(Some)
            .map_err(|e| JournalError::Replica {
                why: format!(
                    "`{}` is not a record sonicflow wrote ({e})",
                    self.bucket.location(rel)
                ),
            })
    }
}

impl StateStore for BucketState {
    fn keep_results(&self, run: &str, dir: &Path) -> Result<(), JournalError> {
        for name in KEPT_RESULTS {
            let path = dir.join(name);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(JournalError::Read { path, source }),
            };
            // One PUT: a reader sees the previous version or this one.
            self.bucket
                .put(&format!("runs/{run}/{name}"), Bytes::from(bytes))
                .map_err(|e| store_error(&e))?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("the state store `{}`", self.bucket)
    }

    fn locks(&self, root: &Path) -> Arc<dyn LockStore> {
        match self.bucket.scheme() {
            // object_store's local files take no compare-and-swap (`PutMode::Update`).
            Scheme::File => Arc::new(LocalLocks::new(
                &file_root(&self.bucket).unwrap_or_else(|| root.to_owned()),
            )),
            _ => Arc::new(BucketLocks::new(self.bucket.clone())),
        }
    }

    fn claims(&self, _: &Path) -> Arc<dyn ClaimStore> {
        // Claims need only create-only writes, which every store has.
        Arc::new(BucketClaims::new(Arc::new(self.bucket.clone())))
    }

    fn hydrate(&self, state: &StateDir) -> Result<(), JournalError> {
        state.ensure()?;
        let listed = self.bucket.list("runs").map_err(|e| store_error(&e))?;
        self.hydrate_registry(state, &listed)?;
        self.hydrate_journals(state, &listed)?;
        self.hydrate_index(state)
    }

    fn journal(&self, run: &str, records: u64) -> Option<Box<dyn Replica>> {
        Some(Box::new(JournalReplica {
            bucket: self.bucket.clone(),
            run: run.to_owned(),
            next: records,
        }))
    }

    fn index(&self, run: &str) -> Option<Box<dyn Replica>> {
        Some(Box::new(IndexReplica {
            bucket: self.bucket.clone(),
            run: run.to_owned(),
            next: Arc::clone(&self.index_next),
        }))
    }

    fn registry(&self) -> Option<Box<dyn Replica>> {
        Some(Box::new(RegistryReplica {
            bucket: self.bucket.clone(),
        }))
    }

    fn live_runs(&self, root: &Path) -> HashSet<String> {
        let now = std::time::SystemTime::now();
        self.locks(root)
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter(|l| {
                let process = super::lock::process_of(&l.holder);
                super::lock::stale(&l.holder, process, now).is_none()
            })
            .map(|l| l.holder.run)
            .collect()
    }
}

/// The folder a `file://` bucket writes to.
fn file_root(bucket: &Bucket) -> Option<PathBuf> {
    url::Url::parse(bucket.url()).ok()?.to_file_path().ok()
}

/// The object of record `seq` of `run`'s journal.
pub fn journal_key(run: &str, seq: u64) -> String {
    format!("runs/{run}/journal/{seq:010}.json")
}

/// `(run, seq)` of an index object `index/<hash>/<run>-<seq>.json`.
fn index_name(rel: &str) -> Option<(&str, u64)> {
    let name = rel.strip_prefix("index/")?.split_once('/')?.1;
    let (run, seq) = name.strip_suffix(".json")?.rsplit_once('-')?;
    Some((run, seq.parse().ok()?))
}

/// An index entry without its machine-local folder, to tell whether the
/// working copy holds it already.
fn identity(entry: &IndexEntry) -> String {
    let bare = IndexEntry {
        dir: String::new(),
        ..entry.clone()
    };
    serde_json::to_string(&bare).unwrap_or_default()
}

/// How many whole lines `path` holds (0 when it is missing).
fn local_records(path: &Path) -> Result<usize, JournalError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes.iter().filter(|&&b| b == b'\n').count()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(JournalError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `bytes` to `path` through a temporary file renamed into place.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), JournalError> {
    let mut tmp = path.to_owned().into_os_string();
    tmp.push(format!(".{:08x}.tmp", rand::random::<u32>()));
    let tmp = PathBuf::from(tmp);
    let written = std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    written.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        JournalError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

fn store_error(e: &StoreError) -> JournalError {
    JournalError::Replica { why: e.to_string() }
}

/// Puts `record` at `rel` create-only. A write that may have landed is
/// read back: the record is ours when the object holds its bytes. Another
/// record under that name means another writer took the place.
fn put_record(bucket: &Bucket, rel: &str, record: &[u8]) -> Result<(), ReplicaFailure> {
    let bytes = Bytes::copy_from_slice(record);
    let taken = || {
        ReplicaFailure::Taken(format!(
            "`{}` was written by another process: this one no longer holds the run's lock, and writes nothing more",
            bucket.location(rel)
        ))
    };
    let unsure = match bucket.put_new(rel, bytes) {
        Ok(Created::Written { .. }) => return Ok(()),
        Ok(Created::Exists) => None,
        Err(e) if e.unsure => Some(e),
        Err(e) => return Err(ReplicaFailure::NotWritten(e.to_string())),
    };
    match bucket.get(rel, RECORD_LIMIT) {
        Ok(Some(object)) if object.bytes.as_ref() == record => Ok(()),
        Ok(Some(_)) => Err(taken()),
        Ok(None) => match unsure {
            Some(e) => Err(ReplicaFailure::NotWritten(e.to_string())),
            None => Err(taken()),
        },
        Err(check) => Err(ReplicaFailure::Unknown(format!(
            "{}; whether it was written cannot be told either ({check})",
            unsure.map_or_else(|| "the record was refused".to_owned(), |e| e.to_string())
        ))),
    }
}

/// A run's journal, one object per record.
#[derive(Debug)]
struct JournalReplica {
    bucket: Bucket,
    run: String,
    next: u64,
}

impl Replica for JournalReplica {
    fn put(&mut self, record: &[u8]) -> Result<(), ReplicaFailure> {
        put_record(&self.bucket, &journal_key(&self.run, self.next), record)?;
        self.next += 1;
        Ok(())
    }
}

/// The index lines one run writes, one object each under its request hash.
#[derive(Debug)]
struct IndexReplica {
    bucket: Bucket,
    run: String,
    next: Arc<Mutex<HashMap<String, u64>>>,
}

impl Replica for IndexReplica {
    fn put(&mut self, record: &[u8]) -> Result<(), ReplicaFailure> {
        let entry: IndexEntry = serde_json::from_slice(record)
            .map_err(|e| ReplicaFailure::NotWritten(format!("not an index entry: {e}")))?;
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let seq = next.entry(self.run.clone()).or_insert(0);
        // Entries are independent: a number taken (by this run's earlier
        // process, unknown to this one) just moves the entry to the next.
        for _ in 0..INDEX_TRIES {
            let rel = format!(
                "index/{}/{}-{:010}.json",
                crate::journal::safe_name(&entry.hash),
                self.run,
                *seq
            );
            *seq += 1;
            match put_record(&self.bucket, &rel, record) {
                Err(ReplicaFailure::Taken(_)) => continue,
                done => return done,
            }
        }
        Err(ReplicaFailure::NotWritten(format!(
            "no free name for an index entry of run `{}` after {INDEX_TRIES} tries",
            self.run
        )))
    }
}

/// The registry: one object per run.
#[derive(Debug)]
struct RegistryReplica {
    bucket: Bucket,
}

impl Replica for RegistryReplica {
    fn put(&mut self, record: &[u8]) -> Result<(), ReplicaFailure> {
        let run: RunRef = serde_json::from_slice(record)
            .map_err(|e| ReplicaFailure::NotWritten(format!("not a registry entry: {e}")))?;
        put_record(&self.bucket, &format!("runs/{}/run.json", run.id), record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// object_store's local files refuse `PutMode::Update`, so a `file://`
    /// store keeps its locks as [`LocalLocks`] in that folder, and its
    /// records as create-only files there.
    #[test]
    fn a_file_store_keeps_records_as_files_and_locks_as_local_locks_in_its_folder() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let shared = dir.path().join("shared");
        let url = format!("file://{}", shared.display());
        let manifest = dir.path().join("p.yaml");
        let state =
            StateDir::open(Some(&url), &manifest, "`--state`").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            state.locks().location("songs"),
            shared.join("locks/songs.lock").display().to_string()
        );
        let run = state.root.join("runs/r");
        std::fs::create_dir_all(&run).unwrap_or_else(|e| panic!("{e}"));
        let mut log = state
            .open_journal(&run.join(JOURNAL), "r")
            .unwrap_or_else(|e| panic!("{e}"));
        log.append(&serde_json::json!({"n": 0}))
            .unwrap_or_else(|e| panic!("{e}"));
        let record = std::fs::read(shared.join("runs/r/journal/0000000000.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(record, br#"{"n":0}"#);
    }

    #[test]
    fn index_objects_name_their_run_and_number() {
        assert_eq!(
            index_name("index/abc/nightly-20260101T000000000Z-0000000007.json"),
            Some(("nightly-20260101T000000000Z", 7))
        );
        assert_eq!(index_name("index/abc"), None);
        assert_eq!(journal_key("r", 12), "runs/r/journal/0000000012.json");
    }
}
