//! The path every paid POST takes: authenticate, roll the dice, validate,
//! take the rate-limit slot, charge, perform, answer (or drop the answer).
//!
//! Endpoint modules only validate and describe the work as an [`Accepted`];
//! charging and faults live here so they behave the same everywhere.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body as HttpBody, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::config::LatencyRange;
use super::faults::Roll;
use super::fields::Body;
use super::ledger::Debit;
use super::reply::{self, Failure};
use super::tasks::{self, Outcome, Pair, Task, Webhook};
use super::world::{ClipRecord, Shared};

/// What one request needs while it is validated.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    pub key: &'a str,
    pub roll: &'a mut Roll,
}

/// A task with the clips it will produce.
pub(crate) struct TaskSpec {
    pub task: Task,
    pub clips: Vec<ClipRecord>,
}

/// A validated request, ready to be charged and performed.
pub(crate) struct Accepted {
    pub debits: Vec<Debit>,
    /// Clips that exist as soon as the request is performed (uploads).
    pub clips: Vec<ClipRecord>,
    pub tasks: Vec<TaskSpec>,
    /// How long to wait, already scaled, before answering (sync uploads).
    pub delay: Duration,
    pub reply: Value,
    /// Aligned lyrics are paid once per key and clip: remember this one.
    pub aligned: Option<String>,
}

impl Accepted {
    /// A sync answer costing `operation`'s price.
    pub(crate) fn sync(ctx: &Ctx<'_>, operation: &str, reply: Value) -> Accepted {
        Accepted {
            debits: vec![debit(ctx, operation, None)],
            clips: Vec::new(),
            tasks: Vec::new(),
            delay: Duration::ZERO,
            reply,
            aligned: None,
        }
    }

    /// One async task answered with its `task_id`.
    pub(crate) fn task(ctx: &Ctx<'_>, spec: TaskSpec) -> Accepted {
        let reply = reply::submitted(
            ctx.shared.config.style,
            serde_json::json!({ "task_id": spec.task.id }),
        );
        Accepted {
            debits: vec![debit(ctx, &spec.task.operation, Some(spec.task.id.clone()))],
            clips: Vec::new(),
            tasks: vec![spec],
            delay: Duration::ZERO,
            reply,
            aligned: None,
        }
    }
}

/// A debit of `operation` at the configured price.
pub(crate) fn debit(ctx: &Ctx<'_>, operation: &str, task_id: Option<String>) -> Debit {
    let credits = ctx.shared.config.prices.price(operation).unwrap_or(0);
    Debit {
        operation: operation.to_owned(),
        credits,
        task_id,
    }
}

impl Ctx<'_> {
    /// A scaled latency drawn from `range`.
    pub(crate) fn latency(&mut self, range: LatencyRange) -> Duration {
        let secs = self
            .roll
            .between(range.min.as_secs_f64(), range.max.as_secs_f64());
        self.shared.config.scaled(Duration::from_secs_f64(secs))
    }

    /// A new task with its fate drawn; clips are added by the caller.
    pub(crate) fn new_task(
        &mut self,
        operation: &str,
        range: LatencyRange,
        webhook: Option<Webhook>,
    ) -> Task {
        let latency = self.latency(range);
        let (failed, stuck) = self.roll.task_fate(&self.shared.config.faults);
        let outcome = if failed {
            Outcome::Fail
        } else if stuck {
            Outcome::Stuck
        } else {
            Outcome::Succeed
        };
        Task {
            id: self.shared.next_id(),
            key: self.key.to_owned(),
            operation: operation.to_owned(),
            submitted: Instant::now(),
            latency,
            outcome,
            clips: Vec::new(),
            full: Vec::new(),
            pair: None,
            webhook,
            // Uploads are not songs being sung: nothing to stream.
            streams: self.shared.config.observed() && operation != "upload",
            finalized: false,
        }
    }
}

impl TaskSpec {
    /// Adds clips as the task's outputs.
    pub(crate) fn with_clips(mut task: Task, clips: Vec<ClipRecord>) -> TaskSpec {
        task.clips = clips.iter().map(|c| c.id.clone()).collect();
        TaskSpec { task, clips }
    }

    /// Adds the whole-song clips of an `auto_concat` request.
    pub(crate) fn with_full(mut self, pair: Pair, full: Vec<ClipRecord>) -> TaskSpec {
        self.task.pair = Some(pair);
        self.task.full = full.iter().map(|c| c.id.clone()).collect();
        self.clips.extend(full);
        self
    }
}

/// The key from `Authorization: Bearer <key>`, or the documented 401.
pub(crate) fn authenticate(headers: &HeaderMap, shared: &Shared) -> Result<String, Failure> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Failure::unauthorised(reply::AUTH_MISSING));
    };
    let key = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Failure::unauthorised(reply::AUTH_INVALID))?;
    match &shared.config.keys {
        Some(keys) if !keys.iter().any(|k| k == key) => {
            Err(Failure::unauthorised(reply::AUTH_INVALID))
        }
        _ => Ok(key.to_owned()),
    }
}

/// A validator for one endpoint.
pub(crate) type Validate = fn(&mut Ctx<'_>, &Body) -> Result<Accepted, Failure>;

/// Serves one POST.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    path: &'static str,
    validate: Validate,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match run(&shared, path, validate, &headers, &body).await {
        Ok(response) => response,
        Err(failure) => failure.respond(shared.config.style),
    }
}

async fn run(
    shared: &Arc<Shared>,
    path: &str,
    validate: Validate,
    headers: &HeaderMap,
    raw: &[u8],
) -> Result<Response, Failure> {
    // The rate limit is judged at arrival, not after validation, which may
    // wait for the shared state behind other requests.
    let arrived = tokio::time::Instant::now();
    let key = authenticate(headers, shared)?;
    let mut roll = shared.roll("POST", path, raw);
    if roll.http_500 {
        return Err(Failure::internal());
    }
    if roll.http_429 {
        return Err(Failure::rate_limited());
    }
    let body: Body = match serde_json::from_slice(raw) {
        Ok(Value::Object(map)) => map,
        _ => return Err(Failure::bad(reply::NOT_JSON)),
    };
    let accepted = validate(
        &mut Ctx {
            shared,
            key: &key,
            roll: &mut roll,
        },
        &body,
    )?;
    let paid = accepted.debits.iter().any(|d| d.credits > 0);
    shared.take_submit_slot(&key, &accepted.debits, arrived)?;
    let body_hash = hex::encode(Sha256::digest(raw));
    if !shared.ledger.charge(&key, &body_hash, &accepted.debits) {
        return Err(Failure::forbidden(reply::CREDITS_SHORT));
    }
    let delay = accepted.delay;
    let reply = perform(shared, &key, accepted);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Ok(answer(&roll, paid, reply))
}

/// Registers clips and starts tasks; returns the answer body.
fn perform(shared: &Arc<Shared>, key: &str, accepted: Accepted) -> Value {
    {
        let mut world = shared.world();
        for clip in accepted
            .clips
            .into_iter()
            .chain(accepted.tasks.iter().flat_map(|t| t.clips.clone()))
        {
            world.clips.insert(clip.id.clone(), clip);
        }
        if let Some(clip) = accepted.aligned {
            world.aligned_paid.insert((key.to_owned(), clip));
        }
    }
    for spec in accepted.tasks {
        tasks::start(shared, spec.task);
    }
    accepted.reply
}

/// The success answer, unless the dice say to drop or garble it.
pub(crate) fn answer(roll: &Roll, paid: bool, reply: Value) -> Response {
    if paid && roll.drop_after_charge {
        // An erroring body makes the server abort the connection mid-answer:
        // the work is done and charged, but the client sees a transport error.
        let broken = futures::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::other(
                "connection dropped by fault injection",
            ))
        });
        return (StatusCode::OK, HttpBody::from_stream(broken)).into_response();
    }
    let text = reply.to_string();
    if roll.malformed_json {
        let cut = text.len() / 2;
        let garbled = text.get(..cut).unwrap_or("{").to_owned();
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            garbled,
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response()
}
