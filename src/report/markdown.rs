//! A run told in Markdown, for a CI job's summary page or a pull request:
//! its status and wall time, credits per step, per action and in total (as
//! [`Overview`] adds them up), every failure with its whole reason, and the
//! sends in doubt. [`publish`] writes it where the run was asked to
//! (`--summary-md FILE`) and appends it to `$GITHUB_STEP_SUMMARY`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::overview::{CreditLine, Overview};
use super::results::{Results, StepResult};

/// The variable GitHub Actions sets to the file a step's summary is appended to.
pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";

/// The summary of `results`, ending with a newline.
pub fn run_summary_markdown(results: &Results) -> String {
    let overview = Overview::of(results);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### sonicflow run: `{}` — {}\n",
        code(&results.pipeline.name),
        status_word(results)
    );
    write_facts(&mut out, results);
    out.push_str("\n#### Credits per step\n\n");
    write_lines(&mut out, "step", &overview.steps, &overview.total);
    out.push_str("\n#### Credits per action\n\n");
    write_lines(&mut out, "action", &overview.actions, &overview.total);
    let _ = writeln!(out, "\nCredits: {}", results.totals.credits());
    write_failures(&mut out, results);
    write_in_doubt(&mut out, results);
    out
}

/// The run's status word as `results.json` writes it, with why it stopped.
fn status_word(results: &Results) -> String {
    let word = results.status.word().to_owned();
    match &results.stop_reason {
        Some(reason) if !word.contains(reason.as_str()) => format!("{word} ({})", cell(reason)),
        _ => word,
    }
}

/// Pipeline, service, tool, times: a two-column table.
fn write_facts(out: &mut String, results: &Results) {
    out.push_str("| | |\n| :-- | :-- |\n");
    let mut fact = |name: &str, value: String| {
        let _ = writeln!(out, "| {name} | {value} |");
    };
    fact(
        "pipeline",
        format!(
            "`{}` (`{}`)",
            code(&results.pipeline.name),
            code(&results.pipeline.file)
        ),
    );
    if let Some(service) = &results.service {
        let kind = if service.sandbox {
            " (local sandbox)"
        } else {
            ""
        };
        fact("service", format!("`{}`{kind}", code(&service.base_url)));
    }
    fact(
        "tool",
        format!(
            "{} {}",
            cell(&results.tool.name),
            cell(&results.tool.version)
        ),
    );
    fact(
        "prices",
        format!(
            "`{}` dated {}",
            code(&results.price_table.name),
            cell(&results.price_table.date)
        ),
    );
    fact("started", cell(&results.started_at));
    if let Some(finished) = &results.finished_at {
        fact("finished", cell(finished));
    }
    if let Some(ms) = results.wall_ms {
        let rounded = std::time::Duration::from_millis(ms);
        fact("wall time", humantime::format_duration(rounded).to_string());
    }
    if let Some(matrix) = &results.matrix {
        fact("matrix rows", matrix.rows.len().to_string());
    }
}

/// A column of the credit tables: its head, its cell, and whether it is
/// shown even when every line has nothing in it.
struct Column {
    head: &'static str,
    value: fn(&CreditLine) -> String,
    always: bool,
}

const COLUMNS: [Column; 11] = [
    Column {
        head: "instances",
        value: |l| l.instances.to_string(),
        always: true,
    },
    Column {
        head: "succeeded",
        value: |l| l.succeeded.to_string(),
        always: true,
    },
    Column {
        head: "failed",
        value: |l| l.failed.to_string(),
        always: true,
    },
    Column {
        head: "skipped",
        value: |l| l.skipped.to_string(),
        always: false,
    },
    Column {
        head: "unfinished",
        value: |l| l.unfinished.to_string(),
        always: false,
    },
    Column {
        head: "reused",
        value: |l| l.reused.to_string(),
        always: false,
    },
    Column {
        head: "planned",
        value: |l| l.planned.to_string(),
        always: true,
    },
    Column {
        head: "charged",
        value: |l| l.charged.to_string(),
        always: true,
    },
    Column {
        head: "refunded",
        value: |l| l.refunded.to_string(),
        always: false,
    },
    Column {
        head: "in doubt",
        value: |l| l.in_doubt.to_string(),
        always: false,
    },
    Column {
        head: "observed",
        value: |l| l.observed.map_or_else(|| "—".to_owned(), |o| o.to_string()),
        always: false,
    },
];

/// The columns worth a place: those always shown, and those where the
/// total has something (the observed one when charges were observed).
fn columns(total: &CreditLine) -> Vec<&'static Column> {
    COLUMNS
        .iter()
        .filter(|c| match c.head {
            _ if c.always => true,
            "observed" => total.observed.is_some(),
            _ => (c.value)(total) != "0",
        })
        .collect()
}

/// A table of credit lines and their total.
fn write_lines(out: &mut String, what: &str, lines: &[CreditLine], total: &CreditLine) {
    let shown = columns(total);
    let heads: Vec<&str> = shown.iter().map(|c| c.head).collect();
    let _ = writeln!(out, "| {what} | {} |", heads.join(" | "));
    let _ = writeln!(out, "| :-- |{}", " --: |".repeat(shown.len()));
    let row = |out: &mut String, name: String, l: &CreditLine| {
        let cells: Vec<String> = shown.iter().map(|c| (c.value)(l)).collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    };
    for l in lines {
        row(out, format!("`{}`", code(&l.name)), l);
    }
    row(out, "**total**".to_owned(), total);
}

/// Every failed instance with its whole reason (the fix is part of it).
fn write_failures(out: &mut String, results: &Results) {
    let failed = results.failed_steps();
    if failed.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n#### Failed ({})\n", failed.len());
    for step in failed {
        let Some(e) = &step.error else {
            let _ = writeln!(out, "- `{}` — no error was recorded", code(&step.name()));
            continue;
        };
        let _ = writeln!(
            out,
            "- `{}` — `{}`: {}",
            code(&step.name()),
            code(&e.kind),
            line(&e.message)
        );
        if let Some(fix) = e.fix() {
            let _ = writeln!(out, "  - fix: {fix}");
        }
    }
}

/// Sends with no answer recorded: counted as charged, never sent again
/// unless asked to.
fn write_in_doubt(out: &mut String, results: &Results) {
    let doubtful: Vec<&StepResult> = results
        .steps
        .iter()
        .filter(|s| s.credits.in_doubt > 0)
        .collect();
    if doubtful.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n#### In doubt ({})\n", doubtful.len());
    for step in &doubtful {
        let _ = writeln!(
            out,
            "- `{}` — {}: sent, no answer recorded; counted as charged",
            code(&step.name()),
            crate::format::credits(step.credits.in_doubt)
        );
    }
    out.push_str("\nA resumed run never sends these again. If the service shows they were not charged, `sonicflow run --resume RUN_DIR --resend-in-doubt` sends them again (and pays again if they were).\n");
}

/// The Markdown summary of the run in `run_dir`, as `publish` writes it.
pub fn render(run_dir: &Path) -> Result<String, String> {
    read_results(run_dir)
        .map(|results| with_location(&run_summary_markdown(&results), run_dir))
        .map_err(|e| e.to_string())
}

/// Writes the summary of the run in `run_dir` to `summary_md` (when
/// given) and appends it to `$GITHUB_STEP_SUMMARY` (when set). Failures
/// are warnings: they never change how the run ends.
pub fn publish(run_dir: &Path, summary_md: Option<&Path>) {
    let github = std::env::var_os(GITHUB_STEP_SUMMARY).filter(|v| !v.is_empty());
    if summary_md.is_none() && github.is_none() {
        return;
    }
    let text = match render(run_dir) {
        Ok(text) => text,
        Err(e) => {
            crate::errln!("warning: no Markdown summary: {e}");
            return;
        }
    };
    if let Some(path) = summary_md
        && let Err(e) = super::write_atomically(path, text.as_bytes())
    {
        crate::errln!(
            "warning: cannot write the Markdown summary to `{}`: {e}\n  help: check that its folder exists and is writable",
            path.display()
        );
    }
    if let Some(path) = github {
        let path = Path::new(&path);
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(format!("{text}\n").as_bytes()));
        if let Err(e) = appended {
            crate::errln!(
                "warning: cannot append the Markdown summary to `{}` (${GITHUB_STEP_SUMMARY}): {e}",
                path.display()
            );
        }
    }
}

/// The results of the run in `run_dir`.
fn read_results(run_dir: &Path) -> Result<Results, String> {
    let path = run_dir.join("results.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("`{}` is not results: {e}", path.display()))
}

/// The summary with where the run's files are.
fn with_location(summary: &str, run_dir: &Path) -> String {
    let dir = run_dir.display().to_string();
    let report = run_dir.join("report.html");
    let mut out = summary.to_owned();
    let _ = writeln!(out, "\nRun folder: `{}`", code(&dir));
    let _ = writeln!(
        out,
        "- results: `{}`",
        code(&run_dir.join("results.json").display().to_string())
    );
    if report.is_file() {
        let _ = writeln!(out, "- report: `{}`", code(&report.display().to_string()));
    }
    out
}

/// Text safe in a Markdown table cell: no column or line breaks.
pub(crate) fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Text safe inside backticks in a Markdown table cell.
pub(crate) fn code(text: &str) -> String {
    cell(text).replace('`', "'")
}

/// A message kept whole on one list line.
fn line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
