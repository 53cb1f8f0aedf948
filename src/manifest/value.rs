//! Field value types of the manifest: literals that may instead be
//! `${{ … }}` expressions, and human-readable durations.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::expr;

/// Describes a literal type in messages (`a number`, `true or false`, …).
pub trait Expected {
    const WHAT: &'static str;
}

impl Expected for String {
    const WHAT: &'static str = "a string";
}
impl Expected for f64 {
    const WHAT: &'static str = "a number";
}
impl Expected for u32 {
    const WHAT: &'static str = "a whole number";
}
impl Expected for bool {
    const WHAT: &'static str = "`true` or `false`";
}
impl<T: Expected> Expected for Vec<T> {
    const WHAT: &'static str = "a list";
}

/// A field value: a literal `T`, or a string containing `${{ … }}` that is
/// resolved at plan or run time. For strings, an expression may be embedded
/// in longer text; for other types the string must be a single expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Tpl<T> {
    Lit(T),
    Expr(String),
}

impl<'de, T: DeserializeOwned + Expected> Deserialize<'de> for Tpl<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(deserializer)?;
        if let serde_yaml::Value::String(s) = &value
            && expr::has_expression(s)
        {
            return Ok(Tpl::Expr(s.clone()));
        }
        let found = describe(&value);
        T::deserialize(value).map(Tpl::Lit).map_err(|_| {
            D::Error::custom(format!(
                "invalid type: expected {} or a `${{{{ … }}}}` expression, found {found}",
                T::WHAT
            ))
        })
    }
}

fn describe(value: &serde_yaml::Value) -> String {
    use serde_yaml::Value;
    match value {
        Value::Null => "nothing".to_owned(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("the string `{s}`"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(_) => "a tagged value".to_owned(),
    }
}

impl<T: Serialize> Serialize for Tpl<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Tpl::Lit(v) => v.serialize(serializer),
            Tpl::Expr(s) => s.serialize(serializer),
        }
    }
}

impl<T: JsonSchema> JsonSchema for Tpl<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("Templated_{}", T::schema_name()).into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let literal = generator.subschema_for::<T>();
        if literal.get("type").and_then(|t| t.as_str()) == Some("string") {
            return literal;
        }
        json_schema!({
            "anyOf": [
                literal,
                { "type": "string", "pattern": "^\\s*\\$\\{\\{.*\\}\\}\\s*$",
                  "description": "a `${{ … }}` expression resolved when the pipeline runs" }
            ]
        })
    }
}

/// A step's `if:`: a literal boolean, a `${{ … }}` template, or an
/// expression written bare (`if: inputs.vocals`), as GitHub Actions allows.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Lit(bool),
    /// Text containing `${{ … }}`.
    Expr(String),
    /// Text without `${{`: the expression itself.
    Bare(String),
}

impl Condition {
    /// Characters put before a bare expression to make it a template: the
    /// offset to take off positions inside it so they point into what was written.
    pub const BARE_SHIFT: usize = 3;

    /// The condition as template text (a bare expression wrapped in `${{ }}`),
    /// or the literal.
    pub fn template(&self) -> Result<String, bool> {
        match self {
            Condition::Lit(b) => Err(*b),
            Condition::Expr(text) => Ok(text.clone()),
            Condition::Bare(text) => Ok(format!("${{{{{text}}}}}")),
        }
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(deserializer)?;
        match value {
            serde_yaml::Value::Bool(b) => Ok(Condition::Lit(b)),
            serde_yaml::Value::String(s) if expr::has_expression(&s) => Ok(Condition::Expr(s)),
            serde_yaml::Value::String(s) => Ok(Condition::Bare(s)),
            other => Err(D::Error::custom(format!(
                "invalid type: expected `true`, `false` or an expression, found {}",
                describe(&other)
            ))),
        }
    }
}

impl JsonSchema for Condition {
    fn schema_name() -> Cow<'static, str> {
        "Condition".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "boolean" },
                { "type": "string", "description": "an expression typed as a boolean, with or without `${{ … }}`" }
            ]
        })
    }
}

/// A duration written like `20s`, `15m`, `1h 30m` or `500ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSpec(pub Duration);

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor(PhantomData))
    }
}

struct DurationVisitor(PhantomData<()>);

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = DurationSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as `20s`, `15m` or `500ms`")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationSpec, E> {
        humantime::parse_duration(v.trim())
            .map(DurationSpec)
            .map_err(|_| {
                E::custom(format!(
                    "`{v}` is not a duration; write e.g. `20s`, `15m` or `500ms`"
                ))
            })
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl JsonSchema for DurationSpec {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration such as `20s`, `15m`, `1h 30m` or `500ms`.",
            "pattern": "^\\s*([0-9]+\\s*(ns|us|ms|s|sec|m|min|h|hr|d)\\s*)+$"
        })
    }
}

/// How late a poll may see a finished task: a percentage of the time the
/// task took (`25%`) or a duration (`20s`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatenessSpec {
    /// `25%` is 0.25.
    Fraction(f64),
    Within(Duration),
}

impl<'de> Deserialize<'de> for LatenessSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LatenessVisitor)
    }
}

struct LatenessVisitor;

impl serde::de::Visitor<'_> for LatenessVisitor {
    type Value = LatenessSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a percentage such as `25%` or a duration such as `20s`")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LatenessSpec, E> {
        let text = v.trim();
        if let Some(number) = text.strip_suffix('%') {
            return match number.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(LatenessSpec::Fraction(x / 100.0)),
                _ => Err(E::custom(format!(
                    "`{v}` is not a percentage; write e.g. `25%`"
                ))),
            };
        }
        humantime::parse_duration(text)
            .map(LatenessSpec::Within)
            .map_err(|_| {
                E::custom(format!(
                    "`{v}` is not a lateness; write a percentage of the time a task took, e.g. `25%`, or a duration, e.g. `20s`"
                ))
            })
    }
}

impl JsonSchema for LatenessSpec {
    fn schema_name() -> Cow<'static, str> {
        "Lateness".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A percentage of the time a task took, such as `25%`, or a duration such as `20s`.",
            "pattern": "^\\s*(([0-9]+(\\.[0-9]+)?\\s*%)|([0-9]+\\s*(ns|us|ms|s|sec|m|min|h|hr|d)\\s*)+)\\s*$"
        })
    }
}

/// `needs`: one step id, or a list of them (`needs: up` is `needs: [up]`).
pub fn step_ids<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    deserializer.deserialize_any(StepIdsVisitor)
}

struct StepIdsVisitor;

impl<'de> serde::de::Visitor<'de> for StepIdsVisitor {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a step id or a list of step ids")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<String>, E> {
        Ok(vec![v.to_owned()])
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut ids = Vec::new();
        while let Some(id) = seq.next_element::<String>()? {
            ids.push(id);
        }
        Ok(ids)
    }
}

/// The JSON Schema of `needs`: a step id or a list of them.
pub fn step_ids_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Steps that must finish first, besides those referenced in `with`: one step id or a list of them.",
        "anyOf": [
            { "type": "string" },
            { "type": "array", "items": { "type": "string" } }
        ],
        "default": []
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_or_expression() {
        let v: Tpl<f64> = serde_yaml::from_str("0.5").unwrap();
        assert_eq!(v, Tpl::Lit(0.5));
        let v: Tpl<f64> = serde_yaml::from_str("'${{ matrix.w }}'").unwrap();
        assert_eq!(v, Tpl::Expr("${{ matrix.w }}".into()));
        let err = serde_yaml::from_str::<Tpl<f64>>("high")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected a number or a `${{ … }}` expression, found the string `high`"),
            "{err}"
        );
        let v: Tpl<String> = serde_yaml::from_str("'song ${{ inputs.x }}'").unwrap();
        assert!(matches!(v, Tpl::Expr(_)));
    }

    #[test]
    fn needs_is_one_step_id_or_a_list() {
        #[derive(Deserialize)]
        struct S {
            #[serde(deserialize_with = "step_ids")]
            needs: Vec<String>,
        }
        let one: S = serde_yaml::from_str("needs: up").unwrap();
        assert_eq!(one.needs, vec!["up".to_owned()]);
        let many: S = serde_yaml::from_str("needs: [a, b]").unwrap();
        assert_eq!(many.needs, vec!["a".to_owned(), "b".to_owned()]);
        let err = serde_yaml::from_str::<S>("needs: 3")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("expected a step id or a list of step ids"),
            "{err}"
        );
    }

    #[test]
    fn durations() {
        let d: DurationSpec = serde_yaml::from_str("1m 30s").unwrap();
        assert_eq!(d.0, Duration::from_secs(90));
        let err = serde_yaml::from_str::<DurationSpec>("soon")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`soon` is not a duration"), "{err}");
    }
}
