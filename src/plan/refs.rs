//! Checking references: every `${{ … }}` of a step must name something that
//! exists and has a type that fits where it is used. The pass also yields the
//! step's dependency edges, its `for_each` list type, and where its source
//! clip came from.

use std::collections::HashMap;

use indexmap::IndexMap;

use super::analysis::{Analysed, field_value, list_parts, literal_origin};
use super::resolve::FieldValue;
use super::shape::{Count, Origin, Ty, WalkError, walk};
use crate::diag::{Code, Diagnostic};
use crate::expr::{self, Context, Reference, Segment};
use crate::manifest::load::Loaded;
use crate::manifest::spec::Step;
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
                let span = self.span_in(at, &e.range);
                self.push(
                    Diagnostic::new(
                        Code::ExpressionSyntax,
                        &self.loaded.source,
                        span,
                        format!(
                            "invalid expression in `if` of step `{}`: {}",
                            self.id, e.message
                        ),
                    )
                    .label("here")
                    .help(e.help.clone()),
                );
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
        let span = self.span_in(At { node, shift: 0 }, &e.range);
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
                let Some(reference) = template.whole().cloned() else {
                    let span = node.map_or(self.step_key_span(), |n| n.span);
                    self.push(
                        Diagnostic::new(Code::ForEachNotList, &self.loaded.source, span, format!("`for_each` of step `{}` must be a single `${{{{ … }}}}` reference to a list", self.id))
                            .help("write e.g. `for_each: ${{ steps.song.outputs.clips }}` with no other text"),
                    );
                    return (None, None);
                };
                let Some(ty) = self.type_of(&reference, at, None, true) else {
                    return (None, None);
                };
                match list_parts(&ty) {
                    Some((elem, count)) => (Some((FieldValue::Tpl(template), count)), Some(elem)),
                    None => {
                        let span = self.span_in(at, &reference.range);
                        let help = list_suggestion(&reference, self.loaded, self.index)
                            .unwrap_or_else(|| "`for_each` takes a list, such as a generation's `clips` or a split's `stems`".to_owned());
                        self.push(
                            Diagnostic::new(Code::ForEachNotList, &self.loaded.source, span, format!("`for_each` of step `{}` needs a list, but `{reference}` is {ty}", self.id))
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
            let help = crate::diag::did_you_mean(name, self.index.keys().copied())
                .unwrap_or_else(|| "`needs` lists ids of steps in this pipeline".to_owned());
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
                        .label(format!("{} clips", items.len()))
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
        for reference in template.references() {
            types.push(self.type_of(reference, at, item, false));
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
        reference: Option<&Reference>,
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
            let (item, count) = match &target_step.for_each {
                Some(Tpl::Lit(items)) => (
                    items.first().map_or(Ty::Any, Ty::of_json),
                    Count::Exact(items.len() as u64),
                ),
                _ => (Ty::Any, Count::Expected(1)),
            };
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
            let count = match &target_step.for_each {
                Some(Tpl::Lit(items)) => Count::Exact(items.len() as u64),
                _ => Count::Expected(1),
            };
            return self.walk_from(Ty::List(Box::new(outputs), count), r, 2, at);
        }
        self.walk_from(outputs, r, 2, at)
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
        match e {
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
                let code = if r.context == Context::Steps && *i == 0 {
                    Code::UnknownOutput
                } else {
                    Code::InvalidReference
                };
                let what = if code == Code::UnknownOutput {
                    format!("step `{}` has no output `{name}`", r.field(0).unwrap_or(""))
                } else {
                    format!("{parent} has no field `{name}`")
                };
                self.ref_error(code, r, skip + i, at, format!("{what}, in `{r}`"), help);
            }
            WalkError::FieldOnList {
                at: i,
                name,
                parent,
            } => {
                let prefix = truncated(r, skip + i);
                self.ref_error(Code::InvalidReference, r, skip + i, at, format!("`{prefix}` is {parent}; `.{name}` needs one element first"),
                    format!("write `{prefix}[0].{name}`, or use `for_each: ${{{{ {prefix} }}}}` and `${{{{ item.{name} }}}}`"));
            }
            WalkError::NotIndexable { at: i, parent } => {
                let prefix = truncated(r, skip + i);
                self.ref_error(
                    Code::InvalidReference,
                    r,
                    skip + i,
                    at,
                    format!("`{prefix}` is {parent} and has no fields or elements"),
                    format!("end the reference at `{prefix}`"),
                );
            }
            WalkError::OutOfBounds { at: i, index, len } => {
                self.ref_error(
                    Code::InvalidReference,
                    r,
                    skip + i,
                    at,
                    format!("index {index} is past the end of a list of {len}"),
                    format!("use an index from 0 to {}", len.saturating_sub(1)),
                );
            }
        }
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
