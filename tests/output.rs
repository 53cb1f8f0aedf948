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
