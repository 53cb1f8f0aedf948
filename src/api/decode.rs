//! Tolerant decoding of response bodies.
//!
//! Every body is decoded through `serde_path_to_error`, so a mismatch names
//! the JSON path, and the error keeps a truncated copy of the raw body.
//! Fields the service is known to vary (`duration` as number or string) have
//! their own deserialisers here; unknown extra fields are always ignored.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::Value;

use super::error::ApiError;
use super::text::{Redactor, Shape};

/// Decodes `body` as `T`, naming the JSON path on failure. Every string in
/// the body is cleaned by `redactor` first (see [`super::text`]), so nothing
/// the server says reaches a caller unsanitised.
pub(crate) fn decode<T: DeserializeOwned>(
    redactor: &Redactor,
    endpoint: &str,
    body: &[u8],
) -> Result<T, ApiError> {
    let fail = |path: String, message: String| ApiError::Decode {
        endpoint: endpoint.to_owned(),
        path,
        message: redactor.line(&message),
        body: excerpt(redactor, body),
    };
    let value = cleaned(redactor, endpoint, body)?;
    typed(value).map_err(|(path, e)| fail(path, e.to_string()))
}

/// `body` as JSON with every string in it cleaned (see [`decode`]).
pub(crate) fn cleaned(redactor: &Redactor, endpoint: &str, body: &[u8]) -> Result<Value, ApiError> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| ApiError::Decode {
        endpoint: endpoint.to_owned(),
        path: ".".to_owned(),
        message: redactor.line(&e.to_string()),
        body: excerpt(redactor, body),
    })?;
    clean_value(redactor, &mut value, Shape::Block);
    Ok(value)
}

/// `value` as `T`. Only a value that does not fit is decoded a second
/// time, through `serde_path_to_error`, to name the path where it fails:
/// tracking the path on every answer costs more than the decoding.
pub(crate) fn typed<T: DeserializeOwned>(value: Value) -> Result<T, (String, serde_json::Error)> {
    if let Ok(t) = T::deserialize(&value) {
        return Ok(t);
    }
    serde_path_to_error::deserialize(value).map_err(|e| (e.path().to_string(), e.into_inner()))
}

/// Cleans every string below `value`; fields that are shown on one line
/// (messages, titles, states, ids) get the one-line shape.
pub(crate) fn clean_value(redactor: &Redactor, value: &mut Value, shape: Shape) {
    match value {
        Value::String(s) => *s = redactor.clean(s, shape),
        Value::Array(items) => {
            for item in items {
                clean_value(redactor, item, shape);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                clean_value(redactor, item, shape_of(key));
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn shape_of(key: &str) -> Shape {
    const LINES: &[&str] = &[
        "message",
        "error",
        "detail",
        "type",
        "title",
        "error_message",
        "tags",
        "negative_tags",
        "state",
        "status",
        "name",
        "mv",
        "stem_type",
        "id",
    ];
    if LINES.contains(&key) || key.ends_with("_id") {
        Shape::Line
    } else {
        Shape::Block
    }
}

/// The start of a body as one clean line.
pub(crate) fn excerpt(redactor: &Redactor, body: &[u8]) -> String {
    redactor.line(&String::from_utf8_lossy(body))
}

/// The message of an error body: the API documents `message`; integrators
/// also saw `error`, `detail` and `type`, so those are read as fallbacks.
/// Always one clean line.
pub(crate) fn error_message(redactor: &Redactor, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: Option<Value>,
        error: Option<Value>,
        detail: Option<Value>,
        #[serde(rename = "type")]
        kind: Option<Value>,
    }
    let text = |v: Value| match v {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let raw = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => b.message.or(b.error).or(b.detail).or(b.kind).map(text),
        Err(_) => None,
    };
    match raw {
        Some(message) => redactor.line(&message),
        None => excerpt(redactor, body),
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
    use proptest::prelude::*;

    #[derive(Debug, Deserialize)]
    struct D {
        #[serde(default, deserialize_with = "number_or_string")]
        duration: Option<f64>,
    }

    #[test]
    fn duration_accepts_number_string_and_null() {
        let r = Redactor::default();
        let d = |s: &str| decode::<D>(&r, "/t", s.as_bytes()).unwrap().duration;
        assert_eq!(d(r#"{"duration": 104}"#), Some(104.0));
        assert_eq!(d(r#"{"duration": "104.88"}"#), Some(104.88));
        assert_eq!(d(r#"{"duration": null}"#), None);
        assert_eq!(d(r#"{"duration": ""}"#), None);
        assert_eq!(d(r#"{}"#), None);
    }

    #[test]
    fn decode_error_names_path_and_keeps_body() {
        let err = decode::<D>(&Redactor::default(), "/t", br#"{"duration": "abc"}"#).unwrap_err();
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
        let r = Redactor::default();
        assert_eq!(
            error_message(&r, br#"{"code":400,"message":"task not found."}"#),
            "task not found."
        );
        assert_eq!(error_message(&r, br#"{"detail":"nope"}"#), "nope");
        assert_eq!(error_message(&r, b"<html>"), "<html>");
        let long = vec![b'x'; 2000];
        assert!(excerpt(&r, &long).ends_with("of 2000 characters]"));
    }

    #[test]
    fn every_string_of_an_answer_is_cleaned_before_it_is_typed() {
        #[derive(Deserialize)]
        struct T {
            title: String,
            lyrics: String,
        }
        let r = Redactor::new("sk-secret-key");
        let title = "t\\u001b[31m".to_owned() + &"x".repeat(1000);
        let body = format!(r#"{{"title":"{title}","lyrics":"la\nla sk-secret-key"}}"#);
        let t: T = decode(&r, "/t", body.as_bytes()).unwrap();
        assert!(
            t.title.starts_with("txxx") && t.title.contains("truncated"),
            "{}",
            t.title
        );
        assert_eq!(t.lyrics, "la\nla <redacted>");
    }

    proptest! {
        /// Error bodies name their text in `message`, `error` or `detail`
        /// (the observed style sends `message` and `error` alike): the
        /// message wins, then `error`, then `detail`, whatever else is there.
        #[test]
        fn error_bodies_give_their_text_from_any_known_field(
            message in proptest::option::of("[a-z ]{1,20}"),
            error in proptest::option::of("[a-z ]{1,20}"),
            detail in proptest::option::of("[a-z ]{1,20}"),
            code in proptest::option::of(400u16..600),
        ) {
            let mut body = serde_json::Map::new();
            for (key, value) in [("message", &message), ("error", &error), ("detail", &detail)] {
                if let Some(text) = value {
                    body.insert(key.to_owned(), Value::String(text.clone()));
                }
            }
            if let Some(code) = code {
                body.insert("code".to_owned(), Value::from(code));
            }
            let raw = Value::Object(body).to_string();
            let got = error_message(&Redactor::default(), raw.as_bytes());
            let r = Redactor::default();
            let want = message.or(error).or(detail).map_or_else(|| r.line(&raw), |t| r.line(&t));
            prop_assert_eq!(got, want);
        }
    }
}
