//! Running the real `sonicflow` binary from tests and pinning its output.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

/// The binary under test.
pub fn sonicflow() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sonicflow"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env_remove("MUSICAPI_KEY")
        .env_remove("MUSICAPI_BASE_URL");
    cmd
}

/// Runs `sonicflow args…` and returns exit code, stdout and stderr as one text.
pub fn run(args: &[&str]) -> String {
    let output = sonicflow()
        .args(args)
        .output()
        .expect("the sonicflow binary runs");
    render(args, &output)
}

pub fn render(args: &[&str], output: &Output) -> String {
    format!(
        "$ sonicflow {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        output
            .status
            .code()
            .map_or("signal".to_owned(), |c| c.to_string()),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Files in `dir` (relative to the crate) ending in `ext`, sorted.
pub fn files(dir: &str, ext: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(root.join(dir))
        .expect("the folder exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    names.sort();
    names.into_iter().map(|n| format!("{dir}/{n}")).collect()
}
