//! Making clip records: what a generated, uploaded or stem clip looks like.

use super::fields::Generation;
use super::pipeline::Ctx;
use super::world::{ClipRecord, Origin, iso_now};

/// Stem names of a full split, in order; more than twelve get numbered.
const FULL_STEMS: &[&str] = &[
    "vocals",
    "backing_vocals",
    "drums",
    "bass",
    "guitar",
    "keyboard",
    "percussion",
    "strings",
    "synth",
    "fx",
    "brass",
    "woodwinds",
];

fn blank(id: String, origin: Origin, task_id: Option<String>, duration: f64) -> ClipRecord {
    // Rounded to what polls report, so a file's length matches its `duration`.
    let duration = (duration * 100.0).round() / 100.0;
    ClipRecord {
        id,
        origin,
        task_id,
        title: String::new(),
        tags: None,
        lyrics: None,
        mv: None,
        gpt_description_prompt: None,
        negative_tags: None,
        style_weight: None,
        weirdness_constraint: None,
        duration,
        stem_type: None,
        created_at: iso_now(),
    }
}

/// The clip an upload produces.
pub(crate) fn uploaded(ctx: &mut Ctx<'_>, task_id: Option<String>) -> ClipRecord {
    let duration = ctx.roll.between(30.0, 180.0);
    let mut clip = blank(ctx.shared.next_id(), Origin::Upload, task_id, duration);
    clip.title = "Uploaded audio".to_owned();
    clip
}

/// What the clips of a generation sing: the lyrics given, lyrics made up
/// from the description, or nothing for instrumentals.
fn lyrics_for(generation: &Generation) -> Option<String> {
    if generation.make_instrumental {
        return None;
    }
    if generation.custom_mode == Some(true) {
        return generation.prompt.clone().filter(|p| !p.trim().is_empty());
    }
    let theme = generation
        .gpt_description_prompt
        .as_deref()
        .or(generation.prompt.as_deref())?;
    Some(format!(
        "[Verse]\n{theme}\n\n[Chorus]\nsing it again, {theme}"
    ))
}

fn title_for(generation: &Generation, fallback: &str) -> String {
    if let Some(title) = generation.title.as_deref().filter(|t| !t.trim().is_empty()) {
        return title.to_owned();
    }
    let source = generation
        .gpt_description_prompt
        .as_deref()
        .unwrap_or(fallback);
    let words: Vec<&str> = source.split_whitespace().take(4).collect();
    if words.is_empty() {
        fallback.to_owned()
    } else {
        words.join(" ")
    }
}

/// `count` generated clips for `task_id`, each `duration` seconds if given,
/// else drawn from `range`.
pub(crate) fn generated(
    ctx: &mut Ctx<'_>,
    task_id: &str,
    count: usize,
    generation: &Generation,
    duration: Option<f64>,
    range: (f64, f64),
) -> Vec<ClipRecord> {
    (0..count)
        .map(|_| {
            let secs = duration.unwrap_or_else(|| ctx.roll.between(range.0, range.1));
            let mut clip = blank(
                ctx.shared.next_id(),
                Origin::Generated,
                Some(task_id.to_owned()),
                secs,
            );
            clip.title = title_for(generation, "Untitled");
            clip.tags = generation.tags.clone();
            clip.lyrics = lyrics_for(generation);
            clip.mv = generation.model.as_ref().map(|m| m.chirp());
            clip.gpt_description_prompt = generation.gpt_description_prompt.clone();
            clip.negative_tags = generation.negative_tags.clone();
            clip.style_weight = generation.style_weight;
            clip.weirdness_constraint = generation.weirdness_constraint;
            clip
        })
        .collect()
}

/// One clip per stem of `source`; the vocal stems keep the lyrics.
pub(crate) fn stems(
    ctx: &mut Ctx<'_>,
    task_id: &str,
    source: &ClipRecord,
    names: &[String],
) -> Vec<ClipRecord> {
    names
        .iter()
        .map(|name| {
            let mut clip = blank(
                ctx.shared.next_id(),
                Origin::Generated,
                Some(task_id.to_owned()),
                source.duration,
            );
            clip.title = name.clone();
            clip.stem_type = Some(name.clone());
            clip.tags = source.tags.clone();
            clip.mv = source.mv.clone();
            clip.lyrics = name
                .contains("vocals")
                .then(|| source.lyrics.clone())
                .flatten();
            clip
        })
        .collect()
}

/// Stem names: basic is `vocals` + `instrumental`; full has `count`.
pub(crate) fn stem_names(full: bool, count: usize) -> Vec<String> {
    if !full {
        return vec!["vocals".to_owned(), "instrumental".to_owned()];
    }
    (0..count)
        .map(|i| match FULL_STEMS.get(i) {
            Some(name) => (*name).to_owned(),
            None => format!("stem_{}", i + 1),
        })
        .collect()
}
