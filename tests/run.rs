//! `sonicflow run` end to end through the binary: the in-process sandbox for
//! the examples, and a standalone sandbox with injected faults for the
//! error classes, checking the ledger so nothing is ever paid twice.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::path::Path;

use common::{SandboxProcess, files, sonicflow};
use serde_json::Value;

fn events(stderr: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn summary(stderr: &[u8]) -> Value {
    events(stderr)
        .into_iter()
        .find(|e| e["event"] == "finished")
        .map(|e| e["summary"].clone())
        .unwrap_or_default()
}

fn results(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("results.json")).expect("results.json is written");
    serde_json::from_str(&text).expect("results.json is valid JSON")
}

fn planned_total(file: &str) -> u64 {
    planned(file).0
}

/// The plan's total, and whether it is only a maximum (conditions known at run time).
fn planned(file: &str) -> (u64, bool) {
    let out = sonicflow().args(["plan", "--json", file]).output().unwrap();
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        plan["total_credits"].as_u64().unwrap(),
        plan["total_at_most"] == true,
    )
}

/// A manifest in a temp folder.
fn manifest(dir: &Path, text: &str) -> String {
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A run of `text` against a standalone sandbox at time scale 1000 with
/// `faults` (a faults file's YAML) and `seed`, using API key `key`.
struct FaultyRun {
    dir: tempfile::TempDir,
    sandbox: SandboxProcess,
    file: String,
    out: std::process::Output,
}

fn faulty_run(faults: &str, seed: &str, key: &str, text: &str) -> FaultyRun {
    let dir = tempfile::tempdir().unwrap();
    let faults_path = dir.path().join("faults.yaml");
    std::fs::write(&faults_path, faults).unwrap();
    let sandbox = SandboxProcess::start(&[
        "--time-scale",
        "1000",
        "--seed",
        seed,
        "--faults",
        faults_path.to_str().unwrap(),
    ]);
    let file = manifest(dir.path(), text);
    let out_dir = dir.path().join("out");
    let out = sandbox.run(
        key,
        &[
            &file,
            "--time-scale",
            "1000",
            "--log-format",
            "json",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    FaultyRun {
        dir,
        sandbox,
        file,
        out,
    }
}

const COVER: &str = "version: 1\nname: e2e\ndefaults: { mv: sonic-v5 }\npoll: { initial_delay: 20s, interval: 15s, timeout: 10m }\nsteps:\n  upload:\n    action: upload\n    with: { url: https://example.com/a.mp3 }\n  jazz:\n    action: cover\n    with: { clip: '${{ steps.upload.outputs.clip_id }}', custom_mode: false, gpt_description_prompt: smooth jazz }\n  wav:\n    action: wav\n    for_each: ${{ steps.jazz.outputs.clips }}\n    with: { clip: '${{ item.clip_id }}' }\n";

#[test]
fn every_example_pipeline_runs_on_the_sandbox_and_charges_its_plan() {
    for file in files("pipelines", ".yaml") {
        let dir = tempfile::tempdir().unwrap();
        let out = sonicflow()
            .args([
                "run",
                &file,
                "--sandbox",
                "--download",
                "--log-format",
                "json",
                "--out",
            ])
            .arg(dir.path())
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = summary(&out.stderr);
        assert_eq!(s["failed"], 0, "{file}");
        let charged = s["credits_charged"].as_u64().unwrap();
        match planned(&file) {
            (most, true) => assert!(charged <= most, "{file}: {charged} > at most {most}"),
            (total, false) => assert_eq!(charged, total, "{file}: charged what the plan said"),
        }
        let r = results(dir.path());
        assert_eq!(r["status"], "succeeded", "{file}");
        for step in r["steps"].as_array().unwrap() {
            let ran = step["status"] == "succeeded" || step["status"] == "skipped_condition";
            assert!(ran, "{file}: {step}");
            for f in step["files"].as_array().unwrap_or(&Vec::new()) {
                let path = dir.path().join(f["path"].as_str().unwrap());
                let bytes = std::fs::read(&path).unwrap();
                assert_eq!(bytes.len() as u64, f["bytes"].as_u64().unwrap());
            }
        }
    }
}

#[test]
fn transient_500s_are_retried_without_paying_twice() {
    let run = faulty_run("http_500: 0.3\n", "3", "k500", COVER);
    assert_eq!(
        run.out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.out.stderr)
    );
    let ledger = run.sandbox.ledger("k500");
    assert_eq!(
        ledger["charged"].as_u64(),
        Some(planned_total(&run.file)),
        "{ledger}"
    );
    assert!(
        events(&run.out.stderr)
            .iter()
            .any(|e| e["event"] == "retrying"),
        "some 500 was retried"
    );
}

#[test]
fn rate_limited_submits_slow_down_and_succeed() {
    let run = faulty_run("http_429: 0.4\n", "5", "k429", COVER);
    assert_eq!(
        run.out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.out.stderr)
    );
    assert!(
        events(&run.out.stderr)
            .iter()
            .any(|e| e["event"] == "throttled")
    );
    assert_eq!(
        run.sandbox.ledger("k429")["charged"].as_u64(),
        Some(planned_total(&run.file))
    );
}

#[test]
fn failed_tasks_are_retried_then_reported_with_refunds() {
    let run = faulty_run("task_failed: 1\n", "0", "kfail", COVER);
    assert_eq!(
        run.out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&run.out.stderr)
    );
    let s = summary(&run.out.stderr);
    assert_eq!(
        (
            s["succeeded"].as_u64(),
            s["failed"].as_u64(),
            s["skipped"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{s}"
    );
    let ledger = run.sandbox.ledger("kfail");
    // upload 2 charged; cover 3 attempts × 15 charged and refunded.
    assert_eq!(
        (ledger["charged"].as_u64(), ledger["refunded"].as_u64()),
        (Some(2 + 45), Some(45)),
        "{ledger}"
    );
    assert_eq!(s["credits_refunded"].as_u64(), Some(45));
    assert_eq!(results(&run.dir.path().join("out"))["status"], "failed");
}

#[test]
fn an_in_doubt_submit_is_never_resent() {
    for fault in ["drop_after_charge", "malformed_json"] {
        let run = faulty_run(&format!("{fault}: 1\n"), "0", "kdoubt", COVER);
        assert_eq!(
            run.out.status.code(),
            Some(1),
            "{fault}: {}",
            String::from_utf8_lossy(&run.out.stderr)
        );
        let ev = events(&run.out.stderr);
        let failed: Vec<&Value> = ev.iter().filter(|e| e["event"] == "failed").collect();
        assert_eq!(failed.len(), 1, "{fault}");
        assert_eq!(failed[0]["error"]["kind"], "in_doubt", "{fault}");
        let ledger = run.sandbox.ledger("kdoubt");
        let charges = ledger["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "charge")
            .count();
        assert_eq!(
            charges, 1,
            "{fault}: the upload was charged once and never sent again: {ledger}"
        );
    }
}

#[test]
fn a_task_that_never_finishes_times_out() {
    let run = faulty_run(
        "task_stuck: 1\n",
        "0",
        "kstuck",
        &COVER.replace("timeout: 10m", "timeout: 3m"),
    );
    assert_eq!(run.out.status.code(), Some(1));
    let ev = events(&run.out.stderr);
    assert!(
        ev.iter()
            .any(|e| e["event"] == "failed" && e["error"]["kind"] == "timeout"),
        "{ev:?}"
    );
}

#[test]
fn a_failing_step_skips_only_its_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{COVER}  other:\n    action: create\n    with: {{ custom_mode: true, prompt: 'these lyrics are copyrighted' }}\n  after:\n    action: wav\n    with: {{ clip: '${{{{ steps.other.outputs.clip_id }}}}' }}\n"
    );
    let file = manifest(dir.path(), &text);
    let out = sonicflow()
        .args(["run", &file, "--sandbox", "--log-format", "json", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let ev = events(&out.stderr);
    let of = |kind: &str| -> Vec<String> {
        ev.iter()
            .filter(|e| e["event"] == kind)
            .map(|e| e["id"]["step_id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(of("failed"), vec!["other"]);
    assert_eq!(of("skipped"), vec!["after"]);
    assert!(
        of("succeeded").contains(&"wav".to_owned()),
        "the independent branch finished"
    );
    let failed = ev.iter().find(|e| e["event"] == "failed").unwrap();
    assert_eq!(failed["error"]["kind"], "moderation");
}

#[test]
fn a_refused_key_or_no_key_stops_before_anything_is_sent() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--key", "the-right-key"]);
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path(), COVER);
    let out = sandbox.run(
        "a-wrong-key",
        &[
            &file,
            "--time-scale",
            "1000",
            "--out",
            dir.path().join("out").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("a-wrong-key"),
        "the key never appears: {stderr}"
    );
    assert_eq!(sandbox.ledger("the-right-key")["charged"].as_u64(), Some(0));

    let out = sonicflow().args(["run", &file]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sandbox"));
}

#[test]
fn ctrl_c_stops_new_submits_and_exits_130_with_results() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("version: 1\nname: long\nmatrix:\n  key: id\n  rows:\n");
    for i in 0..20 {
        text.push_str(&format!("    - {{ id: r{i} }}\n"));
    }
    text.push_str("steps:\n  song:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: calm }\n");
    let file = manifest(dir.path(), &text);
    let out_dir = dir.path().join("out");
    let mut child = sonicflow()
        .args([
            "run",
            &file,
            "--sandbox",
            "--time-scale",
            "20",
            "--log-format",
            "json",
            "--out",
        ])
        .arg(&out_dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the run is under way (the first task was accepted), not after a fixed time.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let started = line.contains("\"event\":\"submitted\"");
        log.push(line);
        if started {
            break;
        }
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    log.extend(lines.map_while(Result::ok));
    let status = child.wait().unwrap();
    let stderr = log.join("\n");
    assert_eq!(status.code(), Some(130), "{stderr}");
    let out = std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: stderr.into_bytes(),
    };
    let s = summary(&out.stderr);
    assert_eq!(s["interrupted"], true);
    assert!(
        s["skipped"].as_u64().unwrap() > 0,
        "rows not yet submitted are skipped: {s}"
    );
    let r = results(&out_dir);
    assert_eq!(r["status"], "interrupted");
}

/// Keeps what a run decides (statuses, credits, attempts, output shapes,
/// file names' places) and masks what varies between runs (ids, times, URLs, hashes).
fn stable(value: &Value) -> Value {
    const MASKED: &[&str] = &[
        "started_at",
        "finished_at",
        "duration_ms",
        "task_id",
        "request_hash",
        "sha256",
        "url",
        "file",
        "bytes",
        "queued_at",
        "accepted_at",
        "wall_ms",
        "base_url",
        "clip_id",
        "clip",
    ];
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if MASKED.contains(&k.as_str()) && !v.is_null() {
                        Value::String(format!("[{k}]"))
                    } else if k == "outputs" {
                        shape(v)
                    } else {
                        stable(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(stable).collect()),
        other => other.clone(),
    }
}

/// The keys of an outputs object, recursively, with values reduced to their type.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::String(_) => Value::String("string".into()),
        Value::Number(_) => Value::String("number".into()),
        Value::Bool(_) => Value::String("bool".into()),
        Value::Null => Value::Null,
    }
}

#[test]
fn results_of_a_sandbox_run_are_pinned() {
    let dir = tempfile::tempdir().unwrap();
    // Half the sandbox's submit pace, so that a 429 from timing jitter on a
    // loaded machine never adds an attempt to the pinned results; one task
    // at a time, so that the balance reads see each charge alone whatever
    // the machine's load (two submits in one window would be pinned as a
    // shared window on a quiet machine and as two on a busy one).
    let out = sonicflow()
        .args([
            "run",
            "pipelines/cover-and-stems.yaml",
            "--sandbox",
            "--download",
        ])
        .args([
            "--submits-per-minute",
            "10",
            "--max-in-flight",
            "1",
            "--log-format",
            "json",
            "--out",
        ])
        .arg(dir.path())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    insta::assert_json_snapshot!("results-cover-and-stems", stable(&results(dir.path())));
}

#[test]
fn a_pace_flag_of_zero_is_refused_as_its_limits_key_is_and_nothing_is_sent() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000"]);
    let dir = tempfile::tempdir().unwrap();
    let pace = [
        ["--max-in-flight", "0"],
        ["--submits-per-minute", "0"],
        ["--quick-calls-per-minute", "0"],
        ["--polls-per-second", "0"],
    ];
    let mut every: Vec<&str> = Vec::new();
    for (i, flag) in pace.iter().enumerate() {
        every.extend(flag);
        let out_dir = dir.path().join(format!("out-{i}"));
        let state = dir.path().join(format!("state-{i}"));
        let mut args = vec!["pipelines/analyse.yaml", "--time-scale", "1000"];
        args.extend(flag);
        args.extend(["--out", out_dir.to_str().unwrap()]);
        args.extend(["--state-dir", state.to_str().unwrap()]);
        let out = sandbox.run("pace", &args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{flag:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out_dir.exists() && !state.exists(), "{flag:?}");
    }
    assert_eq!(sandbox.ledger("pace")["charged"].as_u64(), Some(0));

    let mut args = vec!["run", "pipelines/analyse.yaml", "--sandbox"];
    args.extend(&every);
    let out = sonicflow().args(&args).output().unwrap();
    insta::assert_snapshot!("pace-flags-zero", common::render(&args, &out));
}
