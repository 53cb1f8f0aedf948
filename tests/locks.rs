//! The pipeline lock, end to end through the binary against one standalone
//! sandbox: overlapping runs and resumes of one pipeline pay once, a dead
//! holder's lock is taken over, and pipelines sharing a state folder run
//! side by side.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{SandboxProcess, sonicflow};
use serde_json::Value;

const PAIR: &str = "tests/fixtures/locks/pair.yaml";
/// What one run of [`PAIR`] costs.
const PAIR_CREDITS: i64 = 40;

/// A sandbox where a song takes `(90..150 s) / scale`.
fn sandbox(scale: &str) -> SandboxProcess {
    SandboxProcess::start(&["--time-scale", scale, "--submit-interval", "1"])
}

/// The net credits the sandbox charged `key`.
fn spent(sandbox: &SandboxProcess, key: &str) -> i64 {
    let l = sandbox.ledger(key);
    l["charged"].as_i64().unwrap() - l["refunded"].as_i64().unwrap()
}

/// `sonicflow run ARGS… --state-dir STATE` against `sandbox` with `key`.
fn run_cmd(
    sandbox: &SandboxProcess,
    key: &str,
    state: &Path,
    scale: &str,
    args: &[&str],
) -> Command {
    let mut cmd = sonicflow();
    cmd.arg("run")
        .args(args)
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["--time-scale", scale, "--log-format", "json"])
        .env("MUSICAPI_BASE_URL", &sandbox.url)
        .env("MUSICAPI_KEY", key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn spawn(mut cmd: Command) -> Child {
    cmd.spawn().unwrap()
}

/// Starts `first`, then `second` `delay` later, and waits for both.
fn overlapping(first: Command, second: Command, delay: Duration) -> [Output; 2] {
    let a = spawn(first);
    // The delay is the scenario (a cron entry and a user 0.3 s apart), not
    // a wait for something: either outcome is checked below.
    std::thread::sleep(delay);
    let b = spawn(second);
    [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()]
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The run that ended second either was refused at once (exit 2, naming
/// the holder) or found everything done (exit 0); exactly one paid.
fn one_paid_other_refused_or_reused(outputs: &[Output; 2]) {
    let codes: Vec<Option<i32>> = outputs.iter().map(|o| o.status.code()).collect();
    assert!(
        codes.contains(&Some(0)) && codes.iter().all(|c| matches!(c, Some(0 | 2))),
        "{codes:?}\n{}\n{}",
        stderr(&outputs[0]),
        stderr(&outputs[1])
    );
    for o in outputs.iter().filter(|o| o.status.code() == Some(2)) {
        let text = stderr(o);
        assert!(
            text.contains("error: pipeline `pair` is locked by run `"),
            "{text}"
        );
        assert!(text.contains("nothing was sent"), "{text}");
    }
}

/// The results manifest in the run folder `out`.
fn results_of(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

/// The steps of a results manifest, and whether each was reused.
fn reused(results: &Value) -> Vec<(String, bool)> {
    results["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_owned(),
                s["reused_from"].is_string(),
            )
        })
        .collect()
}

/// Starts `cmd` and kills it with SIGKILL once it has logged `n` `event`s.
fn kill_after(cmd: Command, event: &str, n: usize) -> Output {
    let (output, seen) = common::kill_after_events(spawn(cmd), event, n);
    assert_eq!(
        seen,
        n,
        "the run ended first:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Insta settings that hide what changes from one run to the next.
fn filters(state: &Path, sandbox: &SandboxProcess) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    let state = state.display().to_string();
    settings.add_filter(&common::regex_escape(&state), "[STATE]");
    settings.add_filter(&common::regex_escape(&sandbox.url), "[SANDBOX]");
    settings.add_filter(r"pid \d+", "pid [PID]");
    settings.add_filter(r"on host `[^`]*`", "on host `[HOST]`");
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "[TIME]");
    settings.add_filter(r"pair-\d{8}T\d{9}Z(-\d+)?", "pair-[STAMP]");
    settings
}

#[test]
fn two_runs_of_one_pipeline_started_together_or_300_ms_apart_pay_for_one() {
    let sandbox = sandbox("200");
    for (key, delay) in [("together", 0), ("apart", 300)] {
        let state = tempfile::tempdir().unwrap();
        let cmd = || run_cmd(&sandbox, key, state.path(), "200", &[PAIR]);
        let outputs = overlapping(cmd(), cmd(), Duration::from_millis(delay));
        one_paid_other_refused_or_reused(&outputs);
        assert_eq!(spent(&sandbox, key), PAIR_CREDITS, "{key}");
    }
}

#[test]
fn a_run_that_waits_for_the_lock_then_reuses_everything_the_first_paid_for() {
    let sandbox = sandbox("200");
    let state = tempfile::tempdir().unwrap();
    let first = run_cmd(&sandbox, "wait", state.path(), "200", &[PAIR]);
    let out = state.path().join("second");
    let second = run_cmd(
        &sandbox,
        "wait",
        state.path(),
        "200",
        &[PAIR, "--lock-timeout", "1m", "--out", out.to_str().unwrap()],
    );
    let [a, b] = overlapping(first, second, Duration::from_millis(100));
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    assert_eq!(b.status.code(), Some(0), "{}", stderr(&b));
    assert_eq!(spent(&sandbox, "wait"), PAIR_CREDITS);
    assert_eq!(
        reused(&results_of(&out)),
        [("rain".to_owned(), true), ("sun".to_owned(), true)]
    );
}

#[test]
fn a_run_refused_by_a_live_holder_names_it_and_a_killed_holder_is_taken_over() {
    // Songs take seconds here, so the first run surely holds the lock while
    // the second starts.
    let sandbox = sandbox("50");
    let state = tempfile::tempdir().unwrap();
    let first = run_cmd(&sandbox, "kill", state.path(), "50", &[PAIR]);
    let mut holder = spawn(first);
    let mut lines = BufReader::new(holder.stderr.take().unwrap()).lines();
    let submitted = lines
        .by_ref()
        .map_while(Result::ok)
        .filter(|l| l.contains("\"event\":\"submitted\""))
        .take(2)
        .count();
    assert_eq!(submitted, 2);

    let refused = run_cmd(&sandbox, "kill", state.path(), "50", &[PAIR])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    filters(state.path(), &sandbox).bind(|| {
        insta::assert_snapshot!("run-refused-by-the-lock", stderr(&refused));
    });

    let plan = sonicflow()
        .args(["plan", PAIR, "--state-dir", state.path().to_str().unwrap()])
        .env("MUSICAPI_BASE_URL", &sandbox.url)
        .output()
        .unwrap();
    assert!(
        stderr(&plan).contains("is running `pair` now"),
        "{}",
        stderr(&plan)
    );

    let holder_id = std::fs::read_dir(state.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .next()
        .unwrap();
    let unlock = |extra: &[&str]| {
        sonicflow()
            .args([
                "unlock",
                &holder_id,
                "--state-dir",
                state.path().to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let alive = unlock(&[]);
    assert_eq!(alive.status.code(), Some(2));
    assert!(
        stderr(&alive).contains("looks alive: its process"),
        "{}",
        stderr(&alive)
    );

    // kill -9: the lock stays behind, naming a process that is gone.
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(spent(&sandbox, "kill"), PAIR_CREDITS);
    let next = run_cmd(&sandbox, "kill", state.path(), "50", &[PAIR])
        .output()
        .unwrap();
    assert_eq!(next.status.code(), Some(0), "{}", stderr(&next));
    let text = stderr(&next);
    assert!(
        text.contains(&format!(
            "warning: took over the lock on `pair` from run `{holder_id}`"
        )),
        "{text}"
    );
    assert!(text.contains("is no longer running"), "{text}");
    assert_eq!(
        spent(&sandbox, "kill"),
        PAIR_CREDITS,
        "the tasks were taken up, not paid again"
    );
    assert!(
        std::fs::read_dir(state.path().join("locks"))
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".lock")),
        "the run let go of its lock"
    );
}

#[test]
fn unlock_removes_the_lock_of_a_killed_run() {
    let sandbox = sandbox("50");
    let state = tempfile::tempdir().unwrap();
    let killed = kill_after(
        run_cmd(&sandbox, "unlock", state.path(), "50", &[PAIR]),
        "submitted",
        1,
    );
    assert_ne!(killed.status.code(), Some(0));
    let run_dir = std::fs::read_dir(state.path().join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // By its run folder, which names the state folder.
    let out = sonicflow()
        .args(["unlock", run_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with("removed the lock on `pair` held by run `pair-"),
        "{said}"
    );
    let again = sonicflow()
        .args(["unlock", run_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("no run holds a lock there"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn two_resumes_of_one_run_folder_pay_for_one() {
    let sandbox = sandbox("200");
    for (key, delay, wait) in [("r0", 0, "0s"), ("r300", 300, "0s"), ("rwait", 0, "1m")] {
        let state = tempfile::tempdir().unwrap();
        let out = state.path().join("run");
        let out_arg = out.to_str().unwrap();
        // One request at a time: the crash leaves `rain` accepted and `sun` unsent.
        let mut first = run_cmd(
            &sandbox,
            key,
            state.path(),
            "200",
            &[PAIR, "--out", out_arg, "--max-in-flight", "1"],
        );
        first.env("SONICFLOW_CRASH_AT", "after:accepted:1");
        let crashed = first.output().unwrap();
        assert_ne!(crashed.status.code(), Some(0), "{}", stderr(&crashed));
        let resume = || {
            run_cmd(
                &sandbox,
                key,
                state.path(),
                "200",
                &["--resume", out_arg, "--lock-timeout", wait],
            )
        };
        let outputs = overlapping(resume(), resume(), Duration::from_millis(delay));
        if wait == "0s" {
            one_paid_other_refused_or_reused(&outputs);
        } else {
            for o in &outputs {
                assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
            }
        }
        assert_eq!(spent(&sandbox, key), PAIR_CREDITS, "{key}");
    }
}

#[test]
fn a_resume_against_another_api_than_the_runs_is_refused_naming_both() {
    let sandbox = sandbox("200");
    let state = tempfile::tempdir().unwrap();
    let out = state.path().join("run");
    let out_arg = out.to_str().unwrap();
    let mut first = run_cmd(
        &sandbox,
        "api",
        state.path(),
        "200",
        &[PAIR, "--out", out_arg],
    );
    first.env("SONICFLOW_CRASH_AT", "after:accepted:1");
    assert_ne!(first.output().unwrap().status.code(), Some(0));
    let charged = spent(&sandbox, "api");

    let other = sonicflow()
        .args(["run", "--resume", out_arg, "--time-scale", "200"])
        .env("MUSICAPI_BASE_URL", "http://127.0.0.1:9/")
        .env("MUSICAPI_KEY", "api")
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));
    filters(state.path(), &sandbox).bind(|| {
        insta::assert_snapshot!("resume-against-another-api", stderr(&other));
    });
    assert_eq!(spent(&sandbox, "api"), charged);
}

#[test]
fn pipelines_sharing_a_state_folder_run_side_by_side_and_reuse_each_others_results() {
    let sandbox = sandbox("200");
    let state = tempfile::tempdir().unwrap();
    let done = run_cmd(&sandbox, "share", state.path(), "200", &[PAIR])
        .output()
        .unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let (out_a, out_b) = (state.path().join("a"), state.path().join("b"));
    let [a, b] = overlapping(
        run_cmd(
            &sandbox,
            "share",
            state.path(),
            "200",
            &[
                "tests/fixtures/locks/rain-and-wind.yaml",
                "--out",
                out_a.to_str().unwrap(),
            ],
        ),
        run_cmd(
            &sandbox,
            "share",
            state.path(),
            "200",
            &[
                "tests/fixtures/locks/sun-and-snow.yaml",
                "--out",
                out_b.to_str().unwrap(),
            ],
        ),
        Duration::ZERO,
    );
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    assert_eq!(b.status.code(), Some(0), "{}", stderr(&b));
    assert_eq!(
        reused(&results_of(&out_a)),
        [("rain".to_owned(), true), ("wind".to_owned(), false)]
    );
    assert_eq!(
        reused(&results_of(&out_b)),
        [("sun".to_owned(), true), ("snow".to_owned(), false)]
    );
    assert_eq!(spent(&sandbox, "share"), PAIR_CREDITS + 20 + 20);
    // Both appended to the shared index, whole lines only.
    let index = std::fs::read_to_string(state.path().join("index.jsonl")).unwrap();
    for line in index.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
}

/// The lock files left in `state`.
fn locks_left(state: &Path) -> Vec<String> {
    std::fs::read_dir(state.join("locks"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_run_lets_go_of_the_lock_on_ctrl_c_and_on_an_error() {
    let sandbox = sandbox("50");
    let state = tempfile::tempdir().unwrap();
    // One request at a time, so the interrupt leaves `sun` unsent.
    let mut child = spawn(run_cmd(
        &sandbox,
        "exits",
        state.path(),
        "50",
        &[PAIR, "--max-in-flight", "1"],
    ));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let submitted = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("\"event\":\"submitted\""));
    assert!(submitted);
    assert_eq!(locks_left(state.path()), ["pair.lock"]);
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let log: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(
        child.wait().unwrap().code(),
        Some(130),
        "{}",
        log.join("\n")
    );
    assert!(locks_left(state.path()).is_empty());

    // The API cannot be reached: the run ends before sending anything.
    let unreachable = sonicflow()
        .args(["run", PAIR, "--time-scale", "1000"])
        .args(["--state-dir", state.path().to_str().unwrap()])
        .env("MUSICAPI_BASE_URL", "http://127.0.0.1:9")
        .env("MUSICAPI_KEY", "exits")
        .output()
        .unwrap();
    assert_eq!(
        unreachable.status.code(),
        Some(4),
        "{}",
        stderr(&unreachable)
    );
    assert!(locks_left(state.path()).is_empty());
}
