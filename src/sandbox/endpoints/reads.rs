//! The free GETs: task polling, batch status, credits, the ledger admin
//! endpoint and the result files. None of them is rate limited or charged;
//! 500s and malformed bodies can still be injected on polls and credits.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::batch;
use crate::sandbox::files;
use crate::sandbox::pipeline::{answer, authenticate};
use crate::sandbox::reply::{self, Failure};
use crate::sandbox::tasks;
use crate::sandbox::world::Shared;

/// Auth and the injected 500 shared by the free reads.
fn guard(
    shared: &Shared,
    headers: &HeaderMap,
    path: &str,
) -> Result<(String, crate::sandbox::faults::Roll), Failure> {
    let key = authenticate(headers, shared)?;
    let roll = shared.roll("GET", path, b"");
    if roll.http_500 {
        return Err(Failure::internal());
    }
    Ok((key, roll))
}

pub(crate) async fn task(
    State(shared): State<Arc<Shared>>,
    Path(task_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let run = || -> Result<Response, Failure> {
        let (_, roll) = guard(&shared, &headers, &format!("/api/v1/sonic/task/{task_id}"))?;
        if task_id.trim().is_empty() {
            return Err(Failure::bad(reply::MISSING_TASK_ID));
        }
        let Some((status, body)) = tasks::poll_answer(&shared, &task_id) else {
            return Err(Failure::bad(reply::TASK_NOT_FOUND));
        };
        if status != StatusCode::OK {
            return Ok((status, Json(body)).into_response());
        }
        Ok(answer(&roll, false, body))
    };
    run().unwrap_or_else(|f| f.respond(shared.config.style))
}

pub(crate) async fn missing_task_id(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    match authenticate(&headers, &shared) {
        Ok(_) => Failure::bad(reply::MISSING_TASK_ID).respond(shared.config.style),
        Err(f) => f.respond(shared.config.style),
    }
}

pub(crate) async fn batch_status(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let run = || -> Result<Response, Failure> {
        let (_, roll) = guard(&shared, &headers, "/api/v1/sonic/batch")?;
        let Some(id) = query.get("batch_id").filter(|id| !id.trim().is_empty()) else {
            return Err(Failure::bad("missing batch id."));
        };
        Ok(answer(&roll, false, batch::status(&shared, id)?))
    };
    run().unwrap_or_else(|f| f.respond(shared.config.style))
}

pub(crate) async fn credits(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let run = || -> Result<Response, Failure> {
        let (key, roll) = guard(&shared, &headers, "/api/v1/get-credits")?;
        let body = json!({ "credits": shared.ledger.balance(&key), "extra_credits": 0 });
        Ok(answer(&roll, false, body))
    };
    run().unwrap_or_else(|f| f.respond(shared.config.style))
}

/// `GET /_sandbox/requests`: how many API requests were answered so far
/// (any key, these reads aside), as `{"requests": N}`.
pub(crate) async fn requests(State(shared): State<Arc<Shared>>) -> Response {
    let served = shared.requests.load(std::sync::atomic::Ordering::Relaxed);
    Json(json!({ "requests": served })).into_response()
}

/// `GET /_sandbox/ledger`: the caller's account, never faulted.
pub(crate) async fn ledger(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    match authenticate(&headers, &shared) {
        Ok(key) => {
            let body = json!({
                "start_balance": shared.ledger.start_balance(),
                "balance": shared.ledger.balance(&key),
                "charged": shared.ledger.charged(&key),
                "refunded": shared.ledger.refunded(&key),
                "entries": shared.ledger.entries(&key),
            });
            Json(body).into_response()
        }
        Err(f) => f.respond(shared.config.style),
    }
}

/// `GET /files/<clip_id>.<mp3|wav|mid|jpeg>`: public, like a CDN.
pub(crate) async fn file(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let Some((id, ext)) = name.rsplit_once('.') else {
        return Failure::not_found("file not found.").respond(shared.config.style);
    };
    let duration = shared.world().clips.get(id).map(|c| c.duration);
    let Some(duration) = duration else {
        return Failure::not_found("file not found.").respond(shared.config.style);
    };
    let (mime, bytes) = match ext {
        "wav" => ("audio/wav", files::wav(duration)),
        "mp3" => ("audio/mpeg", files::mp3(duration)),
        "mid" => ("audio/midi", files::midi(id)),
        "jpeg" | "jpg" => ("image/jpeg", files::JPEG.to_vec()),
        _ => return Failure::not_found("file not found.").respond(shared.config.style),
    };
    ([(header::CONTENT_TYPE, mime)], bytes).into_response()
}
