//! Benchmark: `validate` and `plan` on generated manifests.
//!
//! Run with `cargo bench --bench plan` (release build). For each size it
//! prints the median wall time of several runs of the same library calls the
//! commands make — read the file, load, build the plan, and (for `plan`)
//! render it as JSON — and the time per step, so linearity is visible as a
//! flat per-step column from 1k to 100k.
//!
//! Then the whole command, as a user runs it: `sonicflow plan --json` and
//! the human `plan` as processes, which also forecast every instance
//! against the state folder and render each row's standing. Cases: 1,000
//! rows × 3 steps, and 100,000 rows × 2 steps (create → wav) with no state
//! folder and with one holding 10 earlier runs of the same manifest. The
//! earlier runs are written through the journal, as a run writes them: the
//! first pays for every request (intent, accepted, succeeded, and the index
//! line), the nine after it reuse every result, each request found by the
//! same forecast a run makes. It prints the median wall time and the peak
//! RSS of each.
//!
//! Options: `-- --exe PATH` also times another build of sonicflow on the
//! same manifests and state, alternating with this one round by round;
//! `--rounds N` (default 3); `--rows N` the size of the large cases;
//! `--runs N` the earlier runs; `--dir PATH` where the manifests and state
//! go (default `/dev/shm` where there is one: writing 10 journals of 200,000
//! synced lines each to a real disk takes far longer than the plan);
//! `--commands-only` skips the library table.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark whose setup fails has nothing to measure; the panic says why"
)]

#[path = "flags.rs"]
mod flags;

use flags::text_arg;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sonicflow::commands::plan::render_json;
use sonicflow::engine::{Account, Fate, Forecast, Job, Memory, Outputs, Record, Reused, TaskRef};
use sonicflow::journal::{Known, Policy, RunHeader, RunMemory, StateDir};
use sonicflow::manifest::load::load_file;
use sonicflow::plan::{Options, Plan, build};

/// The service the earlier runs talked to, and the plan is asked about.
const API: &str = "http://127.0.0.1:1";

/// A pipeline of `groups` × (create → wav, create → stems per clip).
fn steps_manifest(steps: usize) -> String {
    let mut s = String::from("version: 1\nname: generated\ndefaults: { mv: sonic-v5 }\nsteps:\n");
    for g in 0..steps.div_ceil(3) {
        let _ = write!(
            s,
            "  song{g}:\n    action: create\n    with:\n      custom_mode: true\n      tags: pop, bright\n      prompt: \"[Verse] line {g}\"\n\
             \x20 wav{g}:\n    action: wav\n    with: {{ clip: \"${{{{ steps.song{g}.outputs.clip_id }}}}\" }}\n\
             \x20 stems{g}:\n    action: stems_basic\n    for_each: ${{{{ steps.song{g}.outputs.clips }}}}\n    with: {{ clip: \"${{{{ item.clip_id }}}}\" }}\n"
        );
    }
    s
}

/// Three steps instantiated once per CSV row.
fn matrix_manifest(dir: &Path, rows: usize) -> String {
    let mut csv = String::from("id,idea,tags\n");
    for r in 0..rows {
        let _ = writeln!(
            csv,
            "row{r},an idea number {r} about the sea,\"ambient, warm\""
        );
    }
    std::fs::write(dir.join(format!("rows{rows}.csv")), csv).unwrap();
    format!(
        "version: 1\nname: matrix\nmatrix: {{ key: id, file: rows{rows}.csv }}\ndefaults: {{ mv: sonic-v5 }}\nsteps:\n\
         \x20 song:\n    action: create\n    with: {{ custom_mode: false, gpt_description_prompt: \"${{{{ matrix.idea }}}}\", tags: \"${{{{ matrix.tags }}}}\" }}\n\
         \x20 wav:\n    action: wav\n    with: {{ clip: \"${{{{ steps.song.outputs.clip_id }}}}\" }}\n\
         \x20 stems:\n    action: stems_basic\n    for_each: ${{{{ steps.song.outputs.clips }}}}\n    with: {{ clip: \"${{{{ item.clip_id }}}}\" }}\n"
    )
}

/// `rows` rows of create → wav: the matrix the forecast cases plan.
fn song_wav_manifest(dir: &Path, rows: usize) -> PathBuf {
    let mut csv = String::from("id,idea,tags\n");
    for r in 0..rows {
        let _ = writeln!(
            csv,
            "row{r},an idea number {r} about the sea,\"ambient, warm\""
        );
    }
    std::fs::write(dir.join(format!("songwav{rows}.csv")), csv).unwrap();
    let text = format!(
        "version: 1\nname: songwav{rows}\nmatrix: {{ key: id, file: songwav{rows}.csv }}\ndefaults: {{ mv: sonic-v5 }}\nsteps:\n\
         \x20 song:\n    action: create\n    with: {{ custom_mode: false, gpt_description_prompt: \"${{{{ matrix.idea }}}}\", tags: \"${{{{ matrix.tags }}}}\" }}\n\
         \x20 wav:\n    action: wav\n    with: {{ clip: \"${{{{ steps.song.outputs.clip_id }}}}\" }}\n"
    );
    let path = dir.join(format!("songwav{rows}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn header(id: &str, plan: &Plan) -> RunHeader {
    RunHeader {
        id: id.to_owned(),
        pipeline: plan.name.clone(),
        manifest: plan.file.clone(),
        manifest_sha256: "0".repeat(64),
        price_version: plan.prices.version(),
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
        api: Some(API.to_owned()),
        no_reuse: false,
        force: Vec::new(),
        upload_callback: None,
        out_url: None,
        price_table: None,
        group: None,
        shard: None,
    }
}

/// What the service answers for an instance: two clips for a song, a file
/// for anything else (the same every run, as a reused result is).
fn answer(plan: &Plan, f: &Forecast) -> Outputs {
    let row = f.id.row;
    let value = if plan.steps[f.id.step].id == "song" {
        let clip = |n: usize| {
            json!({
                "clip_id": format!("clip-{row}-{n}"),
                "audio_url": format!("https://cdn.example.com/{row}/{n}.mp3"),
                "image_url": format!("https://cdn.example.com/{row}/{n}.jpg"),
                "title": "A piece", "duration": 120.5,
            })
        };
        json!({ "clip_id": format!("clip-{row}-0"), "clips": [clip(0), clip(1)] })
    } else {
        json!({ "wav_url": format!("https://cdn.example.com/{row}/0.wav") })
    };
    Outputs {
        value,
        files: Vec::new(),
    }
}

/// Writes `runs` finished runs of the manifest at `path` into `state`, as
/// the driver would: each pass forecasts against what the state folder
/// holds now and records what the run does with every instance decided,
/// until nothing is left to decide.
fn earlier_runs(path: &Path, root: &Path, runs: usize) {
    let loaded = load_file(path).expect("the generated manifest loads");
    let options = Options {
        require_inputs: true,
        ..Options::default()
    };
    let plan = build(&loaded, &options).expect("the generated manifest is valid");
    let state = StateDir::local(root.to_owned());
    for k in 0..runs {
        let id = format!("earlier-{k}");
        let dir = root.join("runs").join(&id);
        let known = Known::load(&state, &plan.name, Some(API), None);
        let memory = RunMemory::start(&state, &dir, &header(&id, &plan), known, Policy::default())
            .expect("a run starts in the state folder");
        let mut recorded = std::collections::HashSet::new();
        loop {
            // What a run started now would find: earlier runs' results,
            // and this run's own so far (they are in the index already).
            let known = Known::load(&state, &plan.name, Some(API), None);
            let reader = RunMemory::read_only(known, Policy::default());
            let outlook = sonicflow::engine::forecast(&plan, &reader);
            let mut new = 0;
            for f in &outlook.instances {
                let (Some(hash), Some(fields)) = (&f.request_hash, &f.fields) else {
                    continue;
                };
                if !recorded.insert(f.id.to_string()) {
                    continue;
                }
                let step = &plan.steps[f.id.step];
                let job = Job {
                    action: step.action,
                    operation: step.operation,
                    request_hash: hash.clone(),
                    id: f.id.clone(),
                    fields: fields.clone(),
                    attempt: 1,
                };
                let outputs = answer(&plan, f);
                let from = match &f.fate {
                    Fate::Reuse { from: Some(run) } => Some(run.clone()),
                    Fate::Reuse { from: None } => continue,
                    _ => None,
                };
                let credits = if from.is_some() { 0 } else { f.unit_credits };
                if from.is_none() {
                    memory
                        .record(Record::Intent { job: &job, credits })
                        .unwrap();
                    let task = TaskRef::new(format!("task-{k}-{}", f.id));
                    let task = Some(&task).filter(|_| step.id == "song");
                    memory
                        .record(Record::Accepted {
                            job: &job,
                            task,
                            credits,
                        })
                        .unwrap();
                }
                memory
                    .record(Record::Succeeded {
                        job: &job,
                        outputs: &outputs,
                        reused_from: from.as_deref().map(Reused::Run),
                        credits,
                    })
                    .unwrap();
                new += 1;
            }
            if new == 0 {
                break;
            }
        }
        memory
            .finish("succeeded", "succeeded", Account::default(), None)
            .unwrap();
    }
}

/// Peak resident memory (kB) of a running process, from /proc.
fn peak_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One `plan` by `exe`: its wall time and peak RSS (kB).
fn plan_once(exe: &str, manifest: &Path, state: &Path, json: bool) -> (Duration, u64) {
    let mut cmd = Command::new(exe);
    cmd.arg("plan");
    if json {
        cmd.args(["--format", "json"]);
    }
    cmd.arg(manifest)
        .arg("--state")
        .arg(state)
        .args(["--api-base", API])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("the sonicflow binary starts");
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        peak = peak.max(peak_kb(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(2));
    };
    let took = start.elapsed();
    assert!(
        status.success(),
        "{exe} plan {} failed: {status}",
        manifest.display()
    );
    (took, peak)
}

/// The command cases, each timed for every binary in `exes`, alternating.
fn commands(dir: &Path, exes: &[(&str, String)], quick: bool) {
    let rows = text_arg("--rows")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 300 } else { 100_000 });
    let runs = text_arg("--runs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2 } else { 10 });
    let rounds = text_arg("--rounds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let anchor_rows = if quick { 100 } else { 1_000 };
    let anchor = dir.join(format!("matrix{anchor_rows}.yaml"));
    std::fs::write(&anchor, matrix_manifest(dir, anchor_rows)).unwrap();
    let none = dir.join("no-state");
    let manifest = song_wav_manifest(dir, rows);
    let history = dir.join(format!("state-{rows}x{runs}"));
    let start = Instant::now();
    earlier_runs(&manifest, &history, runs);
    println!(
        "\nwrote {runs} earlier runs of {rows} rows × 2 steps in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    let cases = [
        (format!("{anchor_rows} rows × 3, no state"), &anchor, &none),
        (format!("{rows} rows × 2, no state"), &manifest, &none),
        (
            format!("{rows} rows × 2, {runs} earlier runs"),
            &manifest,
            &history,
        ),
    ];
    println!(
        "\n{:<34} {:<8} {:>12} {:>10} {:>12} {:>10}",
        "case", "build", "plan --json", "peak RSS", "human plan", "peak RSS"
    );
    for (name, manifest, state) in cases {
        let mut times = vec![(Vec::new(), Vec::new(), 0, 0); exes.len()];
        for _ in 0..rounds {
            for (t, (_, exe)) in times.iter_mut().zip(exes) {
                let (json, json_kb) = plan_once(exe, manifest, state, true);
                let (human, human_kb) = plan_once(exe, manifest, state, false);
                t.0.push(json);
                t.1.push(human);
                t.2 = t.2.max(json_kb);
                t.3 = t.3.max(human_kb);
            }
        }
        for ((label, _), (json, human, json_kb, human_kb)) in exes.iter().zip(times) {
            println!(
                "{name:<34} {label:<8} {:>10.1}ms {:>8}MB {:>10.1}ms {:>8}MB",
                median(json).as_secs_f64() * 1e3,
                json_kb / 1024,
                median(human).as_secs_f64() * 1e3,
                human_kb / 1024,
            );
        }
    }
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn measure(path: &Path, render: bool, repeats: usize) -> Duration {
    let options = Options {
        require_inputs: true,
        ..Options::default()
    };
    let runs = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            let loaded = load_file(path).expect("the generated manifest loads");
            let plan = build(&loaded, &options).expect("the generated manifest is valid");
            if render {
                std::hint::black_box(render_json(&plan));
            }
            std::hint::black_box(&plan);
            start.elapsed()
        })
        .collect();
    median(runs)
}

fn main() {
    // `cargo test` runs bench targets once in test mode with `--bench` absent; keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let mut exes = vec![("this", env!("CARGO_BIN_EXE_sonicflow").to_owned())];
    if let Some(other) = text_arg("--exe") {
        exes.push(("--exe", other));
    }
    let shm = Path::new("/dev/shm");
    let base = text_arg("--dir").map(PathBuf::from).unwrap_or_else(|| {
        if shm.is_dir() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        }
    });
    let work = tempfile::tempdir_in(&base).unwrap();
    if !std::env::args().any(|a| a == "--commands-only") {
        library(quick);
    }
    commands(work.path(), &exes, quick);
}

/// The library calls `validate` and `plan` make, by size.
fn library(quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let sizes: &[usize] = if quick {
        &[300]
    } else {
        &[1_000, 10_000, 100_000]
    };
    println!(
        "{:<8} {:>8} {:>10} {:>12} {:>10} {:>12}",
        "kind", "size", "units", "validate", "plan", "plan/unit"
    );
    for &n in sizes {
        let repeats = if n >= 100_000 { 3 } else { 7 };
        for (kind, text, units) in [
            ("steps", steps_manifest(n), n.div_ceil(3) * 3),
            ("matrix", matrix_manifest(dir.path(), n), n * 3),
        ] {
            let path = dir.path().join(format!("{kind}{n}.yaml"));
            std::fs::write(&path, text).unwrap();
            let validate = measure(&path, false, repeats);
            let plan = measure(&path, true, repeats);
            println!(
                "{kind:<8} {n:>8} {units:>10} {:>10.1}ms {:>8.1}ms {:>10.2}µs",
                validate.as_secs_f64() * 1e3,
                plan.as_secs_f64() * 1e3,
                plan.as_secs_f64() * 1e6 / units as f64
            );
        }
    }
}
