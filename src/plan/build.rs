//! Building a `Plan` from a loaded manifest, collecting every problem.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

use super::analysis::Analysed;
use super::condition::{self, Truth, When};
use super::limits::{Door, Pace, PaceFlags};
use super::models::Models;
use super::refs::{RefChecker, StepTypes};
use super::resolve::{self, Scope};
use super::rules::{self, Val};
use super::{Instance, Lateness, Limits, Plan, PlanStep, PollPolicy, PollSchedule, RetryPolicy};
use crate::diag::{Code, Diagnostic, Severity, Source};
use crate::expr::{Context, Reference};
use crate::manifest::load::Loaded;
use crate::manifest::spec::Per;
use crate::manifest::spec::{PollSpec, RetrySpec};
use crate::manifest::value::LatenessSpec;
use crate::manifest::yaml::Node;
use crate::prices::PriceTable;
use crate::span::Span;

/// What the command line adds to a manifest.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--input name=value` pairs, in order.
    pub inputs: Vec<(String, String)>,
    /// Values the run is given rather than the manifest — inputs without a
    /// default or `--input`, unset `env` variables — are errors where they are
    /// due (plan, run) rather than warnings (validate, which CI may run
    /// without them).
    pub require_inputs: bool,
    /// The price table before the manifest's `prices:` overrides.
    pub prices: PriceTable,
    /// `--max-credits`, which wins over `limits.max_credits`.
    pub max_credits: Option<u64>,
    /// `--max-in-flight`, `--submits-per-minute`, `--quick-calls-per-minute`
    /// and `--polls-per-second`, which win over their `limits:` keys.
    pub pace: PaceFlags,
    /// `--matrix FILE`, which wins over the manifest's `matrix.file` and `matrix.rows`.
    pub matrix: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            inputs: Vec::new(),
            require_inputs: false,
            prices: PriceTable::builtin(),
            max_credits: None,
            pace: PaceFlags::default(),
            matrix: None,
        }
    }
}

/// Builds the plan, or returns every problem found (those of loading included).
pub fn build(loaded: &Loaded, options: &Options) -> Result<Plan, Vec<Diagnostic>> {
    let mut b = Builder {
        loaded,
        src: &loaded.source,
        diags: loaded.diagnostics.clone(),
    };
    let inputs = b.inputs(options);
    let prices = b.prices(options);
    let models = Models::with_declared(&loaded.manifest.models);
    b.check_step_ids();
    let ids: Vec<&String> = loaded.manifest.steps.keys().collect();
    let index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let types = StepTypes::new(&inputs);
    let mut analysed = Vec::with_capacity(ids.len());
    for (id, step) in &loaded.manifest.steps {
        let mut checker = RefChecker::new(loaded, &types, &index, id, step);
        let a = checker.analyse();
        b.diags.append(&mut checker.diags);
        analysed.push(a);
    }
    let deps: Vec<Vec<usize>> = analysed.iter().map(|a| a.deps.clone()).collect();
    let order = match super::graph::order(&deps) {
        Ok(order) => order,
        Err(cycles) => {
            for cycle in cycles {
                b.report_cycle(&cycle, &ids);
            }
            Vec::new()
        }
    };
    let fan = b.fan_out(&order, &analysed, &ids);
    let instances = instances(loaded);
    let when = b.conditions(&order, &analysed, &ids, &inputs, &instances);
    b.check_rules(&analysed, &ids, &models, &inputs, &instances);
    let limits = b.limits(&options.pace);
    let retry = b.retry(&RETRY, loaded.manifest.retry.as_ref(), &["retry"]);
    let poll = b.poll(&POLL, loaded.manifest.poll.as_ref(), &["poll"]);
    let policies: Vec<(RetryPolicy, PollPolicy)> = loaded
        .manifest
        .steps
        .iter()
        .map(|(id, step)| {
            (
                b.retry(&retry, step.retry.as_ref(), &["steps", id, "retry"]),
                b.poll(&poll, step.poll.as_ref(), &["steps", id, "poll"]),
            )
        })
        .collect();
    for (id, step) in &loaded.manifest.steps {
        b.step_timeout(id, step.timeout.map(|t| t.0));
    }
    let file_names = b.file_names(crate::steps::naming::Needs {
        row: instances.iter().any(|i| i.key.is_some()),
        instance: fan.iter().any(|f| !f.axis.is_empty()),
    });
    crate::diag::sort(&mut b.diags);
    if options.require_inputs {
        for d in &mut b.diags {
            if matches!(d.code, Code::MissingInput | Code::UnsetEnv) {
                d.severity = Severity::Error;
            }
        }
    }
    if b.diags.iter().any(Diagnostic::is_error) {
        return Err(b.diags);
    }
    let Some(prices) = prices else {
        return Err(b.diags);
    };
    let position: HashMap<usize, usize> = order.iter().enumerate().map(|(p, &i)| (i, p)).collect();
    let mut steps = Vec::with_capacity(order.len());
    for &i in &order {
        let a = &analysed[i];
        let step = &loaded.manifest.steps[i];
        let Fan {
            count: fan_out,
            expected,
            at_most,
            axis,
        } = fan[i].clone();
        let operation = step.action.operation(a.origin);
        steps.push(PlanStep {
            id: ids[i].clone(),
            action: step.action,
            operation,
            fields: a.fields.clone(),
            for_each: a.for_each.clone(),
            deps: a
                .deps
                .iter()
                .filter_map(|d| position.get(d).copied())
                .collect(),
            data_deps: a
                .data_deps
                .iter()
                .filter_map(|d| position.get(d).copied())
                .collect(),
            axis: axis
                .iter()
                .filter_map(|d| position.get(d).copied())
                .collect(),
            fan_out,
            fan_out_expected: expected,
            fan_out_at_most: at_most,
            condition: a.condition.clone(),
            fan_ins: a
                .fan_ins
                .iter()
                .filter_map(|d| position.get(d).copied())
                .collect(),
            on_missing: step.on_missing.unwrap_or_default(),
            per_pipeline: step.per == Some(Per::Pipeline),
            when: when[i].clone(),
            unit_credits: prices.price(operation).unwrap_or(0),
            retry: policies[i].0.clone(),
            poll: policies[i].1.clone(),
            timeout: step.timeout.map(|t| t.0),
            scope: super::Scope::Run,
            key: step.key.clone(),
        });
    }
    let manifest_max = loaded.manifest.limits.as_ref().and_then(|l| l.max_credits);
    Ok(Plan {
        name: loaded.manifest.name.clone(),
        file: loaded.source.name.clone(),
        description: loaded.manifest.description.clone(),
        steps,
        instances,
        inputs: inputs
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect(),
        prices,
        limits,
        max_credits: options.max_credits.or(manifest_max),
        artifacts: loaded.manifest.artifacts.clone().unwrap_or_default(),
        file_names,
        warnings: b.diags,
    })
}

/// A step's fan-out: calls per graph instance, whether that count is an
/// expectation or a bound, and the fanned-out steps it runs under.
#[derive(Debug, Clone)]
struct Fan {
    count: u64,
    expected: bool,
    at_most: bool,
    axis: Vec<usize>,
}

impl Default for Fan {
    fn default() -> Self {
        Fan {
            count: 1,
            expected: false,
            at_most: false,
            axis: Vec::new(),
        }
    }
}

struct Builder<'a> {
    loaded: &'a Loaded,
    src: &'a Arc<Source>,
    diags: Vec<Diagnostic>,
}

impl Builder<'_> {
    fn node(&self, path: &[&str]) -> Option<&Node> {
        self.loaded.root.at(path)
    }

    fn span(&self, path: &[&str]) -> Span {
        let mut p = path;
        while !p.is_empty() {
            if let Some(n) = self.node(p) {
                return n.span;
            }
            p = &p[..p.len() - 1];
        }
        self.loaded.root.span
    }

    fn key_span(&self, path: &[&str]) -> Span {
        match path.split_last() {
            Some((last, parents)) => self
                .node(parents)
                .and_then(|n| n.key_node(last))
                .map_or_else(|| self.span(path), |k| k.span),
            None => self.loaded.root.span,
        }
    }

    /// Input values: defaults, then `--input`. `None` means known only later.
    fn inputs(&mut self, options: &Options) -> IndexMap<String, Option<serde_json::Value>> {
        let declared = &self.loaded.manifest.inputs;
        let values = crate::manifest::load::input_values(declared, &options.inputs);
        for (name, raw) in &options.inputs {
            if declared.contains_key(name) {
                continue;
            }
            let text = format!("{name}={raw}");
            let cli = Source::new("--input", text.clone());
            let help = crate::diag::did_you_mean(name, declared.keys().map(String::as_str))
                .unwrap_or_else(|| format!("declared inputs: {}", list_or_none(declared.keys())));
            self.diags.push(
                Diagnostic::new(
                    Code::UnknownInput,
                    &cli,
                    Span::locate(&text, 0, name.len()),
                    format!("unknown input `{name}`"),
                )
                .help(help),
            );
        }
        for (name, value) in &values {
            if value.is_none() {
                let span = self.key_span(&["inputs", name]);
                self.diags.push(
                    Diagnostic::new(
                        Code::MissingInput,
                        self.src,
                        span,
                        format!("input `{name}` has no default and no value"),
                    )
                    .label("declared here")
                    .help(format!("pass `--input {name}=…`, or give it a `default:`"))
                    .warning(),
                );
            }
        }
        values
    }

    /// `artifacts.name`, parsed; a template that cannot be used is
    /// reported where it is written and the defaults stand in.
    fn file_names(
        &mut self,
        needs: crate::steps::naming::Needs,
    ) -> crate::steps::naming::FileNames {
        use crate::manifest::spec::ArtifactName;
        use crate::steps::naming::{FileNames, NameTemplate};
        let mut names = FileNames::default();
        let Some(name) = self
            .loaded
            .manifest
            .artifacts
            .as_ref()
            .and_then(|a| a.name.as_ref())
        else {
            return names;
        };
        let (files, stems, apart) = match name {
            ArtifactName::One(t) => (Some(t), Some(t), false),
            ArtifactName::Apart(n) => (n.files.as_ref(), n.stems.as_ref(), true),
        };
        for (text, key, slot) in [
            (files, "files", &mut names.files),
            (stems, "stems", &mut names.stems),
        ] {
            let Some(text) = text else { continue };
            // One template shared by both kinds is reported once.
            if !apart && key == "stems" && NameTemplate::parse(text, needs).is_err() {
                continue;
            }
            match NameTemplate::parse(text, needs) {
                Ok(t) => *slot = t,
                Err(e) => {
                    let path: &[&str] = if apart {
                        &["artifacts", "name", key]
                    } else {
                        &["artifacts", "name"]
                    };
                    let span = match self.node(path) {
                        Some(node) => {
                            let src = &self.src.text;
                            let quoted = src
                                .get(node.span.start..)
                                .is_some_and(|t| t.starts_with(['"', '\'']));
                            let raw = src.get(node.span.start..node.span.end).unwrap_or_default();
                            let plain = raw.trim_matches(['"', '\'']) == text;
                            if plain {
                                node.span
                                    .within(src, e.offset + usize::from(quoted), e.len.max(1))
                            } else {
                                node.span
                            }
                        }
                        None => self.span(path),
                    };
                    self.diags.push(
                        Diagnostic::new(
                            Code::InvalidValue,
                            self.src,
                            span,
                            format!("`{}`: {e}", path.join(".")),
                        )
                        .help(e.help),
                    );
                }
            }
        }
        names
    }

    fn prices(&mut self, options: &Options) -> Option<PriceTable> {
        match options
            .prices
            .with_overrides(&self.loaded.manifest.prices, &self.src.name)
        {
            Ok(t) => Some(t),
            Err(e) => {
                let span = match &e {
                    crate::prices::PriceError::UnknownOperation { operation, .. } => {
                        self.key_span(&["prices", operation])
                    }
                    _ => self.key_span(&["prices"]),
                };
                self.diags.push(
                    Diagnostic::new(Code::Prices, self.src, span, e.to_string()).help(e.help()),
                );
                None
            }
        }
    }

    fn check_step_ids(&mut self) {
        let loaded = self.loaded;
        let Some(entries) = loaded.root.at(&["steps"]).and_then(Node::entries) else {
            return;
        };
        for (key, _) in entries {
            let Some(id) = key.as_str() else { continue };
            let mut chars = id.chars();
            let ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                self.diags.push(
                    Diagnostic::new(
                        Code::InvalidStepId,
                        self.src,
                        key.span,
                        format!("step id `{id}` cannot be referenced"),
                    )
                    .help("use letters, digits, `_` and `-`, starting with a letter or `_`"),
                );
            }
        }
    }

    fn report_cycle(&mut self, cycle: &[usize], ids: &[&String]) {
        let names: Vec<String> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&i| format!("`{}`", ids[i]))
            .collect();
        let first = cycle[0];
        let mut d = Diagnostic::new(
            Code::Cycle,
            self.src,
            self.key_span(&["steps", ids[first]]),
            format!("steps depend on each other in a loop: {}", names.join(" → ")),
        )
        .label(format!("`{}` needs `{}`", ids[first], ids[cycle[(1) % cycle.len()]]))
        .help("each step waits for the next one in the loop; remove one of these references or `needs` entries");
        for (k, &i) in cycle.iter().enumerate().skip(1) {
            let next = cycle[(k + 1) % cycle.len()];
            d = d.note(
                self.key_span(&["steps", ids[i]]),
                format!("`{}` needs `{}`", ids[i], ids[next]),
            );
        }
        self.diags.push(d);
    }

    /// Per step and matrix row, whether it runs: its own condition as far
    /// as inputs and matrix cells decide it, after those of the steps it
    /// needs (a step skipped by its condition skips what needs it). A
    /// condition giving something other than a boolean is reported here.
    fn conditions(
        &mut self,
        order: &[usize],
        analysed: &[Analysed],
        ids: &[&String],
        inputs: &IndexMap<String, Option<serde_json::Value>>,
        instances: &[Instance],
    ) -> Vec<Vec<When>> {
        let mut when = vec![vec![When::Always; instances.len()]; analysed.len()];
        for &i in order {
            let a = &analysed[i];
            let mut reported = false;
            for (r, instance) in instances.iter().enumerate() {
                let scope = StaticScope { inputs, instance };
                let own = condition::holds(a.condition.as_ref(), &scope);
                if let Truth::NotBool(found) = &own
                    && !reported
                {
                    reported = true;
                    self.not_boolean(ids[i], instance, found);
                }
                // A fan-in leaves out what a condition skipped; it still runs.
                let needs = a.deps.iter().filter(|d| !a.fan_ins.contains(d));
                when[i][r] = When::of(&own, needs.map(|&d| when[d][r]));
            }
        }
        when
    }

    /// A `per: pipeline` step reads no matrix cell, and per-row steps only
    /// through a fan-in.
    fn once_per_pipeline(&mut self, i: usize, a: &Analysed, ids: &[&String]) {
        let id = ids[i];
        let steps = &self.loaded.manifest.steps;
        let reads_matrix = a
            .fields
            .values()
            .chain(a.condition.iter())
            .chain(a.for_each.iter())
            .any(|f| f.uses(Context::Matrix));
        if reads_matrix {
            self.diags.push(
                Diagnostic::new(
                    Code::PerPipeline,
                    self.src,
                    self.key_span(&["steps", id]),
                    format!("step `{id}` runs once per pipeline (`per: pipeline`), so it has no matrix row to read `matrix` from"),
                )
                .help("read the rows through a per-row step, e.g. `${{ steps.<id>.outputs[*].clip_id }}`, or remove `per: pipeline`"),
            );
        }
        for &d in a.data_deps.iter().filter(|d| !a.fan_ins.contains(d)) {
            if steps[d].per != Some(Per::Pipeline) {
                let target = ids[d];
                self.diags.push(
                    Diagnostic::new(
                        Code::PerPipeline,
                        self.src,
                        self.key_span(&["steps", id]),
                        format!("step `{id}` runs once per pipeline, but reads `{target}`, which runs once per row, as one value"),
                    )
                    .help(format!("read every row's result as a list: `${{{{ steps.{target}.outputs[*]… }}}}`")),
                );
            }
        }
    }

    fn nothing_to_collect(&mut self, id: &str, target: &str) {
        let text = self.loaded.source.text.as_str();
        let step_span = self.span(&["steps", id]);
        let needle = format!("steps.{target}.outputs[*]");
        let span = text
            .get(step_span.start..step_span.end)
            .and_then(|t| t.find(&needle))
            .map_or(self.key_span(&["steps", id]), |at| {
                Span::locate(text, step_span.start + at, needle.len())
            });
        self.diags.push(
            Diagnostic::new(
                Code::NothingToCollect,
                self.src,
                span,
                format!("step `{id}` collects every instance of `{target}`, but `{target}` runs once, without `for_each`"),
            )
            .label("nothing to collect")
            .help(format!("write `steps.{target}.outputs…` to read its one result")),
        );
    }

    fn not_boolean(&mut self, id: &str, instance: &Instance, found: &serde_json::Value) {
        let whence = instance
            .key
            .as_ref()
            .map_or_else(String::new, |k| format!(", row `{k}`"));
        self.diags.push(
            Diagnostic::new(
                Code::TypeMismatch,
                self.src,
                self.span(&["steps", id, "if"]),
                format!("`if` of step `{id}`{whence} gives {found}, not `true` or `false`"),
            )
            .label("not a boolean")
            .help("make the value `true` or `false`, or compare it, e.g. `${{ matrix.vocals == 'yes' }}`"),
        );
    }

    /// Per step: calls per instance, whether that is an expectation or a
    /// bound, and its fan-out axis.
    fn fan_out(&mut self, order: &[usize], analysed: &[Analysed], ids: &[&String]) -> Vec<Fan> {
        let mut fan: Vec<Fan> = vec![Fan::default(); analysed.len()];
        for &i in order {
            let a = &analysed[i];
            let mut axis: Vec<usize> = Vec::new();
            let steps = &self.loaded.manifest.steps;
            let once = |s: usize| steps[s].per == Some(Per::Pipeline);
            for &d in &a.fan_ins {
                let across_rows = once(i) && !once(d);
                if fan[d].axis.is_empty() && !across_rows {
                    self.nothing_to_collect(ids[i], ids[d]);
                }
            }
            if once(i) {
                self.once_per_pipeline(i, a, ids);
            }
            // A fan-in reads every instance: it does not run once per each.
            for &d in a.data_deps.iter().filter(|d| !a.fan_ins.contains(d)) {
                let other = &fan[d].axis;
                if other.len() > axis.len() && other.starts_with(&axis) {
                    axis = other.clone();
                } else if !axis.starts_with(other) {
                    let (x, y) = (
                        axis.last().map_or("", |&s| ids[s].as_str()),
                        other.last().map_or("", |&s| ids[s].as_str()),
                    );
                    self.diags.push(
                        Diagnostic::new(Code::AmbiguousFanOut, self.src, self.key_span(&["steps", ids[i]]),
                            format!("step `{}` uses steps that fan out over different lists (`{x}` and `{y}`)", ids[i]))
                            .help("reference steps of one fan-out only, or add `for_each` to pair them explicitly"),
                    );
                }
            }
            let mut own = axis.last().map_or_else(Fan::default, |&s| fan[s].clone());
            if let Some(c) = a.for_each_count {
                own.count *= c.value();
                own.expected |= c.is_expected();
                own.at_most |= c.is_at_most();
                axis.push(i);
            }
            own.axis = axis;
            fan[i] = own;
        }
        fan
    }

    fn check_rules(
        &mut self,
        analysed: &[Analysed],
        ids: &[&String],
        models: &Models,
        inputs: &IndexMap<String, Option<serde_json::Value>>,
        instances: &[Instance],
    ) {
        for (i, a) in analysed.iter().enumerate() {
            let step = &self.loaded.manifest.steps[i];
            let varies = a.fields.values().any(|f| f.uses(Context::Matrix));
            let rows: &[Instance] = if varies {
                instances
            } else {
                &instances[..instances.len().min(1)]
            };
            let mut reported: Vec<(Code, Option<String>, String)> = Vec::new();
            for (r, instance) in rows.iter().enumerate() {
                let scope = StaticScope { inputs, instance };
                // A field whose reference was already reported is present but unknown.
                let values: IndexMap<String, Val> = a
                    .fields
                    .iter()
                    .map(|(name, f)| {
                        let known = if a.broken_fields.contains(name) {
                            None
                        } else {
                            resolve::resolve(f, &scope)
                        };
                        (name.clone(), known.map_or(Val::Runtime, Val::Known))
                    })
                    .collect();
                for v in rules::check(step.action, &values, models, a.origin) {
                    let from_matrix = v
                        .field
                        .as_ref()
                        .and_then(|f| a.fields.get(f))
                        .is_some_and(|f| f.uses(Context::Matrix));
                    if r > 0 && !from_matrix {
                        continue;
                    }
                    let key = (v.code, v.field.clone(), v.message.clone());
                    if !from_matrix && reported.contains(&key) {
                        continue;
                    }
                    reported.push(key);
                    self.report_violation(ids[i], &v, from_matrix.then_some(r));
                }
            }
        }
    }

    fn report_violation(&mut self, id: &str, v: &rules::Violation, row: Option<usize>) {
        let with_node = self.loaded.with_nodes.get(id);
        let field_span = v
            .field
            .as_ref()
            .and_then(|f| with_node.and_then(|w| w.get(f)).map(|n| n.span));
        let matrix = self.loaded.matrix.as_ref();
        let row_info = row.and_then(|r| matrix.and_then(|m| m.rows.get(r).map(|row| (row, m))));
        // The cell a field takes whole (`${{ matrix.column }}`), if that is where the value came from.
        let cell = row_info.and_then(|(row, _)| {
            let field = v.field.as_ref()?;
            let value = analysed_field(self.loaded, id, field)?;
            let column = value.field(0)?;
            row.cells.get(column).copied()
        });
        let d = match (row_info, field_span) {
            (Some((row, m)), _) if !Arc::ptr_eq(&m.source, self.src) => Diagnostic::new(
                v.code,
                &m.source,
                cell.unwrap_or(row.span),
                format!("step `{id}`, row `{}`: {}", row.key, v.message),
            )
            .label(format!(
                "from this {} via `{}`",
                if cell.is_some() { "cell" } else { "row" },
                v.field.as_deref().unwrap_or("with")
            )),
            (Some((row, _)), Some(span)) => match cell {
                Some(cell) => Diagnostic::new(
                    v.code,
                    self.src,
                    cell,
                    format!("step `{id}`, row `{}`: {}", row.key, v.message),
                )
                .label(format!(
                    "from this cell via `{}`",
                    v.field.as_deref().unwrap_or("with")
                ))
                .note(span, "used here"),
                None => Diagnostic::new(
                    v.code,
                    self.src,
                    span,
                    format!("step `{id}`, row `{}`: {}", row.key, v.message),
                )
                .note(row.span, "this row"),
            },
            (None, Some(span)) => Diagnostic::new(
                v.code,
                self.src,
                span,
                format!("step `{id}`: {}", v.message),
            ),
            (_, None) => {
                let span = if with_node.is_some() && self.node(&["steps", id, "with"]).is_some() {
                    self.key_span(&["steps", id, "with"])
                } else {
                    self.key_span(&["steps", id])
                };
                Diagnostic::new(
                    v.code,
                    self.src,
                    span,
                    format!("step `{id}`: {}", v.message),
                )
            }
        };
        self.diags.push(d.help(v.help.clone()));
    }

    fn limits(&mut self, flags: &PaceFlags) -> Limits {
        let spec = self.loaded.manifest.limits.clone().unwrap_or_default();
        Limits {
            max_in_flight: self.pace(Pace::MaxInFlight, spec.max_in_flight, flags.max_in_flight),
            submits_per_minute: self.pace(
                Pace::SubmitsPerMinute,
                spec.submits_per_minute,
                flags.submits_per_minute,
            ),
            quick_calls_per_minute: self.pace(
                Pace::QuickCallsPerMinute,
                spec.quick_calls_per_minute,
                flags.quick_calls_per_minute,
            ),
            polls_per_second: self.pace(
                Pace::PollsPerSecond,
                spec.polls_per_second,
                flags.polls_per_second,
            ),
        }
    }

    /// A pace limit from its flag, else its `limits:` key, else its default;
    /// what each door gives is checked by the same rule.
    fn pace(&mut self, pace: Pace, written: Option<u32>, flag: Option<u32>) -> u32 {
        if let Some(value) = written
            && let Err(refused) = pace.check(value, Door::Manifest)
        {
            let span = self.span(&["limits", pace.key()]);
            self.diags.push(
                Diagnostic::new(Code::OutOfRange, self.src, span, refused.message)
                    .help(refused.help),
            );
        }
        if let Some(value) = flag
            && let Err(refused) = pace.check(value, Door::Flag)
        {
            let text = format!("{} {value}", pace.flag());
            let at = pace.flag().len() + 1;
            let cli = Source::new(pace.flag(), text.clone());
            self.diags.push(
                Diagnostic::new(
                    Code::OutOfRange,
                    &cli,
                    Span::locate(&text, at, text.len() - at),
                    refused.message,
                )
                .help(refused.help),
            );
        }
        flag.or(written).unwrap_or(pace.default_value())
    }

    fn fraction(&mut self, value: Option<f64>, path: &[&str], default: f64) -> f64 {
        match value {
            Some(x) if !(0.0..=1.0).contains(&x) => {
                let span = self.span(path);
                self.diags.push(
                    Diagnostic::new(
                        Code::OutOfRange,
                        self.src,
                        span,
                        format!("`{}` is {x}; it must be between 0 and 1", path.join(".")),
                    )
                    .help("use a fraction such as 0.2"),
                );
                default
            }
            Some(x) => x,
            None => default,
        }
    }

    /// The retry policy of `spec` over `base`, checked at `path`: the same
    /// rules for the pipeline's block (over the defaults) and a step's (over
    /// the pipeline's).
    fn retry(
        &mut self,
        base: &RetryPolicy,
        spec: Option<&RetrySpec>,
        path: &[&str],
    ) -> RetryPolicy {
        let Some(spec) = spec else {
            return base.clone();
        };
        let backoff = spec.backoff.clone().unwrap_or_default();
        let jitter_path: Vec<&str> = path.iter().copied().chain(["backoff", "jitter"]).collect();
        let jitter = self.fraction(backoff.jitter, &jitter_path, base.jitter);
        if spec.attempts == Some(0) {
            let at: Vec<&str> = path.iter().copied().chain(["attempts"]).collect();
            let span = self.span(&at);
            self.diags.push(
                Diagnostic::new(
                    Code::OutOfRange,
                    self.src,
                    span,
                    "`attempts` counts the first try too, so it must be at least 1",
                )
                .help("use `attempts: 1` for no retries"),
            );
        }
        if backoff.factor.is_some_and(|f| f.is_nan() || f < 1.0) {
            let at: Vec<&str> = path.iter().copied().chain(["backoff", "factor"]).collect();
            let span = self.span(&at);
            self.diags.push(
                Diagnostic::new(
                    Code::OutOfRange,
                    self.src,
                    span,
                    "`backoff.factor` must be at least 1",
                )
                .help("use 2 to double the delay after each attempt"),
            );
        }
        let policy = RetryPolicy {
            attempts: spec.attempts.unwrap_or(base.attempts),
            initial: backoff.initial.map_or(base.initial, |d| d.0),
            max: backoff.max.map_or(base.max, |d| d.0),
            factor: backoff.factor.unwrap_or(base.factor),
            jitter,
        };
        if policy.initial > policy.max {
            let at = |key: &'static str| -> Vec<&str> {
                path.iter().copied().chain(["backoff", key]).collect()
            };
            let key = if backoff.initial.is_some() {
                "initial"
            } else {
                "max"
            };
            self.duration_problem(
                &at(key),
                format!(
                    "`backoff.initial` ({}) is longer than `backoff.max` ({}): the backoff cannot grow",
                    humantime::format_duration(policy.initial),
                    humantime::format_duration(policy.max)
                ),
                "make `initial` at most `max`, e.g. `backoff: { initial: 2s, max: 60s }`",
            );
        }
        policy
    }

    /// A duration that cannot work, at `path` (or the nearest key written).
    fn duration_problem(&mut self, path: &[&str], message: String, help: &str) {
        let span = self.span(path);
        self.diags
            .push(Diagnostic::new(Code::OutOfRange, self.src, span, message).help(help.to_owned()));
    }

    /// A step's own `timeout`, which must leave time to finish.
    fn step_timeout(&mut self, id: &str, timeout: Option<Duration>) {
        if timeout == Some(Duration::ZERO) {
            self.duration_problem(
                &["steps", id, "timeout"],
                format!("`timeout` of step `{id}` is 0s: the step could never finish"),
                "give the step time, e.g. `timeout: 30m`, or remove `timeout`",
            );
        }
    }

    /// The poll policy of `spec` over `base`, checked at `path`, like `retry`.
    /// `lateness` chooses the adaptive schedule, `initial_delay` or
    /// `interval` the fixed one; a block with neither keeps `base`'s.
    fn poll(&mut self, base: &PollPolicy, spec: Option<&PollSpec>, path: &[&str]) -> PollPolicy {
        let Some(spec) = spec else {
            return base.clone();
        };
        let jitter_path: Vec<&str> = path.iter().copied().chain(["jitter"]).collect();
        let jitter = self.fraction(spec.jitter, &jitter_path, base.jitter);
        let at = |key: &'static str| -> Vec<&str> { path.iter().copied().chain([key]).collect() };
        let fixed = spec.initial_delay.is_some() || spec.interval.is_some();
        if spec.lateness.is_some() && fixed {
            let key = if spec.initial_delay.is_some() {
                "initial_delay"
            } else {
                "interval"
            };
            let span = self.span(&at("lateness"));
            let message = format!(
                "`poll.lateness` and `poll.{key}` choose two different schedules: a lateness budget polls from each operation's expected latency, `{key}` on a fixed clock"
            );
            self.diags.push(
                Diagnostic::new(Code::ConflictingFields, self.src, span, message).help(
                    "keep `lateness` (e.g. `poll: { lateness: 25% }`), or `initial_delay` and `interval` (e.g. `poll: { initial_delay: 20s, interval: 15s }`), not both"
                        .to_owned(),
                ),
            );
        }
        let schedule = if fixed {
            let (initial_delay, interval) = match base.schedule {
                PollSchedule::Fixed {
                    initial_delay,
                    interval,
                } => (initial_delay, interval),
                PollSchedule::Adaptive { .. } => (FIXED_INITIAL_DELAY, FIXED_INTERVAL),
            };
            PollSchedule::Fixed {
                initial_delay: spec.initial_delay.map_or(initial_delay, |d| d.0),
                interval: spec.interval.map_or(interval, |d| d.0),
            }
        } else if let Some(lateness) = spec.lateness {
            PollSchedule::Adaptive {
                lateness: self.lateness(lateness, &at("lateness")),
            }
        } else {
            base.schedule
        };
        let policy = PollPolicy {
            schedule,
            jitter,
            timeout: spec.timeout.map_or(base.timeout, |d| d.0),
        };
        let PollSchedule::Fixed {
            initial_delay,
            interval,
        } = policy.schedule
        else {
            return policy;
        };
        if spec.interval.is_some() && interval.is_zero() {
            self.duration_problem(
                &at("interval"),
                "`poll.interval` is 0s: every task would be polled without a pause".to_owned(),
                "poll every few seconds at least, e.g. `interval: 15s`",
            );
        }
        if (spec.timeout.is_some() || spec.initial_delay.is_some())
            && policy.timeout <= initial_delay
        {
            let key = if spec.timeout.is_some() {
                "timeout"
            } else {
                "initial_delay"
            };
            self.duration_problem(
                &at(key),
                format!(
                    "`poll.timeout` ({}) is not longer than `poll.initial_delay` ({}): every task would time out before its first poll",
                    humantime::format_duration(policy.timeout),
                    humantime::format_duration(initial_delay)
                ),
                "make `timeout` longer than `initial_delay`, e.g. `poll: { initial_delay: 20s, timeout: 15m }`",
            );
        }
        policy
    }

    /// A lateness budget that can be kept: more than nothing, and as a
    /// percentage at most 100%.
    fn lateness(&mut self, spec: LatenessSpec, path: &[&str]) -> Lateness {
        let default = Lateness::Fraction(DEFAULT_LATENESS);
        match spec {
            LatenessSpec::Fraction(x) if !(x > 0.0 && x <= 1.0) => {
                self.duration_problem(
                    path,
                    format!(
                        "`poll.lateness` is {}%; a percentage must be above 0% and at most 100%",
                        x * 100.0
                    ),
                    "give a share of the time a task took, e.g. `lateness: 25%`, or a duration, e.g. `lateness: 20s`",
                );
                default
            }
            LatenessSpec::Within(d) if d.is_zero() => {
                self.duration_problem(
                    path,
                    "`poll.lateness` is 0s: every task would be polled without a pause".to_owned(),
                    "allow some lateness, e.g. `lateness: 25%` or `lateness: 20s`",
                );
                default
            }
            LatenessSpec::Fraction(x) => Lateness::Fraction(x),
            LatenessSpec::Within(d) => Lateness::Within(d),
        }
    }
}

/// The retry policy without a `retry:` block.
const RETRY: RetryPolicy = RetryPolicy {
    attempts: 3,
    initial: Duration::from_secs(2),
    max: Duration::from_secs(60),
    factor: 2.0,
    jitter: 0.2,
};

/// The lateness budget without `poll.lateness`: a task is seen done within
/// a quarter of the time it took.
const DEFAULT_LATENESS: f64 = 0.25;

/// The fixed schedule's first delay when only `interval` is written.
const FIXED_INITIAL_DELAY: Duration = Duration::from_secs(20);
/// The fixed schedule's interval when only `initial_delay` is written.
const FIXED_INTERVAL: Duration = Duration::from_secs(15);

/// The poll policy without a `poll:` block.
const POLL: PollPolicy = PollPolicy {
    schedule: PollSchedule::Adaptive {
        lateness: Lateness::Fraction(DEFAULT_LATENESS),
    },
    jitter: 0.1,
    timeout: Duration::from_secs(15 * 60),
};

/// The matrix reference that `field` of step `id` is made of alone
/// (`${{ matrix.column }}`), if it is one.
fn analysed_field(loaded: &Loaded, id: &str, field: &str) -> Option<Reference> {
    let text = loaded.with_nodes.get(id)?.get(field)?.as_str()?;
    let template = crate::expr::parse_template(text).ok()?;
    let whole = template.whole_reference()?;
    (whole.context == Context::Matrix).then(|| whole.clone())
}

fn instances(loaded: &Loaded) -> Vec<Instance> {
    match &loaded.matrix {
        Some(m) => m
            .rows
            .iter()
            .map(|r| Instance {
                key: Some(r.key.clone()),
                matrix: r.values.clone(),
            })
            .collect(),
        None => vec![Instance {
            key: None,
            matrix: IndexMap::new(),
        }],
    }
}

/// Resolves inputs and matrix cells; everything else is known only at run time.
struct StaticScope<'a> {
    inputs: &'a IndexMap<String, Option<serde_json::Value>>,
    instance: &'a Instance,
}

impl Scope for StaticScope<'_> {
    fn root(&self, r: &Reference) -> Option<(serde_json::Value, usize)> {
        let name = r.field(0)?;
        match r.context {
            Context::Inputs => Some((self.inputs.get(name)?.clone()?, 1)),
            Context::Matrix => Some((self.instance.matrix.get(name)?.clone(), 1)),
            _ => None,
        }
    }
}

fn list_or_none<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(yaml: &str) -> Result<Plan, Vec<Diagnostic>> {
        let loaded =
            crate::manifest::load::load_str("t.yaml", yaml.to_owned(), std::path::Path::new("."))
                .unwrap();
        build(&loaded, &Options::default())
    }

    const STEPS: &str = "steps:\n  s:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }\n";

    #[test]
    fn a_step_s_policies_lie_over_the_pipeline_s() {
        let yaml = format!(
            "version: 1\nname: t\nretry: {{ attempts: 5, backoff: {{ factor: 3 }} }}\npoll: {{ interval: 9s }}\n{STEPS}    retry: {{ backoff: {{ initial: 1s }} }}\n    poll: {{ jitter: 0.5 }}\n"
        );
        let step = built(&yaml).unwrap().steps.remove(0);
        assert_eq!(
            (step.retry.attempts, step.retry.factor, step.retry.initial),
            (5, 3.0, Duration::from_secs(1))
        );
        assert_eq!(step.retry.max, RETRY.max);
        assert_eq!(
            (step.poll.schedule, step.poll.jitter),
            (
                PollSchedule::Fixed {
                    initial_delay: FIXED_INITIAL_DELAY,
                    interval: Duration::from_secs(9)
                },
                0.5
            )
        );
    }

    #[test]
    fn the_poll_schedule_is_adaptive_unless_a_fixed_clock_is_written() {
        let default = built(&format!("version: 1\nname: t\n{STEPS}")).unwrap();
        assert_eq!(default.steps[0].poll.schedule, POLL.schedule);
        let yaml = format!(
            "version: 1\nname: t\npoll: {{ initial_delay: 5s }}\n{STEPS}    poll: {{ lateness: 30s }}\n"
        );
        let step = built(&yaml).unwrap().steps.remove(0);
        let within = Lateness::Within(Duration::from_secs(30));
        assert_eq!(
            step.poll.schedule,
            PollSchedule::Adaptive { lateness: within }
        );
        let yaml = format!(
            "version: 1\nname: t\npoll: {{ lateness: 10% }}\n{STEPS}    poll: {{ timeout: 1h }}\n"
        );
        let step = built(&yaml).unwrap().steps.remove(0);
        let tenth = Lateness::Fraction(0.1);
        assert_eq!(
            step.poll.schedule,
            PollSchedule::Adaptive { lateness: tenth }
        );
        assert_eq!(step.poll.timeout, Duration::from_secs(3600));
    }

    #[test]
    fn a_lateness_that_cannot_be_kept_is_refused_where_it_is_written() {
        let cases = [
            ("{ lateness: 0% }", Code::OutOfRange, "above 0%"),
            ("{ lateness: 101% }", Code::OutOfRange, "at most 100%"),
            ("{ lateness: 0s }", Code::OutOfRange, "without a pause"),
            (
                "{ interval: 9s, lateness: 20% }",
                Code::ConflictingFields,
                "two different schedules",
            ),
        ];
        for (block, code, words) in cases {
            let yaml = format!("version: 1\nname: t\n{STEPS}    poll: {block}\n");
            let diags = built(&yaml).unwrap_err();
            assert_eq!(diags.len(), 1, "{block}: {diags:?}");
            assert_eq!(diags[0].code, code, "{block}");
            assert!(
                diags[0].message.contains(words),
                "{block}: {}",
                diags[0].message
            );
            let col =
                u32::try_from(block.find("lateness").unwrap() + 11 + "lateness: ".len()).unwrap();
            assert_eq!((diags[0].span.line, diags[0].span.col), (7, col), "{block}");
        }
    }

    #[test]
    fn a_factor_that_is_not_a_number_is_refused() {
        let yaml =
            format!("version: 1\nname: t\n{STEPS}    retry: {{ backoff: {{ factor: .nan }} }}\n");
        let diags = built(&yaml).unwrap_err();
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].message, "`backoff.factor` must be at least 1");
        assert_eq!(diags[0].span.line, 7);
    }
}
