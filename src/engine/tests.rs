//! The scheduler against a fake executor under paused tokio time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::*;
use crate::plan::{Plan, from_yaml as plan};

/// What the fake does for an instance name, else for its step id: fail N submits with a kind, fail the task N times, never finish.
#[derive(Clone, Default)]
struct Script {
    submit_errors: Vec<ErrorKind>,
    task_failures: u32,
    stuck: bool,
    polls_to_finish: u32,
    /// Downloading the files of a reused result fails.
    fetch_fails: bool,
    /// What pending polls say the task waits on.
    waiting: Option<&'static str>,
}

#[derive(Default)]
struct Log {
    submits: Vec<(String, Duration)>,
    in_flight: i64,
    peak_in_flight: i64,
    task_polls: HashMap<String, u32>,
    submit_calls: HashMap<String, u32>,
    failures_left: HashMap<String, u32>,
    /// Submits answered 429 by the shared slot, with when they arrived.
    refused: Vec<(String, Duration)>,
    /// When the latest submit the shared slot let through arrived.
    last_accepted: Option<Duration>,
}

struct Fake {
    start: Instant,
    /// Whether results should carry files (as with `--download`).
    files: bool,
    scripts: HashMap<String, Script>,
    /// Like a service whose one submit slot every paid call shares: a
    /// submit arriving within this of the last one let through is answered 429.
    shared_slot: Option<Duration>,
    log: Mutex<Log>,
}

impl Fake {
    fn new(scripts: &[(&str, Script)]) -> Arc<Fake> {
        Arc::new(Fake {
            start: Instant::now(),
            files: false,
            scripts: scripts
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            shared_slot: None,
            log: Mutex::new(Log::default()),
        })
    }

    fn with_shared_slot(window: Duration) -> Arc<Fake> {
        let mut fake = Arc::into_inner(Fake::new(&[])).unwrap();
        fake.shared_slot = Some(window);
        Arc::new(fake)
    }

    fn with_files(scripts: &[(&str, Script)]) -> Arc<Fake> {
        let mut fake = Arc::into_inner(Fake::new(scripts)).unwrap();
        fake.files = true;
        Arc::new(fake)
    }

    fn script(&self, job: &Job) -> Script {
        self.scripts
            .get(&job.id.to_string())
            .or_else(|| self.scripts.get(&job.id.step_id))
            .cloned()
            .unwrap_or(Script {
                polls_to_finish: 2,
                ..Script::default()
            })
    }
}

fn outputs(job: &Job) -> Outputs {
    let base = format!("{}-{}", job.id.step_id, job.id.instance());
    let clip = |i: usize| json!({"clip_id": format!("{base}-c{i}"), "title": "t", "audio_url": "u", "duration": 1.0});
    let value = match job.action.name() {
        "upload" => json!({"clip_id": format!("{base}-up")}),
        "wav" => json!({"wav_url": format!("http://x/{base}.wav")}),
        // The words line up in every row but `dry`: a boolean only the run learns.
        "lyrics_timeline" => json!({"alignment": [
            {"word": "la", "start_s": 0.0, "end_s": 1.0, "p_align": 0.9,
             "success": job.id.row_key.as_deref() != Some("dry")}]}),
        "stems_basic" => json!({"stems": [
            {"name": "vocals", "clip_id": format!("{base}-s0"), "audio_url": "u"},
            {"name": "instrumental", "clip_id": format!("{base}-s1"), "audio_url": "u"}]}),
        _ => json!({"clips": [clip(0), clip(1)], "clip_id": format!("{base}-c0")}),
    };
    Outputs {
        value,
        files: Vec::new(),
    }
}

impl StepExecutor for Fake {
    async fn submit(&self, job: &Job) -> Result<Submission, StepError> {
        let script = self.script(job);
        let key = job.id.to_string();
        {
            let mut log = self.log.lock().unwrap();
            let calls = log.submit_calls.entry(key.clone()).or_default();
            *calls += 1;
            let n = *calls as usize;
            let now = self.start.elapsed();
            log.submits.push((key.clone(), now));
            if let Some(window) = self.shared_slot {
                if log.last_accepted.is_some_and(|last| now - last < window) {
                    log.refused.push((key, now));
                    return Err(StepError::new(ErrorKind::RateLimited, "shared slot taken"));
                }
                log.last_accepted = Some(now);
            }
            if let Some(kind) = script.submit_errors.get(n - 1) {
                let mut e = StepError::new(*kind, format!("scripted {kind:?}"));
                if *kind == ErrorKind::RateLimited {
                    e.retry_after = Some(Duration::from_secs(5));
                }
                return Err(e);
            }
            log.in_flight += 1;
            log.peak_in_flight = log.peak_in_flight.max(log.in_flight);
        }
        if matches!(job.action.name(), "wav" | "upload") {
            self.log.lock().unwrap().in_flight -= 1;
            return Ok(Submission::Done(outputs(job)));
        }
        Ok(Submission::Task(TaskRef::new(format!(
            "task-{key}-{}",
            job.attempt
        ))))
    }

    async fn poll(&self, job: &Job, task: &TaskRef) -> Result<PollOutcome, StepError> {
        let task_id = task.id.as_str();
        let script = self.script(job);
        let mut log = self.log.lock().unwrap();
        let polls = log.task_polls.entry(task_id.to_owned()).or_default();
        *polls += 1;
        if script.stuck || *polls < script.polls_to_finish.max(1) {
            let waiting = script.waiting.map(str::to_owned);
            return Ok(PollOutcome::Pending { waiting });
        }
        log.in_flight -= 1;
        let left = log
            .failures_left
            .entry(job.id.to_string())
            .or_insert(script.task_failures);
        if *left > 0 {
            *left -= 1;
            return Ok(PollOutcome::Failed {
                message: "generation failed".into(),
            });
        }
        Ok(PollOutcome::Done(outputs(job)))
    }

    fn wants_files(&self) -> bool {
        self.files
    }

    async fn fetch(&self, job: &Job, mut outputs: Outputs) -> Result<Outputs, StepError> {
        let script = self.script(job);
        if script.stuck {
            std::future::pending::<()>().await;
        }
        if script.fetch_fails {
            return Err(StepError::new(
                ErrorKind::Local,
                "scripted download failure",
            ));
        }
        outputs.files.push(SavedFile {
            path: format!("{}/file", job.id.step_id),
            sha256: String::new(),
            bytes: 1,
            url: "http://x/file".into(),
            ..SavedFile::default()
        });
        Ok(outputs)
    }
}

async fn run_plan(
    plan: Plan,
    fake: Arc<Fake>,
    tweak: impl FnOnce(&mut EngineConfig),
) -> (Summary, Vec<RunEvent>) {
    run_with_memory(plan, fake, Arc::new(Forgetful), tweak).await
}

async fn run_with_memory(
    plan: Plan,
    fake: Arc<Fake>,
    memory: Arc<dyn Memory>,
    tweak: impl FnOnce(&mut EngineConfig),
) -> (Summary, Vec<RunEvent>) {
    let mut config = EngineConfig::from_plan(&plan, 1.0);
    tweak(&mut config);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_cancel_tx, cancel_rx) = watch::channel(false);
    let summary = run(Arc::new(plan), fake, memory, config, tx, cancel_rx).await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (summary, events)
}

/// What one call of `operation` costs in the built-in table.
fn price(operation: &str) -> u64 {
    crate::prices::PriceTable::builtin()
        .price(operation)
        .unwrap_or_else(|| panic!("no price for {operation}"))
}

const COVER: &str = "version: 1\nname: t\ndefaults: { mv: sonic-v5 }\nsteps:\n  upload:\n    action: upload\n    with: { url: https://x/a.mp3 }\n  jazz:\n    action: cover\n    with: { clip: '${{ steps.upload.outputs.clip_id }}', custom_mode: false, gpt_description_prompt: jazz }\n  stems:\n    action: stems_basic\n    for_each: ${{ steps.jazz.outputs.clips }}\n    with: { clip: '${{ item.clip_id }}' }\n  wav:\n    action: wav\n    for_each: ${{ steps.stems.outputs.stems }}\n    with: { clip: '${{ item.clip_id }}' }\n  other:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: solo }\n";

fn succeeded(events: &[RunEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Succeeded { id, .. } => Some(id.to_string()),
            _ => None,
        })
        .collect()
}

fn submitted_fields(events: &[RunEvent], name: &str) -> Vec<serde_json::Value> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Submitting { id, fields, .. } if id.step_id == name => Some(fields.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn fans_out_at_run_time_in_dependency_order() {
    let fake = Fake::new(&[]);
    let (summary, events) = run_plan(plan(COVER), fake.clone(), |_| {}).await;
    assert_eq!(
        (summary.succeeded, summary.failed, summary.skipped),
        (1 + 1 + 2 + 4 + 1, 0, 0)
    );
    let done = succeeded(&events);
    let pos = |n: &str| {
        done.iter()
            .position(|d| d == n)
            .unwrap_or_else(|| panic!("{n} in {done:?}"))
    };
    assert!(pos("upload") < pos("jazz"));
    assert!(pos("jazz") < pos("stems[0]") && pos("jazz") < pos("stems[1]"));
    assert!(pos("stems[1]") < pos("wav[1.0]") && pos("stems[1]") < pos("wav[1.1]"));
    // Items resolve per instance: wav[1.1] exports the second stem of the second clip.
    let wav_clips: Vec<_> = submitted_fields(&events, "wav")
        .iter()
        .map(|f| f["clip"].clone())
        .collect();
    assert!(wav_clips.contains(&json!("stems-1-s1")), "{wav_clips:?}");
    assert_eq!(
        submitted_fields(&events, "jazz")[0]["clip"],
        json!("upload---up")
    );
    // Credits: an upload, a cover, 2 stem splits, 4 wavs and a create.
    let expected = price("upload")
        + price("cover_upload_music")
        + 2 * price("stems_basic")
        + 4 * price("wav")
        + price("create_music");
    assert_eq!(summary.credits.charged, expected);
}

#[tokio::test(start_paused = true)]
async fn limits_are_never_exceeded() {
    let text = "version: 1\nname: t\nlimits: { max_in_flight: 3, submits_per_minute: 20 }\nmatrix:\n  key: id\n  rows: [{id: a}, {id: b}, {id: c}, {id: d}, {id: e}, {id: f}]\nsteps:\n  song:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }\n";
    let fake = Fake::new(&[(
        "song",
        Script {
            polls_to_finish: 5,
            ..Script::default()
        },
    )]);
    let (summary, _) = run_plan(plan(text), fake.clone(), |_| {}).await;
    assert_eq!(summary.succeeded, 6);
    let log = fake.log.lock().unwrap();
    assert!(log.peak_in_flight <= 3, "peak {}", log.peak_in_flight);
    let times: Vec<Duration> = log.submits.iter().map(|(_, t)| *t).collect();
    // 20 per minute is one per 3 s; the engine keeps 5% to spare.
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(3150),
            "{times:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failure_skips_only_its_dependents_and_fail_fast_stops_the_rest() {
    let fake = Fake::new(&[(
        "jazz",
        Script {
            submit_errors: vec![ErrorKind::Invalid],
            ..Script::default()
        },
    )]);
    let (summary, events) = run_plan(plan(COVER), fake, |_| {}).await;
    assert_eq!(summary.failed, 1);
    assert!(
        succeeded(&events).contains(&"other".to_owned()),
        "independent steps still run"
    );
    let skipped: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Skipped { id, reason } => Some(format!("{id}: {reason}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        skipped,
        vec![
            "stems: `jazz` failed".to_owned(),
            "wav: `jazz` failed".to_owned()
        ]
    );

    let fake = Fake::new(&[(
        "upload",
        Script {
            submit_errors: vec![ErrorKind::Moderation],
            ..Script::default()
        },
    )]);
    let (summary, events) = run_plan(plan(COVER), fake, |c| c.fail_fast = true).await;
    // `other` was already in flight when `upload` failed; it finishes, nothing else starts.
    assert_eq!(
        (summary.succeeded, summary.failed, summary.skipped),
        (1, 1, 3)
    );
    assert_eq!(succeeded(&events), vec!["other".to_owned()]);
    assert!(
        summary
            .stopped
            .as_ref()
            .map(ToString::to_string)
            .is_some_and(|s| s.contains("fail-fast"))
    );
}

#[tokio::test(start_paused = true)]
async fn transient_errors_and_failed_tasks_are_retried_but_in_doubt_is_never_resent() {
    let fake = Fake::new(&[
        (
            "upload",
            Script {
                submit_errors: vec![ErrorKind::Transient],
                ..Script::default()
            },
        ),
        (
            "jazz",
            Script {
                task_failures: 1,
                polls_to_finish: 1,
                ..Script::default()
            },
        ),
        (
            "other",
            Script {
                submit_errors: vec![ErrorKind::InDoubt],
                ..Script::default()
            },
        ),
    ]);
    let (summary, events) = run_plan(plan(COVER), fake.clone(), |_| {}).await;
    let log = fake.log.lock().unwrap();
    assert_eq!(log.submit_calls["upload"], 2);
    assert_eq!(
        log.submit_calls["jazz"], 2,
        "a failed task is submitted again"
    );
    assert_eq!(
        log.submit_calls["other"], 1,
        "an in-doubt submit is never resent"
    );
    assert_eq!(summary.credits.refunded, 15);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RunEvent::Retrying { refunded: 15, .. }))
    );
    assert!(events.iter().any(|e| matches!(e, RunEvent::Failed { id, error, .. } if id.step_id == "other" && error.kind == ErrorKind::InDoubt)));
}

#[tokio::test(start_paused = true)]
async fn rate_limits_pause_every_submit_and_do_not_use_up_attempts() {
    let fake = Fake::new(&[(
        "upload",
        Script {
            submit_errors: vec![ErrorKind::RateLimited; 4],
            ..Script::default()
        },
    )]);
    let (summary, events) = run_plan(plan(COVER), fake.clone(), |c| c.submits_per_minute = 0).await;
    assert_eq!(summary.failed, 0);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, RunEvent::Throttled { .. }))
            .count(),
        4
    );
    let log = fake.log.lock().unwrap();
    let upload_times: Vec<Duration> = log
        .submits
        .iter()
        .filter(|(k, _)| k == "upload")
        .map(|(_, t)| *t)
        .collect();
    for pair in upload_times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(5),
            "Retry-After honoured: {upload_times:?}"
        );
    }
}

/// Six rows of a generation submit (`song`) and a quick call (`up`), both
/// paced at their defaults: 20 and 60 a minute.
const TWO_CLASSES: &str = "version: 1\nname: t\nlimits: { max_in_flight: 50 }\nmatrix:\n  key: id\n  rows: [{id: a}, {id: b}, {id: c}, {id: d}, {id: e}, {id: f}]\nsteps:\n  song:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }\n  up:\n    action: upload\n    with: { url: https://x/a.mp3 }\n";

/// When each submit of `step` was sent.
fn sends_of(fake: &Fake, step: &str) -> Vec<Duration> {
    let log = fake.log.lock().unwrap();
    log.submits
        .iter()
        .filter(|(k, _)| k.starts_with(step))
        .map(|(_, t)| *t)
        .collect()
}

fn gaps(times: &[Duration]) -> Vec<Duration> {
    times.windows(2).map(|p| p[1] - p[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn each_class_keeps_its_own_spacing_and_neither_waits_for_the_other() {
    let fake = Fake::new(&[]);
    let (summary, _) = run_plan(plan(TWO_CLASSES), fake.clone(), |_| {}).await;
    assert_eq!((summary.succeeded, summary.failed), (12, 0));
    let (songs, ups) = (sends_of(&fake, "song"), sends_of(&fake, "up"));
    assert_eq!((songs.len(), ups.len()), (6, 6));
    // 3 s and 1 s, each with the engine's 5 % to spare.
    assert!(
        gaps(&songs)
            .iter()
            .all(|g| *g >= Duration::from_millis(3150)),
        "{songs:?}"
    );
    assert!(
        gaps(&ups).iter().all(|g| *g >= Duration::from_millis(1050)),
        "{ups:?}"
    );
    // Both start at once, and the quick calls are done long before the
    // creates, rather than taking every other 3 s slot.
    assert_eq!((songs[0], ups[0]), (Duration::ZERO, Duration::ZERO));
    assert!(ups[5] < Duration::from_secs(6), "{ups:?}");
    assert!(!summary.rate_limit_shared);
}

#[tokio::test(start_paused = true)]
async fn a_429_on_generation_submits_pauses_them_and_not_the_quick_calls() {
    // Every create is refused once, with a Retry-After of 5 s.
    let fake = Fake::new(&[(
        "song",
        Script {
            submit_errors: vec![ErrorKind::RateLimited],
            polls_to_finish: 2,
            ..Script::default()
        },
    )]);
    let (summary, _) = run_plan(plan(TWO_CLASSES), fake.clone(), |_| {}).await;
    assert_eq!((summary.succeeded, summary.failed), (12, 0));
    let (songs, ups) = (sends_of(&fake, "song"), sends_of(&fake, "up"));
    assert_eq!(songs.len(), 12, "each create sent twice: {songs:?}");
    // Nothing of the generation class goes out during the first pause…
    assert!(
        songs[1] >= Duration::from_secs(5),
        "generation paused: {songs:?}"
    );
    // …while the quick calls keep their own pace through it.
    assert_eq!(ups.len(), 6);
    assert!(
        gaps(&ups).iter().all(|g| *g < Duration::from_millis(1100)),
        "quick calls unaffected: {ups:?}"
    );
    assert!(ups[5] < Duration::from_secs(6), "{ups:?}");
    assert!(!summary.rate_limit_shared);
}

#[tokio::test(start_paused = true)]
async fn a_429_on_a_quick_call_teaches_the_shared_slot_and_none_follows() {
    let fake = Fake::with_shared_slot(Duration::from_secs(3));
    let (summary, _) = run_plan(plan(TWO_CLASSES), fake.clone(), |_| {}).await;
    assert_eq!((summary.succeeded, summary.failed), (12, 0));
    let log = fake.log.lock().unwrap();
    let first_quick = log
        .refused
        .iter()
        .find(|(k, _)| k.starts_with("up"))
        .map(|(_, t)| *t)
        .expect("a quick call met the shared slot");
    let later: Vec<&(String, Duration)> = log
        .refused
        .iter()
        .filter(|(_, t)| *t > first_quick)
        .collect();
    assert_eq!(
        later,
        Vec::<&(String, Duration)>::new(),
        "{:?}",
        log.refused
    );
    assert!(log.refused.len() <= 2, "{:?}", log.refused);
    assert!(summary.rate_limit_shared);
}

/// `rows` rows of `generation` creates and `quick` uploads per row.
fn mixed_classes(rows: usize, generation: usize, quick: usize) -> String {
    let rows: Vec<String> = (0..rows).map(|r| format!("{{id: r{r}}}")).collect();
    let mut text = format!(
        "version: 1\nname: t\nlimits: {{ max_in_flight: 50 }}\nmatrix:\n  key: id\n  rows: [{}]\nsteps:\n",
        rows.join(", ")
    );
    for g in 0..generation {
        text.push_str(&format!("  song{g}:\n    action: create\n    with: {{ mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }}\n"));
    }
    for q in 0..quick {
        text.push_str(&format!(
            "  up{q}:\n    action: upload\n    with: {{ url: https://x/a.mp3 }}\n"
        ));
    }
    text
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Whatever the mix, each class keeps its own spacing against a service
    /// that limits generation submits only, and against one whose slot
    /// every paid call shares no 429 follows the first on a quick call.
    #[test]
    fn every_mix_of_classes_keeps_its_pace_and_learns_a_shared_slot_once(
        rows in 1usize..6,
        generation in 0usize..3,
        quick in 1usize..3,
        shared in proptest::bool::ANY,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let text = mixed_classes(rows, generation, quick);
        // Made inside the paused runtime, so the fake's clock is the engine's.
        let (fake, summary) = runtime.block_on(async {
            let fake = if shared {
                Fake::with_shared_slot(Duration::from_secs(3))
            } else {
                Fake::new(&[])
            };
            let (summary, _) = run_plan(plan(&text), fake.clone(), |_| {}).await;
            (fake, summary)
        });
        proptest::prop_assert_eq!(summary.succeeded, rows * (generation + quick));
        let log = fake.log.lock().unwrap();
        if shared {
            let learnt = log.refused.iter().find(|(k, _)| k.starts_with("up")).map(|(_, t)| *t);
            let after = log.refused.iter().filter(|(_, t)| learnt.is_some_and(|l| *t > l)).count();
            proptest::prop_assert_eq!(after, 0, "{:?}", log.refused);
            proptest::prop_assert_eq!(summary.rate_limit_shared, learnt.is_some());
        } else {
            let sends = |prefix: &str| -> Vec<Duration> {
                log.submits.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, t)| *t).collect()
            };
            let (songs, ups) = (sends("song"), sends("up"));
            proptest::prop_assert!(gaps(&songs).iter().all(|g| *g >= Duration::from_millis(3150)), "{:?}", songs);
            proptest::prop_assert!(gaps(&ups).iter().all(|g| *g >= Duration::from_millis(1050)), "{:?}", ups);
            proptest::prop_assert!(!summary.rate_limit_shared);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn out_of_credits_stops_submitting_but_polls_what_is_in_flight() {
    let fake = Fake::new(&[(
        "other",
        Script {
            submit_errors: vec![ErrorKind::OutOfCredits],
            ..Script::default()
        },
    )]);
    let (summary, events) = run_plan(plan(COVER), fake, |c| c.submits_per_minute = 0).await;
    assert!(
        summary.stopped == Some(StopReason::OutOfCredits),
        "{summary:?}"
    );
    assert!(summary.skipped > 0);
    // `upload` was submitted before `other` and still finished.
    assert!(succeeded(&events).contains(&"upload".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn a_task_that_never_finishes_times_out() {
    let text = "version: 1\nname: t\npoll: { initial_delay: 1s, interval: 10s, timeout: 1m }\nsteps:\n  song:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }\n";
    let fake = Fake::new(&[(
        "song",
        Script {
            stuck: true,
            ..Script::default()
        },
    )]);
    let started = Instant::now();
    let (summary, events) = run_plan(plan(text), fake, |_| {}).await;
    assert_eq!(summary.failed, 1);
    assert!(
        started.elapsed() >= Duration::from_secs(60) && started.elapsed() < Duration::from_secs(80)
    );
    assert!(
        events.iter().any(
            |e| matches!(e, RunEvent::Failed { error, .. } if error.kind == ErrorKind::Timeout)
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_timeout_names_what_the_task_was_still_waiting_on() {
    let text = "version: 1\nname: t\npoll: { initial_delay: 1s, interval: 10s, timeout: 1m }\nsteps:\n  song:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }\n";
    let waiting = "clip `a` is `succeeded` but its `audio_url` is still empty";
    let fake = Fake::new(&[(
        "song",
        Script {
            stuck: true,
            waiting: Some(waiting),
            ..Script::default()
        },
    )]);
    let (summary, events) = run_plan(plan(text), fake, |_| {}).await;
    assert_eq!(summary.failed, 1);
    let message = events
        .iter()
        .find_map(|e| match e {
            RunEvent::Failed { error, .. } if error.kind == ErrorKind::Timeout => {
                Some(error.message.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(message.contains(waiting), "{message}");
    assert!(message.contains("did not finish in time"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn time_scale_divides_every_duration() {
    let text = "version: 1\nname: t\npoll: { initial_delay: 20s, interval: 15s }\nsteps:\n  song:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }\n";
    let fake = Fake::new(&[(
        "song",
        Script {
            polls_to_finish: 3,
            ..Script::default()
        },
    )]);
    let started = Instant::now();
    run_plan(plan(text), fake, |c| {
        c.time_scale = 100.0;
        c.polls_per_second = 0;
    })
    .await;
    let elapsed = started.elapsed();
    // 20 s + 2 × 15 s = 50 s of schedule, scaled down 100×, with ±10 % jitter.
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed <= Duration::from_millis(600),
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_skips_what_has_not_started_and_finishes_what_is_in_flight() {
    let fake = Fake::new(&[(
        "jazz",
        Script {
            polls_to_finish: 4,
            ..Script::default()
        },
    )]);
    let fixed = COVER.replacen(
        "name: t\n",
        "name: t\npoll: { initial_delay: 20s, interval: 15s }\n",
        1,
    );
    let plan = plan(&fixed);
    let mut config = EngineConfig::from_plan(&plan, 1.0);
    config.grace = Duration::from_secs(120);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let handle = tokio::spawn(run(
        Arc::new(plan),
        fake.clone(),
        Arc::new(Forgetful),
        config,
        tx,
        cancel_rx,
    ));
    // `jazz` is submitted once `upload` answers and takes 20 s + 3 × 15 s to finish.
    tokio::time::sleep(Duration::from_secs(30)).await;
    cancel_tx.send(true).unwrap();
    let summary = handle.await.unwrap();
    assert_eq!(summary.stopped, Some(StopReason::Interrupted));
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    let done = succeeded(&events);
    assert!(
        done.contains(&"jazz".to_owned()),
        "in-flight work is polled to the end: {done:?}"
    );
    assert!(
        !done.iter().any(|d| d.starts_with("stems")),
        "nothing new starts after Ctrl-C"
    );
    assert!(
        events.iter().any(
            |e| matches!(e, RunEvent::Stopping { reason } if *reason == StopReason::Interrupted)
        )
    );
}

/// A memory answering from a table keyed by step id, and recording every
/// record's kind and instance in order.
#[derive(Default)]
struct Table {
    answers: HashMap<String, Recall>,
    records: Mutex<Vec<String>>,
    /// What the run spent before it was resumed.
    spent: Account,
}

impl Memory for Table {
    fn recall(&self, job: &Job) -> Recall {
        self.answers
            .get(&job.id.step_id)
            .cloned()
            .unwrap_or(Recall::New)
    }

    fn record(&self, record: Record<'_>) -> Result<(), String> {
        let line = match record {
            Record::Intent { job, .. } => format!("intent {}", job.id),
            Record::Accepted { job, .. } => format!("accepted {}", job.id),
            Record::Released { job, .. } => format!("released {}", job.id),
            Record::Succeeded {
                job, reused_from, ..
            } => match reused_from {
                Some(_) => format!("reused {}", job.id),
                None => format!("succeeded {}", job.id),
            },
            Record::Failed { job, error, .. } => format!("failed {} {:?}", job.id, error.kind),
            Record::Observed { window } => format!("observed {}", window.seq),
        };
        self.records.lock().unwrap().push(line);
        Ok(())
    }

    fn spent(&self) -> Account {
        self.spent
    }
}

fn submits_of(fake: &Fake) -> Vec<String> {
    let log = fake.log.lock().unwrap();
    let mut names: Vec<String> = log.submits.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    names
}

#[tokio::test(start_paused = true)]
async fn remembered_work_is_reused_or_polled_and_never_sent_again() {
    let fake = Fake::new(&[]);
    let upload = Outputs {
        value: json!({"clip_id": "earlier-upload"}),
        files: Vec::new(),
    };
    let table = Arc::new(Table {
        answers: HashMap::from([
            (
                "upload".to_owned(),
                Recall::Reuse {
                    outputs: upload,
                    from: Some("run-1".into()),
                    credits: 0,
                },
            ),
            (
                "jazz".to_owned(),
                Recall::Attach {
                    task: TaskRef::new("task-jazz-earlier"),
                    from: None,
                    credits: 15,
                },
            ),
            (
                "other".to_owned(),
                Recall::InDoubt {
                    from: None,
                    since: "2026-11-21T00:00:00Z".into(),
                    attempt: Some(1),
                    earlier: Vec::new(),
                },
            ),
        ]),
        // The journal's account of that earlier process: the attached task
        // was charged, the send of `other` is in doubt.
        spent: Account {
            charged: 30,
            in_doubt: 15,
            net: 30,
            ..Account::default()
        },
        ..Table::default()
    });
    let (summary, events) = run_with_memory(plan(COVER), fake.clone(), table.clone(), |_| {}).await;
    // The cover reads the reused upload's clip, and is polled, not sent.
    let submitted = submits_of(&fake);
    assert!(
        submitted
            .iter()
            .all(|s| s.starts_with("stems") || s.starts_with("wav")),
        "only the work nobody paid for yet is sent: {submitted:?}"
    );
    assert_eq!(
        fake.log.lock().unwrap().task_polls.get("task-jazz-earlier"),
        Some(&2)
    );
    assert_eq!(summary.reused, 1);
    assert_eq!(summary.attached, 1);
    assert_eq!(summary.failed, 1, "the request in doubt fails, unsent");
    let failed = events.iter().find_map(|e| match e {
        RunEvent::Failed { id, error, .. } => Some((id.step_id.clone(), error.kind)),
        _ => None,
    });
    assert_eq!(failed, Some(("other".to_owned(), ErrorKind::InDoubt)));
    // Credits of this run's earlier process still count: 15 (attached) + 15 (in doubt).
    let sent: u64 = 2 * price("stems_basic") + 4 * price("wav");
    assert_eq!(summary.credits.charged, 15 + 15 + sent);
    // Each of them was ready once, before anything else was said of it
    // but its creation: sent, reused, attached or held in doubt alike.
    let mut ready = std::collections::HashSet::new();
    for e in &events {
        let (id, is_ready) = match e {
            RunEvent::Ready { id } => (id, true),
            RunEvent::Submitting { id, .. }
            | RunEvent::Reused { id, .. }
            | RunEvent::Attached { id, .. }
            | RunEvent::Failed { id, .. }
            | RunEvent::Succeeded { id, .. } => (id, false),
            _ => continue,
        };
        if is_ready {
            assert!(ready.insert(id.clone()), "{id} ready twice");
        } else {
            assert!(ready.contains(id), "{id}: {e:?} before it was ready");
        }
    }
    assert_eq!(ready.len(), 1 + 1 + 2 + 4 + 1);
    let records = table.records.lock().unwrap().clone();
    assert_eq!(records[0], "reused upload");
    // Every send is preceded by its intent.
    for (i, r) in records.iter().enumerate() {
        if let Some(inst) = r.strip_prefix("accepted ") {
            assert!(
                records[..i].contains(&format!("intent {inst}")),
                "{inst} accepted before its intent: {records:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_submit_that_would_cross_the_cap_is_not_sent() {
    let fake = Fake::new(&[]);
    // A cap of 40 leaves room for the upload, the other song and the cover
    // (2 + 20 + 15), not for a stem split on top.
    let first = price("upload") + price("create_music") + price("cover_upload_music");
    assert!(first <= 40 && first + price("stems_basic") > 40);
    let (summary, events) = run_plan(plan(COVER), fake.clone(), |c| c.max_credits = Some(40)).await;
    assert!(matches!(summary.stopped, Some(StopReason::Budget { .. })));
    let sent = submits_of(&fake);
    assert_eq!(sent, vec!["jazz", "other", "upload"], "{sent:?}");
    assert_eq!(summary.credits.charged, first);
    let stop = events.iter().find_map(|e| match e {
        RunEvent::Stopping { reason } => Some(reason.to_string()),
        _ => None,
    });
    assert!(
        stop.as_deref().is_some_and(|r| r
            .contains(&format!("needs {} credits", price("stems_basic")))
            && r.contains("40-credit cap")),
        "{stop:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn unselected_steps_are_left_out_without_counting_as_skipped() {
    let fake = Fake::new(&[]);
    let mut p = plan(COVER);
    crate::plan::select::apply(
        &mut p,
        &crate::plan::select::Selection {
            select: vec!["other".into()],
            exclude: Vec::new(),
            shard: None,
        },
    )
    .unwrap();
    let (summary, _) = run_plan(p, fake.clone(), |_| {}).await;
    assert_eq!(submits_of(&fake), vec!["other"]);
    assert_eq!(summary.skipped, 0);
    assert_eq!(
        summary.unselected, 4,
        "upload, jazz, and the stems and wav fan-outs that never expanded"
    );
}

/// An earlier result (of run `from`, or of this run) that has no files.
fn reuse_without_files(from: Option<&str>) -> Recall {
    Recall::Reuse {
        outputs: Outputs {
            value: json!({"clip_id": "earlier", "clips": [], "audio_url": "http://x/a.mp3"}),
            files: Vec::new(),
        },
        from: from.map(str::to_owned),
        credits: 0,
    }
}

#[tokio::test(start_paused = true)]
async fn a_reused_result_gets_its_files_when_the_run_downloads() {
    let answers = || {
        HashMap::from([
            ("upload".to_owned(), reuse_without_files(Some("run-1"))),
            ("other".to_owned(), reuse_without_files(None)),
        ])
    };
    let files_of = |events: &[RunEvent], step: &str| {
        events.iter().find_map(|e| match e {
            RunEvent::Reused { id, outputs, .. } if id.step_id == step => Some(outputs.files.len()),
            _ => None,
        })
    };

    // Downloads work: both reused results arrive with their files.
    let fake = Fake::with_files(&[]);
    let table = Arc::new(Table {
        answers: answers(),
        ..Table::default()
    });
    let (summary, events) = run_with_memory(plan(COVER), fake.clone(), table, |_| {}).await;
    assert_eq!(summary.failed, 0);
    assert_eq!(files_of(&events, "upload"), Some(1));
    assert_eq!(files_of(&events, "other"), Some(1));
    assert!(
        !submits_of(&fake)
            .iter()
            .any(|s| s == "upload" || s == "other")
    );

    // Downloads fail: another run's result fails here, and the run's own
    // paid result is kept without files rather than failed (a failure would
    // make the next resume pay for it again).
    let fails = Script {
        fetch_fails: true,
        ..Script::default()
    };
    let fake = Fake::with_files(&[("upload", fails.clone()), ("other", fails)]);
    let table = Arc::new(Table {
        answers: answers(),
        ..Table::default()
    });
    let (summary, events) = run_with_memory(plan(COVER), fake.clone(), table.clone(), |_| {}).await;
    assert!(
        submits_of(&fake).is_empty(),
        "nothing is sent: {:?}",
        submits_of(&fake)
    );
    assert_eq!(files_of(&events, "upload"), None);
    assert_eq!(files_of(&events, "other"), Some(0));
    let records = table.records.lock().unwrap().clone();
    assert!(
        records.contains(&"failed upload Local".to_owned()),
        "{records:?}"
    );
    assert!(records.contains(&"reused other".to_owned()), "{records:?}");
    assert_eq!((summary.failed, summary.succeeded), (1, 1));

    // Without downloads, nothing is fetched.
    let fake = Fake::new(&[(
        "upload",
        Script {
            fetch_fails: true,
            ..Script::default()
        },
    )]);
    let table = Arc::new(Table {
        answers: answers(),
        ..Table::default()
    });
    let (summary, events) = run_with_memory(plan(COVER), fake, table, |_| {}).await;
    assert_eq!(summary.failed, 0);
    assert_eq!(files_of(&events, "upload"), Some(0));
}

#[tokio::test(start_paused = true)]
async fn downloads_of_reused_results_stop_with_the_run_and_never_undo_a_paid_result() {
    let stuck = Script {
        stuck: true,
        ..Script::default()
    };
    let fake = Fake::with_files(&[("upload", stuck.clone()), ("other", stuck)]);
    let table = Arc::new(Table {
        answers: HashMap::from([
            ("upload".to_owned(), reuse_without_files(Some("run-1"))),
            ("other".to_owned(), reuse_without_files(None)),
        ]),
        ..Table::default()
    });
    let plan = plan(COVER);
    let config = EngineConfig::from_plan(&plan, 1.0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let handle = tokio::spawn(run(
        Arc::new(plan),
        fake.clone(),
        table.clone(),
        config,
        tx,
        cancel_rx,
    ));
    tokio::time::sleep(Duration::from_secs(30)).await;
    cancel_tx.send(true).unwrap();
    // The downloads never end by themselves; Ctrl-C ends the run at once.
    let summary = tokio::time::timeout(Duration::from_secs(1), handle)
        .await
        .expect("the run ends without waiting for the grace period")
        .unwrap();
    assert_eq!(summary.stopped, Some(StopReason::Interrupted));
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    let records = table.records.lock().unwrap().clone();
    // This run's own paid result stays a success (without files); another
    // run's result is skipped, nothing recorded against it.
    assert_eq!(records, vec!["reused other".to_owned()], "{records:?}");
    let skipped = events.iter().find_map(|e| match e {
        RunEvent::Skipped { id, reason } if id.step_id == "upload" => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(
        skipped.as_deref(),
        Some("files not fetched: the run stopped (interrupted)")
    );
    assert!(submits_of(&fake).is_empty());
}

/// What the instances reading `jazz` would ask if it had given these
/// outputs: the `stems` fan-out over its clips (not yet expanded), one per
/// clip; nothing for `wav`, whose list `stems` has not given yet.
#[test]
fn dependents_if_gives_the_requests_a_result_would_lead_to() {
    let plan = plan(COVER);
    let (mut graph, created) = graph::Graph::new(&plan);
    let id_of = |graph: &graph::Graph<'_>, step: &str| {
        created
            .iter()
            .copied()
            .find(|&i| graph.id(i).step_id == step)
            .unwrap()
    };
    let upload = id_of(&graph, "upload");
    graph.succeed(upload, json!({"clip_id": "up"}));
    let jazz = id_of(&graph, "jazz");
    let outputs = json!({"clip_id": "a", "clips": [{"clip_id": "a"}, {"clip_id": "b"}]});
    let got: Vec<(String, serde_json::Value)> = graph
        .dependents_if(jazz, &outputs)
        .into_iter()
        .map(|(id, fields)| (id.to_string(), fields["clip"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("stems[0]".to_owned(), json!("a")),
            ("stems[1]".to_owned(), json!("b"))
        ]
    );
    // The reader of `upload` exists already and sees the outputs given, not its own.
    let readers = graph.dependents_if(upload, &json!({"clip_id": "other"}));
    let readers: Vec<(String, serde_json::Value)> = readers
        .into_iter()
        .map(|(id, fields)| (id.to_string(), fields["clip"].clone()))
        .collect();
    assert_eq!(readers, [("jazz".to_owned(), json!("other"))]);
    // Nothing is created or changed by asking.
    assert_eq!(graph.len(), created.len());
    assert_eq!(graph.standing(jazz), &graph::Standing::Pending);
}

#[tokio::test(start_paused = true)]
async fn a_retry_names_the_attempt_that_failed_and_the_next_is_one_more() {
    let fake = Fake::new(&[(
        "upload",
        Script {
            submit_errors: vec![ErrorKind::Transient, ErrorKind::Transient],
            ..Script::default()
        },
    )]);
    let (summary, events) = run_plan(plan(COVER), fake, |_| {}).await;
    assert_eq!(summary.failed, 0);
    let upload = |e: &&RunEvent| match e {
        RunEvent::Retrying { id, .. } | RunEvent::Submitting { id, .. } => id.step_id == "upload",
        _ => false,
    };
    let attempts: Vec<(&str, u32)> = events
        .iter()
        .filter(upload)
        .map(|e| match e {
            RunEvent::Retrying { attempt, .. } => ("retrying", *attempt),
            RunEvent::Submitting { attempt, .. } => ("submitting", *attempt),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        attempts,
        [
            ("submitting", 1),
            ("retrying", 1),
            ("submitting", 2),
            ("retrying", 2),
            ("submitting", 3)
        ]
    );
}

const TWO_SONGS: &str = "version: 1\nname: t\ndefaults: { mv: sonic-v5 }\nsteps:\n  a:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: one }\n  b:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: two }\n";

#[tokio::test(start_paused = true)]
async fn a_reservation_refused_by_a_429_gives_its_room_back_before_the_cap_stops_the_run() {
    // `b` goes first and is throttled; `a` waits for that answer instead of
    // stopping the run on a reservation that is then released.
    let fake = Fake::new(&[(
        "b",
        Script {
            submit_errors: vec![ErrorKind::RateLimited],
            polls_to_finish: 1,
            ..Script::default()
        },
    )]);
    let song = price("create_music");
    let (summary, events) = run_plan(plan(TWO_SONGS), fake.clone(), |c| {
        c.max_credits = Some(song);
    })
    .await;
    assert!(matches!(summary.stopped, Some(StopReason::Budget { .. })));
    assert_eq!(summary.succeeded, 1, "{events:?}");
    assert_eq!(
        summary.credits.charged, song,
        "the cap is spent, not passed"
    );
    assert!(
        !events.iter().any(|e| matches!(e, RunEvent::Skipped { reason, .. } if reason.starts_with("retry not sent"))),
        "{events:?}"
    );
}

fn unmet(events: &[RunEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Unmet { id, reason } => Some(format!("{id}: {reason}")),
            _ => None,
        })
        .collect()
}

fn submitted(events: &[RunEvent]) -> Vec<String> {
    let mut names: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Submitting { id, .. } => Some(id.to_string()),
            _ => None,
        })
        .collect();
    names.sort();
    names
}

/// Stems only for the rows with vocals, and a WAV of each stem.
const VOCALS: &str = "version: 1\nname: t\ndefaults: { mv: sonic-v5 }\nmatrix:\n  key: id\n  rows:\n    - { id: rain, vocals: false }\n    - { id: drive, vocals: true }\nsteps:\n  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: x }\n  split:\n    action: stems_basic\n    if: ${{ matrix.vocals }}\n    with: { clip: '${{ steps.song.outputs.clip_id }}' }\n  wav:\n    action: wav\n    for_each: ${{ steps.split.outputs.stems }}\n    with: { clip: '${{ item.clip_id }}' }\n  mix:\n    action: wav\n    needs: [split]\n    with: { clip: '${{ steps.song.outputs.clip_id }}' }\n";

#[tokio::test(start_paused = true)]
async fn a_false_condition_skips_its_instance_and_dependents_without_failing_the_run() {
    let fake = Fake::new(&[]);
    let (summary, events) = run_plan(plan(VOCALS), fake, |_| {}).await;
    assert_eq!(
        unmet(&events),
        vec![
            "split[rain]: its condition `matrix.vocals` is false".to_owned(),
            "wav[rain]: `split[rain]` was skipped (condition)".to_owned(),
            "mix[rain]: `split[rain]` was skipped (condition)".to_owned(),
        ]
    );
    assert_eq!(
        submitted(&events),
        [
            "mix[drive]",
            "song[drive]",
            "song[rain]",
            "split[drive]",
            "wav[drive/0]",
            "wav[drive/1]"
        ]
    );
    assert_eq!((summary.failed, summary.skipped, summary.unmet), (0, 0, 3));
    assert_eq!(summary.outcome(), RunOutcome::Succeeded);
    let unit = |op| price(op);
    assert_eq!(
        summary.credits.charged,
        2 * unit("create_music") + unit("stems_basic") + 3 * unit("wav")
    );
}

/// A WAV only where the lyrics line up: known once `align` has run.
const ALIGNED: &str = "version: 1\nname: t\ndefaults: { mv: sonic-v5 }\nmatrix:\n  key: id\n  rows: [{ id: wet }, { id: dry }]\nsteps:\n  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: x }\n  align:\n    action: lyrics_timeline\n    with: { clip: '${{ steps.song.outputs.clip_id }}' }\n  wav:\n    action: wav\n    if: steps.align.outputs.alignment[0].success\n    with: { clip: '${{ steps.song.outputs.clip_id }}' }\n";

#[tokio::test(start_paused = true)]
async fn a_condition_on_an_output_waits_for_it_and_decides_per_row() {
    let plan = plan(ALIGNED);
    let wav = plan.steps.iter().find(|s| s.id == "wav").unwrap();
    assert!(
        wav.deps.iter().any(|&d| plan.steps[d].id == "align"),
        "what the condition reads is a dependency"
    );
    assert!(plan.total_at_most());
    let fake = Fake::new(&[]);
    let (summary, events) = run_plan(plan, fake, |_| {}).await;
    assert_eq!(
        unmet(&events),
        vec![
            "wav[dry]: its condition `steps.align.outputs.alignment[0].success` is false"
                .to_owned()
        ]
    );
    assert!(submitted(&events).contains(&"wav[wet]".to_owned()));
    assert_eq!(summary.outcome(), RunOutcome::Succeeded);
}

/// A cover of each take, then one mashup of every cover: a fan-in.
fn fan_in(on_missing: &str) -> String {
    format!(
        "version: 1\nname: t\ndefaults: {{ mv: sonic-v5 }}\nsteps:\n  song:\n    action: create\n    with: {{ custom_mode: false, gpt_description_prompt: x }}\n  cover:\n    action: cover\n    for_each: ${{{{ steps.song.outputs.clips }}}}\n    with: {{ clip: '${{{{ item.clip_id }}}}', custom_mode: false, gpt_description_prompt: jazz }}\n  both:\n    action: mashup\n    on_missing: {on_missing}\n    with: {{ clips: '${{{{ steps.cover.outputs[*].clip_id }}}}', custom_mode: false, gpt_description_prompt: blend }}\n"
    )
}

#[tokio::test(start_paused = true)]
async fn a_fan_in_runs_once_after_every_instance_with_their_outputs_in_order() {
    let plan = plan(&fan_in("fail"));
    let both = plan.steps.iter().find(|s| s.id == "both").unwrap();
    assert!(
        both.axis.is_empty(),
        "a fan-in does not inherit the fan-out"
    );
    let fake = Fake::new(&[]);
    let (summary, events) = run_plan(plan, fake, |_| {}).await;
    assert_eq!(summary.failed, 0);
    assert_eq!(
        submitted_fields(&events, "both"),
        vec![
            json!({"clips": ["cover-0-c0", "cover-1-c0"], "custom_mode": false, "gpt_description_prompt": "blend", "mv": "sonic-v5"})
        ]
    );
    let order: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Succeeded { id, .. } => Some(id.to_string()),
            RunEvent::Submitting { id, .. } if id.step_id == "both" => Some("both sent".to_owned()),
            _ => None,
        })
        .collect();
    let sent = order.iter().position(|n| n == "both sent").unwrap();
    let covers = order.iter().filter(|n| n.starts_with("cover")).count();
    assert_eq!(covers, 2);
    assert!(
        order[..sent]
            .iter()
            .filter(|n| n.starts_with("cover"))
            .count()
            == 2,
        "the fan-in waits for every cover: {order:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_instance_fails_a_fan_in_or_is_left_out_as_the_step_says() {
    let broken = || {
        Fake::new(&[(
            "cover[0]",
            Script {
                submit_errors: vec![ErrorKind::Invalid],
                ..Script::default()
            },
        )])
    };
    let (summary, events) = run_plan(plan(&fan_in("fail")), broken(), |_| {}).await;
    assert!(submitted_fields(&events, "both").is_empty());
    let skipped: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Skipped { id, reason } => Some(format!("{id}: {reason}")),
            _ => None,
        })
        .collect();
    assert_eq!(skipped, vec!["both: `cover[0]` failed".to_owned()]);
    assert_eq!(summary.failed, 1);

    let (_, events) = run_plan(plan(&fan_in("skip")), broken(), |_| {}).await;
    assert_eq!(
        submitted_fields(&events, "both")[0]["clips"],
        json!(["cover-1-c0"]),
        "the failed cover is left out"
    );
}

#[tokio::test(start_paused = true)]
async fn instances_give_each_instance_s_item_and_outputs_together() {
    let yaml = fan_in("fail").replace(
        "  both:\n    action: mashup\n    on_missing: fail\n    with: { clips: '${{ steps.cover.outputs[*].clip_id }}', custom_mode: false, gpt_description_prompt: blend }\n",
        "  pick:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: 'from ${{ steps.cover.instances[1].item.clip_id }} to ${{ steps.cover.instances[1].outputs.clip_id }}' }\n",
    );
    let fake = Fake::new(&[]);
    let (summary, events) = run_plan(plan(&yaml), fake, |_| {}).await;
    assert_eq!(summary.failed, 0);
    let fields = submitted_fields(&events, "pick");
    assert_eq!(fields.len(), 1, "runs once, after every cover");
    assert_eq!(
        fields[0]["gpt_description_prompt"], "from song---c1 to cover-1-c0",
        "the item it ran for, beside what it gave"
    );
}

/// A memory for runs sharing a state: another run pays for the steps in
/// `theirs`, whose answers `later` holds once that run is done.
struct SharedWith {
    theirs: Vec<&'static str>,
    later: HashMap<String, Recall>,
    /// Until when the other run is at work (in the paused test clock).
    done_after: std::time::Duration,
    shares: Mutex<Vec<String>>,
}

impl Memory for SharedWith {
    fn recall(&self, _job: &Job) -> Recall {
        Recall::New
    }

    fn record(&self, _record: Record<'_>) -> Result<(), String> {
        Ok(())
    }

    fn share(&self, job: &Job) -> Share {
        self.shares.lock().unwrap().push(job.id.to_string());
        if self.theirs.contains(&job.id.step_id.as_str()) {
            Share::Wait(Box::pin(tokio::time::sleep(self.done_after)))
        } else {
            Share::Pay
        }
    }

    fn recall_again(&self, job: &Job) -> Recall {
        self.later
            .get(&job.id.step_id)
            .cloned()
            .unwrap_or(Recall::New)
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_another_run_pays_for_is_waited_for_and_taken_without_holding_up_the_rest() {
    let fake = Fake::new(&[]);
    let upload = Outputs {
        value: json!({"clip_id": "their-upload"}),
        files: Vec::new(),
    };
    let memory = Arc::new(SharedWith {
        theirs: vec!["upload"],
        later: HashMap::from([(
            "upload".to_owned(),
            Recall::Reuse {
                outputs: upload,
                from: Some("shard-1".into()),
                credits: 0,
            },
        )]),
        done_after: std::time::Duration::from_secs(600),
        shares: Mutex::new(Vec::new()),
    });
    let (summary, events) = run_with_memory(plan(COVER), fake.clone(), memory.clone(), |c| {
        c.max_in_flight = 1
    })
    .await;
    // The upload was never sent here; the cover read the other run's clip.
    let submitted = submits_of(&fake);
    assert!(!submitted.iter().any(|s| s == "upload"), "{submitted:?}");
    assert!(submitted.iter().any(|s| s == "jazz"), "{submitted:?}");
    let jazz = submitted_fields(&events, "jazz");
    assert_eq!(jazz[0]["clip"], "their-upload");
    assert_eq!(summary.reused, 1);
    assert_eq!(summary.failed, 0);
    // While the upload waited, with one slot in flight, `other` was sent:
    // a wait holds no send slot.
    let order: Vec<&RunEvent> = events
        .iter()
        .filter(|e| matches!(e, RunEvent::Submitting { .. } | RunEvent::Reused { .. }))
        .collect();
    assert!(
        matches!(order.first(), Some(RunEvent::Submitting { id, .. }) if id.step_id == "other"),
        "{order:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_wait_for_another_run_ends_as_skipped_when_the_run_is_stopped() {
    let fake = Fake::new(&[]);
    let memory = Arc::new(SharedWith {
        theirs: vec!["upload", "other"],
        later: HashMap::new(),
        done_after: std::time::Duration::from_secs(3600),
        shares: Mutex::new(Vec::new()),
    });
    let mut config = EngineConfig::from_plan(&plan(COVER), 1.0);
    config.grace = std::time::Duration::from_secs(1);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let run = tokio::spawn(run(
        Arc::new(plan(COVER)),
        fake.clone(),
        memory,
        config,
        tx,
        cancel_rx,
    ));
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    cancel_tx.send(true).unwrap();
    let summary = run.await.unwrap();
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    assert!(submits_of(&fake).is_empty());
    assert_eq!(summary.failed, 0, "nothing this run sent failed");
    let skipped: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Skipped { id, reason } if reason.contains("the run stopped") => {
                Some(id.step_id.clone())
            }
            _ => None,
        })
        .collect();
    assert!(
        skipped.contains(&"upload".to_owned()) && skipped.contains(&"other".to_owned()),
        "{skipped:?}"
    );
}

/// The order requests reached the fake, by instance name.
fn send_order(fake: &Fake) -> Vec<String> {
    let log = fake.log.lock().unwrap();
    log.submits.iter().map(|(n, _)| n.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn ready_work_with_the_longest_chain_behind_it_goes_first() {
    // Written as the run benchmark writes it: the instant `wav` after the
    // minutes-long `stems`, and a lone song after the song that unlocks stems.
    let text = "version: 1\nname: t\ndefaults: { mv: sonic-v5 }\nsteps:\n  base:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: base }\n  stems:\n    action: stems_basic\n    for_each: ${{ steps.base.outputs.clips }}\n    with: { clip: '${{ item.clip_id }}' }\n  wav:\n    action: wav\n    for_each: ${{ steps.base.outputs.clips }}\n    with: { clip: '${{ item.clip_id }}' }\n  lone:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: lone }\n";
    let fake = Fake::new(&[]);
    // One request at a time, so the queue's order is the order sent.
    let (summary, _) = run_plan(plan(text), fake.clone(), |c| c.max_in_flight = 1).await;
    assert_eq!(summary.failed, 0);
    let order = send_order(&fake);
    let at = |name: &str| order.iter().position(|n| n == name).unwrap();
    assert!(
        at("base") < at("lone"),
        "the song stems wait on first: {order:?}"
    );
    for clip in ["0", "1"] {
        assert!(
            at(&format!("stems[{clip}]")) < at(&format!("wav[{clip}]")),
            "stems before the instant wav: {order:?}"
        );
    }
}
