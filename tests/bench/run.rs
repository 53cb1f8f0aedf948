//! Benchmark: a 500-row nightly batch against the sandbox.
//!
//! `cargo bench --bench run` starts `sonicflow sandbox` and `sonicflow run`
//! as separate processes (so the runner's memory and CPU are its own), on a
//! matrix of upload → cover → stems_basic + wav per clip, with the sandbox's
//! submit limit equal to the runner's quota and the reference's latencies at
//! a high time scale (20 by default: the 3 s submit window becomes 150 ms, and
//! the 2.5-hour batch takes about 8 minutes). It prints the makespan against the lower bound of
//! DESIGN §8 — max(critical path, submits ÷ submit rate, polls ÷ poll rate) —
//! the 429s received, polls per remote task, the runner's peak RSS and its
//! CPU time per remote task. Options: `-- --rows N --time-scale S`.

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark whose setup fails has nothing to measure; the panic says why"
)]

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SUBMIT_INTERVAL_S: f64 = 3.0;

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident memory (kB) and CPU seconds of a process, from /proc.
fn sample(pid: u32) -> Option<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((hwm, ticks / 100.0))
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let rows = arg("--rows", if quick { 5.0 } else { 500.0 }) as usize;
    let scale = arg("--time-scale", 20.0);
    let exe = env!("CARGO_BIN_EXE_sonicflow");
    let dir = tempfile::tempdir().unwrap();

    let mut csv = String::from("id,idea\n");
    for r in 0..rows {
        csv.push_str(&format!("r{r},a short piece number {r}\n"));
    }
    std::fs::write(dir.path().join("rows.csv"), csv).unwrap();
    let manifest = dir.path().join("batch.yaml");
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

    let mut sandbox = Command::new(exe)
        .args([
            "sandbox",
            "--time-scale",
            &scale.to_string(),
            "--balance",
            "100000000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(sandbox.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let url = url.trim().to_owned();

    let started = Instant::now();
    let mut runner = Command::new(exe)
        .args([
            "run",
            manifest.to_str().unwrap(),
            "--time-scale",
            &scale.to_string(),
            "--log-format",
            "json",
        ])
        .args(["--out", dir.path().join("out").to_str().unwrap()])
        .env("MUSICAPI_BASE_URL", &url)
        .env("MUSICAPI_KEY", "bench-key")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = runner.id();
    let log = runner.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(log)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let mut last = (0, 0.0);
    let status = loop {
        if let Some(s) = sample(pid) {
            last = s;
        }
        if let Some(status) = runner.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let makespan = started.elapsed().as_secs_f64();
    let lines = reader.join().unwrap();
    let _ = sandbox.kill();
    let _ = sandbox.wait();

    let events: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let count = |name: &str| events.iter().filter(|e| e["event"] == name).count();
    let finished = events
        .iter()
        .find(|e| e["event"] == "finished")
        .cloned()
        .unwrap_or_default();
    let summary = &finished["summary"];
    let submits = summary["submits"].as_f64().unwrap_or(0.0);
    let polls = summary["polls"].as_f64().unwrap_or(0.0);
    let tasks = events
        .iter()
        .filter(|e| e["event"] == "submitted" && !e["task_id"].is_null())
        .count() as f64;
    let remote = submits.max(1.0);

    // DESIGN §8 lower bound, in scaled seconds.
    let submit_bound = submits * SUBMIT_INTERVAL_S / scale;
    let poll_bound = polls / (5.0 * scale);
    let critical = (20.0 + 150.0 + 180.0) / scale; // slowest upload + song + stems the sandbox draws
    let bound = submit_bound.max(poll_bound).max(critical);

    println!(
        "rows: {rows}, time scale: {scale}, exit: {:?}",
        status.code()
    );
    println!(
        "remote calls: {submits} submits ({tasks} polled tasks), {polls} polls, succeeded {}",
        summary["succeeded"]
    );
    println!(
        "makespan: {makespan:.2} s; lower bound: {bound:.2} s; ratio: {:.3}",
        makespan / bound
    );
    println!("429 responses: {}", count("throttled"));
    println!("polls per polled task: {:.2}", polls / tasks.max(1.0));
    println!("runner peak RSS: {:.1} MB", last.0 as f64 / 1024.0);
    println!(
        "runner CPU: {:.2} s, {:.0} µs per remote call",
        last.1,
        last.1 * 1e6 / remote
    );
    std::io::stdout().flush().unwrap();
}
