//! The poll schedule in the driver, under paused time, against a fake
//! service whose tasks finish at drawn times: every task is seen done
//! within the lateness budget of finishing, with fewer polls than the
//! fixed schedule, and the run learns a window that is not the catalogue's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::*;
use crate::plan::from_yaml as plan;

/// One task as the fake saw it, in seconds after the run began.
#[derive(Debug, Clone, Copy)]
struct Task {
    operation: &'static str,
    /// Its submit was accepted.
    accepted: f64,
    /// It finished.
    finish: f64,
    /// A poll found it done.
    seen: Option<f64>,
    polls: u32,
}

impl Task {
    /// How long it took.
    fn took(&self) -> f64 {
        self.finish - self.accepted
    }

    /// How long after finishing it was seen done.
    fn late(&self) -> f64 {
        self.seen.unwrap_or(f64::INFINITY) - self.finish
    }
}

/// A service whose tasks take a time drawn from a range per operation.
struct Drawn {
    start: Instant,
    /// Seconds a task of each operation takes, at least and at most.
    takes: BTreeMap<&'static str, (f64, f64)>,
    rng: Mutex<StdRng>,
    tasks: Mutex<Vec<Task>>,
}

impl Drawn {
    fn new(takes: &[(&'static str, (f64, f64))]) -> Arc<Drawn> {
        Arc::new(Drawn {
            start: Instant::now(),
            takes: takes.iter().copied().collect(),
            rng: Mutex::new(StdRng::seed_from_u64(16)),
            tasks: Mutex::new(Vec::new()),
        })
    }

    fn tasks(&self) -> Vec<Task> {
        self.tasks.lock().unwrap().clone()
    }
}

impl StepExecutor for Drawn {
    async fn submit(&self, job: &Job) -> Result<Submission, StepError> {
        let (least, most) = self.takes[job.operation];
        let now = self.start.elapsed().as_secs_f64();
        let takes = self.rng.lock().unwrap().random_range(least..=most);
        let mut tasks = self.tasks.lock().unwrap();
        tasks.push(Task {
            operation: job.operation,
            accepted: now,
            finish: now + takes,
            seen: None,
            polls: 0,
        });
        Ok(Submission::Task(TaskRef::new(
            (tasks.len() - 1).to_string(),
        )))
    }

    async fn poll(&self, job: &Job, task: &TaskRef) -> Result<PollOutcome, StepError> {
        let now = self.start.elapsed().as_secs_f64();
        let n: usize = task.id.parse().unwrap();
        let mut tasks = self.tasks.lock().unwrap();
        let task = &mut tasks[n];
        task.polls += 1;
        if now < task.finish {
            return Ok(PollOutcome::Pending { waiting: None });
        }
        task.seen = Some(now);
        let clip = json!({"clip_id": format!("{}-c0", job.id), "title": "t", "audio_url": "u", "duration": 1.0});
        Ok(PollOutcome::Done(Outputs {
            value: json!({ "clips": [clip], "clip_id": format!("{}-c0", job.id), "stems": [] }),
            files: Vec::new(),
        }))
    }
}

/// `rows` rows of a song each, and of a stems split too with `stems`,
/// submitted `per_minute` a minute, with `poll` as the pipeline's poll block.
fn pipeline(rows: usize, per_minute: u32, poll: &str, stems: bool) -> String {
    let rows: Vec<String> = (0..rows)
        .map(|i| format!("{{id: r{i}, clip: c{i}}}"))
        .collect();
    let stems = if stems {
        "  stems:\n    action: stems_basic\n    with: { clip: '${{ matrix.clip }}' }\n"
    } else {
        ""
    };
    format!(
        "version: 1\nname: t\nlimits: {{ max_in_flight: 1000, submits_per_minute: {per_minute} }}\n{poll}matrix:\n  key: id\n  rows: [{}]\nsteps:\n  song:\n    action: create\n    with: {{ mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }}\n{stems}",
        rows.join(", ")
    )
}

/// Runs `text` against `fake` at real-world scale with unpaced polls.
async fn run_drawn(text: &str, fake: &Arc<Drawn>) -> Vec<Task> {
    let plan = plan(text);
    let mut config = EngineConfig::from_plan(&plan, 1.0);
    config.polls_per_second = 0;
    let (tx, _rx) = mpsc::unbounded_channel();
    let (_cancel_tx, cancel_rx) = watch::channel(false);
    let summary = run(
        Arc::new(plan),
        Arc::clone(fake),
        Arc::new(Forgetful),
        config,
        tx,
        cancel_rx,
    )
    .await;
    let tasks = fake.tasks();
    assert_eq!(summary.succeeded as usize, tasks.len(), "{summary:?}");
    tasks
}

/// Mean polls per task of `operation`.
fn mean_polls(tasks: &[Task], operation: &str) -> f64 {
    let of: Vec<&Task> = tasks.iter().filter(|t| t.operation == operation).collect();
    of.iter().map(|t| f64::from(t.polls)).sum::<f64>() / of.len() as f64
}

/// The reference's windows: songs 90–150 s, stems 60–180 s.
const REFERENCE: [(&str, (f64, f64)); 2] = [
    ("create_music", (90.0, 150.0)),
    ("stems_basic", (60.0, 180.0)),
];

/// Rounding of paused time to the millisecond.
const SLACK: f64 = 0.002;

#[tokio::test(start_paused = true)]
async fn every_task_is_seen_within_the_budget_with_fewer_polls_than_the_fixed_schedule() {
    let adaptive = run_drawn(&pipeline(100, 6000, "", true), &Drawn::new(&REFERENCE)).await;
    for t in &adaptive {
        assert!(
            t.late() <= 0.25 * t.took() + SLACK,
            "seen {:.1} s after finishing a {:.1} s task: {t:?}",
            t.late(),
            t.took()
        );
    }
    let fixed_block = "poll: { initial_delay: 20s, interval: 15s }\n";
    let fixed = run_drawn(
        &pipeline(100, 6000, fixed_block, true),
        &Drawn::new(&REFERENCE),
    )
    .await;
    let (songs, stems) = (
        mean_polls(&adaptive, "create_music"),
        mean_polls(&adaptive, "stems_basic"),
    );
    let (fixed_songs, fixed_stems) = (
        mean_polls(&fixed, "create_music"),
        mean_polls(&fixed, "stems_basic"),
    );
    // About 2.5 polls a song and 4.5 a stems split, against ~8 fixed.
    assert!(songs <= 2.5 && stems <= 4.5, "{songs} {stems}");
    assert!(
        songs * 2.0 < fixed_songs && stems * 1.5 < fixed_stems,
        "adaptive {songs}, {stems}; fixed {fixed_songs}, {fixed_stems}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_duration_budget_bounds_how_late_each_task_is_seen() {
    let block = "poll: { lateness: 20s }\n";
    let tasks = run_drawn(&pipeline(60, 6000, block, true), &Drawn::new(&REFERENCE)).await;
    for t in &tasks {
        assert!(t.late() <= 20.0 + SLACK, "{t:?}");
    }
    // Songs: one poll per 20 s of a 60 s window, after the first at 110 s.
    assert!(mean_polls(&tasks, "create_music") <= 3.0);
}

#[tokio::test(start_paused = true)]
async fn a_slower_service_is_learnt_and_polled_less() {
    // Songs take 250–300 s, the catalogue says 90–150 s: one submit every 3 s.
    let slow = [("create_music", (250.0, 300.0))];
    let tasks = run_drawn(&pipeline(240, 20, "", false), &Drawn::new(&slow)).await;
    let songs: Vec<Task> = tasks
        .iter()
        .copied()
        .filter(|t| t.operation == "create_music")
        .collect();
    for t in &songs {
        assert!(t.late() <= 0.25 * t.took() + SLACK, "{t:?}");
    }
    let (first, last) = (&songs[..40], &songs[songs.len() - 40..]);
    let (before, after) = (
        mean_polls(first, "create_music"),
        mean_polls(last, "create_music"),
    );
    assert!(
        after + 1.0 < before,
        "{before} polls each at first, {after} at the end"
    );
}

#[tokio::test(start_paused = true)]
async fn a_faster_service_is_learnt_and_then_seen_within_the_budget() {
    // Songs take 30–60 s, the catalogue says 90–150 s: the first are seen
    // late, until probes find the window's lower edge.
    let fast = [("create_music", (30.0, 60.0))];
    let tasks = run_drawn(&pipeline(240, 20, "", false), &Drawn::new(&fast)).await;
    let songs: Vec<Task> = tasks
        .iter()
        .copied()
        .filter(|t| t.operation == "create_music")
        .collect();
    let over = |t: &&Task| t.late() > 0.25 * t.took() + SLACK;
    assert!(
        songs[..20].iter().filter(over).count() > 10,
        "{:?}",
        &songs[..20]
    );
    let last = &songs[songs.len() - 40..];
    let late: Vec<&Task> = last.iter().filter(over).collect();
    assert!(late.is_empty(), "{late:?}");
}
