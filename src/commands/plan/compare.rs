//! `plan --compare BASE`: what a change to a manifest adds to or removes
//! from its price, step by step (BASE is read in `base`). Both sides are
//! priced by the plan's own code; nothing here prices anything.

use std::fmt::Write as _;

use serde::Serialize;

use super::base::{BaseError, base_plan};
use super::markdown::prices_line;
use super::{PlanArgs, per_step, print_problems, rows, totals};
use crate::exit;
use crate::format::OutputFormat;
use crate::plan::Plan;
use crate::report::markdown::{cell, code};

/// The hidden first line of the Markdown, by which a CI job finds the
/// comment it posted before and updates it instead of adding another.
pub const MARKER: &str = "<!-- sonicflow-cost -->";

pub(super) fn run(args: &PlanArgs, after: &Plan, base: &str) -> u8 {
    let before = match base_plan(args, base) {
        Ok(before) => before,
        Err(BaseError::Invalid(d)) => {
            print_problems(&d, args.problems());
            return exit::INVALID;
        }
        Err(e) => {
            crate::errln!("error: {e}");
            return exit::INVALID;
        }
    };
    let comparison = Comparison::of(after, base, before.as_ref());
    match args.output() {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(&comparison).unwrap_or_default();
            text.push('\n');
            crate::out!("{text}");
        }
        OutputFormat::Markdown => crate::out!("{}", comparison.markdown(after)),
        OutputFormat::Human | OutputFormat::Github => crate::out!("{}", comparison.human()),
    }
    exit::SUCCESS
}

/// How a step stands against BASE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Change {
    New,
    Removed,
    Changed,
    Unchanged,
}

impl Change {
    fn word(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Removed => "removed",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
        }
    }
}

/// One side of a step: what its plan says it calls and costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Side {
    action: &'static str,
    operation: &'static str,
    calls: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    calls_expected: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    calls_at_most: bool,
    unit_credits: u64,
    credits: u64,
}

#[derive(Debug, Clone, Serialize)]
struct StepChange {
    step: String,
    change: Change,
    /// `null` for a new step.
    before: Option<Side>,
    /// `null` for a removed step.
    after: Option<Side>,
    /// `after - before` credits.
    difference: i64,
    /// What changed, in words (`calls 3 → 4`, `price 20 → 15`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct BaseInfo {
    /// BASE as given.
    given: String,
    /// Whether BASE has the manifest; without it every step is new.
    found: bool,
}

/// The whole difference.
#[derive(Debug, Clone, Serialize)]
struct Comparison {
    pipeline: String,
    file: String,
    base: BaseInfo,
    steps: Vec<StepChange>,
    total_before: u64,
    total_after: u64,
    difference: i64,
    /// Either total is a maximum or an expectation (see the steps).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    estimated: bool,
}

/// Each step of `plan` as one side of the comparison, in execution order.
fn sides(plan: &Plan) -> (Vec<(String, Side)>, u64, bool) {
    let rows = rows(plan, &[]);
    let t = totals(plan, &rows);
    let steps = per_step(plan, &rows)
        .into_iter()
        .map(|s| {
            (
                s.id.to_owned(),
                Side {
                    action: s.action,
                    operation: s.operation,
                    calls: s.calls,
                    calls_expected: s.expected,
                    calls_at_most: s.at_most,
                    unit_credits: s.unit_credits,
                    credits: s.credits,
                },
            )
        })
        .collect();
    (steps, t.total, t.expected || t.at_most)
}

fn signed(after: u64, before: u64) -> i64 {
    i64::try_from(after).unwrap_or(i64::MAX) - i64::try_from(before).unwrap_or(i64::MAX)
}

/// What differs between two sides of one step, in words.
fn details(before: &Side, after: &Side) -> Vec<String> {
    let mut out = Vec::new();
    if before.action != after.action {
        out.push(format!("action {} → {}", before.action, after.action));
    } else if before.operation != after.operation {
        out.push(format!(
            "operation {} → {}",
            before.operation, after.operation
        ));
    }
    let count = |s: &Side| super::count_text(s.calls, s.calls_expected, s.calls_at_most);
    if count(before) != count(after) {
        out.push(format!("calls {} → {}", count(before), count(after)));
    }
    if before.unit_credits != after.unit_credits {
        out.push(format!(
            "price {} → {} each",
            before.unit_credits, after.unit_credits
        ));
    }
    out
}

impl Comparison {
    fn of(after: &Plan, given: &str, before: Option<&Plan>) -> Comparison {
        let (now, total_after, est_after) = sides(after);
        let (then, total_before, est_before) = before.map_or((Vec::new(), 0, false), sides);
        let find = |list: &[(String, Side)], id: &str| {
            list.iter()
                .find(|(s, _)| s == id)
                .map(|(_, side)| side.clone())
        };
        let mut steps: Vec<StepChange> = now
            .iter()
            .map(|(id, side)| {
                let old = find(&then, id);
                let (change, details) = match &old {
                    None => (Change::New, Vec::new()),
                    Some(old) if old == side => (Change::Unchanged, Vec::new()),
                    Some(old) => (Change::Changed, details(old, side)),
                };
                StepChange {
                    step: id.clone(),
                    change,
                    difference: signed(side.credits, old.as_ref().map_or(0, |o| o.credits)),
                    before: old,
                    after: Some(side.clone()),
                    details,
                }
            })
            .collect();
        steps.extend(
            then.iter()
                .filter(|(id, _)| find(&now, id).is_none())
                .map(|(id, side)| StepChange {
                    step: id.clone(),
                    change: Change::Removed,
                    difference: signed(0, side.credits),
                    before: Some(side.clone()),
                    after: None,
                    details: Vec::new(),
                }),
        );
        Comparison {
            pipeline: after.name.clone(),
            file: after.file.clone(),
            base: BaseInfo {
                given: given.to_owned(),
                found: before.is_some(),
            },
            steps,
            total_before,
            total_after,
            difference: signed(total_after, total_before),
            estimated: est_after || est_before,
        }
    }

    /// How many steps each kind of change has, in a sentence.
    fn counts(&self) -> String {
        let parts: Vec<String> = [
            Change::New,
            Change::Removed,
            Change::Changed,
            Change::Unchanged,
        ]
        .iter()
        .filter_map(|&kind| {
            let n = self.steps.iter().filter(|s| s.change == kind).count();
            (n > 0).then(|| format!("{n} {}", kind.word()))
        })
        .collect();
        if parts.is_empty() {
            "no steps".to_owned()
        } else {
            parts.join(", ")
        }
    }

    fn absent_note(&self) -> Option<String> {
        (!self.base.found).then(|| {
            format!(
                "`{}` has no `{}`: every step is new",
                self.base.given, self.file
            )
        })
    }

    fn estimate_note(&self) -> Option<&'static str> {
        self.estimated.then_some(
            "some counts are expected or at most (fan-outs and conditions known only at run time)",
        )
    }

    /// For a terminal or a CI log.
    fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "cost difference: {} ({}) against {}",
            self.pipeline, self.file, self.base.given
        );
        if let Some(note) = self.absent_note() {
            let _ = writeln!(out, "note: {}", note.replace('`', ""));
        }
        out.push('\n');
        let w = self
            .steps
            .iter()
            .map(|s| s.step.len())
            .chain([5])
            .max()
            .unwrap_or(5);
        let _ = writeln!(
            out,
            "  {:<w$}  {:<9}  {:>7}  {:>7}  {:>10}",
            "step", "change", "before", "after", "difference"
        );
        for s in &self.steps {
            let before = s
                .before
                .as_ref()
                .map_or("-".to_owned(), |b| b.credits.to_string());
            let after = s
                .after
                .as_ref()
                .map_or("-".to_owned(), |a| a.credits.to_string());
            let mut line = format!(
                "  {:<w$}  {:<9}  {before:>7}  {after:>7}  {:>10}",
                s.step,
                s.change.word(),
                plus(s.difference)
            );
            if !s.details.is_empty() {
                let _ = write!(line, "  ({})", s.details.join("; "));
            }
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(
            out,
            "\ntotal: {} → {} credits ({}); {}",
            self.total_before,
            self.total_after,
            plus(self.difference),
            self.counts()
        );
        if let Some(note) = self.estimate_note() {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    /// For a pull request comment: a hidden marker line first.
    fn markdown(&self, after: &Plan) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{MARKER}");
        let _ = writeln!(
            out,
            "### Cost difference: `{}`\n\n**{} credits** ({} → {}) against `{}` · `{}` · {}\n",
            code(&self.pipeline),
            plus(self.difference),
            self.total_before,
            self.total_after,
            code(&self.base.given),
            code(&self.file),
            self.counts()
        );
        if let Some(note) = self.absent_note() {
            let _ = writeln!(out, "> {note}\n");
        }
        out.push_str("| step | change | before | after | difference | what changed |\n");
        out.push_str("| :-- | :-- | --: | --: | --: | :-- |\n");
        for s in &self.steps {
            let credits = |side: &Option<Side>| {
                side.as_ref()
                    .map_or("—".to_owned(), |x| x.credits.to_string())
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                code(&s.step),
                s.change.word(),
                credits(&s.before),
                credits(&s.after),
                plus(s.difference),
                cell(&s.details.join("; "))
            );
        }
        let _ = writeln!(
            out,
            "| **total** | | **{}** | **{}** | **{}** | |",
            self.total_before,
            self.total_after,
            plus(self.difference)
        );
        if let Some(note) = self.estimate_note() {
            let _ = writeln!(out, "\nNote: {note}.");
        }
        let _ = writeln!(out, "\n{}", prices_line(after));
        out
    }
}

/// `+20`, `-6`, `0`.
fn plus(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(action: &'static str, calls: u64, each: u64) -> Side {
        Side {
            action,
            operation: action,
            calls,
            calls_expected: false,
            calls_at_most: false,
            unit_credits: each,
            credits: calls * each,
        }
    }

    #[test]
    fn what_changed_names_the_action_the_count_and_the_price() {
        assert_eq!(
            details(&side("create", 2, 20), &side("extend", 2, 15)),
            ["action create → extend", "price 20 → 15 each"]
        );
        let mut expected = side("wav", 4, 2);
        expected.calls_expected = true;
        assert_eq!(
            details(&side("wav", 4, 2), &expected),
            ["calls 4 → 4 expected"]
        );
        assert!(details(&side("wav", 1, 2), &side("wav", 1, 2)).is_empty());
    }

    #[test]
    fn differences_are_signed() {
        assert_eq!(plus(signed(86, 66)), "+20");
        assert_eq!(plus(signed(60, 66)), "-6");
        assert_eq!(plus(signed(5, 5)), "0");
    }
}
