//! Polling results: clips, their states, and `auto_concat` pairs.
//!
//! One `data` array may hold plain clips or pairs (`{extended, full}`,
//! `{replaced, full}`), so items are decoded in two steps: as JSON values,
//! then by shape, keeping the JSON path for errors.

use serde::Deserialize;
use serde_json::Value;

use super::decode::{cleaned, excerpt, number_or_string, typed};
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
    /// `succeeded` or `failed`. `streaming` is not: the song is still being
    /// made and its stream URL is not the finished file.
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

impl Clip {
    /// Why this clip is not finished yet, though its state is terminal: a
    /// `succeeded` clip whose `audio_url` is an empty string has no file to
    /// give yet (clients of the live service wait for it). A missing or
    /// `null` URL is no such promise and leaves the clip finished.
    pub fn unsettled(&self) -> Option<String> {
        let blank = self
            .audio_url
            .as_deref()
            .is_some_and(|u| u.trim().is_empty());
        (self.state == ClipState::Succeeded && blank).then(|| {
            format!(
                "clip `{}` is `succeeded` but its `audio_url` is still empty",
                self.clip_id
            )
        })
    }

    /// Terminal, and not [unsettled](Clip::unsettled).
    pub fn is_settled(&self) -> bool {
        self.state.is_terminal() && self.unsettled().is_none()
    }
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
        let mut value = cleaned(redactor, endpoint, body)?;
        let wire = match take_wire(&mut value) {
            Some(wire) => wire,
            // Not the usual shape: decoded as a whole, to say where it fails.
            None => typed::<PollWire>(value).map_err(|(path, e)| ApiError::Decode {
                endpoint: endpoint.to_owned(),
                path,
                message: redactor.line(&e.to_string()),
                body: excerpt(redactor, body),
            })?,
        };
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

    /// Finished means: at least one item, and every clip settled (a pair
    /// is finished when its part failed or its full clip is settled).
    pub fn is_finished(&self) -> bool {
        match self {
            TaskStatus::NotReady => false,
            TaskStatus::Items(items) => {
                !items.is_empty()
                    && items.iter().all(|item| match item {
                        TaskItem::Clip(c) => c.is_settled(),
                        TaskItem::Paired { part, full, .. } => {
                            part.state == ClipState::Failed
                                || full.as_ref().is_some_and(|f| f.is_settled())
                        }
                    })
            }
        }
    }

    /// What an unfinished task is waiting on when its state alone does not
    /// say: the first clip that is `succeeded` without its file.
    pub fn unsettled(&self) -> Option<String> {
        self.clips().into_iter().find_map(Clip::unsettled)
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

/// The poll's `type` and `data`, moved out of a body of the usual shape
/// (an object whose `type` is a string or absent and whose `data` is a list
/// or absent); `None` for any other.
fn take_wire(value: &mut Value) -> Option<PollWire> {
    let obj = value.as_object_mut()?;
    let kind = match obj.get("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(kind)) => Some(kind.clone()),
        Some(_) => return None,
    };
    let data = match obj.get_mut("data") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(std::mem::take(items)),
        Some(_) => return None,
    };
    Some(PollWire { kind, data })
}

fn decode_item(
    redactor: &Redactor,
    endpoint: &str,
    index: usize,
    item: Value,
    body: &[u8],
) -> Result<TaskItem, ApiError> {
    let at = |field: &str, (inner, e): (String, serde_json::Error)| {
        let path = match (field, inner.as_str()) {
            ("", ".") => format!("data[{index}]"),
            ("", p) => format!("data[{index}].{p}"),
            (f, ".") => format!("data[{index}].{f}"),
            (f, p) => format!("data[{index}].{f}.{p}"),
        };
        ApiError::Decode {
            endpoint: endpoint.to_owned(),
            path,
            message: redactor.line(&e.to_string()),
            body: excerpt(redactor, body),
        }
    };
    let clip = |field: &str, v: Value| typed::<Clip>(v).map_err(|e| at(field, e));
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
    use proptest::prelude::*;
    use serde_json::json;

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

    fn decode_poll(body: &str) -> TaskStatus {
        TaskStatus::from_body(&Redactor::default(), "/task", body.as_bytes())
            .unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    /// Every form of a poll's answer seen or documented: whether it is
    /// not-ready, and whether the task is finished.
    #[test]
    fn every_poll_form_decodes() {
        let rows: &[(&str, bool, bool)] = &[
            // (body, not ready, finished)
            (
                r#"{"code":200,"message":"success","data":[]}"#,
                false,
                false,
            ),
            (r#"{"data":[]}"#, false, false),
            (
                r#"{"type":"not_ready","message":"The task is not ready yet."}"#,
                true,
                false,
            ),
            (
                r#"{"type":"not_ready","message":"not yet","error":"not yet"}"#,
                true,
                false,
            ),
            (r#"{"type":"not_ready","error":"not yet"}"#, true, false),
            (
                r#"{"data":[{"clip_id":"a","state":"pending","audio_url":"","image_url":"","duration":null}]}"#,
                false,
                false,
            ),
            (
                r#"{"data":[{"clip_id":"a","state":"running","audio_url":null,"duration":"104.88"}]}"#,
                false,
                false,
            ),
            (
                r#"{"data":[{"clip_id":"a","state":"streaming","audio_url":"http://x/a.mp3?stream=1","image_url":"http://x/a.jpeg","duration":null,"mv":"sonic-v5-5"}]}"#,
                false,
                false,
            ),
            (
                r#"{"data":[{"clip_id":"a","state":"succeeded","audio_url":"","duration":null}]}"#,
                false,
                false,
            ),
            (
                r#"{"data":[{"clip_id":"a","state":"succeeded","audio_url":"http://x/a.mp3","duration":104.88,"mv":"sonic-v5-5"}]}"#,
                false,
                true,
            ),
            (
                r#"{"code":200,"message":"success","data":[{"clip_id":"a","state":"succeeded","audio_url":"http://x/a.mp3","duration":"104.88","mv":"chirp-v5"}]}"#,
                false,
                true,
            ),
            (
                r#"{"data":[{"clip_id":"a","state":"failed","audio_url":"","duration":"","error_message":"x"}]}"#,
                false,
                true,
            ),
        ];
        for (body, not_ready, finished) in rows {
            let status = decode_poll(body);
            assert_eq!(status == TaskStatus::NotReady, *not_ready, "{body}");
            assert_eq!(status.is_finished(), *finished, "{body}");
        }
    }

    #[test]
    fn a_succeeded_clip_without_its_file_keeps_the_task_waiting_and_says_why() {
        let status = decode_poll(
            r#"{"data":[{"clip_id":"a","state":"succeeded","audio_url":"http://x/a.mp3"},
                        {"clip_id":"b","state":"succeeded","audio_url":" "}]}"#,
        );
        assert!(!status.is_finished());
        assert_eq!(
            status.unsettled().as_deref(),
            Some("clip `b` is `succeeded` but its `audio_url` is still empty")
        );
        let streaming =
            decode_poll(r#"{"data":[{"clip_id":"a","state":"streaming","audio_url":""}]}"#);
        assert_eq!(
            streaming.unsettled(),
            None,
            "a streaming clip is simply running"
        );
    }

    /// One field of a generated clip: absent, or this JSON value.
    fn field(values: Vec<Value>) -> impl Strategy<Value = Option<Value>> {
        prop_oneof![Just(None), proptest::sample::select(values).prop_map(Some)]
    }

    proptest! {
        /// Any mix of the forms a clip was seen or documented in decodes,
        /// keeps its values, and finishes exactly when every clip is failed
        /// or succeeded with a file.
        #[test]
        fn clips_in_every_form_decode_and_finish_only_when_settled(
            clips in proptest::collection::vec((
                proptest::sample::select(vec!["pending", "running", "streaming", "succeeded", "failed"]),
                field(vec![Value::Null, json!(""), json!("http://x/a.mp3"), json!("http://x/a.mp3?stream=1")]),
                field(vec![Value::Null, json!(""), json!(104), json!(104.88), json!("104.88")]),
                field(vec![Value::Null, json!(""), json!("http://x/a.jpeg")]),
                field(vec![Value::Null, json!("chirp-v5"), json!("sonic-v5-5")]),
            ), 1..4),
            code in any::<bool>(),
        ) {
            let items: Vec<Value> = clips
                .iter()
                .enumerate()
                .map(|(i, (state, audio, duration, image, mv))| {
                    let mut clip = json!({"clip_id": format!("c{i}"), "state": state});
                    for (key, value) in [("audio_url", audio), ("duration", duration), ("image_url", image), ("mv", mv)] {
                        if let Some(value) = value {
                            clip[key] = value.clone();
                        }
                    }
                    clip
                })
                .collect();
            let mut body = json!({"message": "success", "data": items});
            if code {
                body["code"] = json!(200);
            }
            let status = decode_poll(&body.to_string());
            let decoded = status.clips();
            prop_assert_eq!(decoded.len(), clips.len());
            let mut settled = true;
            for (clip, (state, audio, duration, _, mv)) in decoded.iter().zip(&clips) {
                let want = match duration.as_ref() {
                    Some(Value::Number(n)) => n.as_f64(),
                    Some(Value::String(s)) if !s.is_empty() => s.parse().ok(),
                    _ => None,
                };
                prop_assert_eq!(clip.duration, want);
                prop_assert_eq!(clip.mv.as_deref(), mv.as_ref().and_then(Value::as_str));
                let blank = audio.as_ref().is_some_and(|a| a == "");
                settled &= *state == "failed" || (*state == "succeeded" && !blank);
            }
            prop_assert_eq!(status.is_finished(), settled);
        }
    }
}
