//! Crash safety of `sonicflow run`, end to end: a pipeline runs against a
//! standalone sandbox, the runner dies (the `SONICFLOW_CRASH_AT` hook aborts
//! it like `kill -9` at exact journal points, including between a submit
//! being sent and its answer being recorded; or a real SIGKILL lands at some
//! moment), and `run --resume` takes it up until it finishes.
//!
//! Each scenario ends with the results of an uninterrupted run (same
//! instances, statuses and credits per instance) and a sandbox ledger showing
//! every request charged exactly once, except requests left in doubt that the
//! test resends on purpose with `--resend-in-doubt`; a resume without that
//! flag must report them as `in_doubt` and send nothing for them.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use common::s3::{FaultProxy, S3Server};
use common::{SandboxProcess, render, sonicflow};
use serde_json::{Value, json};

/// Two matrix rows; per row an upload covered as jazz with each cover clip
/// exported as WAV, and a song with each clip exported as WAV: 14 paid
/// requests, synchronous (upload, wav) and asynchronous (cover, create),
/// with dependencies and fan-outs. `LIMITS` is replaced per mode.
const PIPELINE: &str = "version: 1
name: crash
defaults: { mv: sonic-v5 }
LIMITS
poll: { initial_delay: 20s, interval: 15s, timeout: 1h }
matrix:
  key: id
  rows:
    - { id: a, idea: calm piano, src: 'https://example.com/a.mp3' }
    - { id: b, idea: upbeat synth, src: 'https://example.com/b.mp3' }
steps:
  upload:
    action: upload
    with: { url: '${{ matrix.src }}' }
  cover:
    action: cover
    with: { clip: '${{ steps.upload.outputs.clip_id }}', custom_mode: false, gpt_description_prompt: '${{ matrix.idea }} as jazz' }
  cover_wav:
    action: wav
    for_each: ${{ steps.cover.outputs.clips }}
    with: { clip: '${{ item.clip_id }}' }
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: '${{ matrix.idea }}' }
  song_wav:
    action: wav
    for_each: ${{ steps.song.outputs.clips }}
    with: { clip: '${{ item.clip_id }}' }
";

/// Paid requests (and step instances) of an uninterrupted run of [`PIPELINE`].
const REQUESTS: usize = 14;

/// Scenarios run at the same time within one test.
const PARALLEL: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `max_in_flight: 1` and no rate limiting: one request at a time, so
    /// each crash point leaves an exactly known request in doubt (or none).
    Serial,
    /// The default limits and the sandbox's rate limit: other requests may
    /// be in flight (or throttled and retried) when the runner dies.
    Concurrent,
}

/// How a process of a scenario dies.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// `SONICFLOW_CRASH_AT=<point>`: aborts at an exact journal record.
    At(&'static str),
    /// A real SIGKILL once the `n`-th JSON log event named `event` is read
    /// from the runner's stderr (the kill lands a little later, anywhere).
    Signal { event: &'static str, n: usize },
}

/// One scenario: the first run and then each resume dies as `kills` says,
/// in order; then plain resumes finish the run.
#[derive(Debug, Clone)]
struct Scenario {
    kills: Vec<Kill>,
    /// Append half a journal line after the last crash, as a process that
    /// died in the middle of a write would leave.
    torn_tail: bool,
}

impl Scenario {
    fn name(&self) -> String {
        let mut parts: Vec<String> = self
            .kills
            .iter()
            .map(|k| match k {
                Kill::At(point) => point.replace(':', "-"),
                Kill::Signal { event, n } => format!("sigkill-{event}-{n}"),
            })
            .collect();
        if self.torn_tail {
            parts.push("torn".to_owned());
        }
        parts.join("+")
    }
}

/// The runner crashes at each point in turn (the first run, then resumes).
fn at(points: &[&'static str]) -> Scenario {
    Scenario {
        kills: points.iter().map(|p| Kill::At(p)).collect(),
        torn_tail: false,
    }
}

fn sigkill(event: &'static str, n: usize) -> Scenario {
    Scenario {
        kills: vec![Kill::Signal { event, n }],
        torn_tail: false,
    }
}

/// A sandbox, the pipeline and an uninterrupted run of it to compare with.
struct Bench {
    mode: Mode,
    /// State in a bucket instead of a local folder: each resume then runs
    /// on a "fresh machine" (a new folder with a copy of the manifest and
    /// no state of its own), finding the run through the bucket.
    bucket: Option<InBucket>,
    /// Fresh folders made so far.
    machines: AtomicUsize,
    dir: tempfile::TempDir,
    sandbox: SandboxProcess,
    file: String,
    /// Per instance of the uninterrupted run: status, operation, credits.
    instances: BTreeMap<String, Value>,
    totals: Value,
    charges: Charges,
}

/// A moto server and a bucket in it; each scenario's state has a prefix of its own.
struct InBucket {
    server: S3Server,
    url: String,
}

/// A key's ledger, summarised.
#[derive(Debug)]
struct Charges {
    /// Charge entries by request body hash: how many, the operation, credits each.
    by_body: BTreeMap<String, (usize, String, u64)>,
    charged: u64,
    refunded: u64,
}

impl Charges {
    fn of(ledger: &Value) -> Charges {
        let mut by_body: BTreeMap<String, (usize, String, u64)> = BTreeMap::new();
        let entries = ledger["entries"]
            .as_array()
            .expect("the ledger lists entries");
        for e in entries.iter().filter(|e| e["kind"] == "charge") {
            let body = e["body_hash"].as_str().unwrap().to_owned();
            let op = e["operation"].as_str().unwrap().to_owned();
            let credits = e["credits"].as_u64().unwrap();
            let slot = by_body.entry(body).or_insert((0, op, credits));
            slot.0 += 1;
        }
        Charges {
            by_body,
            charged: ledger["charged"].as_u64().unwrap(),
            refunded: ledger["refunded"].as_u64().unwrap(),
        }
    }

    /// Distinct requests charged, per operation.
    fn per_operation(&self) -> BTreeMap<String, usize> {
        let mut ops = BTreeMap::new();
        for (_, op, _) in self.by_body.values() {
            *ops.entry(op.clone()).or_insert(0) += 1;
        }
        ops
    }

    /// Requests charged more than once: body hash, count, operation, credits.
    fn repeated(&self) -> Vec<(&str, usize, &str, u64)> {
        self.by_body
            .iter()
            .filter(|(_, (n, ..))| *n > 1)
            .map(|(b, (n, op, c))| (b.as_str(), *n, op.as_str(), *c))
            .collect()
    }
}

/// Where a request left in doubt stands in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Doubt {
    /// The intent is durable and no answer is: maybe sent, maybe charged.
    Sent,
    /// A resumed process already reported it as `in_doubt`.
    Reported,
}

/// How many of the requests left in doubt had been charged by the sandbox.
#[derive(Debug, Default, Clone, Copy)]
struct Expect {
    charged_min: usize,
    charged_max: usize,
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("`{}` is not JSON: {e}", path.display()))
}

/// The journal's records; a torn last line (no newline) is left out, as
/// the runner itself does.
fn journal(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("journal.jsonl")).expect("the journal exists");
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Value>(line) {
            Ok(v) => records.push(v),
            Err(_) if i + 1 == lines.len() && !complete => {}
            Err(e) => panic!("journal line {}: {e}: {line}", i + 1),
        }
    }
    records
}

/// Each instance's last journal record.
fn last_records(out: &Path) -> BTreeMap<String, Value> {
    journal(out)
        .into_iter()
        .filter_map(|r| Some((r["inst"].as_str()?.to_owned(), r)))
        .collect()
}

/// Instances whose last request the journal leaves in doubt: the intent is
/// durable, the answer is not (a task's `accepted`, a synchronous call's
/// `succeeded`, or a refusal's `released`).
fn in_doubt(out: &Path) -> BTreeMap<String, Doubt> {
    last_records(out)
        .into_iter()
        .filter_map(|(inst, r)| {
            let doubt = match r["type"].as_str().unwrap_or("") {
                "intent" => Doubt::Sent,
                // Paid, and its result lost: not in the journal's format any
                // more (a synchronous result is one `succeeded`), but in doubt.
                "accepted" if r["task"].is_null() => Doubt::Sent,
                "failed" if r["kind"] == "in_doubt" => Doubt::Reported,
                _ => return None,
            };
            Some((inst, doubt))
        })
        .collect()
}

/// Instances whose work is durable: a result, or a task id to poll. A
/// resumed run must never send their requests again.
fn settled(out: &Path) -> BTreeSet<String> {
    last_records(out)
        .into_iter()
        .filter(|(_, r)| {
            r["type"] == "succeeded" || (r["type"] == "accepted" && !r["task"].is_null())
        })
        .map(|(inst, _)| inst)
        .collect()
}

fn events(stderr: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `step[row/path]`, the name the journal uses, of a log event's `id`.
fn event_instance(id: &Value) -> String {
    let step = id["step_id"].as_str().unwrap_or("");
    let path: Vec<String> = id["path"]
        .as_array()
        .map(|p| p.iter().map(Value::to_string).collect())
        .unwrap_or_default();
    let path = path.join(".");
    match (id["row_key"].as_str(), path.is_empty()) {
        (None, true) => step.to_owned(),
        (Some(k), true) => format!("{step}[{k}]"),
        (Some(k), false) => format!("{step}[{k}/{path}]"),
        (None, false) => format!("{step}[{path}]"),
    }
}

/// Instances named as in the journal (`step[instance]`) whose requests a
/// process announced it was sending.
fn submitting(output: &Output) -> BTreeSet<String> {
    events(&output.stderr)
        .iter()
        .filter(|e| e["event"] == "submitting")
        .map(|e| event_instance(&e["id"]))
        .collect()
}

/// What results.json says per instance, in terms that do not vary between
/// runs (no ids, hashes, outputs or times).
fn instances(results: &Value) -> BTreeMap<String, Value> {
    results["steps"]
        .as_array()
        .expect("results.json lists steps")
        .iter()
        .map(|s| {
            let step = s["step"].as_str().unwrap();
            let name = match s["instance"].as_str() {
                Some(i) => format!("{step}[{i}]"),
                None => step.to_owned(),
            };
            // What the balance showed is left out: a killed process takes
            // its open balance window with it (tests/observed_charges.rs).
            let mut credits = s["credits"].clone();
            if let Some(c) = credits.as_object_mut() {
                c.remove("observed");
            }
            let summary = json!({
                "status": s["status"],
                "action": s["action"],
                "operation": s["operation"],
                "credits": credits,
                "error": s["error"]["kind"],
            });
            (name, summary)
        })
        .collect()
}

fn died(output: &Output) -> bool {
    output.status.code().is_none()
}

#[cfg(unix)]
fn aborted(output: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    output.status.signal() == Some(6)
}

#[cfg(not(unix))]
fn aborted(output: &Output) -> bool {
    died(output)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(no message)".to_owned())
}

impl Bench {
    /// A sandbox for `mode`, [`PIPELINE`] and its uninterrupted run.
    fn new(mode: Mode) -> Bench {
        let mut bench = Bench::start(mode, PIPELINE);
        bench.baseline();
        bench
    }

    /// [`Bench::new`] with state in a bucket of a moto server; `None`
    /// (and a loud message) when moto is not installed outside CI.
    fn in_bucket(mode: Mode) -> Option<Bench> {
        let server = S3Server::start()?;
        let url = server.bucket("crash");
        let mut bench = Bench::start(mode, PIPELINE);
        bench.bucket = Some(InBucket { server, url });
        bench.baseline();
        Some(bench)
    }

    /// Starts a sandbox for `mode` and writes `pipeline` (with `LIMITS`
    /// replaced), without a baseline.
    fn start(mode: Mode, pipeline: &str) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let (limits, sandbox_args): (&str, &[&str]) = match mode {
            Mode::Serial => (
                "limits: { max_in_flight: 1 }",
                &["--time-scale", "1000", "--submit-interval", "0"],
            ),
            Mode::Concurrent => ("", &["--time-scale", "1000"]),
        };
        let sandbox = SandboxProcess::start(sandbox_args);
        let path = dir.path().join("pipeline.yaml");
        std::fs::write(&path, pipeline.replace("LIMITS", limits)).unwrap();
        let file = path.to_str().unwrap().to_owned();
        Bench {
            mode,
            bucket: None,
            machines: AtomicUsize::new(0),
            dir,
            sandbox,
            file,
            instances: BTreeMap::new(),
            totals: Value::Null,
            charges: Charges {
                by_body: BTreeMap::new(),
                charged: 0,
                refunded: 0,
            },
        }
    }

    /// Runs the pipeline once without interruption (API key `base`) and
    /// keeps what the crash scenarios must end with.
    fn baseline(&mut self) {
        let mode = self.mode;
        let (out, state) = self.dirs("base");
        let output = self.first_run("base", &out, &state, None);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{mode:?}: the uninterrupted run succeeds\n{}",
            self.render(&output)
        );
        let results = read_json(&out.join("results.json"));
        assert_eq!(results["status"], "succeeded", "{mode:?}: {results}");
        let instances = instances(&results);
        assert_eq!(instances.len(), REQUESTS, "{mode:?}: {instances:#?}");
        assert!(
            instances.values().all(|i| i["status"] == "succeeded"),
            "{mode:?}: {instances:#?}"
        );
        // The names this test derives from results, the journal and the log agree.
        let journaled: BTreeSet<String> = journal(&out)
            .iter()
            .filter_map(|r| r["inst"].as_str().map(str::to_owned))
            .collect();
        let names: BTreeSet<String> = instances.keys().cloned().collect();
        assert_eq!(journaled, names, "{mode:?}: journal vs results.json");
        assert_eq!(submitting(&output), names, "{mode:?}: log vs results.json");
        let charges = Charges::of(&self.sandbox.ledger("base"));
        assert!(
            charges.repeated().is_empty(),
            "{mode:?}: every request of the uninterrupted run has its own body: {charges:#?}"
        );
        assert_eq!(charges.by_body.len(), REQUESTS, "{mode:?}: {charges:#?}");
        assert_eq!(charges.refunded, 0, "{mode:?}: {charges:#?}");
        assert_eq!(
            charges.charged,
            results["totals"]["credits_charged"].as_u64().unwrap(),
            "{mode:?}: the ledger charged what results.json says"
        );
        self.instances = instances;
        self.totals = results["totals"].clone();
        self.charges = charges;
    }

    fn dirs(&self, key: &str) -> (PathBuf, PathBuf) {
        let base = self.dir.path().join(key);
        (base.join("out"), base.join("state"))
    }

    fn render(&self, output: &Output) -> String {
        render(&["run", "…"], output)
    }

    /// `sonicflow run` against the sandbox with `key`, never crashing unless told.
    fn command(&self, key: &str, crash: Option<&str>) -> Command {
        let mut cmd = sonicflow();
        cmd.arg("run")
            .env("MUSICAPI_BASE_URL", &self.sandbox.url)
            .env("MUSICAPI_KEY", key)
            .env_remove("SONICFLOW_CRASH_AT");
        if let Some(point) = crash {
            cmd.env("SONICFLOW_CRASH_AT", point);
        }
        if let Some(b) = &self.bucket {
            b.server.env(&mut cmd);
        }
        cmd
    }

    /// The state URL of a scenario whose run folder is `out`.
    fn state_url(&self, out: &Path) -> Option<String> {
        let b = self.bucket.as_ref()?;
        let scenario = out.parent()?.file_name()?.to_str()?;
        Some(format!("{}/{scenario}", b.url))
    }

    fn first_args(&self, out: &Path, state: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            self.file.as_str(),
            "--time-scale",
            "1000",
            "--log-format",
            "json",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        match self.state_url(out) {
            Some(url) => args.extend(["--state".to_owned(), url]),
            None => args.extend(["--state-dir".to_owned(), state.to_str().unwrap().to_owned()]),
        }
        args
    }

    fn first_run(&self, key: &str, out: &Path, state: &Path, crash: Option<&str>) -> Output {
        let output = self
            .command(key, crash)
            .args(self.first_args(out, state))
            .output()
            .expect("sonicflow run runs");
        self.journal_from_bucket(out);
        output
    }

    /// `sonicflow run --resume OUT` (the time scale and log format are not
    /// saved in the journal, so they are given again).
    fn resume(&self, key: &str, out: &Path, extra: &[&str], crash: Option<&str>) -> Output {
        if let Some(url) = self.state_url(out) {
            return self.resume_elsewhere(key, out, &url, extra, crash);
        }
        self.command(key, crash)
            .args(["--resume", out.to_str().unwrap()])
            .args(["--time-scale", "1000", "--log-format", "json"])
            .args(extra)
            .output()
            .expect("sonicflow run --resume runs")
    }

    /// `sonicflow run COPY --resume last --state URL` from a new folder
    /// holding only a copy of the manifest, as a new CI machine would.
    /// What that machine ends with (its copy of the journal, results.json)
    /// is copied to `out`, where the checks read the run.
    fn resume_elsewhere(
        &self,
        key: &str,
        out: &Path,
        url: &str,
        extra: &[&str],
        crash: Option<&str>,
    ) -> Output {
        let n = self.machines.fetch_add(1, Ordering::SeqCst);
        let machine = self.dir.path().join(format!("machine-{n}"));
        std::fs::create_dir_all(&machine).unwrap();
        let manifest = machine.join("pipeline.yaml");
        std::fs::copy(&self.file, &manifest).unwrap();
        let output = self
            .command(key, crash)
            .current_dir(&machine)
            .arg(&manifest)
            .args(["--resume", "last", "--state", url])
            .args(["--time-scale", "1000", "--log-format", "json"])
            .args(extra)
            .output()
            .expect("sonicflow run --resume runs");
        let stores = machine.join(".sonicflow/stores");
        let copies: Vec<PathBuf> = std::fs::read_dir(&stores)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert_eq!(
            copies.len(),
            1,
            "one working copy of the store in `{}`\n{}",
            stores.display(),
            self.render(&output)
        );
        let run = copies[0].join("runs").join(out.file_name().unwrap());
        if run.join("results.json").exists() {
            std::fs::copy(run.join("results.json"), out.join("results.json")).unwrap();
        }
        self.journal_from_bucket(out);
        output
    }

    /// Writes the run's journal as the bucket holds it to `out` (with state
    /// in a bucket, the bucket is what counts: a line the dead process
    /// wrote locally but never got into the bucket was never acted on).
    fn journal_from_bucket(&self, out: &Path) {
        let (Some(b), Some(url)) = (&self.bucket, self.state_url(out)) else {
            return;
        };
        let bucket = b.server.open(&url);
        let run = out.file_name().unwrap().to_str().unwrap();
        let mut text = Vec::new();
        for seq in 0.. {
            let key = format!("runs/{run}/journal/{seq:010}.json");
            match bucket.get(&key, 1 << 24).unwrap() {
                Some(object) => {
                    text.extend_from_slice(&object.bytes);
                    text.push(b'\n');
                }
                None => break,
            }
        }
        std::fs::write(out.join("journal.jsonl"), text).unwrap();
    }

    /// [`Bench::resume`], checking that nothing whose result or task id is
    /// durable in the journal is sent again.
    fn checked_resume(
        &self,
        name: &str,
        key: &str,
        out: &Path,
        extra: &[&str],
        crash: Option<&str>,
    ) -> Output {
        let settled = settled(out);
        let output = self.resume(key, out, extra, crash);
        let resent: Vec<String> = submitting(&output)
            .into_iter()
            .filter(|i| settled.contains(i))
            .collect();
        assert!(
            resent.is_empty(),
            "{name}: `run --resume{}` sent again requests whose result or task was in the journal: {resent:?}\n{}",
            extra.iter().map(|a| format!(" {a}")).collect::<String>(),
            self.render(&output)
        );
        output
    }

    /// Starts the first run and SIGKILLs it once the `n`-th `event` is logged.
    /// Returns the status (a success when the run finished first) and the
    /// log read until the kill.
    fn killed_run(&self, key: &str, out: &Path, state: &Path, event: &str, n: usize) -> Output {
        let child = self
            .command(key, None)
            .args(self.first_args(out, state))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sonicflow run starts");
        let output = common::kill_after_events(child, event, n).0;
        self.journal_from_bucket(out);
        output
    }

    /// Runs one scenario to the end; returns what happened, for the log.
    fn scenario(&self, scenario: &Scenario) -> String {
        let name = format!("{:?}/{}", self.mode, scenario.name());
        let key = name.replace('/', "-");
        let (out, state) = self.dirs(&key);
        let mut expect = Expect::default();
        let mut doubt = BTreeMap::new();
        for (i, kill) in scenario.kills.iter().enumerate() {
            let output = match (*kill, i) {
                (Kill::At(point), 0) => self.first_run(&key, &out, &state, Some(point)),
                (Kill::At(point), _) => self.checked_resume(&name, &key, &out, &[], Some(point)),
                (Kill::Signal { event, n }, 0) => self.killed_run(&key, &out, &state, event, n),
                (Kill::Signal { .. }, _) => unreachable!("a SIGKILL is only sent to the first run"),
            };
            match kill {
                // With requests in flight at each crash, which ones are left
                // in doubt varies, and a resume may have nothing left to
                // send: it then ends without reaching a later crash point.
                Kill::At(point) if i > 0 && self.mode == Mode::Concurrent && !aborted(&output) => {
                    eprintln!("{name}: the resume ended before reaching `{point}`");
                    assert!(
                        matches!(output.status.code(), Some(0 | 1)),
                        "{}",
                        self.render(&output)
                    );
                    break;
                }
                Kill::At(point) => assert!(
                    aborted(&output),
                    "{name}: `SONICFLOW_CRASH_AT={point}` (process {}) aborts the run\n{}",
                    i + 1,
                    self.render(&output)
                ),
                Kill::Signal { .. } if !died(&output) => {
                    eprintln!("{name}: the run finished before the SIGKILL landed");
                    assert_eq!(output.status.code(), Some(0), "{}", self.render(&output));
                }
                Kill::Signal { .. } => {}
            }
            let now = in_doubt(&out);
            let new: BTreeMap<String, Doubt> = now
                .iter()
                .filter(|(k, _)| !doubt.contains_key(*k))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            self.account(&name, *kill, &out, &new, &mut expect);
            doubt = now;
        }
        if scenario.torn_tail && self.bucket.is_none() {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(out.join("journal.jsonl"))
                .unwrap();
            f.write_all(b"{\"type\":\"succeeded\",\"inst\":\"song[a]\",\"ha")
                .unwrap();
        }
        let repaid = self.finish(&name, &key, &out, &doubt, expect);
        format!(
            "{} in doubt {:?}, {repaid} paid twice on purpose (expected {}..={})",
            doubt.len(),
            doubt.values().collect::<Vec<_>>(),
            expect.charged_min,
            expect.charged_max
        )
    }

    /// Adds what one crash says about the charges of the requests it left
    /// in doubt (`new`) to `expect`.
    fn account(
        &self,
        name: &str,
        kill: Kill,
        out: &Path,
        new: &BTreeMap<String, Doubt>,
        expect: &mut Expect,
    ) {
        let sent = new.values().filter(|v| **v == Doubt::Sent).count();
        assert_eq!(sent, new.len(), "{name}: {new:?}");
        let point = match kill {
            Kill::At(point) => point,
            Kill::Signal { .. } => {
                // Anything in flight may or may not have been charged.
                expect.charged_max += sent;
                return;
            }
        };
        let mut parts = point.split(':');
        let window = (parts.next().unwrap(), parts.next().unwrap());
        let last = journal(out).pop().unwrap_or_default();
        match window {
            // The intent is durable and the request was not sent.
            ("after", "intent") => {
                let inst = last["inst"].as_str().unwrap_or("");
                assert_eq!(last["type"], "intent", "{name}: the last record: {last}");
                assert_eq!(
                    new.get(inst),
                    Some(&Doubt::Sent),
                    "{name}: `{inst}` is in doubt: {new:?}"
                );
            }
            // The request was sent, charged and answered; the answer was lost.
            ("before", "accepted") => {
                assert!(sent >= 1, "{name}: a request is in doubt: {new:?}");
            }
            _ => {}
        }
        match self.mode {
            Mode::Serial => {
                assert!(
                    new.len() <= 1,
                    "{name}: one request at a time, so one in doubt at most: {new:?}"
                );
                let charged = match window {
                    ("after", "intent") => 0,
                    ("before", "accepted") => 1,
                    // A synchronous call answered (so charged), its result
                    // not yet durable; or a task's result (nothing in doubt).
                    ("before", "succeeded") => sent,
                    _ => {
                        assert_eq!(sent, 0, "{name}: nothing was in flight: {new:?}");
                        0
                    }
                };
                expect.charged_min += charged;
                expect.charged_max += charged;
            }
            Mode::Concurrent => {
                let sure = usize::from(window == ("before", "accepted"));
                let not_sent = usize::from(window == ("after", "intent"));
                expect.charged_min += sure;
                expect.charged_max += sent - not_sent;
            }
        }
    }

    /// Resumes until the run is done and checks results and ledger;
    /// returns how many requests were paid twice (deliberately).
    fn finish(
        &self,
        name: &str,
        key: &str,
        out: &Path,
        doubt: &BTreeMap<String, Doubt>,
        expect: Expect,
    ) -> usize {
        let first = self.checked_resume(name, key, out, &[], None);
        let sent_again: Vec<String> = submitting(&first)
            .into_iter()
            .filter(|i| doubt.contains_key(i))
            .collect();
        assert!(
            sent_again.is_empty(),
            "{name}: a resume without `--resend-in-doubt` sends nothing in doubt: {sent_again:?}\n{}",
            self.render(&first)
        );
        if doubt.is_empty() {
            assert_eq!(
                first.status.code(),
                Some(0),
                "{name}: nothing was in doubt, so the resume finishes the run\n{}",
                self.render(&first)
            );
        } else {
            assert_eq!(
                first.status.code(),
                Some(1),
                "{name}: {doubt:?} in doubt, so the resume fails them\n{}",
                self.render(&first)
            );
            let results = read_json(&out.join("results.json"));
            let now = instances(&results);
            let failed: BTreeMap<&String, &Value> = now
                .iter()
                .filter(|(_, i)| i["status"] == "failed")
                .map(|(k, i)| (k, &i["error"]))
                .collect();
            assert_eq!(
                failed.keys().copied().collect::<BTreeSet<_>>(),
                doubt.keys().collect::<BTreeSet<_>>(),
                "{name}: exactly the requests in doubt fail: {now:#?}"
            );
            assert!(
                failed.values().all(|kind| *kind == "in_doubt"),
                "{name}: they fail as `in_doubt`: {failed:?}"
            );
            assert!(
                now.values().all(|i| ["succeeded", "failed", "skipped"]
                    .contains(&i["status"].as_str().unwrap_or(""))),
                "{name}: everything else ran or was skipped: {now:#?}"
            );
            let charges = Charges::of(&self.sandbox.ledger(key));
            assert!(
                charges.repeated().is_empty(),
                "{name}: nothing was charged twice before the deliberate resend: {:?}",
                charges.repeated()
            );
            let second = self.checked_resume(name, key, out, &["--resend-in-doubt"], None);
            assert_eq!(
                second.status.code(),
                Some(0),
                "{name}: `--resend-in-doubt` finishes the run\n{}",
                self.render(&second)
            );
            let resent = submitting(&second);
            assert!(
                doubt.keys().all(|i| resent.contains(i)),
                "{name}: each request in doubt ({doubt:?}) is sent again: {resent:?}"
            );
        }
        self.check_final(name, key, out, doubt, expect)
    }

    fn check_final(
        &self,
        name: &str,
        key: &str,
        out: &Path,
        doubt: &BTreeMap<String, Doubt>,
        expect: Expect,
    ) -> usize {
        let results = read_json(&out.join("results.json"));
        assert_eq!(results["status"], "succeeded", "{name}: {results}");
        let now = instances(&results);
        assert_eq!(
            now, self.instances,
            "{name}: per instance, the same statuses and credits as the uninterrupted run"
        );
        // A send left in doubt counts as charged (in doubt) besides the
        // deliberate resend, whether the service took it or not.
        let in_doubt: u64 = doubt
            .keys()
            .map(|i| self.instances[i]["credits"]["planned"].as_u64().unwrap())
            .sum();
        let mut totals = self.totals.clone();
        for key in ["credits_charged", "credits_in_doubt", "credits_net"] {
            totals[key] = (totals[key].as_u64().unwrap() + in_doubt).into();
        }
        assert_eq!(results["totals"], totals, "{name}: totals");

        let charges = Charges::of(&self.sandbox.ledger(key));
        let repeated = charges.repeated();
        let mut ops: Vec<&str> = doubt
            .keys()
            .map(|i| self.instances[i]["operation"].as_str().unwrap())
            .collect();
        for (body, n, op, _) in &repeated {
            assert_eq!(
                *n, 2,
                "{name}: request {body} ({op}) was charged {n} times: {charges:#?}"
            );
            let pos = ops.iter().position(|o| o == op).unwrap_or_else(|| {
                panic!(
                    "{name}: `{op}` request {body} was charged twice but no `{op}` request was in doubt ({doubt:?})"
                )
            });
            ops.swap_remove(pos);
        }
        assert!(
            (expect.charged_min..=expect.charged_max).contains(&repeated.len()),
            "{name}: {} request(s) in doubt had been charged and were paid again; expected {}..={} (in doubt: {doubt:?}): {repeated:?}",
            repeated.len(),
            expect.charged_min,
            expect.charged_max
        );
        assert_eq!(
            charges.per_operation(),
            self.charges.per_operation(),
            "{name}: the same requests were charged as in the uninterrupted run"
        );
        let extra: u64 = repeated
            .iter()
            .map(|(_, n, _, c)| (*n as u64 - 1) * c)
            .sum();
        assert_eq!(
            (charges.charged - charges.refunded, charges.refunded),
            (
                self.charges.charged - self.charges.refunded + extra,
                self.charges.refunded
            ),
            "{name}: net charge = the uninterrupted run's + the deliberate resends"
        );
        repeated.len()
    }

    /// Runs `scenarios` a few at a time; fails with every failure's message.
    fn run_all(&self, scenarios: &[Scenario]) {
        let next = AtomicUsize::new(0);
        let failures = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..PARALLEL {
                s.spawn(|| {
                    while let Some(scenario) = scenarios.get(next.fetch_add(1, Ordering::SeqCst)) {
                        let started = Instant::now();
                        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            self.scenario(scenario)
                        }));
                        match ran {
                            Ok(what) => eprintln!(
                                "ok {:?}/{} in {:.1?}: {what}",
                                self.mode,
                                scenario.name(),
                                started.elapsed()
                            ),
                            Err(p) => failures.lock().unwrap().push(panic_message(p.as_ref())),
                        }
                    }
                });
            }
        });
        let failures = failures.into_inner().unwrap();
        assert!(
            failures.is_empty(),
            "{} of {} scenario(s) failed:\n\n{}",
            failures.len(),
            scenarios.len(),
            failures.join("\n\n")
        );
    }
}

/// One request at a time, so every crash point has an exact outcome. The
/// journal of a run holds 14 `intent`s, 4 `accepted`s (the tasks: songs and
/// covers; a synchronous call is recorded by its `succeeded` alone) and 14
/// `succeeded`s, in the order song[a], its two WAVs, song[b], its WAVs,
/// upload[a], cover[a], its WAVs, upload[b], cover[b], its WAVs.
#[test]
fn crashes_one_request_at_a_time_resume_to_the_same_results_paying_once() {
    let bench = Bench::new(Mode::Serial);
    let mut scenarios: Vec<Scenario> = [
        // Before anything was sent.
        "before:intent:1",
        // Intent durable, request never sent: in doubt, not charged.
        "after:intent:1",
        "after:intent:5",
        // Task requests sent and charged, the answer lost: in doubt, charged.
        "before:accepted:1",
        "before:accepted:3",
        "before:accepted:4",
        // Task ids durable: polled again, never resent.
        "after:accepted:1",
        "after:accepted:2",
        // A task finished, its result not durable: polled again.
        "before:succeeded:1",
        // A synchronous call answered, its result lost: in doubt, charged.
        "before:succeeded:2",
        "before:succeeded:7",
        "before:succeeded:14",
        // Between requests.
        "before:intent:8",
        "after:succeeded:2",
        "after:succeeded:8",
        "after:succeeded:14",
    ]
    .iter()
    .map(|p| at(&[p]))
    .collect();
    // Resumes that crash too (a resume counts only its own records; reused
    // results are recorded as `succeeded` again).
    scenarios.push(at(&["after:intent:3", "before:accepted:1"]));
    scenarios.push(at(&[
        "after:accepted:2",
        "after:succeeded:6",
        "before:intent:1",
    ]));
    scenarios.push(at(&[
        "before:accepted:2",
        "after:intent:1",
        "before:succeeded:4",
    ]));
    // A journal whose last line was torn by the crash.
    scenarios.push(Scenario {
        torn_tail: true,
        ..at(&["before:succeeded:5"])
    });
    bench.run_all(&scenarios);
}

/// The default limits: other requests may be in flight when the runner
/// dies, so how many of those left in doubt were charged is only bounded.
#[test]
fn crashes_with_requests_in_flight_resume_to_the_same_results_paying_once() {
    let bench = Bench::new(Mode::Concurrent);
    let mut scenarios: Vec<Scenario> = [
        "before:accepted:1",
        "before:accepted:3",
        "after:intent:2",
        "after:intent:6",
        "after:accepted:3",
        "before:succeeded:4",
        "before:succeeded:9",
        "after:succeeded:7",
    ]
    .iter()
    .map(|p| at(&[p]))
    .collect();
    // The resumes' crash points are ones every resume reaches: the songs'
    // WAVs are still to send after the first crash.
    scenarios.push(at(&["before:accepted:2", "after:intent:2"]));
    scenarios.push(at(&[
        "after:accepted:2",
        "before:succeeded:3",
        "after:intent:1",
    ]));
    bench.run_all(&scenarios);
}

#[test]
fn a_real_sigkill_at_any_moment_is_resumed_paying_once() {
    let bench = Bench::new(Mode::Concurrent);
    bench.run_all(&[
        sigkill("submitting", 1),
        sigkill("submitting", 3),
        sigkill("submitted", 4),
        sigkill("submitting", 7),
        sigkill("succeeded", 6),
        sigkill("submitting", 11),
    ]);
}

/// Three rows sending the very same request.
const SAME_REQUEST_ROWS: &str = "version: 1
name: same
defaults: { mv: sonic-v5 }
LIMITS
poll: { initial_delay: 20s, interval: 15s, timeout: 1h }
matrix:
  key: id
  rows: [{ id: a }, { id: b }, { id: c }]
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: one idea for all }
";

/// A resume must take `song[a]`'s result from its own journal. The state
/// folder's index also lists this run's own results; if a later row (recalled
/// first) could take that result from the index, `song[a]`'s own result would
/// count as claimed, `song[a]` would be sent and paid again, and results.json
/// would report 15 credits fewer than the ledger.
#[test]
fn a_resume_never_pays_again_for_a_result_in_its_journal_when_rows_repeat_a_request() {
    let bench = Bench::start(Mode::Serial, SAME_REQUEST_ROWS);
    let (out, state) = bench.dirs("same");
    let crashed = bench.first_run("same", &out, &state, Some("after:succeeded:1"));
    assert!(aborted(&crashed), "{}", bench.render(&crashed));
    let resumed = bench.checked_resume("same", "same", &out, &[], None);
    assert_eq!(resumed.status.code(), Some(0), "{}", bench.render(&resumed));
    let results = read_json(&out.join("results.json"));
    let ledger = bench.sandbox.ledger("same");
    assert_eq!(
        (
            results["totals"]["credits_charged"].as_u64(),
            ledger["charged"].as_u64()
        ),
        (Some(60), Some(60)),
        "each row paid once, and results.json says so: {results}"
    );
}

/// State in a bucket of a real S3 server (moto), each resume on a fresh
/// machine: a new folder with a copy of the manifest and nothing else, so
/// the run, its journal and its reusable results come from the bucket only.
/// The same exact crash points as one request at a time on local state,
/// with the same end: the uninterrupted run's results, each request paid once.
#[test]
fn crashes_with_state_in_a_bucket_resume_on_a_fresh_machine_paying_once() {
    let Some(bench) = Bench::in_bucket(Mode::Serial) else {
        return;
    };
    let mut scenarios: Vec<Scenario> = [
        "before:intent:1",
        "after:intent:1",
        "before:accepted:1",
        "after:accepted:1",
        "before:succeeded:1",
        "before:succeeded:2",
        "after:succeeded:2",
        "before:intent:8",
        "after:succeeded:14",
    ]
    .iter()
    .map(|p| at(&[p]))
    .collect();
    scenarios.push(at(&["after:intent:3", "before:accepted:1"]));
    bench.run_all(&scenarios);
}

/// A real SIGKILL at some moment, state in a bucket, resumed on a fresh machine.
#[test]
fn a_real_sigkill_with_state_in_a_bucket_is_resumed_on_a_fresh_machine_paying_once() {
    let Some(bench) = Bench::in_bucket(Mode::Concurrent) else {
        return;
    };
    bench.run_all(&[sigkill("submitting", 3), sigkill("succeeded", 6)]);
}

/// The state store goes away in the middle of a run (the network to it is
/// cut as the fifth request's intent is being written): that request and
/// every later one are not sent, since their intents could not be made
/// durable; the run stops with an error naming the store and what to do;
/// every request charged has its record in the bucket. Once the store is
/// back, a resume on a fresh machine finishes the run paying each request once.
#[test]
fn a_store_cut_mid_run_stops_new_submits_and_the_run_resumes_paying_once() {
    let Some(bench) = Bench::in_bucket(Mode::Serial) else {
        return;
    };
    let name = "store-cut";
    let (out, state) = bench.dirs(name);
    let proxy = FaultProxy::start(bench.bucket.as_ref().unwrap().server.port);
    proxy.cut_on("\"type\":\"intent\"", 5);
    let cut = bench
        .command(name, None)
        .env("AWS_ENDPOINT_URL", proxy.endpoint())
        .args(bench.first_args(&out, &state))
        .output()
        .expect("sonicflow run runs");
    let log = String::from_utf8_lossy(&cut.stderr);
    assert_ne!(cut.status.code(), Some(0), "{}", bench.render(&cut));
    let url = bench.state_url(&out).unwrap();
    assert!(
        log.contains("state store") && log.contains(&url) && log.contains("--resume last"),
        "the error names the store and the fix\n{}",
        bench.render(&cut)
    );
    assert_eq!(
        submitting(&cut).len(),
        4,
        "nothing is sent once an intent cannot be made durable\n{}",
        bench.render(&cut)
    );
    bench.journal_from_bucket(&out);
    let intents = journal(&out)
        .iter()
        .filter(|r| r["type"] == "intent")
        .count();
    let charges = Charges::of(&bench.sandbox.ledger(name));
    assert_eq!(
        (intents, charges.by_body.len()),
        (4, 4),
        "every request charged has its intent in the bucket: {charges:#?}"
    );
    assert!(
        in_doubt(&out).is_empty(),
        "each request sent has its answer in the bucket"
    );
    proxy.restore();
    let resumed = bench.checked_resume(name, name, &out, &[], None);
    assert_eq!(resumed.status.code(), Some(0), "{}", bench.render(&resumed));
    bench.check_final(name, name, &out, &BTreeMap::new(), Expect::default());
}
