//! The GitHub Actions shard workflow of `docs/` run as written: each job's
//! `run:` steps, with the values CI would put in, executed by bash in a
//! fresh checkout of its own (as each runner is a machine of its own),
//! against moto's S3 on loopback for the bucket the workflow names and a
//! sandbox process for the service. Only what a runner would have differs:
//! the binary under test stands in for `cargo install`, and the endpoints
//! of the cloud and the service point at loopback.
#![expect(
    clippy::expect_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::SandboxProcess;
use common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use serde_yaml::Value;

const WORKFLOW: &str = include_str!("../docs/github-actions-shards.yml");
const KEY: &str = "sk-docs-shards";
const RUN_ID: &str = "9100001";

/// `text` with the `${{ … }}` expressions the workflow uses put in as CI
/// would; any other expression fails the test, so a new one is noticed.
fn substitute(text: &str, shard: Option<u64>) -> String {
    let mut out = text
        .replace("${{ secrets.MUSICAPI_KEY }}", KEY)
        .replace("${{ secrets.AWS_ACCESS_KEY_ID }}", ACCESS_KEY)
        .replace("${{ secrets.AWS_SECRET_ACCESS_KEY }}", SECRET_KEY);
    if let Some(k) = shard {
        out = out.replace("${{ matrix.shard }}", &k.to_string());
    }
    assert!(
        !out.contains("${{"),
        "an expression the test does not know: {out}"
    );
    out
}

fn env_of(value: &Value, shard: Option<u64>) -> Vec<(String, String)> {
    value["env"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                .map(|(k, v)| (k, substitute(&v, shard)))
                .collect()
        })
        .unwrap_or_default()
}

/// A fresh checkout: the repository's pipelines in a new folder.
fn checkout(into: &Path) {
    let pipelines = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let target = into.join("pipelines");
    std::fs::create_dir_all(&target).expect("a checkout folder");
    for entry in std::fs::read_dir(pipelines).expect("the pipelines folder") {
        let entry = entry.expect("a pipeline file");
        if entry.path().is_file() {
            std::fs::copy(entry.path(), target.join(entry.file_name())).expect("a copy");
        }
    }
}

/// Runs job `name` of the workflow (with `shard` as its matrix value) in
/// `dir`, step by step as a runner would: stops at the first failing step.
fn run_job(
    workflow: &Value,
    name: &str,
    shard: Option<u64>,
    dir: &Path,
    s3: &S3Server,
    sandbox: &SandboxProcess,
) -> Vec<String> {
    let job = &workflow["jobs"][name];
    let mut env = env_of(workflow, shard);
    env.extend(env_of(job, shard));
    let bin = Path::new(env!("CARGO_BIN_EXE_sonicflow"))
        .parent()
        .expect("the binary's folder")
        .to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = Vec::new();
    for step in job["steps"].as_sequence().expect("a job has steps") {
        let Some(script) = step["run"].as_str() else {
            continue;
        };
        if script.contains("cargo install") {
            // The binary under test is the one this would build.
            continue;
        }
        let script = substitute(script, shard);
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &script])
            .current_dir(dir)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", dir)
            .env("NO_COLOR", "1")
            .env("GITHUB_RUN_ID", RUN_ID)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // Where a runner's cloud and service are, here on loopback.
            .env("AWS_ENDPOINT_URL", s3.endpoint())
            .env("AWS_ALLOW_HTTP", "true")
            .env("MUSICAPI_BASE_URL", &sandbox.url)
            .env("SONICFLOW_TIME_SCALE", "1000");
        let output = cmd.output().expect("bash runs");
        let log = format!(
            "job {name} {shard:?}, step `{}`:\n{script}\nexit {:?}\n--- stdout\n{}--- stderr\n{}",
            step["name"].as_str().unwrap_or("?"),
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{log}");
        let secret_seen = log.contains(SECRET_KEY) && !script.contains(SECRET_KEY);
        assert!(!secret_seen, "the AWS secret was printed: {log}");
        ran.push(log);
    }
    ran
}

#[test]
fn the_shard_workflow_runs_as_written_and_its_merge_holds_every_row_paid_once() {
    let Some(s3) = S3Server::start() else { return };
    let workflow: Value = serde_yaml::from_str(WORKFLOW).expect("the workflow is YAML");
    let state = workflow["env"]["SONICFLOW_STATE"]
        .as_str()
        .expect("the workflow names its state store");
    let bucket = state
        .strip_prefix("s3://")
        .and_then(|rest| rest.split('/').next())
        .expect("an s3:// state URL");
    s3.bucket(bucket);
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", "0"]);
    let shards: Vec<u64> = workflow["jobs"]["shard"]["strategy"]["matrix"]["shard"]
        .as_sequence()
        .expect("a matrix of shards")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(shards.len() > 1, "{shards:?}");

    let root = tempfile::tempdir().expect("a temporary folder");
    for &k in &shards {
        let dir = root.path().join(format!("runner-shard-{k}"));
        checkout(&dir);
        run_job(&workflow, "shard", Some(k), &dir, &s3, &sandbox);
        assert!(
            !dir.join("pipelines/.sonicflow/runs.jsonl").exists(),
            "shard {k} kept its state in the bucket, not beside the manifest"
        );
    }
    let merge_dir = root.path().join("runner-merge");
    checkout(&merge_dir);
    let logs = run_job(&workflow, "merge", None, &merge_dir, &s3, &sandbox);
    assert!(
        logs.iter().any(|l| l.contains("total:")),
        "status prints the sums over every shard: {logs:#?}"
    );

    let results: serde_json::Value = serde_json::from_slice(
        &std::fs::read(merge_dir.join("runs/nightly/results.json"))
            .expect("merge wrote results.json"),
    )
    .expect("results.json is JSON");
    assert!(merge_dir.join("runs/nightly/report.html").is_file());
    assert_eq!(results["status"], "succeeded", "{results:#}");
    let rows = std::fs::read_to_string(merge_dir.join("pipelines/nightly-prompts.csv"))
        .expect("the matrix file")
        .lines()
        .count()
        - 1;
    let steps = results["steps"].as_array().expect("the results list steps");
    let mut per_step: BTreeMap<String, usize> = BTreeMap::new();
    for i in steps {
        assert_eq!(i["status"], "succeeded", "{i:#}");
        *per_step
            .entry(i["step"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        per_step,
        BTreeMap::from([("song".to_owned(), rows), ("wav".to_owned(), rows)]),
        "every row's song and WAV, once"
    );

    let ledger = sandbox.ledger(KEY);
    let charges: Vec<&serde_json::Value> = ledger["entries"]
        .as_array()
        .expect("the ledger lists entries")
        .iter()
        .filter(|e| e["kind"] == "charge")
        .collect();
    assert_eq!(
        charges.len(),
        2 * rows,
        "one charge per song and WAV: {ledger:#}"
    );
    let charged: u64 = charges.iter().filter_map(|e| e["credits"].as_u64()).sum();
    assert_eq!(
        results["totals"]["credits_charged"].as_u64(),
        Some(charged),
        "the merged results charge what the ledger does"
    );
}
