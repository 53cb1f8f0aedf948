//! `sonicflow merge RUN_ID`: one `results.json` and `report.html` of every
//! shard of a batch; and the lookup of a batch's shards that `status` and
//! `report` over a run id share.

use std::path::{Path, PathBuf};

use crate::exit;
use crate::journal::{RunRef, StateDir};
use crate::report::merge::{self, ShardResults};

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The run id the shards were started with (`--run-id`).
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
    #[command(flatten)]
    pub state: StateArg,
    /// Folder for the merged results.json and report.html [default: <state>/runs/<pipeline>-<RUN_ID>-merged].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The state folder a batch's shards registered in.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArg {
    /// The state the shards ran against: a folder or a bucket URL (s3://…, gs://…, az://…, file://…) [default: .sonicflow].
    #[arg(long = "state", visible_alias = "state-dir", value_name = "URL|DIR")]
    pub dir: Option<String>,
}

impl StateArg {
    /// The state, brought up to date with its store: every shard's
    /// registry entry and journal, wherever it ran.
    pub fn state(&self) -> Result<StateDir, String> {
        let state = StateDir::open(self.dir.as_deref(), Path::new(""), "`--state`")?;
        state.hydrate().map_err(|e| e.to_string())?;
        Ok(state)
    }
}

/// The runs registered under `run_id` in `state`, the latest of each
/// shard, by shard number; all of one pipeline.
pub fn batch(state: &StateDir, run_id: &str) -> Result<Vec<RunRef>, String> {
    let runs = state.group_runs(run_id).map_err(|e| e.to_string())?;
    if runs.is_empty() {
        return Err(format!(
            "no run `{run_id}` in the state folder `{}`; check the run id (`--run-id` of the shards) and `--state`",
            state.describe()
        ));
    }
    let mut pipelines: Vec<&str> = runs.iter().map(|r| r.pipeline.as_str()).collect();
    pipelines.sort_unstable();
    pipelines.dedup();
    if pipelines.len() > 1 {
        return Err(format!(
            "run id `{run_id}` names runs of several pipelines ({}); give each pipeline's shards a run id of their own",
            pipelines.join(", ")
        ));
    }
    // A shard started again under another folder: its latest run counts.
    let mut latest: Vec<RunRef> = Vec::new();
    for run in runs.into_iter().rev() {
        if !latest.iter().any(|r| r.shard == run.shard) {
            latest.push(run);
        }
    }
    latest.sort_by_key(|r| r.shard.map(|s| s.index));
    Ok(latest)
}

/// Each shard's results.json.
pub fn read_shards(runs: &[RunRef]) -> Result<Vec<ShardResults>, String> {
    runs.iter()
        .map(|run| {
            let dir = PathBuf::from(&run.dir);
            let results = crate::report::html::read_results(&dir).map_err(|e| {
                let shard = run
                    .shard
                    .map_or_else(String::new, |s| format!("shard {s}: "));
                format!("{shard}{e}")
            })?;
            Ok(ShardResults { dir, results })
        })
        .collect()
}

pub fn run(args: &MergeArgs) -> u8 {
    match merge_into(args) {
        Ok((out, code)) => {
            crate::outln!("{}", out.join("results.json").display());
            code
        }
        Err(e) => {
            crate::errln!("error: {e}");
            exit::INVALID
        }
    }
}

/// Merges and writes; the code says how the batch as a whole ended.
fn merge_into(args: &MergeArgs) -> Result<(PathBuf, u8), String> {
    let state = args.state.state()?;
    let runs = batch(&state, &args.run_id)?;
    let pipeline = runs.first().map(|r| r.pipeline.clone()).unwrap_or_default();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| state.merged_dir(&pipeline, &args.run_id));
    let shards = read_shards(&runs)?;
    let merged = merge::merge(&args.run_id, &shards, &out).map_err(|e| e.to_string())?;
    write(&out, &merged)?;
    let code = match merged.status {
        crate::report::RunStatus::Succeeded => exit::SUCCESS,
        _ => exit::FAILED_STEPS,
    };
    Ok((out, code))
}

/// Writes results.json (whole, under a temporary name first) and its report.
fn write(out: &Path, results: &crate::report::Results) -> Result<(), String> {
    std::fs::create_dir_all(out)
        .map_err(|e| format!("cannot create the folder `{}`: {e}", out.display()))?;
    let mut text = serde_json::to_string_pretty(results)
        .map_err(|e| format!("cannot encode the merged results: {e}"))?;
    text.push('\n');
    let path = out.join("results.json");
    crate::report::write_atomically(&path, text.as_bytes())
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    match crate::report::html::write_report(out) {
        Ok(path) => crate::errln!("report: {}", path.display()),
        Err(e) => crate::errln!("warning: no report.html: {e}"),
    }
    Ok(())
}
