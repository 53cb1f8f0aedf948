//! Turning a job into the one API request it stands for: which endpoint,
//! and each manifest field under its API name (`clip` becomes
//! `continue_clip_id`, `clip_id` or `sample_clip_id`; `clips` becomes
//! `mashup_clip_ids`; `clip_origin` is never sent).
//!
//! Building is synchronous and separate from sending, so a malformed field
//! is refused before anything leaves the machine.

use crate::action::Action;
use crate::api::{
    CreateRequest, MashupRequest, PersonaRequest, ReplaceSectionRequest, SampleRequest, TaskType,
    UploadCoverRequest, UploadExtendRequest, VoxRequest,
};
use crate::engine::{ErrorKind, Job, StepError};

use super::fields::Fields;

/// One request, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ApiCall {
    Create(CreateRequest),
    Upload { url: String },
    UploadExtend(UploadExtendRequest),
    UploadCover(UploadCoverRequest),
    Persona(PersonaRequest),
    Sample(SampleRequest),
    Mashup(MashupRequest),
    ReplaceSection(ReplaceSectionRequest),
    Bpm { clip_id: String },
    Vox(VoxRequest),
    Wav { clip_id: String },
    Midi { clip_id: String },
    AlignedLyrics { clip_id: String },
    UpsampleTags { tags: String },
    StemsBasic { clip_id: String },
    StemsFull { clip_id: String },
    Lyrics { description: String },
}

/// The `task_type` for a create-endpoint operation name.
fn task_type(operation: &str) -> Option<TaskType> {
    Some(match operation {
        "create_music" => TaskType::CreateMusic,
        "extend_music" => TaskType::ExtendMusic,
        "cover_music" => TaskType::CoverMusic,
        "concat_music" => TaskType::ConcatMusic,
        "persona_music" => TaskType::PersonaMusic,
        "extend_upload_music" => TaskType::ExtendUploadMusic,
        "cover_upload_music" => TaskType::CoverUploadMusic,
        "remaster" => TaskType::Remaster,
        "add_instrumental" => TaskType::AddInstrumental,
        "add_vocals" => TaskType::AddVocals,
        _ => return None,
    })
}

/// Builds the request for `job`, reading every field it was given.
pub(crate) fn build(job: &Job) -> Result<ApiCall, StepError> {
    let f = Fields::new(&job.fields, job.action.name());
    let call = if job.action.uses_create_endpoint() {
        ApiCall::Create(create(job, &f)?)
    } else {
        other(job.action, &f)?
    };
    f.ensure_all_used()?;
    Ok(call)
}

fn create(job: &Job, f: &Fields<'_>) -> Result<CreateRequest, StepError> {
    let task_type = task_type(job.operation).ok_or_else(|| {
        StepError::new(
            ErrorKind::Invalid,
            format!(
                "`{}` cannot be submitted as operation `{}`",
                job.action.name(),
                job.operation
            ),
        )
    })?;
    let continue_clip_id = match job.action {
        Action::Create | Action::PersonaMusic => None,
        _ => Some(f.required_str("clip")?),
    };
    Ok(CreateRequest {
        task_type: Some(task_type),
        fields: f.generation()?,
        continue_clip_id,
        continue_at: f.num("continue_at")?,
        persona_id: f.str("persona_id")?,
        variation_category: f.str("variation_category")?,
        overpainting_start_s: f.num("overpainting_start_s")?,
        overpainting_end_s: f.num("overpainting_end_s")?,
    })
}

fn other(action: Action, f: &Fields<'_>) -> Result<ApiCall, StepError> {
    let clip = || f.required_str("clip");
    Ok(match action {
        Action::Upload => ApiCall::Upload {
            url: f.required_str("url")?,
        },
        Action::UploadExtend => ApiCall::UploadExtend(UploadExtendRequest {
            url: f.required_str("url")?,
            fields: f.generation()?,
            continue_at: f.num("continue_at")?,
            auto_concat: f.bool("auto_concat")?,
        }),
        Action::UploadCover => ApiCall::UploadCover(UploadCoverRequest {
            url: f.required_str("url")?,
            fields: f.generation()?,
        }),
        Action::Persona => ApiCall::Persona(PersonaRequest {
            name: f.required_str("name")?,
            clip_id: clip()?,
            describe: f.str("describe")?,
            styles: f.str("styles")?,
            vox_audio_id: f.str("vox_audio_id")?,
            vocal_start_s: f.num("vocal_start_s")?,
            vocal_end_s: f.num("vocal_end_s")?,
        }),
        Action::Sample => ApiCall::Sample(SampleRequest {
            url: f.str("url")?,
            sample_clip_id: f.str("clip")?,
            chop_sample_start_s: f.num("chop_sample_start_s")?,
            chop_sample_end_s: f.num("chop_sample_end_s")?,
            fields: f.generation()?,
        }),
        Action::Mashup => ApiCall::Mashup(MashupRequest {
            mashup_clip_ids: f.str_list("clips")?,
            fields: f.generation()?,
        }),
        Action::ReplaceSection => ApiCall::ReplaceSection(ReplaceSectionRequest {
            clip_id: clip()?,
            infill_start_s: f.required_num("infill_start_s")?,
            infill_end_s: f.required_num("infill_end_s")?,
            infill_lyrics: f.str("infill_lyrics")?,
            auto_concat: f.bool("auto_concat")?,
            fields: f.generation()?,
        }),
        Action::Vox => ApiCall::Vox(VoxRequest {
            clip_id: clip()?,
            vocal_start_s: f.num("vocal_start_s")?,
            vocal_end_s: f.num("vocal_end_s")?,
        }),
        Action::Bpm => ApiCall::Bpm { clip_id: clip()? },
        Action::Wav => ApiCall::Wav { clip_id: clip()? },
        Action::Midi => ApiCall::Midi { clip_id: clip()? },
        Action::LyricsTimeline => ApiCall::AlignedLyrics { clip_id: clip()? },
        Action::StemsBasic => ApiCall::StemsBasic { clip_id: clip()? },
        Action::StemsFull => ApiCall::StemsFull { clip_id: clip()? },
        Action::UpsampleTags => ApiCall::UpsampleTags {
            tags: f.required_str("tags")?,
        },
        Action::Lyrics => ApiCall::Lyrics {
            description: f.required_str("description")?,
        },
        // Create-endpoint actions never reach here (see `build`).
        Action::Create
        | Action::Extend
        | Action::Cover
        | Action::Concat
        | Action::PersonaMusic
        | Action::Remaster
        | Action::AddInstrumental
        | Action::AddVocals => {
            return Err(StepError::new(
                ErrorKind::Invalid,
                format!("`{}` is submitted through `create`", action.name()),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::InstanceId;
    use serde_json::{Map, Value, json};

    fn job(action: Action, fields: Map<String, Value>) -> Job {
        Job {
            id: InstanceId {
                row: 0,
                row_key: None,
                step: 0,
                step_id: "s".into(),
                path: vec![],
                names: Vec::new(),
            },
            action,
            operation: action.operation(crate::plan::shape::Origin::Upload),
            fields,
            attempt: 1,
            request_hash: String::new(),
        }
    }

    /// A well-typed value for any manifest field (numbers may be text).
    fn sample_value(name: &str) -> Value {
        match name {
            "custom_mode" | "auto_lyrics" | "make_instrumental" | "use_suno_cdn"
            | "auto_concat" => json!(true),
            "clips" => json!(["a", "b"]),
            "clip_origin" => json!("upload"),
            _ => json!("1"),
        }
    }

    #[test]
    fn every_manifest_field_of_every_action_reaches_its_request() {
        for &action in Action::ALL {
            let fields: Map<String, Value> = action
                .field_names()
                .iter()
                .map(|n| (n.clone(), sample_value(n)))
                .collect();
            if let Err(e) = build(&job(action, fields)) {
                panic!("`{}`: {}", action.name(), e.message);
            }
        }
    }

    #[test]
    fn the_source_clip_takes_each_endpoint_s_name_and_origin_is_never_sent() {
        let wire = |action: Action, fields: Value| {
            let Value::Object(map) = fields else { panic!() };
            match build(&job(action, map)).unwrap() {
                ApiCall::Create(r) => serde_json::to_value(r).unwrap(),
                ApiCall::Sample(r) => serde_json::to_value(r).unwrap(),
                ApiCall::Mashup(r) => serde_json::to_value(r).unwrap(),
                ApiCall::ReplaceSection(r) => serde_json::to_value(r).unwrap(),
                other => panic!("{other:?}"),
            }
        };
        let cover = wire(Action::Cover, json!({"clip": "c", "clip_origin": "upload"}));
        assert_eq!(
            cover,
            json!({"task_type": "cover_upload_music", "continue_clip_id": "c"})
        );
        let sample = wire(Action::Sample, json!({"clip": "c"}));
        assert_eq!(sample, json!({"sample_clip_id": "c"}));
        let mashup = wire(Action::Mashup, json!({"clips": ["a", {"clip_id": "b"}]}));
        assert_eq!(mashup, json!({"mashup_clip_ids": ["a", "b"]}));
        let replace = wire(
            Action::ReplaceSection,
            json!({"clip": "c", "infill_start_s": 1, "infill_end_s": "2.5"}),
        );
        assert_eq!(
            replace,
            json!({"clip_id": "c", "infill_start_s": 1.0, "infill_end_s": 2.5})
        );
    }
}
