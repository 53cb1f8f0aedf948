//! Names of fan-out instances.
//!
//! An instance of a step with `for_each` is named, at each level of its
//! fan-out, by the element it runs for: over a list the pipeline writes
//! itself (a literal list, an input, a matrix cell) a text or number
//! element names itself (`jazz ballad` → `jazz-ballad`); an element with
//! the step's `key:` field is named by that field's value; anything else is
//! named by its position, as `0`, `1`, …. Names are unique among the
//! elements of one list (`-2`, `-3`, … are added), never empty, and only
//! `[a-z0-9._-]`, never starting with `.`: they are safe as folder names.
//!
//! The plan (for lists known before the run) and the run name instances
//! with the same function, `labels`.

use serde_json::Value;

use super::PlanStep;
use super::shape::Ty;
use crate::diag::{Code, Diagnostic};
use crate::expr::Context;
use crate::manifest::load::Loaded;
use crate::manifest::spec::Step;
use crate::manifest::value::Tpl;

/// Longest name of one level, before a `-N` that tells equal ones apart.
pub const LABEL_MAX: usize = 40;

/// How the elements of one step's list are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Naming<'a> {
    /// Text and number elements name themselves: the list is the pipeline's own.
    pub by_item: bool,
    /// The step's `key:`: the field of each element that names it.
    pub key: Option<&'a str>,
}

impl<'a> Naming<'a> {
    /// How `step`'s fan-out names its instances.
    pub fn of(step: &'a PlanStep) -> Naming<'a> {
        Naming {
            by_item: step
                .for_each
                .as_ref()
                .is_some_and(|f| !f.uses(Context::Steps)),
            key: step.key.as_deref(),
        }
    }
}

/// The name of each element of `items`, in order.
pub fn labels(items: &[Value], naming: Naming<'_>) -> Vec<String> {
    let mut taken = std::collections::HashSet::new();
    let raw: Vec<Option<String>> = items.iter().map(|item| own_name(item, naming)).collect();
    // Positions stand for themselves: a named element never takes the
    // position of an unnamed one.
    for (i, name) in raw.iter().enumerate() {
        if name.is_none() {
            taken.insert(i.to_string());
        }
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, name)| match name {
            None => i.to_string(),
            Some(name) => {
                let mut candidate = name.clone();
                let mut n = 2;
                while !taken.insert(candidate.clone()) {
                    candidate = format!("{name}-{n}");
                    n += 1;
                }
                candidate
            }
        })
        .collect()
}

/// What names an element, sanitised; `None` for one named by its position.
fn own_name(item: &Value, naming: Naming<'_>) -> Option<String> {
    let named = match (naming.key, item) {
        (Some(key), Value::Object(map)) => map.get(key)?,
        (None, Value::Object(_) | Value::Array(_)) => return None,
        (None, scalar) if naming.by_item => scalar,
        _ => return None,
    };
    let text = match named {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => return None,
    };
    sanitise(&text)
}

/// `text` as a name: lowercase letters, digits, `.`, `_` and `-`, spaces as
/// `-`, anything else dropped; no leading or trailing `.` or `-`; at most
/// `LABEL_MAX` characters. `None` when nothing is left.
pub fn sanitise(text: &str) -> Option<String> {
    let mut out = String::new();
    for c in text.chars() {
        let c = match c {
            c if c.is_ascii_alphanumeric() => c.to_ascii_lowercase(),
            '.' | '_' | '-' => c,
            c if c.is_whitespace() => '-',
            _ => continue,
        };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
        if out.len() >= LABEL_MAX {
            break;
        }
    }
    let trimmed = out.trim_matches(['.', '-']);
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// The names to keep in an instance id for fan-out `path` whose levels are
/// named `names`: none when every level is named by its position (the
/// name is then the path itself).
pub fn for_id(path: &[usize], names: Vec<String>) -> Vec<String> {
    let by_position =
        names.len() == path.len() && names.iter().zip(path).all(|(n, i)| *n == i.to_string());
    if by_position { Vec::new() } else { names }
}

/// The names of the instances step `s` has in matrix row `row`, where the
/// plan knows them: its fan-out is one level, over a list the pipeline
/// writes itself (literal, inputs, matrix cells), and some element is named
/// by more than its position. Empty otherwise; the run names them the same.
pub fn planned(plan: &super::Plan, row: usize, s: usize) -> Vec<String> {
    let [a] = plan.steps[s].axis[..] else {
        return Vec::new();
    };
    let step = &plan.steps[a];
    let naming = Naming::of(step);
    let (Some(list), true) = (&step.for_each, naming.by_item) else {
        return Vec::new();
    };
    let scope = PlanScope { plan, row };
    let Some(Value::Array(items)) = super::resolve::resolve(list, &scope) else {
        return Vec::new();
    };
    let labels = labels(&items, naming);
    let path: Vec<usize> = (0..labels.len()).collect();
    let named = labels.iter().zip(&path).any(|(l, i)| *l != i.to_string());
    if named { labels } else { Vec::new() }
}

/// What the plan knows of one matrix row: inputs, its cells, the environment.
struct PlanScope<'a> {
    plan: &'a super::Plan,
    row: usize,
}

impl super::resolve::Scope for PlanScope<'_> {
    fn root(&self, r: &crate::expr::Reference) -> Option<(Value, usize)> {
        let name = r.field(0)?;
        match r.context {
            Context::Inputs => Some((self.plan.inputs.get(name)?.clone(), 1)),
            Context::Matrix => Some((
                self.plan.instances.get(self.row)?.matrix.get(name)?.clone(),
                1,
            )),
            Context::Env => Some((crate::expr::env_value(name)?.into(), 1)),
            Context::Steps | Context::Item => None,
        }
    }
}

/// The problem with step `id`'s `key:`, if it has one: it needs a
/// `for_each` whose elements are objects with that field (`elem` is their
/// type; a literal list is looked at element by element).
pub(super) fn check_key(
    loaded: &Loaded,
    id: &str,
    step: &Step,
    elem: Option<&Ty>,
) -> Option<Diagnostic> {
    let key = step.key.as_deref()?;
    let entry = loaded.step_entry(id);
    let span = entry
        .and_then(|(_, node)| node.get("key"))
        .or(entry.map(|(k, _)| k))
        .map_or(loaded.root.span, |n| n.span);
    let problem = |message: String, help: String| {
        Some(
            Diagnostic::new(Code::KeyField, &loaded.source, span, message)
                .label("names each instance")
                .help(help),
        )
    };
    let Some(for_each) = &step.for_each else {
        return problem(
            format!("step `{id}` has `key: {key}` but no `for_each`"),
            "`key` names the instances of a `for_each`; add one, or remove `key`".to_owned(),
        );
    };
    let fields: Vec<String> = match (elem, for_each) {
        (Some(Ty::Obj(_, fields)), _) => fields.iter().map(|(n, _)| (*n).to_owned()).collect(),
        (_, Tpl::Lit(items)) if items.iter().any(Value::is_object) => {
            let mut fields: Vec<String> = Vec::new();
            for name in items
                .iter()
                .filter_map(Value::as_object)
                .flat_map(|o| o.keys())
            {
                if !fields.contains(name) {
                    fields.push(name.clone());
                }
            }
            fields
        }
        (None | Some(Ty::Any), _) => return None,
        (Some(other), _) => {
            return problem(
                format!(
                    "`key: {key}` names a field, but the elements of `for_each` in step `{id}` are {}",
                    plural_of(other)
                ),
                "remove `key`: only objects have fields; text and numbers of the pipeline's own lists name their instances themselves".to_owned(),
            );
        }
    };
    if fields.iter().any(|f| f == key) {
        return None;
    }
    let help =
        crate::diag::did_you_mean(key, fields.iter().map(String::as_str)).unwrap_or_else(|| {
            let list: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
            format!("the elements have: {}", list.join(", "))
        });
    problem(
        format!("`key: {key}` names no field of the elements of `for_each` in step `{id}`"),
        help,
    )
}

/// `a string` → `strings`, for one element type in a message.
fn plural_of(ty: &Ty) -> String {
    let list = Ty::List(Box::new(ty.clone()), super::shape::Count::Exact(2)).to_string();
    list.strip_prefix("a list of ").unwrap_or(&list).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const ITEMS: Naming<'static> = Naming {
        by_item: true,
        key: None,
    };

    fn names(items: Value, naming: Naming<'_>) -> Vec<String> {
        labels(items.as_array().unwrap(), naming)
    }

    #[test]
    fn elements_are_named_by_themselves_their_key_or_their_position() {
        let cases: Vec<(Value, Naming<'_>, Vec<&str>)> = vec![
            (
                json!(["jazz ballad", "Lo-Fi", "jazz  ballad"]),
                ITEMS,
                vec!["jazz-ballad", "lo-fi", "jazz-ballad-2"],
            ),
            (json!([90, 1.5, true]), ITEMS, vec!["90", "1.5", "true"]),
            // Nothing left after sanitising, null, or a list: the position.
            (
                json!(["???", null, [1], "ok"]),
                ITEMS,
                vec!["0", "1", "2", "ok"],
            ),
            // A named element does not take a position another element stands for.
            (json!(["1", null]), ITEMS, vec!["1-2", "1"]),
            // Objects need a key; elements without the field fall back to their position.
            (json!([{"s": "a"}, {"s": "b"}]), ITEMS, vec!["0", "1"]),
            (
                json!([{"s": "Jazz"}, {"t": 1}, {"s": "jazz"}]),
                Naming {
                    by_item: false,
                    key: Some("s"),
                },
                vec!["jazz", "1", "jazz-2"],
            ),
            // Lists from step outputs name scalars by position.
            (
                json!(["c1", "c2"]),
                Naming {
                    by_item: false,
                    key: None,
                },
                vec!["0", "1"],
            ),
            // Hostile text cannot climb out of a folder.
            (
                json!(["../..", ".hidden", "a/b"]),
                ITEMS,
                vec!["0", "hidden", "ab"],
            ),
        ];
        for (items, naming, want) in cases {
            assert_eq!(names(items.clone(), naming), want, "{items}");
        }
    }

    #[test]
    fn names_that_are_only_positions_are_not_kept() {
        assert!(for_id(&[2, 0], vec!["2".into(), "0".into()]).is_empty());
        assert_eq!(
            for_id(&[2, 0], vec!["jazz".into(), "0".into()]),
            vec!["jazz".to_owned(), "0".to_owned()]
        );
    }

    proptest! {
        #[test]
        fn names_are_non_empty_unique_and_safe(
            items in proptest::collection::vec(
                prop_oneof![
                    any::<String>().prop_map(Value::from),
                    "[a-c ]{0,3}".prop_map(Value::from),
                    any::<i32>().prop_map(Value::from),
                    Just(Value::Null),
                ],
                0..12,
            ),
            by_item in any::<bool>(),
        ) {
            let naming = Naming { by_item, key: None };
            let got = labels(&items, naming);
            prop_assert_eq!(got.len(), items.len());
            let unique: std::collections::HashSet<_> = got.iter().collect();
            prop_assert_eq!(unique.len(), got.len());
            for name in &got {
                prop_assert!(!name.is_empty());
                prop_assert!(!name.starts_with('.'));
                prop_assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')), "{}", name);
                prop_assert_eq!(crate::steps::sanitize::component(name), name.clone());
            }
        }
    }
}
