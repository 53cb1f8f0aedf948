//! Reading and validating request fields: types, models and the per-model
//! limits of the reference (§1.5, §1.6).
//!
//! Bodies are read as raw JSON objects rather than typed structs so each
//! wrong type gets the documented message instead of a serde error.

use serde_json::{Map, Value};

use super::reply::{self, Failure};
use super::tasks::Webhook;

pub(crate) type Body = Map<String, Value>;

/// Model versions by their suffix after `sonic-` / `chirp-`.
const VERSIONS: &[&str] = &[
    "v3-5",
    "v4",
    "v4-5",
    "v4-5-all",
    "v4-5-plus",
    "v5",
    "v5-5",
    "v6",
    "v6-wild",
    "v6-mini",
];

/// A validated `mv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Model {
    /// The version suffix, e.g. `v4-5-plus`.
    pub version: String,
    /// `mv` as the request spelled it.
    pub requested: String,
}

impl Model {
    /// Parses `sonic-*` or `chirp-*`; `allow_all` admits `sonic-v4-5-all`,
    /// which create rejects but sample and mashup accept (reference §9 #14).
    pub(crate) fn parse(mv: &str, allow_all: bool) -> Result<Model, Failure> {
        let version = mv
            .strip_prefix("sonic-")
            .or_else(|| mv.strip_prefix("chirp-"));
        match version {
            Some(v) if VERSIONS.contains(&v) && (allow_all || v != "v4-5-all") => Ok(Model {
                version: v.to_owned(),
                requested: mv.to_owned(),
            }),
            _ => Err(Failure::bad(reply::MV_INVALID)),
        }
    }

    /// v4.5 and later: longer prompts and tags, `vocal_gender`.
    pub(crate) fn is_wide(&self) -> bool {
        !matches!(self.version.as_str(), "v3-5" | "v4")
    }

    /// The documented style reports the model in `chirp-` spelling.
    pub(crate) fn chirp(&self) -> String {
        format!("chirp-{}", self.version)
    }
}

fn type_error(name: &str, kind: &str) -> Failure {
    Failure::bad(format!("The '{name}' field should be {kind}."))
}

pub(crate) fn opt_bool(body: &Body, name: &str) -> Result<Option<bool>, Failure> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(type_error(name, "boolean")),
    }
}

pub(crate) fn opt_str<'a>(body: &'a Body, name: &str) -> Result<Option<&'a str>, Failure> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(type_error(name, "a string")),
    }
}

pub(crate) fn opt_num(body: &Body, name: &str) -> Result<Option<f64>, Failure> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(type_error(name, "a number")),
    }
}

/// A non-empty string field, or the given failure.
pub(crate) fn required_str<'a>(
    body: &'a Body,
    name: &str,
    missing: &str,
) -> Result<&'a str, Failure> {
    match opt_str(body, name)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(Failure::bad(missing)),
    }
}

/// A weight in 0–1 (`audio_weight should be 0-1`).
pub(crate) fn weight(body: &Body, name: &str) -> Result<Option<f64>, Failure> {
    match opt_num(body, name).map_err(|_| Failure::bad(format!("{name} should be 0-1")))? {
        Some(w) if !(0.0..=1.0).contains(&w) => Err(Failure::bad(format!("{name} should be 0-1"))),
        w => Ok(w),
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// How a request states what to sing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PromptRule {
    /// `custom_mode` required: lyrics in `prompt` or a brief in `gpt_description_prompt`.
    Mode,
    /// `custom_mode` optional (remaster, add_instrumental, replace-section).
    Optional,
}

/// The validated generation fields (reference §1.6) that clips echo.
#[derive(Debug, Clone, Default)]
pub(crate) struct Generation {
    pub model: Option<Model>,
    pub custom_mode: Option<bool>,
    pub prompt: Option<String>,
    pub gpt_description_prompt: Option<String>,
    pub title: Option<String>,
    pub tags: Option<String>,
    pub negative_tags: Option<String>,
    pub make_instrumental: bool,
    pub style_weight: Option<f64>,
    pub weirdness_constraint: Option<f64>,
    pub webhook: Option<Webhook>,
}

/// Validates the shared generation fields. `model` is `None` for task
/// types that take no `mv` (concat).
pub(crate) fn generation(
    body: &Body,
    model: Option<Model>,
    rule: PromptRule,
) -> Result<Generation, Failure> {
    let custom_mode = opt_bool(body, "custom_mode")?;
    let make_instrumental = opt_bool(body, "make_instrumental")?.unwrap_or(false);
    let auto_lyrics = opt_bool(body, "auto_lyrics")?.unwrap_or(false);
    opt_bool(body, "use_suno_cdn")?;
    let prompt = opt_str(body, "prompt")?.map(str::to_owned);
    let gpt = opt_str(body, "gpt_description_prompt")?.map(str::to_owned);
    if rule == PromptRule::Mode && custom_mode.is_none() {
        return Err(type_error("custom_mode", "boolean"));
    }
    if auto_lyrics && custom_mode != Some(true) {
        return Err(Failure::bad("auto_lyrics requires custom_mode = true."));
    }
    let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
    if rule == PromptRule::Mode && custom_mode == Some(true) && blank(&prompt) && !make_instrumental
    {
        return Err(Failure::bad(
            "The 'prompt' field is required when custom_mode = true.",
        ));
    }
    if rule == PromptRule::Mode && custom_mode == Some(false) && blank(&gpt) {
        return Err(Failure::bad(
            "The 'gpt_description_prompt' field is required when custom_mode = false.",
        ));
    }
    check_lengths(body, model.as_ref(), prompt.as_deref(), gpt.as_deref())?;
    check_vocal_gender(body, model.as_ref())?;
    let webhook = webhook(body)?;
    Ok(Generation {
        model,
        custom_mode,
        prompt,
        gpt_description_prompt: gpt,
        title: opt_str(body, "title")?.map(str::to_owned),
        tags: opt_str(body, "tags")?.map(str::to_owned),
        negative_tags: opt_str(body, "negative_tags")?.map(str::to_owned),
        make_instrumental,
        style_weight: weight(body, "style_weight")?,
        weirdness_constraint: weight(body, "weirdness_constraint")?,
        webhook,
    })
}

fn check_lengths(
    body: &Body,
    model: Option<&Model>,
    prompt: Option<&str>,
    gpt: Option<&str>,
) -> Result<(), Failure> {
    let wide = model.is_none_or(Model::is_wide);
    let (prompt_max, tags_max) = if wide { (5000, 1000) } else { (3000, 200) };
    if prompt.is_some_and(|p| chars(p) > prompt_max) {
        return Err(Failure::bad(format!(
            "The prompt character length should be less than {prompt_max}."
        )));
    }
    if gpt.is_some_and(|g| chars(g) > 400) {
        return Err(Failure::bad(reply::GPT_TOO_LONG));
    }
    if opt_str(body, "tags")?.is_some_and(|t| chars(t) > tags_max) {
        return Err(Failure::bad(format!(
            "The tags character length should be less than {tags_max}."
        )));
    }
    if opt_str(body, "title")?.is_some_and(|t| chars(t) > 80) {
        return Err(Failure::bad(reply::TITLE_TOO_LONG));
    }
    weight(body, "audio_weight")?;
    Ok(())
}

fn check_vocal_gender(body: &Body, model: Option<&Model>) -> Result<(), Failure> {
    let Some(gender) = opt_str(body, "vocal_gender")? else {
        return Ok(());
    };
    if !matches!(gender, "f" | "m") {
        return Err(Failure::bad("vocal_gender should be 'f' or 'm'."));
    }
    if !model.is_some_and(Model::is_wide) {
        return Err(Failure::bad(
            "vocal_gender is only supported by sonic-v4-5 and later models.",
        ));
    }
    Ok(())
}

/// `webhook_url` (+ `webhook_secret`): where to announce the task's end.
pub(crate) fn webhook(body: &Body) -> Result<Option<Webhook>, Failure> {
    let Some(url) = opt_str(body, "webhook_url")? else {
        return Ok(None);
    };
    // The service asks for HTTPS; plain http is allowed here so loopback
    // receivers in tests work.
    let ok = (url.starts_with("https://") || url.starts_with("http://")) && url.len() <= 1024;
    if !ok {
        return Err(Failure::bad(
            "The 'webhook_url' field should be an http(s) URL of at most 1024 characters.",
        ));
    }
    let secret = opt_str(body, "webhook_secret")?.map(str::to_owned);
    Ok(Some(Webhook {
        url: url.to_owned(),
        secret,
    }))
}

/// `mv`, required and valid.
pub(crate) fn model(body: &Body, allow_all: bool) -> Result<Model, Failure> {
    match opt_str(body, "mv") {
        Ok(Some(mv)) => Model::parse(mv, allow_all),
        _ => Err(Failure::bad(reply::MV_INVALID)),
    }
}

/// `duration`: an integer target of 10–360 s, only where `allowed`.
pub(crate) fn duration(body: &Body, allowed: bool) -> Result<Option<u64>, Failure> {
    let Some(v) = body.get("duration").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    if !allowed {
        return Err(Failure::bad(
            "The 'duration' field is not supported for this task type.",
        ));
    }
    match v.as_u64() {
        Some(d) if (10..=360).contains(&d) => Ok(Some(d)),
        _ => Err(Failure::bad(
            "The 'duration' field should be an integer between 10 and 360.",
        )),
    }
}

/// Words that make the sandbox refuse content, standing in for the
/// service's moderation (documented in the sandbox's README section).
pub(crate) fn moderate(generation: &Generation) -> Result<(), Failure> {
    if let Some(line) = generation
        .prompt
        .as_deref()
        .and_then(|p| p.lines().find(|l| l.contains("copyrighted")))
    {
        return Err(Failure::forbidden(format!(
            "The lyrics contain copyrighted content: '{}'. Please use original lyrics.",
            line.trim()
        )));
    }
    if generation
        .gpt_description_prompt
        .as_deref()
        .is_some_and(|d| d.contains("in the style of"))
    {
        return Err(Failure::forbidden(
            "The song description needs moderation review.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_accept_aliases_and_reject_all_on_create() {
        assert!(Model::parse("chirp-v4", false).is_ok());
        assert!(Model::parse("sonic-v6-mini", false).is_ok());
        assert!(Model::parse("sonic-v4-5-all", false).is_err());
        assert!(Model::parse("sonic-v4-5-all", true).is_ok());
        assert!(Model::parse("v5", false).is_err());
        assert_eq!(Model::parse("sonic-v5", false).unwrap().chirp(), "chirp-v5");
    }
}
