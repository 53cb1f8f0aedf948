//! What goes where: stdout closed early (`… | head -1`) ends a command
//! quietly, and a long source line is shown as a window, not whole.
#![expect(clippy::unwrap_used, reason = "tests fail by panicking")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::sonicflow;

/// Runs `args` with stdout a pipe whose reader goes away after `lines`
/// lines; returns the exit code and stderr.
fn closing_stdout_after(args: &[&str], lines: usize) -> (Option<i32>, String) {
    let mut child = sonicflow()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    for _ in 0..lines {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
    }
    drop(reader);
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_closed_stdout_ends_each_command_quietly() {
    let commands: &[&[&str]] = &[
        &["plan", "pipelines/nightly.yaml"],
        &["plan", "--json", "pipelines/nightly.yaml"],
        &["schema"],
        &["schema", "--results"],
        &[
            "validate",
            "pipelines/nightly.yaml",
            "pipelines/analyse.yaml",
        ],
        &[
            "validate",
            "--format",
            "json",
            "tests/fixtures/invalid/cycle.yaml",
        ],
    ];
    for args in commands {
        // Closed before anything is written, and after the first line (`head -1`).
        for lines in [0, 1] {
            let (code, stderr) = closing_stdout_after(args, lines);
            let expected = if args[0] == "validate" && args.len() == 4 {
                2
            } else {
                0
            };
            assert_eq!(code, Some(expected), "{args:?} after {lines}: {stderr}");
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
            assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        }
    }
}

#[test]
fn stdout_that_cannot_be_written_is_an_error() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return;
    };
    let output = sonicflow().arg("schema").stdout(full).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write to stdout"), "{stderr}");
}

#[test]
fn run_prints_its_results_path_or_json_summary_on_stdout_and_the_rest_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("p.yaml");
    std::fs::copy("pipelines/cover-and-stems.yaml", &manifest).unwrap();
    let run = |extra: &[&str]| {
        sonicflow()
            .args(["run", "--sandbox", "--time-scale", "2000"])
            .arg(&manifest)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let path = stdout.strip_suffix('\n').unwrap();
    assert!(!path.contains('\n'), "one line: {stdout}");
    assert!(path.ends_with("/results.json"), "{stdout}");
    assert!(std::path::Path::new(path).is_file(), "{path}");
    assert!(
        stderr.contains("status: succeeded"),
        "the summary stays on stderr: {stderr}"
    );

    let out = run(&["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!(summary["totals"]["credits_charged"], 81, "{summary}");
    let path = summary["path"].as_str().unwrap();
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(results["totals"], summary["totals"]);
}
