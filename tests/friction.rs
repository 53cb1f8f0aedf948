//! The manifest's small conveniences through the binary: rows from
//! `--matrix FILE` or from an input, instances named by their item or a
//! `key:`, and a resume that reads the matrix file its run began with —
//! runs checked on the sandbox's ledger.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{SandboxProcess, render, run, sonicflow};
use serde_json::Value;
use sonicflow::prices::PriceTable;

const ROWS: &str = "tests/fixtures/friction/rows-from-input.yaml";

fn price(operation: &str) -> u64 {
    PriceTable::builtin().price(operation).unwrap()
}

fn results(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

/// `(step, instance)` of every instance in `results.json`, in its order.
fn instances(out: &Path) -> Vec<(String, String)> {
    results(out)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let name = s["instance"].as_str().unwrap_or("-").to_owned();
            (s["step"].as_str().unwrap().to_owned(), name)
        })
        .collect()
}

fn header(out: &Path) -> Value {
    let journal = std::fs::read_to_string(out.join("journal.jsonl")).unwrap();
    serde_json::from_str(journal.lines().next().unwrap()).unwrap()
}

fn show(output: &Output) -> String {
    render(&["…"], output)
}

#[test]
fn validate_and_plan_read_rows_from_matrix_or_from_an_input() {
    let cases = [
        (
            "validate-matrix-flag",
            vec![
                "validate",
                ROWS,
                "--matrix",
                "tests/fixtures/friction/other.csv",
            ],
        ),
        (
            "validate-matrix-from-input",
            vec!["validate", ROWS, "--input", "rows=other.csv"],
        ),
        (
            "validate-matrix-flag-bad-row",
            vec![
                "validate",
                ROWS,
                "--matrix",
                "tests/fixtures/friction/bad.csv",
            ],
        ),
        (
            "validate-matrix-flag-without-matrix",
            vec![
                "validate",
                "tests/fixtures/friction/no-matrix.yaml",
                "--matrix",
                "tests/fixtures/friction/other.csv",
            ],
        ),
        (
            "validate-matrix-input-missing-file",
            vec!["validate", ROWS, "--input", "rows=missing.csv"],
        ),
        (
            "plan-matrix-flag",
            vec![
                "plan",
                ROWS,
                "--matrix",
                "tests/fixtures/friction/other.csv",
            ],
        ),
        ("plan-matrix-default-input", vec!["plan", ROWS]),
    ];
    for (name, args) in cases {
        insta::assert_snapshot!(name, run(&args));
    }
}

#[test]
fn plan_names_the_instances_of_a_literal_list_as_the_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("styles.yaml");
    std::fs::write(&file, STYLES).unwrap();
    let out = sonicflow()
        .args(["plan", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&Value> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["names"])
        .collect();
    let styles = serde_json::json!(["jazz-ballad", "lo-fi", "jazz-ballad-2"]);
    assert_eq!(names[0], &styles, "{plan}");
    assert_eq!(names[1], &styles, "a step reading them is named alike");
    assert_eq!(
        names[2],
        &Value::Null,
        "a fan-out over clips is named at run time"
    );
}

/// Three covers of a literal list (one style twice), a WAV of each, and the
/// stems of every clip named by its `clip_id`; `x-*` keys, a merge key and
/// `needs` as a string on the way.
const STYLES: &str = "version: 1
name: styles
x-common: &common
  mv: sonic-v5
  custom_mode: false
poll: { initial_delay: 20s, interval: 15s, timeout: 1h }
steps:
  cover:
    action: create
    x-note: one song per style
    for_each: [jazz ballad, Lo-Fi, jazz ballad]
    with:
      <<: *common
      gpt_description_prompt: a song in ${{ item }}
  wav:
    action: wav
    needs: cover
    with: { clip: '${{ steps.cover.outputs.clips[0].clip_id }}' }
  split:
    action: stems_basic
    for_each: ${{ steps.cover.outputs.clips }}
    key: clip_id
    with: { clip: '${{ item.clip_id }}' }
";

#[test]
fn instances_are_named_by_their_item_and_key_in_results_folders_and_journal() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("styles.yaml");
    std::fs::write(&file, STYLES).unwrap();
    let out = dir.path().join("run");
    let ran = sandbox.run(
        "named",
        &[
            file.to_str().unwrap(),
            "--time-scale",
            "1000",
            "--download",
            "--out",
            out.to_str().unwrap(),
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
        ],
    );
    assert_eq!(ran.status.code(), Some(0), "{}", show(&ran));
    let names = instances(&out);
    let styles = ["jazz-ballad", "lo-fi", "jazz-ballad-2"];
    for step in ["cover", "wav"] {
        let got: Vec<&str> = names
            .iter()
            .filter(|(s, _)| s == step)
            .map(|(_, n)| n.as_str())
            .collect();
        assert_eq!(got, styles, "{step}: {names:?}");
    }
    let results = results(&out);
    let clips: Vec<String> = results["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "cover")
        .flat_map(|s| {
            let style = s["instance"].as_str().unwrap().to_owned();
            s["outputs"]["clips"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |c| format!("{style}.{}", c["clip_id"].as_str().unwrap()))
        })
        .collect();
    let mut splits: Vec<String> = names
        .iter()
        .filter(|(s, _)| s == "split")
        .map(|(_, n)| n.clone())
        .collect();
    splits.sort();
    let mut want = clips.clone();
    want.sort();
    assert_eq!(splits, want, "each split is named by its style and clip id");
    for step in results["steps"].as_array().unwrap() {
        let folder = format!(
            "{}/{}/",
            step["step"].as_str().unwrap(),
            step["instance"].as_str().unwrap()
        );
        for f in step["files"].as_array().unwrap() {
            let path = f["path"].as_str().unwrap();
            assert!(path.starts_with(&folder), "{path} is under {folder}");
            assert!(out.join(path).is_file(), "{path}");
        }
    }
    let journal = std::fs::read_to_string(out.join("journal.jsonl")).unwrap();
    assert!(
        journal.contains("\"inst\":\"cover[jazz-ballad-2]\""),
        "{journal}"
    );
    let ledger = sandbox.ledger("named");
    let expected = 3 * price("create_music") + 3 * price("wav") + 6 * price("stems_basic");
    assert_eq!(ledger["charged"].as_u64(), Some(expected), "{ledger}");
}

#[test]
fn a_run_started_with_matrix_resumes_with_the_same_file_and_pays_once() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.yaml");
    std::fs::copy(ROWS, &file).unwrap();
    std::fs::copy(
        "tests/fixtures/friction/rows.csv",
        dir.path().join("rows.csv"),
    )
    .unwrap();
    let rows = dir.path().join("picked.csv");
    std::fs::copy("tests/fixtures/friction/other.csv", &rows).unwrap();
    let out = dir.path().join("run");
    let command = |crash: Option<&str>| {
        let mut cmd = sonicflow();
        cmd.env("MUSICAPI_BASE_URL", &sandbox.url)
            .env("MUSICAPI_KEY", "resume")
            .env_remove("SONICFLOW_CRASH_AT")
            .args(["run", "--time-scale", "1000"]);
        if let Some(point) = crash {
            cmd.env("SONICFLOW_CRASH_AT", point);
        }
        cmd
    };
    let crashed = command(Some("after:succeeded:1"))
        .arg(&file)
        .arg("--matrix")
        .arg(&rows)
        .arg("--out")
        .arg(&out)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "{}", show(&crashed));
    let h = header(&out);
    assert_eq!(h["matrix"].as_str(), Some(rows.to_str().unwrap()), "{h}");
    assert!(h["matrix_sha256"].is_string(), "{h}");

    let resumed = command(None).arg("--resume").arg(&out).output().unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", show(&resumed));
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(!stderr.contains("changed since the run began"), "{stderr}");
    let keys: Vec<String> = results(&out)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["row_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys,
        ["sea", "wind", "snow"],
        "the rows of `--matrix`, not of `rows.csv`"
    );
    let ledger = sandbox.ledger("resume");
    assert_eq!(
        ledger["charged"].as_u64(),
        Some(3 * price("create_music")),
        "{ledger}"
    );

    // A matrix file changed under a resume is named, as a changed manifest is.
    std::fs::write(
        &rows,
        "id,idea\nsea,a song about the open sea\nwind,a song about wind\nsnow,a song about snow\n",
    )
    .unwrap();
    let again = command(None).arg("--resume").arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("the matrix file") && stderr.contains("changed since the run began"),
        "{}",
        show(&again)
    );
}

#[test]
fn run_reads_its_rows_from_matrix_and_keeps_the_file_in_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let ran = sonicflow()
        .args([
            "run",
            ROWS,
            "--sandbox",
            "--matrix",
            "tests/fixtures/friction/other.csv",
            "--out",
        ])
        .arg(&out)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(ran.status.code(), Some(0), "{}", show(&ran));
    let results = results(&out);
    let rows: Vec<Value> = results["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::json!({"step": s["step"], "instance": s["instance"], "status": s["status"]}))
        .collect();
    let h = header(&out);
    let recorded = h["matrix"].as_str().unwrap();
    assert!(
        Path::new(recorded).is_absolute()
            && recorded.ends_with("tests/fixtures/friction/other.csv"),
        "{recorded}"
    );
    insta::assert_json_snapshot!(
        "run-matrix-flag",
        serde_json::json!({
            "instances": rows,
            "credits_charged": results["totals"]["credits_charged"],
            "matrix_sha256": h["matrix_sha256"],
        })
    );
    assert_eq!(
        results["totals"]["credits_charged"].as_u64(),
        Some(3 * price("create_music"))
    );
}
