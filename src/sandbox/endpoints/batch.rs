//! `POST /api/v1/sonic/batch` (up to 10 create bodies, each item charged
//! and reported on its own) and `GET /api/v1/sonic/batch?batch_id=`.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::create::create_task;
use crate::sandbox::fields::Body;
use crate::sandbox::pipeline::{Accepted, Ctx, debit};
use crate::sandbox::reply::{Failure, submitted, success};
use crate::sandbox::tasks;
use crate::sandbox::world::Shared;

const ITEMS: &str = "items should be an array of 1 to 10 create requests.";

pub(crate) fn submit(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    let items = body
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| Failure::bad(ITEMS))?;
    if items.is_empty() || items.len() > 10 {
        return Err(Failure::bad(ITEMS));
    }
    let mut specs = Vec::new();
    let mut report = Vec::new();
    let mut first_error = None;
    for item in items {
        let outcome = match item {
            Value::Object(map) => create_task(ctx, map),
            _ => Err(Failure::bad("each batch item should be a JSON object.")),
        };
        match outcome {
            Ok(spec) => {
                report.push(json!({ "task_id": spec.task.id }));
                specs.push(spec);
            }
            Err(failure) => {
                report.push(json!({ "error": failure.message }));
                first_error.get_or_insert(failure);
            }
        }
    }
    if specs.is_empty() {
        return Err(first_error.unwrap_or_else(|| Failure::bad(ITEMS)));
    }
    let batch_id = ctx.shared.next_id();
    let ids: Vec<String> = specs.iter().map(|s| s.task.id.clone()).collect();
    ctx.shared.world().batches.insert(batch_id.clone(), ids);
    let debits = specs
        .iter()
        .map(|s| debit(ctx, &s.task.operation, Some(s.task.id.clone())))
        .collect();
    let reply = submitted(
        ctx.shared.config.style,
        json!({ "batch_id": batch_id, "submitted": specs.len(), "tasks": report }),
    );
    Ok(Accepted {
        debits,
        clips: Vec::new(),
        tasks: specs,
        delay: std::time::Duration::ZERO,
        reply,
        aligned: None,
    })
}

/// The status of every task of a batch (reference §9 #16).
pub(crate) fn status(shared: &Arc<Shared>, batch_id: &str) -> Result<Value, Failure> {
    let ids = shared.world().batches.get(batch_id).cloned();
    let Some(ids) = ids else {
        return Err(Failure::bad("batch not found."));
    };
    for id in &ids {
        tasks::finalize(shared, id);
    }
    let now = Instant::now();
    let world = shared.world();
    let report: Vec<Value> = ids
        .iter()
        .filter_map(|id| world.tasks.get(id))
        .map(|task| {
            let data = if task.visible(now) {
                tasks::task_data(&world, task, shared, now)
            } else {
                Vec::new()
            };
            json!({ "task_id": task.id, "status": task.status(now), "data": data })
        })
        .collect();
    Ok(success(json!({ "batch_id": batch_id, "tasks": report })))
}
