//! `POST /api/v1/sonic/create`, every task type, and the per-task-type rules
//! (which fields are required, which clips may be used as the source).

use crate::sandbox::clips;
use crate::sandbox::fields::{self, Body, Generation, PromptRule};
use crate::sandbox::pipeline::{Accepted, Ctx, TaskSpec};
use crate::sandbox::reply::{self, Failure};
use crate::sandbox::world::{ClipRecord, Origin};

/// Which clips a task type accepts as `continue_clip_id`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    None,
    Generated,
    Uploaded,
    Any,
}

struct Rule {
    task_type: &'static str,
    source: Source,
    needs_mv: bool,
    prompt: PromptRule,
    continue_at: bool,
    duration: bool,
    song: bool,
}

const fn rule(
    task_type: &'static str,
    source: Source,
    prompt: PromptRule,
    continue_at: bool,
    song: bool,
) -> Rule {
    Rule {
        task_type,
        source,
        needs_mv: true,
        prompt,
        continue_at,
        duration: song,
        song,
    }
}

const RULES: &[Rule] = &[
    rule("create_music", Source::None, PromptRule::Mode, false, true),
    rule(
        "extend_music",
        Source::Generated,
        PromptRule::Mode,
        true,
        true,
    ),
    rule(
        "cover_music",
        Source::Generated,
        PromptRule::Mode,
        false,
        true,
    ),
    Rule {
        needs_mv: false,
        ..rule(
            "concat_music",
            Source::Generated,
            PromptRule::Optional,
            false,
            false,
        )
    },
    rule("persona_music", Source::None, PromptRule::Mode, false, true),
    rule(
        "extend_upload_music",
        Source::Uploaded,
        PromptRule::Mode,
        true,
        true,
    ),
    rule(
        "cover_upload_music",
        Source::Uploaded,
        PromptRule::Mode,
        false,
        true,
    ),
    rule("remaster", Source::Any, PromptRule::Optional, false, false),
    rule(
        "add_instrumental",
        Source::Uploaded,
        PromptRule::Optional,
        false,
        false,
    ),
    rule(
        "add_vocals",
        Source::Uploaded,
        PromptRule::Optional,
        false,
        false,
    ),
];

pub(crate) fn create(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    let spec = create_task(ctx, body)?;
    Ok(Accepted::task(ctx, spec))
}

/// Validates one create body and builds its task; batch items use it too.
pub(crate) fn create_task(ctx: &mut Ctx<'_>, body: &Body) -> Result<TaskSpec, Failure> {
    let task_type = fields::opt_str(body, "task_type")?.unwrap_or("create_music");
    let Some(rule) = RULES.iter().find(|r| r.task_type == task_type) else {
        return Err(Failure::bad("The 'task_type' field is invalid."));
    };
    let model = if rule.needs_mv {
        Some(fields::model(body, false)?)
    } else {
        None
    };
    let generation = fields::generation(body, model, rule.prompt)?;
    let duration = fields::duration(body, rule.duration)?;
    check_task_fields(body, rule, &generation)?;
    let source = source_clip(ctx, body, rule)?;
    continue_at(body, rule, source.as_ref())?;
    fields::moderate(&generation)?;
    let webhook = generation.webhook.clone();
    let latencies = ctx.shared.config.latencies.clone();
    let range = if rule.song {
        latencies.song
    } else {
        latencies.edit
    };
    let task = ctx.new_task(rule.task_type, range, webhook);
    let (count, length) = output_shape(ctx, rule, source.as_ref(), duration.map(|d| d as f64));
    let mut generation = generation;
    if rule.source != Source::None && generation.tags.is_none() {
        generation.tags = source.as_ref().and_then(|s| s.tags.clone());
    }
    // Per the FAQ: about 2 minutes on v3.5/v4, about 4 on later models.
    let range = if generation.model.as_ref().is_none_or(|m| m.is_wide()) {
        (150.0, 240.0)
    } else {
        (90.0, 120.0)
    };
    let made = clips::generated(ctx, &task.id, count, &generation, length, range);
    Ok(TaskSpec::with_clips(task, made))
}

fn check_task_fields(body: &Body, rule: &Rule, generation: &Generation) -> Result<(), Failure> {
    if rule.task_type == "persona_music" {
        fields::required_str(body, "persona_id", reply::PERSONA_ID_REQUIRED)?;
    }
    if rule.task_type == "add_vocals"
        && generation
            .prompt
            .as_deref()
            .is_none_or(|p| p.trim().is_empty())
    {
        return Err(Failure::bad(
            "The 'prompt' field is required when task_type = add_vocals.",
        ));
    }
    if let Some(category) = fields::opt_str(body, "variation_category")? {
        if !matches!(category, "subtle" | "normal" | "high") {
            return Err(Failure::bad(
                "variation_category should be 'subtle', 'normal' or 'high'.",
            ));
        }
        if generation.model.as_ref().is_none_or(|m| m.version != "v5") {
            return Err(Failure::bad(
                "variation_category is only supported by sonic-v5.",
            ));
        }
    }
    let start = fields::opt_num(body, "overpainting_start_s")?;
    let end = fields::opt_num(body, "overpainting_end_s")?;
    if let (Some(s), Some(e)) = (start, end)
        && (s < 0.0 || e <= s)
    {
        return Err(Failure::bad(
            "overpainting_end_s should be greater than overpainting_start_s.",
        ));
    }
    Ok(())
}

/// The source clip, checked for existence, readiness and provenance.
fn source_clip(ctx: &Ctx<'_>, body: &Body, rule: &Rule) -> Result<Option<ClipRecord>, Failure> {
    if rule.source == Source::None {
        return Ok(None);
    }
    let id = fields::required_str(body, "continue_clip_id", reply::CONTINUE_CLIP_REQUIRED)?;
    let clip = ctx.shared.source_clip(id)?;
    let tt = rule.task_type;
    match (rule.source, clip.origin) {
        (Source::Generated, Origin::Upload) => {
            let alt = tt.replace("_music", "_upload_music");
            let alt = if tt == "concat_music" {
                "extend_upload_music".to_owned()
            } else {
                alt
            };
            Err(Failure::bad(format!(
                "{tt} needs a generated clip, but `{id}` came from /sonic/upload; use {alt} for uploaded clips."
            )))
        }
        (Source::Uploaded, Origin::Generated) => Err(Failure::bad(format!(
            "{tt} only works on clips from /sonic/upload, but `{id}` was generated."
        ))),
        _ => Ok(Some(clip)),
    }
}

fn continue_at(body: &Body, rule: &Rule, source: Option<&ClipRecord>) -> Result<(), Failure> {
    if !rule.continue_at {
        return Ok(());
    }
    let Some(at) = fields::opt_num(body, "continue_at")? else {
        return Err(Failure::bad("continue_at is required"));
    };
    let length = source.map_or(f64::MAX, |s| s.duration);
    if at < 0.0 || at > length {
        return Err(Failure::bad(format!(
            "continue_at should be between 0 and the clip's duration ({length:.2} s)."
        )));
    }
    Ok(())
}

/// How many clips, and how long, unless drawn: concat joins into one clip;
/// covers, remasters and add_* keep the source length.
fn output_shape(
    ctx: &mut Ctx<'_>,
    rule: &Rule,
    source: Option<&ClipRecord>,
    duration: Option<f64>,
) -> (usize, Option<f64>) {
    let source_len = source.map(|s| s.duration);
    match rule.task_type {
        "concat_music" => (1, source_len.map(|d| d + ctx.roll.between(60.0, 120.0))),
        "extend_music" | "extend_upload_music" => {
            (2, duration.or_else(|| Some(ctx.roll.between(30.0, 120.0))))
        }
        _ if rule.source != Source::None => (2, duration.or(source_len)),
        _ => (2, duration),
    }
}
