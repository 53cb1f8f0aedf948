//! Turning field values into JSON once the references they use are known.
//!
//! The plan resolves what it can before a run (inputs, matrix cells) to check
//! literal limits early; the engine resolves the rest as step outputs arrive.
//! Both go through `resolve`, with a different `Scope`.

use crate::expr::{
    BinOp, Context, Expr, ExprKind, Func, Located, Part, Reference, Segment, Template, UnOp, number,
};

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
    if let Some(e) = template.whole() {
        return eval(e, scope);
    }
    let mut out = String::new();
    for part in &template.parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Expr(e) => out.push_str(&as_text(&eval(e, scope)?)),
        }
    }
    Some(serde_json::Value::String(out))
}

/// Why `field` has no value in `scope`, for messages: the references that
/// are not known, or else that the expression itself gives nothing.
pub fn why_missing(field: &FieldValue, scope: &dyn Scope) -> String {
    let unknown: Vec<String> = field
        .references()
        .into_iter()
        .filter(|r| lookup(r, scope).is_none())
        .map(|r| format!("`{r}`"))
        .collect();
    if unknown.is_empty() {
        "the expression gives no value (an empty list, no element matching, \
         a division by zero, or values of the wrong type)"
            .to_owned()
    } else {
        format!("{} has no value", unknown.join(", "))
    }
}

/// How a value reads inside text: strings as they are, null as nothing,
/// anything else as JSON.
pub fn as_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The value of an expression in `scope`; `None` when something it uses is
/// not known (yet) or it gives no value.
pub fn eval(expr: &Expr, scope: &dyn Scope) -> Option<serde_json::Value> {
    Eval {
        scope,
        params: Vec::new(),
    }
    .eval(expr)
}

/// `format`'s text: `{N}` replaced by argument `N` as text, `{{` and `}}`
/// literal braces. The error says what is wrong with the format.
pub fn format_text(format: &str, args: &[serde_json::Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = format.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().is_some_and(|(_, n)| *n == '{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek().is_some_and(|(_, n)| *n == '}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let rest = &format[i + 1..];
                let Some(close) = rest.find('}') else {
                    return Err("a `{` is never closed (write `{{` for a literal brace)".to_owned());
                };
                let Ok(n) = rest[..close].trim().parse::<usize>() else {
                    return Err(format!(
                        "`{{{}}}` is not a placeholder; write `{{0}}`, `{{1}}`, … (or `{{{{` for a literal brace)",
                        &rest[..close]
                    ));
                };
                let Some(arg) = args.get(n) else {
                    return Err(format!(
                        "`{{{n}}}` needs argument {n}, but only {} follow the format",
                        args.len()
                    ));
                };
                out.push_str(&as_text(arg));
                for _ in 0..rest[..close].chars().count() + 1 {
                    chars.next();
                }
            }
            '}' => return Err("a lone `}` (write `}}` for a literal brace)".to_owned()),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Equality as expressions see it: numbers by value, strings exactly,
/// lists and objects element by element.
pub fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) => x.as_f64() == y.as_f64(),
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

struct Eval<'s, 'e> {
    scope: &'s dyn Scope,
    /// Lambda parameters bound now, innermost last.
    params: Vec<(&'e str, serde_json::Value)>,
}

/// A sort key: numbers with numbers, strings with strings.
#[derive(PartialEq, PartialOrd)]
enum Key {
    Num(f64),
    Str(String),
}

impl<'e> Eval<'_, 'e> {
    fn eval(&mut self, expr: &'e Expr) -> Option<serde_json::Value> {
        use serde_json::Value as V;
        match &expr.kind {
            ExprKind::Ref(r) => lookup(r, self.scope),
            ExprKind::Param(name) => self
                .params
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone()),
            ExprKind::Lit(lit) => Some(lit.to_json()),
            ExprKind::Unary(UnOp::Not, e) => Some(V::Bool(!self.eval(e)?.as_bool()?)),
            ExprKind::Unary(UnOp::Neg, e) => number(-self.eval(e)?.as_f64()?),
            ExprKind::Binary(op @ (BinOp::And | BinOp::Or), l, r) => {
                // Three-valued: a deciding side decides even if the other is unknown.
                let decides = *op == BinOp::Or;
                let left = self.eval(l).and_then(|v| v.as_bool());
                if left == Some(decides) {
                    return Some(V::Bool(decides));
                }
                let right = self.eval(r).and_then(|v| v.as_bool());
                if right == Some(decides) {
                    return Some(V::Bool(decides));
                }
                left.and(right).map(|_| V::Bool(!decides))
            }
            ExprKind::Binary(op, l, r) => {
                let (a, b) = (self.eval(l)?, self.eval(r)?);
                binary(*op, &a, &b)
            }
            ExprKind::Call { func, args, .. } => self.call(*func, args),
            ExprKind::Lambda { .. } => None,
            ExprKind::Access(base, path) => walk_json(&self.eval(base)?, path),
        }
    }

    /// The lambda `f` applied to `value`.
    fn apply(&mut self, f: &'e Expr, value: &serde_json::Value) -> Option<serde_json::Value> {
        let ExprKind::Lambda { param, body } = &f.kind else {
            return None;
        };
        self.params.push((param, value.clone()));
        let out = self.eval(body);
        self.params.pop();
        out
    }

    fn key(&mut self, f: &'e Expr, value: &serde_json::Value) -> Option<Key> {
        match self.apply(f, value)? {
            serde_json::Value::Number(n) => Some(Key::Num(n.as_f64()?)),
            serde_json::Value::String(s) => Some(Key::Str(s)),
            _ => None,
        }
    }

    /// The elements of `list` with their keys, `None` if a key is missing
    /// or keys of both kinds are mixed.
    fn keyed(
        &mut self,
        list: Vec<serde_json::Value>,
        f: &'e Expr,
    ) -> Option<Vec<(Key, serde_json::Value)>> {
        let keyed = list
            .into_iter()
            .map(|v| Some((self.key(f, &v)?, v)))
            .collect::<Option<Vec<_>>>()?;
        let nums = keyed
            .iter()
            .filter(|(k, _)| matches!(k, Key::Num(_)))
            .count();
        (nums == 0 || nums == keyed.len()).then_some(keyed)
    }

    fn call(&mut self, func: Func, args: &'e [Expr]) -> Option<serde_json::Value> {
        use serde_json::Value as V;
        let list = |v: Option<V>| match v? {
            V::Array(items) => Some(items),
            _ => None,
        };
        let text = |v: Option<V>| match v? {
            V::String(s) => Some(s),
            _ => None,
        };
        let arg = |i: usize| args.get(i);
        match func {
            Func::Contains => match (self.eval(arg(0)?)?, self.eval(arg(1)?)?) {
                (V::String(s), V::String(part)) => Some(V::Bool(s.contains(&part))),
                (V::Array(items), x) => Some(V::Bool(items.iter().any(|i| same(i, &x)))),
                _ => None,
            },
            Func::StartsWith | Func::EndsWith => {
                let s = text(self.eval(arg(0)?))?;
                let p = text(self.eval(arg(1)?))?;
                Some(V::Bool(if func == Func::StartsWith {
                    s.starts_with(&p)
                } else {
                    s.ends_with(&p)
                }))
            }
            Func::Format => {
                let format = text(self.eval(arg(0)?))?;
                let values = args[1..]
                    .iter()
                    .map(|a| self.eval(a))
                    .collect::<Option<Vec<_>>>()?;
                format_text(&format, &values).ok().map(V::String)
            }
            Func::Join => {
                let items = list(self.eval(arg(0)?))?;
                let sep = match arg(1) {
                    Some(a) => text(self.eval(a))?,
                    None => ", ".to_owned(),
                };
                let texts: Vec<String> = items.iter().map(as_text).collect();
                Some(V::String(texts.join(&sep)))
            }
            Func::Length => match self.eval(arg(0)?)? {
                V::Array(items) => Some(V::from(items.len())),
                V::String(s) => Some(V::from(s.chars().count())),
                _ => None,
            },
            Func::Filter => {
                let items = list(self.eval(arg(0)?))?;
                let f = arg(1)?;
                let mut kept = Vec::new();
                for item in items {
                    if self.apply(f, &item)?.as_bool()? {
                        kept.push(item);
                    }
                }
                Some(V::Array(kept))
            }
            Func::Find => {
                let items = list(self.eval(arg(0)?))?;
                let f = arg(1)?;
                for item in items {
                    if self.apply(f, &item)?.as_bool()? {
                        return Some(item);
                    }
                }
                None
            }
            Func::SortBy => {
                let items = list(self.eval(arg(0)?))?;
                let mut keyed = self.keyed(items, arg(1)?)?;
                keyed.sort_by(|(a, _), (b, _)| {
                    a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal)
                });
                Some(V::Array(keyed.into_iter().map(|(_, v)| v).collect()))
            }
            Func::MaxBy | Func::MinBy => {
                let items = list(self.eval(arg(0)?))?;
                let keyed = self.keyed(items, arg(1)?)?;
                let better = |a: &Key, b: &Key| {
                    if func == Func::MaxBy { a > b } else { a < b }
                };
                let mut best: Option<(Key, V)> = None;
                for (k, v) in keyed {
                    if best.as_ref().is_none_or(|(b, _)| better(&k, b)) {
                        best = Some((k, v));
                    }
                }
                best.map(|(_, v)| v)
            }
            Func::First => list(self.eval(arg(0)?))?.into_iter().next(),
            Func::Last => list(self.eval(arg(0)?))?.pop(),
            Func::Pluck => {
                let items = list(self.eval(arg(0)?))?;
                let field = text(self.eval(arg(1)?))?;
                items
                    .iter()
                    .map(|i| i.as_object()?.get(&field).cloned())
                    .collect::<Option<Vec<_>>>()
                    .map(V::Array)
            }
            Func::Flatten => {
                let items = list(self.eval(arg(0)?))?;
                let mut out = Vec::new();
                for item in items {
                    out.extend(list(Some(item))?);
                }
                Some(V::Array(out))
            }
            Func::Abs => number(self.eval(arg(0)?)?.as_f64()?.abs()),
        }
    }
}

/// A binary operator other than `&&` / `||` on two known values.
fn binary(op: BinOp, a: &serde_json::Value, b: &serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value as V;
    let bool = |b: bool| Some(V::Bool(b));
    match op {
        BinOp::Eq => bool(same(a, b)),
        BinOp::Ne => bool(!same(a, b)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let order = match (a, b) {
                (V::Number(x), V::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?)?,
                (V::String(x), V::String(y)) => x.cmp(y),
                _ => return None,
            };
            bool(match op {
                BinOp::Lt => order.is_lt(),
                BinOp::Le => order.is_le(),
                BinOp::Gt => order.is_gt(),
                _ => order.is_ge(),
            })
        }
        _ => {
            let (x, y) = (a.as_f64()?, b.as_f64()?);
            let n = match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div if y == 0.0 => return None,
                BinOp::Div => x / y,
                BinOp::Rem if y == 0.0 => return None,
                _ => x % y,
            };
            number(n)
        }
    }
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

    struct Values;
    impl Scope for Values {
        fn root(&self, r: &Reference) -> Option<(serde_json::Value, usize)> {
            match r.context {
                Context::Inputs => Some((
                    json!({
                        "n": 3, "s": "Jazz ballad", "empty": [], "yes": true, "no": false,
                        "clips": [
                            {"id": "a", "d": 90, "t": "x"},
                            {"id": "b", "d": 120.5, "t": "y"},
                            {"id": "c", "d": 120.5, "t": "z"},
                            {"id": "e", "d": 30, "t": "x"}
                        ],
                        "nested": [[1, 2], [3]]
                    }),
                    0,
                )),
                _ => None,
            }
        }
    }

    #[test]
    fn evaluates_operators_and_functions_table() {
        for (text, want) in [
            ("1 + 2 * 3", Some(json!(7))),
            ("7 / 2", Some(json!(3.5))),
            ("7 % 4 - -1", Some(json!(4))),
            ("1 / 0", None),
            ("1 % 0", None),
            ("inputs.n == 3.0", Some(json!(true))),
            ("'a' < 'b' && 2 >= 2", Some(json!(true))),
            ("'1' == 1", Some(json!(false))),
            ("inputs.nested == 1", Some(json!(false))),
            ("inputs.nested < 1", None),
            ("!inputs.yes || inputs.no", Some(json!(false))),
            ("inputs.no && steps.x.outputs.y", Some(json!(false))),
            ("steps.x.outputs.y && inputs.no", Some(json!(false))),
            ("inputs.yes || steps.x.outputs.y", Some(json!(true))),
            ("inputs.yes && steps.x.outputs.y", None),
            ("inputs.n && true", None),
            ("contains(inputs.s, 'ball')", Some(json!(true))),
            ("contains(inputs.s, 'jazz')", Some(json!(false))),
            (
                "contains(pluck(inputs.clips, 'id'), 'c')",
                Some(json!(true)),
            ),
            (
                "startsWith(inputs.s, 'Jazz') && endsWith(inputs.s, 'lad')",
                Some(json!(true)),
            ),
            (
                "format('{0} in {1} {{ok}}', inputs.n, inputs.s)",
                Some(json!("3 in Jazz ballad {ok}")),
            ),
            ("format('{2}', 1)", None),
            ("join(pluck(inputs.clips, 'id'))", Some(json!("a, b, c, e"))),
            ("join(inputs.nested[0], '-')", Some(json!("1-2"))),
            ("length(inputs.clips) + length('été')", Some(json!(7))),
            (
                "pluck(filter(inputs.clips, c => c.d > 60), 'id')",
                Some(json!(["a", "b", "c"])),
            ),
            ("filter(inputs.clips, c => c.zz > 1)", None),
            ("filter(inputs.empty, c => c > 1)", Some(json!([]))),
            ("find(inputs.clips, c => c.t == 'x').id", Some(json!("a"))),
            ("find(inputs.clips, c => c.t == 'q')", None),
            (
                "pluck(sort_by(inputs.clips, c => c.d), 'id')",
                Some(json!(["e", "a", "b", "c"])),
            ),
            (
                "pluck(sort_by(inputs.clips, c => c.t), 'id')",
                Some(json!(["a", "e", "b", "c"])),
            ),
            ("sort_by(inputs.clips, c => c.id == 'a')", None),
            ("max_by(inputs.clips, c => c.d).id", Some(json!("b"))),
            (
                "min_by(inputs.clips, c => abs(c.d - 100)).id",
                Some(json!("a")),
            ),
            ("max_by(inputs.empty, c => c)", None),
            ("first(inputs.empty)", None),
            ("last(inputs.clips).id", Some(json!("e"))),
            ("first(inputs.clips)['id']", Some(json!("a"))),
            ("inputs.clips[*].id", Some(json!(["a", "b", "c", "e"]))),
            ("flatten(inputs.nested)", Some(json!([1, 2, 3]))),
            ("flatten(inputs.clips)", None),
            ("abs(-2.5)", Some(json!(2.5))),
            ("null", Some(json!(null))),
            (
                "filter(inputs.clips, c => length(filter(inputs.clips, d => d.d > c.d)) == 0)[*].id",
                Some(json!(["b", "c"])),
            ),
        ] {
            let t = FieldValue::Tpl(parse_template(&format!("${{{{ {text} }}}}")).unwrap());
            assert_eq!(resolve(&t, &Values), want, "{text}");
        }
        let t = FieldValue::Tpl(parse_template("n=${{ inputs.n * 2 }} ${{ null }}!").unwrap());
        assert_eq!(resolve(&t, &Values), Some(json!("n=6 !")));
    }

    #[test]
    fn says_why_a_value_is_missing() {
        let t = |s: &str| FieldValue::Tpl(parse_template(s).unwrap());
        assert_eq!(
            why_missing(&t("${{ steps.a.outputs.x + inputs.n }}"), &Values),
            "`steps.a.outputs.x` has no value"
        );
        assert!(
            why_missing(&t("${{ first(inputs.empty) }}"), &Values)
                .starts_with("the expression gives no value")
        );
    }
}
