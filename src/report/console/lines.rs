//! One plain log line per event worth a line, for logs without a TTY:
//! `12:00:01 submitted  song[rain]  task 81ed5c0a…  15 credits`.
//!
//! The format is fixed (no colour, no widths that depend on the run) so log
//! collectors and snapshot tests see the same text every time.

use std::time::SystemTime;

use crate::engine::{ErrorKind, RunEvent, StepError, StopReason};
use crate::report::clock::time_of_day;

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
                format!("{id}  {task}  {}{retry}", crate::format::credits(*credits)),
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
        RunEvent::Throttled { .. } => ("throttled", "rate limited, slowing down".to_owned()),
        RunEvent::Stopping { reason } => ("stopping", stop_words(reason)),
        // Events of later versions of the engine say nothing here until
        // they are given words.
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    Some(described)
}

/// What went wrong in words, its first line cut to a length that fits a
/// log line: the whole message is in the summary and the results file.
pub(crate) fn brief(error: &StepError) -> String {
    truncate(&in_words(error.kind, &error.message), 120)
}

/// The message, led by what kind of failure it is unless it says so itself.
pub(crate) fn in_words(kind: ErrorKind, message: &str) -> String {
    let words = kind_words(kind);
    if message.starts_with(words) {
        message.to_owned()
    } else {
        format!("{words}: {message}")
    }
}

/// An error kind as a results file records it (`in_doubt`), in words.
pub(crate) fn recorded_in_words(kind: &str, message: &str) -> String {
    match serde_json::from_value::<ErrorKind>(kind.into()) {
        Ok(kind) => in_words(kind, message),
        Err(_) => format!("{}: {message}", kind.replace('_', " ")),
    }
}

fn kind_words(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Invalid => "rejected as invalid",
        ErrorKind::Unauthorised => "the API key was refused",
        ErrorKind::OutOfCredits => "out of credits",
        ErrorKind::Moderation => "rejected by moderation",
        ErrorKind::RateLimited => "rate limited",
        ErrorKind::Transient => "the service or the network failed",
        ErrorKind::InDoubt => "sent, but no answer came (in doubt)",
        ErrorKind::TaskFailed => "the task failed",
        ErrorKind::Timeout => "timed out",
        ErrorKind::Local => "failed on this machine",
    }
}

/// Why the run stops sending, as the live view and the logs say it.
pub(crate) fn stop_words(reason: &StopReason) -> String {
    // Ctrl-C was already answered in words when it was pressed; the word
    // `interrupted` is the run's status, said once in the summary.
    match reason {
        StopReason::Interrupted => "no new submits; waiting for what is in flight".to_owned(),
        other if other.abandons_in_flight() => {
            format!("{other}: nothing more is sent or polled")
        }
        other => format!("{other}: no new submits; waiting for what is in flight"),
    }
}

/// Tells a rate-limit episode from the next: the first 429 after a calm
/// spell is worth a line, the ones right after it are not.
#[derive(Debug, Default)]
pub(crate) struct Episodes {
    throttled: bool,
    /// Submits accepted since the last 429.
    calm: u32,
}

/// Accepted submits in a row without a 429 that end an episode.
const CALM_SUBMITS: u32 = 5;

impl Episodes {
    /// Whether `event` deserves its line: `false` for a 429 within an episode.
    pub(crate) fn worth_a_line(&mut self, event: &RunEvent) -> bool {
        match event {
            RunEvent::Throttled { .. } => {
                let first = !self.throttled;
                self.throttled = true;
                self.calm = 0;
                first
            }
            RunEvent::Submitted { .. } => {
                self.calm += 1;
                if self.calm >= CALM_SUBMITS {
                    self.throttled = false;
                }
                true
            }
            // The 429 a throttle answered is retried: the episode's line said it.
            RunEvent::Retrying { error, .. } if error.kind == ErrorKind::RateLimited => {
                !self.throttled
            }
            _ => true,
        }
    }
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
        format!(" ({} refunded)", crate::format::credits(credits))
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
        assert_eq!(brief(&error), "rate limited: slow down");
    }

    #[test]
    fn errors_read_in_words_without_saying_it_twice() {
        let failed = StepError::new(ErrorKind::TaskFailed, "the task failed: generation error");
        assert_eq!(brief(&failed), "the task failed: generation error");
        assert_eq!(
            recorded_in_words("in_doubt", "connection reset"),
            "sent, but no answer came (in doubt): connection reset"
        );
        assert_eq!(recorded_in_words("strange_kind", "x"), "strange kind: x");
    }

    #[test]
    fn one_line_per_rate_limit_episode() {
        let mut episodes = Episodes::default();
        let throttled = RunEvent::Throttled { delay_ms: 100 };
        let accepted = RunEvent::Submitted {
            id: crate::engine::InstanceId {
                row: 0,
                row_key: None,
                step: 0,
                step_id: "song".to_owned(),
                path: Vec::new(),
                names: Vec::new(),
            },
            attempt: 1,
            task_id: None,
            credits: 1,
        };
        let retried = RunEvent::Retrying {
            id: crate::engine::InstanceId {
                row: 0,
                row_key: None,
                step: 0,
                step_id: "song".to_owned(),
                path: Vec::new(),
                names: Vec::new(),
            },
            attempt: 1,
            error: StepError::new(ErrorKind::RateLimited, "429"),
            delay_ms: 100,
            refunded: 0,
        };
        assert!(
            episodes.worth_a_line(&retried),
            "a 429 out of an episode is said"
        );
        let mut said = Vec::new();
        let story = [&throttled, &retried, &throttled, &accepted, &throttled]
            .into_iter()
            .chain(std::iter::repeat_n(&accepted, CALM_SUBMITS as usize))
            .chain([&throttled, &throttled]);
        for event in story {
            if matches!(
                event,
                RunEvent::Throttled { .. } | RunEvent::Retrying { .. }
            ) {
                said.push(episodes.worth_a_line(event));
            } else {
                episodes.worth_a_line(event);
            }
        }
        assert_eq!(said, [true, false, false, false, true, false]);
        assert_eq!(
            describe(&throttled).map(|(_, text)| text).as_deref(),
            Some("rate limited, slowing down")
        );
    }
}
