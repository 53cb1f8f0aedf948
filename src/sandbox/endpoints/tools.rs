//! Synchronous endpoints: persona, bpm, vox, wav, midi, aligned-lyrics,
//! upsample-tags and lyrics. Each answers at once (reference §9 #9).
//!
//! Analysis results are derived from the clip id, so asking twice about the
//! same clip gives the same answer, as a real analysis would.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::sandbox::fields::{self, Body};
use crate::sandbox::files;
use crate::sandbox::pipeline::{Accepted, Ctx};
use crate::sandbox::reply::{self, Failure, success};
use crate::sandbox::world::ClipRecord;

fn clip(ctx: &Ctx<'_>, body: &Body) -> Result<ClipRecord, Failure> {
    let id = fields::required_str(body, "clip_id", "clip_id is required.")?;
    ctx.shared.source_clip(id)
}

/// A stable number in `0..modulo` for a clip.
fn stable(clip_id: &str, modulo: u64) -> u64 {
    let digest = Sha256::digest(clip_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first) % modulo.max(1)
}

fn data(value: Value) -> Value {
    success(json!({ "data": value }))
}

pub(crate) fn persona(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    let name = fields::opt_str(body, "name")?.filter(|n| !n.trim().is_empty());
    // Both spellings: `clip_id`/`describe` (current) and `continue_clip_id`/`description` (older).
    let clip_id = fields::opt_str(body, "clip_id")?.or(fields::opt_str(body, "continue_clip_id")?);
    let (Some(name), Some(clip_id)) = (name, clip_id) else {
        return Err(Failure::bad(reply::PERSONA_REQUIRED));
    };
    if name.chars().count() > 80 {
        return Err(Failure::bad(reply::PERSONA_NAME_TOO_LONG));
    }
    let description = fields::opt_str(body, "describe")?.or(fields::opt_str(body, "description")?);
    if description.is_some_and(|d| d.chars().count() > 200) {
        return Err(Failure::bad(reply::PERSONA_DESCRIPTION_TOO_LONG));
    }
    fields::opt_str(body, "styles")?;
    fields::opt_str(body, "vox_audio_id")?;
    ctx.shared.source_clip(clip_id)?;
    let persona_id = ctx.shared.next_id();
    Ok(Accepted::sync(
        ctx,
        "persona",
        success(json!({ "persona_id": persona_id })),
    ))
}

pub(crate) fn bpm(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    let clip = clip(ctx, body)?;
    let avg = 70.0 + stable(&clip.id, 900) as f64 / 10.0;
    let reply = data(json!({ "avg_bpm": avg, "max_bpm": avg + 2.6, "min_bpm": avg - 2.5 }));
    Ok(Accepted::sync(ctx, "bpm", reply))
}

pub(crate) fn vox(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    let clip = clip(ctx, body)?;
    let start = fields::opt_num(body, "vocal_start_s")?.unwrap_or(0.0);
    let end =
        fields::opt_num(body, "vocal_end_s")?.unwrap_or_else(|| (start + 30.0).min(clip.duration));
    if start < 0.0 || end <= start || end - start > 30.0 {
        return Err(Failure::bad(
            "The vocal window should be at most 30 seconds, with vocal_end_s after vocal_start_s.",
        ));
    }
    let vox_id = ctx.shared.next_id();
    let reply = data(json!({
        "vox_audio_id": vox_id,
        "status": "succeeded",
        "source_clip_id": clip.id,
        "vocal_start_s": start,
        "vocal_end_s": end,
        "wave_response": { "waveform_aggregates": [] },
    }));
    Ok(Accepted::sync(ctx, "vox", reply))
}

pub(crate) fn wav(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    let clip = clip(ctx, body)?;
    let url = format!("{}/files/{}.wav", ctx.shared.base_url, clip.id);
    Ok(Accepted::sync(ctx, "wav", data(json!({ "wav_url": url }))))
}

pub(crate) fn midi(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    let clip = clip(ctx, body)?;
    let notes: Vec<Value> = files::midi_notes(&clip.id)
        .iter()
        .map(
            |n| json!({ "pitch": n.pitch, "start": n.start, "end": n.end, "velocity": n.velocity }),
        )
        .collect();
    let reply = data(json!({
        "midi_url": format!("{}/files/{}.mid", ctx.shared.base_url, clip.id),
        "instruments": [ { "name": "Synth Voice", "notes": notes } ],
    }));
    Ok(Accepted::sync(ctx, "midi", reply))
}

/// One credit the first time per key and clip, free afterwards.
pub(crate) fn aligned_lyrics(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    let clip = clip(ctx, body)?;
    let Some(lyrics) = clip.lyrics.as_deref() else {
        return Err(Failure::not_found("The clip has no lyrics."));
    };
    let words: Vec<&str> = lyrics
        .split_whitespace()
        .filter(|w| !w.starts_with('['))
        .collect();
    let step = clip.duration / (words.len().max(1) as f64 + 1.0);
    let alignment: Vec<Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let start = step * (i as f64 + 0.5);
            json!({ "word": w, "start_s": round2(start), "end_s": round2(start + step * 0.8), "p_align": 0.97, "success": true })
        })
        .collect();
    let paid_before = ctx
        .shared
        .world()
        .aligned_paid
        .contains(&(ctx.key.to_owned(), clip.id.clone()));
    let mut accepted = Accepted::sync(
        ctx,
        "aligned_lyrics",
        data(json!({ "alignment": alignment })),
    );
    if paid_before {
        accepted.debits.clear();
    } else {
        accepted.aligned = Some(clip.id);
    }
    Ok(accepted)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(crate) fn upsample_tags(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    let tags = fields::required_str(body, "tags", "tags is required.")?;
    let text = format!(
        "{tags}, warm analog production, wide stereo image, punchy drums, polished modern mix"
    );
    Ok(Accepted::sync(
        ctx,
        "upsample_tags",
        data(json!({ "upsampled_tags": text })),
    ))
}

pub(crate) fn lyrics(ctx: &mut Ctx<'_>, body: &Body) -> Result<Accepted, Failure> {
    let description = fields::required_str(body, "description", reply::DESCRIPTION_REQUIRED)?;
    if description.chars().count() >= 120 {
        return Err(Failure::bad(reply::DESCRIPTION_TOO_LONG));
    }
    let results: Vec<Value> = ["Morning", "Midnight"]
        .iter()
        .map(|when| {
            json!({
                "title": format!("{when} {description}").chars().take(60).collect::<String>(),
                "lyrics": format!("[Verse]\n{description}\nin the {when} light\n\n[Chorus]\n{description}, {description}"),
            })
        })
        .collect();
    Ok(Accepted::sync(
        ctx,
        "lyrics",
        success(json!({ "results": results })),
    ))
}
