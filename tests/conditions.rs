//! Step conditions (`if:`) through the binary: the plan leaves out rows
//! whose condition is false before the run and counts the rest "at most";
//! runs on the in-process sandbox charge the plan, or stay within its
//! maximum, and results show what a condition skipped.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::path::Path;

use common::{run, sonicflow};
use serde_json::Value;

const KNOWN: &str = "tests/fixtures/lang/stems-if-vocals.yaml";
const AT_RUN_TIME: &str = "tests/fixtures/lang/wav-if-aligned.yaml";

fn plan_json(args: &[&str]) -> Value {
    let out = sonicflow()
        .args(["plan", "--json"])
        .args(args)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn price(operation: &str) -> u64 {
    sonicflow::prices::PriceTable::builtin()
        .price(operation)
        .unwrap()
}

/// Runs `file` on the in-process sandbox; the finished summary and results.json.
fn sandbox_run(file: &str, args: &[&str]) -> (Value, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = sonicflow()
        .args(["run", file, "--sandbox", "--log-format", "json", "--out"])
        .arg(dir.path())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "finished")
        .map(|e| e["summary"].clone())
        .unwrap();
    (summary, results(dir.path()))
}

fn results(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

fn step<'a>(results: &'a Value, name: &str) -> &'a Value {
    results["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            format!(
                "{}[{}]",
                s["step"].as_str().unwrap(),
                s["instance"].as_str().unwrap()
            ) == name
        })
        .unwrap_or_else(|| panic!("no `{name}` in {results}"))
}

#[test]
fn a_condition_known_before_the_run_leaves_its_rows_out_of_the_plan() {
    insta::assert_snapshot!("plan-condition-known", run(&["plan", KNOWN]));
    insta::assert_snapshot!(
        "plan-condition-known-input-false",
        run(&["plan", KNOWN, "--input", "export=false"])
    );
    let v = plan_json(&[KNOWN]);
    let skipped: Vec<String> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["condition"] == "never")
        .map(|s| {
            format!(
                "{}[{}]",
                s["id"].as_str().unwrap(),
                s["instance"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(skipped, ["vocals[rain]"]);
    assert_eq!(v.get("total_at_most"), None, "every condition is known");
    assert_eq!(
        v["total_credits"].as_u64(),
        Some(2 * price("create_music") + price("stems_full") + 2 * price("wav"))
    );
}

#[test]
fn a_condition_known_only_at_run_time_makes_the_plan_at_most_and_the_budget_reserves_it() {
    insta::assert_snapshot!("plan-condition-at-run-time", run(&["plan", AT_RUN_TIME]));
    let v = plan_json(&[AT_RUN_TIME]);
    assert_eq!(v["total_at_most"], true);
    let most = 2 * (price("create_music") + price("aligned_lyrics") + price("wav"));
    assert_eq!(v["total_credits"].as_u64(), Some(most));
    let wav: Vec<&Value> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["id"] == "wav")
        .collect();
    assert!(
        wav.iter()
            .all(|s| s["calls_at_most"] == true && s["condition"] == "maybe")
    );
    // The cap is checked against the maximum, not against what is certain.
    let below = (most - 1).to_string();
    let out = run(&["plan", AT_RUN_TIME, "--max-credits", &below]);
    assert!(out.contains("exit: 3\n"), "{out}");
    let at = most.to_string();
    assert!(run(&["plan", AT_RUN_TIME, "--max-credits", &at]).contains("exit: 0\n"));
}

#[test]
fn a_run_charges_the_plan_when_its_conditions_are_known_and_results_show_the_skips() {
    let planned = plan_json(&[KNOWN])["total_credits"].as_u64().unwrap();
    let (summary, results) = sandbox_run(KNOWN, &[]);
    assert_eq!(summary["credits_charged"].as_u64(), Some(planned));
    assert_eq!(
        (summary["failed"].as_u64(), summary["skipped"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(summary["skipped_condition"], 1);
    assert_eq!(results["status"], "succeeded");
    let vocals = step(&results, "vocals[rain]");
    assert_eq!(vocals["status"], "skipped_condition");
    assert_eq!(
        vocals["skip_reason"],
        "its condition `matrix.vocals` is false"
    );
    assert_eq!(vocals["credits"]["charged"], 0);
    assert_eq!(step(&results, "vocals[drive]")["status"], "succeeded");
    assert_eq!(results["totals"]["skipped_condition"], 1);

    let planned = plan_json(&[KNOWN, "--input", "export=false"])["total_credits"]
        .as_u64()
        .unwrap();
    let (summary, results) = sandbox_run(KNOWN, &["--input", "export=false"]);
    assert_eq!(summary["credits_charged"].as_u64(), Some(planned));
    assert_eq!(step(&results, "wav[drive]")["status"], "skipped_condition");
}

#[test]
fn a_run_whose_condition_is_known_only_at_run_time_stays_within_the_plan_s_maximum() {
    let most = plan_json(&[AT_RUN_TIME])["total_credits"].as_u64().unwrap();
    let (summary, results) = sandbox_run(AT_RUN_TIME, &[]);
    let charged = summary["credits_charged"].as_u64().unwrap();
    assert!(charged <= most, "{charged} > {most}");
    // The sandbox lines every word up, so each condition holds.
    assert_eq!(charged, most);
    assert_eq!(step(&results, "wav[rain]")["status"], "succeeded");
}

/// A run killed after its first results and resumed decides the same
/// conditions (they read only inputs and recorded outputs): the same
/// instances end skipped (condition), and the ledger shows each request
/// charged once, as much as an uninterrupted run pays.
#[test]
fn a_run_killed_and_resumed_decides_the_same_conditions_and_pays_once() {
    let sandbox = common::SandboxProcess::start(&["--time-scale", "1000"]);
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("out"), dir.path().join("state"));
    let command = |crash: Option<&str>| {
        let mut cmd = sonicflow();
        cmd.arg("run")
            .env("MUSICAPI_BASE_URL", &sandbox.url)
            .env("MUSICAPI_KEY", "resume")
            .env_remove("SONICFLOW_CRASH_AT");
        if let Some(point) = crash {
            cmd.env("SONICFLOW_CRASH_AT", point);
        }
        cmd
    };
    // One request at a time, so the kill leaves nothing in doubt.
    let first = command(Some("after:succeeded:2"))
        .args(["--max-in-flight", "1"])
        .args([
            KNOWN,
            "--time-scale",
            "1000",
            "--log-format",
            "json",
            "--out",
        ])
        .arg(&out)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_ne!(first.status.code(), Some(0), "the first process was killed");
    let resumed = command(None)
        .args(["--resume", out.to_str().unwrap()])
        .args(["--time-scale", "1000", "--log-format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let planned = plan_json(&[KNOWN])["total_credits"].as_u64().unwrap();
    assert_eq!(sandbox.ledger("resume")["charged"].as_u64(), Some(planned));
    let results = results(&out);
    assert_eq!(results["status"], "succeeded");
    assert_eq!(
        step(&results, "vocals[rain]")["status"],
        "skipped_condition"
    );
    assert_eq!(step(&results, "vocals[drive]")["status"], "succeeded");
    assert_eq!(
        results["totals"]["credits_planned"].as_u64(),
        Some(planned),
        "a skipped condition plans nothing"
    );
}

/// A matrix run ending in one step that runs once per pipeline and reads
/// every row with `[*]`: it is planned once, named by its step id alone,
/// sent once with the rows' clips in row order, and charged as planned.
#[test]
fn a_per_pipeline_step_collects_every_row_and_runs_once() {
    const FILE: &str = "tests/fixtures/lang/mashup-rows.yaml";
    let plan = plan_json(&[FILE]);
    let both: Vec<&Value> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["id"] == "both")
        .collect();
    assert_eq!(both.len(), 1, "one row for the whole run: {both:?}");
    assert_eq!(both[0]["instance"], Value::Null);
    let planned = plan["total_credits"].as_u64().unwrap();
    assert_eq!(
        planned,
        2 * price("create_music") + price("mashup") + 2 * price("wav")
    );
    let dir = tempfile::tempdir().unwrap();
    let out = sonicflow()
        .args(["run", FILE, "--sandbox", "--log-format", "json", "--out"])
        .arg(dir.path())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let summary = &events.iter().find(|e| e["event"] == "finished").unwrap()["summary"];
    assert_eq!(summary["credits_charged"].as_u64(), Some(planned));
    let song_clip = |row: &str| {
        events
            .iter()
            .find(|e| {
                e["event"] == "succeeded"
                    && e["id"]["step_id"] == "song"
                    && e["id"]["row_key"] == row
            })
            .map(|e| e["outputs"]["value"]["clip_id"].clone())
            .unwrap()
    };
    let sent: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "submitting" && e["id"]["step_id"] == "both")
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["id"]["row_key"], Value::Null);
    assert_eq!(
        sent[0]["fields"]["clips"],
        Value::Array(vec![song_clip("rain"), song_clip("drive")])
    );
    let results = results(dir.path());
    let both = results["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "both")
        .unwrap();
    assert_eq!(
        (&both["status"], &both["instance"]),
        (&Value::from("succeeded"), &Value::Null)
    );
}
