//! `/upload` (sync, or async with `callback_url`) and the one-stop
//! `/upload-extend` and `/upload-cover`, which answer with a `steps` envelope.
//!
//! The sandbox never fetches the audio URL. Marker words in it stand in for
//! the service's rejections: `invalid-audio` → "Invalid audio file",
//! `catalog-match` → the catalog-match refusal.

use serde_json::json;

use crate::sandbox::clips;
use crate::sandbox::fields::{self, Body, PromptRule};
use crate::sandbox::pipeline::{Accepted, Ctx, TaskSpec};
use crate::sandbox::reply::{self, Failure, submitted, success};
use crate::sandbox::tasks::{Pair, Webhook};

/// The audio URL, or why the upload is refused.
fn audio_url(body: &Body) -> Result<Result<String, &'static str>, Failure> {
    let url = fields::required_str(body, "url", "url is required.")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Ok(Err(reply::AUDIO_URL_INACCESSIBLE));
    }
    if url.contains("invalid-audio") {
        return Ok(Err(reply::INVALID_AUDIO));
    }
    if url.contains("catalog-match") {
        return Ok(Err(reply::CATALOG_MATCH));
    }
    Ok(Ok(url.to_owned()))
}

pub(crate) fn upload(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    audio_url(body)?.map_err(Failure::bad)?;
    let callback = fields::opt_str(body, "callback_url")?.map(str::to_owned);
    let range = ctx.shared.config.latencies.upload;
    if let Some(url) = callback {
        let task = ctx.new_task("upload", range, Some(Webhook { url, secret: None }));
        let clip = clips::uploaded(ctx, Some(task.id.clone()));
        return Ok(Accepted::task(ctx, TaskSpec::with_clips(task, vec![clip])));
    }
    let delay = ctx.latency(range);
    let clip = clips::uploaded(ctx, None);
    let mut accepted = Accepted::sync(ctx, "upload", success(json!({ "clip_id": clip.id })));
    accepted.clips.push(clip);
    accepted.delay = delay;
    Ok(accepted)
}

pub(crate) fn upload_extend(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    one_stop(ctx, body, "upload_extend", "extend")
}

pub(crate) fn upload_cover(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    one_stop(ctx, body, "upload_cover", "cover")
}

/// Upload, then extend or cover in one call. The upload phase runs before
/// the task id comes back, so the answer is delayed by it.
fn one_stop(
    ctx: &mut Ctx<'_>,
    body: &Body,
    operation: &str,
    step: &str,
) -> Result<Accepted, Failure> {
    let url = audio_url(body)?;
    let model = fields::model(body, false)?;
    let generation = fields::generation(body, Some(model), PromptRule::Mode)?;
    fields::duration(body, true)?;
    let auto_concat = fields::opt_bool(body, "auto_concat")?.unwrap_or(false) && step == "extend";
    if step == "extend" && fields::opt_num(body, "continue_at")?.is_some_and(|at| at < 0.0) {
        return Err(Failure::bad(
            "continue_at should be between 0 and the clip's duration.",
        ));
    }
    fields::moderate(&generation)?;
    if let Err(refusal) = url {
        // The upload phase's refusal travels inside the envelope, uncharged.
        let reply = submitted(
            ctx.shared.config.style,
            json!({ "steps": { "upload": { "error": refusal } } }),
        );
        return Ok(Accepted {
            debits: Vec::new(),
            ..Accepted::sync(ctx, operation, reply)
        });
    }
    let delay = ctx.latency(ctx.shared.config.latencies.upload_phase);
    let webhook = generation.webhook.clone();
    let task = ctx.new_task(operation, ctx.shared.config.latencies.song, webhook);
    let upload = clips::uploaded(ctx, None);
    let length = if step == "cover" {
        Some(upload.duration)
    } else {
        None
    };
    let made = clips::generated(ctx, &task.id, 2, &generation, length, (30.0, 120.0));
    let mut spec = TaskSpec::with_clips(task, made.clone());
    if auto_concat {
        let mut full = clips::generated(
            ctx,
            &spec.task.id,
            made.len(),
            &generation,
            None,
            (0.0, 0.0),
        );
        for (f, part) in full.iter_mut().zip(&made) {
            f.duration = upload.duration + part.duration;
        }
        spec = spec.with_full(Pair::Extended, full);
    }
    let task_id = spec.task.id.clone();
    let reply = submitted(
        ctx.shared.config.style,
        json!({
            "task_id": task_id,
            "steps": { "upload": { "clip_id": upload.id }, step: { "task_id": task_id } },
        }),
    );
    let mut accepted = Accepted::task(ctx, spec);
    accepted.reply = reply;
    accepted.clips.push(upload);
    accepted.delay = delay;
    Ok(accepted)
}
