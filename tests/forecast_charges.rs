//! The plan's forecast is the run's own decision: for generated pipelines
//! and generated histories of earlier runs (edited prompts, selections,
//! exclusions, forced steps, `--no-reuse`), the `to_spend` that
//! `sonicflow plan` prints equals what the following run is charged on a
//! fault-free sandbox's ledger, run after run.
#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::fmt::Write as _;
use std::path::Path;

use common::{SandboxProcess, sonicflow};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Which steps a generated pipeline has, over how many matrix rows.
#[derive(Debug, Clone)]
struct Shape {
    rows: usize,
    /// An upload and a cover of it.
    upload: bool,
    /// Stems of every clip of the song (a fan-out over an output).
    stems: bool,
    /// WAVs: of every stem when there are stems, else of the song.
    wav: bool,
    /// Songs for every item of a list held in a matrix cell.
    cells: bool,
}

/// One run of the history: each row's prompt version, and the flags.
#[derive(Debug, Clone)]
struct Run {
    versions: Vec<u8>,
    flags: Flags,
}

#[derive(Debug, Clone, Copy)]
enum Flags {
    None,
    SelectRow(usize),
    SelectStep,
    ExcludeStep,
    ForceSong,
    NoReuse,
}

impl Flags {
    /// The command-line words, for a pipeline of `shape` (a flag that does
    /// not fit it is left out).
    fn args(self, shape: &Shape) -> Vec<String> {
        let leaf = if shape.wav {
            Some("wav")
        } else if shape.stems {
            Some("stems")
        } else {
            None
        };
        let words: Vec<String> = match self {
            Flags::None => vec![],
            Flags::SelectRow(r) => vec!["--select".into(), format!("key:r{}", r % shape.rows)],
            Flags::SelectStep => match leaf {
                Some(step) => vec!["--select".into(), step.into()],
                None => vec![],
            },
            Flags::ExcludeStep => match (shape.stems, shape.upload) {
                (true, _) => vec!["--exclude".into(), "stems".into()],
                (false, true) => vec!["--exclude".into(), "up".into()],
                _ => vec![],
            },
            Flags::ForceSong => vec!["--force".into(), "song".into()],
            Flags::NoReuse => vec!["--no-reuse".into()],
        };
        words
    }
}

fn flags() -> impl Strategy<Value = Flags> {
    prop_oneof![
        3 => Just(Flags::None),
        1 => (0..3usize).prop_map(Flags::SelectRow),
        1 => Just(Flags::SelectStep),
        1 => Just(Flags::ExcludeStep),
        1 => Just(Flags::ForceSong),
        1 => Just(Flags::NoReuse),
    ]
}

fn case() -> impl Strategy<Value = (Shape, Vec<Run>)> {
    (
        1..=3usize,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|(rows, upload, stems, wav, cells)| {
            let shape = Shape {
                rows,
                upload,
                stems,
                wav,
                cells,
            };
            let run = (prop::collection::vec(0..2u8, rows), flags())
                .prop_map(|(versions, flags)| Run { versions, flags });
            (Just(shape), prop::collection::vec(run, 2..=3))
        })
}

/// Fast, yet slow enough that no task outlives its poll timeout on a busy
/// machine; the sandbox spaces paid submits at a third of the runner's pace,
/// so none is turned away with a 429 (this test is about what is paid).
const SCALE: &str = "300";

const IDEAS: [&str; 3] = ["rain on a roof", "dawn over the sea", "city at night"];

fn manifest(shape: &Shape, versions: &[u8]) -> String {
    let mut m = String::from("version: 1\nname: prop\ndefaults: { mv: sonic-v5 }\n");
    m.push_str("matrix:\n  key: id\n  rows:\n");
    for (r, version) in versions.iter().enumerate() {
        let list = ["a", "b", "c"][..1 + r % 3].join(", ");
        let _ = writeln!(
            m,
            "    - {{ id: r{r}, idea: '{} v{version}', list: [{list}] }}",
            IDEAS[r]
        );
    }
    m.push_str("steps:\n");
    m.push_str("  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: '${{ matrix.idea }}' }\n");
    if shape.upload {
        m.push_str(
            "  up:\n    action: upload\n    with: { url: 'https://example.com/demo.mp3' }\n",
        );
        m.push_str("  cov:\n    action: cover\n    with: { clip: '${{ steps.up.outputs.clip_id }}', custom_mode: false, gpt_description_prompt: '${{ matrix.idea }}, as jazz' }\n");
    }
    if shape.stems {
        m.push_str("  stems:\n    action: stems_basic\n    for_each: ${{ steps.song.outputs.clips }}\n    with: { clip: '${{ item.clip_id }}' }\n");
    }
    match (shape.wav, shape.stems) {
        (true, true) => m.push_str("  wav:\n    action: wav\n    for_each: ${{ steps.stems.outputs.stems }}\n    with: { clip: '${{ item.clip_id }}' }\n"),
        (true, false) => m.push_str("  wav:\n    action: wav\n    with: { clip: '${{ steps.song.outputs.clip_id }}' }\n"),
        _ => {}
    }
    if shape.cells {
        m.push_str("  cells:\n    action: create\n    for_each: ${{ matrix.list }}\n    with: { custom_mode: false, gpt_description_prompt: '${{ item }}: ${{ matrix.idea }}' }\n");
    }
    m
}

/// The net credits the sandbox charged `key`.
fn spent(sandbox: &SandboxProcess, key: &str) -> i64 {
    let l = sandbox.ledger(key);
    l["charged"].as_i64().unwrap() - l["refunded"].as_i64().unwrap()
}

fn to_spend(sandbox: &SandboxProcess, file: &Path, flags: &[String]) -> i64 {
    let out = sonicflow()
        .args(["plan", "--json"])
        .arg(file)
        .args(flags)
        .env("MUSICAPI_BASE_URL", &sandbox.url)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    plan["to_spend"].as_i64().unwrap()
}

/// Plans and runs each run of the history in turn; every plan's `to_spend`
/// must be what its run is then charged.
fn check(sandbox: &SandboxProcess, key: &str, shape: &Shape, runs: &[Run]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prop.yaml");
    for (n, run) in runs.iter().enumerate() {
        let text = manifest(shape, &run.versions);
        std::fs::write(&file, &text).unwrap();
        let flags = run.flags.args(shape);
        let forecast = to_spend(sandbox, &file, &flags);
        let before = spent(sandbox, key);
        let mut args = vec![
            file.to_str().unwrap().to_owned(),
            "--time-scale".into(),
            SCALE.into(),
        ];
        args.extend(flags.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sandbox.run(key, &args);
        let code = out.status.code();
        if !matches!(code, Some(0 | 1)) {
            return Err(format!(
                "run {n} {flags:?} exited {code:?}\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let charged = spent(sandbox, key) - before;
        if charged != forecast {
            return Err(format!(
                "run {n} {flags:?}: plan said {forecast} to spend, the sandbox charged {charged}\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

#[test]
fn the_plans_to_spend_is_what_the_run_is_charged() {
    let sandbox = SandboxProcess::start(&["--time-scale", SCALE, "--submit-interval", "1"]);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(12);
    let config = Config {
        cases,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..Config::default()
    };
    // The same cases on every run, so CI is deterministic; raise
    // PROPTEST_CASES to explore further.
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let case_no = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&case(), |(shape, runs)| {
        // Each case has a key of its own, so its ledger is its own.
        let n = case_no.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = format!("prop-{n}");
        check(&sandbox, &key, &shape, &runs).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Histories where the forecast once said something else than the run did.
#[test]
fn histories_that_once_drifted() {
    let sandbox = SandboxProcess::start(&["--time-scale", SCALE, "--submit-interval", "1"]);
    let shape = |rows, upload, stems, wav, cells| Shape {
        rows,
        upload,
        stems,
        wav,
        cells,
    };
    let run = |versions: &[u8], flags| Run {
        versions: versions.to_vec(),
        flags,
    };
    let cases = [
        // One row's upload result, wanted by the uploads of three rows: the
        // run gave it to another row than the plan did.
        (
            "one result for three instances",
            shape(3, true, false, true, true),
            vec![
                run(&[1, 0, 0], Flags::SelectRow(0)),
                run(&[1, 0, 0], Flags::ExcludeStep),
            ],
        ),
        // Stems excluded and new: the WAVs of their stems never run, yet
        // the plan priced them.
        (
            "a fan-out over a reuse-only step paid anew",
            shape(1, false, true, true, false),
            vec![run(&[0], Flags::ExcludeStep), run(&[0], Flags::None)],
        ),
        (
            "edited rows with excluded stems",
            shape(2, false, true, true, true),
            vec![run(&[1, 0], Flags::None), run(&[0, 1], Flags::ExcludeStep)],
        ),
    ];
    for (n, (name, shape, runs)) in cases.iter().enumerate() {
        let key = format!("drift-{n}");
        if let Err(e) = check(&sandbox, &key, shape, runs) {
            panic!("{name}: {e}");
        }
    }
}
