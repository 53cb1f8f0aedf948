//! Files named like music, end to end through the binary: a matrix run with
//! stems and `--download` against a standalone sandbox saves
//! `<row>/<step>/<title>-<n>.mp3`, the cover art beside it and
//! `<row>/stems/<n>/vocals.mp3`, and results.json says of every file which
//! row, step, clip and stem it is; a run killed half way and resumed names
//! every file as an uninterrupted run does, and never renames or fetches
//! again a file the journal already holds.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{SandboxProcess, sonicflow};
use serde_json::Value;
use sha2::{Digest, Sha256};

const PIPELINE: &str = "version: 1
name: named
inputs:
  mood: { default: calm }
defaults: { mv: sonic-v5 }
limits: { max_in_flight: 1 }
matrix: { key: id, file: rows.csv }
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: '${{ matrix.idea }}, ${{ inputs.mood }}' }
  stems:
    action: stems_basic
    for_each: ${{ steps.song.outputs.clips }}
    with: { clip: '${{ item.clip_id }}' }
";

const ROWS: &str = "id,idea\nsong01,rain on a tin roof\nsong07,a night drive\n";

fn setup(dir: &Path) -> String {
    std::fs::write(dir.join("rows.csv"), ROWS).unwrap();
    let file = dir.join("pipeline.yaml");
    std::fs::write(&file, PIPELINE).unwrap();
    file.to_str().unwrap().to_owned()
}

fn results(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("results.json")).expect("results.json is written");
    serde_json::from_str(&text).expect("results.json is JSON")
}

fn run_args<'a>(file: &'a str, out: &'a Path) -> Vec<&'a str> {
    vec![
        file,
        "--download",
        "--time-scale",
        "1000",
        "--log-format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]
}

/// Every file the results list, by path: (row, step, kind, stem).
fn files(results: &Value) -> BTreeMap<String, (Value, Value, Value, Value)> {
    results["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["files"].as_array().unwrap().clone())
        .map(|f| {
            let path = f["path"].as_str().unwrap().to_owned();
            let facts = (
                f["row"].clone(),
                f["step"].clone(),
                f["kind"].clone(),
                f["stem"].clone(),
            );
            (path, facts)
        })
        .collect()
}

#[test]
fn a_matrix_run_with_stems_names_every_file_like_music_and_maps_it() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000"]);
    let dir = tempfile::tempdir().unwrap();
    let file = setup(dir.path());
    let out = dir.path().join("out");
    let run = sandbox.run("k", &run_args(&file, &out));
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r = results(&out);

    // Where the run was, with what, and how long it took.
    assert_eq!(r["service"]["base_url"], sandbox.url.trim_end_matches('/'));
    assert_eq!(r["service"]["sandbox"], false);
    assert_eq!(r["inputs"], serde_json::json!({ "mood": "calm" }));
    assert!(r["matrix"]["file"].as_str().unwrap().ends_with("rows.csv"));
    assert_eq!(
        r["matrix"]["sha256"],
        hex::encode(Sha256::digest(ROWS.as_bytes()))
    );
    let keys: Vec<&str> = r["matrix"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["song01", "song07"]);
    assert_eq!(r["matrix"]["rows"][1]["values"]["idea"], "a night drive");
    assert!(r["wall_ms"].as_u64().unwrap() > 0);

    for step in r["steps"].as_array().unwrap() {
        let name = format!("{}[{}]", step["step"], step["instance"]);
        // What was sent, when it was queued and accepted, in order.
        assert!(
            step["request"]["clip"].is_string()
                || step["request"]["gpt_description_prompt"].is_string(),
            "{name}"
        );
        let queued = step["queued_at"].as_str().expect("queued_at");
        let sent = step["attempts"][0]["started_at"].as_str().unwrap();
        let accepted = step["attempts"][0]["accepted_at"]
            .as_str()
            .expect("accepted_at");
        let finished = step["finished_at"].as_str().unwrap();
        assert!(
            queued <= sent && sent <= accepted && accepted <= finished,
            "{name}"
        );

        // Every file says which row, step, instance and clip it is, and is
        // on disk with the bytes recorded.
        for f in step["files"].as_array().unwrap() {
            assert_eq!(f["row"], step["row_key"], "{name}");
            assert_eq!(f["step"], step["step"], "{name}");
            assert_eq!(f["instance"], step["instance"], "{name}");
            assert!(f["clip_id"].is_string(), "{name}");
            let bytes = std::fs::read(out.join(f["path"].as_str().unwrap())).unwrap();
            assert_eq!(f["sha256"], hex::encode(Sha256::digest(&bytes)));
            if f["kind"] == "image" {
                assert_eq!(&bytes[..2], &[0xFF, 0xD8], "cover art is a JPEG");
            }
        }
    }
    // Each song's clips (with their cover art), each clip's stems by name.
    let song = &r["steps"][0];
    let clip = &song["outputs"]["clips"][0];
    let audio = &song["files"][0];
    assert_eq!(audio["clip_id"], clip["clip_id"]);
    assert_eq!(audio["title"], clip["title"]);
    let stems = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "stems" && s["instance"] == "song07/1")
        .expect("the stems of song07's second clip");
    for (f, out) in stems["files"]
        .as_array()
        .unwrap()
        .iter()
        .zip(stems["outputs"]["stems"].as_array().unwrap())
    {
        assert_eq!(f["clip_id"], out["clip_id"], "a stem's own clip");
        assert_eq!(f["stem"], out["name"]);
    }
    let all = files(&r);
    let paths: BTreeSet<&str> = all.keys().map(String::as_str).collect();
    assert!(paths.contains("song07/stems/1/vocals.mp3"), "{paths:#?}");
    assert!(paths.contains("song01/stems/0/vocals.mp3"), "{paths:#?}");
    let title = clip["title"].as_str().unwrap().replace([' ', ','], "_");
    let row = song["row_key"].as_str().unwrap();
    for ext in ["mp3", "jpeg"] {
        let own = format!("{row}/song/{title}-1.{ext}");
        assert!(paths.contains(own.as_str()), "{own} in {paths:#?}");
    }
    assert_eq!(
        all["song07/stems/1/vocals.mp3"],
        (
            "song07".into(),
            "stems".into(),
            "stem".into(),
            "vocals".into()
        )
    );
}

/// The journal's recorded files: path → sha256.
fn journaled_files(out: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(out.join("journal.jsonl")).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["type"] == "succeeded")
        .flat_map(|r| {
            r["outputs"]["files"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn modified(out: &Path, path: &str) -> std::time::SystemTime {
    std::fs::metadata(out.join(path))
        .and_then(|m| m.modified())
        .unwrap()
}

#[test]
fn a_killed_and_resumed_run_names_its_files_as_an_uninterrupted_one() {
    let sandbox = SandboxProcess::start(&["--time-scale", "1000"]);
    let dir = tempfile::tempdir().unwrap();
    let file = setup(dir.path());

    let whole = dir.path().join("whole");
    let run = sandbox.run("k", &run_args(&file, &whole));
    assert!(run.status.success());
    let expected: BTreeSet<String> = files(&results(&whole)).into_keys().collect();

    // Killed like `kill -9` right after the third instance's result is durable.
    let out = dir.path().join("killed");
    let killed = sonicflow()
        .arg("run")
        .args(run_args(&file, &out))
        .env("MUSICAPI_BASE_URL", &sandbox.url)
        .env("MUSICAPI_KEY", "k")
        .env("SONICFLOW_CRASH_AT", "after:succeeded:3")
        .output()
        .unwrap();
    assert!(!killed.status.success(), "the crash hook stopped the run");
    let before = journaled_files(&out);
    assert!(!before.is_empty(), "some files were saved before the kill");
    let stamps: BTreeMap<&String, _> = before.keys().map(|p| (p, modified(&out, p))).collect();

    let resumed = sandbox.run(
        "k",
        &[
            "--resume",
            out.to_str().unwrap(),
            "--time-scale",
            "1000",
            "--log-format",
            "json",
        ],
    );
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let r = results(&out);
    let names: BTreeSet<String> = files(&r).into_keys().collect();
    assert_eq!(names, expected, "the same names as an uninterrupted run");
    // What the journal held before the kill is where it was, untouched.
    let listed: BTreeMap<String, String> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["files"].as_array().unwrap().clone())
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (path, sha) in &before {
        assert_eq!(
            listed.get(path),
            Some(sha),
            "{path} kept its name and bytes"
        );
        assert_eq!(
            modified(&out, path),
            stamps[path],
            "{path} was not fetched again"
        );
    }
}
