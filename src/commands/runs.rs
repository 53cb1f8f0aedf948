//! `sonicflow runs`: the runs a state folder knows, newest first, each with
//! when it started, how long it took, where it stands (as `status` says),
//! what it cost and its folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::status::{RunStatus, summarize};
use crate::exit;
use crate::format::{FormatArgs, HumanOrJson};
use crate::journal::{JOURNAL, RunLog, RunRef, StateDir, in_use};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sonicflow runs                              # every pipeline's runs in ./.sonicflow
  sonicflow runs pipelines/nightly.yaml --limit 5
  sonicflow runs --json | jq '.[0].status'")]
pub struct RunsArgs {
    /// A pipeline manifest: only its runs, in its state folder [default: every pipeline's runs in `.sonicflow` here].
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The state folder or bucket URL (s3://…, gs://…, az://…, file://…) [default: FILE's, else `.sonicflow` in the current folder].
    #[arg(long = "state", visible_alias = "state-dir", value_name = "URL|DIR")]
    pub state: Option<String>,
    /// Only the newest N runs.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub format: FormatArgs<HumanOrJson>,
}

/// One run as `runs` lists it.
#[derive(Debug, Serialize)]
pub struct RunRow {
    pub run: String,
    pub pipeline: String,
    /// `K/N` for a shard of a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub started_at: String,
    /// When it last ended; absent while running or when it never ended.
    pub finished_at: Option<String>,
    /// From start to end; for a run still running, so far.
    pub duration_seconds: Option<u64>,
    /// As `sonicflow status` says: `running`, `interrupted`, `succeeded`,
    /// `failed`, `incomplete`, `budget`, `stopped`; `unreadable` when the
    /// journal cannot be read, `missing` when the folder is gone.
    pub status: String,
    /// Where it stands as a whole (`status`'s verdict), when readable.
    pub verdict: Option<String>,
    /// The exit code `sonicflow status` gives it, when readable.
    pub exit_code: Option<u8>,
    pub credits_charged: u64,
    /// Charged less refunded: what the run cost.
    pub credits_net: u64,
    pub dir: String,
    /// What is wrong with an unreadable or missing run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The whole status, for commands that decide by it.
    #[serde(skip)]
    pub summary: Option<RunStatus>,
}

pub fn run(args: &RunsArgs) -> u8 {
    let target =
        target(args.file.as_deref(), args.state.as_deref()).and_then(|(state, pipeline)| {
            state.hydrate().map_err(|e| e.to_string())?;
            Ok((state, pipeline))
        });
    let (state, pipeline) = match target {
        Ok(t) => t,
        Err(e) => {
            crate::errln!("error: {e}");
            return exit::INVALID;
        }
    };
    let mut rows = match survey(&state, pipeline.as_deref()) {
        Ok(rows) => rows,
        Err(e) => {
            crate::errln!("error: {e}");
            return exit::INVALID;
        }
    };
    if let Some(n) = args.limit {
        rows.truncate(n);
    }
    crate::format::print(args.format.get(), &rows, |rows| {
        render(rows, &state, pipeline.as_deref())
    });
    exit::SUCCESS
}

/// The state folder and the pipeline whose runs count: FILE's (its
/// `state:` and `.sonicflow` beside it), else every pipeline's in
/// `--state` or `.sonicflow` in the current folder. A bucket's working
/// copy is not brought up to date here.
pub fn target(
    file: Option<&Path>,
    state: Option<&str>,
) -> Result<(StateDir, Option<String>), String> {
    let (state, pipeline) = match file {
        Some(file) => {
            let loaded = crate::manifest::load::load_file(file).map_err(|_| {
                format!(
                    "`{}` is not a valid pipeline manifest (`sonicflow validate {}` says why)",
                    file.display(),
                    file.display()
                )
            })?;
            (
                super::history::state_for(state, file)?,
                Some(loaded.manifest.name),
            )
        }
        // `.sonicflow` beside a manifest in the current folder.
        None => (StateDir::open(state, Path::new(""), "`--state`")?, None),
    };
    Ok((state, pipeline))
}

/// Every run of `pipeline` (all with `None`) the state's registry lists,
/// newest first, each read from its journal. A run whose folder is gone or
/// whose journal cannot be read is listed with what is wrong.
pub fn survey(state: &StateDir, pipeline: Option<&str>) -> Result<Vec<RunRow>, String> {
    let live = state.live_runs();
    let now = SystemTime::now();
    let mut refs: Vec<RunRef> = state
        .runs()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|r| pipeline.is_none_or(|p| r.pipeline == p))
        .collect();
    // The registry is in the order runs started; a stable sort keeps it
    // among runs of the same millisecond.
    refs.reverse();
    refs.sort_by(|a, b| b.started_at.cmp(&a.started_at));
    Ok(refs
        .into_iter()
        .map(|r| {
            let dir = PathBuf::from(&r.dir);
            let running = in_use(&dir.join(JOURNAL)) || live.contains(&r.id);
            row(&r, RunLog::read(&dir).map(|log| (log, running)), now)
        })
        .collect())
}

fn row(
    r: &RunRef,
    log: Result<(RunLog, bool), crate::journal::JournalError>,
    now: SystemTime,
) -> RunRow {
    let mut row = RunRow {
        run: r.id.clone(),
        pipeline: r.pipeline.clone(),
        shard: r.shard.map(|s| s.to_string()),
        started_at: r.started_at.clone(),
        finished_at: None,
        duration_seconds: None,
        status: String::new(),
        verdict: None,
        exit_code: None,
        credits_charged: 0,
        credits_net: 0,
        dir: r.dir.clone(),
        problem: None,
        summary: None,
    };
    match log {
        Ok((log, running)) => {
            let s = summarize(&log, running);
            let end = match (&log.finished_at, running) {
                (_, true) => Some(now),
                (Some(at), false) => humantime::parse_rfc3339_weak(at).ok(),
                (None, false) => None,
            };
            row.duration_seconds = humantime::parse_rfc3339_weak(&log.header.started_at)
                .ok()
                .zip(end)
                .and_then(|(start, end)| end.duration_since(start).ok())
                .map(|d| d.as_secs());
            row.finished_at = log.finished_at.clone().filter(|_| !running);
            row.status.clone_from(&s.state);
            row.verdict = Some(s.verdict.clone());
            row.exit_code = Some(s.exit_code);
            row.credits_charged = s.credits_charged;
            row.credits_net = s.credits_net;
            row.summary = Some(s);
        }
        Err(e) => {
            let gone = !Path::new(&r.dir).exists();
            row.status = if gone { "missing" } else { "unreadable" }.to_owned();
            row.problem = Some(if gone {
                "the run folder is gone".to_owned()
            } else {
                e.to_string()
            });
        }
    }
    row
}

fn render(rows: &[RunRow], state: &StateDir, pipeline: Option<&str>) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        let whose = pipeline.map_or(String::new(), |p| format!(" of `{p}`"));
        let _ = writeln!(out, "no runs{whose} in {} yet", state.describe());
        return out;
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let table: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let status = match &r.problem {
                Some(_) => format!("{} (below)", r.status),
                None => r.status.clone(),
            };
            let dir = Path::new(&r.dir);
            [
                r.started_at.clone(),
                r.duration_seconds.map_or("-".to_owned(), duration),
                match &r.shard {
                    Some(k) => format!("{} [{k}]", r.pipeline),
                    None => r.pipeline.clone(),
                },
                status,
                if r.summary.is_some() {
                    crate::format::count(r.credits_net, "credit", "credits")
                } else {
                    "-".to_owned()
                },
                dir.strip_prefix(&cwd).unwrap_or(dir).display().to_string(),
            ]
        })
        .collect();
    let head = ["STARTED", "TOOK", "PIPELINE", "STATUS", "NET", "FOLDER"];
    let mut width = head.map(str::len);
    for cells in &table {
        for (w, c) in width.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = width[i]);
            }
        }
        l
    };
    let _ = writeln!(out, "{}", line(&head.map(str::to_owned)));
    for cells in &table {
        let _ = writeln!(out, "{}", line(cells));
    }
    let _ = writeln!(
        out,
        "{} in {}",
        crate::format::count(rows.len() as u64, "run", "runs"),
        state.describe()
    );
    for r in rows {
        if let Some(problem) = &r.problem {
            let _ = writeln!(out, "\n{} is {}: {problem}", r.run, r.status);
        }
    }
    out
}

/// `45s`, `3m12s`, `2h05m`.
fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(192), "3m12s");
        assert_eq!(duration(7500), "2h05m");
    }
}
