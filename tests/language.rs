//! The pipelines producers asked for, each written in the manifest
//! language, validated, priced and run on the sandbox: fan-in over the
//! instances of a `for_each` and across matrix rows, conditions, choosing
//! a take, and the small conveniences (anchors and merge keys, `x-*` keys,
//! `needs` as a string, instances named by their item). Every run is
//! checked on the sandbox's ledger against the plan: equal where the plan
//! knows every count, within its maximum where it says "at most".

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::time::Duration;

use common::sonicflow;
use serde_json::Value;
use sonicflow::sandbox::{Sandbox, SandboxConfig};

const SCALE: &str = "2000";

/// One pipeline a producer wants, and what its run must show.
struct Case {
    name: &'static str,
    yaml: &'static str,
    /// What the run's results must show beyond matching its plan.
    check: fn(&Value),
}

/// The instances of `step` in results.json, in order.
fn instances<'v>(results: &'v Value, step: &str) -> Vec<&'v Value> {
    results["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == step)
        .collect()
}

/// Every clip a step's instances generated.
fn clips_of(results: &Value, step: &str) -> Vec<Value> {
    instances(results, step)
        .iter()
        .flat_map(|s| {
            s["outputs"]["clips"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

/// The id of the longest of `clips`, the first of equals (as `max_by` picks).
fn longest(clips: &[Value]) -> String {
    let secs = |c: &Value| c["duration"].as_f64().unwrap();
    let mut best = &clips[0];
    for clip in clips {
        if secs(clip) > secs(best) {
            best = clip;
        }
    }
    best["clip_id"].as_str().unwrap().to_owned()
}

/// The clip a `wav` instance exported (the sandbox names the file after it).
fn wav_source(instance: &Value) -> String {
    let url = instance["outputs"]["wav_url"].as_str().unwrap();
    url.rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".wav")
        .to_owned()
}

/// How the instances of `step` ended, by instance name.
fn statuses(results: &Value, step: &str) -> Vec<(String, String)> {
    instances(results, step)
        .iter()
        .map(|s| {
            (
                s["instance"].as_str().unwrap_or("-").to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const HEAD: &str = "version: 1\nname: t\ndefaults: { mv: sonic-v5 }\n";

const CASES: &[Case] = &[
    Case {
        name: "mashup of the covers made for each style",
        yaml: r#"
steps:
  up: { action: upload, with: { url: "https://example.com/a.mp3" } }
  covers:
    action: cover
    for_each: [jazz, bossa nova]
    with: { clip: "${{ steps.up.outputs.clip_id }}", custom_mode: false, gpt_description_prompt: "the demo as ${{ item }}", tags: "${{ item }}" }
  blend:
    action: mashup
    with:
      custom_mode: false
      gpt_description_prompt: both styles at once
      clips: ${{ steps.covers.outputs[*].clip_id }}
"#,
        check: |r| {
            assert_eq!(
                statuses(r, "blend"),
                [("-".to_owned(), "succeeded".to_owned())]
            );
        },
    },
    Case {
        name: "one WAV of the best of all takes",
        yaml: r#"
steps:
  up: { action: upload, with: { url: "https://example.com/a.mp3" } }
  covers:
    action: cover
    for_each: [jazz, bossa nova, synthwave]
    with: { clip: "${{ steps.up.outputs.clip_id }}", custom_mode: false, gpt_description_prompt: "the demo as ${{ item }}", tags: "${{ item }}" }
  best:
    action: wav
    with:
      clip: ${{ max_by(flatten(steps.covers.outputs[*].clips), c => c.duration).clip_id }}
"#,
        check: |r| {
            let best = instances(r, "best");
            assert_eq!(best.len(), 1, "one WAV, not one per cover");
            assert_eq!(wav_source(best[0]), longest(&clips_of(r, "covers")));
        },
    },
    Case {
        name: "mashup of the songs of rows a and b",
        yaml: r#"
matrix:
  key: id
  rows: [{ id: a, idea: rain }, { id: b, idea: dawn }, { id: c, idea: dusk }]
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: "${{ matrix.idea }}" }
  blend:
    action: mashup
    per: pipeline
    with:
      custom_mode: false
      gpt_description_prompt: rain meets dawn
      clips:
        - ${{ find(steps.song.instances, i => i.row == 'a').outputs.clip_id }}
        - ${{ find(steps.song.instances, i => i.row == 'b').outputs.clip_id }}
"#,
        check: |r| {
            assert_eq!(instances(r, "song").len(), 3);
            assert_eq!(
                statuses(r, "blend"),
                [("-".to_owned(), "succeeded".to_owned())]
            );
        },
    },
    Case {
        name: "one summary step after all rows",
        yaml: r#"
matrix:
  key: id
  rows: [{ id: a, idea: rain }, { id: b, idea: dawn }]
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: "${{ matrix.idea }}" }
  summary:
    action: upsample_tags
    per: pipeline
    with:
      tags: ${{ join(flatten(steps.song.outputs[*].clips)[*].tags, ', ') }}
"#,
        check: |r| {
            assert_eq!(instances(r, "summary").len(), 1);
        },
    },
    Case {
        name: "WAV only for takes longer than 3 minutes",
        yaml: r#"
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: a long song }
  wav:
    action: wav
    for_each: ${{ steps.song.outputs.clips }}
    if: ${{ item.duration > 180 }}
    with: { clip: "${{ item.clip_id }}" }
"#,
        check: |r| {
            let long: Vec<bool> = clips_of(r, "song")
                .iter()
                .map(|c| c["duration"].as_f64().unwrap() > 180.0)
                .collect();
            assert!(
                long.contains(&true) && long.contains(&false),
                "one of each: {long:?}"
            );
            let wavs = instances(r, "wav");
            assert_eq!(wavs.len(), long.len());
            for (wav, long) in wavs.iter().zip(long) {
                let want = if long {
                    "succeeded"
                } else {
                    "skipped_condition"
                };
                assert_eq!(wav["status"], want, "{wav}");
            }
        },
    },
    Case {
        name: "stems only when the song is not instrumental",
        yaml: r#"
matrix:
  key: id
  rows: [{ id: a, instrumental: true }, { id: b, instrumental: false }]
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: x, make_instrumental: "${{ matrix.instrumental }}" }
  stems:
    action: stems_basic
    if: ${{ !matrix.instrumental }}
    with: { clip: "${{ steps.song.outputs.clip_id }}" }
"#,
        check: |r| {
            let st = statuses(r, "stems");
            assert_eq!(st[0], ("a".to_owned(), "skipped_condition".to_owned()));
            assert_eq!(st[1], ("b".to_owned(), "succeeded".to_owned()));
        },
    },
    Case {
        name: "remaster only on sonic-v5",
        yaml: r#"
matrix:
  key: id
  rows: [{ id: a, mv: sonic-v5 }, { id: b, mv: sonic-v4-5 }]
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: x, mv: "${{ matrix.mv }}" }
  remaster:
    action: remaster
    if: matrix.mv == 'sonic-v5'
    with: { clip: "${{ steps.song.outputs.clip_id }}", mv: sonic-v5 }
"#,
        check: |r| {
            let st = statuses(r, "remaster");
            assert_eq!(st[0], ("a".to_owned(), "succeeded".to_owned()));
            assert_eq!(st[1], ("b".to_owned(), "skipped_condition".to_owned()));
        },
    },
    Case {
        name: "the longest take, the vocals stem by name",
        yaml: r#"
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: x }
  split:
    action: stems_basic
    with: { clip: "${{ max_by(steps.song.outputs.clips, c => c.duration).clip_id }}" }
  vocals:
    action: wav
    with: { clip: "${{ find(steps.split.outputs.stems, s => s.name == 'vocals').clip_id }}" }
"#,
        check: |r| {
            let stems = instances(r, "split")[0]["outputs"]["stems"]
                .as_array()
                .unwrap()
                .clone();
            let vocals = stems.iter().find(|s| s["name"] == "vocals").unwrap();
            assert_eq!(
                wav_source(instances(r, "vocals")[0]),
                vocals["clip_id"].as_str().unwrap()
            );
        },
    },
    Case {
        name: "the take whose BPM is closest to 120",
        yaml: r#"
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: x }
  bpm:
    action: bpm
    for_each: ${{ steps.song.outputs.clips }}
    with: { clip: "${{ item.clip_id }}" }
  wav:
    action: wav
    with:
      clip: ${{ min_by(steps.bpm.instances, i => abs(i.outputs.avg_bpm - 120)).item.clip_id }}
"#,
        check: |r| {
            let clips = clips_of(r, "song");
            let off = |s: &&Value| (s["outputs"]["avg_bpm"].as_f64().unwrap() - 120.0).abs();
            let bpms = instances(r, "bpm");
            let (at, _) = bpms
                .iter()
                .enumerate()
                .min_by(|a, b| off(a.1).total_cmp(&off(b.1)))
                .unwrap();
            assert_eq!(
                wav_source(instances(r, "wav")[0]),
                clips[at]["clip_id"].as_str().unwrap()
            );
        },
    },
    Case {
        name: "anchors, merge keys, x- keys, needs as a string, instances named by item",
        yaml: r#"
x-song: &song
  custom_mode: false
  gpt_description_prompt: x
steps:
  first:
    action: create
    with: { <<: *song, tags: calm }
  wavs:
    action: create
    needs: first
    for_each: [jazz ballad, lo-fi]
    x-note: named by the style
    with:
      <<: *song
      tags: ${{ item }}
"#,
        check: |r| {
            let names: Vec<String> = statuses(r, "wavs").into_iter().map(|(n, _)| n).collect();
            assert_eq!(names, ["jazz-ballad", "lo-fi"]);
        },
    },
];

/// The plan's total and whether it is a maximum.
fn planned(file: &str) -> (u64, bool) {
    let out = sonicflow().args(["plan", "--json", file]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        plan["total_credits"].as_u64().unwrap(),
        plan["total_at_most"] == true,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pipeline_producers_asked_for_validates_plans_and_runs_within_its_plan() {
    let config = SandboxConfig::default()
        .with_time_scale(SCALE.parse().unwrap())
        .with_submit_interval(Duration::ZERO);
    let handle = Sandbox::start(config).await.unwrap();
    let base = handle.base_url().to_owned();
    for (n, case) in CASES.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.yaml");
        std::fs::write(&file, format!("{HEAD}{}", case.yaml)).unwrap();
        let file = file.to_str().unwrap().to_owned();
        let valid = sonicflow().args(["validate", &file]).output().unwrap();
        assert_eq!(
            valid.status.code(),
            Some(0),
            "{}: {}",
            case.name,
            String::from_utf8_lossy(&valid.stderr)
        );
        let (total, at_most) = planned(&file);
        let key = format!("case-{n}");
        let out = dir.path().join("out");
        let (run_file, run_out, run_base, run_key) = (
            file.clone(),
            out.to_str().unwrap().to_owned(),
            base.clone(),
            key.clone(),
        );
        let output = tokio::task::spawn_blocking(move || {
            sonicflow()
                .args(["run", &run_file, "--time-scale", SCALE, "--out", &run_out])
                .env("MUSICAPI_BASE_URL", run_base)
                .env("MUSICAPI_KEY", run_key)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}: {}",
            case.name,
            String::from_utf8_lossy(&output.stderr)
        );
        let ledger = handle.ledger();
        let charged = ledger.charged(&key);
        if at_most {
            assert!(
                charged <= total,
                "{}: {charged} > at most {total}",
                case.name
            );
        } else {
            assert_eq!(charged, total, "{}: charged what the plan said", case.name);
        }
        let results: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(results["status"], "succeeded", "{}: {results:#}", case.name);
        (case.check)(&results);
    }
}
