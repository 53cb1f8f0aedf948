//! The task state machine: pending → running → (streaming →) succeeded |
//! failed, driven by the clock rather than by polls. In the observed style a clip streams
//! between `running` and its end: from [`STREAMING_FRACTION`] of the task's
//! latency its `audio_url` is a stream of the partial song and its image is
//! set, while `duration` stays `null` until it is done; a task that never
//! ends (stuck) never streams.
//!
//! A task's fate (latency, outcome) is fixed at submit from the request's
//! dice. Its state at any instant is computed from the elapsed time, so a
//! poll never changes anything except, at the end, triggering the
//! (idempotent) finalisation that a timer also triggers: refund on failure
//! and the webhook.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::config::{AnswerStyle, NotReadyForm};
use super::reply::{TIMEOUT_REFUNDED, success};
use super::webhook::{self, Delivery, Event};
use super::world::{ClipRecord, Shared, World};

/// Fraction of the latency during which a poll shows no clips yet.
const NOT_READY_FRACTION: f64 = 0.05;
/// Fraction of the latency during which clips are `pending`.
const PENDING_FRACTION: f64 = 0.2;
/// Fraction of the latency from which clips stream (observed style).
const STREAMING_FRACTION: f64 = 0.6;
/// The first clip finishes at this fraction, the last at 1.0: the service
/// was seen finishing one clip well before the other.
const FIRST_DONE_FRACTION: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClipState {
    Pending,
    Running,
    Streaming,
    Succeeded,
    Failed,
}

impl ClipState {
    fn as_str(self) -> &'static str {
        match self {
            ClipState::Pending => "pending",
            ClipState::Running => "running",
            ClipState::Streaming => "streaming",
            ClipState::Succeeded => "succeeded",
            ClipState::Failed => "failed",
        }
    }
}

/// How a task ends, decided at submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Succeed,
    Fail,
    /// Never leaves `running`.
    Stuck,
}

/// `auto_concat` results come as pairs (reference §9 #8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pair {
    Extended,
    Replaced,
}

#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    pub url: String,
    pub secret: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub id: String,
    pub key: String,
    pub operation: String,
    pub submitted: Instant,
    /// Already scaled.
    pub latency: Duration,
    pub outcome: Outcome,
    pub clips: Vec<String>,
    /// With `pair`: `full[i]` is the whole song for `clips[i]`.
    pub full: Vec<String>,
    pub pair: Option<Pair>,
    pub webhook: Option<Webhook>,
    /// Whether clips pass through `streaming` (observed style, not uploads).
    pub streams: bool,
    pub finalized: bool,
}

impl Task {
    fn at(&self, fraction: f64) -> Instant {
        self.submitted + self.latency.mul_f64(fraction)
    }

    fn end(&self) -> Instant {
        self.at(1.0)
    }

    fn done_at(&self, index: usize) -> Instant {
        let n = self.clips.len();
        if n <= 1 {
            return self.end();
        }
        let step = (1.0 - FIRST_DONE_FRACTION) / (n - 1) as f64;
        self.at(FIRST_DONE_FRACTION + step * index as f64)
    }

    /// Whether clips are visible yet.
    pub(crate) fn visible(&self, now: Instant) -> bool {
        now >= self.at(NOT_READY_FRACTION)
    }

    /// The state of one of this task's clips (`None` if it is not one, or
    /// a `full` clip that does not exist yet).
    pub(crate) fn clip_state(&self, clip_id: &str, now: Instant) -> Option<ClipState> {
        if let Some(i) = self.clips.iter().position(|c| c == clip_id) {
            return Some(self.state_until(self.done_at(i), now));
        }
        if self.full.iter().any(|c| c == clip_id) {
            let state = self.state_until(self.end(), now);
            return (state == ClipState::Succeeded).then_some(state);
        }
        None
    }

    /// When clips start streaming, if they do.
    pub(crate) fn streaming_at(&self) -> Option<Instant> {
        (self.streams && self.outcome != Outcome::Stuck).then(|| self.at(STREAMING_FRACTION))
    }

    fn state_until(&self, done: Instant, now: Instant) -> ClipState {
        if now < self.at(PENDING_FRACTION) {
            ClipState::Pending
        } else if now < done || self.outcome == Outcome::Stuck {
            match self.streaming_at() {
                Some(at) if now >= at => ClipState::Streaming,
                _ => ClipState::Running,
            }
        } else if self.outcome == Outcome::Fail {
            ClipState::Failed
        } else {
            ClipState::Succeeded
        }
    }

    /// `pending`, `running`, `streaming`, `succeeded` or `failed` for the task as a whole.
    pub(crate) fn status(&self, now: Instant) -> &'static str {
        self.state_until(self.end(), now).as_str()
    }

    fn is_over(&self, now: Instant) -> bool {
        self.outcome != Outcome::Stuck && now >= self.end()
    }
}

/// A clip as polls and webhooks show it, in `style`'s forms.
pub(crate) fn clip_json(
    clip: &ClipRecord,
    state: ClipState,
    base_url: &str,
    style: AnswerStyle,
) -> Value {
    let done = state == ClipState::Succeeded;
    let file = |ext: &str| format!("{base_url}/files/{}.{ext}", clip.id);
    let (audio_url, image_url, duration) = match style {
        AnswerStyle::Documented => {
            let url = |ext: &str| done.then(|| file(ext));
            (
                json!(url("mp3")),
                json!(url("jpeg")),
                json!(format!("{:.2}", clip.duration)),
            )
        }
        AnswerStyle::Observed => match state {
            ClipState::Succeeded => (
                json!(file("mp3")),
                json!(file("jpeg")),
                json!(clip.duration),
            ),
            ClipState::Streaming => (
                json!(format!("{}?stream=1", file("mp3"))),
                json!(file("jpeg")),
                Value::Null,
            ),
            _ => (json!(""), json!(""), Value::Null),
        },
    };
    let mut v = json!({
        "clip_id": clip.id,
        "state": state.as_str(),
        "title": clip.title,
        "tags": clip.tags,
        "lyrics": clip.lyrics.clone().unwrap_or_else(|| "[Instrumental]".to_owned()),
        "image_url": image_url,
        "audio_url": audio_url,
        "video_url": null,
        "created_at": clip.created_at,
        "mv": clip.mv_as(style),
        "gpt_description_prompt": clip.gpt_description_prompt,
        "duration": duration,
        "negative_tags": clip.negative_tags,
        "style_weight": clip.style_weight,
        "weirdness_constraint": clip.weirdness_constraint,
    });
    if let Some(map) = v.as_object_mut() {
        if let Some(stem) = &clip.stem_type {
            map.insert("stem_type".into(), json!(stem));
        }
        if state == ClipState::Failed {
            map.insert("error_message".into(), json!(TIMEOUT_REFUNDED));
        }
    }
    v
}

/// The `data` array of a task at `now`.
pub(crate) fn task_data(world: &World, task: &Task, shared: &Shared, now: Instant) -> Vec<Value> {
    let render = |id: &String| {
        let clip = world.clips.get(id)?;
        let state = task.clip_state(id, now)?;
        Some(clip_json(
            clip,
            state,
            &shared.base_url,
            shared.config.style,
        ))
    };
    task.clips
        .iter()
        .enumerate()
        .filter_map(|(i, id)| {
            let part = render(id)?;
            let Some(pair) = task.pair else {
                return Some(part);
            };
            let full = task.full.get(i).and_then(render).unwrap_or(Value::Null);
            let key = if pair == Pair::Extended {
                "extended"
            } else {
                "replaced"
            };
            Some(json!({ key: part, "full": full }))
        })
        .collect()
}

/// The answer to `GET /task/{id}` for a known task.
pub(crate) fn poll_answer(shared: &Arc<Shared>, task_id: &str) -> Option<(StatusCode, Value)> {
    finalize(shared, task_id);
    let now = Instant::now();
    let mut world = shared.world();
    let task = world.tasks.get(task_id)?;
    if task.visible(now) {
        let data = task_data(&world, task, shared, now);
        let status = task.status(now);
        world.served(status);
        return Some((StatusCode::OK, success(json!({ "data": data }))));
    }
    let form = shared.config.not_ready();
    world.served(match form {
        NotReadyForm::EmptyData => "empty_data",
        NotReadyForm::TypeObject | NotReadyForm::Accepted => "not_ready",
    });
    const NOT_READY: &str = "The task is not ready yet.";
    let mut not_ready = json!({"type": "not_ready", "message": NOT_READY});
    if shared.config.observed() {
        not_ready["error"] = json!(NOT_READY);
    }
    Some(match form {
        NotReadyForm::EmptyData => (StatusCode::OK, success(json!({ "data": [] }))),
        NotReadyForm::TypeObject => (StatusCode::OK, not_ready),
        NotReadyForm::Accepted => (StatusCode::ACCEPTED, not_ready),
    })
}

/// Registers a task and arms its timers: the streaming event of a task
/// with a webhook, and its end.
pub(crate) fn start(shared: &Arc<Shared>, task: Task) {
    let id = task.id.clone();
    let wait = task.latency;
    let stuck = task.outcome == Outcome::Stuck;
    let streaming = task
        .streaming_at()
        .filter(|_| task.webhook.is_some())
        .map(|at| at - task.submitted);
    shared.world().tasks.insert(id.clone(), task);
    if let Some(after) = streaming {
        let shared = Arc::clone(shared);
        let id = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            announce_streaming(&shared, &id);
        });
    }
    if stuck {
        return;
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        finalize(&shared, &id);
    });
}

/// Sends a task's `song.streaming` webhook.
fn announce_streaming(shared: &Arc<Shared>, task_id: &str) {
    let now = Instant::now();
    let delivery = {
        let world = shared.world();
        let Some(task) = world.tasks.get(task_id) else {
            return;
        };
        let Some(delivery) = delivery(shared, &world, task, Event::Streaming, now) else {
            return;
        };
        delivery
    };
    let shared = Arc::clone(shared);
    tokio::spawn(async move { webhook::deliver(&shared, delivery).await });
}

/// The webhook POST of `event` for `task`, if it asked for webhooks.
fn delivery(
    shared: &Shared,
    world: &World,
    task: &Task,
    event: Event,
    now: Instant,
) -> Option<Delivery> {
    let hook = task.webhook.as_ref()?;
    Some(Delivery {
        url: hook.url.clone(),
        secret: hook
            .secret
            .clone()
            .unwrap_or_else(|| shared.config.webhook_secret.clone()),
        task_id: task.id.clone(),
        event,
        data: task_data(world, task, shared, now),
    })
}

/// Ends a task once its time is up: refund if it failed, then one webhook
/// POST if it asked for one. Safe to call any number of times.
pub(crate) fn finalize(shared: &Arc<Shared>, task_id: &str) {
    let now = Instant::now();
    let (key, failed, delivery) = {
        let mut world = shared.world();
        let Some(task) = world.tasks.get_mut(task_id) else {
            return;
        };
        if task.finalized || !task.is_over(now) {
            return;
        }
        task.finalized = true;
        let task = task.clone();
        let failed = task.outcome == Outcome::Fail;
        let event = if failed {
            Event::Failed
        } else {
            Event::Completed
        };
        let delivery = delivery(shared, &world, &task, event, now);
        (task.key, failed, delivery)
    };
    if failed {
        shared.ledger.refund_task(&key, task_id);
    }
    if let Some(delivery) = delivery {
        let shared = Arc::clone(shared);
        tokio::spawn(async move { webhook::deliver(&shared, delivery).await });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(outcome: Outcome) -> Task {
        Task {
            id: "t".into(),
            key: "k".into(),
            operation: "create_music".into(),
            submitted: Instant::now(),
            latency: Duration::from_secs(100),
            outcome,
            clips: vec!["a".into(), "b".into()],
            full: Vec::new(),
            pair: None,
            webhook: None,
            streams: false,
            finalized: false,
        }
    }

    #[test]
    fn clips_move_from_pending_to_running_to_their_outcome() {
        let t = task(Outcome::Succeed);
        let at = |s: u64| t.submitted + Duration::from_secs(s);
        assert!(!t.visible(at(1)));
        assert!(t.visible(at(5)));
        assert_eq!(t.clip_state("a", at(10)), Some(ClipState::Pending));
        assert_eq!(t.clip_state("a", at(30)), Some(ClipState::Running));
        // One clip finishes before the other, as the service was seen doing.
        assert_eq!(t.clip_state("a", at(95)), Some(ClipState::Succeeded));
        assert_eq!(t.clip_state("b", at(95)), Some(ClipState::Running));
        assert_eq!(t.status(at(95)), "running");
        assert_eq!(t.clip_state("b", at(100)), Some(ClipState::Succeeded));
        assert!(t.is_over(at(100)));
        assert_eq!(t.clip_state("z", at(100)), None);
    }

    #[test]
    fn failed_tasks_fail_and_stuck_tasks_never_end() {
        let failed = task(Outcome::Fail);
        let end = failed.submitted + Duration::from_secs(100);
        assert_eq!(failed.clip_state("b", end), Some(ClipState::Failed));
        let stuck = task(Outcome::Stuck);
        let later = stuck.submitted + Duration::from_secs(10_000);
        assert_eq!(stuck.clip_state("a", later), Some(ClipState::Running));
        assert!(!stuck.is_over(later));
    }

    #[test]
    fn streaming_tasks_stream_between_running_and_their_end() {
        let t = Task {
            streams: true,
            ..task(Outcome::Succeed)
        };
        let at = |s: u64| t.submitted + Duration::from_secs(s);
        assert_eq!(t.clip_state("a", at(30)), Some(ClipState::Running));
        assert_eq!(t.clip_state("a", at(60)), Some(ClipState::Streaming));
        assert_eq!(t.status(at(60)), "streaming");
        assert_eq!(t.clip_state("a", at(95)), Some(ClipState::Succeeded));
        assert_eq!(t.clip_state("b", at(95)), Some(ClipState::Streaming));
        assert_eq!(t.status(at(100)), "succeeded");
        let failing = Task {
            streams: true,
            ..task(Outcome::Fail)
        };
        let end = failing.submitted + Duration::from_secs(100);
        assert_eq!(
            failing.clip_state("b", end - Duration::from_secs(1)),
            Some(ClipState::Streaming)
        );
        assert_eq!(failing.clip_state("b", end), Some(ClipState::Failed));
        let stuck = Task {
            streams: true,
            ..task(Outcome::Stuck)
        };
        assert_eq!(stuck.clip_state("a", at(10_000)), Some(ClipState::Running));
    }
}
