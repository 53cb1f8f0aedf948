//! The hand-written scripts a user would otherwise run, for the run
//! benchmark to compare sonicflow with: the same rows, the same requests,
//! against the same sandbox, written the way public integration code is.
//!
//! - `per-row`: a task per matrix row, all rows at once, sharing one
//!   pacer for the paced submits (every generation submit, or every paid
//!   call when the sandbox's slot is shared): upload → cover → poll until
//!   done → for each clip, stems_basic and wav → poll every stems task.
//! - `stage-by-stage`: every upload, then every cover, then polls until
//!   all covers are done, then every stems_basic and wav, then polls until
//!   all stems are done.
//!
//! Both use plain reqwest, poll on the manifest's fixed schedule (first
//! after 20 s, then every 15 s, scaled), pace with the same 5 % spare the
//! runner starts from, and on a 429 wait a period and send again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

/// What a script did, for the benchmark to report.
#[derive(Debug, Default)]
pub struct Outcome {
    pub makespan: f64,
    /// Accepted submits of each class: generation (cover, stems) and quick (upload, wav).
    pub generation: f64,
    pub quick: f64,
    pub polls: f64,
    pub throttled: u64,
    /// Rows whose every step succeeded.
    pub rows_done: usize,
}

/// Which script to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    PerRow,
    StageByStage,
}

impl Script {
    pub fn parse(name: &str) -> Option<Script> {
        match name {
            "per-row" => Some(Script::PerRow),
            "stage-by-stage" => Some(Script::StageByStage),
            _ => None,
        }
    }
}

/// One pacer for every paced submit of the script: each waits its turn,
/// a period (and the spare) after the one before it.
struct Pacer {
    next: Mutex<Option<Instant>>,
    period: Duration,
}

impl Pacer {
    async fn turn(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.period);
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
    pacer: Pacer,
    /// Every paid call takes the pacer, not just generation submits.
    shared: bool,
    first_poll: Duration,
    interval: Duration,
    generation: AtomicU64,
    quick: AtomicU64,
    polls: AtomicU64,
    throttled: AtomicU64,
}

type Failed = String;

impl Api {
    /// POSTs `body` to `path`, taking the pacer first when the call is
    /// paced; on a 429 waits a period and sends again.
    async fn post(&self, path: &str, body: &Value, generation: bool) -> Result<Value, Failed> {
        loop {
            if generation || self.shared {
                self.pacer.turn().await;
            }
            let answer = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.key)
                .json(body)
                .send()
                .await
                .map_err(|e| format!("{path}: {e}"))?;
            let status = answer.status();
            let value: Value = answer.json().await.map_err(|e| format!("{path}: {e}"))?;
            if status.as_u16() == 429 {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(self.pacer.period).await;
                continue;
            }
            if !status.is_success() {
                return Err(format!("{path}: {status} {value}"));
            }
            let counter = if generation {
                &self.generation
            } else {
                &self.quick
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return Ok(value);
        }
    }

    /// Polls a task on the fixed schedule until every clip succeeded; its clips.
    async fn wait(&self, task_id: &str) -> Result<Vec<Value>, Failed> {
        tokio::time::sleep(self.first_poll).await;
        loop {
            self.polls.fetch_add(1, Ordering::Relaxed);
            let answer: Value = self
                .http
                .get(format!("{}/api/v1/sonic/task/{task_id}", self.base))
                .bearer_auth(&self.key)
                .send()
                .await
                .map_err(|e| format!("poll {task_id}: {e}"))?
                .json()
                .await
                .map_err(|e| format!("poll {task_id}: {e}"))?;
            let clips = answer["data"].as_array().cloned().unwrap_or_default();
            let state = |c: &Value| c["state"].as_str().unwrap_or("").to_owned();
            if clips.iter().any(|c| state(c) == "failed") {
                return Err(format!("task {task_id} failed"));
            }
            if !clips.is_empty() && clips.iter().all(|c| state(c) == "succeeded") {
                return Ok(clips);
            }
            tokio::time::sleep(self.interval).await;
        }
    }

    async fn upload(&self, row: usize) -> Result<String, Failed> {
        let url = format!("https://example.com/r{row}.mp3");
        let answer = self
            .post("/api/v1/sonic/upload", &json!({ "url": url }), false)
            .await?;
        text(&answer, "clip_id")
    }

    async fn cover(&self, row: usize, clip: &str) -> Result<String, Failed> {
        let body = json!({
            "task_type": "cover_upload_music",
            "continue_clip_id": clip,
            "custom_mode": false,
            "gpt_description_prompt": format!("a short piece number {row}"),
            "mv": "sonic-v5",
        });
        let answer = self.post("/api/v1/sonic/create", &body, true).await?;
        text(&answer, "task_id")
    }

    async fn stems(&self, clip: &str) -> Result<String, Failed> {
        let body = json!({ "clip_id": clip });
        let answer = self.post("/api/v1/sonic/stems/basic", &body, true).await?;
        text(&answer, "task_id")
    }

    async fn wav(&self, clip: &str) -> Result<(), Failed> {
        let body = json!({ "clip_id": clip });
        self.post("/api/v1/sonic/wav", &body, false).await.map(drop)
    }
}

fn text(answer: &Value, field: &str) -> Result<String, Failed> {
    answer[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no `{field}` in {answer}"))
}

fn clip_ids(clips: &[Value]) -> Vec<String> {
    clips
        .iter()
        .filter_map(|c| c["clip_id"].as_str().map(str::to_owned))
        .collect()
}

/// One row, start to end.
async fn row(api: Arc<Api>, row: usize) -> Result<(), Failed> {
    let upload = api.upload(row).await?;
    let cover = api.cover(row, &upload).await?;
    let clips = clip_ids(&api.wait(&cover).await?);
    let mut stems = Vec::new();
    for clip in &clips {
        stems.push(api.stems(clip).await?);
        api.wav(clip).await?;
    }
    for task in stems {
        api.wait(&task).await?;
    }
    Ok(())
}

/// Runs `each` over `items` all at once; the items that succeeded.
async fn all<T, F, Fut, R>(items: Vec<T>, each: F) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<R, Failed>> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let job = each(item);
        set.spawn(async move { (i, job.await) });
    }
    let mut out = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok((i, Ok(r))) => out.push((i, r)),
            Ok((i, Err(e))) => eprintln!("item {i}: {e}"),
            Err(e) => eprintln!("a task ended abnormally: {e}"),
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Every upload, every cover, every wait, every stems and wav, every wait.
async fn stage_by_stage(api: Arc<Api>, rows: usize) -> usize {
    let a = Arc::clone(&api);
    let uploads = all((0..rows).collect(), move |r| {
        let a = Arc::clone(&a);
        async move { Ok((r, a.upload(r).await?)) }
    })
    .await;
    let a = Arc::clone(&api);
    let covers = all(uploads, move |(r, clip)| {
        let a = Arc::clone(&a);
        async move { a.cover(r, &clip).await }
    })
    .await;
    let a = Arc::clone(&api);
    let clips = all(covers, move |task| {
        let a = Arc::clone(&a);
        async move { Ok(clip_ids(&a.wait(&task).await?)) }
    })
    .await;
    let a = Arc::clone(&api);
    let stems = all(clips.into_iter().flatten().collect(), move |clip| {
        let a = Arc::clone(&a);
        async move {
            let task = a.stems(&clip).await?;
            a.wav(&clip).await?;
            Ok(task)
        }
    })
    .await;
    let a = Arc::clone(&api);
    let done = all(stems, move |task| {
        let a = Arc::clone(&a);
        async move { a.wait(&task).await.map(drop) }
    })
    .await;
    // Two stems tasks per row.
    done.len() / 2
}

/// Runs `script` over `rows` rows against the sandbox at `base` whose
/// paced submits are `interval` apart (already scaled); `shared` when every
/// paid call takes that slot.
pub fn run(
    script: Script,
    base: &str,
    rows: usize,
    scale: f64,
    interval: Duration,
    shared: bool,
) -> Outcome {
    let api = Arc::new(Api {
        http: reqwest::Client::new(),
        base: base.to_owned(),
        key: "bench-key".to_owned(),
        pacer: Pacer {
            next: Mutex::new(None),
            period: interval.mul_f64(1.05),
        },
        shared,
        first_poll: Duration::from_secs(20).div_f64(scale),
        interval: Duration::from_secs(15).div_f64(scale),
        generation: AtomicU64::new(0),
        quick: AtomicU64::new(0),
        polls: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
    });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime for the script: {e}");
            return Outcome::default();
        }
    };
    let started = Instant::now();
    let rows_done = runtime.block_on(async {
        match script {
            Script::PerRow => {
                let a = Arc::clone(&api);
                all((0..rows).collect(), move |r| row(Arc::clone(&a), r))
                    .await
                    .len()
            }
            Script::StageByStage => stage_by_stage(Arc::clone(&api), rows).await,
        }
    });
    let count = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
    Outcome {
        makespan: started.elapsed().as_secs_f64(),
        generation: count(&api.generation),
        quick: count(&api.quick),
        polls: count(&api.polls),
        throttled: api.throttled.load(Ordering::Relaxed),
        rows_done,
    }
}
