//! Checking references: every `${{ … }}` of a step must name something that
//! exists and has a type that fits where it is used. The pass also yields the
//! step's dependency edges, its `for_each` list type, and where its source
//! clip came from.

use std::collections::HashMap;

use indexmap::IndexMap;

use super::analysis::{Analysed, field_value, list_parts, literal_origin};
use super::resolve::{FieldValue, format_text};
use super::shape::{Count, Origin, Ty, WalkError, walk};
use crate::diag::{Code, Diagnostic};
use crate::expr::{
    self, BinOp, Context, Expr, ExprKind, Func, Lit, Located, Reference, Segment, UnOp,
};
use crate::manifest::load::Loaded;
use crate::manifest::spec::{Per, Step};
use crate::manifest::value::{Condition, Tpl};
use crate::manifest::yaml::Node;
use crate::span::Span;

/// What references can point at, shared by all steps.
pub(super) struct StepTypes {
    inputs: IndexMap<String, Ty>,
}

impl StepTypes {
    pub fn new(inputs: &IndexMap<String, Option<serde_json::Value>>) -> Self {
        let inputs = inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map_or(Ty::Any, Ty::of_json)))
            .collect();
        StepTypes { inputs }
    }
}

use super::rules::{Kind, kind};

pub(super) struct RefChecker<'a> {
    loaded: &'a Loaded,
    types: &'a StepTypes,
    index: &'a HashMap<&'a str, usize>,
    id: &'a str,
    step: &'a Step,
    pub diags: Vec<Diagnostic>,
    deps: Vec<usize>,
    data_deps: Vec<usize>,
    fan_ins: Vec<usize>,
}

/// Where a checked value sits in the source, for pointing into it.
#[derive(Clone, Copy)]
struct At<'n> {
    node: Option<&'n Node>,
    /// Characters the parsed text has before what was written (a bare `if:`
    /// expression is parsed wrapped in `${{ }}`).
    shift: usize,
}

impl<'a> RefChecker<'a> {
    pub fn new(
        loaded: &'a Loaded,
        types: &'a StepTypes,
        index: &'a HashMap<&'a str, usize>,
        id: &'a str,
        step: &'a Step,
    ) -> Self {
        RefChecker {
            loaded,
            types,
            index,
            id,
            step,
            diags: Vec::new(),
            deps: Vec::new(),
            data_deps: Vec::new(),
            fan_ins: Vec::new(),
        }
    }

    pub fn analyse(&mut self) -> Analysed {
        let (for_each, item) = self.for_each();
        if let Some(d) = super::names::check_key(self.loaded, self.id, self.step, item.as_ref()) {
            self.push(d);
        }
        // A `for_each` already reported as wrong still gives its step an `item`.
        let item = item.or_else(|| self.step.for_each.as_ref().map(|_| Ty::Any));
        let with_node = self.loaded.with_nodes.get(self.id);
        let json = self
            .step
            .with
            .as_ref()
            .map(|w| w.to_json())
            .unwrap_or_default();
        let mut fields = IndexMap::new();
        let mut broken_fields = Vec::new();
        let mut origin = literal_origin(self.step);
        for (name, value) in json {
            let node = with_node.and_then(|w| w.get(&name));
            let parsed = match field_value(&value) {
                Ok(p) => p,
                Err(e) => {
                    self.syntax_error(&e, node, &name, &value);
                    broken_fields.push(name.clone());
                    fields.insert(name, FieldValue::Lit(value));
                    continue;
                }
            };
            match self.check_field(&name, &parsed, node, item.as_ref()) {
                Ok(Some(o)) => origin = o,
                Ok(None) => {}
                Err(()) => broken_fields.push(name.clone()),
            }
            fields.insert(name, parsed);
        }
        let condition = self.condition(item.as_ref());
        self.needs();
        let mut deps = std::mem::take(&mut self.deps);
        deps.sort_unstable();
        deps.dedup();
        let mut data_deps = std::mem::take(&mut self.data_deps);
        data_deps.sort_unstable();
        data_deps.dedup();
        Analysed {
            fields,
            for_each: for_each.as_ref().map(|(f, _)| f.clone()),
            for_each_count: for_each.map(|(_, c)| c),
            deps,
            data_deps,
            origin,
            broken_fields,
            condition,
            fan_ins: {
                let mut f = std::mem::take(&mut self.fan_ins);
                f.sort_unstable();
                f.dedup();
                f
            },
        }
    }

    /// Parses and types `if:`: a boolean, or an expression typed as one. Its
    /// references are dependencies like those of `with`.
    fn condition(&mut self, item: Option<&Ty>) -> Option<FieldValue> {
        let written = self.step.condition.as_ref()?;
        let node = self.step_node("if");
        let text = match written.template() {
            Ok(text) => text,
            Err(literal) => return Some(FieldValue::Lit(serde_json::Value::Bool(literal))),
        };
        let shift = match written {
            Condition::Bare(_) => Condition::BARE_SHIFT,
            _ => 0,
        };
        let at = At { node, shift };
        let template = match expr::parse_template(&text) {
            Ok(t) => t,
            Err(e) => {
                self.syntax_error_at(&e, at, "if");
                return None;
            }
        };
        let value = FieldValue::Tpl(template);
        self.check_one("if", Kind::Bool, &value, at, item).ok()?;
        Some(value)
    }

    fn step_node(&self, key: &str) -> Option<&'a Node> {
        self.loaded.step_entry(self.id)?.1.get(key)
    }

    fn step_key_span(&self) -> Span {
        self.loaded
            .step_entry(self.id)
            .map_or(self.loaded.root.span, |(k, _)| k.span)
    }

    fn span_in(&self, at: At<'_>, range: &std::ops::Range<usize>) -> Span {
        let Some(node) = at.node else {
            return self.step_key_span();
        };
        let text = &self.loaded.source.text;
        let quoted = text
            .get(node.span.start..)
            .is_some_and(|t| t.starts_with(['"', '\'']));
        let block = text
            .get(node.span.start..)
            .is_some_and(|t| t.starts_with(['|', '>']));
        if block {
            return node.span;
        }
        let start = range.start.saturating_sub(at.shift);
        node.span
            .within(text, start + usize::from(quoted), range.len())
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn syntax_error(
        &mut self,
        e: &expr::ExprError,
        node: Option<&Node>,
        name: &str,
        value: &serde_json::Value,
    ) {
        // A list field's error sits in one of its elements.
        let node = match (node.map(|n| &n.kind), value) {
            (
                Some(crate::manifest::yaml::NodeKind::Seq(items)),
                serde_json::Value::Array(values),
            ) => values
                .iter()
                .position(|v| v.as_str().is_some_and(|s| expr::parse_template(s).is_err()))
                .and_then(|i| items.get(i))
                .or(node),
            _ => node,
        };
        self.syntax_error_at(e, At { node, shift: 0 }, name);
    }

    /// Reports a syntax error in the expression of `name` written at `at`.
    fn syntax_error_at(&mut self, e: &expr::ExprError, at: At<'_>, name: &str) {
        let span = self.span_in(at, &e.range);
        self.push(
            Diagnostic::new(
                Code::ExpressionSyntax,
                &self.loaded.source,
                span,
                format!(
                    "invalid expression in `{name}` of step `{}`: {}",
                    self.id, e.message
                ),
            )
            .label("here")
            .help(e.help.clone()),
        );
    }

    /// Parses and types `for_each`; returns its value and element type/count.
    fn for_each(&mut self) -> (Option<(FieldValue, Count)>, Option<Ty>) {
        let node = self.step_node("for_each");
        let at = At { node, shift: 0 };
        match &self.step.for_each {
            None => (None, None),
            Some(Tpl::Lit(items)) => {
                let elem = items.first().map_or(Ty::Any, Ty::of_json);
                let value = FieldValue::Lit(serde_json::Value::Array(items.clone()));
                (Some((value, Count::Exact(items.len() as u64))), Some(elem))
            }
            Some(Tpl::Expr(text)) => {
                let template = match expr::parse_template(text) {
                    Ok(t) => t,
                    Err(e) => {
                        self.syntax_error(&e, node, "for_each", &serde_json::Value::Null);
                        return (None, None);
                    }
                };
                let Some(whole) = template.whole().cloned() else {
                    let span = node.map_or(self.step_key_span(), |n| n.span);
                    self.push(
                        Diagnostic::new(Code::ForEachNotList, &self.loaded.source, span, format!("`for_each` of step `{}` must be a single `${{{{ … }}}}` expression giving a list", self.id))
                            .help("write e.g. `for_each: ${{ steps.song.outputs.clips }}` with no other text"),
                    );
                    return (None, None);
                };
                let Some(ty) = self.type_expr(&whole, at, None, true, &mut Vec::new()) else {
                    return (None, None);
                };
                match list_parts(&ty) {
                    Some((elem, count)) => (Some((FieldValue::Tpl(template), count)), Some(elem)),
                    None => {
                        let span = self.span_in(at, &whole.range);
                        let help = whole
                            .as_reference()
                            .and_then(|r| list_suggestion(r, self.loaded, self.index))
                            .unwrap_or_else(|| "`for_each` takes a list, such as a generation's `clips` or a split's `stems`".to_owned());
                        self.push(
                            Diagnostic::new(
                                Code::ForEachNotList,
                                &self.loaded.source,
                                span,
                                format!(
                                    "`for_each` of step `{}` needs a list, but `{whole}` is {ty}",
                                    self.id
                                ),
                            )
                            .label("not a list")
                            .help(help),
                        );
                        (None, None)
                    }
                }
            }
        }
    }

    fn needs(&mut self) {
        let node = self.step_node("needs");
        for (i, name) in self.step.needs.iter().enumerate() {
            if let Some(&d) = self.index.get(name.as_str()) {
                self.deps.push(d);
                continue;
            }
            if self.loaded.broken_steps.contains(name) {
                continue;
            }
            let span = match node.map(|n| &n.kind) {
                Some(crate::manifest::yaml::NodeKind::Seq(items)) => {
                    items.get(i).map_or(self.step_key_span(), |n| n.span)
                }
                _ => node.map_or(self.step_key_span(), |n| n.span),
            };
            // A step never needs itself, so it is no suggestion for its own typo.
            let others = self.index.keys().copied().filter(|k| *k != self.id);
            let help = crate::diag::did_you_mean(name, others.clone()).unwrap_or_else(|| {
                let ids: Vec<String> = others.take(10).map(|k| format!("`{k}`")).collect();
                match ids.as_slice() {
                    [] => "`needs` lists ids of other steps of this pipeline".to_owned(),
                    _ => format!("`needs` lists ids of other steps: {}", ids.join(", ")),
                }
            });
            self.push(
                Diagnostic::new(
                    Code::UnknownStep,
                    &self.loaded.source,
                    span,
                    format!("step `{}` needs `{name}`, which is not a step", self.id),
                )
                .label("no such step")
                .help(help),
            );
        }
    }

    /// Checks every reference of a field and that its type fits the field.
    /// `Ok(Some(origin))` for a `clip` field whose provenance is known.
    fn check_field(
        &mut self,
        name: &str,
        value: &FieldValue,
        node: Option<&Node>,
        item: Option<&Ty>,
    ) -> Result<Option<Origin>, ()> {
        let kind = kind(name);
        match value {
            FieldValue::Lit(_) => Ok(None),
            FieldValue::List(items) => {
                let mut ok = true;
                if kind == Kind::ClipList && items.len() != 2 {
                    let span = node.map_or(self.step_key_span(), |n| n.span);
                    self.push(
                        Diagnostic::new(
                            Code::MashupClips,
                            &self.loaded.source,
                            span,
                            format!(
                                "`mashup` takes exactly two clips, but step `{}` lists {}",
                                self.id,
                                items.len()
                            ),
                        )
                        .label(crate::format::count(items.len(), "clip", "clips"))
                        .help("list exactly two clip ids under `clips`"),
                    );
                    ok = false;
                }
                for (i, element) in items.iter().enumerate() {
                    let element_node = match node.map(|n| &n.kind) {
                        Some(crate::manifest::yaml::NodeKind::Seq(nodes)) => nodes.get(i),
                        _ => node,
                    };
                    let element_kind = if kind == Kind::ClipList {
                        Kind::Clip
                    } else {
                        kind
                    };
                    ok &= self
                        .check_one(
                            name,
                            element_kind,
                            element,
                            At {
                                node: element_node,
                                shift: 0,
                            },
                            item,
                        )
                        .is_ok();
                }
                if ok { Ok(None) } else { Err(()) }
            }
            FieldValue::Tpl(_) => self.check_one(name, kind, value, At { node, shift: 0 }, item),
        }
    }

    fn check_one(
        &mut self,
        name: &str,
        kind: Kind,
        value: &FieldValue,
        at: At<'_>,
        item: Option<&Ty>,
    ) -> Result<Option<Origin>, ()> {
        let FieldValue::Tpl(template) = value else {
            return Ok(None);
        };
        let mut types = Vec::new();
        for e in template.expressions() {
            types.push(self.type_expr(e, at, item, false, &mut Vec::new()));
        }
        if types.iter().any(Option::is_none) {
            return Err(());
        }
        let Some(whole) = template.whole() else {
            if kind == Kind::Text {
                return Ok(None);
            }
            return self.mismatch(name, kind, "text with an embedded expression", at, None);
        };
        let ty = types.into_iter().flatten().next().unwrap_or(Ty::Any);
        let fits = match (kind, &ty) {
            (_, Ty::Any) => true,
            (Kind::Text, Ty::Str | Ty::Num | Ty::Bool | Ty::Clip(_)) => true,
            (Kind::Num, Ty::Num) | (Kind::Bool, Ty::Bool) => true,
            (Kind::Clip, Ty::Clip(origin)) => return Ok(Some(*origin)),
            (Kind::Clip, Ty::Str) => return Ok(Some(Origin::Unknown)),
            (Kind::ClipList, Ty::List(elem, count)) => {
                let elem_ok = matches!(**elem, Ty::Clip(_) | Ty::Str | Ty::Any)
                    || elem.field_names().contains(&"clip_id");
                if elem_ok && count.is_exact() && count.value() != 2 {
                    let span = self.span_in(at, &whole.range);
                    self.push(
                        Diagnostic::new(
                            Code::MashupClips,
                            &self.loaded.source,
                            span,
                            format!(
                                "`mashup` takes exactly two clips, but `{whole}` has {}",
                                count.value()
                            ),
                        )
                        .help("give `clips` a list of exactly two clips"),
                    );
                    return Err(());
                }
                elem_ok
            }
            _ => false,
        };
        if fits {
            Ok(None)
        } else {
            self.mismatch(name, kind, &ty.to_string(), at, Some(whole))
        }
    }

    fn mismatch(
        &mut self,
        name: &str,
        kind: Kind,
        found: &str,
        at: At<'_>,
        reference: Option<&Expr>,
    ) -> Result<Option<Origin>, ()> {
        let wanted = kind.wanted();
        let span = match reference {
            Some(r) => self.span_in(at, &r.range),
            None => at.node.map_or(self.step_key_span(), |n| n.span),
        };
        let help = match (kind, reference) {
            (Kind::Clip, Some(r)) if found.ends_with("object") => {
                format!("use its id: `${{{{ {r}.clip_id }}}}`")
            }
            (Kind::Clip, Some(r)) if found.starts_with("a list") => format!(
                "pick one clip, e.g. `${{{{ {r}[0].clip_id }}}}`, or add `for_each` over the list"
            ),
            _ => format!("`{name}` takes {wanted}"),
        };
        self.push(
            Diagnostic::new(
                Code::TypeMismatch,
                &self.loaded.source,
                span,
                format!(
                    "`{name}` of step `{}` needs {wanted}, but gets {found}",
                    self.id
                ),
            )
            .label(format!("this is {found}"))
            .help(help),
        );
        Err(())
    }

    /// The type a reference points at; `None` after reporting why it is wrong.
    fn type_of(
        &mut self,
        r: &Reference,
        at: At<'_>,
        item: Option<&Ty>,
        in_for_each: bool,
    ) -> Option<Ty> {
        match r.context {
            Context::Steps => self.step_ref(r, at),
            Context::Inputs => {
                let name = self.first_field(r, at, "an input name", "inputs.source")?;
                match self.types.inputs.get(&name) {
                    Some(ty) => self.walk_from(ty.clone(), r, 1, at),
                    None => {
                        let help = crate::diag::did_you_mean(
                            &name,
                            self.types.inputs.keys().map(String::as_str),
                        )
                        .unwrap_or_else(|| {
                            "declare it under `inputs:` with a `default`".to_owned()
                        });
                        self.ref_error(
                            Code::UnknownInput,
                            r,
                            0,
                            at,
                            format!("unknown input `{name}`"),
                            help,
                        );
                        None
                    }
                }
            }
            Context::Matrix => {
                let name = self.first_field(r, at, "a column name", "matrix.idea")?;
                let Some(matrix) = self.loaded.manifest.matrix.as_ref() else {
                    self.ref_error(
                        Code::NoMatrix,
                        r,
                        usize::MAX,
                        at,
                        "`matrix` is used, but the pipeline has no `matrix`".to_owned(),
                        "add a `matrix:` with `rows` or a `file`".to_owned(),
                    );
                    return None;
                };
                let Some(rows) = self.loaded.matrix.as_ref() else {
                    return Some(Ty::Any);
                };
                if rows.columns.contains(&name) {
                    return Some(Ty::Any);
                }
                let help =
                    crate::diag::did_you_mean(&name, rows.columns.iter().map(String::as_str))
                        .unwrap_or_else(|| {
                            format!(
                                "the matrix has columns: {}",
                                rows.columns
                                    .iter()
                                    .map(|c| format!("`{c}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        });
                let whence = matrix
                    .file
                    .as_ref()
                    .map_or_else(|| "the matrix rows".to_owned(), |f| format!("`{f}`"));
                self.ref_error(
                    Code::UnknownMatrixColumn,
                    r,
                    0,
                    at,
                    format!("column `{name}` is missing from {whence}"),
                    help,
                );
                None
            }
            Context::Item => {
                if in_for_each {
                    self.ref_error(
                        Code::ItemOutsideForEach,
                        r,
                        usize::MAX,
                        at,
                        "`item` cannot be used inside `for_each` itself".to_owned(),
                        "`for_each` names the list; `item` is one element of it, used in `with`"
                            .to_owned(),
                    );
                    return None;
                }
                match item {
                    Some(ty) => self.walk_from(ty.clone(), r, 0, at),
                    None => {
                        self.ref_error(Code::ItemOutsideForEach, r, usize::MAX, at, format!("`item` is used in step `{}`, which has no `for_each`", self.id),
                            "add `for_each: ${{ steps.<id>.outputs.<list> }}` to the step, or reference a step output directly".to_owned());
                        None
                    }
                }
            }
            Context::Env => {
                let name = self.first_field(r, at, "a variable name", "env.REGION")?;
                let upper = name.to_uppercase();
                if ["KEY", "TOKEN", "SECRET", "PASSWORD"]
                    .iter()
                    .any(|s| upper.contains(s))
                {
                    self.ref_error(Code::SecretEnv, r, 0, at, format!("`env.{name}` looks like a secret; secrets cannot be used in manifests"),
                        "the API key comes from `MUSICAPI_KEY` or `--api-key-file`; never pass secrets into requests or results".to_owned());
                    return None;
                }
                if crate::expr::env_value(&name).is_none() {
                    // A warning here; `build` makes it an error where the run's values are due.
                    let span = self.span_in(at, &r.range);
                    self.push(
                        Diagnostic::new(
                            Code::UnsetEnv,
                            &self.loaded.source,
                            span,
                            format!("environment variable `{name}` is not set"),
                        )
                        .label("no value")
                        .help(format!(
                            "set it where the pipeline runs (`export {name}=…`); until then the steps that use it cannot be sent"
                        ))
                        .warning(),
                    );
                }
                self.walk_from(Ty::Str, r, 1, at)
            }
        }
    }

    fn first_field(
        &mut self,
        r: &Reference,
        at: At<'_>,
        what: &str,
        example: &str,
    ) -> Option<String> {
        if let Some(name) = r.field(0) {
            return Some(name.to_owned());
        }
        self.ref_error(
            Code::InvalidReference,
            r,
            usize::MAX,
            at,
            format!("`{}` must be followed by {what}", r.context.name()),
            format!("write e.g. `${{{{ {example} }}}}`"),
        );
        None
    }

    fn step_ref(&mut self, r: &Reference, at: At<'_>) -> Option<Ty> {
        let id = self.first_field(r, at, "a step id", "steps.upload.outputs.clip_id")?;
        let Some(&target) = self.index.get(id.as_str()) else {
            if self.loaded.broken_steps.contains(&id) {
                return Some(Ty::Any);
            }
            let help = crate::diag::did_you_mean(&id, self.index.keys().copied())
                .unwrap_or_else(|| "reference a step id of this pipeline".to_owned());
            self.ref_error(
                Code::UnknownStep,
                r,
                0,
                at,
                format!("unknown step `{id}` in `{r}`"),
                help,
            );
            return None;
        };
        self.deps.push(target);
        self.data_deps.push(target);
        if r.field(1) == Some("instances") {
            // Every instance with what it ran for: `{item, outputs, row}`.
            self.fan_ins.push(target);
            let target_step = self.loaded.manifest.steps.get(&id)?;
            let item = match &target_step.for_each {
                Some(Tpl::Lit(items)) => items.first().map_or(Ty::Any, Ty::of_json),
                _ => Ty::Any,
            };
            let count = self.fan_in_count(target_step);
            let instance = Ty::Obj(
                "instance",
                vec![
                    ("item", item),
                    ("outputs", target_step.action.outputs().clone()),
                    ("row", Ty::Any),
                ],
            );
            return self.walk_from(Ty::List(Box::new(instance), count), r, 2, at);
        }
        if r.field(1) != Some("outputs") {
            let help = format!("write `${{{{ steps.{id}.outputs.<field> }}}}`");
            self.ref_error(
                Code::InvalidReference,
                r,
                1,
                at,
                format!("a step reference continues with `.outputs`, in `{r}`"),
                help,
            );
            return None;
        }
        let target_step = self.loaded.manifest.steps.get(&id)?;
        let outputs = target_step.action.outputs().clone();
        if matches!(r.path.get(2).map(|l| &l.segment), Some(Segment::Each)) {
            // A fan-in: the list of every instance's outputs. How many there
            // are is known exactly only over a literal list.
            self.fan_ins.push(target);
            let count = self.fan_in_count(target_step);
            return self.walk_from(Ty::List(Box::new(outputs), count), r, 2, at);
        }
        self.walk_from(outputs, r, 2, at)
    }

    /// How many instances of `target` a fan-in of this step reads: known
    /// exactly only over a literal list, and times the matrix rows when this
    /// step runs once per pipeline and `target` once per row.
    fn fan_in_count(&self, target: &Step) -> Count {
        let inherits = reads_a_fan_out(self.loaded, target, &mut Vec::new());
        let reader_once = self.step.per == Some(Per::Pipeline);
        let target_once = target.per == Some(Per::Pipeline);
        let per_row = match &target.for_each {
            Some(Tpl::Lit(items)) if !inherits => Count::Exact(items.len() as u64),
            Some(Tpl::Lit(items)) => Count::Expected(items.len() as u64),
            // One per row, read across rows; a per-row reader of it is told
            // there is nothing to collect.
            None if !inherits && reader_once => Count::Exact(1),
            _ => Count::Expected(1),
        };
        match self.loaded.matrix.as_ref() {
            Some(m) if reader_once && !target_once => {
                per_row.times(Count::Exact(m.rows.len() as u64))
            }
            _ => per_row,
        }
    }

    /// The type of expression `e`; `None` after reporting why it is wrong.
    /// `params` are the lambda parameters in scope, innermost last.
    fn type_expr(
        &mut self,
        e: &Expr,
        at: At<'_>,
        item: Option<&Ty>,
        in_for_each: bool,
        params: &mut Vec<(String, Ty)>,
    ) -> Option<Ty> {
        match &e.kind {
            ExprKind::Ref(r) => self.type_of(r, at, item, in_for_each),
            ExprKind::Param(name) => Some(
                params
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map_or(Ty::Any, |(_, t)| t.clone()),
            ),
            ExprKind::Lit(Lit::Null) | ExprKind::Lambda { .. } => Some(Ty::Any),
            ExprKind::Lit(Lit::Bool(_)) => Some(Ty::Bool),
            ExprKind::Lit(Lit::Num(_)) => Some(Ty::Num),
            ExprKind::Lit(Lit::Str(_)) => Some(Ty::Str),
            ExprKind::Unary(op, operand) => {
                let ty = self.type_expr(operand, at, item, in_for_each, params)?;
                let (want, what, gives) = match op {
                    UnOp::Not => (is_bool(&ty), "`!` needs `true` or `false`", Ty::Bool),
                    UnOp::Neg => (is_num(&ty), "`-` needs a number", Ty::Num),
                };
                if want {
                    return Some(gives);
                }
                self.expr_error(at, operand, format!("{what}, but `{operand}` is {ty}"), "");
                None
            }
            ExprKind::Binary(op, l, r) => {
                let lt = self.type_expr(l, at, item, in_for_each, params);
                let rt = self.type_expr(r, at, item, in_for_each, params);
                let (lt, rt) = (lt?, rt?);
                self.type_binary(*op, e, (l, &lt), (r, &rt), at)
            }
            ExprKind::Access(base, path) => {
                let ty = self.type_expr(base, at, item, in_for_each, params)?;
                match walk(&ty, path) {
                    Ok(t) => Some(t),
                    Err(err) => {
                        let prefix = |n: usize| access_text(base, &path[..n]);
                        let full = access_text(base, path);
                        self.path_error(&err, &full, &prefix, path, &e.range, None, at);
                        None
                    }
                }
            }
            ExprKind::Call { func, args, .. } => {
                self.type_call(*func, e, args, at, item, in_for_each, params)
            }
        }
    }

    fn type_binary(
        &mut self,
        op: BinOp,
        e: &Expr,
        (l, lt): (&Expr, &Ty),
        (r, rt): (&Expr, &Ty),
        at: At<'_>,
    ) -> Option<Ty> {
        let sym = op.symbol();
        match op {
            BinOp::And | BinOp::Or => {
                for (side, ty) in [(l, lt), (r, rt)] {
                    if !is_bool(ty) {
                        self.expr_error(
                            at,
                            side,
                            format!("`{sym}` needs `true` or `false` on both sides, but `{side}` is {ty}"),
                            "compare it first, e.g. `x > 0` or `x == 'text'`",
                        );
                        return None;
                    }
                }
                Some(Ty::Bool)
            }
            BinOp::Eq | BinOp::Ne => {
                if comparable(lt, rt) {
                    return Some(Ty::Bool);
                }
                self.expr_error(
                    at,
                    e,
                    format!("`{sym}` compares {lt} with {rt}, which are never equal"),
                    "compare values of one type, e.g. a number with a number",
                );
                None
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let ok = matches!(
                    (ordered(lt), ordered(rt)),
                    (Some(a), Some(b)) if a == b || a == Order::Any || b == Order::Any
                );
                if ok {
                    return Some(Ty::Bool);
                }
                self.expr_error(
                    at,
                    e,
                    format!("`{sym}` compares numbers with numbers or strings with strings, but gets {lt} and {rt}"),
                    "compare values of one type",
                );
                None
            }
            _ => {
                for (side, ty) in [(l, lt), (r, rt)] {
                    if !is_num(ty) {
                        let help = if op == BinOp::Add && is_text(ty) {
                            "join text with `format('{0}{1}', a, b)`"
                        } else {
                            "arithmetic works on numbers only"
                        };
                        self.expr_error(
                            at,
                            side,
                            format!("`{sym}` needs numbers, but `{side}` is {ty}"),
                            help,
                        );
                        return None;
                    }
                }
                Some(Ty::Num)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn type_call(
        &mut self,
        func: Func,
        e: &Expr,
        args: &[Expr],
        at: At<'_>,
        item: Option<&Ty>,
        in_for_each: bool,
        params: &mut Vec<(String, Ty)>,
    ) -> Option<Ty> {
        let sig = func.signature();
        let mut types = Vec::new();
        let mut ok = true;
        for (i, a) in args.iter().enumerate() {
            let param = func.param(i).unwrap_or(expr::Param::Any);
            let ExprKind::Lambda { param: name, body } = &a.kind else {
                let ty = self.type_expr(a, at, item, in_for_each, params);
                if let Some(ty) = &ty
                    && !fits_param(param, ty)
                {
                    let what = match param {
                        expr::Param::Text => "a string",
                        expr::Param::Num => "a number",
                        expr::Param::List => "a list",
                        _ => "a list or a string",
                    };
                    self.expr_error(
                        at,
                        a,
                        format!(
                            "argument {} of `{}` must be {what}, but `{a}` is {ty}",
                            i + 1,
                            sig.name
                        ),
                        &format!("write `{}`", sig.usage),
                    );
                    ok = false;
                }
                ok &= ty.is_some();
                types.push(ty.unwrap_or(Ty::Any));
                continue;
            };
            // A lambda's parameter is one element of the list before it.
            let elem = match types.first() {
                Some(Ty::List(elem, _)) => (**elem).clone(),
                _ => Ty::Any,
            };
            params.push((name.clone(), elem));
            let body_ty = self.type_expr(body, at, item, in_for_each, params);
            params.pop();
            let Some(body_ty) = body_ty else {
                ok = false;
                types.push(Ty::Any);
                continue;
            };
            let fits = match param {
                expr::Param::Condition => is_bool(&body_ty),
                _ => ordered(&body_ty).is_some(),
            };
            if !fits {
                let want = if param == expr::Param::Condition {
                    "must give `true` or `false`"
                } else {
                    "must give a number or a string to order by"
                };
                self.expr_error(
                    at,
                    body,
                    format!(
                        "the lambda of `{}` {want}, but `{body}` is {body_ty}",
                        sig.name
                    ),
                    &format!("write `{}`", sig.usage),
                );
                ok = false;
            }
            types.push(body_ty);
        }
        if !ok {
            return None;
        }
        let list = types.first().cloned().unwrap_or(Ty::Any);
        let elem = match &list {
            Ty::List(elem, _) => (**elem).clone(),
            _ => Ty::Any,
        };
        let count = match &list {
            Ty::List(_, c) => Some(*c),
            _ => None,
        };
        Some(match func {
            Func::Contains | Func::StartsWith | Func::EndsWith => Ty::Bool,
            Func::Format => {
                if let Some(Expr {
                    kind: ExprKind::Lit(Lit::Str(format)),
                    range,
                }) = args.first()
                    && let Err(why) =
                        format_text(format, &vec![serde_json::Value::Null; args.len() - 1])
                {
                    let span = self.span_in(at, range);
                    self.push(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            &self.loaded.source,
                            span,
                            format!("the format of `format` is wrong: {why}"),
                        )
                        .help(format!("write `{}`", sig.usage)),
                    );
                    return None;
                }
                Ty::Str
            }
            Func::Join => Ty::Str,
            Func::Length | Func::Abs => Ty::Num,
            Func::Filter => match count {
                Some(c) => Ty::List(Box::new(elem), Count::AtMost(c.value())),
                None => Ty::Any,
            },
            Func::SortBy => list,
            Func::Find | Func::MaxBy | Func::MinBy | Func::First | Func::Last => elem,
            Func::Pluck => {
                let Some(c) = count else { return Some(Ty::Any) };
                let field = match args.get(1).map(|a| &a.kind) {
                    Some(ExprKind::Lit(Lit::Str(name))) => name.clone(),
                    _ => return Some(Ty::List(Box::new(Ty::Any), c)),
                };
                let arg = &args[1];
                let path = [Located {
                    segment: Segment::Field(field),
                    range: arg.range.clone(),
                }];
                match walk(&elem, &path) {
                    Ok(t) => Ty::List(Box::new(t), c),
                    Err(err) => {
                        let base = &args[0];
                        let prefix = |_: usize| format!("{base}[*]");
                        let full = format!("{e}");
                        self.path_error(&err, &full, &prefix, &path, &arg.range, None, at);
                        return None;
                    }
                }
            }
            Func::Flatten => match (&elem, count) {
                (Ty::List(inner, c2), Some(c)) => Ty::List(inner.clone(), c.times(*c2)),
                (Ty::Any, _) | (_, None) => Ty::Any,
                (other, _) => {
                    let a = &args[0];
                    self.expr_error(
                        at,
                        a,
                        format!(
                            "`flatten` needs a list of lists, but `{a}` is a list of {}",
                            plural_of(other)
                        ),
                        "flatten a list whose elements are lists",
                    );
                    return None;
                }
            },
        })
    }

    /// Reports a type error at sub-expression `e`.
    fn expr_error(&mut self, at: At<'_>, e: &Expr, message: String, help: &str) {
        let span = self.span_in(at, &e.range);
        let mut d = Diagnostic::new(
            Code::TypeMismatch,
            &self.loaded.source,
            span,
            format!("in step `{}`: {message}", self.id),
        )
        .label("here");
        if !help.is_empty() {
            d = d.help(help.to_owned());
        }
        self.push(d);
    }

    fn walk_from(&mut self, ty: Ty, r: &Reference, skip: usize, at: At<'_>) -> Option<Ty> {
        let path = r.path.get(skip..).unwrap_or(&[]);
        match walk(&ty, path) {
            Ok(t) => Some(t),
            Err(e) => {
                self.walk_error(&e, r, skip, at);
                None
            }
        }
    }

    fn walk_error(&mut self, e: &WalkError, r: &Reference, skip: usize, at: At<'_>) {
        let output_of = (r.context == Context::Steps).then(|| r.field(0).unwrap_or(""));
        let path = r.path.get(skip..).unwrap_or(&[]);
        let prefix = |n: usize| truncated(r, skip + n);
        self.path_error(e, &r.to_string(), &prefix, path, &r.range, output_of, at);
    }

    /// Reports why `path` does not fit; `full` is the whole access as
    /// written, `prefix(n)` its text up to segment `n`, `output_of` the step
    /// whose outputs the path starts at.
    #[allow(clippy::too_many_arguments)]
    fn path_error(
        &mut self,
        e: &WalkError,
        full: &str,
        prefix: &dyn Fn(usize) -> String,
        path: &[Located],
        whole: &std::ops::Range<usize>,
        output_of: Option<&str>,
        at: At<'_>,
    ) {
        let (i, code, message, help) = match e {
            WalkError::UnknownField {
                at: i,
                name,
                parent,
            } => {
                let names = parent.field_names();
                let help =
                    crate::diag::did_you_mean(name, names.iter().copied()).unwrap_or_else(|| {
                        format!(
                            "{parent} has: {}",
                            names
                                .iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                let (code, what) = match output_of {
                    Some(id) if *i == 0 => (
                        Code::UnknownOutput,
                        format!("step `{id}` has no output `{name}`"),
                    ),
                    _ => (
                        Code::InvalidReference,
                        format!("{parent} has no field `{name}`"),
                    ),
                };
                (*i, code, format!("{what}, in `{full}`"), help)
            }
            WalkError::FieldOnList {
                at: i,
                name,
                parent,
            } => {
                let prefix = prefix(*i);
                (
                    *i,
                    Code::InvalidReference,
                    format!("`{prefix}` is {parent}; `.{name}` needs one element first"),
                    format!(
                        "write `{prefix}[0].{name}`, or use `for_each: ${{{{ {prefix} }}}}` and `${{{{ item.{name} }}}}`"
                    ),
                )
            }
            WalkError::NotIndexable { at: i, parent } => {
                let prefix = prefix(*i);
                (
                    *i,
                    Code::InvalidReference,
                    format!("`{prefix}` is {parent} and has no fields or elements"),
                    format!("end the reference at `{prefix}`"),
                )
            }
            WalkError::OutOfBounds { at: i, index, len } => (
                *i,
                Code::InvalidReference,
                format!("index {index} is past the end of a list of {len}"),
                format!("use an index from 0 to {}", len.saturating_sub(1)),
            ),
        };
        let range = path.get(i).map_or(whole.clone(), |l| l.range.clone());
        let span = self.span_in(at, &range);
        self.push(Diagnostic::new(code, &self.loaded.source, span, message).help(help));
    }

    /// Reports a reference problem at path segment `seg` (`usize::MAX`: the whole reference).
    fn ref_error(
        &mut self,
        code: Code,
        r: &Reference,
        seg: usize,
        at: At<'_>,
        message: String,
        help: String,
    ) {
        let range = r.path.get(seg).map_or(r.range.clone(), |l| l.range.clone());
        let span = self.span_in(at, &range);
        self.push(Diagnostic::new(code, &self.loaded.source, span, message).help(help));
    }
}

/// Whether `step` reads, directly or through the steps it reads, a step
/// with `for_each` — and so may run more than once per row. Judged from
/// the text of its `with` block, which errs only towards "yes".
fn reads_a_fan_out<'m>(loaded: &'m Loaded, step: &'m Step, seen: &mut Vec<&'m str>) -> bool {
    let text =
        serde_json::Value::Object(step.with.as_ref().map(|w| w.to_json()).unwrap_or_default())
            .to_string();
    loaded.manifest.steps.iter().any(|(id, other)| {
        if seen.contains(&id.as_str()) || !text.contains(&format!("steps.{id}.")) {
            return false;
        }
        seen.push(id);
        other.for_each.is_some() || reads_a_fan_out(loaded, other, seen)
    })
}

/// `steps.x.outputs.clips` for the first `n` segments of a reference.
fn truncated(r: &Reference, n: usize) -> String {
    let mut short = r.clone();
    short.path.truncate(n);
    short.to_string()
}

/// A list-typed sibling of a non-list `for_each` reference, e.g. `clips` for `clip_id`.
fn list_suggestion(r: &Reference, loaded: &Loaded, index: &HashMap<&str, usize>) -> Option<String> {
    if r.context != Context::Steps {
        return None;
    }
    let id = r.field(0)?;
    index.get(id)?;
    let action = loaded.manifest.steps.get(id)?.action;
    let Ty::Obj(_, fields) = action.outputs() else {
        return None;
    };
    let (name, _) = fields.iter().find(|(_, t)| matches!(t, Ty::List(..)))?;
    let _ = Segment::Index(0);
    Some(format!(
        "iterate over a list output: `${{{{ steps.{id}.outputs.{name} }}}}`"
    ))
}

/// `base` followed by `path`, as written.
fn access_text(base: &Expr, path: &[Located]) -> String {
    let access = Expr {
        kind: ExprKind::Access(Box::new(base.clone()), path.to_vec()),
        range: base.range.clone(),
    };
    access.to_string()
}

fn plural_of(ty: &Ty) -> String {
    Ty::List(Box::new(ty.clone()), Count::Exact(0))
        .to_string()
        .trim_start_matches("a list of ")
        .to_owned()
}

fn is_bool(ty: &Ty) -> bool {
    matches!(ty, Ty::Bool | Ty::Any)
}

fn is_num(ty: &Ty) -> bool {
    matches!(ty, Ty::Num | Ty::Any)
}

fn is_text(ty: &Ty) -> bool {
    matches!(ty, Ty::Str | Ty::Clip(_))
}

/// What `<` and sort keys order a type as.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    Num,
    Text,
    Any,
}

fn ordered(ty: &Ty) -> Option<Order> {
    match ty {
        Ty::Num => Some(Order::Num),
        Ty::Str | Ty::Clip(_) => Some(Order::Text),
        Ty::Any => Some(Order::Any),
        _ => None,
    }
}

/// Whether values of these types can ever be equal.
fn comparable(a: &Ty, b: &Ty) -> bool {
    match (a, b) {
        (Ty::Any, _) | (_, Ty::Any) => true,
        (Ty::Str | Ty::Clip(_), Ty::Str | Ty::Clip(_)) => true,
        (Ty::Num, Ty::Num) | (Ty::Bool, Ty::Bool) => true,
        (Ty::List(x, _), Ty::List(y, _)) => comparable(x, y),
        (Ty::Obj(x, _), Ty::Obj(y, _)) => x == y,
        _ => false,
    }
}

/// Whether a value of `ty` may stand where a function takes `param`.
fn fits_param(param: expr::Param, ty: &Ty) -> bool {
    match param {
        expr::Param::Text => matches!(ty, Ty::Any) || is_text(ty),
        expr::Param::Num => is_num(ty),
        expr::Param::List => matches!(ty, Ty::List(..) | Ty::Any),
        expr::Param::ListOrText => matches!(ty, Ty::List(..) | Ty::Any) || is_text(ty),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::resolve::{Scope, eval};
    use proptest::prelude::*;
    use serde_json::json;

    const MANIFEST: &str = "version: 1\nname: t\nsteps:\n  song:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }\n  use:\n    action: wav\n    with: { clip: x }\n";

    /// The type the checker gives `text` inside step `use`, or its messages.
    fn type_in_step(text: &str) -> Result<Ty, Vec<String>> {
        let loaded = crate::manifest::load::load_str(
            "t.yaml",
            MANIFEST.to_owned(),
            std::path::Path::new("."),
        )
        .unwrap();
        let types = StepTypes::new(&IndexMap::new());
        let index: HashMap<&str, usize> = [("song", 0), ("use", 1)].into_iter().collect();
        let step = &loaded.manifest.steps["use"];
        let mut checker = RefChecker::new(&loaded, &types, &index, "use", step);
        let template =
            expr::parse_template(&format!("${{{{ {text} }}}}")).map_err(|e| vec![e.message])?;
        let ty = checker.type_expr(
            template.whole().unwrap(),
            At {
                node: None,
                shift: 0,
            },
            None,
            false,
            &mut Vec::new(),
        );
        match ty {
            Some(ty) if checker.diags.is_empty() => Ok(ty),
            _ => Err(checker.diags.iter().map(|d| d.message.clone()).collect()),
        }
    }

    struct Song(serde_json::Value);
    impl Scope for Song {
        fn root(&self, r: &Reference) -> Option<(serde_json::Value, usize)> {
            (r.context == Context::Steps).then(|| (self.0.clone(), 2))
        }
    }

    /// Whether `value` is a value of type `ty`.
    fn conforms(value: &serde_json::Value, ty: &Ty) -> bool {
        use serde_json::Value as V;
        match (ty, value) {
            (Ty::Any, _) => true,
            (Ty::Str | Ty::Clip(_), V::String(_))
            | (Ty::Num, V::Number(_))
            | (Ty::Bool, V::Bool(_)) => true,
            (Ty::List(elem, count), V::Array(items)) => {
                let n = items.len() as u64;
                let counted = match count {
                    Count::Exact(c) => n == *c,
                    Count::AtMost(c) => n <= *c,
                    Count::Expected(_) => true,
                };
                counted && items.iter().all(|i| conforms(i, elem))
            }
            (Ty::Obj(_, fields), V::Object(map)) => fields
                .iter()
                .all(|(name, t)| map.get(*name).is_none_or(|v| conforms(v, t))),
            _ => false,
        }
    }

    /// Well-typed expressions over the song's clips, by what they give.
    fn list() -> impl Strategy<Value = String> {
        let leaf = Just("steps.song.outputs.clips".to_owned());
        leaf.prop_recursive(3, 8, 1, |inner| {
            prop_oneof![
                (inner.clone(), cond()).prop_map(|(l, b)| format!("filter({l}, c => {b})")),
                (
                    inner.clone(),
                    prop_oneof![Just("c.duration"), Just("c.title"), Just("-c.duration")]
                )
                    .prop_map(|(l, k)| format!("sort_by({l}, c => {k})")),
            ]
        })
    }

    fn cond() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u32..300).prop_map(|n| format!("c.duration > {n}")),
            Just("startsWith(c.title, 'a') || c.title == 'b'".to_owned()),
            Just("!contains(c.tags, 'x') && c.duration % 2 < 1".to_owned()),
        ]
    }

    fn elem() -> impl Strategy<Value = String> {
        list().prop_flat_map(|l| {
            prop_oneof![
                Just(format!("first({l})")),
                Just(format!("last({l})")),
                Just(format!("max_by({l}, c => c.duration)")),
                Just(format!("min_by({l}, c => c.title)")),
                cond().prop_map(move |b| format!("find({l}, c => {b})")),
            ]
        })
    }

    fn typed() -> impl Strategy<Value = String> {
        prop_oneof![
            list(),
            list().prop_map(|l| format!("pluck({l}, 'duration')")),
            elem(),
            elem().prop_map(|e| format!("{e}.clip_id")),
            elem().prop_map(|e| format!("{e}.duration / (length(steps.song.outputs.clips) - 2)")),
            list().prop_map(|l| format!("length({l}) * 2 >= 1")),
            list().prop_map(|l| format!("join(pluck({l}, 'title'), '+')")),
            elem().prop_map(|e| format!("format('{{0}} s', abs({e}.duration - 90))")),
        ]
    }

    #[test]
    fn types_of_forms_table() {
        let clip = |t: &Ty| matches!(t, Ty::Obj("clip", _));
        let t = type_in_step("filter(steps.song.outputs.clips, c => c.duration > 90)").unwrap();
        assert!(
            matches!(&t, Ty::List(e, Count::AtMost(2)) if clip(e)),
            "{t:?}"
        );
        let t = type_in_step("sort_by(filter(steps.song.outputs.clips, c => true), c => c.title)")
            .unwrap();
        assert!(
            matches!(&t, Ty::List(e, Count::AtMost(2)) if clip(e)),
            "{t:?}"
        );
        assert!(clip(
            &type_in_step("max_by(steps.song.outputs.clips, c => c.duration)").unwrap()
        ));
        assert_eq!(
            type_in_step("max_by(steps.song.outputs.clips, c => c.duration).clip_id").unwrap(),
            Ty::Clip(Origin::Generated)
        );
        assert_eq!(
            type_in_step("pluck(steps.song.outputs.clips, 'duration')").unwrap(),
            Ty::List(Box::new(Ty::Num), Count::Expected(2))
        );
        for (text, message) in [
            (
                "filter(steps.song.outputs.clips, c => c.duratoin > 90)",
                "a clip object has no field `duratoin`, in `c.duratoin`",
            ),
            (
                "filter(steps.song.outputs.clip_id, c => true)",
                "in step `use`: argument 1 of `filter` must be a list, but `steps.song.outputs.clip_id` is a clip id",
            ),
            (
                "filter(steps.song.outputs.clips, c => c.title)",
                "in step `use`: the lambda of `filter` must give `true` or `false`, but `c.title` is a string",
            ),
            (
                "sort_by(steps.song.outputs.clips, c => c.duration > 1)",
                "in step `use`: the lambda of `sort_by` must give a number or a string to order by, but `c.duration > 1` is a boolean",
            ),
            (
                "1 == 'a'",
                "in step `use`: `==` compares a number with a string, which are never equal",
            ),
            (
                "'a' < 2",
                "in step `use`: `<` compares numbers with numbers or strings with strings, but gets a string and a number",
            ),
            (
                "1 && true",
                "in step `use`: `&&` needs `true` or `false` on both sides, but `1` is a number",
            ),
            (
                "-'a'",
                "in step `use`: `-` needs a number, but `'a'` is a string",
            ),
            (
                "!3",
                "in step `use`: `!` needs `true` or `false`, but `3` is a number",
            ),
            (
                "'a' * 2",
                "in step `use`: `*` needs numbers, but `'a'` is a string",
            ),
            (
                "format('{1}', 2)",
                "the format of `format` is wrong: `{1}` needs argument 1, but only 1 follow the format",
            ),
            (
                "flatten(steps.song.outputs.clips)",
                "in step `use`: `flatten` needs a list of lists, but `steps.song.outputs.clips` is a list of clip objects",
            ),
            (
                "first(steps.song.outputs.clips).nope",
                "a clip object has no field `nope`, in `first(steps.song.outputs.clips).nope`",
            ),
            (
                "startsWith(steps.song.outputs.clips, 'a')",
                "in step `use`: argument 1 of `startsWith` must be a string, but `steps.song.outputs.clips` is a list of clip objects",
            ),
        ] {
            assert_eq!(type_in_step(text), Err(vec![message.to_owned()]), "{text}");
        }
    }

    proptest! {
        #[test]
        fn well_typed_expressions_evaluate_to_their_type(
            text in typed(),
            clips in proptest::collection::vec((0u32..300, prop_oneof![Just("a"), Just("b"), Just("ab")], prop_oneof![Just("x"), Just("y")]), 2),
        ) {
            let ty = type_in_step(&text);
            prop_assert!(ty.is_ok(), "{text}: {ty:?}");
            let ty = ty.unwrap();
            let clips: Vec<_> = clips
                .iter()
                .enumerate()
                .map(|(i, (d, t, tags))| json!({"clip_id": format!("c{i}"), "title": t, "tags": tags, "duration": d}))
                .collect();
            let scope = Song(json!({"clip_id": "c0", "clips": clips}));
            let template = expr::parse_template(&format!("${{{{ {text} }}}}")).unwrap();
            if let Some(value) = eval(template.whole().unwrap(), &scope) {
                prop_assert!(conforms(&value, &ty), "{text}: {value} is not {ty:?}");
            }
        }
    }
}
