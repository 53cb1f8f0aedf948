//! `--shard K/N` end to end against a standalone sandbox: the shards of a
//! batch cover the matrix once, pay once for a request they share, take up
//! their run when restarted, never run twice at once, and merge to what
//! one unsharded run gives.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};

use common::{SandboxProcess, sonicflow};
use serde_json::Value;

/// Four rows, two of which (`a` and `b`, in different shards of two) make
/// the same request: shard 1 has `a` and `c`, shard 2 `b` and `d`.
const ROWS: &str = "version: 1\nname: rows\ndefaults: { mv: sonic-v5 }\npoll: { initial_delay: 20s, interval: 15s, timeout: 10m }\nmatrix:\n  key: id\n  rows:\n    - { id: a, mood: rainy }\n    - { id: b, mood: rainy }\n    - { id: c, mood: sunny }\n    - { id: d, mood: snowy }\nsteps:\n  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: 'a ${{ matrix.mood }} day' }\n  wav:\n    action: wav\n    with: { clip: '${{ steps.song.outputs.clips[0].clip_id }}' }\n";

/// The sandbox's submit spacing (seconds, before scaling), well under the
/// runner's pace so that no submit meets a 429: these tests are about what
/// is paid.
const SPACING: &str = "1";

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `sonicflow run FILE --time-scale SCALE --log-format json ARGS…` against `sandbox`.
fn command(
    sandbox: &SandboxProcess,
    key: &str,
    file: &str,
    scale: &str,
    extra: &[&str],
) -> std::process::Command {
    let mut cmd = sonicflow();
    cmd.args(["run", file, "--time-scale", scale, "--log-format", "json"])
        .args(extra)
        .env("MUSICAPI_BASE_URL", &sandbox.url)
        .env("MUSICAPI_KEY", key)
        .env_remove("SONICFLOW_RUN_ID")
        .env_remove("GITHUB_RUN_ID");
    cmd
}

fn ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn results(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

/// The paid submits of `key`'s ledger, by operation and request body.
fn charges(sandbox: &SandboxProcess, key: &str) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = sandbox.ledger(key)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "charge")
        .map(|e| {
            (
                e["operation"].as_str().unwrap().to_owned(),
                e["body_hash"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    list.sort();
    list
}

/// `(step, row, status)` of every instance of a results file, in its order.
fn outcomes(results: &Value) -> Vec<(String, String, String)> {
    results["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_owned(),
                s["row_key"].as_str().unwrap_or_default().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Reads `child`'s JSON log until the first `event`, leaving it running.
fn wait_for_event(child: &mut Child, event: &str) -> Vec<String> {
    let needle = format!("\"event\":\"{event}\"");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        let found = line.contains(&needle);
        seen.push(line);
        if found {
            break;
        }
    }
    // The rest is drained so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    seen
}

#[test]
fn two_shards_cover_the_matrix_once_pay_once_for_a_shared_request_and_merge_to_one_run() {
    // Slow enough that shard 1's song is still being made when shard 2
    // starts: shard 2 then finds the shared request claimed, not answered.
    let sandbox = SandboxProcess::start(&["--time-scale", "20", "--submit-interval", SPACING]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), ROWS);
    let shard = |k: &str| {
        command(
            &sandbox,
            "shards",
            &file,
            "20",
            &["--shard", k, "--run-id", "n1"],
        )
    };

    let mut first = shard("1/2").stderr(Stdio::piped()).spawn().unwrap();
    // Shard 1 has sent the request `a` shares with `b`.
    wait_for_event(&mut first, "submitted");
    let second = shard("2/2").output().unwrap();
    ok(&second);
    assert!(first.wait().unwrap().success());

    // The two rainy songs are one request, charged once: three songs and
    // three WAVs (a WAV of one song is one request too).
    let sharded = charges(&sandbox, "shards");
    assert_eq!(sharded.len(), 3 + 3, "{sharded:?}");
    let runs = dir.path().join(".sonicflow/runs");
    let one = results(&runs.join("rows-n1-shard-1-of-2"));
    let two = results(&runs.join("rows-n1-shard-2-of-2"));
    assert_eq!(one["run_id"], "n1");
    assert_eq!(one["shard"]["index"], 1);
    assert_eq!(two["shard"]["count"], 2);
    let rows = |r: &Value| -> Vec<String> {
        let mut keys: Vec<String> = outcomes(r).into_iter().map(|(_, row, _)| row).collect();
        keys.dedup();
        keys
    };
    assert_eq!(
        (rows(&one), rows(&two)),
        (vec!["a".into(), "c".into()], vec!["b".into(), "d".into()])
    );
    // Both shards' results have the shared song: shard 2 took shard 1's.
    let b_song = &two["steps"][0];
    assert_eq!(
        (b_song["row_key"].as_str(), b_song["status"].as_str()),
        (Some("b"), Some("succeeded"))
    );
    assert_eq!(b_song["reused_from"], "rows-n1-shard-1-of-2");
    assert_eq!(b_song["outputs"], one["steps"][0]["outputs"]);
}

#[test]
fn two_shards_merge_to_what_one_unsharded_run_gives() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", SPACING]);
    let dir = tempfile::tempdir().unwrap();
    // Every row its own request: one run pays for each, as the shards do.
    let file = write(
        dir.path(),
        &ROWS.replace("{ id: b, mood: rainy }", "{ id: b, mood: cloudy }"),
    );
    for k in ["1/2", "2/2"] {
        let out = command(
            &sandbox,
            "shards",
            &file,
            "1000",
            &["--shard", k, "--run-id", "n1"],
        )
        .output()
        .unwrap();
        ok(&out);
    }
    let state = dir.path().join(".sonicflow");
    let state_text = state.to_str().unwrap();
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(
        &common::regex_escape(&dir.path().display().to_string()),
        "[DIR]",
    );
    let _bound = settings.bind_to_scope();
    for (name, args) in [
        ("shards-status", vec!["status", "n1", "--state", state_text]),
        ("shards-merge", vec!["merge", "n1", "--state", state_text]),
        ("shards-report", vec!["report", "n1", "--state", state_text]),
        (
            "shards-merge-unknown",
            vec!["merge", "n9", "--state", state_text],
        ),
    ] {
        insta::assert_snapshot!(name, common::run(&args));
    }
    let runs = dir.path().join(".sonicflow/runs");
    let merged = results(&runs.join("rows-n1-merged"));
    assert!(runs.join("rows-n1-merged/report.html").exists());

    // The same batch unsharded, on a key of its own.
    let whole = command(&sandbox, "whole", &file, "1000", &["--no-reuse"])
        .output()
        .unwrap();
    ok(&whole);
    let path = String::from_utf8_lossy(&whole.stdout).trim().to_owned();
    let whole = results(Path::new(&path).parent().unwrap());
    assert_eq!(outcomes(&merged), outcomes(&whole));
    assert_eq!(merged["totals"], whole["totals"], "{:#}", merged["totals"]);
    // The same requests charged: the songs are the same requests; the WAVs
    // name clips each generation made anew, so they are counted by operation.
    let (w, s) = (charges(&sandbox, "whole"), charges(&sandbox, "shards"));
    let songs = |c: &[(String, String)]| -> Vec<String> {
        c.iter()
            .filter(|(op, _)| op == "create_music")
            .map(|(_, b)| b.clone())
            .collect()
    };
    let ops =
        |c: &[(String, String)]| -> Vec<String> { c.iter().map(|(op, _)| op.clone()).collect() };
    assert_eq!((songs(&w), ops(&w)), (songs(&s), ops(&s)));
    assert_eq!(w.len(), 8);
    assert_eq!(
        sandbox.ledger("whole")["charged"],
        sandbox.ledger("shards")["charged"]
    );
    assert_eq!(merged["run_id"], "n1");
    assert!(merged.get("shard").is_none());
    let keys: Vec<&str> = merged["matrix"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a", "b", "c", "d"]);
    // The files of each shard are reached from the merged folder.
    for step in merged["steps"].as_array().unwrap() {
        for f in step["files"].as_array().unwrap() {
            let p = f["path"].as_str().unwrap();
            assert!(runs.join("rows-n1-merged").join(p).exists(), "{p}");
        }
    }
}

#[test]
fn a_restarted_shard_takes_up_its_run_and_one_shard_never_runs_twice_at_once() {
    let sandbox = SandboxProcess::start(&["--time-scale", "20", "--submit-interval", SPACING]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), ROWS);
    let shard = || {
        command(
            &sandbox,
            "restart",
            &file,
            "20",
            &["--shard", "2/2", "--run-id", "n2"],
        )
    };

    // The first process dies (as `kill -9`) once its first song is
    // journaled as done: nothing of it is then in doubt, the other song is
    // accepted and followed on the restart. Until then it holds its lock.
    let mut running = shard()
        .env("SONICFLOW_CRASH_AT", "after:succeeded:1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_event(&mut running, "submitted");
    // The same shard again while the first holds its lock: refused, naming it.
    let twice = shard().output().unwrap();
    let stderr = String::from_utf8_lossy(&twice.stderr);
    assert_eq!(twice.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("rows.shard-2-of-2") && stderr.contains("rows-n2-shard-2-of-2"),
        "{stderr}"
    );
    // Another shard of the batch runs beside it.
    let other = command(
        &sandbox,
        "restart",
        &file,
        "20",
        &["--shard", "1/2", "--run-id", "n2"],
    )
    .output()
    .unwrap();
    ok(&other);

    // Dead mid-run (as a cancelled CI job), then started again as it was.
    assert!(!running.wait().unwrap().success());
    let again = shard().output().unwrap();
    ok(&again);
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("run `rows-n2-shard-2-of-2` started before: taking it up"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let runs: Vec<Value> = std::fs::read_to_string(dir.path().join(".sonicflow/runs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 2, "one run per shard: {runs:?}");
    // Every request charged once over the kill: three songs, three WAVs.
    let charged = charges(&sandbox, "restart");
    let mut unique = charged.clone();
    unique.dedup();
    assert_eq!(unique, charged);
    assert_eq!(charged.len(), 6, "{charged:?}");
    let status = sonicflow()
        .args(["status", "n2", "--json", "--state-dir"])
        .arg(dir.path().join(".sonicflow"))
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["total"]["succeeded"], 8, "{status:#}");
    assert_eq!(status["exit_code"], 0);
}

/// Runs shard `k` of batch `id` of `file` on `sandbox` to its end.
fn run_shard(sandbox: &SandboxProcess, file: &str, k: &str, id: &str) {
    ok(&command(
        sandbox,
        "merge",
        file,
        "1000",
        &["--shard", k, "--run-id", id],
    )
    .output()
    .unwrap());
}

fn merge(state: &Path, id: &str) -> Output {
    sonicflow()
        .args(["merge", id, "--state"])
        .arg(state)
        .output()
        .unwrap()
}

#[test]
fn merge_refuses_a_missing_shard_and_a_shard_of_another_manifest_naming_them() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", SPACING]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(".sonicflow");
    let file = write(dir.path(), ROWS);
    let three = ROWS.replace(
        "    - { id: d, mood: snowy }\n",
        "    - { id: d, mood: snowy }\n    - { id: e, mood: windy }\n",
    );
    std::fs::write(&file, &three).unwrap();
    run_shard(&sandbox, &file, "1/3", "m1");
    run_shard(&sandbox, &file, "3/3", "m1");
    let out = merge(&state, "m1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("run `m1` has no shard 2 of 3 (`--shard 2/3`"),
        "{stderr}"
    );
    // Shard 2 from an edited manifest: merge names it.
    std::fs::write(&file, three.replace("windy", "stormy")).unwrap();
    run_shard(&sandbox, &file, "2/3", "m1");
    let out = merge(&state, "m1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("shard 2 (") && stderr.contains("ran another manifest"),
        "{stderr}"
    );
    assert!(!state.join("runs/rows-m1-merged/results.json").exists());
    let unknown = merge(&state, "m9");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no run `m9` in the state folder"));
}

#[test]
fn a_shard_needs_a_run_id_and_a_well_formed_shard() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), ROWS);
    let out = sonicflow()
        .args(["run", &file, "--sandbox", "--shard", "1/2"])
        .env_remove("SONICFLOW_RUN_ID")
        .env_remove("GITHUB_RUN_ID")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pass `--run-id ID`"), "{stderr}");
    for bad in ["0/3", "3/2", "a/b"] {
        let out = sonicflow()
            .args(["plan", &file, "--shard", bad])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("write `--shard K/N`"), "{bad}: {stderr}");
    }
}

#[test]
fn plan_of_a_shard_prices_only_its_rows_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), ROWS);
    let plan = |shard: &str| -> Value {
        let out = sonicflow()
            .args(["plan", &file, "--json", "--shard", shard])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (one, two) = (plan("1/2"), plan("2/2"));
    let total = |v: &Value| v["total_credits"].as_u64().unwrap();
    let whole = sonicflow()
        .args(["plan", &file, "--json"])
        .output()
        .unwrap();
    let whole: Value = serde_json::from_slice(&whole.stdout).unwrap();
    assert_eq!(total(&one) + total(&two), total(&whole));
    let human = sonicflow()
        .args(["plan", &file, "--shard", "2/2"])
        .output()
        .unwrap();
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("shard 2/2: 2 of 4 matrix rows (b, d)"),
        "{human}"
    );
}

#[test]
fn two_shards_on_two_machines_sharing_a_bucket_pay_once_for_a_shared_request() {
    let Some(s3) = common::s3::S3Server::start() else {
        return;
    };
    let state = format!("{}/state", s3.bucket("shards"));
    let sandbox = SandboxProcess::start(&["--time-scale", "20", "--submit-interval", SPACING]);
    // Each shard on a machine of its own: its own folder and manifest copy,
    // nothing shared but the bucket.
    let machines = tempfile::tempdir().unwrap();
    let on = |name: &str| {
        let dir = machines.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir, ROWS)
    };
    let (file_1, file_2) = (on("one"), on("two"));
    let shard = |file: &str, k: &str| {
        let mut cmd = command(
            &sandbox,
            "bucket-shards",
            file,
            "20",
            &["--shard", k, "--run-id", "n2", "--state", &state],
        );
        s3.env(&mut cmd);
        cmd
    };

    let mut first = shard(&file_1, "1/2")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_event(&mut first, "submitted");
    let second = shard(&file_2, "2/2").output().unwrap();
    ok(&second);
    assert!(first.wait().unwrap().success());
    assert_eq!(
        charges(&sandbox, "bucket-shards").len(),
        3 + 3,
        "the rainy song both shards need is charged once"
    );

    // A third machine merges what the two left in the bucket.
    let third = machines.path().join("three");
    std::fs::create_dir_all(&third).unwrap();
    let mut merge = sonicflow();
    merge
        .current_dir(&third)
        .args(["merge", "n2", "--state", &state, "--out", "merged"]);
    s3.env(&mut merge);
    ok(&merge.output().unwrap());
    let merged = results(&third.join("merged"));
    let rows: Vec<(String, String, String)> = outcomes(&merged);
    assert_eq!(rows.len(), 8, "{rows:?}");
    assert!(
        rows.iter().all(|(_, _, status)| status == "succeeded"),
        "{rows:?}"
    );
    let b_song = merged["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["row_key"] == "b" && s["step"] == "song")
        .unwrap();
    assert_eq!(b_song["reused_from"], "rows-n2-shard-1-of-2", "{b_song:#}");
}
