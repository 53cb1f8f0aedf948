//! `sonicflow prices` and the plan's age line, pinned with snapshots at a
//! fixed "today"; and `prices learn` reporting an operation seen at two
//! prices without averaging them.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::path::Path;

use common::{render, sonicflow};
use sonicflow::prices::PriceTable;

fn run_at(today: &str, args: &[&str]) -> String {
    let output = sonicflow()
        .env("SONICFLOW_TODAY", today)
        .args(args)
        .output()
        .unwrap();
    render(args, &output)
}

#[test]
fn prices_prints_the_built_in_table_with_its_date_age_and_earlier_reads() {
    insta::assert_snapshot!("prices-builtin", run_at("2026-12-01", &["prices"]));
}

#[test]
fn prices_of_a_manifest_shows_its_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "version: 1\nname: p\nprices: { wav: 3 }\nsteps:\n  song:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }\n",
    )
    .unwrap();
    let out = sonicflow()
        .args(["prices", file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(text.contains("overridden: wav"), "{text}");
    assert!(
        text.lines().any(|l| l.split_whitespace().eq(["wav", "3"])),
        "{text}"
    );
}

#[test]
fn the_plan_prints_its_tables_age_and_warns_once_it_is_stale() {
    let plan = ["plan", "pipelines/analyse.yaml"];
    let head = |text: String| text.lines().take(7).collect::<Vec<_>>().join("\n");
    insta::assert_snapshot!("plan-age-fresh", head(run_at("2026-12-01", &plan)));
    insta::assert_snapshot!("plan-age-stale", head(run_at("2027-03-01", &plan)));
    let json = sonicflow()
        .env("SONICFLOW_TODAY", "2027-03-01")
        .args(["plan", "pipelines/analyse.yaml", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["price_table"]["age_days"], 145);
    assert_eq!(json["price_table"]["stale"], true);
}

#[test]
fn a_today_that_is_not_a_date_is_named_and_the_clock_counts_instead() {
    let out = run_at("soon", &["prices"]);
    assert!(out.contains("exit: 0"), "{out}");
    assert!(
        out.contains("warning: `SONICFLOW_TODAY` is `soon`, not a date; write it as YYYY-MM-DD"),
        "{out}"
    );
    assert!(out.contains("price table age: "), "{out}");
}

/// A run folder whose journal holds one window charging `credits` for `song`.
fn run_dir(root: &Path, name: &str, credits: u64, started: &str) -> String {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let table = serde_json::to_value(PriceTable::builtin()).unwrap();
    let planned = PriceTable::builtin().price("create_music").unwrap();
    let header = serde_json::json!({
        "type": "run", "id": name, "pipeline": "p", "manifest": "/p.yaml", "manifest_sha256": "0",
        "price_version": "v", "tool_version": "0", "started_at": started, "price_table": table,
    });
    let window = serde_json::json!({
        "type": "observed", "seq": 1, "before": 1000, "after": 1000 - credits,
        "submits": [{ "inst": "song", "attempt": 1, "operation": "create_music", "planned": planned }],
    });
    std::fs::write(dir.join("journal.jsonl"), format!("{header}\n{window}\n")).unwrap();
    dir.to_str().unwrap().to_owned()
}

#[test]
fn learn_reports_an_operation_seen_at_two_prices_and_takes_the_higher() {
    let root = tempfile::tempdir().unwrap();
    let a = run_dir(root.path(), "a", 18, "2026-11-01T00:00:00.000Z");
    let b = run_dir(root.path(), "b", 25, "2026-11-02T00:00:00.000Z");
    let out = sonicflow()
        .args(["prices", "learn", &a, &b])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("create_music was charged different amounts: 18 (a: song) and 25 (b: song); the table takes 25"),
        "{stderr}"
    );
    let table = PriceTable::from_yaml(&String::from_utf8_lossy(&out.stdout), "learnt").unwrap();
    assert_eq!(table.price("create_music"), Some(25));
    assert_eq!(table.date, "2026-12-01");
    assert_eq!(
        table.price("wav"),
        PriceTable::builtin().price("wav"),
        "unobserved: kept"
    );
    assert!(
        table.source.contains("not observed keep their prices"),
        "{}",
        table.source
    );
}

#[test]
fn learn_writes_its_table_atomically_where_asked() {
    let root = tempfile::tempdir().unwrap();
    let a = run_dir(root.path(), "a", 20, "2026-11-01T00:00:00.000Z");
    let target = root.path().join("learnt.yaml");
    let out = sonicflow()
        .args(["prices", "learn", &a, "-o", target.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let table = PriceTable::from_yaml(&std::fs::read_to_string(&target).unwrap(), "t").unwrap();
    assert_eq!(table.price("create_music"), Some(20));
    assert!(!root.path().join("learnt.yaml.tmp").exists());
    let missing = root.path().join("nowhere").join("t.yaml");
    let out = sonicflow()
        .args(["prices", "learn", &a, "-o", missing.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write"));
}
