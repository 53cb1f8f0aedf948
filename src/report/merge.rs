//! One `results.json` of a batch from the results of its shards: rows in
//! matrix order, totals summed, the whole standing as its worst shard.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use super::results::{MatrixInfo, Results, RunStatus, Totals};

/// One shard's results and the folder they were read from.
#[derive(Debug, Clone)]
pub struct ShardResults {
    pub dir: PathBuf,
    pub results: Results,
}

/// Why shards cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error(
        "run `{run_id}` has no shard {missing} of {count} (`--shard {missing}/{count}` never started, or started against another state); run the missing shard(s), then merge again"
    )]
    Missing {
        run_id: String,
        missing: String,
        count: u32,
    },
    #[error(
        "run `{run_id}`: shard {shard} ({dir}) {what}, unlike shard {first}; shards of one run must be started alike (same manifest, matrix, prices and shard count): start that shard again with them, or merge under another run id"
    )]
    Differs {
        run_id: String,
        shard: u32,
        first: u32,
        dir: String,
        what: String,
    },
    #[error("run `{run_id}` has no shard: it was not started with `--shard`")]
    NotSharded { run_id: String },
}

/// How a run as a whole stands, worst first: one shard still running, or
/// stopped, makes the batch so.
fn rank(status: RunStatus) -> u8 {
    match status {
        RunStatus::Running => 0,
        RunStatus::Interrupted => 1,
        RunStatus::Stopped => 2,
        RunStatus::Failed => 3,
        RunStatus::Incomplete => 4,
        RunStatus::Succeeded => 5,
    }
}

/// The shard numbers of 1..=count not in `have`, as `2, 4`.
fn missing(have: &[u32], count: u32) -> String {
    (1..=count)
        .filter(|k| !have.contains(k))
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Merges the results of every shard of run `run_id` into one, whose file
/// paths are relative to `out`. Every shard 1..N must be there, each
/// started from the same manifest, matrix and price table.
pub fn merge(run_id: &str, shards: &[ShardResults], out: &Path) -> Result<Results, MergeError> {
    combine(run_id, shards, out, false)
}

/// [`merge`] of the shards started so far, for a report of a batch under
/// way: a missing shard is left out (its rows are not in the results).
pub fn merge_started(
    run_id: &str,
    shards: &[ShardResults],
    out: &Path,
) -> Result<Results, MergeError> {
    combine(run_id, shards, out, true)
}

fn combine(
    run_id: &str,
    shards: &[ShardResults],
    out: &Path,
    partial: bool,
) -> Result<Results, MergeError> {
    let mut by_index: Vec<(u32, &ShardResults)> = shards
        .iter()
        .filter_map(|s| s.results.shard.as_ref().map(|i| (i.index, s)))
        .collect();
    by_index.sort_by_key(|(k, _)| *k);
    let Some(&(first_k, first)) = by_index.first() else {
        return Err(MergeError::NotSharded {
            run_id: run_id.to_owned(),
        });
    };
    let head = &first.results;
    let count = head.shard.as_ref().map_or(0, |s| s.count);
    for &(k, s) in &by_index[1..] {
        let r = &s.results;
        let info = r.shard.as_ref();
        let what = if info.map(|i| i.count) != Some(count) {
            Some(format!(
                "was one of {} shards, not {count}",
                info.map_or(0, |i| i.count)
            ))
        } else if r.pipeline.sha256 != head.pipeline.sha256 || r.pipeline.name != head.pipeline.name
        {
            Some(format!(
                "ran another manifest (`{}`, sha256 {})",
                r.pipeline.file, r.pipeline.sha256
            ))
        } else if r.price_table.version != head.price_table.version {
            Some(format!(
                "was priced with another price table ({})",
                r.price_table.version
            ))
        } else if info.map(|i| &i.matrix_keys) != head.shard.as_ref().map(|i| &i.matrix_keys) {
            Some("expanded another matrix".to_owned())
        } else {
            None
        };
        if let Some(what) = what {
            return Err(MergeError::Differs {
                run_id: run_id.to_owned(),
                shard: k,
                first: first_k,
                dir: s.dir.display().to_string(),
                what,
            });
        }
    }
    let have: Vec<u32> = by_index.iter().map(|(k, _)| *k).collect();
    let gaps = missing(&have, count);
    if !gaps.is_empty() && !partial {
        return Err(MergeError::Missing {
            run_id: run_id.to_owned(),
            missing: gaps,
            count,
        });
    }
    let keys = head
        .shard
        .as_ref()
        .map(|i| i.matrix_keys.clone())
        .unwrap_or_default();
    let position: HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let at = |key: Option<&str>| {
        key.and_then(|k| position.get(k).copied())
            .unwrap_or(usize::MAX)
    };
    let mut merged = head.clone();
    merged.run_id = Some(run_id.to_owned());
    merged.shard = None;
    merged.observed_charges = None;
    merged.totals = Totals::default();
    merged.steps.clear();
    let mut rows = Vec::new();
    for &(k, s) in &by_index {
        let r = &s.results;
        add_totals(&mut merged.totals, &r.totals);
        if rank(r.status) < rank(merged.status) {
            merged.status = r.status;
        }
        if merged.stop_reason.is_none() {
            merged.stop_reason = r
                .stop_reason
                .as_ref()
                .map(|why| format!("shard {k}: {why}"));
        }
        merged.started_at = merged.started_at.clone().min(r.started_at.clone());
        merged.finished_at = match (&merged.finished_at, &r.finished_at) {
            (Some(a), Some(b)) => Some(a.clone().max(b.clone())),
            _ => None,
        };
        merged.wall_ms = merged.wall_ms.max(r.wall_ms);
        let base = relative(&s.dir, out);
        for step in &r.steps {
            let mut step = step.clone();
            for f in &mut step.files {
                f.path = base.join(&f.path).display().to_string();
            }
            merged.steps.push(step);
        }
        rows.extend(r.matrix.iter().flat_map(|m| m.rows.iter().cloned()));
    }
    // Each shard's estimate is the whole plan's, made before its rows were picked.
    merged.totals.credits_estimated = head.totals.credits_estimated;
    // Rows in matrix order; within a row, each shard's order (step, fan-out).
    merged.steps.sort_by_key(|s| at(s.row_key.as_deref()));
    rows.sort_by_key(|r| at(Some(&r.key)));
    // A shard that got no row has no matrix to tell of.
    let matrix = by_index.iter().find_map(|(_, s)| s.results.matrix.as_ref());
    merged.matrix = matrix.map(|m| MatrixInfo {
        file: m.file.clone(),
        sha256: m.sha256.clone(),
        rows,
    });
    Ok(merged)
}

fn add_totals(sum: &mut Totals, t: &Totals) {
    sum.instances += t.instances;
    sum.succeeded += t.succeeded;
    sum.failed += t.failed;
    sum.skipped += t.skipped;
    sum.skipped_condition += t.skipped_condition;
    sum.running += t.running;
    sum.waiting += t.waiting;
    sum.credits_planned += t.credits_planned;
    sum.credits_charged += t.credits_charged;
    sum.credits_refunded += t.credits_refunded;
    sum.credits_in_doubt += t.credits_in_doubt;
    sum.credits_net += t.credits_net;
}

/// `dir` as seen from `from` (both made absolute): `../shard-1` for
/// sibling folders.
pub fn relative(dir: &Path, from: &Path) -> PathBuf {
    let (dir, from) = (
        crate::journal::absolute(dir),
        crate::journal::absolute(from),
    );
    let a: Vec<Component<'_>> = dir.components().collect();
    let b: Vec<Component<'_>> = from.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &a[common..] {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_folders_are_reached_through_their_parent() {
        assert_eq!(
            relative(Path::new("/s/runs/a-1"), Path::new("/s/runs/a")),
            PathBuf::from("../a-1")
        );
        assert_eq!(
            relative(Path::new("/s/x"), Path::new("/s/x")),
            PathBuf::new()
        );
    }
}
