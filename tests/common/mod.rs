//! Running the real `sonicflow` binary from tests and pinning its output.
#![allow(
    dead_code,
    reason = "each test crate that includes this module uses only some of its helpers"
)]
#![expect(
    clippy::expect_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

pub mod s3;

use std::path::Path;
use std::process::{Command, Output};

/// The binary under test.
pub fn sonicflow() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sonicflow"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        // Plans print their price table's age: counted from a fixed day.
        .env("SONICFLOW_TODAY", "2026-12-01")
        .env_remove("MUSICAPI_KEY")
        .env_remove("MUSICAPI_BASE_URL")
        // A test run inside a GitHub Actions job must not write its summary there.
        .env_remove("GITHUB_STEP_SUMMARY");
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

/// A `sonicflow sandbox` process for the duration of a test.
pub struct SandboxProcess {
    child: std::process::Child,
    pub url: String,
}

impl SandboxProcess {
    /// Starts `sonicflow sandbox --addr 127.0.0.1:0 <args…>` and reads its URL.
    pub fn start(args: &[&str]) -> SandboxProcess {
        use std::io::BufRead;
        let mut child = sonicflow()
            .args(["sandbox", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the sandbox starts");
        let mut url = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout is piped"))
            .read_line(&mut url)
            .expect("the sandbox prints its URL");
        SandboxProcess {
            child,
            url: url.trim().to_owned(),
        }
    }

    /// The ledger of `key`, as the sandbox's admin endpoint reports it.
    pub fn ledger(&self, key: &str) -> serde_json::Value {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let response = reqwest::Client::new()
                .get(format!("{}/_sandbox/ledger", self.url))
                .bearer_auth(key)
                .send()
                .await
                .expect("the ledger answers");
            response
                .json::<serde_json::Value>()
                .await
                .expect("the ledger is JSON")
        })
    }

    /// `sonicflow run` against this sandbox with key `key`.
    pub fn run(&self, key: &str, args: &[&str]) -> Output {
        sonicflow()
            .arg("run")
            .args(args)
            .env("MUSICAPI_BASE_URL", &self.url)
            .env("MUSICAPI_KEY", key)
            .output()
            .expect("sonicflow run runs")
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `child`'s stderr (piped, JSON log lines) until the `n`-th `event`,
/// then kills it like `kill -9` (a no-op if it already finished). Returns
/// its status and log read so far, and how many such events were seen.
pub fn kill_after_events(mut child: std::process::Child, event: &str, n: usize) -> (Output, usize) {
    use std::io::{BufRead, BufReader};
    let needle = format!("\"event\":\"{event}\"");
    let mut seen = 0;
    let mut log = Vec::new();
    let stderr = child.stderr.take().expect("stderr is piped");
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        seen += usize::from(line.contains(&needle));
        log.extend_from_slice(line.as_bytes());
        log.push(b'\n');
        if seen == n {
            break;
        }
    }
    let _ = child.kill();
    let status = child.wait().expect("the killed run is reaped");
    let output = Output {
        status,
        stdout: Vec::new(),
        stderr: log,
    };
    (output, seen)
}

/// `text` as a regular expression that matches it literally (for insta filters).
pub fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}
