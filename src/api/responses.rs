//! Response bodies of submits and synchronous endpoints, as callers see them.
//!
//! Every type ignores unknown fields. `code` and `message` are never
//! required: the service omits `code` on some submits. Polling results live
//! in `poll`.

use serde::Deserialize;

use super::poll::Clip;

/// Answer to an async submit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Submitted {
    pub task_id: String,
    #[serde(default)]
    pub message: Option<String>,
}

/// Answer to a synchronous upload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UploadedClip {
    pub clip_id: String,
}

/// The upload phase of a one-stop upload-extend / upload-cover call.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct UploadStep {
    #[serde(default)]
    pub clip_id: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// Answer to upload-extend / upload-cover: the task and the uploaded clip.
#[derive(Debug, Clone, PartialEq)]
pub struct StepsSubmitted {
    pub task_id: String,
    /// The clip the upload phase produced, when the service reported it.
    pub upload_clip_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct StepsWire {
    #[serde(default)]
    pub task_id: Option<String>,
    #[serde(default)]
    pub steps: Option<StepsInner>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct StepsInner {
    #[serde(default)]
    pub upload: Option<UploadStep>,
}

/// Answer to persona creation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PersonaCreated {
    pub persona_id: String,
}

/// `data` of `/bpm`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Bpm {
    pub avg_bpm: f64,
    #[serde(default)]
    pub max_bpm: Option<f64>,
    #[serde(default)]
    pub min_bpm: Option<f64>,
}

/// `data` of `/vox`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Vox {
    pub vox_audio_id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub source_clip_id: Option<String>,
    #[serde(default)]
    pub vocal_start_s: Option<f64>,
    #[serde(default)]
    pub vocal_end_s: Option<f64>,
    #[serde(default)]
    pub vocal_audio_url: Option<String>,
}

/// `data` of `/wav`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Wav {
    pub wav_url: String,
}

/// `data` of `/midi`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Midi {
    pub midi_url: String,
    #[serde(default)]
    pub instruments: Vec<MidiInstrument>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MidiInstrument {
    pub name: String,
    #[serde(default)]
    pub notes: Vec<MidiNote>,
}

/// One note: times in seconds, `velocity` in 0–1.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MidiNote {
    pub pitch: u8,
    pub start: f64,
    pub end: f64,
    pub velocity: f64,
}

/// `data` of `/aligned-lyrics`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AlignedLyrics {
    pub alignment: Vec<AlignedWord>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AlignedWord {
    pub word: String,
    pub start_s: f64,
    pub end_s: f64,
    #[serde(default)]
    pub p_align: Option<f64>,
    #[serde(default)]
    pub success: Option<bool>,
}

/// `data` of `/upsample-tags`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UpsampledTags {
    pub upsampled_tags: String,
}

/// Answer to `/lyrics`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Lyrics {
    pub results: Vec<GeneratedLyrics>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GeneratedLyrics {
    #[serde(default)]
    pub title: Option<String>,
    pub lyrics: String,
}

/// Answer to `/get-credits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Credits {
    pub credits: i64,
    #[serde(default)]
    pub extra_credits: i64,
}

/// Answer to a batch submit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchSubmitted {
    pub batch_id: String,
    #[serde(default)]
    pub submitted: Option<u32>,
    #[serde(default)]
    pub tasks: Vec<BatchTask>,
}

/// One item of a batch submit: a task, or the reason the item was refused.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchTask {
    #[serde(default)]
    pub task_id: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Answer to a batch status poll.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchStatus {
    pub batch_id: String,
    #[serde(default)]
    pub tasks: Vec<BatchTaskStatus>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchTaskStatus {
    pub task_id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub data: Vec<Clip>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::decode::decode;
    use crate::api::text::Redactor;

    fn read<T: serde::de::DeserializeOwned>(body: &str) -> T {
        decode(&Redactor::default(), "POST /x", body.as_bytes())
            .unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    /// Submit answers with `code` (documented) and without (seen live).
    #[test]
    fn submit_answers_decode_with_and_without_code() {
        for body in [
            r#"{"code":200,"message":"success","task_id":"t"}"#,
            r#"{"message":"success","task_id":"t"}"#,
            r#"{"task_id":"t"}"#,
        ] {
            assert_eq!(read::<Submitted>(body).task_id, "t", "{body}");
        }
        for body in [
            r#"{"code":200,"message":"success","batch_id":"b","submitted":1,"tasks":[{"task_id":"t"}]}"#,
            r#"{"message":"success","batch_id":"b","submitted":1,"tasks":[{"task_id":"t"}]}"#,
        ] {
            let batch: BatchSubmitted = read(body);
            assert_eq!(batch.batch_id, "b", "{body}");
            assert_eq!(batch.tasks[0].task_id.as_deref(), Some("t"), "{body}");
        }
        for body in [
            r#"{"code":200,"message":"success","task_id":"t","steps":{"upload":{"clip_id":"u"},"extend":{"task_id":"t"}}}"#,
            r#"{"message":"success","task_id":"t","steps":{"upload":{"clip_id":"u"},"cover":{"task_id":"t"}}}"#,
        ] {
            let steps: StepsWire = read(body);
            assert_eq!(steps.task_id.as_deref(), Some("t"), "{body}");
            let upload = steps.steps.and_then(|s| s.upload).unwrap_or_default();
            assert_eq!(upload.clip_id.as_deref(), Some("u"), "{body}");
        }
    }
}
