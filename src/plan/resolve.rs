//! Turning field values into JSON once the references they use are known.
//!
//! The plan resolves what it can before a run (inputs, matrix cells) to check
//! literal limits early; the engine resolves the rest as step outputs arrive.
//! Both go through `resolve`, with a different `Scope`.

use crate::expr::{Context, Located, Part, Reference, Segment, Template};

/// A `with` field, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Lit(serde_json::Value),
    Tpl(Template),
    List(Vec<FieldValue>),
}

impl FieldValue {
    pub fn references(&self) -> Vec<&Reference> {
        match self {
            FieldValue::Lit(_) => Vec::new(),
            FieldValue::Tpl(t) => t.references().collect(),
            FieldValue::List(items) => items.iter().flat_map(FieldValue::references).collect(),
        }
    }

    pub fn uses(&self, context: Context) -> bool {
        self.references().iter().any(|r| r.context == context)
    }
}

/// Where references find their values.
pub trait Scope {
    /// The value of `context` root for `reference` (e.g. the outputs of the
    /// referenced step, the input, the matrix cell), or `None` if it is not
    /// known at this moment. The path after the root is walked by `resolve`.
    fn root(&self, reference: &Reference) -> Option<(serde_json::Value, usize)>;
}

/// The value of `field` in `scope`, or `None` if something it uses is not known yet.
pub fn resolve(field: &FieldValue, scope: &dyn Scope) -> Option<serde_json::Value> {
    match field {
        FieldValue::Lit(v) => Some(v.clone()),
        FieldValue::List(items) => items
            .iter()
            .map(|i| resolve(i, scope))
            .collect::<Option<Vec<_>>>()
            .map(serde_json::Value::Array),
        FieldValue::Tpl(t) => resolve_template(t, scope),
    }
}

pub fn resolve_template(template: &Template, scope: &dyn Scope) -> Option<serde_json::Value> {
    if let Some(r) = template.whole() {
        return lookup(r, scope);
    }
    let mut out = String::new();
    for part in &template.parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Ref(r) => match lookup(r, scope)? {
                serde_json::Value::String(s) => out.push_str(&s),
                serde_json::Value::Null => {}
                other => out.push_str(&other.to_string()),
            },
        }
    }
    Some(serde_json::Value::String(out))
}

/// The value a reference points at.
pub fn lookup(reference: &Reference, scope: &dyn Scope) -> Option<serde_json::Value> {
    let (root, skip) = scope.root(reference)?;
    walk_json(&root, reference.path.get(skip..).unwrap_or(&[]))
}

/// Follows field and index accesses through a JSON value. After `[*]` the
/// rest of the path is followed from each element; the value is the list of
/// what they give, and `None` if any of them gives nothing.
pub fn walk_json(value: &serde_json::Value, path: &[Located]) -> Option<serde_json::Value> {
    let mut current = value;
    for (i, located) in path.iter().enumerate() {
        current = match (&located.segment, current) {
            (Segment::Field(name), serde_json::Value::Object(map)) => map.get(name)?,
            (Segment::Index(i), serde_json::Value::Array(items)) => items.get(*i)?,
            (Segment::Each, serde_json::Value::Array(items)) => {
                let rest = &path[i + 1..];
                return items
                    .iter()
                    .map(|item| walk_json(item, rest))
                    .collect::<Option<Vec<_>>>()
                    .map(serde_json::Value::Array);
            }
            _ => return None,
        };
    }
    Some(current.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::parse_template;
    use serde_json::json;

    struct Inputs;
    impl Scope for Inputs {
        fn root(&self, r: &Reference) -> Option<(serde_json::Value, usize)> {
            match r.context {
                Context::Inputs => Some((json!({"n": 3, "list": ["a", "b"], "s": "x"}), 0)),
                _ => None,
            }
        }
    }

    #[test]
    fn whole_keeps_type_and_interpolation_makes_text() {
        let t = |s: &str| FieldValue::Tpl(parse_template(s).unwrap());
        assert_eq!(resolve(&t("${{ inputs.n }}"), &Inputs), Some(json!(3)));
        assert_eq!(
            resolve(&t("${{ inputs.list[1] }}"), &Inputs),
            Some(json!("b"))
        );
        assert_eq!(
            resolve(&t("take ${{ inputs.n }} of ${{ inputs.s }}"), &Inputs),
            Some(json!("take 3 of x"))
        );
        assert_eq!(resolve(&t("${{ steps.a.outputs.x }}"), &Inputs), None);
        assert_eq!(resolve(&t("${{ inputs.missing }}"), &Inputs), None);
        assert_eq!(
            resolve(&t("${{ inputs.list[*] }}"), &Inputs),
            Some(json!(["a", "b"]))
        );
        assert_eq!(resolve(&t("${{ inputs.list[*].x }}"), &Inputs), None);
        assert_eq!(resolve(&t("${{ inputs.n[*] }}"), &Inputs), None);
    }
}
