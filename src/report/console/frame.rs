//! One picture of the live view: a header (elapsed time, progress, credits
//! spent of planned, ETA) and one line per task that is out, as many as
//! the terminal has room for. Pure text; `screen` puts it on the terminal.

use std::time::{Duration, SystemTime};

use crate::report::clock::millis_between;

use super::board::Board;
use super::eta::{Pace, eta};
use super::tally::Tally;

/// Lines the header takes.
const HEADER_LINES: usize = 2;

/// What a frame is drawn from.
pub(crate) struct View<'a> {
    pub(crate) board: &'a Board,
    pub(crate) tally: &'a Tally,
    pub(crate) pace: Option<&'a Pace>,
    /// Set once the run stops sending: what it says instead of an ETA.
    pub(crate) stopping: Option<&'a str>,
    pub(crate) now: SystemTime,
}

/// The frame's lines for a terminal of `rows` × `cols`, each at most
/// `cols - 1` columns wide (a full line would wrap on some terminals) and
/// at most `rows - 1` lines (one is left for the cursor).
pub(crate) fn frame(view: &View<'_>, rows: usize, cols: usize) -> Vec<String> {
    let width = cols.saturating_sub(1).max(20);
    let mut lines = header(view);
    let room = rows.saturating_sub(1).max(HEADER_LINES + 1) - HEADER_LINES;
    let tasks: Vec<_> = view.board.tasks().collect();
    let shown = if tasks.len() > room {
        room.saturating_sub(1)
    } else {
        tasks.len()
    };
    let name_width = tasks
        .iter()
        .take(shown)
        .map(|t| t.id.to_string().chars().count())
        .max()
        .unwrap_or(0);
    for task in tasks.iter().take(shown) {
        let took = Duration::from_millis(millis_between(task.since, view.now));
        lines.push(format!(
            "  {:<name_width$}  {:<8}  {}",
            task.id.to_string(),
            task.state.word(),
            duration(took)
        ));
    }
    if shown < tasks.len() {
        lines.push(format!("  … and {} more", tasks.len() - shown));
    }
    lines.into_iter().map(|l| fit(&l, width)).collect()
}

fn header(view: &View<'_>) -> Vec<String> {
    let tally = view.tally;
    let elapsed = view.board.started.map_or(Duration::ZERO, |start| {
        Duration::from_millis(millis_between(start, view.now))
    });
    let planned = view
        .pace
        .map_or(view.board.planned_known, |p| p.planned_credits);
    let ahead = match (view.stopping, view.pace) {
        (Some(stopping), _) => stopping.to_owned(),
        (None, Some(pace)) => match eta(pace, &view.board.left(pace, view.now)) {
            // Past the estimate, with tasks still out.
            Some(left) if left < Duration::from_secs(1) && view.board.tasks().len() > 0 => {
                "finishing".to_owned()
            }
            Some(left) => format!("about {} left", duration(left)),
            None => "time left unknown".to_owned(),
        },
        (None, None) => "time left unknown".to_owned(),
    };
    let first = format!(
        "{} elapsed · {} of {planned} credits spent · {ahead}",
        duration(elapsed),
        tally.credits.net,
    );
    // Fan-outs are known only as they expand: until then, the plan's count.
    let planned_calls = view
        .pace
        .map_or(0, |p| p.steps.iter().map(|s| s.calls).sum());
    let total = (tally.created() as u64)
        .max(tally.done() as u64)
        .max(planned_calls);
    let mut second = format!(
        "{} of {total} done · {} running · {} waiting",
        tally.done(),
        view.board.tasks().len(),
        tally.waiting(),
    );
    if tally.failed > 0 {
        second.push_str(&format!(" · {} failed", tally.failed));
    }
    if tally.skipped > 0 {
        second.push_str(&format!(" · {} skipped", tally.skipped));
    }
    vec![first, second]
}

/// `8s`, `2m05s`, `1h02m`: how long, briefly.
pub(crate) fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, secs / 60 % 60)
    }
}

/// `line` cut to `width` characters, marked when cut.
fn fit(line: &str, width: usize) -> String {
    if console::measure_text_width(line) <= width {
        line.to_owned()
    } else {
        console::truncate_str(line, width, "…").into_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::{Account, InstanceId, RunEvent};
    use crate::prices::OpClass;
    use crate::report::console::eta::StepPace;

    fn id(step: usize, step_id: &str, row: &str) -> InstanceId {
        InstanceId {
            row: 0,
            row_key: Some(row.to_owned()),
            step,
            step_id: step_id.to_owned(),
            path: Vec::new(),
            names: Vec::new(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_780_800 + secs)
    }

    fn pace() -> Pace {
        Pace {
            spacing: [Some(Duration::from_secs(3)), None],
            max_in_flight: 10,
            steps: vec![StepPace {
                class: OpClass::Generation,
                deps: Vec::new(),
                calls: 12,
                first_guess: Duration::from_secs(20),
            }],
            planned_credits: 180,
        }
    }

    /// Twelve songs: two done, three polled, one sending, six to go.
    fn busy() -> (Board, Tally) {
        let mut board = Board::default();
        let mut tally = Tally::default();
        let mut apply = |event: RunEvent, secs: u64| {
            board.apply(&event, at(secs));
            tally.apply(&event);
        };
        let rows = [
            "rain", "sun", "fog", "snow", "hail", "mist", "dew", "frost", "gale", "haze", "sleet",
            "storm",
        ];
        for row in rows {
            apply(
                RunEvent::Created {
                    id: id(0, "song", row),
                    action: crate::action::Action::Create,
                    operation: "create",
                    planned_credits: 15,
                },
                0,
            );
        }
        for (n, row) in rows.iter().take(6).enumerate() {
            let secs = 3 * n as u64;
            apply(
                RunEvent::Submitting {
                    id: id(0, "song", row),
                    attempt: 1,
                    request_hash: String::new(),
                    fields: serde_json::Value::Null,
                },
                secs,
            );
            if n < 5 {
                apply(
                    RunEvent::Submitted {
                        id: id(0, "song", row),
                        attempt: 1,
                        task_id: Some(format!("t{n}")),
                        credits: 15,
                    },
                    secs + 1,
                );
            }
        }
        for row in rows.iter().take(2) {
            apply(
                RunEvent::Succeeded {
                    id: id(0, "song", row),
                    outputs: crate::engine::Outputs::default(),
                },
                21,
            );
        }
        let mut credits = Account::default();
        credits.charge(75);
        apply(RunEvent::Credits { credits }, 21);
        (board, tally)
    }

    #[test]
    fn a_busy_run_on_a_roomy_terminal() {
        let (board, tally) = busy();
        let p = pace();
        let view = View {
            board: &board,
            tally: &tally,
            pace: Some(&p),
            stopping: None,
            now: at(25),
        };
        insta::assert_snapshot!(frame(&view, 24, 80).join("\n"));
    }

    #[test]
    fn a_short_terminal_shows_what_fits_and_counts_the_rest() {
        let (board, tally) = busy();
        let view = View {
            board: &board,
            tally: &tally,
            pace: None,
            stopping: Some("stopping: no new submits, waiting for what is out"),
            now: at(25),
        };
        let lines = frame(&view, 6, 40);
        assert_eq!(lines.len(), 5, "one row is left for the cursor");
        assert!(lines.iter().all(|l| console::measure_text_width(l) <= 39));
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn durations_read_briefly() {
        assert_eq!(duration(Duration::from_millis(8_900)), "8s");
        assert_eq!(duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(duration(Duration::from_secs(3_720)), "1h02m");
    }
}
