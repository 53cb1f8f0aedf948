//! The plan as Markdown: tables that render on GitHub, for a pull request
//! comment or a job summary. Same rows and totals as the human table.

use std::fmt::Write as _;

use super::{Plan, StepCost, count_text, per_step, rows, totals};
use crate::engine::RowHistory;
use crate::report::markdown::{cell, code};

/// The plan in Markdown, ending with a newline.
pub(super) fn render(plan: &Plan, past: &[RowHistory]) -> String {
    let rows = rows(plan, past);
    let t = totals(plan, &rows);
    let mut out = String::new();
    let _ = writeln!(out, "### Plan: `{}`\n", code(&plan.name));
    let _ = write!(out, "`{}`", code(&plan.file));
    if plan.instances.iter().any(|i| i.key.is_some()) {
        let _ = write!(
            out,
            " · {} × {}",
            crate::format::count(plan.instances.len(), "matrix row", "matrix rows"),
            crate::format::count(plan.steps.len(), "step", "steps")
        );
    }
    out.push_str("\n\n");
    out.push_str("| step | action | operation | instances | each | credits |\n");
    out.push_str("| :-- | :-- | :-- | :-- | --: | --: |\n");
    for s in per_step(plan, &rows) {
        let _ = writeln!(
            out,
            "| `{}` | {} | `{}` | {} | {} | {} |",
            code(s.id),
            s.action,
            s.operation,
            instances(plan, &s),
            s.unit_credits,
            s.credits
        );
    }
    out.push_str("\n| action | calls | credits |\n| :-- | --: | --: |\n");
    for (action, (calls, credits)) in &t.by_action {
        let _ = writeln!(out, "| {action} | {calls} | {credits} |");
    }
    let at_most = if t.at_most { "at most " } else { "" };
    let _ = write!(
        out,
        "\n**Total: {at_most}{}**",
        crate::format::credits(t.total)
    );
    if t.expected {
        out.push_str(" (some calls fan out over lists whose length is known only at run time: their expected count is used)");
    }
    if t.at_most {
        out.push_str(" (some steps run only if a condition known at run time holds)");
    }
    out.push('\n');
    if t.to_spend != t.total {
        let _ = writeln!(
            out,
            "\nTo spend: **{}** (the rest is reused from earlier runs, already paid, or not selected)",
            crate::format::credits(t.to_spend)
        );
    }
    if let Some(max) = plan.max_credits {
        let verdict = if crate::engine::over_cap(max, 0, t.to_spend) {
            "**over budget**"
        } else {
            "within budget"
        };
        let _ = writeln!(out, "\nBudget: {}, {verdict}", crate::format::credits(max));
    }
    let _ = writeln!(out, "\n{}", prices_line(plan));
    out
}

/// `3`, `3 across 3 rows`, `6 expected across 3 rows, `for_each``.
fn instances(plan: &Plan, s: &StepCost<'_>) -> String {
    let mut text = count_text(s.calls, s.expected, s.at_most);
    if s.rows > 1 {
        let _ = write!(text, " across {} rows", s.rows);
    }
    if plan.steps[s.step].for_each.is_some() {
        text.push_str(", `for_each`");
    }
    text
}

/// The price table with its date and age.
pub(super) fn prices_line(plan: &Plan) -> String {
    let p = &plan.prices;
    let age = match p.age(&crate::commands::today()) {
        Some(a) if a.stale => format!(", {} days old: **stale**", a.days),
        Some(a) => format!(", {} days old", a.days),
        None => String::new(),
    };
    let overridden = if p.overridden.is_empty() {
        String::new()
    } else {
        format!("; overridden: {}", p.overridden.join(", "))
    };
    format!(
        "Prices: `{}` dated {}{age} ({}{overridden})",
        code(&p.name),
        cell(&p.date),
        cell(&p.source)
    )
}
