//! Who pays for a request among the runs sharing one state store (the
//! shards of a batch). Before a new request is sent, its run claims the
//! request hash: `claims/<hash>.json`, written create-only, so of shards
//! whose rows make the same request one pays and the others wait for its
//! result in the shared index and take it.
//!
//! A claim whose holder failed the request, or whose holder is gone (its
//! lock released or stale) without having sent it, is taken over with the
//! next claim, `claims/<hash>.<n>.json`, create-only too: of the waiters
//! that race for it one wins. Numbered claims rather than a replaced one:
//! a local folder has create-only files (a hard link fails when the name
//! exists) but nothing like compare-and-swap, and an object store has both;
//! create-only is the one operation both do alike. Readers go up from the
//! first claim until one is missing, so a lagging listing hides nothing.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::entry::IndexEntry;
use super::file::read_lines;
use super::lock::{self, LockStore};
use crate::timestamp::rfc3339;

/// How many take-overs of one request's claim are looked at, at most.
const MAX_GENERATIONS: u32 = 1000;

/// A claim record: the run that pays for a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The paying run's id (its folder's name).
    pub run: String,
    /// The name of the lock it holds while it runs.
    pub lock: String,
    /// The instance that makes the request.
    pub inst: String,
    pub at: String,
    /// Tells this claim from any other, to recognise one's own after a
    /// write whose answer was lost.
    pub token: String,
}

/// Where claims live: create-only writes and reads of small objects, and
/// whether a run has put an answer to a request in the shared index.
pub trait ClaimStore: fmt::Debug + Send + Sync {
    /// Writes `bytes` as `rel` if nothing has that name; whether this call did.
    fn create(&self, rel: &str, bytes: &[u8]) -> Result<bool, String>;
    /// The object `rel`, if there is one.
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, String>;
    /// Whether run `run` recorded an outcome of request `hash` in the index.
    fn answered(&self, hash: &str, run: &str) -> Result<bool, String>;
}

/// Claims as files under a local state folder.
#[derive(Debug, Clone)]
pub struct LocalClaims {
    root: PathBuf,
}

impl LocalClaims {
    pub fn new(state: &std::path::Path) -> LocalClaims {
        LocalClaims {
            root: state.to_owned(),
        }
    }
}

impl ClaimStore for LocalClaims {
    fn create(&self, rel: &str, bytes: &[u8]) -> Result<bool, String> {
        use std::io::Write as _;
        let path = self.root.join(rel);
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        // Written whole under a name of its own, then linked to the claim's
        // name, which fails if it exists: no reader sees half a claim.
        let tmp = dir.join(format!(
            ".{}.{:016x}.tmp",
            std::process::id(),
            rand::random::<u64>()
        ));
        let written = std::fs::File::create_new(&tmp)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
        let linked = written.and_then(|()| std::fs::hard_link(&tmp, &path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                if let Ok(d) = std::fs::File::open(&dir) {
                    let _ = d.sync_all();
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(format!("cannot write the claim `{}`: {e}", path.display())),
        }
    }

    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, String> {
        let path = self.root.join(rel);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read the claim `{}`: {e}", path.display())),
        }
    }

    fn answered(&self, hash: &str, run: &str) -> Result<bool, String> {
        let index: Vec<IndexEntry> =
            read_lines(&self.root.join("index.jsonl")).map_err(|e| e.to_string())?;
        Ok(index.iter().any(|e| e.hash == hash && e.run == run))
    }
}

/// Claims as objects in a bucket, next to the index of a state store kept
/// there (`index/<hash>/<run>-<seq>.json`).
#[derive(Debug, Clone)]
pub struct BucketClaims {
    bucket: Arc<crate::store::Bucket>,
}

impl BucketClaims {
    pub fn new(bucket: Arc<crate::store::Bucket>) -> BucketClaims {
        BucketClaims { bucket }
    }
}

/// Claims are a few hundred bytes; anything much larger is not one.
const CLAIM_LIMIT: u64 = 64 * 1024;

impl ClaimStore for BucketClaims {
    fn create(&self, rel: &str, bytes: &[u8]) -> Result<bool, String> {
        use crate::store::Created;
        match self
            .bucket
            .put_new(rel, bytes::Bytes::copy_from_slice(bytes))
        {
            Ok(Created::Written { .. }) => Ok(true),
            Ok(Created::Exists) => Ok(false),
            // The write may have landed: whether it is ours is read back.
            Err(e) if e.unsure => match self.read(rel)? {
                Some(found) => Ok(found == bytes),
                None => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        }
    }

    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, String> {
        self.bucket
            .get(rel, CLAIM_LIMIT)
            .map(|o| o.map(|o| o.bytes.to_vec()))
            .map_err(|e| e.to_string())
    }

    fn answered(&self, hash: &str, run: &str) -> Result<bool, String> {
        let entries = self
            .bucket
            .list(&format!("index/{hash}/"))
            .map_err(|e| e.to_string())?;
        let prefix = format!("index/{hash}/{run}-");
        Ok(entries.iter().any(|rel| rel.starts_with(&prefix)))
    }
}

/// Where a request's claim stands for this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// This run holds it: it pays.
    Mine,
    /// Another run holds it and is still at work on it: wait.
    Theirs(Claim),
    /// Its holder answered the request, or is gone: look again at what
    /// the shared state holds, then take it over if nothing there will do.
    Settled { generation: u32, holder: Claim },
}

/// This run's side of the claims of a shared state store.
#[derive(Debug, Clone)]
pub struct Claims {
    store: Arc<dyn ClaimStore>,
    locks: Arc<dyn LockStore>,
    run: String,
    lock: String,
}

impl Claims {
    /// Claims of run `run`, which holds the lock `lock` in `locks`.
    pub fn new(
        store: Arc<dyn ClaimStore>,
        locks: Arc<dyn LockStore>,
        run: &str,
        lock: &str,
    ) -> Claims {
        Claims {
            store,
            locks,
            run: run.to_owned(),
            lock: lock.to_owned(),
        }
    }

    fn name(hash: &str, generation: u32) -> String {
        if generation == 0 {
            format!("claims/{hash}.json")
        } else {
            format!("claims/{hash}.{generation}.json")
        }
    }

    /// The latest claim of `hash`, with its number.
    fn latest(&self, hash: &str) -> Result<Option<(u32, Claim)>, String> {
        let mut latest = None;
        for generation in 0..MAX_GENERATIONS {
            let name = Claims::name(hash, generation);
            let Some(bytes) = self.store.read(&name)? else {
                break;
            };
            let claim: Claim = serde_json::from_slice(&bytes)
                .map_err(|e| format!("the claim `{name}` is not a claim sonicflow wrote ({e}); delete it if no run of the batch is running"))?;
            latest = Some((generation, claim));
        }
        Ok(latest)
    }

    /// Writes this run's claim of `hash` as number `generation`; whether it won.
    fn write(&self, hash: &str, generation: u32, inst: &str) -> Result<bool, String> {
        let claim = Claim {
            run: self.run.clone(),
            lock: self.lock.clone(),
            inst: inst.to_owned(),
            at: rfc3339(SystemTime::now()),
            token: format!("{:016x}", rand::random::<u64>()),
        };
        let bytes = serde_json::to_vec(&claim).map_err(|e| e.to_string())?;
        self.store.create(&Claims::name(hash, generation), &bytes)
    }

    /// Claims `hash` for instance `inst` unless another run holds it.
    pub fn claim(&self, hash: &str, inst: &str) -> Result<Standing, String> {
        loop {
            let Some((generation, holder)) = self.latest(hash)? else {
                if self.write(hash, 0, inst)? {
                    return Ok(Standing::Mine);
                }
                continue;
            };
            if holder.run == self.run {
                return Ok(Standing::Mine);
            }
            if self.done_with(hash, &holder)? {
                return Ok(Standing::Settled { generation, holder });
            }
            return Ok(Standing::Theirs(holder));
        }
    }

    /// Takes over the claim number `generation` of `hash`, which `settled`
    /// said is done with; another run may beat this one to it.
    pub fn take_over(&self, hash: &str, generation: u32, inst: &str) -> Result<Standing, String> {
        if self.write(hash, generation + 1, inst)? {
            return Ok(Standing::Mine);
        }
        self.claim(hash, inst)
    }

    /// Whether `holder` is done with request `hash`: it answered it, or it
    /// no longer runs.
    pub fn done_with(&self, hash: &str, holder: &Claim) -> Result<bool, String> {
        if self.store.answered(hash, &holder.run)? {
            return Ok(true);
        }
        let held = self.locks.read(&holder.lock).map_err(|e| e.to_string())?;
        let alive = held.is_some_and(|l| {
            l.holder.run == holder.run
                && lock::stale(&l.holder, lock::process_of(&l.holder), SystemTime::now()).is_none()
        });
        Ok(!alive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::lock::{Holder, LocalLocks};

    fn claims(root: &std::path::Path, run: &str) -> Claims {
        Claims::new(
            Arc::new(LocalClaims::new(root)),
            Arc::new(LocalLocks::new(root)),
            run,
            &format!("p.{run}"),
        )
    }

    #[test]
    fn the_first_claim_wins_and_a_gone_holder_is_taken_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            claims(dir.path(), "a"),
            claims(dir.path(), "b"),
            claims(dir.path(), "c"),
        );
        // `a` holds its lock: the others wait for it.
        let locks = LocalLocks::new(dir.path());
        let holder = Holder::this_process("p.a", "a", dir.path(), "run");
        locks.create(&holder).unwrap();
        assert_eq!(a.claim("h", "song[x]"), Ok(Standing::Mine));
        assert_eq!(a.claim("h", "song[y]"), Ok(Standing::Mine));
        let Ok(Standing::Theirs(held)) = b.claim("h", "song[z]") else {
            panic!("b must wait for a");
        };
        assert_eq!(held.run, "a");
        // `a` lets go of its lock without answering: `b` and `c` may take
        // over, and only one of them does.
        let lock = locks.read("p.a").unwrap().unwrap();
        assert!(locks.delete("p.a", &lock.etag).unwrap());
        let Ok(Standing::Settled { generation, .. }) = b.claim("h", "song[z]") else {
            panic!("a is gone");
        };
        assert_eq!(generation, 0);
        assert_eq!(b.take_over("h", generation, "song[z]"), Ok(Standing::Mine));
        // `c` comes late: `b` holds it now (and `b`'s lock is not held
        // either, so it may take over the next one in turn).
        let Ok(Standing::Settled { generation, holder }) = c.claim("h", "song[w]") else {
            panic!("b holds no lock");
        };
        assert_eq!((generation, holder.run.as_str()), (1, "b"));
        assert!(dir.path().join("claims/h.json").exists());
        assert!(dir.path().join("claims/h.1.json").exists());
    }
}
