//! Tolerant decoding of response bodies.
//!
//! Every body is decoded through `serde_path_to_error`, so a mismatch names
//! the JSON path, and the error keeps a truncated copy of the raw body.
//! Fields the service is known to vary (`duration` as number or string) have
//! their own deserialisers here; unknown extra fields are always ignored.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};

use super::error::ApiError;

/// Longest slice of a raw body kept in a decode error.
const BODY_EXCERPT: usize = 500;

/// Decodes `body` as `T`, naming the JSON path on failure.
pub(crate) fn decode<T: DeserializeOwned>(endpoint: &str, body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::Decode {
            endpoint: endpoint.to_owned(),
            path,
            message: e.into_inner().to_string(),
            body: excerpt(body),
        }
    })
}

/// The start of a body as text, cut on a character boundary.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= BODY_EXCERPT {
        return text.into_owned();
    }
    let mut end = BODY_EXCERPT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], body.len())
}

/// The message of an error body: the API documents `message`; integrators
/// also saw `error`, `detail` and `type`, so those are read as fallbacks.
pub(crate) fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: Option<serde_json::Value>,
        error: Option<serde_json::Value>,
        detail: Option<serde_json::Value>,
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
    }
    let text = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => b
            .message
            .or(b.error)
            .or(b.detail)
            .or(b.kind)
            .map(text)
            .unwrap_or_else(|| excerpt(body)),
        Err(_) => excerpt(body),
    }
}

/// `duration`: documented as an integer, observed as a decimal string.
pub(crate) fn number_or_string<'de, D: Deserializer<'de>>(de: D) -> Result<Option<f64>, D::Error> {
    use serde_json::Value;
    match Option::<Value>::deserialize(de)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("expected a number or a numeric string, got `{s}`"))
        }),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a number or a numeric string, got `{other}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct D {
        #[serde(default, deserialize_with = "number_or_string")]
        duration: Option<f64>,
    }

    #[test]
    fn duration_accepts_number_string_and_null() {
        let d = |s: &str| decode::<D>("/t", s.as_bytes()).unwrap().duration;
        assert_eq!(d(r#"{"duration": 104}"#), Some(104.0));
        assert_eq!(d(r#"{"duration": "104.88"}"#), Some(104.88));
        assert_eq!(d(r#"{"duration": null}"#), None);
        assert_eq!(d(r#"{}"#), None);
    }

    #[test]
    fn decode_error_names_path_and_keeps_body() {
        let err = decode::<D>("/t", br#"{"duration": "abc"}"#).unwrap_err();
        match err {
            ApiError::Decode { path, body, .. } => {
                assert_eq!(path, "duration");
                assert!(body.contains("abc"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn error_message_falls_back_through_known_fields() {
        assert_eq!(
            error_message(br#"{"code":400,"message":"task not found."}"#),
            "task not found."
        );
        assert_eq!(error_message(br#"{"detail":"nope"}"#), "nope");
        assert_eq!(error_message(b"<html>"), "<html>");
        let long = vec![b'x'; 2000];
        assert!(excerpt(&long).ends_with("(2000 bytes)"));
    }
}
