//! Error answers and the documented message texts.
//!
//! Messages quoted from the reference's error table are kept verbatim, stale
//! model list and "less than 200" included, because clients match on them.
//! Messages for cases the reference does not document follow the same style.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::config::AnswerStyle;

pub(crate) const MV_INVALID: &str =
    "The 'mv' field is invalid. The model should be 'sonic-v3-5' or 'sonic-v4'.";
pub(crate) const PERSONA_ID_REQUIRED: &str =
    "The 'persona_id' field is required when task_type = persona_music.";
pub(crate) const CONTINUE_CLIP_REQUIRED: &str = "continue_clip_id is required";
pub(crate) const GPT_TOO_LONG: &str =
    "The 'gpt_description_prompt' character length should be less than 200.";
pub(crate) const TITLE_TOO_LONG: &str = "The title character length should be less than 80.";
pub(crate) const DESCRIPTION_REQUIRED: &str = "description is required.";
pub(crate) const DESCRIPTION_TOO_LONG: &str =
    "The description character length should be less than 120.";
pub(crate) const PERSONA_REQUIRED: &str = "name and continue_clip_id are required fields.";
pub(crate) const PERSONA_NAME_TOO_LONG: &str = "The name character length should be less than 80.";
pub(crate) const PERSONA_DESCRIPTION_TOO_LONG: &str =
    "The description character length should be less than 200.";
pub(crate) const TASK_NOT_FOUND: &str = "task not found.";
pub(crate) const MISSING_TASK_ID: &str = "missing task id.";
pub(crate) const AUTH_MISSING: &str = "Authorization header is missing.";
pub(crate) const AUTH_INVALID: &str = "Invalid authorization format.";
pub(crate) const CREDITS_SHORT: &str =
    "The remaining credits are not enough. You can buy more one-time credit packs or subscribe.";
pub(crate) const INTERNAL: &str = "Internal Server Error.";
pub(crate) const TIMEOUT_REFUNDED: &str =
    "Task failed due to timeout. Credits were previously refunded.";
pub(crate) const AUDIO_URL_INACCESSIBLE: &str =
    "Audio URL is not accessible. Please provide a public direct audio file URL.";
pub(crate) const INVALID_AUDIO: &str = "Invalid audio file";
pub(crate) const CATALOG_MATCH: &str = "This audio matches an existing recording in our catalog.";
pub(crate) const RATE_LIMITED: &str = "Too many requests. Please slow down.";
pub(crate) const CLIP_NOT_FOUND: &str = "clip not found.";
pub(crate) const NOT_JSON: &str = "The request body should be a JSON object.";

/// A refusal: HTTP status plus message, answered as
/// `{"code": <status>, "message": "<text>"}` (reference §9 #1), with the
/// same text in `error` too in the observed style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub status: StatusCode,
    pub message: String,
}

impl Failure {
    pub(crate) fn bad(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
    pub(crate) fn unauthorised(message: &str) -> Failure {
        Failure {
            status: StatusCode::UNAUTHORIZED,
            message: message.to_owned(),
        }
    }
    pub(crate) fn rate_limited() -> Failure {
        Failure {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: RATE_LIMITED.to_owned(),
        }
    }
    pub(crate) fn internal() -> Failure {
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: INTERNAL.to_owned(),
        }
    }
}

impl Failure {
    /// The error answer in `style`'s form.
    pub(crate) fn respond(self, style: AnswerStyle) -> Response {
        let mut body = json!({"code": self.status.as_u16(), "message": self.message});
        if style == AnswerStyle::Observed {
            body["error"] = json!(self.message);
        }
        (self.status, Json(body)).into_response()
    }
}

/// `{"code":200,"message":"success", …extra}` for successful answers.
pub(crate) fn success(extra: serde_json::Value) -> serde_json::Value {
    let mut body = json!({"code": 200, "message": "success"});
    if let (Some(map), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        map.extend(extra);
    }
    body
}

/// The answer to an async submit (a task, a batch, a one-stop upload):
/// [`success`] in the documented style; without `code` in the observed one,
/// as the service was seen to answer.
pub(crate) fn submitted(style: AnswerStyle, extra: serde_json::Value) -> serde_json::Value {
    let mut body = success(extra);
    if style == AnswerStyle::Observed
        && let Some(map) = body.as_object_mut()
    {
        map.remove("code");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_answers_drop_code_only_in_the_observed_style() {
        let extra = || json!({"task_id": "t"});
        assert_eq!(
            submitted(AnswerStyle::Observed, extra()),
            json!({"message": "success", "task_id": "t"})
        );
        assert_eq!(
            submitted(AnswerStyle::Documented, extra()),
            json!({"code": 200, "message": "success", "task_id": "t"})
        );
    }
}
