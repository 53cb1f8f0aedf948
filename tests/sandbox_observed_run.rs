//! `sonicflow run` through the binary against a sandbox answering in the
//! observed style: the runner meets `not_ready`, then streaming clips with
//! empty durations, keeps polling, and finishes only on `succeeded` clips
//! with their files. The sandbox's count of the poll forms it served proves
//! each form was met, and its ledger that the plan was charged once.

mod common;

use std::time::Duration;

use common::sonicflow;
use serde_json::Value;
use sonicflow::sandbox::{AnswerStyle, Sandbox, SandboxConfig};

/// One song, polled at once and then every 3 s; at time scale 100 a song
/// takes 0.9–1.5 s, shows no clip for its first 45 ms and streams for
/// hundreds of milliseconds, so polls 30 ms apart meet every form.
const SONG: &str = "version: 1\nname: observed\ndefaults: { mv: sonic-v5-5 }\npoll: { initial_delay: 0s, interval: 3s, timeout: 10m }\nsteps:\n  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: rain on a tin roof }\n";

const SCALE: &str = "100";

/// Every object below `value` that has an `audio_url`.
fn clips(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            if map.contains_key("audio_url") {
                out.push(value.clone());
            }
            map.values().for_each(|v| clips(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| clips(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_meets_not_ready_then_streaming_then_succeeded() {
    let config = SandboxConfig::default()
        .with_time_scale(SCALE.parse().unwrap())
        .with_submit_interval(Duration::ZERO);
    assert_eq!(config.style, AnswerStyle::Observed, "the default style");
    let handle = Sandbox::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("song.yaml");
    std::fs::write(&file, SONG).unwrap();
    let out_dir = dir.path().join("out");
    let base = handle.base_url().to_owned();
    let (file_arg, out_arg) = (
        file.to_str().unwrap().to_owned(),
        out_dir.to_str().unwrap().to_owned(),
    );
    let output = tokio::task::spawn_blocking(move || {
        sonicflow()
            .args(["run", &file_arg, "--time-scale", SCALE, "--out", &out_arg])
            .env("MUSICAPI_BASE_URL", base)
            .env("MUSICAPI_KEY", "observed-key")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{log}");

    let forms = handle.poll_forms();
    for form in ["not_ready", "streaming", "succeeded"] {
        assert!(
            forms.get(form).is_some_and(|n| *n > 0),
            "the run never met `{form}`: {forms:?}"
        );
    }
    assert_eq!(forms.get("failed"), None, "{forms:?}");
    assert_eq!(
        forms.get("succeeded"),
        Some(&1),
        "the run stops polling at the first finished answer: {forms:?}"
    );

    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap())
            .unwrap();
    let mut found = Vec::new();
    clips(&results, &mut found);
    assert_eq!(found.len(), 2, "{results:#}");
    for clip in &found {
        assert_eq!(clip["state"], "succeeded", "{clip}");
        let url = clip["audio_url"].as_str().unwrap();
        assert!(url.ends_with(".mp3") && !url.contains("stream"), "{clip}");
        assert!(clip["duration"].as_f64().unwrap() > 0.0, "{clip}");
        assert_eq!(clip["mv"], "sonic-v5-5", "{clip}");
    }

    let plan = sonicflow()
        .args(["plan", "--json", file.to_str().unwrap()])
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let ledger = handle.ledger();
    assert_eq!(
        ledger.charged("observed-key"),
        plan["total_credits"].as_u64().unwrap()
    );
    assert_eq!(ledger.refunded("observed-key"), 0);
}
