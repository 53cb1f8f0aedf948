//! One plain log line per event worth a line, for logs without a TTY:
//! `12:00:01 submitted  song[rain]  task 81ed5c0a…  15 credits`.
//!
//! The format is fixed (no colour, no widths that depend on the run) so log
//! collectors and snapshot tests see the same text every time.

use std::time::SystemTime;

use crate::engine::{RunEvent, StepError};
use crate::report::clock::time_of_day;
use crate::report::state::error_record;

/// The line for `event` at `now`, or `None` for events not worth one.
pub(crate) fn line(event: &RunEvent, now: SystemTime) -> Option<String> {
    let (verb, text) = describe(event)?;
    Some(format!("{} {verb:<10} {text}", time_of_day(now)))
}

/// The verb and the rest of the line, without the time.
pub(crate) fn describe(event: &RunEvent) -> Option<(&'static str, String)> {
    let described = match event {
        RunEvent::Created { .. }
        | RunEvent::Ready { .. }
        | RunEvent::Submitting { .. }
        | RunEvent::Credits { .. }
        | RunEvent::Observed { .. }
        | RunEvent::Recalled { .. }
        | RunEvent::Finished { .. } => {
            return None;
        }
        RunEvent::Submitted {
            id,
            attempt,
            task_id,
            credits,
        } => {
            let task = task_id.as_deref().map_or_else(
                || "done at once".to_owned(),
                |t| format!("task {}", short(t)),
            );
            let retry = if *attempt > 1 {
                format!("  attempt {attempt}")
            } else {
                String::new()
            };
            (
                "submitted",
                format!("{id}  {task}  {credits} credits{retry}"),
            )
        }
        RunEvent::Retrying {
            id,
            attempt,
            error,
            delay_ms,
            refunded,
        } => (
            "retrying",
            format!(
                "{id}  attempt {attempt} failed: {}; again in {}{}",
                brief(error),
                seconds(*delay_ms),
                refund(*refunded)
            ),
        ),
        RunEvent::Succeeded { id, outputs } => {
            let files = match outputs.files.len() {
                0 => String::new(),
                1 => "  1 file".to_owned(),
                n => format!("  {n} files"),
            };
            ("succeeded", format!("{id}{files}"))
        }
        RunEvent::Failed {
            id,
            attempt,
            error,
            refunded,
            ..
        } => (
            "failed",
            format!(
                "{id}  attempt {attempt}: {}{}",
                brief(error),
                refund(*refunded)
            ),
        ),
        RunEvent::Skipped { id, reason } => ("skipped", format!("{id}  {reason}")),
        RunEvent::Unmet { id, reason } => ("skipped", format!("{id}  (condition) {reason}")),
        RunEvent::Reused { id, from, .. } => (
            "reused",
            match from {
                Some(run) => format!("{id}  from run {run}"),
                None => format!("{id}  finished before the run was resumed"),
            },
        ),
        RunEvent::Attached {
            id, task_id, from, ..
        } => (
            "attached",
            match from {
                Some(run) => format!("{id}  task {} of run {run}, polled again", short(task_id)),
                None => format!("{id}  task {}, polled again", short(task_id)),
            },
        ),
        RunEvent::Throttled { delay_ms } => (
            "throttled",
            format!("rate limited; submits paused for {}", seconds(*delay_ms)),
        ),
        RunEvent::Stopping { reason } => ("stopping", reason.to_string()),
    };
    Some(described)
}

/// `kind: first line of the message`, cut to a length that fits a log line.
pub(crate) fn brief(error: &StepError) -> String {
    let record = error_record(error);
    format!("{}: {}", record.kind, truncate(&record.message, 120))
}

/// The first line of `text`, at most `max` characters, marked when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or_default();
    if first.chars().count() > max || first.len() < text.trim_end().len() {
        let cut: String = first.chars().take(max).collect();
        format!("{cut}…")
    } else {
        first.to_owned()
    }
}

/// Task ids are long UUIDs; eight characters tell them apart in a log.
fn short(task_id: &str) -> String {
    if task_id.chars().count() > 8 {
        format!("{}…", task_id.chars().take(8).collect::<String>())
    } else {
        task_id.to_owned()
    }
}

fn seconds(ms: u64) -> String {
    format!("{}.{}s", ms / 1000, ms % 1000 / 100)
}

fn refund(credits: u64) -> String {
    if credits > 0 {
        format!(" ({credits} credits refunded)")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ErrorKind;

    #[test]
    fn long_and_multi_line_messages_are_cut_and_marked() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdefghijk", 4), "abcd…");
        assert_eq!(truncate("first\nsecond", 40), "first…");
        assert_eq!(truncate("trailing newline\n", 40), "trailing newline");
    }

    #[test]
    fn task_ids_and_delays_read_briefly() {
        assert_eq!(short("81ed5c0a-7d3e"), "81ed5c0a…");
        assert_eq!(short("t-1"), "t-1");
        assert_eq!(seconds(2500), "2.5s");
        assert_eq!(seconds(61_040), "61.0s");
        let error = StepError::new(ErrorKind::RateLimited, "slow down");
        assert_eq!(brief(&error), "rate_limited: slow down");
    }
}
