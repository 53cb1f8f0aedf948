//! Benchmark: what the journal costs a paid step.
//!
//! `cargo bench --bench journal` records paid steps through the same
//! `RunMemory` a run uses — intent, accepted (with the task), succeeded
//! (with outputs, plus the index line) — each line synced to disk before the
//! next. It prints the median time per step over several batches and sets it
//! against the service's submit spacing (3 s per paid submit), the ceiling on
//! how often a step can be paid for anyway.
//!
//! The folder is under the build's target directory by default, so the disk
//! is the one the project lives on (a tmpfs `/tmp` would make syncs free);
//! pass `-- --dir PATH` to measure another disk and `-- --steps N` to change
//! the batch size.
//!
//! Then the same steps with the state in a bucket of moto's S3 server on
//! loopback (`SONICFLOW_MOTO=/path/to/moto_server`, or `moto_server` on the
//! PATH; skipped with a message when there is none), through a proxy that
//! counts requests: it prints the store requests per paid step and the
//! median and slowest time of one record write (what a submit waits for
//! before its request may leave).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark whose setup fails has nothing to measure; the panic says why"
)]

#[path = "../common/s3.rs"]
#[allow(dead_code, reason = "the benchmark uses only the server and the proxy")]
mod s3;

#[path = "flags.rs"]
mod flags;

use flags::text_arg;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, json};
use sonicflow::action::Action;
use sonicflow::engine::{InstanceId, Job, Memory, Outputs, Record, TaskRef};
use sonicflow::journal::{Known, Policy, RunHeader, RunMemory, StateDir};

const SUBMIT_SPACING: Duration = Duration::from_secs(3);

fn header(id: &str) -> RunHeader {
    RunHeader {
        id: id.to_owned(),
        pipeline: "bench".to_owned(),
        manifest: "/bench/pipeline.yaml".to_owned(),
        manifest_sha256: "0".repeat(64),
        price_version: "bench".to_owned(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: "2026-01-01T00:00:00.000Z".to_owned(),
        inputs: Vec::new(),
        prices: None,
        matrix: None,
        matrix_sha256: None,
        select: Vec::new(),
        exclude: Vec::new(),
        max_credits: None,
        allow_partial: false,
        download: false,
        state_dir: None,
        state_url: None,
        api: Some("http://127.0.0.1:1".to_owned()),
        no_reuse: false,
        force: Vec::new(),
        upload_callback: None,
        out_url: None,
        price_table: None,
        group: None,
        shard: None,
    }
}

fn job(row: usize) -> Job {
    let mut fields = Map::new();
    fields.insert("mv".into(), json!("sonic-v5"));
    fields.insert("custom_mode".into(), json!(false));
    fields.insert(
        "gpt_description_prompt".into(),
        json!(format!("a short piece number {row} about the sea at night")),
    );
    Job {
        id: InstanceId {
            row,
            row_key: Some(format!("r{row}")),
            step: 0,
            step_id: "song".to_owned(),
            path: Vec::new(),
            names: Vec::new(),
        },
        action: Action::Create,
        operation: "create_music",
        fields,
        attempt: 1,
        request_hash: format!("{row:064x}"),
    }
}

fn outputs(row: usize) -> Outputs {
    let clip = |n: usize| {
        json!({
            "clip_id": format!("clip-{row}-{n}"),
            "audio_url": format!("https://cdn.example.com/{row}/{n}.mp3"),
            "image_url": format!("https://cdn.example.com/{row}/{n}.jpg"),
            "title": "A piece", "duration": 120.5,
        })
    };
    Outputs {
        value: json!({ "clip_id": format!("clip-{row}-0"), "clips": [clip(0), clip(1)] }),
        files: Vec::new(),
    }
}

/// Records `steps` paid steps into a fresh run; returns the time per step.
fn batch(root: &std::path::Path, n: usize, steps: usize) -> Duration {
    let state = StateDir::local(root.join(format!("state{n}")));
    paid_steps(&state, n, steps, &mut Vec::new())
}

/// Records `steps` paid steps into a fresh run of `state`; returns the
/// time per step, and adds the time of each record write to `writes`.
fn paid_steps(state: &StateDir, n: usize, steps: usize, writes: &mut Vec<Duration>) -> Duration {
    let id = format!("bench-{n}");
    let dir = state.root.join("runs").join(&id);
    let known = Known::default();
    let memory = RunMemory::start(state, &dir, &header(&id), known, Policy::default()).unwrap();
    let mut write = |record: Record<'_>| {
        let at = Instant::now();
        memory.record(record).unwrap();
        writes.push(at.elapsed());
    };
    let jobs: Vec<(Job, Outputs)> = (0..steps).map(|r| (job(r), outputs(r))).collect();
    let start = Instant::now();
    for (r, (job, out)) in jobs.iter().enumerate() {
        let task = TaskRef {
            id: format!("task-{r}"),
            context: None,
        };
        write(Record::Intent { job, credits: 15 });
        write(Record::Accepted {
            job,
            task: Some(&task),
            credits: 15,
        });
        write(Record::Succeeded {
            job,
            outputs: out,
            reused_from: None,
            credits: 0,
        });
    }
    start.elapsed() / steps as u32
}

/// The same paid steps with the state in a bucket of moto's S3 server.
fn in_bucket(root: &std::path::Path, steps: usize) {
    let Some(server) = s3::S3Server::start() else {
        println!("state in a bucket: skipped (no moto_server)");
        return;
    };
    let proxy = s3::FaultProxy::start(server.port);
    let url = format!("{}/bench", server.bucket("bench"));
    let mut cmd = std::process::Command::new("true");
    s3::aws_env(&mut cmd, &proxy.endpoint());
    let vars: Vec<(String, String)> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .collect();
    let bucket = sonicflow::store::Bucket::open_with(&url, &vars).unwrap();
    let state = StateDir {
        root: root.join("bucket"),
        store: Arc::new(sonicflow::journal::store::BucketState::new(bucket)),
        url: Some(url.clone()),
    };
    // One step first, so connections are open as in a run under way.
    paid_steps(&state, 100, 1, &mut Vec::new());
    let before = proxy.requests();
    let mut writes = Vec::new();
    let per_step = paid_steps(&state, 101, steps, &mut writes);
    let requests = proxy.requests() - before;
    writes.sort();
    let median = writes[writes.len() / 2];
    let slowest = writes[writes.len() - 1];
    println!("state in a bucket (moto on loopback, {steps} paid steps):");
    println!(
        "  store requests per paid step: {:.2} (the start of the run, its header and registry entry, included)",
        requests as f64 / steps as f64
    );
    println!(
        "  one record write (a create-only PUT, and the local line): median {:.2} ms, slowest {:.2} ms",
        median.as_secs_f64() * 1e3,
        slowest.as_secs_f64() * 1e3
    );
    println!(
        "  per paid step: {:.2} ms, {:.3} % of the {} s submit spacing",
        per_step.as_secs_f64() * 1e3,
        100.0 * per_step.as_secs_f64() / SUBMIT_SPACING.as_secs_f64(),
        SUBMIT_SPACING.as_secs()
    );
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let steps: usize = text_arg("--steps")
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 5 } else { 200 });
    let batches = if quick { 1 } else { 7 };
    let base = text_arg("--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let mut times: Vec<Duration> = (0..batches).map(|n| batch(dir.path(), n, steps)).collect();
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "journal: {steps} paid steps × {batches} batches in {}",
        base.display()
    );
    println!(
        "  per paid step (4 lines, 2 synced: intent and accepted; the success and its index line ride on the next sync): median {:.2} ms, min {:.2} ms, max {:.2} ms",
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
    println!(
        "  share of the service's {} s submit spacing: {:.3} %",
        SUBMIT_SPACING.as_secs(),
        100.0 * median.as_secs_f64() / SUBMIT_SPACING.as_secs_f64()
    );
    in_bucket(dir.path(), steps);
}
