//! What a review reads: the plan in Markdown, the cost difference against
//! another manifest or a git revision, the graph, and the Markdown summary
//! of a run (`--summary-md`, `$GITHUB_STEP_SUMMARY`).
#![expect(
    clippy::expect_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{SandboxProcess, regex_escape, render, run, sonicflow};

/// A pipeline over an inline matrix: a song per row, a WAV of it, a BPM.
const BASE: &str = "version: 1
name: review
matrix:
  key: id
  file: rows.csv
defaults: { mv: sonic-v5 }
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: '${{ matrix.idea }}' }
  wav:
    action: wav
    with: { clip: '${{ steps.song.outputs.clip_id }}' }
  tempo:
    action: bpm
    with: { clip: '${{ steps.song.outputs.clip_id }}' }
";

/// BASE changed: `tempo` gone, `wav` per clip, `stems` new.
const CHANGED: &str = "version: 1
name: review
matrix:
  key: id
  file: rows.csv
defaults: { mv: sonic-v5 }
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: '${{ matrix.idea }}' }
  wav:
    action: wav
    for_each: ${{ steps.song.outputs.clips }}
    with: { clip: '${{ item.clip_id }}' }
  stems:
    action: stems_basic
    with: { clip: '${{ steps.song.outputs.clip_id }}' }
";

const ROWS: &str = "id,idea\nrain,rain on a roof\ndawn,sunrise\n";
const MORE_ROWS: &str = "id,idea\nrain,rain on a roof\ndawn,sunrise\ndrive,a night drive\n";

/// `sonicflow args…` run in `dir`, rendered as `common::run` renders.
fn run_in(dir: &Path, args: &[&str]) -> String {
    let output = sonicflow()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("sonicflow runs");
    render(args, &output)
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("a file in the temporary folder");
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_SYSTEM", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A temporary repository with `files` committed.
fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    git(dir.path(), &["init", "--quiet", "--initial-branch", "main"]);
    git(dir.path(), &["config", "user.name", "Review Test"]);
    git(dir.path(), &["config", "user.email", "review@example.com"]);
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    git(dir.path(), &["add", "--all"]);
    git(dir.path(), &["commit", "--quiet", "--message", "base"]);
    dir
}

#[test]
fn the_plan_in_markdown_has_a_table_per_step_totals_prices_and_budget() {
    for name in ["nightly", "cover-and-stems", "nightly-mashup"] {
        let file = format!("pipelines/{name}.yaml");
        let out = run(&["plan", &file, "--format", "markdown"]);
        assert!(out.contains("exit: 0\n"), "{out}");
        insta::assert_snapshot!(format!("plan-markdown-{name}"), out);
    }
}

#[test]
fn json_is_a_format_and_the_old_flag_still_prints_it() {
    let file = "pipelines/nightly.yaml";
    let flag = sonicflow().args(["plan", "--json", file]).output().unwrap();
    let format = sonicflow()
        .args(["plan", "--format", "json", file])
        .output()
        .unwrap();
    assert_eq!(flag.status.code(), Some(0));
    assert_eq!(flag.stdout, format.stdout);
    let value: serde_json::Value = serde_json::from_slice(&format.stdout).unwrap();
    assert_eq!(value["total_credits"], 66);
}

#[test]
fn github_format_prints_the_problems_as_annotations() {
    let out = run(&[
        "plan",
        "tests/fixtures/invalid/cycle.yaml",
        "--format",
        "github",
    ]);
    assert!(out.contains("exit: 2\n"), "{out}");
    assert!(
        out.contains("::error file=tests/fixtures/invalid/cycle.yaml,line="),
        "{out}"
    );
    insta::assert_snapshot!("plan-github-invalid", out);
    let valid = run(&["plan", "pipelines/nightly.yaml", "--format", "github"]);
    assert_eq!(
        valid.replace(" --format github", ""),
        run(&["plan", "pipelines/nightly.yaml"])
    );
}

#[test]
fn the_cost_difference_against_another_manifest_names_each_change() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rows.csv", ROWS);
    write(dir.path(), "base.yaml", BASE);
    write(dir.path(), "pipeline.yaml", CHANGED);
    for format in ["human", "markdown"] {
        let out = run_in(
            dir.path(),
            &[
                "plan",
                "pipeline.yaml",
                "--compare",
                "base.yaml",
                "--format",
                format,
            ],
        );
        assert!(out.contains("exit: 0\n"), "{out}");
        insta::assert_snapshot!(format!("compare-files-{format}"), out);
    }
    let markdown = sonicflow()
        .current_dir(dir.path())
        .args(["plan", "pipeline.yaml", "--compare", "base.yaml"])
        .args(["--format", "markdown"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&markdown.stdout).starts_with("<!-- sonicflow-cost -->\n"),
        "the marker a CI job finds its comment by comes first"
    );
}

#[test]
fn the_cost_difference_in_json_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rows.csv", ROWS);
    write(dir.path(), "base.yaml", BASE);
    write(dir.path(), "pipeline.yaml", CHANGED);
    let out = sonicflow()
        .current_dir(dir.path())
        .args(["plan", "pipeline.yaml", "--compare", "base.yaml"])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = v["steps"].as_array().unwrap();
    let sum: i64 = steps
        .iter()
        .map(|s| s["difference"].as_i64().unwrap())
        .sum();
    assert_eq!(v["difference"].as_i64(), Some(sum));
    assert_eq!(
        v["difference"].as_i64().unwrap(),
        v["total_after"].as_i64().unwrap() - v["total_before"].as_i64().unwrap()
    );
    // The same totals as `plan` prints for each side alone.
    for (file, key) in [
        ("base.yaml", "total_before"),
        ("pipeline.yaml", "total_after"),
    ] {
        let plan = sonicflow()
            .current_dir(dir.path())
            .args(["plan", "--format", "json", file])
            .output()
            .unwrap();
        let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
        assert_eq!(plan["total_credits"], v[key], "{file}");
    }
    insta::assert_json_snapshot!("compare-files-json", v);
}

#[test]
fn the_cost_difference_against_a_git_revision_reads_the_manifest_and_its_matrix_there() {
    let dir = repo(&[("pipeline.yaml", BASE), ("rows.csv", ROWS)]);
    // The change: a different pipeline, and one more matrix row.
    write(dir.path(), "pipeline.yaml", CHANGED);
    write(dir.path(), "rows.csv", MORE_ROWS);
    for format in ["human", "markdown"] {
        let out = run_in(
            dir.path(),
            &[
                "plan",
                "pipeline.yaml",
                "--compare",
                "HEAD",
                "--format",
                format,
            ],
        );
        assert!(out.contains("exit: 0\n"), "{out}");
        insta::assert_snapshot!(format!("compare-git-{format}"), out);
    }
    // From another folder, the repository is the manifest's.
    let elsewhere = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.yaml");
    let from_outside = sonicflow()
        .current_dir(elsewhere.path())
        .args(["plan", path.to_str().unwrap(), "--compare", "HEAD"])
        .args(["--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&from_outside.stdout).unwrap();
    assert_eq!(v["total_before"], 2 * (20 + 2 + 1), "two rows at HEAD");
}

#[test]
fn a_manifest_absent_at_the_revision_makes_every_step_new() {
    let dir = repo(&[("README", "nothing yet\n")]);
    write(dir.path(), "rows.csv", ROWS);
    write(dir.path(), "pipeline.yaml", BASE);
    let out = run_in(dir.path(), &["plan", "pipeline.yaml", "--compare", "HEAD"]);
    assert!(out.contains("exit: 0\n"), "{out}");
    insta::assert_snapshot!("compare-git-absent", out);
}

#[test]
fn a_base_that_is_neither_a_file_nor_a_revision_is_refused_with_the_fix() {
    let dir = repo(&[("pipeline.yaml", BASE), ("rows.csv", ROWS)]);
    let unknown = run_in(
        dir.path(),
        &["plan", "pipeline.yaml", "--compare", "origin/main"],
    );
    assert!(unknown.contains("exit: 2\n"), "{unknown}");
    insta::assert_snapshot!("compare-unknown-revision", unknown);

    let plain = tempfile::tempdir().unwrap();
    write(plain.path(), "rows.csv", ROWS);
    write(plain.path(), "pipeline.yaml", BASE);
    let no_repo = sonicflow()
        .current_dir(plain.path())
        .args(["plan", "pipeline.yaml", "--compare", "HEAD"])
        .env("GIT_CEILING_DIRECTORIES", plain.path().parent().unwrap())
        .output()
        .unwrap();
    let text = render(&["plan", "pipeline.yaml", "--compare", "HEAD"], &no_repo);
    assert!(text.contains("exit: 2\n"), "{text}");
    insta::assert_snapshot!("compare-not-a-repository", text);
}

#[test]
fn a_matrix_file_absent_at_the_revision_is_reported_against_it() {
    let dir = repo(&[("pipeline.yaml", BASE), ("rows.csv", ROWS)]);
    git(dir.path(), &["mv", "rows.csv", "prompts.csv"]);
    git(dir.path(), &["commit", "--quiet", "--message", "rename"]);
    let renamed = BASE.replace("rows.csv", "prompts.csv");
    write(dir.path(), "pipeline.yaml", &renamed);
    git(
        dir.path(),
        &["commit", "--quiet", "--all", "--message", "fix"],
    );
    let out = run_in(
        dir.path(),
        &["plan", "pipeline.yaml", "--compare", "HEAD~1"],
    );
    assert!(out.contains("exit: 2\n"), "{out}");
    assert!(out.contains("not in revision `HEAD~1`"), "{out}");
}

#[test]
fn the_graph_in_mermaid_and_dot_shows_the_matrix_fan_outs_and_credits() {
    for name in ["nightly", "cover-and-stems", "nightly-mashup"] {
        let file = format!("pipelines/{name}.yaml");
        for format in ["mermaid", "dot"] {
            let out = run(&["graph", &file, "--format", format]);
            assert!(out.contains("exit: 0\n"), "{out}");
            insta::assert_snapshot!(format!("graph-{format}-{name}"), out);
        }
    }
}

#[test]
fn mermaid_node_ids_are_plain_and_labels_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let text = "version: 1\nname: odd\nsteps:\n  end:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }\n  my-wav:\n    action: wav\n    with: { clip: '${{ steps.end.outputs.clip_id }}' }\n";
    write(dir.path(), "odd.yaml", text);
    let out = sonicflow()
        .current_dir(dir.path())
        .args(["graph", "odd.yaml"])
        .output()
        .unwrap();
    let mermaid = String::from_utf8_lossy(&out.stdout);
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(mermaid.contains("  s0_end[\"end<br/>"), "{mermaid}");
    assert!(mermaid.contains("  s1_my_wav[\"my-wav<br/>"), "{mermaid}");
    assert!(mermaid.contains("  s0_end --> s1_my_wav\n"), "{mermaid}");
}

/// Filters for what changes between runs of a summary.
fn summary_filters(run_dir: &Path) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(&run_dir.display().to_string()), "[RUN]");
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "[TIME]");
    settings.add_filter(r"sonicflow \d+\.\d+\.\d+\S*", "sonicflow [VERSION]");
    settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    settings.add_filter(r"\| wall time \| [^|]* \|", "| wall time | [WALL] |");
    settings
}

#[test]
fn a_run_writes_its_markdown_summary_and_appends_it_to_the_job_summary() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let summary = dir.path().join("summary.md");
    let job = dir.path().join("job-summary.md");
    std::fs::write(&job, "## an earlier step\n").unwrap();
    let out = sonicflow()
        .args(["run", "pipelines/cover-and-stems.yaml", "--sandbox"])
        .args(["--max-in-flight", "1", "--log-format", "json", "--out"])
        .arg(&run_dir)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--summary-md")
        .arg(&summary)
        .env("GITHUB_STEP_SUMMARY", &job)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(&summary).unwrap();
    let appended = std::fs::read_to_string(&job).unwrap();
    assert_eq!(appended, format!("## an earlier step\n{written}\n"));
    assert!(
        written.contains("| **total** | 6 | 6 | 0 | 81 | 81 |"),
        "{written}"
    );
    summary_filters(&run_dir).bind(|| {
        insta::assert_snapshot!("run-summary-markdown", written);
    });
}

#[test]
fn the_summary_of_a_failed_run_has_every_failure_whole_and_the_sends_in_doubt() {
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.yaml");
    std::fs::write(&faults, "drop_after_charge: 1\n").unwrap();
    let sandbox = SandboxProcess::start(&[
        "--time-scale",
        "1000",
        "--seed",
        "0",
        "--faults",
        faults.to_str().unwrap(),
    ]);
    let run_dir = dir.path().join("run");
    let summary = dir.path().join("summary.md");
    let out = sandbox.run(
        "kreview",
        &[
            "pipelines/analyse.yaml",
            "--time-scale",
            "1000",
            "--log-format",
            "json",
            "--no-observe-charges",
            "--out",
            run_dir.to_str().unwrap(),
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
            "--summary-md",
            summary.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let written = std::fs::read_to_string(&summary).unwrap();
    assert!(written.contains("#### Failed (1)"), "{written}");
    assert!(written.contains("#### In doubt (1)"), "{written}");
    assert!(written.contains("--resend-in-doubt"), "{written}");
    let mut settings = summary_filters(&run_dir);
    settings.add_filter(&regex_escape(&sandbox.url), "[SANDBOX]");
    // The transport's own words for a dropped connection vary with timing.
    settings.add_filter(r"was sent\): [^;]*;", "was sent): [TRANSPORT ERROR];");
    settings.bind(|| {
        insta::assert_snapshot!("run-summary-markdown-failed", written);
    });
}

#[test]
fn a_summary_that_cannot_be_written_is_a_warning_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let out = sonicflow()
        .args(["run", "pipelines/analyse.yaml", "--sandbox"])
        .args(["--log-format", "json", "--out"])
        .arg(dir.path().join("run"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--summary-md")
        .arg(dir.path().join("no-such-folder").join("summary.md"))
        .env(
            "GITHUB_STEP_SUMMARY",
            dir.path().join("missing").join("job.md"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: cannot write the Markdown summary to"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: cannot append the Markdown summary to"),
        "{stderr}"
    );
}
