//! Request bodies, one type per endpoint, serialised exactly as the API
//! documents them. Unset optional fields are omitted rather than sent as
//! `null`, because the service validates types strictly.
//!
//! These types are only ever serialised, so sharing the generation fields
//! through `#[serde(flatten)]` costs nothing in error quality.

use serde::Serialize;

/// `task_type` of `POST /api/v1/sonic/create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    CreateMusic,
    ExtendMusic,
    CoverMusic,
    ConcatMusic,
    PersonaMusic,
    ExtendUploadMusic,
    CoverUploadMusic,
    Remaster,
    AddInstrumental,
    AddVocals,
}

impl TaskType {
    /// The wire name, which is also the operation name in the price table.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::CreateMusic => "create_music",
            TaskType::ExtendMusic => "extend_music",
            TaskType::CoverMusic => "cover_music",
            TaskType::ConcatMusic => "concat_music",
            TaskType::PersonaMusic => "persona_music",
            TaskType::ExtendUploadMusic => "extend_upload_music",
            TaskType::CoverUploadMusic => "cover_upload_music",
            TaskType::Remaster => "remaster",
            TaskType::AddInstrumental => "add_instrumental",
            TaskType::AddVocals => "add_vocals",
        }
    }
}

/// The generation fields shared by create, upload-extend, upload-cover,
/// sample, mashup and replace-section.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GenerationFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_mode: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpt_description_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_lyrics: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negative_tags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub make_instrumental: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocal_gender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style_weight: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weirdness_constraint: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_weight: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_suno_cdn: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<u32>,
}

/// `POST /api/v1/sonic/create`, every task type.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateRequest {
    /// Omitted means `create_music` on the service side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_type: Option<TaskType>,
    #[serde(flatten)]
    pub fields: GenerationFields,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continue_clip_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continue_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persona_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variation_category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overpainting_start_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overpainting_end_s: Option<f64>,
}

impl CreateRequest {
    /// The price-table operation this request is billed as.
    pub fn operation(&self) -> &'static str {
        self.task_type.unwrap_or(TaskType::CreateMusic).as_str()
    }
}

/// `POST /api/v1/sonic/upload-extend`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UploadExtendRequest {
    pub url: String,
    #[serde(flatten)]
    pub fields: GenerationFields,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continue_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_concat: Option<bool>,
}

/// `POST /api/v1/sonic/upload-cover`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UploadCoverRequest {
    pub url: String,
    #[serde(flatten)]
    pub fields: GenerationFields,
}

/// `POST /api/v1/sonic/persona` (current field spelling).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PersonaRequest {
    pub name: String,
    pub clip_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub describe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub styles: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vox_audio_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocal_start_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocal_end_s: Option<f64>,
}

/// `POST /api/v1/sonic/sample`: a source `url` or `sample_clip_id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SampleRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_clip_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chop_sample_start_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chop_sample_end_s: Option<f64>,
    #[serde(flatten)]
    pub fields: GenerationFields,
}

/// `POST /api/v1/sonic/mashup`: exactly two source clips.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MashupRequest {
    pub mashup_clip_ids: Vec<String>,
    #[serde(flatten)]
    pub fields: GenerationFields,
}

/// `POST /api/v1/sonic/replace-section`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplaceSectionRequest {
    pub clip_id: String,
    pub infill_start_s: f64,
    pub infill_end_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infill_lyrics: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_concat: Option<bool>,
    #[serde(flatten)]
    pub fields: GenerationFields,
}

/// `POST /api/v1/sonic/vox`: an optional window of at most 30 s.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VoxRequest {
    pub clip_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocal_start_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocal_end_s: Option<f64>,
}

/// `POST /api/v1/sonic/batch`: up to 10 create bodies.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BatchRequest {
    pub items: Vec<CreateRequest>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ClipIdBody<'a> {
    pub clip_id: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct UploadBody<'a> {
    pub url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TagsBody<'a> {
    pub tags: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct DescriptionBody<'a> {
    pub description: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_omits_unset_fields_and_flattens_generation_fields() {
        let req = CreateRequest {
            task_type: Some(TaskType::CoverUploadMusic),
            continue_clip_id: Some("c".into()),
            fields: GenerationFields {
                custom_mode: Some(true),
                mv: Some("sonic-v5".into()),
                ..GenerationFields::default()
            },
            ..CreateRequest::default()
        };
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"task_type": "cover_upload_music", "custom_mode": true,
                "mv": "sonic-v5", "continue_clip_id": "c"})
        );
        assert_eq!(req.operation(), "cover_upload_music");
        assert_eq!(CreateRequest::default().operation(), "create_music");
    }
}
