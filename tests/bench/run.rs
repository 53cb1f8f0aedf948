//! Benchmark: a 500-row nightly batch against the sandbox.
//!
//! `cargo bench --bench run` starts `sonicflow sandbox` and `sonicflow run`
//! as separate processes (so the runner's memory and CPU are its own), on a
//! matrix of upload → cover → stems_basic + wav per clip, with the sandbox's
//! submit limit equal to the runner's generation quota and the reference's
//! latencies at a high time scale (20 by default: the 3 s submit window
//! becomes 150 ms). It prints the makespan against a tight lower bound, the
//! 429s received, polls per remote task, the runner's peak RSS and its CPU
//! time per remote task.
//!
//! The bound is what no schedule can beat on this sandbox: the paced
//! submits of the busiest rate class one slot apart (every paid call on one
//! slot when the sandbox's slot is shared), after the shortest wait before
//! the first of them can go and before the shortest tail its last one
//! leaves (its task still has to run), with the shortest latencies the
//! sandbox draws; and never less than the critical path at those latencies.
//!
//! Options: `-- --rows N --time-scale S`, `--rate-limit-scope
//! generation|shared` (the sandbox's, default generation),
//! `--no-observe-charges` (passed to the runner), `--runner PATH` to run
//! another build of `sonicflow` against this one's sandbox (to measure an
//! older runner with the same command), and `--baseline per-row` or
//! `--baseline stage-by-stage` to run a hand-written script (see
//! `baseline.rs`) instead of sonicflow, against the same sandbox and bound.
//! `--in-flight N` measures N tasks in flight at once instead (see
//! `run_inflight.rs`).

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark whose setup fails has nothing to measure; the panic says why"
)]

#[path = "flags.rs"]
mod flags;

use flags::{arg, text_arg};

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sonicflow::prices::OpClass;
use sonicflow::sandbox::SandboxConfig;

#[path = "baseline.rs"]
mod baseline;
#[path = "run_inflight.rs"]
mod inflight;
#[path = "sandbox.rs"]
mod sandbox;

/// The runner's quick-call quota (its default); the generation one is
/// the sandbox's slot.
const QUICK_PER_MINUTE: f64 = 60.0;
const POLLS_PER_SECOND: f64 = 5.0;

/// The tight lower bound on the makespan and its parts, in scaled seconds.
struct Bound {
    /// The busiest paced class: its name, submits, spacing, and the
    /// shortest wait before its first submit and after its last.
    class: &'static str,
    submits: f64,
    spacing: f64,
    head: f64,
    tail: f64,
    /// The quick calls at the runner's own quota: not a limit of the
    /// sandbox (which paces generation submits only), so not in the bound.
    other: f64,
    /// Upload, cover, stems at their shortest draws, one after another.
    critical: f64,
    /// The same at the slowest draws (what a small run tends to wait for).
    slowest: f64,
}

impl Bound {
    /// The bound for `generation` cover and stems submits and `quick`
    /// uploads and WAVs, on the default sandbox's latencies and slot.
    fn of(generation: f64, quick: f64, scale: f64, shared: bool) -> Bound {
        let sandbox = SandboxConfig::default();
        let l = &sandbox.latencies;
        let secs = |d: Duration| d.as_secs_f64() / scale;
        let slot = secs(sandbox.submit_interval);
        let critical = secs(l.upload.min + l.song.min + l.stems.min);
        let slowest = secs(l.upload.max + l.song.max + l.stems.max);
        let quick_spacing = 60.0 / QUICK_PER_MINUTE / scale;
        if shared {
            // Every paid call on one slot; the first (an upload) may go at
            // once and the last may be an instant WAV.
            return Bound {
                class: "every paid call",
                submits: generation + quick,
                spacing: slot,
                head: 0.0,
                tail: 0.0,
                other: 0.0,
                critical,
                slowest,
            };
        }
        Bound {
            class: "generation",
            submits: generation,
            spacing: slot,
            // No cover can go before an upload has answered; every cover
            // has stems after it, so the last generation submit is a stems,
            // whose task still runs its shortest latency.
            head: secs(l.upload.min),
            tail: secs(l.stems.min),
            other: (quick - 1.0).max(0.0) * quick_spacing,
            critical,
            slowest,
        }
    }

    fn paced(&self) -> f64 {
        if self.submits < 1.0 {
            return 0.0;
        }
        self.head + (self.submits - 1.0) * self.spacing + self.tail
    }

    fn total(&self) -> f64 {
        self.paced().max(self.critical)
    }

    fn describe(&self) -> String {
        format!(
            "{:.2} s = max({} submits: head {:.3} + {} gaps x {:.4} + tail {:.3} = {:.2}; critical path {:.2}) (slowest draws' path {:.2}; quick calls at the runner's quota {:.2})",
            self.total(),
            self.class,
            self.head,
            (self.submits - 1.0).max(0.0),
            self.spacing,
            self.tail,
            self.paced(),
            self.critical,
            self.slowest,
            self.other,
        )
    }
}

/// Starts `sonicflow sandbox`; the process and its base URL.
fn start_sandbox(exe: &str, scale: f64, scope: &str) -> (std::process::Child, String) {
    let scale = scale.to_string();
    let args = [
        "--time-scale",
        &scale,
        "--balance",
        "100000000",
        "--rate-limit-scope",
        scope,
    ];
    sandbox::start(exe, &args).unwrap()
}

/// Runs a hand-written script instead of sonicflow and reports it against the same bound.
fn run_baseline(name: &str, exe: &str, rows: usize, scale: f64, scope: &str) {
    let Some(script) = baseline::Script::parse(name) else {
        eprintln!("unknown baseline `{name}`: use `per-row` or `stage-by-stage`");
        std::process::exit(2);
    };
    let (mut sandbox, url) = start_sandbox(exe, scale, scope);
    let interval = SandboxConfig::default().submit_interval.div_f64(scale);
    let outcome = baseline::run(script, &url, rows, scale, interval, scope == "shared");
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    let bound = Bound::of(outcome.generation, outcome.quick, scale, scope == "shared");
    println!(
        "baseline: {name}, rows: {rows} ({} done), time scale: {scale}, sandbox rate-limit scope: {scope}",
        outcome.rows_done
    );
    println!(
        "remote calls: {} submits ({} generation, {} quick), {} polls",
        outcome.generation + outcome.quick,
        outcome.generation,
        outcome.quick,
        outcome.polls
    );
    println!(
        "makespan: {:.2} s; tight bound: {}; ratio: {:.3}",
        outcome.makespan,
        bound.describe(),
        outcome.makespan / bound.total()
    );
    println!("429 responses: {}", outcome.throttled);
    println!(
        "polls per polled task: {:.2}",
        outcome.polls / outcome.generation.max(1.0)
    );
    std::io::stdout().flush().unwrap();
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
    if let Some(n) = text_arg("--in-flight").and_then(|n| n.parse().ok()) {
        let runner = text_arg("--runner").unwrap_or_else(|| env!("CARGO_BIN_EXE_sonicflow").into());
        return inflight::main(n, &runner, env!("CARGO_BIN_EXE_sonicflow")).unwrap();
    }
    let quick = !std::env::args().any(|a| a == "--bench");
    let rows = arg("--rows", if quick { 5.0 } else { 500.0 }) as usize;
    let scale = arg("--time-scale", 20.0);
    let scope = text_arg("--rate-limit-scope").unwrap_or_else(|| "generation".to_owned());
    let exe = env!("CARGO_BIN_EXE_sonicflow");
    let runner_exe = text_arg("--runner").unwrap_or_else(|| exe.to_owned());
    // A runner from before observed charges knows no such flag: pass it only when asked.
    let observe_flag: Vec<&str> = if std::env::args().any(|a| a == "--no-observe-charges") {
        vec!["--no-observe-charges"]
    } else {
        Vec::new()
    };
    if let Some(name) = text_arg("--baseline") {
        return run_baseline(&name, exe, rows, scale, &scope);
    }
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
         poll: { timeout: 30m }\n\
         steps:\n\
         \x20 upload:\n    action: upload\n    with: { url: \"https://example.com/${{ matrix.id }}.mp3\" }\n\
         \x20 cover:\n    action: cover\n    with: { clip: \"${{ steps.upload.outputs.clip_id }}\", custom_mode: false, gpt_description_prompt: \"${{ matrix.idea }}\" }\n\
         \x20 stems:\n    action: stems_basic\n    for_each: ${{ steps.cover.outputs.clips }}\n    with: { clip: \"${{ item.clip_id }}\" }\n\
         \x20 wav:\n    action: wav\n    for_each: ${{ steps.cover.outputs.clips }}\n    with: { clip: \"${{ item.clip_id }}\" }\n",
    )
    .unwrap();

    let (mut sandbox, url) = start_sandbox(exe, scale, &scope);

    let started = Instant::now();
    let mut runner = Command::new(&runner_exe)
        .args([
            "run",
            manifest.to_str().unwrap(),
            "--time-scale",
            &scale.to_string(),
            "--log-format",
            "json",
        ])
        .args(["--out", dir.path().join("out").to_str().unwrap()])
        .args(observe_flag.as_slice())
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
    // Accepted submits per class, from the operation each step was created with.
    let operations: std::collections::HashMap<String, String> = events
        .iter()
        .filter(|e| e["event"] == "created")
        .filter_map(|e| {
            let step = e["id"]["step_id"].as_str()?.to_owned();
            Some((step, e["operation"].as_str()?.to_owned()))
        })
        .collect();
    let mut per_class = [0.0_f64; 2];
    for e in events.iter().filter(|e| e["event"] == "submitted") {
        let operation = e["id"]["step_id"]
            .as_str()
            .and_then(|step| operations.get(step))
            .map_or("", String::as_str);
        per_class[OpClass::of(operation).index()] += 1.0;
    }
    let [generation, quick] = per_class;
    // 429s per class, and those after the first on a quick call: the moment
    // a runner can know that the slot is shared.
    let mut refused = [0_usize; 2];
    let mut after_learning: Option<[usize; 2]> = None;
    for e in events
        .iter()
        .filter(|e| e["event"] == "retrying" && e["error"]["kind"] == "rate_limited")
    {
        let operation = e["id"]["step_id"]
            .as_str()
            .and_then(|step| operations.get(step))
            .map_or("", String::as_str);
        let class = OpClass::of(operation);
        refused[class.index()] += 1;
        match &mut after_learning {
            Some(after) => after[class.index()] += 1,
            None if class == OpClass::Quick => after_learning = Some([0, 0]),
            None => {}
        }
    }
    let tasks = events
        .iter()
        .filter(|e| e["event"] == "submitted" && !e["task_id"].is_null())
        .count() as f64;
    let remote = submits.max(1.0);

    let bound = Bound::of(generation, quick, scale, scope == "shared");
    // Not part of the bound: how many polls a runner needs is its own choice.
    let poll_time = polls / (POLLS_PER_SECOND * scale);

    println!(
        "rows: {rows}, time scale: {scale}, sandbox rate-limit scope: {scope}, runner: {runner_exe}, exit: {:?}",
        status.code()
    );
    println!(
        "remote calls: {submits} submits ({generation} generation, {quick} quick; {tasks} polled tasks), {polls} polls, succeeded {}",
        summary["succeeded"]
    );
    println!(
        "makespan: {makespan:.2} s; tight bound: {}; ratio: {:.3}",
        bound.describe(),
        makespan / bound.total()
    );
    println!("polls at the poll quota alone: {poll_time:.2} s");
    println!(
        "429 responses: {} ({} on generation submits, {} on quick calls); runner learnt a shared slot: {}",
        count("throttled"),
        refused[0],
        refused[1],
        summary["rate_limit_shared"].as_bool().unwrap_or(false)
    );
    if let Some([g, q]) = after_learning {
        println!(
            "429s after the first on a quick call: {} ({g} generation, {q} quick)",
            g + q
        );
    }
    println!("polls per polled task: {:.2}", polls / tasks.max(1.0));
    println!("runner peak RSS: {:.1} MB", last.0 as f64 / 1024.0);
    println!(
        "runner CPU: {:.2} s, {:.0} µs per remote call",
        last.1,
        last.1 * 1e6 / remote
    );
    std::io::stdout().flush().unwrap();
}
