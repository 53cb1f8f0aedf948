//! [`BucketLocks`]: the lock records of [`lock`](super::lock) as objects
//! `locks/<name>.json` in a bucket. The locking rules stay in `lock`; this
//! is only the store, one request per operation:
//!
//! - create: `If-None-Match: *`;
//! - replace (heartbeat, takeover): `If-Match` on the etag read;
//! - delete: object stores have no conditional delete, so a release
//!   replaces the record (`If-Match`) with a *released* tombstone, which
//!   `read` and `list` treat as no lock and `create` replaces (again
//!   `If-Match`, so two takers of a released lock cannot both win).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::lock::{Created, Holder, Lock, LockError, LockStore, lock_name};
use crate::store::{Bucket, Swapped};

/// The most a lock record may weigh.
const LIMIT: u64 = 64 * 1024;

/// Lock records in a bucket.
#[derive(Debug, Clone)]
pub struct BucketLocks {
    bucket: Bucket,
}

/// What a released lock leaves behind.
#[derive(Debug, Serialize, Deserialize)]
struct Released {
    released: bool,
    pipeline: String,
    at: String,
}

/// One version of a lock object.
enum Record {
    Held(Box<Lock>),
    /// Released; the etag to replace it on.
    Released(String),
}

impl BucketLocks {
    pub fn new(bucket: Bucket) -> BucketLocks {
        BucketLocks { bucket }
    }

    fn rel(pipeline: &str) -> String {
        format!("locks/{}.json", lock_name(pipeline))
    }

    fn store(&self, e: crate::store::StoreError) -> LockError {
        LockError::Store(e.to_string())
    }

    fn get(&self, rel: &str) -> Result<Option<Record>, LockError> {
        let Some(object) = self.bucket.get(rel, LIMIT).map_err(|e| self.store(e))? else {
            return Ok(None);
        };
        let etag = object.etag.ok_or_else(|| {
            LockError::Store(format!(
                "`{}` has no etag: the store cannot hold locks",
                self.bucket.location(rel)
            ))
        })?;
        if let Ok(released) = serde_json::from_slice::<Released>(&object.bytes)
            && released.released
        {
            return Ok(Some(Record::Released(etag)));
        }
        let holder: Holder =
            serde_json::from_slice(&object.bytes).map_err(|source| LockError::Decode {
                path: self.bucket.location(rel).into(),
                source,
            })?;
        Ok(Some(Record::Held(Box::new(Lock { holder, etag }))))
    }

    fn written(&self, rel: &str, etag: Option<String>, holder: &Holder) -> Result<Lock, LockError> {
        let etag = etag.ok_or_else(|| {
            LockError::Store(format!(
                "writing `{}` gave no etag: the store cannot hold locks",
                self.bucket.location(rel)
            ))
        })?;
        Ok(Lock {
            holder: holder.clone(),
            etag,
        })
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Bytes, LockError> {
    serde_json::to_vec_pretty(value)
        .map(Bytes::from)
        .map_err(LockError::Encode)
}

impl LockStore for BucketLocks {
    fn location(&self, pipeline: &str) -> String {
        self.bucket.location(&Self::rel(pipeline))
    }

    fn read(&self, pipeline: &str) -> Result<Option<Lock>, LockError> {
        Ok(match self.get(&Self::rel(pipeline))? {
            Some(Record::Held(lock)) => Some(*lock),
            _ => None,
        })
    }

    fn create(&self, holder: &Holder) -> Result<Created, LockError> {
        let rel = Self::rel(&holder.pipeline);
        let bytes = encode(holder)?;
        loop {
            match self
                .bucket
                .put_new(&rel, bytes.clone())
                .map_err(|e| self.store(e))?
            {
                crate::store::Created::Written { etag } => {
                    return self.written(&rel, etag, holder).map(Created::Mine);
                }
                crate::store::Created::Exists => {}
            }
            match self.get(&rel)? {
                Some(Record::Held(theirs)) => return Ok(Created::Held(*theirs)),
                Some(Record::Released(etag)) => {
                    match self
                        .bucket
                        .put_if_match(&rel, &etag, bytes.clone())
                        .map_err(|e| self.store(e))?
                    {
                        Swapped::Written { etag } => {
                            return self.written(&rel, etag, holder).map(Created::Mine);
                        }
                        // Another taker was first: look again.
                        Swapped::Conflict => {}
                    }
                }
                // Gone between the two requests: try to create it again.
                None => {}
            }
        }
    }

    fn replace(&self, etag: &str, holder: &Holder) -> Result<Option<Lock>, LockError> {
        let rel = Self::rel(&holder.pipeline);
        match self
            .bucket
            .put_if_match(&rel, etag, encode(holder)?)
            .map_err(|e| self.store(e))?
        {
            Swapped::Written { etag } => self.written(&rel, etag, holder).map(Some),
            Swapped::Conflict => Ok(None),
        }
    }

    fn delete(&self, pipeline: &str, etag: &str) -> Result<bool, LockError> {
        let tombstone = Released {
            released: true,
            pipeline: pipeline.to_owned(),
            at: crate::timestamp::rfc3339(std::time::SystemTime::now()),
        };
        match self
            .bucket
            .put_if_match(&Self::rel(pipeline), etag, encode(&tombstone)?)
            .map_err(|e| self.store(e))?
        {
            Swapped::Written { .. } => Ok(true),
            Swapped::Conflict => Ok(false),
        }
    }

    fn list(&self) -> Result<Vec<Lock>, LockError> {
        let names = self.bucket.list("locks").map_err(|e| self.store(e))?;
        let mut locks = Vec::new();
        for rel in names.iter().filter(|n| n.ends_with(".json")) {
            if let Some(Record::Held(lock)) = self.get(rel)? {
                locks.push(*lock);
            }
        }
        locks.sort_by(|a, b| a.holder.pipeline.cmp(&b.holder.pipeline));
        Ok(locks)
    }
}
