//! The table printed when a run ends: per step, how many instances
//! succeeded, failed, were skipped or reused and what they cost; the
//! totals; the wall time; where the results are; and why each failed
//! instance failed, whole, wrapped to the terminal's width.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::report::overview::{CreditLine, Overview};
use crate::report::results::Results;

use super::frame::duration;
use super::lines::recorded_in_words;

/// Failures listed at most; the rest are in the results file.
const MAX_FAILURES: usize = 20;

/// How the summary is laid out.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Layout {
    /// Columns to wrap failure lines at; `None` leaves them as long as they are.
    pub(crate) width: Option<usize>,
    /// How long the run took, when the results do not say.
    pub(crate) wall: Option<Duration>,
}

/// The whole summary, ending with a newline.
pub(crate) fn summary(results: &Results, results_path: &Path, layout: Layout) -> String {
    let overview = Overview::of(results);
    let mut total = overview.total.clone();
    // The run's own account: it also holds what a resumed run paid for
    // requests it no longer makes (the manifest was edited).
    total.charged = results.totals.credits_charged;
    total.refunded = results.totals.credits_refunded;
    let unfinished = total.unfinished > 0;
    let mut headers = vec!["succeeded", "failed", "skipped", "reused"];
    if unfinished {
        headers.push("unfinished");
    }
    headers.extend(["charged", "refunded"]);
    let width = overview
        .steps
        .iter()
        .map(|l| l.name.chars().count())
        .chain([5])
        .max()
        .unwrap_or(5);

    let mut out = String::new();
    let _ = writeln!(out, "\n{:<width$}  {}", "step", headers.join("  "));
    for line in &overview.steps {
        push_row(&mut out, line, &headers, width);
    }
    push_row(&mut out, &total, &headers, width);
    let _ = writeln!(out);
    let wall = results.wall_ms.map(Duration::from_millis).or(layout.wall);
    if let Some(wall) = wall {
        let _ = writeln!(out, "wall time: {}", duration(wall));
    }
    let _ = writeln!(out, "credits: {}", results.totals.credits());
    if let Some(observed) = &results.observed_charges {
        out.push_str(&observed.render());
    }
    let _ = writeln!(out, "status: {}", status(results));
    let _ = writeln!(out, "results: {}", results_path.display());
    push_failures(&mut out, results, layout.width);
    out
}

fn push_row(out: &mut String, line: &CreditLine, headers: &[&str], width: usize) {
    let _ = write!(out, "{:<width$}", line.name);
    for header in headers {
        let cell = match *header {
            "succeeded" => line.succeeded as u64,
            "failed" => line.failed as u64,
            "skipped" => line.skipped as u64,
            "reused" => line.reused as u64,
            "unfinished" => line.unfinished as u64,
            "charged" => line.charged,
            _ => line.refunded,
        };
        let _ = write!(out, "  {cell:>w$}", w = header.len());
    }
    out.push('\n');
}

/// The status word, and why the run stopped when the word does not say it.
fn status(results: &Results) -> String {
    let word = results.status.word();
    match &results.stop_reason {
        Some(reason) if reason != word => format!("{word}: {reason}"),
        _ => word.to_owned(),
    }
}

fn push_failures(out: &mut String, results: &Results, width: Option<usize>) {
    let failed = results.failed_steps();
    if failed.is_empty() {
        return;
    }
    let _ = writeln!(out, "failed:");
    for step in failed.iter().take(MAX_FAILURES) {
        let why = step.error.as_ref().map_or_else(
            || "no error recorded".to_owned(),
            |e| recorded_in_words(&e.kind, &e.message),
        );
        push_wrapped(out, &format!("{}  {why}", step.name()), width);
    }
    if failed.len() > MAX_FAILURES {
        let _ = writeln!(
            out,
            "  … and {} more; see the results file",
            failed.len() - MAX_FAILURES
        );
    }
}

/// `text` indented under `failed:`, every line of it, wrapped at `width`
/// and never cut: a fix at the end of a long message is read whole.
fn push_wrapped(out: &mut String, text: &str, width: Option<usize>) {
    for (n, paragraph) in text.lines().enumerate() {
        let first = if n == 0 { "  " } else { "    " };
        match width {
            Some(width) => {
                let options = textwrap::Options::new(width.max(20))
                    .initial_indent(first)
                    .subsequent_indent("    ")
                    .break_words(true);
                for line in textwrap::wrap(paragraph, options) {
                    let _ = writeln!(out, "{}", line.trim_end());
                }
            }
            None => {
                let _ = writeln!(out, "{first}{paragraph}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_failures_wrap_whole_and_keep_their_fix() {
        let mut out = String::new();
        let text = "wav[rain/1]  sent, but no answer came (in doubt): connection reset after the request was sent; it may have been charged.\nTo send it again anyway: sonicflow run --resume out --resend-in-doubt wav[rain/1]";
        push_wrapped(&mut out, text, Some(40));
        assert!(out.lines().all(|l| l.chars().count() <= 40), "{out}");
        let rejoined: Vec<&str> = out.split_whitespace().collect();
        let original: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(rejoined, original, "no word is lost or cut");
        insta::assert_snapshot!(out);
    }

    #[test]
    fn without_a_width_lines_stay_whole() {
        let mut out = String::new();
        push_wrapped(&mut out, "a  b\nc", None);
        assert_eq!(out, "  a  b\n    c\n");
    }
}
