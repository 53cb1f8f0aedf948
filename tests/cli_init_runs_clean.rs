//! `sonicflow init`, `runs` and `clean` through the binary: every template
//! validates, plans and runs on the sandbox; `runs` lists what the state
//! folder holds, broken runs included; `clean` removes only what nothing
//! needs, and `--dry-run` changes nothing.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{SandboxProcess, render, sonicflow};
use serde_json::Value;

/// A project folder (a git repository) to run in.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    dir
}

/// `sonicflow args…` in `dir`.
fn at(dir: &Path, args: &[&str]) -> Output {
    sonicflow().current_dir(dir).args(args).output().unwrap()
}

/// The output of `sonicflow args…` in `dir`, with the folder, times, run
/// names and durations made the same on every machine and run.
fn pinned(dir: &Path, args: &[&str]) -> String {
    let out = at(dir, args);
    let text = render(args, &out);
    scrub(dir, &text)
}

fn scrub(dir: &Path, text: &str) -> String {
    let real = dir.canonicalize().unwrap();
    text.replace(&real.display().to_string(), "[dir]")
        .replace(&dir.display().to_string(), "[dir]")
}

/// Pins `text` as snapshot `name`, with times, run names, durations, sizes
/// and process ids made the same on every machine and run.
fn snap(name: &str, text: String) {
    let mut settings = insta::Settings::clone_current();
    for (pattern, with) in [
        (r"\d{8}T\d{9}Z(-\d+)?", "[stamp]"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]"),
        (r#""duration_seconds": \d+"#, r#""duration_seconds": [n]"#),
        (r"(?m)^(\[time\]\s+)\d+(h\d\dm|m\d\ds|s)(\s)", "$1[took]$3"),
        (r"\d+(\.\d+)? (KiB|MiB|GiB|bytes)", "[size]"),
        (r#""bytes(_freed)?": \d+"#, r#""bytes$1": [n]"#),
        (r"pid \d+ on host `[^`]*`", "pid [pid] on host [host]"),
    ] {
        settings.add_filter(pattern, with);
    }
    settings.bind(|| insta::assert_snapshot!(name, text));
}

fn ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json(out: &Output) -> Value {
    ok(out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                files.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    files
}

#[test]
fn every_template_validates_plans_and_runs_on_the_sandbox() {
    for template in ["nightly", "cover", "create"] {
        let dir = project();
        let file = format!("pipelines/{template}.yaml");
        let out = at(dir.path(), &["init", &file, "--template", template]);
        ok(&out);
        // The schema line names a file that is there, and is the schema.
        let text = std::fs::read_to_string(dir.path().join(&file)).unwrap();
        let first = text.lines().next().unwrap();
        let rel = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap();
        assert_eq!(rel, "../schema/pipeline.schema.json", "{template}");
        let schema = std::fs::read(dir.path().join("pipelines").join(rel)).unwrap();
        assert_eq!(schema, at(dir.path(), &["schema"]).stdout, "{template}");
        // Every step is explained.
        assert!(text.matches("\n  # ").count() >= 2, "{template}: {text}");

        ok(&at(dir.path(), &["validate", &file]));
        let plan = json(&at(dir.path(), &["plan", "--json", &file]));
        assert!(
            plan["total_credits"].as_u64().unwrap_or(0) > 0,
            "{template}: {plan}"
        );
        let out = at(
            dir.path(),
            &["run", &file, "--sandbox", "--log-format", "json"],
        );
        ok(&out);
        let runs = json(&at(dir.path(), &["runs", "--json", &file]));
        assert_eq!(runs[0]["status"], "succeeded", "{template}: {runs}");
        assert!(runs[0]["credits_net"].as_u64().unwrap() > 0);
    }
}

#[test]
fn init_says_what_it_wrote_and_what_to_try_next() {
    let dir = project();
    snap(
        "init-nightly",
        pinned(dir.path(), &["init", "--template", "nightly"]),
    );
    assert!(dir.path().join("nightly.csv").is_file());
    // A second init keeps the schema that is there.
    snap(
        "init-create-keeps-schema",
        pinned(dir.path(), &["init", "song.yaml"]),
    );
}

#[test]
fn init_json_says_what_it_wrote() {
    let dir = project();
    snap(
        "init-cover-json",
        pinned(
            dir.path(),
            &["init", "covers/one.yaml", "--template", "cover", "--json"],
        ),
    );
    let text = std::fs::read_to_string(dir.path().join("covers/one.yaml")).unwrap();
    assert!(text.contains("\nname: one\n"), "{text}");
}

#[test]
fn init_never_overwrites_without_force() {
    let dir = project();
    std::fs::write(dir.path().join("nightly.csv"), "mine\n").unwrap();
    snap(
        "init-refuses-overwrite",
        pinned(dir.path(), &["init", "--template", "nightly"]),
    );
    // Nothing was written, not even the pipeline beside the CSV.
    assert!(!dir.path().join("nightly.yaml").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("nightly.csv")).unwrap(),
        "mine\n"
    );
    ok(&at(
        dir.path(),
        &["init", "--template", "nightly", "--force"],
    ));
    assert_ne!(
        std::fs::read_to_string(dir.path().join("nightly.csv")).unwrap(),
        "mine\n"
    );
}

#[test]
fn init_lists_its_templates_in_help() {
    let out = at(Path::new("."), &["init", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for t in ["nightly:", "cover:", "create:"] {
        assert!(help.contains(t), "{help}");
    }
}

/// A project with a `create` pipeline run `n` times on the sandbox.
fn ran(n: usize) -> (tempfile::TempDir, String) {
    let dir = project();
    ok(&at(dir.path(), &["init", "song.yaml"]));
    for _ in 0..n {
        ok(&at(
            dir.path(),
            &["run", "song.yaml", "--sandbox", "--log-format", "json"],
        ));
    }
    (dir, "song.yaml".to_owned())
}

/// The run folders of the project's state folder, oldest first.
fn run_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir.join(".sonicflow/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    dirs.sort();
    dirs
}

/// Drops the journal's last line (the run's end): a run killed before it ended.
fn interrupt(run: &Path) {
    let journal = run.join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let kept = lines[..lines.len() - 1].join("\n") + "\n";
    std::fs::write(&journal, kept).unwrap();
}

#[test]
fn runs_lists_every_run_newest_first_with_broken_ones_said_so() {
    let (dir, file) = ran(3);
    let runs = run_dirs(dir.path());
    interrupt(&runs[1]);
    // A journal that is not one.
    std::fs::write(runs[0].join("journal.jsonl"), "not json\n").unwrap();
    // A run still running: its journal is held.
    let held = std::fs::File::open(runs[2].join("journal.jsonl")).unwrap();
    held.lock().unwrap();
    snap("runs-human", pinned(dir.path(), &["runs", &file]));
    snap("runs-json", pinned(dir.path(), &["runs", "--json"]));
    snap(
        "runs-limit",
        pinned(dir.path(), &["runs", "--format", "json", "--limit", "1"]),
    );
    drop(held);
    // `status` says the same of the interrupted run.
    let status: Value = serde_json::from_slice(
        &at(dir.path(), &["status", "--json", runs[1].to_str().unwrap()]).stdout,
    )
    .unwrap();
    let listed = json(&at(dir.path(), &["runs", "--json"]));
    assert_eq!(listed[1]["status"], status["state"]);
    assert_eq!(listed[1]["exit_code"], status["exit_code"]);
}

#[test]
fn runs_of_an_empty_state_folder_say_so() {
    let dir = project();
    snap("runs-none", pinned(dir.path(), &["runs"]));
}

#[test]
fn clean_needs_to_be_told_which_runs() {
    let (dir, _) = ran(0);
    snap("clean-no-selector", pinned(dir.path(), &["clean"]));
}

#[test]
fn clean_dry_run_changes_nothing_and_says_what_it_would_remove() {
    let (dir, file) = ran(3);
    let before = tree(dir.path());
    snap(
        "clean-dry-run",
        pinned(
            dir.path(),
            &["clean", &file, "--keep-last", "1", "--dry-run"],
        ),
    );
    snap(
        "clean-dry-run-json",
        pinned(
            dir.path(),
            &["clean", "--keep-last", "1", "--dry-run", "--json"],
        ),
    );
    assert!(before == tree(dir.path()), "--dry-run changed the tree");
}

#[test]
fn clean_keeps_what_is_running_or_unfinished_and_removes_the_rest() {
    let (dir, file) = ran(4);
    let runs = run_dirs(dir.path());
    interrupt(&runs[0]);
    let held = std::fs::File::open(runs[1].join("journal.jsonl")).unwrap();
    held.lock().unwrap();
    let out = pinned(dir.path(), &["clean", &file, "--keep-last", "1"]);
    drop(held);
    snap("clean-keeps-unfinished", out);
    assert!(runs[0].is_dir() && runs[1].is_dir() && runs[3].is_dir());
    assert!(!runs[2].exists());
    assert!(!dir.path().join(".sonicflow/runs/.removing").exists());
    let listed = json(&at(dir.path(), &["runs", "--json"]));
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dir"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "the removed run is out of the registry");
    assert!(!names.contains(&runs[2].to_str().unwrap()));
    // Nothing is left to take by age.
    let out = json(&at(
        dir.path(),
        &["clean", "--older-than", "1h", "--format", "json"],
    ));
    assert_eq!(out["removed"], Value::Array(Vec::new()));
}

#[test]
fn clean_keeps_the_results_reuse_would_take_unless_told() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000"]);
    let dir = project();
    ok(&at(dir.path(), &["init", "song.yaml"]));
    let run = |extra: &[&str]| {
        let out = sonicflow()
            .current_dir(dir.path())
            .args([
                "run",
                "song.yaml",
                "--time-scale",
                "1000",
                "--log-format",
                "json",
            ])
            .args(extra)
            .env("MUSICAPI_BASE_URL", &sandbox.url)
            .env("MUSICAPI_KEY", "k")
            .output()
            .unwrap();
        ok(&out);
    };
    run(&[]);
    // Reuses every result of the first: pays nothing.
    run(&[]);
    let runs = run_dirs(dir.path());
    let index = dir.path().join(".sonicflow/index.jsonl");
    let first = runs[0].display().to_string();
    let plan = |dir: &Path| {
        let out = sonicflow()
            .current_dir(dir)
            .args(["plan", "--json", "song.yaml"])
            .env("MUSICAPI_BASE_URL", &sandbox.url)
            .output()
            .unwrap();
        json(&out)["to_spend"].as_u64().unwrap()
    };
    assert_eq!(plan(dir.path()), 0);

    snap(
        "clean-keeps-reused",
        pinned(dir.path(), &["clean", "--keep-last", "1"]),
    );
    assert!(runs[0].is_dir());
    assert!(std::fs::read_to_string(&index).unwrap().contains(&first));
    assert_eq!(plan(dir.path()), 0, "nothing reuse needs was removed");

    snap(
        "clean-include-reused",
        pinned(
            dir.path(),
            &["clean", "--keep-last", "1", "--include-reused"],
        ),
    );
    assert!(!runs[0].exists());
    // Nothing points at the removed run, and its results are paid again.
    assert!(!std::fs::read_to_string(&index).unwrap().contains(&first));
    assert!(plan(dir.path()) > 0);
}

#[test]
fn clean_refuses_state_in_a_bucket_before_reading_it() {
    let (dir, _) = ran(0);
    let bucket = dir.path().join("bucket");
    let url = format!("file://{}", bucket.display());
    snap(
        "clean-bucket",
        pinned(dir.path(), &["clean", "--state", &url, "--keep-last", "1"]),
    );
    assert!(!dir.path().join(".sonicflow/stores").exists());
}

#[test]
fn clean_refuses_while_a_run_holds_its_lock_and_keeps_a_run_killed_mid_flight() {
    use std::io::{BufRead, BufReader};
    // Songs take seconds here: the run surely holds its lock while `clean` starts.
    let sandbox = SandboxProcess::start(&["--time-scale", "50", "--submit-interval", "1"]);
    let dir = project();
    ok(&at(dir.path(), &["init", "song.yaml"]));
    let mut holder = sonicflow()
        .current_dir(dir.path())
        .args([
            "run",
            "song.yaml",
            "--time-scale",
            "50",
            "--log-format",
            "json",
        ])
        .env("MUSICAPI_BASE_URL", &sandbox.url)
        .env("MUSICAPI_KEY", "k")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let submitted = BufReader::new(holder.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("\"event\":\"submitted\""));
    assert!(submitted);
    let before = tree(dir.path());
    let refused = pinned(dir.path(), &["clean", "--keep-last", "0"]);
    let _ = holder.kill();
    let _ = holder.wait();
    snap("clean-refused-by-a-live-run", refused);
    let run_files = |t: &BTreeMap<PathBuf, Vec<u8>>| {
        t.keys()
            .filter(|p| p.to_string_lossy().contains("/runs/"))
            .count()
    };
    assert!(run_files(&before) > 0);
    assert!(run_files(&tree(dir.path())) >= run_files(&before));

    // Killed with a paid song in flight: its journal is what a resume needs.
    let out = json(&at(dir.path(), &["clean", "--keep-last", "0", "--json"]));
    assert_eq!(out["removed"], Value::Array(Vec::new()), "{out}");
    let reason = out["kept"][0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("unfinished"), "{reason}");
}
