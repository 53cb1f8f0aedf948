//! Reuse across runs, budgets and selection, end to end through the binary
//! against a standalone sandbox, checked on the sandbox's ledger.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::path::Path;

use common::{SandboxProcess, sonicflow};
use serde_json::Value;

const SONGS: &str = "version: 1\nname: songs\ndefaults: { mv: sonic-v5 }\npoll: { initial_delay: 20s, interval: 15s, timeout: 10m }\nsteps:\n  upload:\n    action: upload\n    with: { url: https://example.com/a.mp3 }\n  jazz:\n    action: cover\n    with: { clip: '${{ steps.upload.outputs.clip_id }}', custom_mode: false, gpt_description_prompt: smooth jazz }\n  wav:\n    action: wav\n    for_each: ${{ steps.jazz.outputs.clips }}\n    with: { clip: '${{ item.clip_id }}' }\n  other:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: a quiet piano piece }\n";

const ROWS: &str = "version: 1\nname: rows\ndefaults: { mv: sonic-v5 }\npoll: { initial_delay: 20s, interval: 15s, timeout: 10m }\nmatrix:\n  key: id\n  rows:\n    - { id: rain, mood: rainy }\n    - { id: sun, mood: sunny }\n    - { id: snow, mood: snowy }\nsteps:\n  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: 'a ${{ matrix.mood }} day' }\n";

/// The sandbox's spacing of paid submits (seconds, before scaling): a third
/// of what the runner keeps to, so that at time scale 1000, where the
/// runner's 5% margin is 0.15 ms, a busy machine never turns a submit into
/// a 429 and a resend. These tests are about what is paid, not about pacing.
const SPACING: &str = "1";

/// The net credits the sandbox charged `key`.
fn spent(sandbox: &SandboxProcess, key: &str) -> i64 {
    let l = sandbox.ledger(key);
    l["charged"].as_i64().unwrap() - l["refunded"].as_i64().unwrap()
}

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn plan_json(sandbox: &SandboxProcess, file: &str, extra: &[&str]) -> Value {
    let out = sonicflow()
        .args(["plan", "--json", file])
        .args(extra)
        .env("MUSICAPI_BASE_URL", &sandbox.url)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn run(sandbox: &SandboxProcess, key: &str, file: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![file, "--time-scale", "1000", "--log-format", "json"];
    args.extend_from_slice(extra);
    sandbox.run(key, &args)
}

/// `run`, which must succeed.
fn run_ok(sandbox: &SandboxProcess, key: &str, file: &str, extra: &[&str]) {
    let out = run(sandbox, key, file, extra);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn results(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

/// The steps of a results manifest that were (or were not) reused.
fn steps_reused(results: &Value, reused: bool) -> Vec<String> {
    results["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["reused_from"].is_string() == reused)
        .map(|s| s["step"].as_str().unwrap().to_owned())
        .collect()
}

/// `step -> (status, credits to spend, detail)` from a plan's JSON.
fn statuses(plan: &Value) -> Vec<(String, String, u64)> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
                r["to_spend"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn an_edited_prompt_pays_only_for_that_step_and_its_dependents_and_plan_says_so() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", SPACING]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), SONGS);

    run_ok(&sandbox, "reuse", &file, &[]);
    let paid_first = spent(&sandbox, "reuse");
    assert_eq!(paid_first, 2 + 15 + 2 * 2 + 20);

    // Unchanged: everything is reused and nothing is spent.
    let plan = plan_json(&sandbox, &file, &[]);
    assert_eq!(plan["to_spend"], 0, "{plan:#}");
    assert!(statuses(&plan).iter().all(|(_, s, _)| s == "reused"));
    // Each says which run it is reused from.
    let runs: Vec<String> = marks(&plan).into_iter().map(|(_, _, d)| d).collect();
    assert!(runs[0].starts_with("run songs-"), "{plan:#}");
    assert!(runs.iter().all(|r| r == &runs[0]), "{plan:#}");

    std::fs::write(&file, SONGS.replace("smooth jazz", "bebop jazz")).unwrap();
    let plan = plan_json(&sandbox, &file, &[]);
    assert_eq!(
        statuses(&plan),
        vec![
            ("upload".into(), "reused".into(), 0),
            ("jazz".into(), "changed".into(), 15),
            ("wav".into(), "new".into(), 4),
            ("other".into(), "reused".into(), 0),
        ],
        "{plan:#}"
    );
    assert_eq!(plan["steps"][1]["detail"], "gpt_description_prompt");
    assert_eq!(plan["to_spend"], 19);

    let second_dir = dir.path().join("second");
    run_ok(
        &sandbox,
        "reuse",
        &file,
        &["--out", second_dir.to_str().unwrap()],
    );
    assert_eq!(
        spent(&sandbox, "reuse") - paid_first,
        19,
        "only the edited step and its dependents were paid for, as planned"
    );
    let r = results(&second_dir);
    assert_eq!(steps_reused(&r, true), vec!["upload", "other"]);
    assert_eq!(r["totals"]["succeeded"], 5);

    // `--force` and `--no-reuse` pay again on purpose, as planned.
    let plan = plan_json(&sandbox, &file, &["--force", "other"]);
    assert_eq!(plan["to_spend"], 20);
    let before = spent(&sandbox, "reuse");
    let forced = dir.path().join("forced");
    run_ok(
        &sandbox,
        "reuse",
        &file,
        &["--force", "other", "--out", forced.to_str().unwrap()],
    );
    assert_eq!(spent(&sandbox, "reuse") - before, 20);
    assert_eq!(steps_reused(&results(&forced), false), vec!["other"]);

    let plan = plan_json(&sandbox, &file, &["--no-reuse"]);
    assert_eq!(plan["to_spend"], plan["total_credits"]);
    let before = spent(&sandbox, "reuse");
    run_ok(&sandbox, "reuse", &file, &["--no-reuse"]);
    assert_eq!(spent(&sandbox, "reuse") - before, 41);
}

#[test]
fn a_budget_below_the_plan_stops_before_the_submit_that_would_cross_it() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", SPACING]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), ROWS);
    let run_dir = dir.path().join("run");
    let out = run(
        &sandbox,
        "budget",
        &file,
        &[
            "--max-credits",
            "40",
            "--allow-partial",
            "--out",
            run_dir.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(spent(&sandbox, "budget"), 40, "nothing past the cap");
    let r = results(&run_dir);
    let by_row: Vec<(String, String)> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["row_key"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        by_row,
        vec![
            ("rain".into(), "succeeded".into()),
            ("sun".into(), "succeeded".into()),
            ("snow".into(), "skipped".into()),
        ]
    );
    assert!(
        r["stop_reason"]
            .as_str()
            .unwrap()
            .contains("`song[snow]` needs 20 credits"),
        "{r:#}"
    );
    // Resuming with a higher cap pays for the rest, and only the rest.
    let out = sandbox.run(
        "budget",
        &[
            "--resume",
            run_dir.to_str().unwrap(),
            "--max-credits",
            "60",
            "--time-scale",
            "1000",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(spent(&sandbox, "budget"), 60);
}

#[test]
fn a_balance_short_of_the_plan_refuses_before_anything_is_sent() {
    let sandbox = SandboxProcess::start(&[
        "--time-scale",
        "1000",
        "--submit-interval",
        SPACING,
        "--balance",
        "20",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), ROWS);
    let out = run(&sandbox, "short", &file, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the balance is 20 credits and the run needs about 60"),
        "{stderr}"
    );
    assert_eq!(spent(&sandbox, "short"), 0);
    // Skipping the check starts anyway; the service's own refusal stops it.
    let out = run(&sandbox, "short", &file, &["--no-balance-check"]);
    assert_eq!(spent(&sandbox, "short"), 20);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn select_and_exclude_narrow_plan_and_run_by_step_and_matrix_key() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", SPACING]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), ROWS);
    let plan = plan_json(&sandbox, &file, &["--select", "sun"]);
    assert_eq!(plan["instances"], 1);
    assert_eq!(plan["to_spend"], 20);
    run_ok(&sandbox, "select", &file, &["--exclude", "key:rain,snow"]);
    assert_eq!(spent(&sandbox, "select"), 20);
    // The sunny song is reused; the others are new.
    let plan = plan_json(&sandbox, &file, &[]);
    let rows: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(rows, vec!["new", "reused", "new"]);
    assert_eq!(plan["to_spend"], 40);

    let bad = sonicflow()
        .args(["plan", &file, "--select", "snwo"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("did you mean `snow`?"));
}

#[test]
fn a_killed_run_is_shown_by_status_and_resumed_without_paying_twice() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", SPACING]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), SONGS);
    let out_dir = dir.path().join("run");
    let out_arg = out_dir.to_str().unwrap();
    let killed = sonicflow()
        .args(["run", &file, "--time-scale", "1000", "--out", out_arg])
        .env("MUSICAPI_BASE_URL", &sandbox.url)
        .env("MUSICAPI_KEY", "status")
        .env("SONICFLOW_CRASH_AT", "after:accepted:2")
        .output()
        .unwrap();
    assert_ne!(killed.status.code(), Some(0));
    let status = sonicflow().args(["status", out_arg]).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("state: interrupted (in flight, exit 6)"),
        "{text}"
    );
    assert_eq!(status.status.code(), Some(6), "{text}");
    // `other` and `jazz` were accepted (the second kills it), `upload` finished.
    assert!(
        text.contains("1 succeeded (0 reused), 2 in flight"),
        "{text}"
    );
    assert!(text.contains("credits: 37 credits net"), "{text}");
    assert!(
        text.contains("resume with: sonicflow run --resume"),
        "{text}"
    );

    // `--resume last` finds the run from the manifest.
    let resumed = sandbox.run(
        "status",
        &[
            &file,
            "--resume",
            "last",
            "--time-scale",
            "1000",
            "--log-format",
            "json",
        ],
    );
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(spent(&sandbox, "status"), 2 + 15 + 2 * 2 + 20);
    let json = sonicflow()
        .args(["status", "--json", &file])
        .output()
        .unwrap();
    let s: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json.status.code(), Some(0));
    assert_eq!(s["state"], "succeeded");
    assert_eq!(s["verdict"], "succeeded");
    assert_eq!(s["resumed"], 1);
    assert_eq!(s["succeeded"], 5);
    assert_eq!(s["credits_charged"], 41);
}

const MARKS: &str = "version: 1\nname: marks\ndefaults: { mv: sonic-v5 }\npoll: { initial_delay: 20s, interval: 15s, timeout: 10m }\nsteps:\n  bad:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: in the style of a famous band }\n  good:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: a quiet piano piece }\n";

/// `step -> (status, detail)` from a plan's JSON.
fn marks(plan: &Value) -> Vec<(String, String, String)> {
    let rows = plan["steps"].as_array().unwrap();
    statuses(plan)
        .into_iter()
        .zip(rows)
        .map(|((id, status, _), r)| (id, status, r["detail"].as_str().unwrap().to_owned()))
        .collect()
}

/// Runs `file` with only `step` selected and kills the runner right after
/// it records its intent to send: whether the request left is unknown.
/// Returns the dead run's id.
fn die_after_intent(
    sandbox: &SandboxProcess,
    key: &str,
    file: &str,
    step: &str,
    out: &Path,
) -> String {
    let killed = sonicflow()
        .args(["run", file, "--select", step, "--time-scale", "1000"])
        .args(["--out", out.to_str().unwrap()])
        .env("MUSICAPI_BASE_URL", &sandbox.url)
        .env("MUSICAPI_KEY", key)
        .env("SONICFLOW_CRASH_AT", "after:intent:1")
        .output()
        .unwrap();
    assert_ne!(killed.status.code(), Some(0));
    let journal = std::fs::read_to_string(out.join("journal.jsonl")).unwrap();
    let header: Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    header["id"].as_str().unwrap().to_owned()
}

#[test]
fn plan_marks_requests_that_failed_before_or_are_in_doubt_and_a_resend_settles_the_doubt() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", SPACING]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), MARKS);
    let dead_good = die_after_intent(&sandbox, "marks", &file, "good", &dir.path().join("a"));
    let dead_bad = die_after_intent(&sandbox, "marks", &file, "bad", &dir.path().join("b"));
    assert_ne!(dead_good, dead_bad);
    let plan = plan_json(&sandbox, &file, &[]);
    assert_eq!(
        marks(&plan),
        vec![
            ("bad".into(), "in doubt".into(), format!("run {dead_bad}")),
            ("good".into(), "in doubt".into(), format!("run {dead_good}")),
        ],
        "{plan:#}"
    );
    assert_eq!(plan["to_spend"], 0, "a request in doubt is not sent again");

    // A later run leaves both alone unless told to send them again.
    let out = run(&sandbox, "marks", &file, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(spent(&sandbox, "marks"), 0);
    let plan = plan_json(&sandbox, &file, &[]);
    let m = marks(&plan);
    assert_eq!(
        (m[0].1.as_str(), m[1].1.as_str()),
        ("in doubt", "in doubt"),
        "{plan:#}"
    );

    // Resent on purpose: `bad` is refused by moderation (nothing charged),
    // `good` is paid once.
    let resent = dir.path().join("resent");
    let out = run(
        &sandbox,
        "marks",
        &file,
        &["--resend-in-doubt", "--out", resent.to_str().unwrap()],
    );
    assert_ne!(out.status.code(), Some(0), "`bad` is refused");
    assert_eq!(spent(&sandbox, "marks"), 20);

    // The resend's answers settle both doubts for every later plan and run.
    let plan = plan_json(&sandbox, &file, &[]);
    let m = marks(&plan);
    assert_eq!(
        (m[0].1.as_str(), m[1].1.as_str()),
        ("failed before", "reused"),
        "{plan:#}"
    );
    assert!(
        !m[0].2.contains(&dead_bad) && !m[1].2.contains(&dead_good),
        "{plan:#}"
    );
    assert_eq!(plan["steps"][1]["to_spend"], 0);
    assert_eq!(plan["to_spend"], 20, "a refused request is tried again");
    run_ok(&sandbox, "marks", &file, &["--select", "good"]);
    assert_eq!(spent(&sandbox, "marks"), 20);
}

/// `(status, reused_from, files present in the run folder)` per instance.
fn reuse_and_files(out: &Path) -> Vec<(String, Option<String>, usize)> {
    results(out)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let files = s["files"].as_array().unwrap();
            let present = files
                .iter()
                .filter(|f| out.join(f["path"].as_str().unwrap()).is_file())
                .count();
            (
                s["status"].as_str().unwrap().to_owned(),
                s["reused_from"].as_str().map(str::to_owned),
                present,
            )
        })
        .collect()
}

#[test]
fn past_the_url_retention_only_results_with_downloaded_files_are_reused() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", SPACING]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), ROWS);
    let expired = ["--url-retention", "0s"];

    // Without downloads, results hold only remote URLs.
    run_ok(&sandbox, "keep", &file, &[]);
    assert_eq!(spent(&sandbox, "keep"), 60);
    assert_eq!(plan_json(&sandbox, &file, &[])["to_spend"], 0);
    let plan = plan_json(&sandbox, &file, &expired);
    assert_eq!(
        plan["to_spend"], 60,
        "expired URLs are not reused: {plan:#}"
    );
    assert!(
        statuses(&plan).iter().all(|(_, s, _)| s == "new"),
        "{plan:#}"
    );

    // Within the retention, a run with downloads reuses those results and
    // fetches their files into its own folder, paying nothing.
    let fetched = dir.path().join("fetched");
    run_ok(
        &sandbox,
        "keep",
        &file,
        &["--download", "--out", fetched.to_str().unwrap()],
    );
    assert_eq!(spent(&sandbox, "keep"), 60);
    let fetched_files = reuse_and_files(&fetched);
    assert_eq!(fetched_files.len(), 3);
    assert!(
        fetched_files
            .iter()
            .all(|(s, r, n)| s == "succeeded" && r.is_some() && *n > 0),
        "{fetched_files:?}"
    );

    // Paying again with downloads keeps the files beside the results.
    let saved = dir.path().join("saved");
    let mut args = vec!["--download", "--out", saved.to_str().unwrap()];
    args.extend_from_slice(&expired);
    run_ok(&sandbox, "keep", &file, &args);
    assert_eq!(spent(&sandbox, "keep"), 120);
    let saved_files = reuse_and_files(&saved);
    assert!(
        saved_files
            .iter()
            .all(|(s, r, n)| s == "succeeded" && r.is_none() && *n > 0)
    );

    // Now the same expiry reuses them, and brings the files along.
    let plan = plan_json(&sandbox, &file, &expired);
    assert_eq!(plan["to_spend"], 0, "{plan:#}");
    let again = dir.path().join("again");
    let mut args = vec!["--out", again.to_str().unwrap()];
    args.extend_from_slice(&expired);
    run_ok(&sandbox, "keep", &file, &args);
    assert_eq!(spent(&sandbox, "keep"), 120, "nothing paid");
    let again_files = reuse_and_files(&again);
    assert_eq!(again_files.len(), 3);
    for ((status, from, n), (_, _, before)) in again_files.iter().zip(&saved_files) {
        assert_eq!(status, "succeeded");
        assert_eq!(from.as_deref(), Some("saved"));
        assert_eq!(n, before, "every file is in the new run folder");
    }

    // A file gone from the earlier folder makes that result unusable once expired.
    let first = &results(&saved)["steps"][0]["files"][0]["path"];
    std::fs::remove_file(saved.join(first.as_str().unwrap())).unwrap();
    let plan = plan_json(&sandbox, &file, &expired);
    assert_eq!(plan["to_spend"], 20, "{plan:#}");
}

const CHAIN: &str = "version: 1\nname: chain\ndefaults: { mv: sonic-v5 }\npoll: { initial_delay: 20s, interval: 15s, timeout: 10m }\nsteps:\n  upload:\n    action: upload\n    with: { url: https://example.com/a.mp3 }\n  jazz:\n    action: cover\n    with: { clip: '${{ steps.upload.outputs.clip_id }}', custom_mode: false, gpt_description_prompt: smooth jazz }\n  wav:\n    action: wav\n    for_each: ${{ steps.jazz.outputs.clips }}\n    with: { clip: '${{ item.clip_id }}' }\n  rock:\n    action: cover\n    with: { clip: '${{ steps.upload.outputs.clip_id }}', custom_mode: false, gpt_description_prompt: hard rock }\n";

#[test]
fn an_excluded_dependency_is_only_reused_and_nothing_is_paid_on_its_behalf() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", SPACING]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), CHAIN);
    let only_wav = ["--select", "wav", "--exclude", "jazz"];

    // Nothing to reuse: the upload only the excluded cover needs is not paid
    // for either, and plan and run agree on it.
    let plan = plan_json(&sandbox, &file, &only_wav);
    let m = marks(&plan);
    let status: Vec<&str> = m.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(
        status,
        vec!["excluded", "blocked", "blocked", "not selected"],
        "{plan:#}"
    );
    assert_eq!(plan["to_spend"], 0);
    run(&sandbox, "chain", &file, &only_wav);
    assert_eq!(spent(&sandbox, "chain"), 0);

    // When a selected step needs the upload too, it is paid for; the
    // excluded cover then has new inputs, so it cannot be reused and is skipped.
    let plan = plan_json(
        &sandbox,
        &file,
        &["--select", "wav,rock", "--exclude", "jazz"],
    );
    let m = marks(&plan);
    let status: Vec<&str> = m.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(
        status,
        vec!["new", "excluded", "blocked", "new"],
        "{plan:#}"
    );
    assert_eq!(plan["to_spend"], 17);
    let out_dir = dir.path().join("partial");
    let args = [
        "--select",
        "wav,rock",
        "--exclude",
        "jazz",
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let partial = run(&sandbox, "chain", &file, &args);
    assert_eq!(spent(&sandbox, "chain"), 17, "as planned");
    let r = results(&out_dir);
    // A step that did not run: the run is incomplete, in its exit code and
    // in its results alike.
    assert_eq!(partial.status.code(), Some(1));
    assert_eq!(r["status"], "incomplete", "{r:#}");
    let by_step: Vec<(&str, &str)> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        &by_step[..2],
        &[("upload", "succeeded"), ("jazz", "skipped")],
        "{r:#}"
    );

    // After a whole run, the same selection reuses the excluded cover.
    run_ok(&sandbox, "chain", &file, &[]);
    let paid = spent(&sandbox, "chain");
    assert_eq!(paid, 17 + 15 + 2 * 2, "the upload and rock were reused");
    let plan = plan_json(
        &sandbox,
        &file,
        &[&only_wav[..], &["--force", "wav"]].concat(),
    );
    let m = marks(&plan);
    let status: Vec<&str> = m.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(
        status,
        vec!["reused", "reused", "new", "not selected"],
        "{plan:#}"
    );
    assert_eq!(plan["to_spend"], 4);
    run(
        &sandbox,
        "chain",
        &file,
        &[&only_wav[..], &["--force", "wav"]].concat(),
    );
    assert_eq!(spent(&sandbox, "chain"), paid + 4);
}

#[test]
fn the_state_folder_sits_beside_the_manifest_and_a_new_price_table_pays_again() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", SPACING]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), ROWS);
    run_ok(&sandbox, "prices", &file, &[]);
    let state = dir.path().join(".sonicflow");
    assert!(state.join("index.jsonl").is_file());
    assert!(state.join("runs.jsonl").is_file());
    let ignore = std::fs::read_to_string(state.join(".gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "*"), "{ignore}");

    // The price table is part of a request's identity: other prices, other requests.
    std::fs::write(&file, format!("{ROWS}prices:\n  create_music: 25\n")).unwrap();
    let plan = plan_json(&sandbox, &file, &[]);
    let m = marks(&plan);
    assert!(
        m.iter()
            .all(|(_, s, d)| s == "changed" && d == "price table"),
        "{plan:#}"
    );
    assert_eq!(plan["to_spend"], 75);

    // `--state-dir` moves it: a fresh folder knows nothing.
    let elsewhere = dir.path().join("elsewhere");
    let plan = plan_json(
        &sandbox,
        &file,
        &["--state-dir", elsewhere.to_str().unwrap()],
    );
    assert!(
        statuses(&plan).iter().all(|(_, s, _)| s == "new"),
        "{plan:#}"
    );
}

#[test]
fn an_empty_base_url_is_the_production_service_for_reuse_as_for_the_client() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", SPACING]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), ROWS);
    run_ok(&sandbox, "prod", &file, &[]);
    // As if that run had talked to the production service, which a client
    // with `MUSICAPI_BASE_URL` unset, empty or blank talks to.
    let index = dir.path().join(".sonicflow").join("index.jsonl");
    let text = std::fs::read_to_string(&index).unwrap();
    assert!(text.contains(&sandbox.url), "{text}");
    let production = sonicflow::api::DEFAULT_BASE_URL;
    std::fs::write(&index, text.replace(&sandbox.url, production)).unwrap();
    for base in [None, Some(""), Some(" "), Some("https://api.musicapi.ai/")] {
        let mut plan = sonicflow();
        plan.args(["plan", "--json", &file]);
        if let Some(base) = base {
            plan.env("MUSICAPI_BASE_URL", base);
        }
        let out = plan.output().unwrap();
        let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            statuses(&plan).iter().all(|(_, s, _)| s == "reused"),
            "MUSICAPI_BASE_URL={base:?}: {plan:#}"
        );
    }
}
