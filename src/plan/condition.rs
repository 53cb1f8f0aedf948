//! Step conditions (`if:`): whether an instance's condition holds, decided
//! by one function for the plan (inputs, matrix cells, literals) and for
//! the run (step outputs too), so that a condition the plan decides is
//! decided the same way when the pipeline runs, and a resumed run decides
//! it as the first process did (it depends only on inputs and recorded
//! outputs).

use super::resolve::{self, FieldValue, Scope};

/// What a condition gives in a scope.
#[derive(Debug, Clone, PartialEq)]
pub enum Truth {
    True,
    False,
    /// Something it reads has no value yet.
    Unknown,
    /// It gave a value that is not a boolean (e.g. a matrix cell `"yes"`).
    NotBool(serde_json::Value),
}

/// Whether `condition` holds in `scope`; no condition always holds.
pub fn holds(condition: Option<&FieldValue>, scope: &dyn Scope) -> Truth {
    let Some(condition) = condition else {
        return Truth::True;
    };
    match resolve::resolve(condition, scope) {
        Some(serde_json::Value::Bool(true)) => Truth::True,
        Some(serde_json::Value::Bool(false)) => Truth::False,
        Some(other) => Truth::NotBool(other),
        None => Truth::Unknown,
    }
}

/// Whether a step runs in one matrix row, as far as the plan can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Its condition holds (or it has none), and so do those of what it needs.
    Always,
    /// Its condition, or one of what it needs, is false: skipped (condition).
    Never,
    /// Known only at run time: counted as if it ran, as "at most".
    Maybe,
}

impl When {
    /// The standing of a step whose own condition gives `own`, after the
    /// standings of the steps it needs.
    pub fn of(own: &Truth, needs: impl IntoIterator<Item = When>) -> When {
        let mut when = match own {
            Truth::True => When::Always,
            Truth::False => When::Never,
            Truth::Unknown | Truth::NotBool(_) => When::Maybe,
        };
        for need in needs {
            when = match (when, need) {
                (When::Never, _) | (_, When::Never) => When::Never,
                (When::Maybe, _) | (_, When::Maybe) => When::Maybe,
                _ => When::Always,
            };
        }
        when
    }
}

/// The text a condition-skipped instance reports as its reason.
pub fn false_reason(condition: &FieldValue) -> String {
    match condition {
        FieldValue::Tpl(t) => match t.whole() {
            Some(r) => format!("its condition `{r}` is false"),
            None => "its condition is false".to_owned(),
        },
        _ => "its condition is false".to_owned(),
    }
}

/// The reason a dependent of condition-skipped instance `name` reports.
pub fn dependent_reason(name: &str) -> String {
    format!("`{name}` was skipped (condition)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{Context, Reference, parse_template};
    use serde_json::json;

    struct Inputs(serde_json::Value);
    impl Scope for Inputs {
        fn root(&self, r: &Reference) -> Option<(serde_json::Value, usize)> {
            (r.context == Context::Inputs).then(|| (self.0.clone(), 0))
        }
    }

    fn tpl(text: &str) -> FieldValue {
        FieldValue::Tpl(parse_template(text).unwrap())
    }

    #[test]
    fn a_condition_holds_is_false_unknown_or_not_a_boolean() {
        let scope = Inputs(json!({"yes": true, "no": false, "word": "yes"}));
        let cases = [
            (None, Truth::True),
            (Some(FieldValue::Lit(json!(false))), Truth::False),
            (Some(tpl("${{ inputs.yes }}")), Truth::True),
            (Some(tpl("${{ inputs.no }}")), Truth::False),
            (Some(tpl("${{ inputs.missing }}")), Truth::Unknown),
            (
                Some(tpl("${{ inputs.word }}")),
                Truth::NotBool(json!("yes")),
            ),
            (Some(tpl("${{ steps.a.outputs.x }}")), Truth::Unknown),
        ];
        for (condition, want) in cases {
            assert_eq!(holds(condition.as_ref(), &scope), want, "{condition:?}");
        }
    }

    #[test]
    fn never_wins_over_maybe_and_maybe_over_always() {
        use When::*;
        assert_eq!(When::of(&Truth::True, [Always, Always]), Always);
        assert_eq!(When::of(&Truth::True, [Always, Maybe]), Maybe);
        assert_eq!(When::of(&Truth::Unknown, [Never]), Never);
        assert_eq!(When::of(&Truth::False, [Maybe]), Never);
        assert_eq!(When::of(&Truth::Unknown, []), Maybe);
    }
}
