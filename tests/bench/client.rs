//! Benchmark: the CPU a bare HTTP client spends per request, beside a run's.
//!
//! `cargo bench --bench client` starts one `sonicflow sandbox` (submit
//! spacing 0, so nothing is refused) and measures, against it:
//!
//! - the yardstick: a bare `reqwest` client on a tokio runtime sending the
//!   requests a run sends (upload, create, stems, wav, and polls of the
//!   tasks it made, in about a run's proportions), back to back and then
//!   paced (5, 10 and 30 ms apart, as a paced run spaces them), with its
//!   own CPU time per request;
//! - a `sonicflow run` of the run benchmark's batch (upload → cover →
//!   stems_basic + wav per clip) against the same sandbox, with the
//!   runner's CPU time per HTTP request (the sandbox counts the requests it
//!   answers), and the bare client again at the run's own mean spacing.
//!
//! Options: `-- --requests N` (per back-to-back round; paced rounds send
//! a fifth as many), `--spacings 5,10,30` (ms), `--rows N --time-scale S`
//! (the run; `--rows 0` leaves it out), `--runner PATH` (another build of
//! `sonicflow` to run), `--rounds N` (each measurement N times, medians).

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark whose setup fails has nothing to measure; the panic says why"
)]

#[path = "flags.rs"]
mod flags;
#[path = "sandbox.rs"]
mod sandbox;

use flags::{arg, text_arg};

use std::io::{BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// CPU nanoseconds this process's live threads have run, from each
/// thread's schedstat (exact, unlike the 10 ms ticks of `/proc/self/stat`).
fn own_cpu_ns() -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let stat = std::fs::read_to_string(entry.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// Total CPU seconds of process `pid`, from its stat (utime + stime).
fn cpu_of(pid: u32) -> Option<(char, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((state, ticks / 100.0))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The requests a run of the batch sends for each row, in the order of
/// one row's life: polls are about three fifths of a paced run's requests.
#[derive(Clone, Copy)]
enum Kind {
    Upload,
    Cover,
    Stems,
    Wav,
    Poll,
}

const MIX: &[Kind] = &[
    Kind::Upload,
    Kind::Cover,
    Kind::Poll,
    Kind::Poll,
    Kind::Stems,
    Kind::Wav,
    Kind::Poll,
    Kind::Poll,
    Kind::Poll,
    Kind::Poll,
];

/// A bare client: what a hand-written integration sends, and nothing else.
struct Bare {
    http: reqwest::Client,
    base: String,
    clip: String,
    task: String,
}

impl Bare {
    async fn send(&mut self, kind: Kind, n: usize) {
        let post = |path: &str, body: Value| {
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth("bench-key")
                .json(&body)
        };
        let request = match kind {
            Kind::Upload => post(
                "/api/v1/sonic/upload",
                json!({ "url": format!("https://example.com/{n}.mp3") }),
            ),
            Kind::Cover => post(
                "/api/v1/sonic/create",
                json!({ "task_type": "cover_music", "continue_clip_id": self.clip, "custom_mode": false,
                        "gpt_description_prompt": format!("a short piece number {n}"), "mv": "sonic-v5" }),
            ),
            Kind::Stems => post("/api/v1/sonic/stems/basic", json!({ "clip_id": self.clip })),
            Kind::Wav => post("/api/v1/sonic/wav", json!({ "clip_id": self.clip })),
            Kind::Poll => self
                .http
                .get(format!("{}/api/v1/sonic/task/{}", self.base, self.task))
                .bearer_auth("bench-key"),
        };
        let answer: Value = request
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        if let Some(clip) = answer["clip_id"].as_str() {
            self.clip = clip.to_owned();
        }
        if let Some(task) = answer["task_id"].as_str() {
            self.task = task.to_owned();
        }
    }
}

/// CPU µs per request of `n` requests spaced `spacing` apart.
fn bare_round(base: &str, n: usize, spacing: Duration) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut bare = Bare {
            http: reqwest::Client::new(),
            base: base.to_owned(),
            clip: String::new(),
            task: String::new(),
        };
        // Warm up: the connection, the first clip and task.
        for (i, kind) in MIX.iter().enumerate() {
            bare.send(*kind, i).await;
        }
        let before = own_cpu_ns();
        let mut next = tokio::time::Instant::now();
        for i in 0..n {
            if !spacing.is_zero() {
                next += spacing;
                tokio::time::sleep_until(next).await;
            }
            bare.send(MIX[i % MIX.len()], i).await;
        }
        (own_cpu_ns() - before) as f64 / 1e3 / n as f64
    })
}

fn served(base: &str) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let answer: Value = reqwest::get(format!("{base}/_sandbox/requests"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["requests"].as_u64().unwrap()
    })
}

/// The run benchmark's batch of `rows` rows, written to `dir`.
fn batch(dir: &std::path::Path, rows: usize) -> std::path::PathBuf {
    let mut csv = String::from("id,idea\n");
    for r in 0..rows {
        csv.push_str(&format!("r{r},a short piece number {r}\n"));
    }
    std::fs::write(dir.join("rows.csv"), csv).unwrap();
    let manifest = dir.join("batch.yaml");
    std::fs::write(
        &manifest,
        "version: 1\nname: bench\nmatrix: { key: id, file: rows.csv }\ndefaults: { mv: sonic-v5 }\n\
         limits: { max_in_flight: 400, submits_per_minute: 20, polls_per_second: 5 }\n\
         poll: { initial_delay: 20s, interval: 15s, timeout: 30m }\n\
         steps:\n\
         \x20 upload:\n    action: upload\n    with: { url: \"https://example.com/${{ matrix.id }}.mp3\" }\n\
         \x20 cover:\n    action: cover\n    with: { clip: \"${{ steps.upload.outputs.clip_id }}\", custom_mode: false, gpt_description_prompt: \"${{ matrix.idea }}\" }\n\
         \x20 stems:\n    action: stems_basic\n    for_each: ${{ steps.cover.outputs.clips }}\n    with: { clip: \"${{ item.clip_id }}\" }\n\
         \x20 wav:\n    action: wav\n    for_each: ${{ steps.cover.outputs.clips }}\n    with: { clip: \"${{ item.clip_id }}\" }\n",
    )
    .unwrap();
    manifest
}

/// One run of the batch: (runner CPU µs per request, requests, makespan s).
fn run_round(runner: &str, base: &str, rows: usize, scale: f64) -> (f64, u64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = batch(dir.path(), rows);
    let before = served(base);
    let started = Instant::now();
    let mut child = Command::new(runner)
        .args(["run", manifest.to_str().unwrap()])
        .args(["--time-scale", &scale.to_string(), "--log-format", "json"])
        .args(["--out", dir.path().join("out").to_str().unwrap()])
        .env("MUSICAPI_BASE_URL", base)
        .env("MUSICAPI_KEY", "bench-key")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let log = child.stderr.take().unwrap();
    let reader =
        std::thread::spawn(move || std::io::copy(&mut BufReader::new(log), &mut std::io::sink()));
    // The runner's CPU is read once it has exited but is not yet reaped.
    let mut cpu = 0.0;
    while let Some((state, seconds)) = cpu_of(pid) {
        cpu = seconds;
        if state == 'Z' {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = child.wait().unwrap();
    let makespan = started.elapsed().as_secs_f64();
    let _ = reader.join();
    assert!(status.success(), "the run failed: {status:?}");
    let requests = served(base) - before;
    (cpu * 1e6 / requests.max(1) as f64, requests, makespan)
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let requests = arg("--requests", if quick { 200.0 } else { 5000.0 }) as usize;
    let rows = arg("--rows", if quick { 2.0 } else { 100.0 }) as usize;
    let scale = arg("--time-scale", 20.0);
    let rounds = arg("--rounds", 1.0).max(1.0) as usize;
    let spacings: Vec<u64> = text_arg("--spacings")
        .unwrap_or_else(|| if quick { "5".into() } else { "5,10,30".into() })
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let exe = env!("CARGO_BIN_EXE_sonicflow");
    let runner = text_arg("--runner").unwrap_or_else(|| exe.to_owned());

    let scale_text = scale.to_string();
    let (mut sandbox, base) = sandbox::start(
        exe,
        &[
            "--time-scale",
            &scale_text,
            "--balance",
            "1000000000",
            "--submit-interval",
            "0",
        ],
    )
    .unwrap();

    let bare = |n: usize, spacing: Duration| {
        median((0..rounds).map(|_| bare_round(&base, n, spacing)).collect())
    };
    println!("bare reqwest client on tokio, CPU per request (median of {rounds}):");
    println!(
        "  back to back: {:.1} µs ({requests} requests)",
        bare(requests, Duration::ZERO)
    );
    let paced = (requests / 5).max(20);
    for ms in &spacings {
        let us = bare(paced, Duration::from_millis(*ms));
        println!("  {ms} ms apart: {us:.1} µs ({paced} requests)");
    }
    if rows > 0 {
        let runs: Vec<(f64, u64, f64)> = (0..rounds)
            .map(|_| run_round(&runner, &base, rows, scale))
            .collect();
        let per_request = median(runs.iter().map(|r| r.0).collect());
        let (_, served, makespan) = runs[runs.len() / 2];
        let spacing = Duration::from_secs_f64(makespan / served.max(1) as f64);
        println!(
            "sonicflow run, {rows} rows at time scale {scale} ({runner}): {per_request:.1} µs of runner CPU per HTTP request ({served} requests in {makespan:.1} s, one every {:.1} ms)",
            spacing.as_secs_f64() * 1e3
        );
        let n = paced.min(served as usize).max(20);
        let us = bare(n, spacing);
        println!(
            "  bare client at the run's mean spacing: {us:.1} µs per request ({n} requests); run ÷ bare: {:.2}",
            per_request / us
        );
    }
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    std::io::stdout().flush().unwrap();
}
