//! The timeline: one bar per task (an instance that sent something or
//! reused an earlier run's result), laid out as inline SVG, with the
//! critical path marked.
//!
//! A bar's segments: queued (its dependencies were met, it waited for a
//! submit slot) → sent (the request went out) → accepted (the service took
//! it; polling until the attempt ended) → finishing (downloads and the rest
//! after the last attempt). Each attempt is drawn, so retries show as
//! several sent/accepted pairs, failed ones marked.
//!
//! The critical path is walked back from the task that finished last: the
//! task before it on the path is the one whose finish released it, taken
//! as the latest-finishing task that finished at or before it was queued
//! (or, with no queue time recorded, before its first send). The walk stops
//! at a task nothing released.

use std::time::SystemTime;

use serde::Serialize;

use crate::report::results::{Results, StepResult};
use crate::timestamp::parse_rfc3339;

/// Width of the plotted area, in SVG units.
const WIDTH: f64 = 900.0;
/// Width of the labels' column.
const LABEL: f64 = 240.0;
const PITCH: f64 = 18.0;
const BAR: f64 = 12.0;
const TOP: f64 = 24.0;

#[derive(Debug, Serialize)]
pub struct Timeline {
    pub width: f64,
    pub height: f64,
    pub label_width: f64,
    pub tasks: Vec<Bar>,
    pub ticks: Vec<Tick>,
    /// Names along the critical path, first to last.
    pub critical: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Bar {
    pub name: String,
    /// The name, shortened to fit the labels' column.
    pub label: String,
    pub y: f64,
    pub text_y: f64,
    pub critical: bool,
    pub segments: Vec<Segment>,
    /// What hovering the bar says.
    pub title: String,
}

#[derive(Debug, Serialize)]
pub struct Segment {
    pub x: f64,
    pub width: f64,
    /// `queued`, `sent`, `accepted`, `failed`, `finishing`, `reused` or
    /// `retry` (a mark where an attempt after the first was sent).
    pub class: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Tick {
    pub x: f64,
    pub label: String,
}

/// Milliseconds from the run's start.
type Ms = i64;

/// One task's times, from the run's start.
struct Times {
    queued: Option<Ms>,
    sends: Vec<(Ms, Option<Ms>, Option<Ms>, bool)>,
    started: Option<Ms>,
    finished: Option<Ms>,
}

impl Times {
    fn of(r: &StepResult, origin: SystemTime) -> Times {
        let at = |t: Option<&str>| t.and_then(parse_rfc3339).map(|t| offset(origin, t));
        Times {
            queued: at(r.queued_at.as_deref()),
            sends: r
                .attempts
                .iter()
                .filter_map(|a| {
                    Some((
                        at(Some(&a.started_at))?,
                        at(a.accepted_at.as_deref()),
                        at(a.finished_at.as_deref()),
                        a.error.is_some(),
                    ))
                })
                .collect(),
            started: at(r.started_at.as_deref()),
            finished: at(r.finished_at.as_deref()),
        }
    }

    /// When it began to wait for its turn (or, not recorded, to run).
    fn ready(&self) -> Option<Ms> {
        self.queued
            .or(self.sends.first().map(|s| s.0))
            .or(self.started)
    }

    fn end(&self) -> Option<Ms> {
        self.finished.or_else(|| {
            self.sends
                .iter()
                .filter_map(|s| s.2.or(s.1).or(Some(s.0)))
                .max()
        })
    }

    fn latest(&self) -> Option<Ms> {
        let sends = self
            .sends
            .iter()
            .flat_map(|s| [Some(s.0), s.1, s.2])
            .flatten();
        [self.queued, self.started, self.finished]
            .into_iter()
            .flatten()
            .chain(sends)
            .max()
    }
}

fn offset(origin: SystemTime, t: SystemTime) -> Ms {
    match t.duration_since(origin) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Whether the instance is a task of the timeline.
pub fn is_task(r: &StepResult) -> bool {
    !r.attempts.is_empty() || r.reused_from.is_some() || r.attached_from.is_some()
}

/// Indices (into `results.steps`) of the critical path, first to last,
/// out of each task's index and times.
fn walk_back(times: &[(usize, &Times)]) -> Vec<usize> {
    let latest_before = |limit: Option<Ms>, skip: &[usize]| {
        times
            .iter()
            .filter(|(i, _)| !skip.contains(i))
            .filter_map(|(i, t)| Some((*i, t.end()?)))
            .filter(|(_, end)| limit.is_none_or(|l| *end <= l))
            // The latest finish; the first in order on a tie.
            .fold(None, |best: Option<(usize, Ms)>, (i, end)| match best {
                Some((_, b)) if b >= end => best,
                _ => Some((i, end)),
            })
            .map(|(i, _)| i)
    };
    let mut path = Vec::new();
    let mut current = latest_before(None, &path);
    while let Some(i) = current {
        path.push(i);
        let ready = times
            .iter()
            .find(|(j, _)| *j == i)
            .and_then(|(_, t)| t.ready());
        current = match ready {
            Some(ready) => latest_before(Some(ready), &path),
            None => None,
        };
    }
    path.reverse();
    path
}

/// The timeline of `results`.
pub fn layout(results: &Results) -> Timeline {
    let origin = parse_rfc3339(&results.started_at).unwrap_or(SystemTime::UNIX_EPOCH);
    let tasks: Vec<(usize, &StepResult, Times)> = results
        .steps
        .iter()
        .enumerate()
        .filter(|(_, r)| is_task(r))
        .map(|(i, r)| (i, r, Times::of(r, origin)))
        .collect();
    let run_end = results
        .finished_at
        .as_deref()
        .and_then(parse_rfc3339)
        .map(|t| offset(origin, t));
    let span = tasks
        .iter()
        .filter_map(|(_, _, t)| t.latest())
        .chain(run_end)
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = WIDTH / span as f64;
    let x = |ms: Ms| LABEL + (ms.clamp(0, span) as f64 * scale * 10.0).round() / 10.0;
    let critical = walk_back(
        &tasks
            .iter()
            .map(|(i, _, times)| (*i, times))
            .collect::<Vec<_>>(),
    );
    let bars = tasks
        .iter()
        .enumerate()
        .map(|(n, (i, r, t))| {
            let y = TOP + n as f64 * PITCH;
            Bar {
                name: r.name(),
                label: short(&r.name()),
                y,
                text_y: y + BAR - 2.0,
                critical: critical.contains(i),
                segments: segments(t, &x),
                title: title(r, t),
            }
        })
        .collect::<Vec<_>>();
    let ticks = (0..=4)
        .map(|k| {
            let ms = span * k / 4;
            Tick {
                x: x(ms),
                label: super::text::duration_text(u64::try_from(ms).unwrap_or(0)),
            }
        })
        .collect();
    Timeline {
        width: LABEL + WIDTH + 60.0,
        height: TOP + bars.len() as f64 * PITCH + 8.0,
        label_width: LABEL,
        critical: critical.iter().map(|&i| results.steps[i].name()).collect(),
        tasks: bars,
        ticks,
    }
}

fn segments(t: &Times, x: &dyn Fn(Ms) -> f64) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut push = |from: Ms, to: Ms, class: &'static str| {
        let (a, b) = (x(from), x(to.max(from)));
        out.push(Segment {
            x: a,
            // Never narrower than a hairline, so every step shows.
            width: ((b - a) * 10.0).round().max(10.0) / 10.0,
            class,
        });
    };
    if t.sends.is_empty() {
        // Reused or attached with nothing sent: a mark where it finished.
        let at = t.finished.or(t.started).unwrap_or(0);
        push(at, at, "reused");
        return out;
    }
    if let (Some(q), Some(first)) = (t.queued, t.sends.first()) {
        push(q, first.0, "queued");
    }
    let mut last_end = 0;
    let mut retries = Vec::new();
    for (n, &(sent, accepted, ended, failed)) in t.sends.iter().enumerate() {
        let end = ended.or(t.finished).unwrap_or(sent);
        match accepted {
            Some(acc) => {
                push(sent, acc, "sent");
                push(acc, end, if failed { "failed" } else { "accepted" });
            }
            None => push(sent, end, if failed { "failed" } else { "sent" }),
        }
        last_end = end;
        if n > 0 {
            // A retry: a mark where it was sent again.
            retries.push(sent);
        }
    }
    for at in retries {
        push(at, at, "retry");
    }
    if let Some(done) = t.finished
        && done > last_end
    {
        push(last_end, done, "finishing");
    }
    out
}

/// Names longer than the labels' column holds end in `…`.
fn short(name: &str) -> String {
    const FITS: usize = 38;
    if name.chars().count() <= FITS {
        return name.to_owned();
    }
    let mut cut: String = name.chars().take(FITS - 1).collect();
    cut.push('…');
    cut
}

fn title(r: &StepResult, t: &Times) -> String {
    let secs = |ms: Option<Ms>| {
        ms.map_or("—".to_owned(), |ms| {
            format!("{:.2} s", ms as f64 / 1000.0)
        })
    };
    let mut parts = vec![r.name()];
    if let Some(from) = &r.reused_from {
        parts.push(format!("reused from {from}"));
    }
    if let Some(from) = &r.attached_from {
        parts.push(format!("attached to {from}"));
    }
    parts.push(format!("queued {}", secs(t.queued)));
    for (n, s) in t.sends.iter().enumerate() {
        parts.push(format!(
            "attempt {}: sent {}, accepted {}, ended {}{}",
            n + 1,
            secs(Some(s.0)),
            secs(s.1),
            secs(s.2),
            if s.3 { " (failed)" } else { "" }
        ));
    }
    parts.push(format!("finished {}", secs(t.finished)));
    parts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(queued: Option<Ms>, sent: Ms, end: Ms) -> Times {
        Times {
            queued,
            sends: vec![(sent, Some(sent + 1), Some(end), false)],
            started: Some(sent),
            finished: Some(end),
        }
    }

    #[test]
    fn the_critical_path_walks_back_through_what_released_each_task() {
        // 0: 0..100; 1: 0..300 (slow); 2 waits for 1 (queued at 300) ..500;
        // 3 waits for 0 (queued at 100) ..200. Last to finish is 2, released by 1.
        let times = [
            task(Some(0), 0, 100),
            task(Some(0), 0, 300),
            task(Some(300), 310, 500),
            task(Some(100), 120, 200),
        ];
        let indexed: Vec<(usize, &Times)> = times.iter().enumerate().collect();
        assert_eq!(walk_back(&indexed), vec![1, 2]);
    }

    #[test]
    fn without_queue_times_the_first_send_stands_in() {
        let times = [
            task(None, 0, 100),
            task(None, 150, 400),
            task(None, 420, 450),
        ];
        let indexed: Vec<(usize, &Times)> = times.iter().enumerate().collect();
        assert_eq!(walk_back(&indexed), vec![0, 1, 2]);
    }
}
