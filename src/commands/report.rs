//! `sonicflow report RUN_DIR`: render a run folder's `results.json` as
//! `report.html`, for any run: finished, still running, or killed.

use std::path::PathBuf;

use crate::exit;
use crate::report::html;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The run folder (the one holding results.json, as `sonicflow run` prints it), or a run id (`--run-id`): one report of every shard started so far.
    #[arg(value_name = "RUN_DIR|RUN_ID")]
    pub run_dir: PathBuf,
    /// Write the report here instead of RUN_DIR/report.html (for RUN_ID: <state>/runs/<pipeline>-<RUN_ID>-merged/report.html).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub state: super::merge::StateArg,
}

pub fn run(args: &ReportArgs) -> u8 {
    if !args.run_dir.exists() {
        return answer(batch_report(args));
    }
    let written = match &args.out {
        Some(out) => html::write_report_to(&args.run_dir, out),
        None => html::write_report(&args.run_dir),
    };
    answer(written)
}

/// Prints where the report was written, or why it was not.
fn answer(written: Result<std::path::PathBuf, impl std::fmt::Display>) -> u8 {
    match written {
        Ok(path) => {
            crate::outln!("{}", path.display());
            exit::SUCCESS
        }
        Err(e) => {
            crate::errln!("error: {e}");
            exit::INVALID
        }
    }
}

/// One report of the shards of a run id started so far (a shard not
/// started yet, or without results, is left out and named).
fn batch_report(args: &ReportArgs) -> Result<PathBuf, String> {
    let run_id = args.run_dir.display().to_string();
    let state = args.state.state()?;
    let runs = super::merge::batch(&state, &run_id)
        .map_err(|e| format!("`{run_id}` is no run folder, and {e}"))?;
    let pipeline = runs.first().map(|r| r.pipeline.clone()).unwrap_or_default();
    let dir = state.merged_dir(&pipeline, &run_id);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| dir.join(html::REPORT_FILE));
    let base = out.parent().map_or_else(PathBuf::new, PathBuf::from);
    let mut shards = Vec::new();
    for run in &runs {
        match super::merge::read_shards(std::slice::from_ref(run)) {
            Ok(mut s) => shards.append(&mut s),
            Err(e) => crate::errln!("warning: left out: {e}"),
        }
    }
    let results =
        crate::report::merge::merge_started(&run_id, &shards, &base).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&base)
        .map_err(|e| format!("cannot create the folder `{}`: {e}", base.display()))?;
    html::write_results_report(&results, &out).map_err(|e| e.to_string())?;
    Ok(out)
}
