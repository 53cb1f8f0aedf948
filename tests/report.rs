//! The reporters against a hand-written run: the results manifest (content,
//! order, credits, atomic and debounced writes, errors) and the console in
//! plain and JSON-lines form with its summary table.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod report_events;

use std::path::Path;
use std::time::Duration;

use report_events::{Captured, clock, events, frozen_clock, plan};
use sonicflow::engine::{ErrorKind, RunEvent, StopReason, Summary};
use sonicflow::report::{
    Console, ConsoleMode, Reporters, Results, ResultsWriter, RunStatus, StepStatus, drain,
};

const SHA: &str = "5f2b0c0e9d4a7f6e3b1c8d2a4e6f8091a3b5c7d9e1f20314253647586970a1b2";

fn writer(path: &Path) -> ResultsWriter {
    ResultsWriter::new(path, &plan(), SHA, clock())
}

fn read(path: &Path) -> Results {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn results_of_a_whole_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    let mut w = writer(&path);
    for event in events() {
        w.apply(&event).unwrap();
    }
    w.flush().unwrap();
    let on_disk = read(&path);
    assert_eq!(on_disk, w.results(), "the file holds the latest results");
    insta::assert_json_snapshot!("results-whole-run", on_disk);
}

#[test]
fn steps_are_ordered_by_row_then_plan_position_then_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(&dir.path().join("results.json"));
    for event in events() {
        w.apply(&event).unwrap();
    }
    let order: Vec<String> = w
        .results()
        .steps
        .iter()
        .map(|s| format!("{}[{}]", s.step, s.instance.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        order,
        [
            "song[rain]",
            "wav[rain/0]",
            "wav[rain/1]",
            "song[sun]",
            "wav[sun]"
        ]
    );
}

#[test]
fn credits_charged_and_refunded_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(&dir.path().join("results.json"));
    for event in events() {
        w.apply(&event).unwrap();
    }
    let r = w.results();
    let sun = r
        .steps
        .iter()
        .find(|s| s.row_key.as_deref() == Some("sun") && s.step == "song")
        .unwrap();
    assert_eq!(
        (
            sun.credits.planned,
            sun.credits.charged,
            sun.credits.refunded
        ),
        (15, 30, 30)
    );
    assert_eq!(sun.attempts.len(), 2);
    assert_eq!(sun.attempts[0].error.as_ref().unwrap().kind, "task_failed");
    assert_eq!(
        sun.task_id.as_deref(),
        Some("2c9f0e11-aaaa-bbbb-cccc-000000000002")
    );
    assert_eq!(sun.status, StepStatus::Failed);
    let t = &r.totals;
    assert_eq!(
        (t.credits_charged, t.credits_refunded, t.credits_planned),
        (49, 30, 34),
        "the lost wav's 2 credits count as charged, in doubt"
    );
    assert_eq!((t.credits_in_doubt, t.credits_net), (2, 19));
    let rain1 = r
        .steps
        .iter()
        .find(|s| s.step == "wav" && s.instance.as_deref() == Some("rain/1"))
        .unwrap();
    assert_eq!((rain1.credits.charged, rain1.credits.in_doubt), (2, 2));
    assert_eq!(
        (
            t.instances,
            t.succeeded,
            t.failed,
            t.skipped,
            t.running,
            t.waiting
        ),
        (5, 2, 2, 1, 0, 0)
    );
    assert_eq!(r.status, RunStatus::Stopped);
    assert_eq!(r.stop_reason.as_deref(), Some("out of credits"));
}

#[test]
fn run_status_follows_the_summary() {
    let cases = [
        (Summary::default(), RunStatus::Succeeded),
        (
            Summary {
                failed: 1,
                ..Summary::default()
            },
            RunStatus::Failed,
        ),
        (
            Summary {
                stopped: Some(StopReason::Interrupted),
                failed: 1,
                ..Summary::default()
            },
            RunStatus::Interrupted,
        ),
        (
            Summary {
                stopped: Some(StopReason::FailFast),
                ..Summary::default()
            },
            RunStatus::Stopped,
        ),
    ];
    for (summary, status) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        let mut w = writer(&path);
        assert_eq!(w.results().status, RunStatus::Running);
        w.apply(&RunEvent::Finished { summary }).unwrap();
        let r = read(&path);
        assert_eq!(r.status, status);
        assert!(r.finished_at.is_some());
    }
}

#[test]
fn the_file_is_whole_after_every_write_and_no_temp_file_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    let mut w = writer(&path).with_interval(Duration::ZERO);
    let events = events();
    for (n, event) in events.iter().enumerate() {
        w.apply(event).unwrap();
        assert_eq!(
            w.writes(),
            n as u64 + 1,
            "interval zero writes on every event"
        );
        let r = read(&path);
        assert_eq!(r, w.results());
        assert!(!dir.path().join("results.json.tmp").exists());
    }
    w.flush().unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["results.json"]);
}

#[test]
fn writes_are_debounced_but_terminal_events_and_flush_always_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    let mut w = ResultsWriter::new(&path, &plan(), SHA, frozen_clock())
        .with_interval(Duration::from_secs(3600));
    for _ in 0..1000 {
        w.apply(&RunEvent::Throttled { delay_ms: 10 }).unwrap();
    }
    assert_eq!(
        w.writes(),
        1,
        "only the first event writes within the interval"
    );
    w.flush().unwrap();
    assert_eq!(w.writes(), 2);
    w.flush().unwrap();
    assert_eq!(w.writes(), 2, "nothing changed, nothing written");
    w.apply(&RunEvent::Stopping {
        reason: StopReason::Interrupted,
    })
    .unwrap();
    assert_eq!(w.writes(), 3);
    w.apply(&RunEvent::Finished {
        summary: Summary::default(),
    })
    .unwrap();
    assert_eq!(w.writes(), 4);
    assert!(read(&path).finished_at.is_some());
}

#[test]
fn writes_happen_at_most_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    // One millisecond per clock read; 1,000 events span about a second.
    let tick = sonicflow::report::stepping_clock(report_events::start(), Duration::from_millis(1));
    let mut w =
        ResultsWriter::new(&path, &plan(), SHA, tick).with_interval(Duration::from_millis(100));
    for _ in 0..1000 {
        w.apply(&RunEvent::Throttled { delay_ms: 10 }).unwrap();
    }
    // At most one write per 100 ms of clock (fewer if writes were slow).
    assert!((2..=11).contains(&w.writes()), "{} writes", w.writes());
}

#[test]
fn a_results_file_that_cannot_be_written_says_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("results.json");
    let mut w = writer(&path);
    let err = w.apply(&RunEvent::Throttled { delay_ms: 1 }).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("No such file or directory"), "{text}");
    assert!(text.contains("help: "), "{text}");
}

fn console_output(mode: ConsoleMode) -> String {
    let out = Captured::default();
    let mut console = Console::with_output(mode, clock(), Box::new(out.clone()));
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(&dir.path().join("results.json"));
    for event in events() {
        console.apply(&event);
        w.apply(&event).unwrap();
    }
    console.finish(&w.results(), Path::new("out/results.json"));
    out.text()
}

#[test]
fn plain_log_lines_and_the_summary() {
    insta::assert_snapshot!("console-plain", console_output(ConsoleMode::Plain));
}

#[test]
fn json_lines_one_object_per_event() {
    let text = console_output(ConsoleMode::Json);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        events().len() + 1,
        "one per event and the results line"
    );
    assert_eq!(lines.last().unwrap()["path"], "out/results.json");
    assert!(
        lines
            .iter()
            .all(|l| l["ts"].is_string() && l["event"].is_string())
    );
    insta::assert_snapshot!("console-json", text);
}

#[tokio::test]
async fn drain_feeds_both_reporters_and_returns_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    let out = Captured::default();
    let console = Console::with_output(ConsoleMode::Plain, clock(), Box::new(out.clone()));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for event in events() {
        tx.send(event).unwrap();
    }
    drop(tx);
    let drained = drain(
        rx,
        Reporters::new(
            writer(&path).with_interval(Duration::from_secs(60)),
            console,
        ),
    )
    .await;
    assert!(drained.results_error.is_none());
    assert_eq!(drained.summary.credits.charged, 49);
    assert_eq!(read(&path).totals.credits_charged, 49);
    assert!(out.text().contains("results: "), "{}", out.text());
}

#[tokio::test]
async fn drain_keeps_going_when_the_results_file_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("results.json");
    let out = Captured::default();
    let console = Console::with_output(ConsoleMode::Plain, clock(), Box::new(out.clone()));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for event in events() {
        tx.send(event).unwrap();
    }
    drop(tx);
    let drained = drain(rx, Reporters::new(writer(&path), console)).await;
    assert_eq!(drained.summary.failed, 2, "every event was still applied");
    let err = drained.results_error.expect("the final write failed too");
    assert_eq!(err.path, path);
    let text = out.text();
    assert_eq!(text.matches("warning").count(), 1, "warned once: {text}");
    assert!(text.contains("stopping"), "{text}");
}

#[test]
fn a_failure_is_printed_whole_with_its_fix() {
    let hint = "wav[rain/1] was sent in run 20261201-120000 at 12:00:17 and no answer was recorded; it may have been charged, so it is not sent again (pass `--resend-in-doubt` to pay for it again)";
    let out = Captured::default();
    let mut console = Console::with_output(ConsoleMode::Plain, clock(), Box::new(out.clone()));
    let dir = tempfile::tempdir().unwrap();
    // Only the summary is looked at: the file is written once, at the end.
    let mut w = ResultsWriter::new(dir.path().join("results.json"), &plan(), SHA, clock())
        .with_interval(Duration::from_secs(3600));
    let mut all = events();
    for event in &mut all {
        if let RunEvent::Failed { error, .. } = event
            && error.kind == ErrorKind::InDoubt
        {
            error.message = hint.to_owned();
        }
    }
    for event in all {
        console.apply(&event);
        w.apply(&event).unwrap();
    }
    console.finish(&w.results(), Path::new("out/results.json"));
    let text = out.text();
    let failed = &text[text.find("failed:\n").unwrap()..];
    assert!(
        failed.contains(&format!(
            "  wav[rain/1]  sent, but no answer came (in doubt): {hint}\n"
        )),
        "{failed}"
    );
}

#[test]
fn the_live_view_ends_with_the_summary() {
    // Without a terminal the live view draws nothing; the summary still goes to the output.
    let text = console_output(ConsoleMode::Tty);
    assert!(text.starts_with("\nstep "), "{text}");
    assert!(text.contains("status: stopped: out of credits"), "{text}");
    assert!(
        !text.contains("submitted"),
        "no event lines besides the live view: {text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_quiet_run_still_gets_its_results_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    let console = Console::with_output(ConsoleMode::Plain, clock(), Box::new(Captured::default()));
    // The results clock follows tokio's paused time, so the interval passes
    // only as the test lets time advance.
    let base = tokio::time::Instant::now();
    let paused: sonicflow::report::Clock =
        std::sync::Arc::new(move || report_events::start() + base.elapsed());
    let w = ResultsWriter::new(&path, &plan(), SHA, paused).with_interval(Duration::from_secs(1));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(drain(rx, Reporters::new(w, console)));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let events = events();
    tx.send(events[0].clone()).unwrap();
    tx.send(events[1].clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        read(&path).totals.instances,
        0,
        "within the interval the events wait"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        read(&path).totals.instances,
        2,
        "the timer wrote them without another event"
    );
    drop(tx);
    let drained = task.await.unwrap();
    assert!(drained.results_error.is_none());
}
