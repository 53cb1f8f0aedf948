//! Reading a job's resolved `with` block: typed getters that name the field
//! on a mismatch, and a record of which fields were used so that a field the
//! request mapping forgot is reported instead of silently dropped.
//!
//! It knows manifest field names only; which API field each one becomes is
//! decided by `request`.

use std::cell::RefCell;
use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::api::GenerationFields;
use crate::engine::{ErrorKind, StepError};
use crate::plan::rules;

/// Manifest-only fields: they steer planning and are never sent.
const NOT_SENT: &[&str] = &["clip_origin"];

/// A job's fields with typed, tracked access.
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    action: &'static str,
    used: RefCell<BTreeSet<&'a str>>,
}

fn invalid(message: String) -> StepError {
    StepError::new(ErrorKind::Invalid, message)
}

impl<'a> Fields<'a> {
    pub(crate) fn new(map: &'a Map<String, Value>, action: &'static str) -> Fields<'a> {
        Fields {
            map,
            action,
            used: RefCell::new(BTreeSet::new()),
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        let (key, value) = self.map.get_key_value(name)?;
        self.used.borrow_mut().insert(key.as_str());
        (!value.is_null()).then_some(value)
    }

    fn mismatch(&self, name: &str, what: &str, value: &Value) -> StepError {
        invalid(format!(
            "`{}` field `{name}` must be {what}, found `{}`",
            self.action,
            excerpt(value)
        ))
    }

    pub(crate) fn str(&self, name: &str) -> Result<Option<String>, StepError> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => rules::as_text(value)
                .map(Some)
                .ok_or_else(|| self.mismatch(name, "a string", value)),
        }
    }

    pub(crate) fn required_str(&self, name: &str) -> Result<String, StepError> {
        self.str(name)?.ok_or_else(|| {
            invalid(format!(
                "`{}` needs field `{name}`, but it resolved to nothing",
                self.action
            ))
        })
    }

    pub(crate) fn num(&self, name: &str) -> Result<Option<f64>, StepError> {
        let value = match self.get(name) {
            None => return Ok(None),
            Some(v) => v,
        };
        rules::as_number(value)
            .map(Some)
            .ok_or_else(|| self.mismatch(name, "a number", value))
    }

    pub(crate) fn required_num(&self, name: &str) -> Result<f64, StepError> {
        self.num(name)?.ok_or_else(|| {
            invalid(format!(
                "`{}` needs field `{name}`, but it resolved to nothing",
                self.action
            ))
        })
    }

    pub(crate) fn whole(&self, name: &str) -> Result<Option<u32>, StepError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        rules::as_whole(value).map(Some).ok_or_else(|| {
            invalid(format!(
                "`{}` field `{name}` must be a whole number of seconds, found `{}`",
                self.action,
                excerpt(value)
            ))
        })
    }

    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, StepError> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => rules::as_bool(value)
                .map(Some)
                .ok_or_else(|| self.mismatch(name, "`true` or `false`", value)),
        }
    }

    /// A list of clip ids (mashup's `clips`).
    pub(crate) fn str_list(&self, name: &str) -> Result<Vec<String>, StepError> {
        let value = self.get(name).ok_or_else(|| {
            invalid(format!(
                "`{}` needs field `{name}`, but it resolved to nothing",
                self.action
            ))
        })?;
        let items = match value {
            Value::Array(items) => items,
            other => return Err(self.mismatch(name, "a list of clip ids", other)),
        };
        // A whole clip object (`outputs.clips[0]`) stands for its id.
        items
            .iter()
            .map(|item| {
                rules::as_clip_id(item)
                    .ok_or_else(|| self.mismatch(name, "a list of clip ids", item))
            })
            .collect()
    }

    /// The generation fields every generation request shares.
    pub(crate) fn generation(&self) -> Result<GenerationFields, StepError> {
        Ok(GenerationFields {
            custom_mode: self.bool("custom_mode")?,
            mv: self.str("mv")?,
            prompt: self.str("prompt")?,
            gpt_description_prompt: self.str("gpt_description_prompt")?,
            auto_lyrics: self.bool("auto_lyrics")?,
            title: self.str("title")?,
            tags: self.str("tags")?,
            negative_tags: self.str("negative_tags")?,
            make_instrumental: self.bool("make_instrumental")?,
            vocal_gender: self.str("vocal_gender")?,
            style_weight: self.num("style_weight")?,
            weirdness_constraint: self.num("weirdness_constraint")?,
            audio_weight: self.num("audio_weight")?,
            use_suno_cdn: self.bool("use_suno_cdn")?,
            duration: self.whole("duration")?,
            webhook_url: None,
            webhook_secret: None,
        })
    }

    /// Fails if a field was given that the request never read: sending the
    /// request without it would silently ignore what the manifest asked for.
    pub(crate) fn ensure_all_used(&self) -> Result<(), StepError> {
        let used = self.used.borrow();
        let unused: Vec<&str> = self
            .map
            .keys()
            .map(String::as_str)
            .filter(|k| !used.contains(k) && !NOT_SENT.contains(k))
            .collect();
        match unused.as_slice() {
            [] => Ok(()),
            names => Err(invalid(format!(
                "`{}` does not take the field{} {}",
                self.action,
                if names.len() == 1 { "" } else { "s" },
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// A short rendering of a value for messages.
fn excerpt(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn getters_convert_matrix_text_and_name_the_field_on_mismatch() {
        let m = map(json!({"continue_at": "12.5", "custom_mode": "true", "title": 7, "tags": [1]}));
        let f = Fields::new(&m, "extend");
        assert_eq!(f.num("continue_at").unwrap(), Some(12.5));
        assert_eq!(f.bool("custom_mode").unwrap(), Some(true));
        assert_eq!(f.str("title").unwrap().as_deref(), Some("7"));
        let err = f.str("tags").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.message.contains("`tags`"), "{}", err.message);
    }

    #[test]
    fn unused_fields_are_reported_but_manifest_only_ones_are_not() {
        let m = map(json!({"clip": "a", "clip_origin": "upload", "bogus": 1}));
        let f = Fields::new(&m, "wav");
        f.required_str("clip").unwrap();
        let err = f.ensure_all_used().unwrap_err();
        assert!(err.message.contains("`bogus`"), "{}", err.message);
        assert!(!err.message.contains("clip_origin"));
    }
}
