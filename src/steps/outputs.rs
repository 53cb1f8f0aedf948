//! Typed outputs: every answer reshaped into exactly the fields
//! `Action::outputs()` declares, so `${{ steps.x.outputs.clips[0].clip_id }}`
//! means the same thing whatever the service sent. A value the service
//! left out is `null` rather than a missing key.
//!
//! It knows response types and output shapes; it does no I/O.

use serde_json::{Value, json};

use crate::action::Action;
use crate::api::{
    AlignedLyrics, Bpm, Clip, ClipState, Lyrics, Midi, TaskItem, TaskStatus, UpsampledTags, Vox,
};

/// A clip as the `clip` output object.
pub(crate) fn clip(c: &Clip) -> Value {
    json!({
        "clip_id": c.clip_id,
        "state": state(&c.state),
        "title": c.title,
        "tags": c.tags,
        "lyrics": c.lyrics,
        "audio_url": c.audio_url,
        "image_url": c.image_url,
        "video_url": c.video_url,
        "duration": c.duration,
        "created_at": c.created_at,
        "mv": c.mv,
        "gpt_description_prompt": c.gpt_description_prompt,
    })
}

fn state(s: &ClipState) -> &str {
    match s {
        ClipState::Pending => "pending",
        ClipState::Running => "running",
        ClipState::Streaming => "streaming",
        ClipState::Succeeded => "succeeded",
        ClipState::Failed => "failed",
        ClipState::Other(other) => other,
    }
}

/// What a finished poll means for the step.
pub(crate) enum Finished {
    /// Not finished; what it waits on when the states alone do not say.
    Pending(Option<String>),
    Failed(String),
    Done(Value),
}

/// Reads a polled task; `upload_clip_id` is the clip an upload-extend or
/// upload-cover call reported when it was submitted.
pub(crate) fn from_task(
    action: Action,
    status: &TaskStatus,
    upload_clip_id: Option<&str>,
) -> Finished {
    if !status.is_finished() {
        return Finished::Pending(status.unsettled());
    }
    if let Some(failed) = status
        .clips()
        .into_iter()
        .find(|c| c.state == ClipState::Failed)
    {
        let why = failed
            .error_message
            .clone()
            .unwrap_or_else(|| "no reason given".to_owned());
        return Finished::Failed(format!("clip `{}` failed: {why}", failed.clip_id));
    }
    let TaskStatus::Items(items) = status else {
        return Finished::Pending(None);
    };
    Finished::Done(match action {
        Action::StemsBasic | Action::StemsFull => stems(items),
        // An upload sent in task mode: the same output as the synchronous answer.
        Action::Upload => match items.first() {
            Some(TaskItem::Clip(c)) => upload(&c.clip_id),
            _ => return Finished::Failed("the upload's task holds no clip".to_owned()),
        },
        _ => generated(action, items, upload_clip_id),
    })
}

fn generated(action: Action, items: &[TaskItem], upload_clip_id: Option<&str>) -> Value {
    let mut parts = Vec::new();
    let mut fulls = Vec::new();
    for item in items {
        match item {
            TaskItem::Clip(c) => parts.push(clip(c)),
            TaskItem::Paired { part, full, .. } => {
                parts.push(clip(part));
                fulls.extend(full.as_deref().map(clip));
            }
        }
    }
    let first = parts.first().map_or(Value::Null, |c| c["clip_id"].clone());
    let mut out = json!({ "clips": parts, "clip_id": first });
    if matches!(action, Action::UploadExtend | Action::ReplaceSection) {
        out["full_clips"] = Value::Array(fulls);
    }
    if matches!(action, Action::UploadExtend | Action::UploadCover) {
        out["upload_clip_id"] = json!(upload_clip_id);
    }
    out
}

fn stems(items: &[TaskItem]) -> Value {
    let stems: Vec<Value> = items
        .iter()
        .filter_map(|item| match item {
            TaskItem::Clip(c) => Some(c),
            TaskItem::Paired { .. } => None,
        })
        .map(|c| {
            json!({
                "name": c.stem_type.as_ref().or(c.title.as_ref()),
                "clip_id": c.clip_id,
                "audio_url": c.audio_url,
            })
        })
        .collect();
    json!({ "stems": stems })
}

pub(crate) fn upload(clip_id: &str) -> Value {
    json!({ "clip_id": clip_id })
}

pub(crate) fn persona(persona_id: &str) -> Value {
    json!({ "persona_id": persona_id })
}

pub(crate) fn bpm(b: &Bpm) -> Value {
    json!({ "avg_bpm": b.avg_bpm, "max_bpm": b.max_bpm, "min_bpm": b.min_bpm })
}

/// `source_clip_id` falls back to the clip that was sent.
pub(crate) fn vox(v: &Vox, sent_clip_id: &str) -> Value {
    json!({
        "vox_audio_id": v.vox_audio_id,
        "vocal_start_s": v.vocal_start_s,
        "vocal_end_s": v.vocal_end_s,
        "source_clip_id": v.source_clip_id.as_deref().unwrap_or(sent_clip_id),
    })
}

pub(crate) fn wav(url: &str) -> Value {
    json!({ "wav_url": url })
}

pub(crate) fn midi(m: &Midi) -> Value {
    let instruments: Vec<Value> = m
        .instruments
        .iter()
        .map(|i| {
            let notes: Vec<Value> = i
                .notes
                .iter()
                .map(|n| json!({"pitch": n.pitch, "start": n.start, "end": n.end, "velocity": n.velocity}))
                .collect();
            json!({ "name": i.name, "notes": notes })
        })
        .collect();
    json!({ "midi_url": m.midi_url, "instruments": instruments })
}

pub(crate) fn aligned(a: &AlignedLyrics) -> Value {
    let words: Vec<Value> = a
        .alignment
        .iter()
        .map(|w| {
            json!({"word": w.word, "start_s": w.start_s, "end_s": w.end_s,
                   "p_align": w.p_align, "success": w.success})
        })
        .collect();
    json!({ "alignment": words })
}

pub(crate) fn upsampled(u: &UpsampledTags) -> Value {
    json!({ "upsampled_tags": u.upsampled_tags })
}

pub(crate) fn lyrics(l: &Lyrics) -> Value {
    let results: Vec<Value> = l
        .results
        .iter()
        .map(|r| json!({ "title": r.title, "lyrics": r.lyrics }))
        .collect();
    let first = l.results.first();
    json!({
        "results": results,
        "title": first.and_then(|r| r.title.clone()),
        "lyrics": first.map(|r| r.lyrics.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(body: &str) -> TaskStatus {
        TaskStatus::from_body(&Default::default(), "GET /task", body.as_bytes()).unwrap()
    }

    fn done(action: Action, body: &str, upload: Option<&str>) -> Value {
        match from_task(action, &status(body), upload) {
            Finished::Done(v) => v,
            _ => panic!("not done: {body}"),
        }
    }

    #[test]
    fn unfinished_tasks_and_pairs_without_their_full_clip_are_pending() {
        for body in [
            r#"{"type":"not_ready"}"#,
            r#"{"data":[]}"#,
            r#"{"data":[{"clip_id":"a","state":"succeeded"},{"clip_id":"b","state":"streaming"}]}"#,
            r#"{"data":[{"extended":{"clip_id":"e","state":"succeeded"},"full":null}]}"#,
        ] {
            assert!(matches!(
                from_task(Action::Create, &status(body), None),
                Finished::Pending(None)
            ));
        }
    }

    #[test]
    fn a_succeeded_clip_without_its_file_is_pending_and_says_why() {
        let body = r#"{"data":[{"clip_id":"a","state":"succeeded","audio_url":"http://x/a.mp3"},
            {"clip_id":"b","state":"succeeded","audio_url":""}]}"#;
        let Finished::Pending(Some(waiting)) = from_task(Action::Create, &status(body), None)
        else {
            panic!("a clip without its file is not finished")
        };
        assert!(waiting.contains("clip `b`"), "{waiting}");
    }

    #[test]
    fn a_failed_clip_fails_the_task_with_its_reason() {
        let body = r#"{"data":[{"clip_id":"a","state":"succeeded"},
            {"clip_id":"b","state":"failed","error_message":"model overloaded"}]}"#;
        let Finished::Failed(message) = from_task(Action::Create, &status(body), None) else {
            panic!()
        };
        assert_eq!(message, "clip `b` failed: model overloaded");
    }

    #[test]
    fn pairs_split_into_clips_and_full_clips() {
        let body = r#"{"data":[{"extended":{"clip_id":"e","state":"succeeded","duration":"30.5"},
            "full":{"clip_id":"f","state":"succeeded"}}]}"#;
        let v = done(Action::UploadExtend, body, Some("u"));
        assert_eq!(v["clip_id"], "e");
        assert_eq!(v["clips"][0]["duration"], 30.5);
        assert_eq!(v["full_clips"][0]["clip_id"], "f");
        assert_eq!(v["upload_clip_id"], "u");
        let plain = done(
            Action::ReplaceSection,
            r#"{"data":[{"clip_id":"r","state":"succeeded"}]}"#,
            None,
        );
        assert_eq!(plain["full_clips"], serde_json::json!([]));
        assert!(plain.get("upload_clip_id").is_none());
    }

    #[test]
    fn an_upload_polled_as_a_task_gives_what_the_synchronous_answer_gives() {
        let body = r#"{"data":[{"clip_id":"u","state":"succeeded","title":"Uploaded audio"}]}"#;
        assert_eq!(done(Action::Upload, body, None), upload("u"));
        let empty = status(
            r#"{"data":[{"extended":{"clip_id":"e","state":"succeeded"},"full":{"clip_id":"f","state":"succeeded"}}]}"#,
        );
        assert!(matches!(
            from_task(Action::Upload, &empty, None),
            Finished::Failed(_)
        ));
    }

    #[test]
    fn stems_are_named_by_stem_type_or_else_title() {
        let body = r#"{"data":[{"clip_id":"a","state":"succeeded","stem_type":"drums","title":"x"},
            {"clip_id":"b","state":"succeeded","title":"bass"}]}"#;
        let v = done(Action::StemsFull, body, None);
        assert_eq!(v["stems"][0]["name"], "drums");
        assert_eq!(v["stems"][1]["name"], "bass");
    }
}
