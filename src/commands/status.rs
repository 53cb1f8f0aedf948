//! `sonicflow status`: where a run stands, read from its journal.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::observe::attribute;
use crate::engine::{Account, ErrorKind, Standing, verdict};
use crate::exit;
use crate::format::{FormatArgs, HumanOrJson, print};
use crate::journal::Seen;
use crate::journal::{JOURNAL, RunLog, StateDir, in_use};
use crate::report::ObservedCharges;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sonicflow status pipelines/nightly.yaml          # the newest run of the pipeline
  sonicflow status .sonicflow/runs/nightly-20261201T020000000Z --json

Exit codes: 0 succeeded; 1 failed; 2 cannot be read; 3 stopped by the budget; 5 in doubt; 6 in flight.")]
pub struct StatusArgs {
    /// A run folder, a pipeline manifest for its newest run, or a run id (`--run-id`) for every shard of that run.
    #[arg(value_name = "RUN_DIR|FILE|RUN_ID")]
    pub target: PathBuf,
    /// The state, when FILE's runs are not in `.sonicflow/` beside it: a folder or a bucket URL (s3://…, gs://…, az://…, file://…).
    #[arg(long = "state", visible_alias = "state-dir", value_name = "URL|DIR")]
    pub state: Option<String>,
    #[command(flatten)]
    pub format: FormatArgs<HumanOrJson>,
}

/// Where a run stands, as `status --json` prints it.
#[derive(Debug, Serialize)]
pub struct RunStatus {
    pub run: String,
    pub dir: String,
    pub pipeline: String,
    pub manifest: String,
    pub started_at: String,
    pub resumed: usize,
    /// `running` or `interrupted` (no end recorded); else how it ended:
    /// `succeeded`, `incomplete`, `failed`, `budget` or `stopped` (older
    /// journals: `finished` or `failed`).
    pub state: String,
    /// Where it stands as a whole: `succeeded`, `failed`, `stopped by the
    /// budget`, `in doubt` or `in flight`, as the exit code says.
    pub verdict: String,
    pub exit_code: u8,
    /// The run's credits over all its processes (as in `results.json`).
    pub credits_charged: u64,
    pub credits_refunded: u64,
    pub credits_in_doubt: u64,
    pub credits_net: u64,
    /// For a run stopped by the cap: the `--max-credits` its resume needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needed_cap: Option<u64>,
    pub succeeded: usize,
    pub reused: usize,
    pub failed: usize,
    pub in_flight: Vec<Item>,
    pub in_doubt: Vec<Item>,
    pub failures: Vec<Item>,
    /// Paid, with files that could not be saved: fetched again on resume.
    pub unsaved: Vec<Item>,
    /// What the balance showed the run's submits cost, as in `results.json`;
    /// absent when charges were not observed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_charges: Option<ObservedCharges>,
}

#[derive(Debug, Serialize)]
pub struct Item {
    pub instance: String,
    pub detail: String,
}

pub fn run(args: &StatusArgs) -> u8 {
    if !args.target.exists() {
        return batch_status(args);
    }
    let (dir, live) = match run_dir(args) {
        Ok(d) => d,
        Err(e) => {
            crate::errln!("error: {e}");
            return exit::INVALID;
        }
    };
    let log = match RunLog::read(&dir) {
        Ok(l) => l,
        Err(e) => {
            crate::errln!("error: {e}");
            return exit::INVALID;
        }
    };
    let running = in_use(&dir.join(JOURNAL)) || live.contains(log.id());
    let status = summarize(&log, running);
    print(args.format.get(), &status, render);
    status.exit_code
}

/// Where every shard of a run id stands, and the sums over them.
#[derive(Debug, Serialize)]
pub struct BatchStatus {
    pub run_id: String,
    pub pipeline: String,
    /// How many shards the run was split into (0: not sharded).
    pub shards: u32,
    /// Shard numbers with no run in the state folder.
    pub missing: Vec<u32>,
    pub runs: Vec<BatchShard>,
    pub total: BatchTotal,
    /// The worst of the shards' exit codes (1 when a shard is missing).
    pub exit_code: u8,
}

#[derive(Debug, Serialize)]
pub struct BatchShard {
    /// `K/N`, absent for a run id's unsharded run.
    pub shard: Option<String>,
    #[serde(flatten)]
    pub status: RunStatus,
}

/// Sums over every shard of a batch.
#[derive(Debug, Default, Serialize)]
pub struct BatchTotal {
    pub succeeded: usize,
    pub reused: usize,
    pub failed: usize,
    pub in_flight: usize,
    pub in_doubt: usize,
    pub unsaved: usize,
    pub credits_charged: u64,
    pub credits_refunded: u64,
    pub credits_in_doubt: u64,
    pub credits_net: u64,
}

fn batch_status(args: &StatusArgs) -> u8 {
    let run_id = args.target.display().to_string();
    let state = match (super::merge::StateArg {
        dir: args.state.clone(),
    })
    .state()
    {
        Ok(s) => s,
        Err(e) => {
            crate::errln!("error: {e}");
            return exit::INVALID;
        }
    };
    let live = state.live_runs();
    let runs = match super::merge::batch(&state, &run_id) {
        Ok(runs) => runs,
        Err(e) => {
            crate::errln!(
                "error: `{run_id}` is no run folder nor manifest, and {}",
                e.replacen("no run", "there is no run", 1)
            );
            return exit::INVALID;
        }
    };
    let mut batch = BatchStatus {
        run_id,
        pipeline: runs.first().map(|r| r.pipeline.clone()).unwrap_or_default(),
        shards: runs
            .iter()
            .filter_map(|r| r.shard.map(|s| s.count))
            .max()
            .unwrap_or(0),
        missing: Vec::new(),
        runs: Vec::new(),
        total: BatchTotal::default(),
        exit_code: exit::SUCCESS,
    };
    batch.missing = (1..=batch.shards)
        .filter(|k| !runs.iter().any(|r| r.shard.is_some_and(|s| s.index == *k)))
        .collect();
    if !batch.missing.is_empty() {
        batch.exit_code = exit::FAILED_STEPS;
    }
    for run in &runs {
        let dir = PathBuf::from(&run.dir);
        let log = match RunLog::read(&dir) {
            Ok(l) => l,
            Err(e) => {
                crate::errln!("error: {e}");
                return exit::INVALID;
            }
        };
        let s = summarize(&log, in_use(&dir.join(JOURNAL)) || live.contains(log.id()));
        let t = &mut batch.total;
        t.succeeded += s.succeeded;
        t.reused += s.reused;
        t.failed += s.failed;
        t.in_flight += s.in_flight.len();
        t.in_doubt += s.in_doubt.len();
        t.unsaved += s.unsaved.len();
        t.credits_charged += s.credits_charged;
        t.credits_refunded += s.credits_refunded;
        t.credits_in_doubt += s.credits_in_doubt;
        t.credits_net += s.credits_net;
        batch.exit_code = batch.exit_code.max(s.exit_code);
        batch.runs.push(BatchShard {
            shard: run.shard.map(|s| s.to_string()),
            status: s,
        });
    }
    print(args.format.get(), &batch, render_batch);
    batch.exit_code
}

/// Prints `value` as JSON, or in words by `render`.
fn render_batch(b: &BatchStatus) -> String {
    let mut out = String::new();
    let split = match b.shards {
        0 => String::new(),
        n => format!(", {n} shards"),
    };
    let _ = writeln!(out, "run id: {} (pipeline {}{split})", b.run_id, b.pipeline);
    for r in &b.runs {
        let s = &r.status;
        let credits = Account {
            charged: s.credits_charged,
            refunded: s.credits_refunded,
            in_doubt: s.credits_in_doubt,
            net: s.credits_net,
        };
        let _ = writeln!(
            out,
            "  shard {:<7} {} ({}, exit {}): {} succeeded ({} reused), {} in flight, {} in doubt, {} failed; {credits}  {}",
            r.shard.as_deref().unwrap_or("-"),
            s.state,
            s.verdict,
            s.exit_code,
            s.succeeded,
            s.reused,
            s.in_flight.len(),
            s.in_doubt.len(),
            s.failed,
            s.dir
        );
    }
    for k in &b.missing {
        let _ = writeln!(
            out,
            "  shard {k}/{:<5} not started (no run in the state folder)",
            b.shards
        );
    }
    let t = &b.total;
    let credits = Account {
        charged: t.credits_charged,
        refunded: t.credits_refunded,
        in_doubt: t.credits_in_doubt,
        net: t.credits_net,
    };
    let _ = writeln!(
        out,
        "total: {} succeeded ({} reused), {} in flight, {} in doubt, {} failed; {credits} (exit {})",
        t.succeeded, t.reused, t.in_flight, t.in_doubt, t.failed, b.exit_code
    );
    out
}

/// The run folder, and the runs a live holder holds the lock of in a
/// shared store (a file lock cannot tell for a run on another machine).
fn run_dir(args: &StatusArgs) -> Result<(PathBuf, HashSet<String>), String> {
    if args.target.is_dir() {
        let live = match &args.state {
            Some(given) => StateDir::open(Some(given), &args.target, "`--state`")?.live_runs(),
            None => HashSet::new(),
        };
        return Ok((args.target.clone(), live));
    }
    let loaded = crate::manifest::load::load_file(&args.target).map_err(|_| {
        format!(
            "`{}` is neither a run folder nor a valid pipeline manifest",
            args.target.display()
        )
    })?;
    let state = StateDir::open(args.state.as_deref(), &args.target, "`--state`")?;
    state.hydrate().map_err(|e| e.to_string())?;
    let name = &loaded.manifest.name;
    match state.last_run(name).map_err(|e| e.to_string())? {
        Some(run) => Ok((PathBuf::from(run.dir), state.live_runs())),
        None => Err(format!("no run of `{name}` in `{}` yet", state.describe())),
    }
}

/// Folds a journal into where the run stands.
pub fn summarize(log: &RunLog, running: bool) -> RunStatus {
    let mut s = RunStatus {
        run: log.id().to_owned(),
        dir: log.dir.display().to_string(),
        pipeline: log.header.pipeline.clone(),
        manifest: log.header.manifest.clone(),
        started_at: log.header.started_at.clone(),
        resumed: log.resumed,
        state: match (&log.finished, running) {
            (_, true) => "running".to_owned(),
            (Some(status), false) => status.clone(),
            (None, false) => "interrupted".to_owned(),
        },
        verdict: String::new(),
        exit_code: exit::SUCCESS,
        credits_charged: log.credits.charged,
        credits_refunded: log.credits.refunded,
        credits_in_doubt: log.credits.in_doubt,
        credits_net: log.credits.net,
        needed_cap: log.needed_cap,
        succeeded: 0,
        reused: 0,
        failed: 0,
        in_flight: Vec::new(),
        in_doubt: Vec::new(),
        failures: Vec::new(),
        unsaved: Vec::new(),
        observed_charges: None,
    };
    for (inst, i) in &log.instances {
        let sent = || match i.sent() {
            Some((at, attempt)) => format!("attempt {attempt} sent at {at}"),
            None => format!("sent at {}", i.at),
        };
        let item = |detail: String| Item {
            instance: inst.clone(),
            detail,
        };
        match &i.seen {
            Seen::Succeeded { reused_from, .. } => {
                s.succeeded += 1;
                if reused_from.is_some() {
                    s.reused += 1;
                }
            }
            Seen::Accepted { task: Some(t) } => s.in_flight.push(item(format!("task {}", t.id))),
            Seen::Failed { task: Some(t), .. } => s.in_flight.push(item(format!(
                "task {} (timed out; polled again on resume)",
                t.id
            ))),
            Seen::Sent { .. }
            | Seen::Failed {
                kind: ErrorKind::InDoubt,
                ..
            } => s
                .in_doubt
                .push(item(format!("{}, no answer recorded", sent()))),
            Seen::Accepted { task: None } => s.in_doubt.push(item(format!(
                "{}, accepted at {}, result not recorded",
                sent(),
                i.at
            ))),
            Seen::Unsaved { message, .. } => s.unsaved.push(item(message.clone())),
            Seen::Failed { kind, message, .. } => {
                s.failed += 1;
                let kind = serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                s.failures.push(item(format!("{kind}: {message}")));
            }
            Seen::Released { .. } => {
                s.failed += 1;
                s.failures.push(item(
                    "refused or refunded, and not sent again before the run ended".to_owned(),
                ));
            }
        }
    }
    let standing = Standing {
        in_flight: running || log.finished.is_none() || !s.in_flight.is_empty(),
        in_doubt: !s.in_doubt.is_empty(),
        budget: log.outcome.as_deref() == Some(verdict::BUDGET),
        failed: !s.failures.is_empty()
            || !s.unsaved.is_empty()
            || log
                .outcome
                .as_deref()
                .is_some_and(|v| v != verdict::SUCCEEDED),
    };
    if let Some(outcome) = &log.outcome
        && !running
        && log.finished.is_some()
    {
        s.state.clone_from(outcome);
    }
    s.verdict = standing.word().to_owned();
    s.exit_code = standing.exit_code();
    if !log.observed.is_empty() {
        s.observed_charges = Some(ObservedCharges::of(&attribute(&log.observed)));
    }
    s
}

fn render(s: &RunStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run: {} ({})", s.run, s.dir);
    let _ = writeln!(out, "pipeline: {} ({})", s.pipeline, s.manifest);
    let resumed = match s.resumed {
        0 => String::new(),
        1 => ", resumed once".to_owned(),
        n => format!(", resumed {n} times"),
    };
    let _ = writeln!(out, "started: {}{resumed}", s.started_at);
    let _ = writeln!(
        out,
        "state: {} ({}, exit {})",
        s.state, s.verdict, s.exit_code
    );
    let _ = writeln!(
        out,
        "steps: {} succeeded ({} reused), {} in flight, {} in doubt, {} failed",
        s.succeeded,
        s.reused,
        s.in_flight.len(),
        s.in_doubt.len(),
        s.failed
    );
    let credits = Account {
        charged: s.credits_charged,
        refunded: s.credits_refunded,
        in_doubt: s.credits_in_doubt,
        net: s.credits_net,
    };
    let _ = writeln!(out, "credits: {credits}");
    if let Some(observed) = &s.observed_charges {
        out.push_str(&observed.render());
    }
    for (title, items) in [
        (
            "in flight (polled again on resume, never resent)",
            &s.in_flight,
        ),
        (
            "in doubt (not resent without `--resend-in-doubt`)",
            &s.in_doubt,
        ),
        (
            "paid, files not saved (only the files are fetched on resume)",
            &s.unsaved,
        ),
        ("failed (sent again on resume)", &s.failures),
    ] {
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}:");
        for i in items {
            let _ = writeln!(out, "  {}  {}", i.instance, i.detail);
        }
    }
    if s.state != "running" && s.exit_code != exit::SUCCESS {
        let _ = write!(
            out,
            "\nresume with: sonicflow run --resume {}",
            shell_path(Path::new(&s.dir))
        );
        // A resume keeps the cap: without a higher one it stops again at once.
        if s.exit_code == exit::BUDGET
            && let Some(cap) = s.needed_cap
        {
            let _ = write!(out, " --max-credits {cap}");
        } else if s.exit_code == exit::BUDGET {
            // Journals of older versions do not say what the run needs.
            let _ = write!(
                out,
                " --max-credits N\n  (N above the {} net spent so far: a resume keeps the cap it was started with)",
                crate::format::credits(s.credits_net)
            );
        }
        out.push('\n');
    }
    out
}

fn shell_path(p: &Path) -> String {
    let text = p.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
