//! The in-flight mode of the run benchmark: `-- --in-flight N`.
//!
//! N rows of one `create` each, all in flight at once: the sandbox spaces
//! submits 0 apart and the runner's quotas are far above what it can send,
//! so every submit goes out back to back, and the first poll of each task
//! waits until the slowest song is done (one poll per task). It prints the
//! runner's peak RSS, its CPU time per HTTP request (the sandbox counts the
//! requests it answers) and the requests. `--runner PATH` runs another
//! build against this one's sandbox.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The runner's (peak RSS kB, CPU seconds, state), read from /proc.
fn sample(pid: u32) -> Option<(u64, f64, char)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((hwm, ticks / 100.0, state))
}

fn served(base: &str) -> Option<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let answer: serde_json::Value = reqwest::get(format!("{base}/_sandbox/requests"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        answer["requests"].as_u64()
    })
}

pub fn main(rows: usize, runner: &str, exe: &str) -> Result<(), String> {
    // Submits leave one per timer tick at best (the quota allows no
    // bursts): at this scale the first poll of the first task comes after
    // 40 s, time enough for 10,000 submits to leave first.
    let scale = 4.0;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut csv = String::from("id\n");
    for r in 0..rows {
        csv.push_str(&format!("r{r}\n"));
    }
    std::fs::write(dir.path().join("rows.csv"), csv).map_err(|e| e.to_string())?;
    let manifest = dir.path().join("inflight.yaml");
    // The sandbox's songs take 90–150 s: each task's first poll comes after
    // its song is done.
    let yaml = format!(
        "version: 1\nname: inflight\nmatrix: {{ key: id, file: rows.csv }}\ndefaults: {{ mv: sonic-v5 }}\n\
         limits: {{ max_in_flight: {rows}, submits_per_minute: 1000000, polls_per_second: 100000 }}\n\
         poll: {{ initial_delay: 160s, interval: 15s, timeout: 30m }}\n\
         steps:\n\
         \x20 song:\n    action: create\n    with: {{ custom_mode: false, gpt_description_prompt: \"piece ${{{{ matrix.id }}}}\" }}\n"
    );
    std::fs::write(&manifest, yaml).map_err(|e| e.to_string())?;

    let scale_text = scale.to_string();
    let (mut sandbox, base) = super::sandbox::start(
        exe,
        &[
            "--time-scale",
            &scale_text,
            "--balance",
            "1000000000",
            "--submit-interval",
            "0",
        ],
    )?;
    let before = served(&base).ok_or("the sandbox does not count requests")?;

    let started = Instant::now();
    let mut child = Command::new(runner)
        .args(["run", &manifest.display().to_string()])
        .args(["--time-scale", &scale.to_string(), "--log-format", "json"])
        .args(["--no-balance-check"])
        .args(["--out", &dir.path().join("out").display().to_string()])
        .env("MUSICAPI_BASE_URL", &base)
        .env("MUSICAPI_KEY", "bench-key")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id();
    let log = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut lines = 0_usize;
        if let Some(log) = log {
            let mut summary = String::new();
            for line in BufReader::new(log).lines().map_while(Result::ok) {
                lines += 1;
                if line.contains("\"finished\"") {
                    summary = line;
                }
            }
            return (lines, summary);
        }
        (lines, String::new())
    });
    // Sampled until the runner has exited but is not yet reaped: its last
    // CPU figure and its peak are still there.
    let mut last = (0, 0.0);
    while let Some((hwm, cpu, state)) = sample(pid) {
        last = (hwm.max(last.0), cpu);
        if state == 'Z' {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let makespan = started.elapsed().as_secs_f64();
    let (lines, summary) = reader.join().map_err(|_| "the log reader died")?;
    let requests = served(&base).ok_or("the sandbox stopped")? - before;
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap_or_default();
    println!(
        "in flight: {rows} rows of one create, runner: {runner}, exit: {:?}, succeeded: {}",
        status.code(),
        summary["summary"]["succeeded"]
    );
    println!(
        "requests: {requests} ({} submits, {} polls), {lines} log lines, makespan {makespan:.1} s",
        summary["summary"]["submits"], summary["summary"]["polls"]
    );
    println!("runner peak RSS: {:.1} MB", last.0 as f64 / 1024.0);
    println!(
        "runner CPU: {:.2} s, {:.1} µs per HTTP request",
        last.1,
        last.1 * 1e6 / requests.max(1) as f64
    );
    Ok(())
}
