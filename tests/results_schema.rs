//! The committed results schema cannot drift from the code, and a results
//! file written from a realistic run is valid against it.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;
mod report_events;

use std::path::Path;

use sonicflow::engine::RunEvent;
use sonicflow::report::ResultsWriter;

const COMMITTED: &str = "schema/results.schema.json";

#[test]
fn committed_results_schema_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = sonicflow::commands::schema::results_schema_text();
    let committed = std::fs::read_to_string(root.join(COMMITTED)).unwrap_or_default();
    if generated != committed {
        let diff: Vec<String> = generated
            .lines()
            .zip(committed.lines().chain(std::iter::repeat("")))
            .enumerate()
            .filter(|(_, (g, c))| g != c)
            .take(10)
            .map(|(i, (g, c))| format!("line {}:\n  committed: {c}\n  generated: {g}", i + 1))
            .collect();
        panic!(
            "{COMMITTED} is out of date with the results types.\n{}\n\nregenerate it with:\n  cargo run -- schema --results > {COMMITTED}",
            diff.join("\n")
        );
    }
}

fn validator() -> jsonschema::Validator {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(COMMITTED)).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

fn errors(validator: &jsonschema::Validator, value: &serde_json::Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn results_files_written_during_and_after_a_run_are_valid() {
    let validator = validator();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    let mut writer =
        ResultsWriter::new(&path, &report_events::plan(), "00", report_events::clock())
            .with_interval(std::time::Duration::ZERO);
    for event in report_events::events() {
        writer.apply(&event).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let found = errors(&validator, &value);
        assert!(found.is_empty(), "after {event:?}: {found:#?}");
        if matches!(event, RunEvent::Finished { .. }) {
            assert_eq!(value["status"], "stopped");
        }
    }
}

#[test]
fn the_schema_rejects_what_no_writer_produces() {
    let validator = validator();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    let mut writer =
        ResultsWriter::new(&path, &report_events::plan(), "00", report_events::clock());
    for event in report_events::events() {
        writer.apply(&event).unwrap();
    }
    let good = serde_json::to_value(writer.results()).unwrap();
    assert!(errors(&validator, &good).is_empty());

    let mut bad_status = good.clone();
    bad_status["status"] = "done".into();
    assert!(!validator.is_valid(&bad_status), "unknown run status");

    let mut unknown_key = good.clone();
    unknown_key["steps"][0]["api_key"] = "sk-…".into();
    assert!(
        !validator.is_valid(&unknown_key),
        "no field beyond the declared ones"
    );

    let mut no_totals = good;
    no_totals.as_object_mut().unwrap().remove("totals");
    assert!(!validator.is_valid(&no_totals), "totals are required");
}

#[test]
fn the_binary_prints_the_committed_results_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = common::sonicflow()
        .args(["schema", "--results"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let committed = std::fs::read_to_string(root.join(COMMITTED)).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
    let pipeline = common::sonicflow().arg("schema").output().unwrap();
    let pipeline = String::from_utf8(pipeline.stdout).unwrap();
    assert!(
        pipeline.contains("\"steps\""),
        "without the flag: the pipeline schema"
    );
    assert_ne!(pipeline, committed);
}
