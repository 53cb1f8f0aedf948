//! Observed charges in the driver, under paused time, against a fake
//! service that takes the charge halfway through each submit's exchange and
//! gives refunds back while a poll is being answered: whatever overlaps,
//! every charge attributed to one request is what that request was charged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::observe::{Window, attribute};
use super::*;
use crate::plan::from_yaml as plan;

/// A fake service with a balance.
struct Billing {
    balance: Arc<Mutex<u64>>,
    prices: BTreeMap<&'static str, u64>,
    /// How long a submit's exchange takes (the charge lands halfway).
    exchange: Duration,
    /// Steps whose first task fails.
    failing: Vec<&'static str>,
    /// What each request was really charged: `(instance, attempt)` → credits.
    charges: Mutex<BTreeMap<(String, u32), u64>>,
    polls: Mutex<BTreeMap<String, u32>>,
    /// Balance reads that fail: the n-th reads (from 1).
    failing_reads: Vec<u32>,
    reads: Mutex<u32>,
    /// Operations whose exchange takes this long instead (answered only
    /// after work on the service, as a synchronous upload is).
    slow: BTreeMap<&'static str, Duration>,
    /// When each submit was sent and answered, by instance.
    sent: Mutex<BTreeMap<String, (tokio::time::Instant, tokio::time::Instant)>>,
}

impl Billing {
    fn new(exchange: Duration) -> Billing {
        Billing {
            balance: Arc::new(Mutex::new(10_000)),
            prices: BTreeMap::from([("create_music", 20), ("wav", 2)]),
            exchange,
            failing: Vec::new(),
            charges: Mutex::new(BTreeMap::new()),
            polls: Mutex::new(BTreeMap::new()),
            failing_reads: Vec::new(),
            reads: Mutex::new(0),
            slow: BTreeMap::new(),
            sent: Mutex::new(BTreeMap::new()),
        }
    }
}

impl StepExecutor for Billing {
    async fn submit(&self, job: &Job) -> Result<Submission, StepError> {
        let started = tokio::time::Instant::now();
        let exchange = self
            .slow
            .get(job.operation)
            .copied()
            .unwrap_or(self.exchange);
        tokio::time::sleep(exchange / 2).await;
        let price = self.prices[job.operation];
        *self.balance.lock().unwrap() -= price;
        let key = (job.id.to_string(), job.attempt);
        self.charges.lock().unwrap().insert(key, price);
        tokio::time::sleep(exchange / 2).await;
        let span = (started, tokio::time::Instant::now());
        self.sent.lock().unwrap().insert(job.id.to_string(), span);
        if job.operation == "upload" {
            let value = json!({ "clip_id": format!("{}-up", job.id) });
            return Ok(Submission::Done(Outputs {
                value,
                files: Vec::new(),
            }));
        }
        if job.operation == "wav" {
            let value = json!({ "wav_url": format!("http://x/{}.wav", job.id) });
            return Ok(Submission::Done(Outputs {
                value,
                files: Vec::new(),
            }));
        }
        Ok(Submission::Task(TaskRef::new(format!(
            "t-{}-{}",
            job.id, job.attempt
        ))))
    }

    async fn poll(&self, job: &Job, task: &TaskRef) -> Result<PollOutcome, StepError> {
        let n = {
            let mut polls = self.polls.lock().unwrap();
            let n = polls.entry(task.id.clone()).or_default();
            *n += 1;
            *n
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        if n < 2 {
            return Ok(PollOutcome::Pending { waiting: None });
        }
        if job.attempt == 1 && self.failing.contains(&job.id.step_id.as_str()) {
            *self.balance.lock().unwrap() += self.prices[job.operation];
            return Ok(PollOutcome::Failed {
                message: "generation failed".into(),
            });
        }
        let clip = |i: usize| json!({"clip_id": format!("{}-c{i}", job.id), "title": "t", "audio_url": "u", "duration": 1.0});
        Ok(PollOutcome::Done(Outputs {
            value: json!({ "clips": [clip(0), clip(1)], "clip_id": format!("{}-c0", job.id) }),
            files: Vec::new(),
        }))
    }

    async fn balance(&self) -> Result<u64, String> {
        let n = {
            let mut reads = self.reads.lock().unwrap();
            *reads += 1;
            *reads
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let balance = *self.balance.lock().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        if self.failing_reads.contains(&n) {
            return Err("500".into());
        }
        Ok(balance)
    }
}

/// Four songs, each with a WAV of both its clips: creates and WAVs overlap.
const SONGS: &str = "version: 1\nname: t\nlimits: { max_in_flight: 8, submits_per_minute: 600 }\npoll: { initial_delay: 1s, interval: 1s, timeout: 10m }\nretry: { attempts: 2, backoff: { initial: 1s, max: 1s } }\nmatrix:\n  key: id\n  rows: [{id: a}, {id: b}, {id: c}, {id: d}]\nsteps:\n  song:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }\n  wav:\n    action: wav\n    for_each: ${{ steps.song.outputs.clips }}\n    with: { clip: '${{ item.clip_id }}' }\n";

async fn observe(fake: Arc<Billing>, text: &str) -> (Summary, Vec<Window>) {
    let plan = plan(text);
    let mut config = EngineConfig::from_plan(&plan, 1.0);
    config.observe_charges = true;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_cancel, cancel_rx) = watch::channel(false);
    let summary = run::run(
        Arc::new(plan),
        fake,
        Arc::new(Forgetful),
        config,
        tx,
        cancel_rx,
    )
    .await;
    let mut windows = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let RunEvent::Observed { window } = e {
            windows.push(window);
        }
    }
    (summary, windows)
}

#[tokio::test(start_paused = true)]
async fn overlapping_submits_are_never_given_another_requests_charge() {
    // An exchange longer than the submit spacing: submits overlap.
    let mut billing = Billing::new(Duration::from_millis(300));
    billing.failing = vec!["song"];
    let fake = Arc::new(billing);
    let start = *fake.balance.lock().unwrap();
    let (summary, windows) = observe(Arc::clone(&fake), SONGS).await;
    assert_eq!((summary.succeeded, summary.failed), (4 + 8, 0));
    let obs = attribute(&windows);
    let truth = fake.charges.lock().unwrap().clone();
    let mut attributed = 0;
    for (key, charge) in &obs.attempts {
        if let Some(c) = charge.charged {
            assert_eq!(Some(&c), truth.get(key), "{key:?} in {windows:#?}");
            attributed += 1;
        }
        if let Some(r) = charge.refunded {
            assert_eq!(key.1, 1, "only first attempts failed: {key:?}");
            assert_eq!(Some(&r), truth.get(key), "the refund of {key:?}");
        }
    }
    assert!(attributed > 0, "{windows:#?}");
    // Every request of the run is accounted for, on its own or shared.
    assert_eq!(obs.attempts.len(), truth.len());
    let end = *fake.balance.lock().unwrap();
    assert_eq!(obs.spent, start as i64 - end as i64);
    assert!(obs.unattributed.is_empty(), "{:?}", obs.unattributed);
    assert!(obs.unknown.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_balance_read_widens_its_window_and_guesses_nothing() {
    let mut billing = Billing::new(Duration::from_millis(10));
    // The reads after the first two submits fail.
    billing.failing_reads = vec![2, 3];
    let fake = Arc::new(billing);
    let start = *fake.balance.lock().unwrap();
    let (summary, windows) = observe(Arc::clone(&fake), SONGS).await;
    assert_eq!(summary.failed, 0);
    let obs = attribute(&windows);
    assert_eq!(obs.failed_reads, 2);
    let truth = fake.charges.lock().unwrap().clone();
    for (key, charge) in &obs.attempts {
        if let Some(c) = charge.charged {
            assert_eq!(Some(&c), truth.get(key), "{key:?}");
        }
    }
    let end = *fake.balance.lock().unwrap();
    assert_eq!(obs.spent, start as i64 - end as i64);
}

#[tokio::test(start_paused = true)]
async fn spending_by_someone_else_while_only_polls_run_is_unattributed() {
    let fake = Arc::new(Billing::new(Duration::from_millis(10)));
    let balance = Arc::clone(&fake.balance);
    let one = "version: 1\nname: t\npoll: { initial_delay: 5s, interval: 5s, timeout: 10m }\nsteps:\n  song:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }\n";
    let intruder = tokio::spawn(async move {
        // Long after the submit, before the task is seen done.
        tokio::time::sleep(Duration::from_secs(2)).await;
        *balance.lock().unwrap() -= 7;
    });
    let (summary, windows) = observe(Arc::clone(&fake), one).await;
    intruder.await.unwrap();
    assert_eq!(summary.succeeded, 1);
    let obs = attribute(&windows);
    assert_eq!(obs.unattributed_spent(), 7, "{windows:#?}");
    assert_eq!(obs.attempts[&("song".to_owned(), 1)].charged, Some(20));
    assert_eq!(
        obs.operations["create_music"].observed,
        BTreeMap::from([(20, 1)])
    );
}

/// Per row, a synchronous upload (answered after 5 s) beside a song.
const UPLOADS_AND_SONGS: &str = "version: 1\nname: t\nlimits: { max_in_flight: 8, submits_per_minute: 600, quick_calls_per_minute: 600 }\npoll: { initial_delay: 1s, interval: 1s, timeout: 10m }\nmatrix:\n  key: id\n  rows: [{id: a}, {id: b}, {id: c}, {id: d}]\nsteps:\n  source:\n    action: upload\n    with: { url: 'https://example.com/a.mp3' }\n  song:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }\n";

#[tokio::test(start_paused = true)]
async fn a_slow_synchronous_upload_holds_no_other_submit_back_and_every_charge_stays_exact() {
    let mut billing = Billing::new(Duration::from_millis(10));
    billing.prices.insert("upload", 2);
    billing.slow.insert("upload", Duration::from_secs(5));
    let fake = Arc::new(billing);
    let start = *fake.balance.lock().unwrap();
    let (summary, windows) = observe(Arc::clone(&fake), UPLOADS_AND_SONGS).await;
    assert_eq!((summary.succeeded, summary.failed), (8, 0));
    // Every song went out while the first upload was still on the wire:
    // no balance read waited for it with the songs queued behind.
    let sent = fake.sent.lock().unwrap().clone();
    let first_upload_answered = sent
        .iter()
        .filter(|(id, _)| id.starts_with("source"))
        .map(|(_, (_, answered))| *answered)
        .min()
        .unwrap();
    for (id, (started, _)) in sent.iter().filter(|(id, _)| id.starts_with("song")) {
        assert!(
            *started < first_upload_answered,
            "`{id}` waited for an upload: {sent:#?}"
        );
    }
    // No upload left before the opening read: each was sent in a window
    // that has a balance on both sides.
    for s in windows.iter().flat_map(|w| &w.submits) {
        if let Some(since) = s.since {
            assert!(
                windows.iter().any(|w| w.seq == since && w.before.is_some()),
                "`{}` was sent in window {since}, before a known balance: {windows:#?}",
                s.inst
            );
        }
    }
    let obs = attribute(&windows);
    let truth = fake.charges.lock().unwrap().clone();
    for (key, charge) in &obs.attempts {
        if let Some(c) = charge.charged {
            assert_eq!(Some(&c), truth.get(key), "{key:?} in {windows:#?}");
        }
    }
    // Every request is accounted for: on its own, or in a group whose
    // change is shown as shared (a song sent while an upload was on the
    // wire cannot be told from the upload's charge).
    assert_eq!(obs.attempts.len(), truth.len());
    let shared: usize = obs.shared.iter().map(|g| g.requests.len()).sum();
    let known = obs
        .attempts
        .values()
        .filter(|a| a.charged.is_some())
        .count();
    assert_eq!(known + shared, truth.len(), "{windows:#?}");
    let end = *fake.balance.lock().unwrap();
    assert_eq!(obs.spent, start as i64 - end as i64);
    assert!(obs.unattributed.is_empty(), "{:?}", obs.unattributed);
}
