//! Resuming at the edges, end to end through the binary against a
//! standalone sandbox and checked on its ledger: a journal torn in the
//! middle by a full disk, a run started with `--no-reuse`, an earlier
//! upload whose dependents' results decide which one is reused, an
//! upload killed after the service accepted it, and a send in doubt whose
//! attempts every resume lists.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{SandboxProcess, render, sonicflow};
use serde_json::Value;

/// Three rows, each a song exported as WAV: 3 × (15 + 2) credits, one
/// request at a time.
const SONGS: &str = "version: 1
name: songs
defaults: { mv: sonic-v5 }
limits: { max_in_flight: 1 }
poll: { initial_delay: 20s, interval: 15s, timeout: 1h }
matrix:
  key: id
  rows:
    - { id: a, idea: calm piano }
    - { id: b, idea: upbeat synth }
    - { id: c, idea: slow strings }
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: '${{ matrix.idea }}' }
  wav:
    action: wav
    with: { clip: '${{ steps.song.outputs.clip_id }}' }
";

/// Credits of one whole run of [`SONGS`].
const SONGS_COST: u64 = 3 * (20 + 2);

/// A sandbox and a folder for pipelines, run folders and state.
struct Bench {
    dir: tempfile::TempDir,
    sandbox: SandboxProcess,
}

impl Bench {
    fn new() -> Bench {
        Bench {
            dir: tempfile::tempdir().unwrap(),
            sandbox: SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", "0"]),
        }
    }

    /// Writes `text` as a pipeline file; returns its path.
    fn pipeline(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `sonicflow ARGS…` against the sandbox with API key `key`.
    fn command(&self, key: &str, crash: Option<&str>) -> Command {
        let mut cmd = sonicflow();
        cmd.env("MUSICAPI_BASE_URL", &self.sandbox.url)
            .env("MUSICAPI_KEY", key)
            .env_remove("SONICFLOW_CRASH_AT");
        if let Some(point) = crash {
            cmd.env("SONICFLOW_CRASH_AT", point);
        }
        cmd
    }

    /// `sonicflow run FILE --out OUT EXTRA…`, with the state folder of `key`.
    fn run(&self, key: &str, file: &str, out: &str, extra: &[&str], crash: Option<&str>) -> Output {
        let (out, state) = (self.path(out), self.path(&format!("state-{key}")));
        self.command(key, crash)
            .args(["run", file, "--time-scale", "1000", "--out"])
            .arg(&out)
            .arg("--state-dir")
            .arg(&state)
            .args(extra)
            .output()
            .unwrap()
    }

    /// `sonicflow run --resume OUT EXTRA…`.
    fn resume(&self, key: &str, out: &str, extra: &[&str], crash: Option<&str>) -> Output {
        self.command(key, crash)
            .args(["run", "--time-scale", "1000", "--resume"])
            .arg(self.path(out))
            .args(extra)
            .output()
            .unwrap()
    }

    /// Credits the sandbox charged key `key`, net of refunds.
    fn charged(&self, key: &str) -> u64 {
        let ledger = self.sandbox.ledger(key);
        ledger["charged"].as_u64().unwrap() - ledger["refunded"].as_u64().unwrap()
    }
}

fn show(output: &Output) -> String {
    render(&["…"], output)
}

fn aborted(output: &Output) -> bool {
    !output.status.success() && output.status.code().is_none_or(|c| c == 134)
}

fn results(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

/// The step instances of `results.json` in `out` taken from another run.
fn reused_from_others(out: &Path) -> Vec<String> {
    let own = out.file_name().unwrap().to_str().unwrap();
    results(out)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            i["reused_from"]
                .as_str()
                .is_some_and(|r| !r.is_empty() && r != own)
        })
        .map(|i| format!("{}[{}]", i["step"], i["row_key"]))
        .collect()
}

/// A disk that filled for a moment, under a writer that did not cut its
/// failed write back, leaves half a record glued to the front of the next
/// one in the middle of the journal. `status` and `run --resume` must still
/// read it, and the resume must pay for nothing twice.
#[test]
fn a_journal_torn_in_the_middle_by_a_full_disk_is_still_resumed_paying_once() {
    let bench = Bench::new();
    let file = bench.pipeline("songs.yaml", SONGS);
    let crashed = bench.run("torn", &file, "torn", &[], Some("after:succeeded:3"));
    assert!(aborted(&crashed), "{}", show(&crashed));
    let journal = bench.path("torn").join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert!(lines.len() > 4, "{text}");
    // The record the failed write was making, cut after 40 bytes.
    let torn: String = lines[2].chars().take(40).collect();
    let at = lines.len() - 2;
    lines[at] = format!("{torn}{}", lines[at]);
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();

    let status = bench
        .command("torn", None)
        .args(["status", "--json"])
        .arg(bench.path("torn"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(!stderr.contains("not a record"), "{}", show(&status));
    let summary: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(summary["succeeded"], 3, "{summary}");

    let resumed = bench.resume("torn", "torn", &[], None);
    assert_eq!(resumed.status.code(), Some(0), "{}", show(&resumed));
    assert_eq!(results(&bench.path("torn"))["status"], "succeeded");
    assert_eq!(bench.charged("torn"), SONGS_COST, "each request paid once");
}

/// A `--no-reuse` run killed half-way, then resumed: without the flag
/// (the journal remembers it) and with it. Either way the run takes
/// nothing from the finished run before it and pays nothing of its own
/// twice: the key is charged two whole runs, no more and no less.
#[test]
fn a_no_reuse_run_is_resumed_with_its_own_results_and_nothing_of_other_runs() {
    let bench = Bench::new();
    let file = bench.pipeline("songs.yaml", SONGS);
    for (key, flags) in [("plain", &[][..]), ("flagged", &["--no-reuse"][..])] {
        let first = bench.run(key, &file, &format!("{key}-first"), &[], None);
        assert_eq!(first.status.code(), Some(0), "{}", show(&first));
        assert_eq!(bench.charged(key), SONGS_COST);

        let out = format!("{key}-again");
        let crashed = bench.run(key, &file, &out, &["--no-reuse"], Some("after:succeeded:3"));
        assert!(aborted(&crashed), "{}", show(&crashed));
        let resumed = bench.resume(key, &out, flags, None);
        assert_eq!(resumed.status.code(), Some(0), "{}", show(&resumed));
        assert_eq!(
            reused_from_others(&bench.path(&out)),
            Vec::<String>::new(),
            "resumed with {flags:?}: nothing is taken from the first run"
        );
        assert_eq!(
            bench.charged(key),
            2 * SONGS_COST,
            "resumed with {flags:?}: the run paid for each request once"
        );
    }
}

/// An upload covered once: 2 + 15 credits.
const UPLOAD: &str = "version: 1
name: upload
defaults: { mv: sonic-v5 }
limits: { max_in_flight: 1 }
poll: { initial_delay: 20s, interval: 15s, timeout: 1h }
steps:
  upload:
    action: upload
    with: { url: 'https://example.com/demo.mp3' }
  cover:
    action: cover
    with: { clip: '${{ steps.upload.outputs.clip_id }}', custom_mode: false, gpt_description_prompt: jazz }
";

/// Where the sandbox announces finished uploads: nothing listens there.
const CALLBACK: &str = "http://127.0.0.1:9/upload-done";

/// With `--upload-callback` the service answers an upload with a task id
/// at once, and that answer is durable before the upload finishes: a run
/// killed after it (here: once the finished upload was polled, before its
/// result was recorded) re-attaches to the task on resume, and the upload
/// is paid once.
#[test]
fn an_upload_killed_after_the_service_accepted_it_is_re_attached_on_resume() {
    let bench = Bench::new();
    let file = bench.pipeline("upload.yaml", UPLOAD);
    let flags = ["--upload-callback", CALLBACK];
    let crashed = bench.run("task", &file, "task", &flags, Some("before:succeeded:1"));
    assert!(aborted(&crashed), "{}", show(&crashed));
    let resumed = bench.resume("task", "task", &[], None);
    assert_eq!(resumed.status.code(), Some(0), "{}", show(&resumed));
    let results = results(&bench.path("task"));
    assert_eq!(results["status"], "succeeded", "{results}");
    let upload = &results["steps"][0];
    assert_eq!(upload["step"], "upload");
    assert!(upload["task_id"].is_string(), "{upload}");
    let ledger = bench.sandbox.ledger("task");
    let uploads = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "charge" && e["operation"] == "upload")
        .count();
    assert_eq!(uploads, 1, "{ledger}");
    assert_eq!(bench.charged("task"), 2 + 15);
}

/// A bad `--upload-callback` is refused before anything is sent, naming the flag's value.
#[test]
fn an_upload_callback_that_is_no_http_url_is_refused() {
    let bench = Bench::new();
    let file = bench.pipeline("upload.yaml", UPLOAD);
    let refused = bench.run(
        "bad",
        &file,
        "bad",
        &["--upload-callback", "ftp://x/y"],
        None,
    );
    assert_eq!(refused.status.code(), Some(2), "{}", show(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("`ftp://x/y` is not an http(s) URL"),
        "{stderr}"
    );
    assert_eq!(bench.charged("bad"), 0);
}

/// Three rows, each an upload of its own source covered once: 3 × (2 + 15).
const COVERS: &str = "version: 1
name: covers
defaults: { mv: sonic-v5 }
limits: { max_in_flight: 1 }
poll: { initial_delay: 20s, interval: 15s, timeout: 1h }
matrix:
  key: id
  rows:
    - { id: r00, src: 'https://example.com/0.mp3' }
    - { id: r01, src: 'https://example.com/1.mp3' }
    - { id: r02, src: 'https://example.com/2.mp3' }
steps:
  upload:
    action: upload
    with: { url: '${{ matrix.src }}' }
  cover:
    action: cover
    with: { clip: '${{ steps.upload.outputs.clip_id }}', custom_mode: false, gpt_description_prompt: jazz }
";

/// After a whole run, a `--no-reuse` run uploads every row again but
/// covers only `r00`. The next plain run has two uploads to choose from
/// per row: it must take, for `r01` and `r02`, the older one whose cover
/// can be reused, not the newer one whose cover would be paid again; and
/// `plan` must say so row by row.
#[test]
fn the_upload_whose_dependents_can_be_reused_is_preferred_over_a_newer_one() {
    let bench = Bench::new();
    let file = bench.pipeline("covers.yaml", COVERS);
    let full = bench.run("pick", &file, "full", &[], None);
    assert_eq!(full.status.code(), Some(0), "{}", show(&full));
    let narrow = ["--no-reuse", "--select", "upload", "--select", "r00"];
    let again = bench.run("pick", &file, "again", &narrow, None);
    assert_eq!(again.status.code(), Some(0), "{}", show(&again));
    let paid = bench.charged("pick");
    assert!(
        paid > 3 * (2 + 15),
        "the narrow run paid for uploads again: {paid}"
    );

    let plan = bench
        .command("pick", None)
        .args(["plan", "--json", &file, "--state-dir"])
        .arg(bench.path("state-pick"))
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", show(&plan));
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["to_spend"], 0, "{plan:#}");
    for row in plan["steps"].as_array().unwrap() {
        assert_eq!(row["to_spend"], 0, "{row:#}");
    }

    let plain = bench.run("pick", &file, "plain", &[], None);
    assert_eq!(plain.status.code(), Some(0), "{}", show(&plain));
    assert_eq!(bench.charged("pick"), paid, "the plain run paid nothing");
}

/// One song, sent once.
const ONE_SONG: &str = "version: 1
name: one
defaults: { mv: sonic-v5 }
poll: { initial_delay: 20s, interval: 15s, timeout: 1h }
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: calm piano }
";

/// When the journal of run folder `out` says `inst` was sent, by attempt.
fn intents(out: &Path, inst: &str) -> Vec<(u64, String)> {
    std::fs::read_to_string(out.join("journal.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "intent" && e["inst"] == inst)
        .map(|e| {
            (
                e["attempt"].as_u64().unwrap(),
                e["at"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A send left in doubt by a killed run is listed among the instance's
/// attempts by every later resume: its number, when it was sent (not when
/// the resume met it) and that it is in doubt.
#[test]
fn a_send_in_doubt_keeps_its_attempts_in_the_results_of_every_resume() {
    let bench = Bench::new();
    let file = bench.pipeline("one.yaml", ONE_SONG);
    let crashed = bench.run("doubt", &file, "doubt", &[], Some("before:accepted:1"));
    assert!(aborted(&crashed), "{}", show(&crashed));
    let run = bench.path("doubt");
    let sent = intents(&run, "song");
    assert_eq!(sent.len(), 1, "{sent:?}");
    for resume in 1..=2 {
        let resumed = bench.resume("doubt", "doubt", &[], None);
        assert_eq!(resumed.status.code(), Some(1), "{}", show(&resumed));
        let results = results(&run);
        let song = &results["steps"][0];
        assert_eq!(song["status"], "failed", "resume {resume}: {song:#}");
        let attempts: Vec<(u64, &str, &str)> = song["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["attempt"].as_u64().unwrap(),
                    a["started_at"].as_str().unwrap(),
                    a["error"]["kind"].as_str().unwrap_or("none"),
                )
            })
            .collect();
        assert_eq!(
            attempts,
            [(sent[0].0, sent[0].1.as_str(), "in_doubt")],
            "resume {resume}: {song:#}"
        );
        assert_eq!(song["started_at"].as_str(), Some(sent[0].1.as_str()));
    }
    assert_eq!(intents(&run, "song").len(), 1, "never sent again");
    assert_eq!(bench.charged("doubt"), 20);
}
