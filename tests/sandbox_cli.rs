//! The real binary: `sonicflow sandbox` prints its URL first and serves;
//! `sonicflow credits` reads the balance through `MUSICAPI_BASE_URL`.
//! Whole outputs (exit code, stdout, stderr) are pinned with insta.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use insta_cmd::assert_cmd_snapshot;

const BIN: &str = env!("CARGO_BIN_EXE_sonicflow");

/// A `sonicflow sandbox` child process, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["sandbox", "--addr", "127.0.0.1:0", "--time-scale", "1000"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let url = line.trim().to_owned();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "first line should be the URL: {line:?}"
        );
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn credits(url: &str, key: Option<&str>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("credits")
        .env("MUSICAPI_BASE_URL", url)
        .env_remove("MUSICAPI_KEY");
    if let Some(key) = key {
        cmd.env("MUSICAPI_KEY", key);
    }
    cmd
}

fn filters() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"http://127\.0\.0\.1:\d+", "[BASE_URL]");
    settings
}

#[test]
fn credits_through_the_sandbox_binary() {
    let server = Server::start(&["--balance", "120"]);
    let _guard = filters().bind_to_scope();
    assert_cmd_snapshot!("credits_fresh", credits(&server.url, Some("cli-key")));

    // Spend through plain HTTP, then the balance follows.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer: serde_json::Value = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/api/v1/sonic/upload", server.url))
            .bearer_auth("cli-key")
            .json(&serde_json::json!({"url": "https://example.com/a.mp3"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert!(answer["clip_id"].is_string(), "{answer}");
    assert_cmd_snapshot!(
        "credits_after_upload",
        credits(&server.url, Some("cli-key"))
    );
}

#[test]
fn credits_without_a_key_names_the_fix() {
    let _guard = filters().bind_to_scope();
    assert_cmd_snapshot!("credits_no_key", credits("http://127.0.0.1:9", None));
}

#[test]
fn credits_with_a_refused_key_exits_4() {
    let server = Server::start(&["--key", "the-only-key"]);
    let _guard = filters().bind_to_scope();
    assert_cmd_snapshot!(
        "credits_refused_key",
        credits(&server.url, Some("another-key"))
    );
}

#[test]
fn sandbox_rejects_a_bad_faults_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faults.yaml");
    std::fs::write(&path, "http_500: 1.5\n").unwrap();
    let mut settings = filters();
    settings.add_filter(
        &common::regex_escape(&path.display().to_string()),
        "[FAULTS]",
    );
    let _guard = settings.bind_to_scope();
    let mut cmd = Command::new(BIN);
    cmd.args(["sandbox", "--faults"]).arg(&path);
    assert_cmd_snapshot!("sandbox_bad_faults", cmd);
}

/// The built-in price table's YAML with `operation` priced `credits`.
fn prices_with(operation: &str, credits: u64) -> String {
    let builtin = std::fs::read_to_string("src/prices/builtin.yaml").unwrap();
    let prefix = format!("  {operation}: ");
    let lines: Vec<String> = builtin
        .lines()
        .map(|line| match line.strip_prefix(&prefix) {
            Some(_) => format!("{prefix}{credits}"),
            None => line.to_owned(),
        })
        .collect();
    assert!(lines.iter().any(|l| *l == format!("{prefix}{credits}")));
    lines.join("\n") + "\n"
}

#[test]
fn sandbox_charges_from_the_price_table_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prices.yaml");
    std::fs::write(&path, prices_with("upload", 7)).unwrap();
    let server = Server::start(&["--balance", "100", "--prices", path.to_str().unwrap()]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ledger: serde_json::Value = runtime.block_on(async {
        let http = reqwest::Client::new();
        http.post(format!("{}/api/v1/sonic/upload", server.url))
            .bearer_auth("cli-key")
            .json(&serde_json::json!({"url": "https://example.com/a.mp3"}))
            .send()
            .await
            .unwrap();
        http.get(format!("{}/_sandbox/ledger", server.url))
            .bearer_auth("cli-key")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(ledger["charged"], 7, "{ledger}");
    assert_eq!(ledger["balance"], 93, "{ledger}");
}

#[test]
fn sandbox_rejects_a_bad_price_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prices.yaml");
    std::fs::write(&path, "name: a\ndate: b\nsource: c\nprices: {upload: 1}\n").unwrap();
    let mut settings = filters();
    settings.add_filter(
        &common::regex_escape(&path.display().to_string()),
        "[PRICES]",
    );
    let _guard = settings.bind_to_scope();
    let mut cmd = Command::new(BIN);
    cmd.args(["sandbox", "--prices"]).arg(&path);
    assert_cmd_snapshot!("sandbox_bad_prices", cmd);
    let mut missing = Command::new(BIN);
    missing
        .args(["sandbox", "--prices"])
        .arg(dir.path().join("nowhere.yaml"));
    let out = missing.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the price table") && err.contains("nowhere.yaml"),
        "{err}"
    );
}

#[test]
fn sandbox_help_lists_its_flags() {
    let mut cmd = Command::new(BIN);
    cmd.args(["sandbox", "--help"]);
    assert_cmd_snapshot!("sandbox_help", cmd);
}

#[test]
fn credits_reads_the_key_file_and_names_a_missing_one() {
    let server = Server::start(&["--key", "file-key", "--balance", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.txt");
    std::fs::write(&key_file, "file-key\n").unwrap();
    // As a key file should be: readable by its owner only (else a warning).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut settings = filters();
    settings.add_filter(
        &common::regex_escape(&dir.path().display().to_string()),
        "[DIR]",
    );
    let _guard = settings.bind_to_scope();
    let mut cmd = credits(&server.url, None);
    cmd.arg("--api-key-file").arg(&key_file);
    assert_cmd_snapshot!("credits_key_file", cmd);
    let mut cmd = credits(&server.url, None);
    cmd.arg("--api-key-file")
        .arg(dir.path().join("missing.txt"));
    assert_cmd_snapshot!("credits_missing_key_file", cmd);
}
