//! Async endpoints that make new audio from existing clips: sample, mashup,
//! replace-section and the two stems splits.

use crate::sandbox::clips;
use crate::sandbox::fields::{self, Body, Generation, PromptRule};
use crate::sandbox::pipeline::{Accepted, Ctx, TaskSpec};
use crate::sandbox::reply::Failure;
use crate::sandbox::tasks::{Outcome, Pair};

pub(crate) fn sample(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    let url = fields::opt_str(body, "url")?;
    let clip_id = fields::opt_str(body, "sample_clip_id")?;
    match (url, clip_id) {
        (None, None) => return Err(Failure::bad("url or sample_clip_id is required.")),
        (_, Some(id)) => {
            ctx.shared.source_clip(id)?;
        }
        (Some(url), None) if !url.starts_with("http") => {
            return Err(Failure::bad(crate::sandbox::reply::AUDIO_URL_INACCESSIBLE));
        }
        _ => {}
    }
    let start = fields::opt_num(body, "chop_sample_start_s")?;
    let end = fields::opt_num(body, "chop_sample_end_s")?;
    if let (Some(s), Some(e)) = (start, end)
        && (s < 0.0 || e <= s)
    {
        return Err(Failure::bad(
            "chop_sample_end_s should be greater than chop_sample_start_s.",
        ));
    }
    let model = fields::model(body, true)?;
    let generation = fields::generation(body, Some(model), PromptRule::Mode)?;
    fields::moderate(&generation)?;
    song(ctx, "sample", &generation)
}

pub(crate) fn mashup(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    const EXACTLY_TWO: &str = "mashup_clip_ids should contain exactly 2 clip ids.";
    let ids: Vec<&str> = match body.get("mashup_clip_ids").and_then(|v| v.as_array()) {
        Some(ids) if ids.len() == 2 => ids.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    if ids.len() != 2 {
        return Err(Failure::bad(EXACTLY_TWO));
    }
    for id in &ids {
        ctx.shared.source_clip(id)?;
    }
    let model = fields::model(body, true)?;
    let generation = fields::generation(body, Some(model), PromptRule::Mode)?;
    fields::moderate(&generation)?;
    song(ctx, "mashup", &generation)
}

fn song(ctx: &mut Ctx<'_>, operation: &str, generation: &Generation) -> Result<Accepted, Failure> {
    let task = ctx.new_task(
        operation,
        ctx.shared.config.latencies.song,
        generation.webhook.clone(),
    );
    let made = clips::generated(ctx, &task.id, 2, generation, None, (90.0, 240.0));
    Ok(Accepted::task(ctx, TaskSpec::with_clips(task, made)))
}

pub(crate) fn replace_section(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    let id = fields::required_str(body, "clip_id", "clip_id is required.")?;
    let model = fields::model(body, false)?;
    let mut generation = fields::generation(body, Some(model), PromptRule::Optional)?;
    let (Some(start), Some(end)) = (
        fields::opt_num(body, "infill_start_s")?,
        fields::opt_num(body, "infill_end_s")?,
    ) else {
        return Err(Failure::bad(
            "infill_start_s and infill_end_s are required.",
        ));
    };
    fields::opt_str(body, "infill_lyrics")?;
    let auto_concat = fields::opt_bool(body, "auto_concat")?.unwrap_or(false);
    let source = ctx.shared.source_clip(id)?;
    if start < 0.0 || end <= start || end > source.duration {
        return Err(Failure::bad(format!(
            "infill_end_s should be greater than infill_start_s and within the clip ({:.2} s).",
            source.duration
        )));
    }
    fields::moderate(&generation)?;
    if generation.tags.is_none() {
        generation.tags = source.tags.clone();
    }
    let task = ctx.new_task(
        "replace_section",
        ctx.shared.config.latencies.edit,
        generation.webhook.clone(),
    );
    let made = clips::generated(ctx, &task.id, 2, &generation, Some(end - start), (0.0, 0.0));
    let mut spec = TaskSpec::with_clips(task, made);
    if auto_concat {
        let full = clips::generated(
            ctx,
            &spec.task.id,
            2,
            &generation,
            Some(source.duration),
            (0.0, 0.0),
        );
        spec = spec.with_full(Pair::Replaced, full);
    }
    Ok(Accepted::task(ctx, spec))
}

pub(crate) fn stems_basic(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    stems(ctx, body, false)
}

pub(crate) fn stems_full(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    stems(ctx, body, true)
}

fn stems(ctx: &mut Ctx<'_>, body: &Body, full: bool) -> Result<Accepted, Failure> {
    let id = fields::required_str(body, "clip_id", "clip_id is required.")?;
    let source = ctx.shared.source_clip(id)?;
    let operation = if full { "stems_full" } else { "stems_basic" };
    let webhook = fields::webhook(body)?;
    let mut task = ctx.new_task(operation, ctx.shared.config.latencies.stems, webhook);
    let config = &ctx.shared.config;
    if full && task.outcome == Outcome::Succeed && ctx.roll.hit(config.faults.stems_full_failure) {
        task.outcome = Outcome::Fail;
    }
    let names = if full {
        clips::full_stem_names(config.stems_full_count)
    } else {
        clips::basic_stem_names(config.stems_basic_count)
    };
    let made = clips::stems(ctx, &task.id, &source, &names);
    Ok(Accepted::task(ctx, TaskSpec::with_clips(task, made)))
}
