//! Durable run state: per-run journals, the reuse index and the
//! run registry, and the [`engine::Memory`](crate::engine::Memory) built on them.
//!
//! A state folder (`.sonicflow/` beside the manifest by default) holds:
//!
//! - `runs/<name>-<time>/journal.jsonl`: one run's append-only journal. The
//!   intent to submit is synced before the request leaves, the task id as
//!   soon as it arrives, then the result. A resumed run reads it back.
//! - `index.jsonl`: every request some run finished (or left in doubt),
//!   keyed by request hash, for reuse across runs and for `plan`.
//! - `runs.jsonl`: the runs started, so "the last run of this pipeline" can
//!   be found and unfinished runs' tasks re-attached.
//! - `locks/<pipeline>.lock`: who is running the pipeline now ([`lock`]).
//!
//! The folder may be a working copy of state kept in a bucket ([`store`]).

mod bucket_locks;
pub mod claims;
mod crash;
mod entry;
mod error;
mod file;
mod find;
pub mod group;
mod history;
mod known;
pub mod lock;
mod memory;
mod policy;
pub mod prune;
mod rank;
mod record;
mod reuse;
mod state;
pub mod store;
#[cfg(test)]
mod testkit;

pub use bucket_locks::BucketLocks;
pub use entry::{Entry, IndexEntry, Outcome, RunHeader, RunRef, Shard};
pub use error::JournalError;
pub use file::{LineLog, Replica, ReplicaFailure, in_use, read_lines};
pub use history::{InstanceLog, RunLog, Seen};
pub use known::{Known, Previous};
pub use memory::{RunMemory, Shared};
pub use policy::Policy;
pub use state::{JOURNAL, StateDir, absolute, safe_name};
