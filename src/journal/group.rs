//! Runs that share a run id (`--run-id`): the shards of one batch, or one
//! named run. Their folder and lock names, and finding them in the registry.

use std::path::PathBuf;

use super::entry::{RunRef, Shard};
use super::error::JournalError;
use super::state::{StateDir, safe_name};

/// The environment variables a sharded run takes its run id from, first
/// found wins, when `--run-id` is not given.
pub const RUN_ID_VARS: [&str; 2] = ["SONICFLOW_RUN_ID", "GITHUB_RUN_ID"];

/// The name of the folder of `pipeline`'s run `group` (shard `shard`):
/// `<pipeline>-<run id>` or `<pipeline>-<run id>-shard-<K>-of-<N>`.
pub fn folder_name(pipeline: &str, group: &str, shard: Option<Shard>) -> String {
    let base = format!("{}-{}", safe_name(pipeline), safe_name(group));
    match shard {
        Some(s) => format!("{base}-shard-{}-of-{}", s.padded_index(), s.count),
        None => base,
    }
}

/// The name of the lock a run holds: the pipeline's, or for a shard one of
/// its own, so that shards run side by side and one shard never twice.
pub fn lock_name(pipeline: &str, shard: Option<Shard>) -> String {
    match shard {
        Some(s) => format!("{pipeline}.shard-{}-of-{}", s.padded_index(), s.count),
        None => pipeline.to_owned(),
    }
}

impl StateDir {
    /// The folder a new run `group` (shard `shard`) of `pipeline` starts in.
    pub fn group_run_dir(&self, pipeline: &str, group: &str, shard: Option<Shard>) -> PathBuf {
        self.root
            .join("runs")
            .join(folder_name(pipeline, group, shard))
    }

    /// Where `sonicflow merge` writes the batch `group` of `pipeline` by
    /// default: a folder of its own, beside the shards' (never a run's).
    pub fn merged_dir(&self, pipeline: &str, group: &str) -> PathBuf {
        self.root
            .join("runs")
            .join(format!("{}-merged", folder_name(pipeline, group, None)))
    }

    /// The run `group` (shard `shard`) of `pipeline` the registry holds, if
    /// one started: a restarted shard takes it up.
    pub fn group_run(
        &self,
        pipeline: &str,
        group: &str,
        shard: Option<Shard>,
    ) -> Result<Option<RunRef>, JournalError> {
        Ok(self.runs()?.into_iter().rev().find(|r| {
            r.pipeline == pipeline && r.group.as_deref() == Some(group) && r.shard == shard
        }))
    }

    /// Every run registered under run id `group`, oldest first.
    pub fn group_runs(&self, group: &str) -> Result<Vec<RunRef>, JournalError> {
        Ok(self
            .runs()?
            .into_iter()
            .filter(|r| r.group.as_deref() == Some(group))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_folders_and_locks() {
        let s = Some(Shard {
            index: 3,
            count: 12,
        });
        assert_eq!(
            folder_name("night ly", "run/7", s),
            "night_ly-run_7-shard-03-of-12"
        );
        assert_eq!(folder_name("nightly", "7", None), "nightly-7");
        assert_eq!(lock_name("nightly", s), "nightly.shard-03-of-12");
        assert_eq!(lock_name("nightly", None), "nightly");
    }
}
