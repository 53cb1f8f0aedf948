//! Making clip records: what a generated, uploaded or stem clip looks like.

use super::fields::Generation;
use super::pipeline::Ctx;
use super::world::{ClipRecord, Origin, iso_now};

/// Stem names of a basic split, in order: the four the service was seen
/// returning (a two-stem split is `vocals` + `instrumental`).
const BASIC_STEMS: &[&str] = &["vocals", "drums", "bass", "other"];

/// Stem names of a full split, in order; more than 24 get numbered.
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
    "kick",
    "snare",
    "hi_hat",
    "cymbals",
    "piano",
    "organ",
    "pad",
    "lead",
    "choir",
    "acoustic_guitar",
    "ambience",
    "other",
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
            clip.mv = generation.model.clone();
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

/// The names of a basic split into `count` stems.
pub(crate) fn basic_stem_names(count: usize) -> Vec<String> {
    if count == 2 {
        return vec!["vocals".to_owned(), "instrumental".to_owned()];
    }
    names_from(BASIC_STEMS, count)
}

/// The names of a full split into `count` stems.
pub(crate) fn full_stem_names(count: usize) -> Vec<String> {
    names_from(FULL_STEMS, count)
}

/// The first `count` of `names`, numbered `stem_<n>` past its end.
fn names_from(names: &[&str], count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match names.get(i) {
            Some(name) => (*name).to_owned(),
            None => format!("stem_{}", i + 1),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stem_names_follow_the_count_and_number_the_rest() {
        assert_eq!(basic_stem_names(4), ["vocals", "drums", "bass", "other"]);
        assert_eq!(basic_stem_names(2), ["vocals", "instrumental"]);
        assert_eq!(basic_stem_names(5)[4], "stem_5");
        let full = full_stem_names(24);
        assert_eq!(full.len(), 24);
        let distinct: std::collections::HashSet<_> = full.iter().collect();
        assert_eq!(distinct.len(), 24);
        assert_eq!(full_stem_names(26)[25], "stem_26");
    }
}
