//! Per-task-type rules: required fields, per-model limits, value ranges.
//!
//! The rules read values that are either known (literals, inputs, matrix
//! cells) or only known at run time. Plan-time checks run them on what is
//! known; the engine runs the same rules again once step outputs are
//! resolved, so one set of rules guards both moments.

use indexmap::IndexMap;

use super::models::Models;
use super::shape::Origin;
use crate::action::Action;
use crate::diag::Code;

/// A field's value as far as it is known.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Known(serde_json::Value),
    /// Depends on another step's outputs, `item` or the environment.
    Runtime,
}

impl Val {
    fn str(&self) -> Option<&str> {
        match self {
            Val::Known(serde_json::Value::String(s)) => Some(s),
            _ => None,
        }
    }

    fn num(&self) -> Option<f64> {
        match self {
            Val::Known(serde_json::Value::Number(n)) => n.as_f64(),
            Val::Known(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn bool(&self) -> Option<bool> {
        match self {
            Val::Known(serde_json::Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }
}

/// The kind of value a `with` field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Num,
    Bool,
    Clip,
    ClipList,
}

impl Kind {
    /// How messages name it.
    pub(crate) fn wanted(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Num => "a number",
            Kind::Bool => "`true` or `false`",
            Kind::Clip => "a clip id",
            Kind::ClipList => "a list of two clips",
        }
    }
}

/// The kind of `with` field `field`.
pub(crate) fn kind(field: &str) -> Kind {
    match field {
        "clip" => Kind::Clip,
        "clips" => Kind::ClipList,
        "custom_mode" | "auto_lyrics" | "make_instrumental" | "use_suno_cdn" | "auto_concat" => {
            Kind::Bool
        }
        "continue_at"
        | "audio_weight"
        | "style_weight"
        | "weirdness_constraint"
        | "vocal_start_s"
        | "vocal_end_s"
        | "overpainting_start_s"
        | "overpainting_end_s"
        | "chop_sample_start_s"
        | "chop_sample_end_s"
        | "infill_start_s"
        | "infill_end_s"
        | "duration" => Kind::Num,
        _ => Kind::Text,
    }
}

/// A value read as text: strings, and numbers (a matrix cell such as `7`).
/// The run reads request fields by these same four functions.
pub(crate) fn as_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A value read as a finite number: numbers, and text that parses as one
/// (CSV cells arrive as text).
pub(crate) fn as_number(value: &serde_json::Value) -> Option<f64> {
    let x = match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }?;
    x.is_finite().then_some(x)
}

/// A value read as a whole number of seconds.
pub(crate) fn as_whole(value: &serde_json::Value) -> Option<u32> {
    let x = as_number(value)?;
    (x.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&x)).then_some(x as u32)
}

/// A value read as a boolean: `true`, `false`, or that text.
pub(crate) fn as_bool(value: &serde_json::Value) -> Option<bool> {
    match value {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::String(s) if s == "true" => Some(true),
        serde_json::Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// A clip id as a list element: an id, or a clip object standing for its id.
pub(crate) fn as_clip_id(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(obj) => match obj.get("clip_id") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Whether the run can read `value` for field `name`.
fn fits(name: &str, value: &serde_json::Value) -> bool {
    match kind(name) {
        _ if value.is_null() => true,
        Kind::Num if name == "duration" => as_whole(value).is_some(),
        Kind::Num => as_number(value).is_some(),
        Kind::Bool => as_bool(value).is_some(),
        Kind::Text | Kind::Clip => as_text(value).is_some(),
        Kind::ClipList => value
            .as_array()
            .is_some_and(|items| items.iter().all(|i| as_clip_id(i).is_some())),
    }
}

/// A value as a message quotes it: short, on one line.
fn quoted(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Known values the run could not read as their field's kind: a matrix cell
/// `perhaps` for `make_instrumental`, `soon` for `continue_at`. (Literals are
/// typed when the manifest is read, references by the reference checker.)
fn check_kinds(fields: &IndexMap<String, Val>, out: &mut Vec<Violation>) {
    for (name, value) in fields {
        let Val::Known(value) = value else { continue };
        if fits(name, value) {
            continue;
        }
        let wanted = match kind(name) {
            Kind::Num if name == "duration" => "a whole number of seconds",
            k => k.wanted(),
        };
        out.push(v(
            Code::TypeMismatch,
            Some(name),
            format!("`{name}` needs {wanted}, but gets {}", quoted(value)),
            format!("give `{name}` {wanted}"),
        ));
    }
}

/// One broken rule; `field` is the field to point at (`None`: the step itself).
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub code: Code,
    pub field: Option<String>,
    pub message: String,
    pub help: String,
}

fn v(code: Code, field: Option<&str>, message: String, help: impl Into<String>) -> Violation {
    Violation {
        code,
        field: field.map(str::to_owned),
        message,
        help: help.into(),
    }
}

const DESCRIPTION_MAX: usize = 400;
const TITLE_MAX: usize = 80;
const LYRICS_DESCRIPTION_MAX: usize = 119;
const PERSONA_NAME_MAX: usize = 79;
const VOX_WINDOW_MAX: f64 = 30.0;

/// Checks one step's fields. `origin` is where its source clip came from.
pub fn check(
    action: Action,
    fields: &IndexMap<String, Val>,
    models: &Models,
    origin: Origin,
) -> Vec<Violation> {
    let mut out = Vec::new();
    check_kinds(fields, &mut out);
    let model = check_model(action, fields, models, &mut out);
    check_required(action, fields, &mut out);
    check_lengths(action, fields, model, &mut out);
    check_ranges(fields, &mut out);
    check_enums(fields, model, &mut out);
    check_provenance(action, fields, origin, &mut out);
    out
}

fn check_model<'m>(
    action: Action,
    fields: &IndexMap<String, Val>,
    models: &'m Models,
    out: &mut Vec<Violation>,
) -> Option<&'m super::models::Model> {
    match fields.get("mv") {
        None if action.needs_model() => {
            out.push(v(
                Code::RequiredField,
                None,
                format!("`{}` needs a model (`mv`)", action.name()),
                "add `mv: sonic-v5` to `with`, or set it once under `defaults`",
            ));
            None
        }
        Some(val) => {
            let name = val.str()?;
            match models.get(name) {
                Some(model) if !model.allowed_for(action) => {
                    out.push(v(Code::UnknownModel, Some("mv"), format!("model `{name}` cannot be used by `{}`", action.name()),
                        "the fast model is only accepted by `sample` and `mashup`; use e.g. `sonic-v4-5`"));
                    Some(model)
                }
                Some(model) => Some(model),
                None => {
                    // The list says more than the nearest name: `sonic-v9` is
                    // closest to `sonic-v4`, which is not what was meant.
                    let usable: Vec<String> = models
                        .names()
                        .filter(|n| models.get(n).is_some_and(|m| m.allowed_for(action)))
                        .map(|n| format!("`{n}`"))
                        .collect();
                    let help = format!(
                        "`{}` takes {}; a newer model can be declared under `models:`",
                        action.name(),
                        usable.join(", ")
                    );
                    out.push(v(
                        Code::UnknownModel,
                        Some("mv"),
                        format!("unknown model `{name}`"),
                        help,
                    ));
                    None
                }
            }
        }
        None => None,
    }
}

fn has(fields: &IndexMap<String, Val>, name: &str) -> bool {
    fields.contains_key(name)
}

fn require(fields: &IndexMap<String, Val>, name: &str, why: &str, out: &mut Vec<Violation>) {
    if !has(fields, name) {
        out.push(v(
            Code::RequiredField,
            None,
            format!("`{name}` is required {why}"),
            format!("add `{name}: …` to `with`"),
        ));
    }
}

fn check_required(action: Action, fields: &IndexMap<String, Val>, out: &mut Vec<Violation>) {
    if action.takes_lyrics_or_description() {
        match fields.get("custom_mode") {
            None => out.push(v(Code::RequiredField, None, format!("`{}` needs `custom_mode`", action.name()),
                "add `custom_mode: true` with lyrics in `prompt`, or `custom_mode: false` with `gpt_description_prompt`")),
            Some(mode) => match mode.bool() {
                Some(true) => require(fields, "prompt", "when `custom_mode` is true", out),
                Some(false) => {
                    require(fields, "gpt_description_prompt", "when `custom_mode` is false", out);
                    if fields.get("auto_lyrics").and_then(Val::bool) == Some(true) {
                        out.push(v(Code::ConflictingFields, Some("auto_lyrics"), "`auto_lyrics` needs `custom_mode: true`".to_owned(),
                            "set `custom_mode: true` and describe the song in `prompt`, or drop `auto_lyrics`"));
                    }
                }
                None => {}
            },
        }
    }
    match action {
        Action::Extend => require(
            fields,
            "continue_at",
            "for `extend` (the second to continue from)",
            out,
        ),
        Action::AddVocals => require(
            fields,
            "prompt",
            "for `add_vocals` (the lyrics to sing)",
            out,
        ),
        Action::ReplaceSection => require(
            fields,
            "infill_lyrics",
            "for `replace_section` (the new lyrics)",
            out,
        ),
        Action::Sample => match (has(fields, "url"), has(fields, "clip")) {
            (false, false) => out.push(v(
                Code::RequiredField,
                None,
                "`sample` needs a source: `url` or `clip`".to_owned(),
                "add `url: https://…` or `clip: ${{ steps.<id>.outputs.clip_id }}`",
            )),
            (true, true) => out.push(v(
                Code::ConflictingFields,
                Some("clip"),
                "`sample` takes `url` or `clip`, not both".to_owned(),
                "keep one of them",
            )),
            _ => {}
        },
        _ => {}
    }
}

fn too_long(field: &str, value: &str, max: usize, why: &str, help: &str, out: &mut Vec<Violation>) {
    let n = value.chars().count();
    if n > max {
        out.push(v(
            Code::TooLong,
            Some(field),
            format!("`{field}` is {n} characters long; {why} at most {max}"),
            help,
        ));
    }
}

fn check_lengths(
    action: Action,
    fields: &IndexMap<String, Val>,
    model: Option<&super::models::Model>,
    out: &mut Vec<Violation>,
) {
    let text = |name: &str| fields.get(name).and_then(Val::str);
    if let (Some(p), Some(m)) = (text("prompt"), model) {
        too_long(
            "prompt",
            p,
            m.prompt_max as usize,
            &format!("`{}` allows", m.name),
            "shorten it, or use a model from v4.5 on (5000 characters)",
            out,
        );
    }
    if let (Some(t), Some(m)) = (text("tags"), model)
        && action != Action::UpsampleTags
    {
        too_long(
            "tags",
            t,
            m.tags_max as usize,
            &format!("`{}` allows", m.name),
            "shorten the tags, or use a model from v4.5 on (1000 characters)",
            out,
        );
    }
    if let Some(d) = text("gpt_description_prompt") {
        too_long(
            "gpt_description_prompt",
            d,
            DESCRIPTION_MAX,
            "the service allows",
            "shorten the description",
            out,
        );
    }
    if let Some(t) = text("title") {
        too_long(
            "title",
            t,
            TITLE_MAX,
            "the service allows",
            "shorten the title",
            out,
        );
    }
    if action == Action::Lyrics
        && let Some(d) = text("description")
    {
        too_long(
            "description",
            d,
            LYRICS_DESCRIPTION_MAX,
            "`lyrics` allows",
            "describe the song in under 120 characters",
            out,
        );
    }
    if action == Action::Persona
        && let Some(n) = text("name")
    {
        too_long(
            "name",
            n,
            PERSONA_NAME_MAX,
            "a persona name has",
            "use a name under 80 characters",
            out,
        );
    }
}

fn check_ranges(fields: &IndexMap<String, Val>, out: &mut Vec<Violation>) {
    for name in ["audio_weight", "style_weight", "weirdness_constraint"] {
        if let Some(x) = fields.get(name).and_then(Val::num)
            && !(0.0..=1.0).contains(&x)
        {
            out.push(v(
                Code::OutOfRange,
                Some(name),
                format!("`{name}` is {x}; it must be between 0 and 1"),
                "use a value from 0 to 1",
            ));
        }
    }
    if let Some(d) = fields.get("duration").and_then(Val::num)
        && !(10.0..=360.0).contains(&d)
    {
        out.push(v(
            Code::OutOfRange,
            Some("duration"),
            format!("`duration` is {d}; it must be between 10 and 360 seconds"),
            "use a target length from 10 to 360",
        ));
    }
    for name in [
        "continue_at",
        "vocal_start_s",
        "overpainting_start_s",
        "infill_start_s",
        "chop_sample_start_s",
    ] {
        if let Some(x) = fields.get(name).and_then(Val::num)
            && x < 0.0
        {
            out.push(v(
                Code::OutOfRange,
                Some(name),
                format!("`{name}` is {x}; a time cannot be negative"),
                "use a time in seconds from 0",
            ));
        }
    }
    for (start, end) in [
        ("infill_start_s", "infill_end_s"),
        ("overpainting_start_s", "overpainting_end_s"),
        ("vocal_start_s", "vocal_end_s"),
        ("chop_sample_start_s", "chop_sample_end_s"),
    ] {
        let (Some(s), Some(e)) = (
            fields.get(start).and_then(Val::num),
            fields.get(end).and_then(Val::num),
        ) else {
            continue;
        };
        if e <= s {
            out.push(v(
                Code::OutOfRange,
                Some(end),
                format!("`{end}` ({e}) must be after `{start}` ({s})"),
                format!("make `{end}` larger than `{start}`"),
            ));
        } else if start == "vocal_start_s" && e - s > VOX_WINDOW_MAX {
            out.push(v(
                Code::OutOfRange,
                Some(end),
                format!("the vocal window is {} s; at most 30 s is allowed", e - s),
                "narrow `vocal_start_s`..`vocal_end_s` to 30 seconds",
            ));
        }
    }
}

fn check_enums(
    fields: &IndexMap<String, Val>,
    model: Option<&super::models::Model>,
    out: &mut Vec<Violation>,
) {
    if let Some(g) = fields.get("vocal_gender").and_then(Val::str) {
        if g != "f" && g != "m" {
            out.push(v(
                Code::InvalidValue,
                Some("vocal_gender"),
                format!("`vocal_gender` is `{g}`; it must be `f` or `m`"),
                "write `vocal_gender: f` or `vocal_gender: m`",
            ));
        } else if let Some(m) = model
            && !m.vocal_gender
        {
            out.push(v(
                Code::UnsupportedByModel,
                Some("vocal_gender"),
                format!("`{}` does not support `vocal_gender`", m.name),
                "use a model from v4.5 on, or remove `vocal_gender`",
            ));
        }
    }
    if let Some(c) = fields.get("variation_category").and_then(Val::str) {
        if !matches!(c, "subtle" | "normal" | "high") {
            let help = crate::diag::did_you_mean(c, ["subtle", "normal", "high"])
                .unwrap_or_else(|| "use `subtle`, `normal` or `high`".to_owned());
            out.push(v(
                Code::InvalidValue,
                Some("variation_category"),
                format!("`variation_category` is `{c}`"),
                help,
            ));
        } else if let Some(m) = model
            && !m.variation_category
        {
            out.push(v(
                Code::UnsupportedByModel,
                Some("variation_category"),
                format!("`{}` does not support `variation_category`", m.name),
                "use `mv: sonic-v5`, or remove `variation_category`",
            ));
        }
    }
}

fn check_provenance(
    action: Action,
    fields: &IndexMap<String, Val>,
    origin: Origin,
    out: &mut Vec<Violation>,
) {
    if matches!(action, Action::AddVocals | Action::AddInstrumental) && origin == Origin::Generated
    {
        out.push(v(
            Code::ClipProvenance,
            Some("clip"),
            format!(
                "`{}` only works on uploaded clips, but this clip was generated",
                action.name()
            ),
            "give it a clip from an `upload` step (`${{ steps.<upload>.outputs.clip_id }}`)",
        ));
    }
    if let Some(Val::Known(serde_json::Value::Array(items))) = fields.get("clips")
        && action == Action::Mashup
        && items.len() != 2
    {
        out.push(v(
            Code::MashupClips,
            Some("clips"),
            format!("`mashup` takes exactly two clips, found {}", items.len()),
            "list exactly two clip ids under `clips`",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(pairs: &[(&str, serde_json::Value)]) -> IndexMap<String, Val> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Val::Known(v.clone())))
            .collect()
    }

    fn codes(
        action: Action,
        pairs: &[(&str, serde_json::Value)],
        origin: Origin,
    ) -> Vec<(Code, Option<String>)> {
        let models = Models::with_declared(&IndexMap::new());
        check(action, &fields(pairs), &models, origin)
            .into_iter()
            .map(|v| (v.code, v.field))
            .collect()
    }

    type Case = (
        Action,
        Vec<(&'static str, serde_json::Value)>,
        Vec<(Code, Option<String>)>,
    );

    #[test]
    fn rule_table() {
        use Code::*;
        let long = |n| json!("x".repeat(n));
        let f = |s: &str| Some(s.to_owned());
        let cases: Vec<Case> = vec![
            (
                Action::Create,
                vec![
                    ("mv", json!("sonic-v5")),
                    ("custom_mode", json!(true)),
                    ("prompt", json!("[Verse]")),
                ],
                vec![],
            ),
            (
                Action::Create,
                vec![("mv", json!("sonic-v5")), ("custom_mode", json!(true))],
                vec![(RequiredField, None)],
            ),
            (
                Action::Create,
                vec![("mv", json!("sonic-v5")), ("custom_mode", json!(false))],
                vec![(RequiredField, None)],
            ),
            (
                Action::Create,
                vec![("mv", json!("sonic-v5"))],
                vec![(RequiredField, None)],
            ),
            (
                Action::Create,
                vec![
                    ("custom_mode", json!(false)),
                    ("gpt_description_prompt", json!("x")),
                ],
                vec![(RequiredField, None)],
            ),
            (
                Action::Create,
                vec![
                    ("mv", json!("sonic-v4")),
                    ("custom_mode", json!(true)),
                    ("prompt", long(3001)),
                ],
                vec![(TooLong, f("prompt"))],
            ),
            (
                Action::Create,
                vec![
                    ("mv", json!("sonic-v4-5")),
                    ("custom_mode", json!(true)),
                    ("prompt", long(3001)),
                ],
                vec![],
            ),
            (
                Action::Create,
                vec![
                    ("mv", json!("sonic-v4")),
                    ("custom_mode", json!(true)),
                    ("prompt", json!("p")),
                    ("tags", long(201)),
                ],
                vec![(TooLong, f("tags"))],
            ),
            (
                Action::Create,
                vec![
                    ("mv", json!("sonic-v5")),
                    ("custom_mode", json!(false)),
                    ("gpt_description_prompt", long(401)),
                ],
                vec![(TooLong, f("gpt_description_prompt"))],
            ),
            (
                Action::Create,
                vec![
                    ("mv", json!("sonic-v5")),
                    ("custom_mode", json!(false)),
                    ("gpt_description_prompt", json!("d")),
                    ("title", long(81)),
                ],
                vec![(TooLong, f("title"))],
            ),
            (
                Action::Create,
                vec![
                    ("mv", json!("sonic-v5")),
                    ("custom_mode", json!(false)),
                    ("gpt_description_prompt", json!("d")),
                    ("style_weight", json!(1.01)),
                ],
                vec![(OutOfRange, f("style_weight"))],
            ),
            (
                Action::Create,
                vec![
                    ("mv", json!("sonic-v4")),
                    ("custom_mode", json!(false)),
                    ("gpt_description_prompt", json!("d")),
                    ("vocal_gender", json!("f")),
                ],
                vec![(UnsupportedByModel, f("vocal_gender"))],
            ),
            (
                Action::Create,
                vec![
                    ("mv", json!("sonic-v5")),
                    ("custom_mode", json!(false)),
                    ("gpt_description_prompt", json!("d")),
                    ("vocal_gender", json!("x")),
                ],
                vec![(InvalidValue, f("vocal_gender"))],
            ),
            (
                Action::Create,
                vec![
                    ("mv", json!("sonic-v9")),
                    ("custom_mode", json!(false)),
                    ("gpt_description_prompt", json!("d")),
                ],
                vec![(UnknownModel, f("mv"))],
            ),
            (
                Action::Create,
                vec![
                    ("mv", json!("sonic-v4-5-all")),
                    ("custom_mode", json!(false)),
                    ("gpt_description_prompt", json!("d")),
                ],
                vec![(UnknownModel, f("mv"))],
            ),
            (
                Action::Mashup,
                vec![
                    ("mv", json!("sonic-v4-5-all")),
                    ("custom_mode", json!(false)),
                    ("gpt_description_prompt", json!("d")),
                    ("clips", json!(["a", "b"])),
                ],
                vec![],
            ),
            (
                Action::Mashup,
                vec![
                    ("mv", json!("chirp-v5")),
                    ("custom_mode", json!(false)),
                    ("gpt_description_prompt", json!("d")),
                    ("clips", json!(["a"])),
                ],
                vec![(MashupClips, f("clips"))],
            ),
            (
                Action::Remaster,
                vec![
                    ("mv", json!("sonic-v4-5")),
                    ("variation_category", json!("normal")),
                ],
                vec![(UnsupportedByModel, f("variation_category"))],
            ),
            (
                Action::Remaster,
                vec![
                    ("mv", json!("sonic-v5")),
                    ("variation_category", json!("nromal")),
                ],
                vec![(InvalidValue, f("variation_category"))],
            ),
            (
                Action::Extend,
                vec![
                    ("mv", json!("sonic-v5")),
                    ("custom_mode", json!(false)),
                    ("gpt_description_prompt", json!("d")),
                ],
                vec![(RequiredField, None)],
            ),
            (
                Action::ReplaceSection,
                vec![
                    ("mv", json!("sonic-v5")),
                    ("infill_lyrics", json!("x")),
                    ("infill_start_s", json!(30)),
                    ("infill_end_s", json!(20)),
                ],
                vec![(OutOfRange, f("infill_end_s"))],
            ),
            (
                Action::Vox,
                vec![("vocal_start_s", json!(0)), ("vocal_end_s", json!(31))],
                vec![(OutOfRange, f("vocal_end_s"))],
            ),
            (
                Action::Lyrics,
                vec![("description", long(120))],
                vec![(TooLong, f("description"))],
            ),
            (
                Action::Sample,
                vec![
                    ("mv", json!("sonic-v5")),
                    ("custom_mode", json!(false)),
                    ("gpt_description_prompt", json!("d")),
                ],
                vec![(RequiredField, None)],
            ),
            (Action::Concat, vec![], vec![]),
        ];
        for (action, pairs, want) in cases {
            assert_eq!(
                codes(action, &pairs, Origin::Unknown),
                want,
                "{action:?} {pairs:?}"
            );
        }
    }

    #[test]
    fn provenance_rules() {
        let base = vec![
            ("mv", json!("sonic-v5")),
            ("custom_mode", json!(true)),
            ("prompt", json!("[Verse]")),
        ];
        assert_eq!(
            codes(Action::AddVocals, &base, Origin::Generated),
            vec![(Code::ClipProvenance, Some("clip".to_owned()))]
        );
        assert_eq!(codes(Action::AddVocals, &base, Origin::Upload), vec![]);
        assert_eq!(codes(Action::AddVocals, &base, Origin::Unknown), vec![]);
    }

    #[test]
    fn runtime_values_are_not_judged() {
        let models = Models::with_declared(&IndexMap::new());
        let mut f = IndexMap::new();
        f.insert("mv".to_owned(), Val::Runtime);
        f.insert("custom_mode".to_owned(), Val::Runtime);
        f.insert("style_weight".to_owned(), Val::Runtime);
        assert!(check(Action::Create, &f, &models, Origin::Unknown).is_empty());
    }
}
