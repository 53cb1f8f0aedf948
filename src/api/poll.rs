//! Polling results: clips, their states, and `auto_concat` pairs.
//!
//! One `data` array may hold plain clips or pairs (`{extended, full}`,
//! `{replaced, full}`), so items are decoded in two steps: as JSON values,
//! then by shape, keeping the JSON path for errors.

use serde::Deserialize;
use serde_json::Value;

use super::decode::{decode, excerpt, number_or_string};
use super::error::ApiError;
use super::text::Redactor;

/// The state of one clip.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum ClipState {
    Pending,
    Running,
    Streaming,
    Succeeded,
    Failed,
    /// A state this client does not know; treated as not terminal.
    Other(String),
}

impl From<String> for ClipState {
    fn from(s: String) -> ClipState {
        match s.as_str() {
            "pending" | "submitted" | "queued" => ClipState::Pending,
            "running" => ClipState::Running,
            "streaming" => ClipState::Streaming,
            "succeeded" | "complete" => ClipState::Succeeded,
            "failed" | "error" => ClipState::Failed,
            _ => ClipState::Other(s),
        }
    }
}

impl ClipState {
    pub fn is_terminal(&self) -> bool {
        matches!(self, ClipState::Succeeded | ClipState::Failed)
    }
}

/// One clip of a polled task or a webhook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Clip {
    pub clip_id: String,
    pub state: ClipState,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub tags: Option<String>,
    #[serde(default)]
    pub lyrics: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub audio_url: Option<String>,
    #[serde(default)]
    pub video_url: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub mv: Option<String>,
    #[serde(default)]
    pub gpt_description_prompt: Option<String>,
    /// Seconds; the service sends a number or a decimal string.
    #[serde(default, deserialize_with = "number_or_string")]
    pub duration: Option<f64>,
    #[serde(default)]
    pub stem_type: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
}

/// Which pair an `auto_concat` result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairKind {
    /// `{extended, full}` from upload-extend.
    Extended,
    /// `{replaced, full}` from replace-section.
    Replaced,
}

/// One element of a polled task's `data`.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskItem {
    Clip(Clip),
    /// `full` stays `None` while the concatenation is still running.
    Paired {
        kind: PairKind,
        part: Clip,
        full: Option<Box<Clip>>,
    },
}

/// A polled task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskStatus {
    /// The service has no clips yet (`{"type":"not_ready"}` or HTTP 202).
    NotReady,
    /// The clips (or pairs) reported so far; may be empty early on.
    Items(Vec<TaskItem>),
}

#[derive(Debug, Deserialize)]
struct PollWire {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    data: Option<Vec<Value>>,
}

impl TaskStatus {
    /// Decodes a poll body; `endpoint` names the call in errors.
    pub(crate) fn from_body(
        redactor: &Redactor,
        endpoint: &str,
        body: &[u8],
    ) -> Result<TaskStatus, ApiError> {
        let wire: PollWire = decode(redactor, endpoint, body)?;
        let Some(data) = wire.data else {
            if wire.kind.as_deref() == Some("not_ready") {
                return Ok(TaskStatus::NotReady);
            }
            return Err(ApiError::Decode {
                endpoint: endpoint.to_owned(),
                path: "data".to_owned(),
                message: "missing field `data`".to_owned(),
                body: excerpt(redactor, body),
            });
        };
        let mut items = Vec::with_capacity(data.len());
        for (i, item) in data.into_iter().enumerate() {
            items.push(decode_item(redactor, endpoint, i, item, body)?);
        }
        Ok(TaskStatus::Items(items))
    }

    /// Finished means: at least one item, and every clip terminal (a pair
    /// is finished when its part failed or its full clip is terminal).
    pub fn is_finished(&self) -> bool {
        match self {
            TaskStatus::NotReady => false,
            TaskStatus::Items(items) => {
                !items.is_empty()
                    && items.iter().all(|item| match item {
                        TaskItem::Clip(c) => c.state.is_terminal(),
                        TaskItem::Paired { part, full, .. } => {
                            part.state == ClipState::Failed
                                || full.as_ref().is_some_and(|f| f.state.is_terminal())
                        }
                    })
            }
        }
    }

    /// Every clip reported, pairs flattened (part first, then full).
    pub fn clips(&self) -> Vec<&Clip> {
        let mut out = Vec::new();
        if let TaskStatus::Items(items) = self {
            for item in items {
                match item {
                    TaskItem::Clip(c) => out.push(c),
                    TaskItem::Paired { part, full, .. } => {
                        out.push(part);
                        out.extend(full.as_deref());
                    }
                }
            }
        }
        out
    }
}

fn decode_item(
    redactor: &Redactor,
    endpoint: &str,
    index: usize,
    item: Value,
    body: &[u8],
) -> Result<TaskItem, ApiError> {
    let at = |field: &str, e: serde_path_to_error::Error<serde_json::Error>| {
        let inner = e.path().to_string();
        let path = match (field, inner.as_str()) {
            ("", ".") => format!("data[{index}]"),
            ("", p) => format!("data[{index}].{p}"),
            (f, ".") => format!("data[{index}].{f}"),
            (f, p) => format!("data[{index}].{f}.{p}"),
        };
        ApiError::Decode {
            endpoint: endpoint.to_owned(),
            path,
            message: redactor.line(&e.into_inner().to_string()),
            body: excerpt(redactor, body),
        }
    };
    let clip = |field: &str, v: Value| {
        serde_path_to_error::deserialize::<_, Clip>(v).map_err(|e| at(field, e))
    };
    let pair_key = ["extended", "replaced"]
        .into_iter()
        .find(|k| item.get(*k).is_some());
    let (key, mut obj) = match (pair_key, item) {
        (Some(key), Value::Object(obj)) => (key, obj),
        (_, other) => return clip("", other).map(TaskItem::Clip),
    };
    let kind = if key == "extended" {
        PairKind::Extended
    } else {
        PairKind::Replaced
    };
    let part = clip(key, obj.remove(key).unwrap_or(Value::Null))?;
    let full = match obj.remove("full") {
        None | Some(Value::Null) => None,
        Some(v) => Some(Box::new(clip("full", v)?)),
    };
    Ok(TaskItem::Paired { kind, part, full })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_decodes_reference_example_and_extra_fields() {
        let body = br#"{"code":200,"message":"success","data":[
          {"clip_id":"a","state":"succeeded","title":"Starts","duration":"104.88","mv":"chirp-v5","new_field":1},
          {"clip_id":"b","state":"running","duration":12}]}"#;
        let status = TaskStatus::from_body(&Redactor::default(), "/task", body).unwrap();
        let clips = status.clips();
        assert_eq!(clips[0].duration, Some(104.88));
        assert_eq!(clips[1].duration, Some(12.0));
        assert!(!status.is_finished());
    }

    #[test]
    fn poll_decodes_not_ready_and_pairs() {
        let nr = TaskStatus::from_body(
            &Redactor::default(),
            "/task",
            br#"{"type":"not_ready","message":"x"}"#,
        )
        .unwrap();
        assert_eq!(nr, TaskStatus::NotReady);
        let body = br#"{"data":[{"extended":{"clip_id":"e","state":"succeeded"},"full":null},
                                {"replaced":{"clip_id":"r","state":"succeeded"},"full":{"clip_id":"f","state":"succeeded"}}]}"#;
        let status = TaskStatus::from_body(&Redactor::default(), "/task", body).unwrap();
        let TaskStatus::Items(items) = &status else {
            panic!()
        };
        assert!(matches!(
            &items[0],
            TaskItem::Paired {
                kind: PairKind::Extended,
                full: None,
                ..
            }
        ));
        assert!(matches!(
            &items[1],
            TaskItem::Paired {
                kind: PairKind::Replaced,
                full: Some(_),
                ..
            }
        ));
        assert!(!status.is_finished());
        assert_eq!(status.clips().len(), 3);
    }

    #[test]
    fn poll_decode_error_names_item_path() {
        let body = br#"{"data":[{"clip_id":"a","state":"running"},{"clip_id":"b","state":"x","duration":"long"}]}"#;
        let err = TaskStatus::from_body(&Redactor::default(), "/task", body).unwrap_err();
        let ApiError::Decode { path, .. } = err else {
            panic!()
        };
        assert_eq!(path, "data[1].duration");
    }
}
