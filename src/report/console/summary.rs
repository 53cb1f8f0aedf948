//! The table printed when a run ends: per step, how many instances
//! succeeded, failed or were skipped and what they cost; the totals; where
//! the results are; and, briefly, why each failed instance failed.

use std::fmt::Write as _;
use std::path::Path;

use indexmap::IndexMap;

use crate::report::results::{Results, RunStatus, StepResult, StepStatus};

use super::lines::truncate;

/// Failures listed at most; the rest are in the results file.
const MAX_FAILURES: usize = 20;

#[derive(Debug, Default, Clone, Copy)]
struct Row {
    succeeded: usize,
    failed: usize,
    skipped: usize,
    charged: u64,
    refunded: u64,
}

impl Row {
    fn add(&mut self, r: &StepResult) {
        match r.status {
            StepStatus::Succeeded => self.succeeded += 1,
            StepStatus::Failed => self.failed += 1,
            StepStatus::Skipped | StepStatus::SkippedCondition => self.skipped += 1,
            StepStatus::Waiting | StepStatus::Running => {}
        }
        self.charged += r.credits.charged;
        self.refunded += r.credits.refunded;
    }

    fn sum(&mut self, other: Row) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.charged += other.charged;
        self.refunded += other.refunded;
    }
}

const HEADERS: [&str; 5] = ["succeeded", "failed", "skipped", "charged", "refunded"];

/// The whole summary, ending with a newline.
pub(crate) fn summary(results: &Results, results_path: &Path) -> String {
    let mut rows: IndexMap<&str, Row> = IndexMap::new();
    for step in &results.steps {
        rows.entry(step.step.as_str()).or_default().add(step);
    }
    let mut total = Row::default();
    rows.values().for_each(|r| total.sum(*r));
    // The run's own account: it also holds what a resumed run paid for
    // requests it no longer makes (the manifest was edited).
    total.charged = results.totals.credits_charged;
    total.refunded = results.totals.credits_refunded;
    let width = rows.keys().map(|k| k.len()).chain([5]).max().unwrap_or(5);

    let mut out = String::new();
    let _ = writeln!(out, "\n{:<width$}  {}", "step", HEADERS.join("  "));
    for (step, row) in &rows {
        push_row(&mut out, step, row, width);
    }
    push_row(&mut out, "total", &total, width);
    let _ = writeln!(out);
    let _ = writeln!(out, "credits: {}", results.totals.credits());
    if let Some(observed) = &results.observed_charges {
        out.push_str(&observed.render());
    }
    let _ = writeln!(out, "status: {}", status(results));
    let _ = writeln!(out, "results: {}", results_path.display());
    push_failures(&mut out, results);
    out
}

fn push_row(out: &mut String, name: &str, row: &Row, width: usize) {
    let cells = [
        row.succeeded as u64,
        row.failed as u64,
        row.skipped as u64,
        row.charged,
        row.refunded,
    ];
    let _ = write!(out, "{name:<width$}");
    for (cell, header) in cells.iter().zip(HEADERS) {
        let _ = write!(out, "  {cell:>w$}", w = header.len());
    }
    out.push('\n');
}

fn status(results: &Results) -> String {
    let word = match results.status {
        RunStatus::Running => "running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Incomplete => "incomplete",
        RunStatus::Failed => "failed",
        RunStatus::Interrupted => "interrupted",
        RunStatus::Stopped => "stopped",
    };
    match &results.stop_reason {
        Some(reason) => format!("{word}: {reason}"),
        None => word.to_owned(),
    }
}

fn push_failures(out: &mut String, results: &Results) {
    let failed: Vec<&StepResult> = results
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
        .collect();
    if failed.is_empty() {
        return;
    }
    let _ = writeln!(out, "failed:");
    for step in failed.iter().take(MAX_FAILURES) {
        let name = step.name();
        let why = step.error.as_ref().map_or_else(
            || "no error recorded".to_owned(),
            |e| format!("{}: {}", e.kind, truncate(&e.message, 100)),
        );
        let _ = writeln!(out, "  {name}  {why}");
    }
    if failed.len() > MAX_FAILURES {
        let _ = writeln!(
            out,
            "  … and {} more; see the results file",
            failed.len() - MAX_FAILURES
        );
    }
}
