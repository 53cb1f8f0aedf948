//! Benchmark: `validate` and `plan` on generated manifests.
//!
//! Run with `cargo bench --bench plan` (release build). For each size it
//! prints the median wall time of several runs of the same library calls the
//! commands make — read the file, load, build the plan, and (for `plan`)
//! render it as JSON — and the time per step, so linearity is visible as a
//! flat per-step column from 1k to 100k.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark whose setup fails has nothing to measure; the panic says why"
)]

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use sonicflow::commands::plan::render_json;
use sonicflow::manifest::load::load_file;
use sonicflow::plan::{Options, build};

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
