//! What a run may spend and what every view says it spent, end to end
//! through the binary against a standalone sandbox, checked on the
//! sandbox's ledger: the cap refuses a plan over it, `--allow-partial`
//! never lets the ledger pass it (across a resume of an edited manifest),
//! the summary, `results.json`, `status` and the journal agree with the
//! ledger after sends in doubt and local failures, and a paid WAV whose
//! file could not be saved is never paid for again.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{SandboxProcess, sonicflow};
use serde_json::Value;

const ROWS: &str = "version: 1\nname: rows\ndefaults: { mv: sonic-v5 }\npoll: { initial_delay: 20s, interval: 15s, timeout: 10m }\nmatrix:\n  key: id\n  rows:\n    - { id: rain, mood: rainy }\n    - { id: sun, mood: sunny }\n    - { id: snow, mood: snowy }\nsteps:\n  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: 'a MOOD day' }\n";

/// Two independent songs, each clip exported as WAV and saved.
const WAVS: &str = "version: 1\nname: wavs\ndefaults: { mv: sonic-v5 }\npoll: { initial_delay: 20s, interval: 15s, timeout: 10m }\nartifacts: { wav: true }\nmatrix:\n  key: id\n  rows:\n    - { id: a, idea: calm piano }\n    - { id: b, idea: upbeat synth }\nsteps:\n  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: '${{ matrix.idea }}' }\n  wav:\n    action: wav\n    for_each: ${{ steps.song.outputs.clips }}\n    with: { clip: '${{ item.clip_id }}' }\n";

/// Spacing of paid submits in the sandbox, well under the runner's own.
const SPACING: &str = "1";

fn sandbox() -> SandboxProcess {
    SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", SPACING])
}

/// `(charged, refunded)` of `key` on the ledger.
fn ledger(sandbox: &SandboxProcess, key: &str) -> (u64, u64) {
    let l = sandbox.ledger(key);
    (
        l["charged"].as_u64().unwrap(),
        l["refunded"].as_u64().unwrap(),
    )
}

/// Ledger entries of `key` charging `operation`.
fn charges(sandbox: &SandboxProcess, key: &str, operation: &str) -> usize {
    sandbox.ledger(key)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "charge" && e["operation"] == operation)
        .count()
}

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn run(sandbox: &SandboxProcess, key: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--time-scale", "1000"]);
    sandbox.run(key, &all)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn results(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

fn status(dir: &Path) -> (Option<i32>, Value) {
    let out = sonicflow()
        .args(["status", "--json", dir.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

/// The credits of the journal's last `finished` line.
fn journal_credits(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["type"] == "finished")
        .unwrap()["credits"]
        .clone()
}

/// `[charged, refunded, in doubt, net]` as results.json's totals say them.
fn totals(results: &Value) -> [u64; 4] {
    let t = &results["totals"];
    ["charged", "refunded", "in_doubt", "net"].map(|k| t[format!("credits_{k}")].as_u64().unwrap())
}

#[test]
fn a_cap_below_the_plan_refuses_with_nothing_charged() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), &ROWS.replace("MOOD", "${{ matrix.mood }}"));
    let run_dir = dir.path().join("run");
    let out = run(
        &sandbox,
        "refuse",
        &[
            &file,
            "--max-credits",
            "40",
            "--out",
            run_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(ledger(&sandbox, "refuse"), (0, 0), "nothing was sent");
    assert!(
        !run_dir.join("journal.jsonl").exists(),
        "no run was started"
    );
    let text = stderr(&out).replace(&file, "[FILE]");
    insta::assert_snapshot!("refused-over-budget", text);
}

#[test]
fn a_partial_run_never_passes_the_cap_across_a_resume_of_an_edited_manifest() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), &ROWS.replace("MOOD", "${{ matrix.mood }}"));
    let run_dir = dir.path().join("run");
    let run_arg = run_dir.to_str().unwrap();
    let out = run(
        &sandbox,
        "partial",
        &[
            &file,
            "--max-credits",
            "30",
            "--allow-partial",
            "--out",
            run_arg,
        ],
    );
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert_eq!(ledger(&sandbox, "partial"), (20, 0));
    // The hint names the cap that lets the resume finish: a plain resume keeps 30.
    assert!(
        text.contains(&format!(
            "resume with: sonicflow run --resume {run_arg} --max-credits 60"
        )),
        "{text}"
    );
    let (code, s) = status(&run_dir);
    assert_eq!(code, Some(3), "{s:#}");
    assert_eq!(s["state"], "budget");

    // Every row's request changes: the earlier 20 still count against the cap.
    std::fs::write(&file, ROWS.replace("MOOD", "${{ matrix.mood }} evening")).unwrap();
    let out = run(&sandbox, "partial", &["--resume", run_arg]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(ledger(&sandbox, "partial"), (20, 0), "the cap holds");
    let out = run(
        &sandbox,
        "partial",
        &["--resume", run_arg, "--max-credits", "60"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        ledger(&sandbox, "partial"),
        (60, 0),
        "two of three new songs fit"
    );
    let r = results(&run_dir);
    assert_eq!(totals(&r), [60, 0, 0, 60], "{:#}", r["totals"]);
    let (_, s) = status(&run_dir);
    assert_eq!(
        (s["credits_charged"].as_u64(), s["credits_net"].as_u64()),
        (Some(60), Some(60))
    );
}

#[test]
fn status_of_a_run_stopped_by_the_cap_names_the_flag_its_resume_needs() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), &ROWS.replace("MOOD", "${{ matrix.mood }}"));
    let run_dir = dir.path().join("run");
    let run_arg = run_dir.to_str().unwrap();
    let out = run(
        &sandbox,
        "hint",
        &[
            &file,
            "--max-credits",
            "30",
            "--allow-partial",
            "--out",
            run_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // The run's own hint names the cap that finishes it; `status` says the same.
    let hint = stderr(&out);
    let needed = hint
        .split("--max-credits ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no cap in the run's hint: {hint}"))
        .to_owned();
    assert!(needed.parse::<u64>().is_ok_and(|n| n > 30), "{hint}");
    let out = sonicflow().args(["status", run_arg]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    // A resume keeps the cap of 30, so a hint without a higher one stops again at once.
    assert!(
        text.contains(&format!(
            "resume with: sonicflow run --resume {run_arg} --max-credits {needed}\n"
        )),
        "{text}"
    );
}

#[test]
fn every_view_agrees_with_the_ledger_after_a_send_in_doubt_and_a_local_failure() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), WAVS);
    let run_dir = dir.path().join("run");
    let run_arg = run_dir.to_str().unwrap();
    // The WAVs cannot be saved: their folder's name is taken by a file.
    // A file where each row's folder would go: no WAV can be saved.
    std::fs::create_dir_all(&run_dir).unwrap();
    for row in ["a", "b"] {
        std::fs::write(run_dir.join(row), "").unwrap();
    }
    // One song is accepted; the other is charged and the process dies
    // before its answer is recorded: in doubt.
    let killed = sonicflow()
        .args(["run", &file, "--time-scale", "1000", "--out", run_arg])
        .env("MUSICAPI_BASE_URL", &sandbox.url)
        .env("MUSICAPI_KEY", "agree")
        .env("SONICFLOW_CRASH_AT", "before:accepted:2")
        .output()
        .unwrap();
    assert_ne!(killed.status.code(), Some(0));
    let out = run(
        &sandbox,
        "agree",
        &["--resume", run_arg, "--log-format", "json"],
    );
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    // One song in doubt, the other's two WAVs paid with no file.
    let (charged, refunded) = ledger(&sandbox, "agree");
    assert_eq!((charged, refunded), (20 + 20 + 2 * 2, 0));
    let expected = [charged, refunded, 20, charged - refunded];

    let r = results(&run_dir);
    assert_eq!(totals(&r), expected, "results.json: {:#}", r["totals"]);
    let per_step: u64 = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["credits"]["charged"].as_u64().unwrap())
        .sum();
    assert_eq!(per_step, charged, "the instances add up to the run");
    let summary = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "finished")
        .unwrap()["summary"]
        .clone();
    let s_totals = ["charged", "refunded", "in_doubt", "net"]
        .map(|k| summary[format!("credits_{k}")].as_u64().unwrap());
    assert_eq!(s_totals, expected, "summary: {summary:#}");
    let (code, s) = status(&run_dir);
    let st = ["charged", "refunded", "in_doubt", "net"]
        .map(|k| s[format!("credits_{k}")].as_u64().unwrap());
    assert_eq!(st, expected, "status: {s:#}");
    assert_eq!(code, Some(5), "a send in doubt: {s:#}");
    let j = journal_credits(&run_dir);
    let jt = ["charged", "refunded", "in_doubt", "net"].map(|k| j[k].as_u64().unwrap());
    assert_eq!(jt, expected, "journal: {j:#}");
}

#[test]
fn a_paid_wav_whose_file_could_not_be_saved_is_fetched_and_never_paid_again() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), WAVS);
    let run_dir = dir.path().join("run");
    let run_arg = run_dir.to_str().unwrap();
    // A file where each row's folder would go: no WAV can be saved.
    std::fs::create_dir_all(&run_dir).unwrap();
    for row in ["a", "b"] {
        std::fs::write(run_dir.join(row), "").unwrap();
    }
    let out = run(&sandbox, "wav", &[&file, "--out", run_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(charges(&sandbox, "wav", "wav"), 4);
    let (code, s) = status(&run_dir);
    assert_eq!(code, Some(1), "{s:#}");
    assert_eq!(s["unsaved"].as_array().unwrap().len(), 4, "{s:#}");
    assert_eq!(
        s["failures"].as_array().unwrap().len(),
        0,
        "nothing is sent again: {s:#}"
    );
    let plan = sonicflow()
        .args(["plan", "--json", &file])
        .env("MUSICAPI_BASE_URL", &sandbox.url)
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["to_spend"], 0, "the WAVs are paid for");

    // With the folder free, the resume fetches the files and sends nothing.
    for row in ["a", "b"] {
        std::fs::remove_file(run_dir.join(row)).unwrap();
    }
    let out = run(&sandbox, "wav", &["--resume", run_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(charges(&sandbox, "wav", "wav"), 4, "no WAV paid twice");
    let r = results(&run_dir);
    let saved: Vec<&Value> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "wav")
        .flat_map(|s| s["files"].as_array().unwrap())
        .collect();
    assert_eq!(saved.len(), 4, "{r:#}");
    for f in saved {
        assert!(run_dir.join(f["path"].as_str().unwrap()).is_file(), "{f}");
    }
    let (code, _) = status(&run_dir);
    assert_eq!(code, Some(0));
    // A later run takes the WAVs (and their files) too.
    let again = dir.path().join("again");
    let out = run(&sandbox, "wav", &[&file, "--out", again.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(charges(&sandbox, "wav", "wav"), 4);
}
