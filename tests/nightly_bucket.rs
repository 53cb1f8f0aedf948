//! The nightly batch with its state and its results in a bucket (moto's S3
//! on loopback): killed mid-run on one machine and resumed from a fresh
//! folder on another, it ends with the results and the ledger of a run that
//! was never interrupted. The machine dies just after the third song was
//! accepted: every song is paid and under way, and no send is in doubt (one
//! in doubt is never resent, by design, and would end the resumed night
//! differently; `tests/crash.rs` covers that).
#![expect(
    clippy::expect_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use common::s3::S3Server;
use common::{SandboxProcess, sonicflow};
use serde_json::Value;
use sonicflow::store::Bucket;

/// A machine of its own: a folder with a copy of the repository's pipelines.
fn machine(root: &Path, name: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    let target = dir.join("pipelines");
    std::fs::create_dir_all(&target).expect("a machine folder");
    let pipelines = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    for file in ["nightly.yaml", "nightly-prompts.csv"] {
        std::fs::copy(pipelines.join(file), target.join(file)).expect("a copy of the pipeline");
    }
    dir
}

fn run(
    dir: &Path,
    s3: &S3Server,
    sandbox: &SandboxProcess,
    key: &str,
    args: &[&str],
    crash: Option<&str>,
) -> Output {
    let mut cmd: Command = sonicflow();
    cmd.current_dir(dir)
        .arg("run")
        .args(args)
        .env("MUSICAPI_BASE_URL", &sandbox.url)
        .env("MUSICAPI_KEY", key)
        .env("SONICFLOW_TIME_SCALE", "1000")
        .env_remove("SONICFLOW_CRASH_AT");
    if let Some(point) = crash {
        cmd.env("SONICFLOW_CRASH_AT", point);
    }
    s3.env(&mut cmd);
    cmd.output().expect("sonicflow runs")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The bucket as the tests reach it.
fn bucket(s3: &S3Server, url: &str) -> Bucket {
    s3.open(url)
}

/// What a run's published results say, without what differs from run to
/// run (times, ids, paths).
fn published(s3: &S3Server, out: &str) -> (BTreeMap<String, String>, Value, Vec<String>) {
    let b = bucket(s3, out);
    let object = b
        .get("results.json", 64 << 20)
        .expect("the bucket answers")
        .expect("results.json was published");
    let results: Value = serde_json::from_slice(&object.bytes).expect("results.json is JSON");
    assert!(
        b.get("report.html", 64 << 20)
            .expect("the bucket answers")
            .is_some(),
        "report.html was published"
    );
    let steps = results["steps"]
        .as_array()
        .expect("the results list steps")
        .iter()
        .map(|s| {
            (
                s["instance"]
                    .as_str()
                    .or(s["step"].as_str())
                    .unwrap_or("?")
                    .to_owned(),
                s["status"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    let totals = results["totals"].clone();
    let mut files: Vec<String> = b
        .list("")
        .expect("the bucket lists")
        .into_iter()
        .filter(|f| !f.starts_with('.') && f != "results.json" && f != "report.html")
        .collect();
    files.sort();
    (steps, totals, files)
}

/// Charges of `key`: per request body, how many times it was charged; and the sum.
fn charges(sandbox: &SandboxProcess, key: &str) -> (BTreeMap<String, usize>, u64) {
    let ledger = sandbox.ledger(key);
    let mut by_operation: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    let mut bodies: BTreeMap<String, usize> = BTreeMap::new();
    for e in ledger["entries"]
        .as_array()
        .expect("the ledger lists entries")
    {
        if e["kind"] != "charge" {
            continue;
        }
        *by_operation
            .entry(e["operation"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
        *bodies.entry(e["body_hash"].to_string()).or_default() += 1;
        total += e["credits"].as_u64().unwrap_or(0);
    }
    let repeated: Vec<_> = bodies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "a request was charged twice: {repeated:?}\n{ledger:#}"
    );
    (by_operation, total)
}

#[test]
fn a_nightly_run_killed_and_resumed_on_a_fresh_machine_ends_as_an_uninterrupted_one() {
    let Some(s3) = S3Server::start() else { return };
    let url = s3.bucket("nightly");
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", "0"]);
    let root = tempfile::tempdir().expect("a temporary folder");
    let file = "pipelines/nightly.yaml";

    // The night that went well.
    let calm = machine(root.path(), "calm");
    let (state_a, out_a) = (format!("{url}/state-a"), format!("{url}/out-a"));
    let args_a = [
        file,
        "--state",
        &state_a,
        "--out",
        &out_a,
        "--download",
        "--log-format",
        "json",
    ];
    let output = run(&calm, &s3, &sandbox, "sk-calm", &args_a, None);
    assert!(output.status.success(), "{}", text(&output));

    // The night whose machine died after the third song was accepted…
    let first = machine(root.path(), "first");
    let (state_b, out_b) = (format!("{url}/state-b"), format!("{url}/out-b"));
    let args_b = [
        file,
        "--state",
        &state_b,
        "--out",
        &out_b,
        "--download",
        "--log-format",
        "json",
    ];
    let output = run(
        &first,
        &s3,
        &sandbox,
        "sk-killed",
        &args_b,
        Some("after:accepted:3"),
    );
    assert!(!output.status.success(), "the run died: {}", text(&output));
    assert!(
        bucket(&s3, &out_b)
            .get("results.json", 64 << 20)
            .expect("the bucket answers")
            .is_none(),
        "nothing was published by the run that died"
    );
    // …and the next machine, which has only the manifest and the bucket.
    let second = machine(root.path(), "second");
    assert!(!second.join("pipelines/.sonicflow").exists());
    let resume = [
        file,
        "--state",
        &state_b,
        "--resume",
        "last",
        "--log-format",
        "json",
    ];
    let output = run(&second, &s3, &sandbox, "sk-killed", &resume, None);
    assert!(output.status.success(), "{}", text(&output));

    let (steps_a, totals_a, files_a) = published(&s3, &out_a);
    let (steps_b, totals_b, files_b) = published(&s3, &out_b);
    assert_eq!(
        steps_b, steps_a,
        "the same instances with the same outcomes"
    );
    assert!(steps_a.values().all(|s| s == "succeeded"), "{steps_a:#?}");
    assert_eq!(files_b.len(), files_a.len(), "{files_a:#?}\n{files_b:#?}");
    for key in [
        "instances",
        "succeeded",
        "failed",
        "credits_charged",
        "credits_refunded",
    ] {
        assert_eq!(
            totals_b[key], totals_a[key],
            "totals.{key}: {totals_a:#}\n{totals_b:#}"
        );
    }
    let (ops_a, credits_a) = charges(&sandbox, "sk-calm");
    let (ops_b, credits_b) = charges(&sandbox, "sk-killed");
    assert_eq!(ops_b, ops_a, "the same requests charged");
    assert_eq!(credits_b, credits_a, "the same credits");
    assert_eq!(Some(credits_a), totals_a["credits_charged"].as_u64());
}
