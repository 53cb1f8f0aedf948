//! `sonicflow plan`: the dry run. Prices every step and says what a run
//! would submit, without touching the network; with `--compare BASE`, what
//! a change to the manifest adds to or removes from that price.

mod base;
mod compare;
mod markdown;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::history;
use crate::diag::{Code, Diagnostic, Format, Source};
use crate::engine::RowHistory;
use crate::exit;
use crate::format::{FormatArgs, Formats, OutputFormat};
use crate::journal::RunMemory;
use crate::plan::condition::When;
use crate::plan::{Options, Plan};
use crate::prices::PriceTable;
use crate::span::Span;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sonicflow plan pipelines/nightly.yaml                                   # the priced table
  sonicflow plan pipelines/nightly.yaml --json | jq .totals               # for a script
  sonicflow plan pipelines/nightly.yaml --compare origin/main --format markdown   # for a pull request")]
pub struct PlanArgs {
    /// The pipeline manifest.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Override an input: `--input name=value` (repeatable).
    #[arg(long = "input", value_name = "NAME=VALUE", value_parser = super::parse_input)]
    pub inputs: Vec<(String, String)>,
    /// Read the matrix rows from this CSV or JSONL file instead of the manifest's `matrix.file` or `matrix.rows`.
    #[arg(long, value_name = "FILE")]
    pub matrix: Option<PathBuf>,
    /// A price table (YAML) to use instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// Fail (exit 3) when the plan costs more; overrides `limits.max_credits`.
    #[arg(long, value_name = "CREDITS")]
    pub max_credits: Option<u64>,
    #[command(flatten)]
    pub format: FormatArgs<PlanFormats>,
    /// Print what the plan adds to or removes from BASE: another manifest file, or a git revision (`origin/main`, `HEAD~1`, a sha) of this one.
    #[arg(long, value_name = "BASE")]
    pub compare: Option<String>,
    /// Base URL of the API the run will use (else `MUSICAPI_BASE_URL`, else production): earlier results count only from the same service.
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
    #[command(flatten)]
    pub history: super::history::HistoryArgs,
}

/// Reads `--prices FILE`, or the built-in table.
pub fn price_table(path: Option<&PathBuf>) -> Result<PriceTable, Vec<Diagnostic>> {
    let Some(path) = path else {
        return Ok(PriceTable::builtin());
    };
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let source = Source::new(name.clone(), String::new());
        vec![
            Diagnostic::new(
                Code::Io,
                &source,
                Span::default(),
                format!("cannot read the price table: {e}"),
            )
            .help("check the `--prices` path"),
        ]
    })?;
    PriceTable::from_yaml(&text, &name).map_err(|e| {
        let source = Source::new(name.clone(), text.clone());
        vec![
            Diagnostic::new(
                Code::Prices,
                &source,
                Span::locate(&text, 0, 1),
                e.to_string(),
            )
            .help(e.help()),
        ]
    })
}

/// What `plan` prints.
#[derive(Debug, Clone, Copy)]
pub struct PlanFormats;

impl Formats for PlanFormats {
    const ALLOWED: &'static [OutputFormat] = &OutputFormat::ALL;
    const HELP: &'static str = "How to print the plan: `human`, a table for a terminal (the default); `json`, one document (problems as JSON on stderr); `markdown`, tables for a pull-request comment or a job summary; `github`, the table with problems as GitHub Actions annotations";
}

impl PlanArgs {
    /// The output format.
    fn output(&self) -> OutputFormat {
        self.format.get()
    }

    /// How problems with the manifest are printed.
    fn problems(&self) -> Format {
        Format::for_output(self.output())
    }

    /// How `plan` builds a plan from a loaded manifest: these inputs,
    /// prices, cap and matrix.
    fn options(&self) -> Result<Options, Vec<Diagnostic>> {
        Ok(Options {
            inputs: self.inputs.clone(),
            require_inputs: true,
            prices: price_table(self.prices.as_ref())?,
            max_credits: self.max_credits,
            pace: crate::plan::PaceFlags::default(),
            matrix: self.matrix.clone(),
        })
    }
}

/// Prints problems: annotations go to stdout (where a workflow reads
/// them, as `validate` prints them), everything else to stderr.
fn print_problems(diagnostics: &[Diagnostic], format: Format) {
    if format == Format::Github {
        crate::out!(
            "{}",
            crate::diag::render(diagnostics, Format::Github, false)
        );
    } else {
        super::print_diagnostics(diagnostics, format);
    }
}

pub fn run(args: &PlanArgs) -> u8 {
    let planned = args
        .options()
        .and_then(|options| super::load_and_plan(&args.file, &options));
    let mut plan = match planned {
        Ok((_, plan)) => {
            if !plan.warnings.is_empty() {
                print_problems(&plan.warnings, args.problems());
            }
            plan
        }
        Err(d) => {
            print_problems(&d, args.problems());
            return exit::INVALID;
        }
    };
    if let Some(base) = &args.compare {
        return compare::run(args, &plan, base);
    }
    let rows_before = plan.instances.len();
    if let Err(e) = history::select(&mut plan, &args.history.selection()) {
        crate::errln!("error: {e}");
        return exit::INVALID;
    }
    let policy = match args.history.policy(&plan) {
        Ok(p) => p,
        Err(e) => {
            crate::errln!("error: {e}");
            return exit::INVALID;
        }
    };
    let state = match args.history.state(&args.file) {
        Ok(s) => s,
        Err(e) => {
            crate::errln!("error: {e}");
            return exit::INVALID;
        }
    };
    if let Err(e) = state.hydrate() {
        crate::errln!("warning: {e}; the plan counts only what the local copy knows");
    }
    let lock = crate::journal::group::lock_name(&plan.name, args.history.shard);
    history::warn_if_locked(&state, &lock);
    let api = history::api_identity(args.api_base.as_deref(), false);
    let known = history::known(&state, &plan, api.as_deref(), None);
    let memory = RunMemory::read_only(known, policy);
    let outlook = crate::engine::forecast(&plan, &memory);
    let past = crate::engine::row_histories(&plan, &memory, &outlook);
    match args.output() {
        OutputFormat::Json => crate::out!("{}", render_json_with(&plan, &past)),
        OutputFormat::Markdown => crate::out!("{}", markdown::render(&plan, &past)),
        OutputFormat::Human | OutputFormat::Github => {
            crate::out!("{}", render_human_with(&plan, &past));
        }
    }
    if let Some(shard) = args.history.shard
        && args.output() != OutputFormat::Json
    {
        crate::outln!("{}", shard_line(&plan, shard, rows_before));
    }
    let to_spend = outlook.total_to_spend();
    match plan.max_credits {
        Some(max) if crate::engine::over_cap(max, 0, to_spend) => {
            crate::errln!(
                "error: the run would spend {}, more than the budget of {max}\n  help: raise `limits.max_credits` (or `--max-credits`), or narrow it with `--select` / `--exclude`",
                crate::format::credits(to_spend)
            );
            exit::BUDGET
        }
        _ => exit::SUCCESS,
    }
}

/// Which rows a shard takes of how many, as `plan --shard` ends.
fn shard_line(plan: &Plan, shard: crate::journal::Shard, rows_before: usize) -> String {
    let keys: Vec<&str> = plan
        .instances
        .iter()
        .filter_map(|i| i.key.as_deref())
        .collect();
    let taken = if keys.is_empty() {
        "none: this shard runs nothing".to_owned()
    } else {
        keys.join(", ")
    };
    format!(
        "shard {shard}: {} of {rows_before} matrix rows ({taken}); the other rows are priced by the other shards",
        keys.len()
    )
}

/// One row of the expanded plan: a step in one matrix instance.
#[derive(Debug, Serialize)]
pub struct PlanRow<'a> {
    /// Position of the step in `Plan::steps`.
    #[serde(skip)]
    pub step: usize,
    pub instance: Option<&'a str>,
    pub id: &'a str,
    pub action: &'static str,
    pub operation: &'static str,
    pub calls: u64,
    pub calls_expected: bool,
    /// `calls` is a maximum: a condition known only at run time, or a
    /// fan-out over a list of bounded length.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub calls_at_most: bool,
    /// For a step with `if:`: whether it runs in this row, as far as the
    /// plan can tell (`always`, `never`: skipped (condition), `maybe`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<When>,
    pub unit_credits: u64,
    pub credits: u64,
    pub depends_on: Vec<&'a str>,
    /// The names of the step's instances in this row, where the plan knows
    /// them and they are more than positions (see `plan::names`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// How this step stands against earlier runs; absent without history.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub history: Option<&'a RowHistory>,
}

/// Rows × steps, rows in matrix order and steps in execution order, each
/// with its standing against earlier runs from `past` (rows × steps too;
/// empty without history). Where the forecast knows a row's fan-out, its
/// calls are counted, not estimated.
pub fn rows<'a>(plan: &'a Plan, past: &'a [RowHistory]) -> Vec<PlanRow<'a>> {
    let mut out = Vec::with_capacity(plan.steps.len() * plan.instances.len());
    let n_steps = plan.steps.len();
    for (row, instance) in plan.instances.iter().enumerate() {
        for (s, step) in plan.steps.iter().enumerate() {
            // A step that runs once per pipeline has one row, the first.
            if step.per_pipeline && row > 0 {
                continue;
            }
            let history = past.get(row * n_steps + s);
            let known = history.and_then(|h| h.calls);
            let count = step.calls_in(row);
            let when = step.when.get(row).copied().unwrap_or(When::Always);
            let calls = match when {
                When::Never => 0,
                _ => known.unwrap_or(count.value()),
            };
            out.push(PlanRow {
                step: s,
                instance: if step.per_pipeline {
                    None
                } else {
                    instance.key.as_deref()
                },
                id: &step.id,
                action: step.action.name(),
                operation: step.operation,
                calls,
                calls_expected: count.is_expected() && known.is_none(),
                calls_at_most: when == When::Maybe || (count.is_at_most() && known.is_none()),
                condition: step.condition.as_ref().map(|_| when),
                unit_credits: step.unit_credits,
                credits: calls * step.unit_credits,
                depends_on: step
                    .deps
                    .iter()
                    .map(|&d| plan.steps[d].id.as_str())
                    .collect(),
                names: crate::plan::names::planned(plan, row, s),
                history,
            });
        }
    }
    // Steps that run once per pipeline come after every row, as they run.
    out.sort_by_key(|r| plan.steps[r.step].per_pipeline);
    out
}

/// What the rows cost in all: calls and credits per action, the total of
/// the steps that may be paid for, and whether any count is an estimate.
struct Totals {
    by_action: BTreeMap<&'static str, (u64, u64)>,
    total: u64,
    expected: bool,
    /// Some count in the total is a maximum.
    at_most: bool,
    /// After reuse and selection: the rows' history, else their full price.
    to_spend: u64,
}

fn totals(plan: &Plan, rows: &[PlanRow<'_>]) -> Totals {
    let mut t = Totals {
        by_action: BTreeMap::new(),
        total: 0,
        expected: false,
        at_most: false,
        to_spend: 0,
    };
    for r in rows {
        let entry = t.by_action.entry(r.action).or_default();
        entry.0 += r.calls;
        entry.1 += r.credits;
        if plan.steps[r.step].scope.may_submit() {
            t.total += r.credits;
        }
        t.expected |= r.calls_expected && r.unit_credits > 0;
        t.at_most |= r.calls_at_most && r.unit_credits > 0;
    }
    t.to_spend = if rows.iter().all(|r| r.history.is_none()) {
        t.total
    } else {
        rows.iter()
            .map(|r| r.history.map_or(r.credits, |h| h.to_spend))
            .sum()
    };
    t
}

/// The plan as a person reads it, as if nothing had run before.
pub fn render_human(plan: &Plan) -> String {
    render_human_with(plan, &[])
}

/// The plan as a person reads it, with each row's standing against earlier runs.
pub fn render_human_with(plan: &Plan, past: &[RowHistory]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "plan: {} ({})", plan.name, plan.file);
    let _ = writeln!(out, "prices: {}", plan.prices);
    for line in plan.prices.age_lines(&super::today()) {
        let _ = writeln!(out, "{line}");
    }
    if plan.instances.iter().any(|i| i.key.is_some()) {
        let _ = writeln!(
            out,
            "matrix: {} × {}",
            crate::format::count(plan.instances.len(), "row", "rows"),
            crate::format::count(plan.steps.len(), "step", "steps")
        );
    }
    out.push('\n');
    let rows = rows(plan, past);
    write_table(&mut out, &rows);
    write_names(&mut out, &rows);
    write_footer(&mut out, plan, &totals(plan, &rows));
    out
}

/// The instances the plan can name, by row and step.
fn write_names(out: &mut String, rows: &[PlanRow<'_>]) {
    let named: Vec<&PlanRow<'_>> = rows.iter().filter(|r| !r.names.is_empty()).collect();
    if named.is_empty() {
        return;
    }
    out.push_str(
        "
instances:
",
    );
    for r in named {
        let step = match r.instance {
            Some(row) => format!("{row}/{}", r.id),
            None => r.id.to_owned(),
        };
        let _ = writeln!(out, "  {step}: {}", r.names.join(", "));
    }
}

/// The table of rows, its columns as wide as their widest cell.
fn write_table(out: &mut String, rows: &[PlanRow<'_>]) {
    let width =
        |f: fn(&PlanRow<'_>) -> usize, min: usize| rows.iter().map(f).max().unwrap_or(min).max(min);
    let with_instance = rows.iter().any(|r| r.instance.is_some());
    let w_id = width(|r| r.id.len(), 4);
    let w_inst = width(|r| r.instance.map_or(0, str::len), 8);
    let w_action = width(|r| r.action.len(), 6);
    let w_op = width(|r| r.operation.len(), 9);
    let instance_head = if with_instance {
        format!("{:<w_inst$}  ", "instance")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{:>4}  {instance_head}{:<w_id$}  {:<w_action$}  {:<w_op$}  {:>14}  {:>5}  {:>8}  {:>8}  status",
        "#", "step", "action", "operation", "calls", "each", "credits", "to spend"
    );
    for (n, r) in rows.iter().enumerate() {
        let instance = if with_instance {
            format!("{:<w_inst$}  ", r.instance.unwrap_or(""))
        } else {
            String::new()
        };
        let calls = count_text(r.calls, r.calls_expected, r.calls_at_most);
        let (to_spend, status) = match r.history {
            _ if r.condition == Some(When::Never) => (0, "skipped (condition)".to_owned()),
            Some(h) if r.condition == Some(When::Maybe) => {
                (h.to_spend, format!("{}, if its condition holds", h.status))
            }
            None if r.condition == Some(When::Maybe) => {
                (r.credits, "new, if its condition holds".to_owned())
            }
            Some(h) if h.detail.is_empty() => (h.to_spend, h.status.to_string()),
            Some(h) => (h.to_spend, format!("{} ({})", h.status, h.detail)),
            None => (r.credits, "new".to_owned()),
        };
        let _ = writeln!(
            out,
            "{:>4}  {instance}{:<w_id$}  {:<w_action$}  {:<w_op$}  {:>14}  {:>5}  {:>8}  {:>8}  {status}",
            n + 1,
            r.id,
            r.action,
            r.operation,
            calls,
            r.unit_credits,
            r.credits,
            to_spend
        );
    }
}

/// A count of calls as the plan knows it: `3`, `6 expected`, `at most 2`.
pub(super) fn count_text(calls: u64, expected: bool, at_most: bool) -> String {
    if at_most {
        format!("at most {calls}")
    } else if expected {
        format!("{calls} expected")
    } else {
        calls.to_string()
    }
}

/// One step over every matrix row it stands in, added up from the plan's rows.
#[derive(Debug, Clone)]
pub(super) struct StepCost<'a> {
    /// Position in `Plan::steps`.
    pub(super) step: usize,
    pub(super) id: &'a str,
    pub(super) action: &'static str,
    pub(super) operation: &'static str,
    /// How many rows of the plan it has (matrix rows, or one).
    pub(super) rows: usize,
    pub(super) calls: u64,
    pub(super) expected: bool,
    pub(super) at_most: bool,
    pub(super) unit_credits: u64,
    pub(super) credits: u64,
}

/// The plan's rows added up per step, in execution order.
pub(super) fn per_step<'a>(plan: &'a Plan, rows: &[PlanRow<'a>]) -> Vec<StepCost<'a>> {
    plan.steps
        .iter()
        .enumerate()
        .map(|(s, step)| {
            let mine = || rows.iter().filter(move |r| r.step == s);
            StepCost {
                step: s,
                id: &step.id,
                action: step.action.name(),
                operation: step.operation,
                rows: mine().count(),
                calls: mine().map(|r| r.calls).sum(),
                expected: mine().any(|r| r.calls_expected),
                at_most: mine().any(|r| r.calls_at_most),
                unit_credits: step.unit_credits,
                credits: mine().map(|r| r.credits).sum(),
            }
        })
        .collect()
}

/// Credits by action, the total, what will be spent and the budget's verdict.
fn write_footer(out: &mut String, plan: &Plan, t: &Totals) {
    out.push_str("\ncredits by action:\n");
    let w = t.by_action.keys().map(|k| k.len()).max().unwrap_or(0);
    for (action, (calls, credits)) in &t.by_action {
        let _ = writeln!(
            out,
            "  {action:<w$}  {credits:>8}  ({calls} call{})",
            if *calls == 1 { "" } else { "s" }
        );
    }
    let at_most = if t.at_most { "at most " } else { "" };
    let _ = write!(out, "\ntotal: {at_most}{}", crate::format::credits(t.total));
    if t.expected {
        out.push_str(
            " (expected: some calls fan out over lists whose length is known only at run time)",
        );
    }
    if t.at_most {
        out.push_str(" (at most: some steps run only if a condition known at run time holds)");
    }
    out.push('\n');
    if t.to_spend != t.total {
        let _ = writeln!(
            out,
            "to spend: {} (the rest is reused from earlier runs, already paid, or not selected)",
            crate::format::credits(t.to_spend)
        );
    }
    if let Some(max) = plan.max_credits {
        let verdict = if crate::engine::over_cap(max, 0, t.to_spend) {
            "OVER BUDGET"
        } else {
            "within budget"
        };
        let _ = writeln!(out, "budget: {}, {verdict}", crate::format::credits(max));
    }
}

#[derive(Serialize)]
struct PlanJson<'a> {
    pipeline: &'a str,
    file: &'a str,
    price_table: PriceJson<'a>,
    instances: usize,
    steps: Vec<PlanRow<'a>>,
    by_action: BTreeMap<&'static str, ActionTotal>,
    total_credits: u64,
    total_expected: bool,
    /// `total_credits` is a maximum (see the steps' `calls_at_most`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    total_at_most: bool,
    /// Credits the run would actually spend, after reuse and selection.
    to_spend: u64,
    max_credits: Option<u64>,
    within_budget: bool,
}

#[derive(Serialize)]
struct PriceJson<'a> {
    name: &'a str,
    date: &'a str,
    source: &'a str,
    version: String,
    overridden: &'a [String],
    /// Days since the table's date; `null` when its date is not `YYYY-MM-DD`.
    age_days: Option<i64>,
    /// Older than the threshold (90 days).
    stale: bool,
}

#[derive(Serialize)]
struct ActionTotal {
    calls: u64,
    credits: u64,
}

/// The plan as JSON, as if nothing had run before.
pub fn render_json(plan: &Plan) -> String {
    render_json_with(plan, &[])
}

/// The plan as JSON, with each row's standing against earlier runs.
pub fn render_json_with(plan: &Plan, past: &[RowHistory]) -> String {
    let steps = rows(plan, past);
    let t = totals(plan, &steps);
    let age = plan.prices.age(&super::today());
    let doc = PlanJson {
        pipeline: &plan.name,
        file: &plan.file,
        price_table: PriceJson {
            name: &plan.prices.name,
            date: &plan.prices.date,
            source: &plan.prices.source,
            version: plan.prices.version(),
            overridden: &plan.prices.overridden,
            age_days: age.map(|a| a.days),
            stale: age.is_some_and(|a| a.stale),
        },
        instances: plan.instances.len(),
        steps,
        by_action: t
            .by_action
            .into_iter()
            .map(|(k, (calls, credits))| (k, ActionTotal { calls, credits }))
            .collect(),
        total_credits: t.total,
        total_expected: t.expected,
        total_at_most: t.at_most,
        to_spend: t.to_spend,
        max_credits: plan.max_credits,
        within_budget: plan.max_credits.is_none_or(|m| t.to_spend <= m),
    };
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}
