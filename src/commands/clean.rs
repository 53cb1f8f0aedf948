//! `sonicflow clean`: remove old run folders (and the downloads in them)
//! from a state folder, never one whose journal is still the only record
//! of paid work, nor by default one holding results reuse would take.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::runs::{RunRow, survey, target};
use crate::exit;
use crate::format::{FormatArgs, HumanOrJson};
use crate::journal::lock::{self, Holder, StateLock};
use crate::journal::{Policy, StateDir, prune, read_lines};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sonicflow clean --keep-last 10 --dry-run     # what would go, and what stays and why
  sonicflow clean pipelines/nightly.yaml --older-than 30d")]
pub struct CleanArgs {
    /// A pipeline manifest: only its runs, in its state folder [default: every pipeline's runs in `.sonicflow` here].
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The state folder [default: FILE's, else `.sonicflow` in the current folder]; state in a bucket is not cleaned.
    #[arg(long = "state", visible_alias = "state-dir", value_name = "DIR")]
    pub state: Option<String>,
    /// Remove runs started longer ago than this (`30d`, `12h`).
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    pub older_than: Option<Duration>,
    /// Remove all but the newest N runs of each pipeline (with `--older-than`: only runs both would remove).
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Also remove runs holding results a later run would reuse (that run then pays for them again).
    #[arg(long)]
    pub include_reused: bool,
    /// How long result URLs stay valid, as for `run`: a result older than this counts for reuse only with its downloaded files.
    #[arg(long, value_name = "DURATION", default_value = "14d", value_parser = humantime::parse_duration)]
    pub url_retention: Duration,
    /// Say what would be removed, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub format: FormatArgs<HumanOrJson>,
}

/// What `clean` did (or would do).
#[derive(Debug, Default, Serialize)]
pub struct Cleaned {
    pub dry_run: bool,
    pub removed: Vec<Removed>,
    pub kept: Vec<Kept>,
    /// Bytes the removed folders freed (files linked into other runs not counted).
    pub bytes_freed: u64,
    /// Runs the age or count left alone.
    pub untouched: usize,
}

#[derive(Debug, Serialize)]
pub struct Removed {
    pub run: String,
    pub pipeline: String,
    pub started_at: String,
    pub status: String,
    pub dir: String,
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct Kept {
    pub run: String,
    pub pipeline: String,
    pub dir: String,
    pub reason: String,
}

pub fn run(args: &CleanArgs) -> u8 {
    match clean(args) {
        Ok(done) => {
            crate::format::print(args.format.get(), &done, render);
            exit::SUCCESS
        }
        Err(e) => {
            crate::errln!("error: {e}");
            exit::INVALID
        }
    }
}

fn clean(args: &CleanArgs) -> Result<Cleaned, String> {
    if args.older_than.is_none() && args.keep_last.is_none() {
        return Err(
            "say which runs to remove: `--older-than 30d` (started more than 30 days ago) or `--keep-last 10` (all but the newest 10 of each pipeline); add `--dry-run` to see first"
                .to_owned(),
        );
    }
    let (state, pipeline) = target(args.file.as_deref(), args.state.as_deref())?;
    if let Some(url) = &state.url {
        return Err(format!(
            "`clean` removes runs from a local state folder only, not from `{url}`; remove them in the bucket with its own tools, or clean a folder given with `--state DIR`"
        ));
    }
    let now = SystemTime::now();
    // Every pipeline's lock: the index is shared, so no run may start
    // (nor, for a live one, keep writing) while it is rewritten.
    let _locks = if args.dry_run {
        Vec::new()
    } else {
        lock_all(&state)?
    };
    let rows = survey(&state, None)?;
    let index = read_lines(&state.index_path()).map_err(|e| e.to_string())?;
    let policy = Policy {
        retention: args.url_retention,
        now,
        ..Policy::default()
    };
    let needed = prune::needed_by_reuse(&index, &policy);
    let runs_root = crate::journal::absolute(&state.root.join("runs"));

    let mut done = Cleaned {
        dry_run: args.dry_run,
        ..Cleaned::default()
    };
    let mut doomed = Vec::new();
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    // Newest first, as `runs` lists them: a pipeline's first N are its last N.
    for row in &rows {
        let nth = seen.entry(row.pipeline.as_str()).or_default();
        let position = *nth;
        *nth += 1;
        if pipeline.as_deref().is_some_and(|p| p != row.pipeline) {
            continue;
        }
        let old = args
            .older_than
            .is_none_or(|age| started_before(row, now, age));
        let beyond = args.keep_last.is_none_or(|n| position >= n);
        if !(old && beyond) {
            done.untouched += 1;
            continue;
        }
        let dir = PathBuf::from(&row.dir);
        let reason = keep_reason(row, &dir, &runs_root).or_else(|| {
            let n = needed.get(&row.dir).copied().unwrap_or(0);
            (n > 0 && !args.include_reused).then(|| {
                format!(
                    "holds {} reuse would still take (`--include-reused` removes it)",
                    crate::format::count(n as u64, "result", "results")
                )
            })
        });
        if let Some(reason) = reason {
            done.kept.push(Kept {
                run: row.run.clone(),
                pipeline: row.pipeline.clone(),
                dir: row.dir.clone(),
                reason,
            });
            continue;
        }
        let (files, bytes) = prune::size(&dir);
        done.bytes_freed += bytes;
        done.removed.push(Removed {
            run: row.run.clone(),
            pipeline: row.pipeline.clone(),
            started_at: row.started_at.clone(),
            status: row.status.clone(),
            dir: row.dir.clone(),
            files,
            bytes,
        });
        doomed.push(dir);
    }
    if !args.dry_run {
        prune::remove(&state, &doomed).map_err(|e| e.to_string())?;
    }
    Ok(done)
}

/// Why a run must stay whatever reuse says: it is running, its journal is
/// the only record of paid work not finished, or it is not in the state
/// folder's `runs/` (a `run --out DIR` folder is the user's).
fn keep_reason(row: &RunRow, dir: &Path, runs_root: &Path) -> Option<String> {
    let Some(s) = &row.summary else {
        return Some(match row.status.as_str() {
            "missing" => "its folder is gone already".to_owned(),
            _ => format!(
                "its journal cannot be read ({}); it may record paid work",
                row.problem.as_deref().unwrap_or("unreadable")
            ),
        });
    };
    if s.state == "running" {
        return Some("running".to_owned());
    }
    let resume = || format!("resume it: `sonicflow run --resume {}`", row.dir);
    if s.exit_code == exit::STATUS_IN_FLIGHT {
        return Some(format!(
            "unfinished, with paid work to follow; {}",
            resume()
        ));
    }
    if s.exit_code == exit::STATUS_IN_DOUBT {
        return Some(format!(
            "{} in doubt (maybe paid): its journal keeps it from being sent again",
            crate::format::count(s.in_doubt.len() as u64, "send", "sends")
        ));
    }
    if s.exit_code == exit::BUDGET {
        return Some(format!("stopped by the budget; {}", resume()));
    }
    if !s.unsaved.is_empty() {
        return Some(format!(
            "{} paid with files not saved; {}",
            crate::format::count(s.unsaved.len() as u64, "result", "results"),
            resume()
        ));
    }
    let inside = dir
        .parent()
        .is_some_and(|p| crate::journal::absolute(p) == runs_root);
    if !inside {
        return Some("outside the state folder's `runs/` (a `--out` folder)".to_owned());
    }
    None
}

fn started_before(row: &RunRow, now: SystemTime, age: Duration) -> bool {
    humantime::parse_rfc3339_weak(&row.started_at)
        .ok()
        .and_then(|t| now.duration_since(t).ok())
        .is_some_and(|d| d > age)
}

/// Takes the lock of every pipeline the state folder knows, at once or
/// not at all: a pipeline running now makes `clean` refuse.
fn lock_all(state: &StateDir) -> Result<Vec<StateLock>, String> {
    let mut pipelines: Vec<String> = state
        .runs()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|r| r.pipeline)
        .collect();
    pipelines.sort();
    pipelines.dedup();
    let mut held = Vec::new();
    for p in pipelines {
        let me = || Holder::this_process(&p, "clean", &state.root, "clean");
        match lock::acquire(
            state.locks(),
            Duration::ZERO,
            &mut lock::Stderr::default(),
            me,
        ) {
            Ok(l) => held.push(l),
            Err(e) => {
                return Err(format!(
                    "{e}; `clean` changes nothing while a run of the state folder is running: try again when it ends"
                ));
            }
        }
    }
    Ok(held)
}

fn render(done: &Cleaned) -> String {
    let mut out = String::new();
    let verb = if done.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let short = |d: &str| {
        let p = Path::new(d);
        p.strip_prefix(&cwd).unwrap_or(p).display().to_string()
    };
    for r in &done.removed {
        let _ = writeln!(
            out,
            "{verb} {} ({}, {}, {})  {}",
            r.run,
            r.status,
            crate::format::count(r.files, "file", "files"),
            crate::api::human_bytes(r.bytes),
            short(&r.dir)
        );
    }
    for k in &done.kept {
        let _ = writeln!(out, "kept {}: {}  {}", k.run, k.reason, short(&k.dir));
    }
    let _ = writeln!(
        out,
        "{verb} {}, freeing {}; kept {} of those selected, left {} not selected",
        crate::format::count(done.removed.len() as u64, "run", "runs"),
        crate::api::human_bytes(done.bytes_freed),
        done.kept.len(),
        done.untouched
    );
    out
}
