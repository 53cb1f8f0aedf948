//! Observed charges end to end: `sonicflow run` against an in-process
//! sandbox whose ledger is the truth. A sandbox charging more than the
//! runner's table is caught per call, named in a warning, and `prices
//! learn` turns the run into a table whose plan equals the ledger; refunds
//! of failed tasks are attributed to them; another client spending on the
//! same key shows as unattributed; a fault-free run agrees to the credit;
//! a killed and resumed run reports what its journal holds.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::sonicflow;
use serde_json::Value;
use sonicflow::api::{ApiKey, Client, ClientConfig};
use sonicflow::prices::PriceTable;
use sonicflow::sandbox::{Faults, Sandbox, SandboxConfig, SandboxHandle};

/// Both sides run at this time scale: a song takes 1.8–3 s.
const SCALE: &str = "50";

/// Two songs and, for the first, its tempo: one slow and one quick operation.
const SONGS: &str = "version: 1\nname: songs\ndefaults: { mv: sonic-v5 }\npoll: { initial_delay: 20s, interval: 15s, timeout: 10m }\nmatrix:\n  key: id\n  rows:\n    - { id: rain, idea: rain on a roof }\n    - { id: dawn, idea: sunrise at sea }\nsteps:\n  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: '${{ matrix.idea }}' }\n";

/// One song, tried twice at most.
const ONE: &str = "version: 1\nname: one\ndefaults: { mv: sonic-v5 }\npoll: { initial_delay: 20s, interval: 15s, timeout: 10m }\nretry: { attempts: 2, backoff: { initial: 1s, max: 2s } }\nsteps:\n  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: 'a calm song' }\n";

/// A song and every quick analysis of it.
const ANALYSE: &str = "version: 1\nname: analyse\ndefaults: { mv: sonic-v5 }\npoll: { initial_delay: 20s, interval: 15s, timeout: 10m }\nsteps:\n  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: 'a calm song' }\n  tempo:\n    action: bpm\n    with: { clip: '${{ steps.song.outputs.clips[0].clip_id }}' }\n  notes:\n    action: midi\n    with: { clip: '${{ steps.song.outputs.clips[0].clip_id }}' }\n  wav:\n    action: wav\n    for_each: ${{ steps.song.outputs.clips }}\n    with: { clip: '${{ item.clip_id }}' }\n";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn start(rt: &tokio::runtime::Runtime, config: SandboxConfig) -> SandboxHandle {
    rt.block_on(Sandbox::start(config.with_time_scale(50.0)))
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `sonicflow run FILE --out RUN args…` against `sandbox` with `key`.
fn run_cmd(
    sandbox: &SandboxHandle,
    key: &str,
    file: &str,
    out: &Path,
    args: &[&str],
) -> std::process::Command {
    let mut cmd = sonicflow();
    cmd.args([
        "run",
        file,
        "--out",
        out.to_str().unwrap(),
        "--time-scale",
        SCALE,
    ])
    .args(["--log-format", "json"])
    .args(args)
    .env("MUSICAPI_BASE_URL", sandbox.base_url())
    .env("MUSICAPI_KEY", key);
    cmd
}

fn run(sandbox: &SandboxHandle, key: &str, file: &str, out: &Path, args: &[&str]) -> Output {
    run_cmd(sandbox, key, file, out, args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn results(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

/// The builtin table with one price changed, as a `--prices` file.
fn table_with(dir: &Path, op: &str, credits: u64) -> String {
    let builtin = PriceTable::builtin();
    let mut text = format!(
        "name: older\ndate: {}\nsource: a table made before the service's last change\nprices:\n",
        builtin.date
    );
    for (name, price) in &builtin.prices {
        let price = if name == op { credits } else { *price };
        text.push_str(&format!("  {name}: {price}\n"));
    }
    write(dir, "older.yaml", &text)
}

/// The observed credits of every step instance, in results order.
fn observed_per_step(results: &Value) -> Vec<(u64, u64)> {
    results["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let o = &s["credits"]["observed"];
            (
                o["charged"].as_u64().unwrap(),
                o["refunded"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn operation<'a>(results: &'a Value, op: &str) -> &'a Value {
    results["observed_charges"]["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operation"] == op)
        .unwrap_or_else(|| panic!("no {op} in {results:#}"))
}

#[test]
fn a_service_charging_more_than_the_table_is_caught_and_learnt_until_the_plan_equals_the_ledger() {
    let rt = runtime();
    let sandbox = start(&rt, SandboxConfig::default());
    let charged = PriceTable::builtin().price("create_music").unwrap();
    let believed = charged - 5;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "songs.yaml", SONGS);
    let older = table_with(dir.path(), "create_music", believed);
    let out = dir.path().join("run");
    let done = run(&sandbox, "moved", &file, &out, &["--prices", &older]);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));

    let r = results(&out);
    assert_eq!(observed_per_step(&r), vec![(charged, 0), (charged, 0)]);
    let create = operation(&r, "create_music");
    assert_eq!(create["table_price"], believed);
    assert_eq!(
        create["observed"],
        serde_json::json!([{ "credits": charged, "calls": 2 }])
    );
    let warning = format!(
        "create_music: the price table says {believed}, the service charged {charged} (2 calls)"
    );
    assert_eq!(
        r["observed_charges"]["warnings"],
        serde_json::json!([warning])
    );
    assert!(stderr(&done).contains(&warning), "{}", stderr(&done));
    assert_eq!(r["observed_charges"]["unattributed"], serde_json::json!([]));

    // The status of the run tells the same.
    let status = sonicflow()
        .args(["status", "--json", out.to_str().unwrap()])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["observed_charges"], r["observed_charges"]);

    let learnt = dir.path().join("learnt.yaml");
    let learn = sonicflow()
        .args([
            "prices",
            "learn",
            out.to_str().unwrap(),
            "-o",
            learnt.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(learn.status.code(), Some(0), "{}", stderr(&learn));
    let table =
        PriceTable::from_yaml(&std::fs::read_to_string(&learnt).unwrap(), "learnt").unwrap();
    assert_eq!(table.price("create_music"), Some(charged));
    assert_eq!(table.date, "2026-12-01");
    assert_eq!(
        table.earlier[0].prices["create_music"], believed,
        "the old price is kept"
    );

    let plan = sonicflow()
        .args([
            "plan",
            &file,
            "--json",
            "--prices",
            learnt.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let ledger = sandbox.ledger();
    assert_eq!(plan["total_credits"], ledger.charged("moved"));
    assert_eq!(ledger.refunded("moved"), 0);
    rt.block_on(sandbox.shutdown());
}

#[test]
fn refunds_of_failed_tasks_are_attributed_to_them() {
    let rt = runtime();
    let faults = Faults {
        task_failed: 1.0,
        ..Faults::default()
    };
    let sandbox = start(&rt, SandboxConfig::default().with_faults(faults));
    let price = PriceTable::builtin().price("create_music").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "one.yaml", ONE);
    let out = dir.path().join("run");
    let done = run(&sandbox, "fails", &file, &out, &[]);
    assert_eq!(done.status.code(), Some(1), "{}", stderr(&done));

    let ledger = sandbox.ledger();
    assert_eq!(
        (ledger.charged("fails"), ledger.refunded("fails")),
        (2 * price, 2 * price)
    );
    let r = results(&out);
    assert_eq!(
        observed_per_step(&r),
        vec![(2 * price, 2 * price)],
        "{:#}",
        r["observed_charges"]
    );
    assert_eq!(operation(&r, "create_music")["refunded"], 2 * price);
    assert_eq!(r["observed_charges"]["spent"], 0);
    assert_eq!(r["observed_charges"]["unattributed"], serde_json::json!([]));
    assert_eq!(r["observed_charges"]["shared"], serde_json::json!([]));
    rt.block_on(sandbox.shutdown());
}

#[test]
fn another_client_spending_on_the_same_key_is_reported_as_unattributed() {
    let rt = runtime();
    // The other client's call is not held back by the run's submit slot.
    let sandbox = start(
        &rt,
        SandboxConfig::default().with_submit_interval(Duration::ZERO),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "one.yaml", ONE);
    let out = dir.path().join("run");
    let mut child = run_cmd(&sandbox, "shared", &file, &out, &[])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    // Once the window of the run's submit is closed, the song is still
    // being made (1.8 s at least): the other client spends then.
    let mut line = String::new();
    loop {
        line.clear();
        assert_ne!(log.read_line(&mut line).unwrap(), 0, "the run ended first");
        if line.contains("\"event\":\"observed\"") && line.contains("create_music") {
            break;
        }
    }
    let config = ClientConfig::new(sandbox.base_url(), ApiKey::new("shared").unwrap()).unwrap();
    let other = Client::new(&config).unwrap();
    rt.block_on(other.lyrics("a song about sharing")).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut log, &mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest}");

    let lyrics = PriceTable::builtin().price("lyrics").unwrap();
    let create = PriceTable::builtin().price("create_music").unwrap();
    let r = results(&out);
    let observed = &r["observed_charges"];
    assert_eq!(observed["unattributed_total"], lyrics, "{observed:#}");
    assert_eq!(
        observed_per_step(&r),
        vec![(create, 0)],
        "not blended into the run's own"
    );
    assert_eq!(sandbox.ledger().charged("shared"), create + lyrics);
    assert!(rest.contains("no request of this run explains"), "{rest}");
    rt.block_on(sandbox.shutdown());
}

#[test]
fn a_fault_free_run_agrees_with_its_plan_and_the_ledger_to_the_credit() {
    let rt = runtime();
    let sandbox = start(&rt, SandboxConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "analyse.yaml", ANALYSE);
    let plan = sonicflow()
        .args(["plan", &file, "--json"])
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let out = dir.path().join("run");
    let done = run(&sandbox, "agree", &file, &out, &[]);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));

    let r = results(&out);
    let observed = &r["observed_charges"];
    let ledger = sandbox.ledger().charged("agree");
    assert_eq!(plan["total_credits"], ledger);
    assert_eq!(observed["spent"], ledger, "{observed:#}");
    let per_step: u64 = observed_per_step(&r).iter().map(|(c, _)| c).sum();
    assert_eq!(per_step, ledger);
    for step in observed["steps"].as_array().unwrap() {
        assert_eq!(step["planned"], step["observed"], "{step}");
        assert_eq!(step["unobserved_calls"], 0, "{step}");
    }
    assert_eq!(observed["warnings"], serde_json::json!([]));
    assert_eq!(observed["unknown"], serde_json::json!([]));
    assert_eq!(r["totals"]["credits_net"], ledger);
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/results.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&r).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "results.json against its schema: {errors:?}"
    );
    rt.block_on(sandbox.shutdown());
}

#[test]
fn without_observation_results_carry_no_observed_charges() {
    let rt = runtime();
    let sandbox = start(&rt, SandboxConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "one.yaml", ONE);
    let out = dir.path().join("run");
    let done = run(&sandbox, "blind", &file, &out, &["--no-observe-charges"]);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let r = results(&out);
    assert!(r.get("observed_charges").is_none(), "{r:#}");
    assert!(r["steps"][0]["credits"].get("observed").is_none());
    let journal = std::fs::read_to_string(out.join("journal.jsonl")).unwrap();
    assert!(!journal.contains("\"type\":\"observed\""));
    let learn = sonicflow()
        .args(["prices", "learn", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(learn.status.code(), Some(2));
    assert!(
        stderr(&learn).contains("no charge was observed"),
        "{}",
        stderr(&learn)
    );
    rt.block_on(sandbox.shutdown());
}

#[test]
fn a_killed_and_resumed_run_reports_the_windows_its_journal_holds() {
    let rt = runtime();
    let sandbox = start(&rt, SandboxConfig::default());
    let price = PriceTable::builtin().price("create_music").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "one.yaml", ONE);
    let out = dir.path().join("run");
    let child = run_cmd(&sandbox, "resumed", &file, &out, &[])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the window of its submit is journaled, before the song is made.
    let (_, seen) = common::kill_after_events(child, "observed", 1);
    assert_eq!(seen, 1);
    let journal = std::fs::read_to_string(out.join("journal.jsonl")).unwrap();
    let before: Vec<&str> = journal
        .lines()
        .filter(|l| l.contains("\"type\":\"observed\""))
        .collect();
    assert_eq!(before.len(), 1, "{journal}");

    let done = sonicflow()
        .args([
            "run",
            "--resume",
            out.to_str().unwrap(),
            "--time-scale",
            SCALE,
        ])
        .env("MUSICAPI_BASE_URL", sandbox.base_url())
        .env("MUSICAPI_KEY", "resumed")
        .output()
        .unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let journal = std::fs::read_to_string(out.join("journal.jsonl")).unwrap();
    assert!(
        journal.contains(before[0]),
        "the first process's window stays"
    );
    let r = results(&out);
    assert_eq!(
        observed_per_step(&r),
        vec![(price, 0)],
        "{:#}",
        r["observed_charges"]
    );
    assert_eq!(
        operation(&r, "create_music")["observed"],
        serde_json::json!([{ "credits": price, "calls": 1 }])
    );
    assert_eq!(
        sandbox.ledger().charged("resumed"),
        price,
        "nothing was paid twice"
    );
    let status = sonicflow()
        .args(["status", "--json", out.to_str().unwrap()])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["observed_charges"], r["observed_charges"]);
    rt.block_on(sandbox.shutdown());
}
