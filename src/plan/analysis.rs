//! What the reference pass learns about each step, and the small readings
//! of a step it makes on the way. `refs.rs` produces an [`Analysed`] per
//! step and `build.rs` consumes them; both import this file, so neither
//! imports the other.

use indexmap::IndexMap;

use super::resolve::FieldValue;
use super::shape::{Count, Origin, Ty};
use crate::expr;
use crate::manifest::actions::{ActionWith, ClipOrigin};
use crate::manifest::spec::Step;

/// What the reference pass learned about one step.
#[derive(Debug, Clone)]
pub(super) struct Analysed {
    pub fields: IndexMap<String, FieldValue>,
    pub for_each: Option<FieldValue>,
    /// Count of the `for_each` list, if any.
    pub for_each_count: Option<Count>,
    /// All dependencies (references and `needs`), as file indices.
    pub deps: Vec<usize>,
    /// Dependencies through data references only; these pass fan-out on.
    pub data_deps: Vec<usize>,
    pub origin: Origin,
    /// Type errors already reported for these fields; rules skip them.
    pub broken_fields: Vec<String>,
    /// The parsed `if:`; `None` without one (or when it was reported broken).
    pub condition: Option<FieldValue>,
    /// Steps read as a whole list (`steps.<id>.outputs[*]`), as file indices.
    pub fan_ins: Vec<usize>,
}

/// Type of a `clip` given as a literal id: the user's `clip_origin`, else unknown.
pub(super) fn literal_origin(step: &Step) -> Origin {
    let origin = match &step.with {
        Some(ActionWith::Cover(w)) => w.clip_origin,
        Some(ActionWith::Extend(w)) => w.clip_origin,
        _ => None,
    };
    match origin {
        Some(ClipOrigin::Upload) => Origin::Upload,
        Some(ClipOrigin::Generated) => Origin::Generated,
        None => Origin::Unknown,
    }
}

/// Parses every string of a `with` block into templates.
pub(super) fn field_value(value: &serde_json::Value) -> Result<FieldValue, expr::ExprError> {
    Ok(match value {
        serde_json::Value::String(s) if expr::has_expression(s) => {
            FieldValue::Tpl(expr::parse_template(s)?)
        }
        serde_json::Value::Array(items) => {
            FieldValue::List(items.iter().map(field_value).collect::<Result<_, _>>()?)
        }
        other => FieldValue::Lit(other.clone()),
    })
}

/// The type a `for_each` list's elements have, and how many there are.
pub(super) fn list_parts(ty: &Ty) -> Option<(Ty, Count)> {
    match ty {
        Ty::List(elem, count) => Some(((**elem).clone(), *count)),
        Ty::Any => Some((Ty::Any, Count::Expected(1))),
        _ => None,
    }
}
