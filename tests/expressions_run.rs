//! `sonicflow run` of a pipeline whose fields and fan-out are expressions,
//! against a standalone sandbox: what was sent is checked on the sandbox's
//! answers and its ledger.

mod common;

use common::{SandboxProcess, sonicflow};
use serde_json::Value;

const PIPELINE: &str = r#"version: 1
name: expressions
inputs:
  style: { default: "jazz" }
defaults: { mv: sonic-v5 }
poll: { initial_delay: 20s, interval: 15s, timeout: 10m }
steps:
  song:
    action: create
    with:
      custom_mode: true
      tags: ${{ format('{0}, live', inputs.style) }}
      title: "take ${{ length(inputs.style) * 2 }}"
      prompt: "[Verse] la la"
  wavs:
    action: wav
    for_each: ${{ filter(steps.song.outputs.clips, c => c.duration > 0 && c.tags == 'jazz, live') }}
    with: { clip: "${{ item.clip_id }}" }
  best:
    action: wav
    with:
      clip: ${{ max_by(steps.song.outputs.clips, c => c.duration).clip_id }}
  none:
    action: wav
    for_each: ${{ filter(steps.song.outputs.clips, c => c.duration < 0) }}
    with: { clip: "${{ item.clip_id }}" }
"#;

#[test]
fn expressions_in_with_and_for_each_send_what_they_choose() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, PIPELINE).unwrap();
    let file = file.to_str().unwrap();
    let sandbox = SandboxProcess::start(&["--time-scale", "1000"]);
    let out_dir = dir.path().join("out");
    let out = sandbox.run(
        "kexpr",
        &[
            file,
            "--time-scale",
            "1000",
            "--log-format",
            "json",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap())
            .unwrap();
    let steps = results["steps"].as_array().unwrap();
    let of = |id: &str| -> Vec<&Value> { steps.iter().filter(|s| s["step"] == id).collect() };
    let song = of("song")[0];
    let clips = song["outputs"]["clips"].as_array().unwrap();
    assert!(clips.len() >= 2, "{song}");
    for clip in clips {
        assert_eq!(clip["tags"], "jazz, live", "format(…) was sent as the tags");
        assert_eq!(clip["title"], "take 8", "interpolated arithmetic was sent");
    }
    // The sandbox names its WAV after the clip it was asked for.
    let wav_of = |s: &Value| s["outputs"]["wav_url"].as_str().unwrap().to_owned();
    let longest = clips
        .iter()
        .max_by(|a, b| {
            a["duration"]
                .as_f64()
                .partial_cmp(&b["duration"].as_f64())
                .unwrap()
        })
        .unwrap();
    let best = of("best");
    assert_eq!(best.len(), 1);
    assert!(
        wav_of(best[0]).ends_with(&format!("{}.wav", longest["clip_id"].as_str().unwrap())),
        "the longest take was exported: {}",
        best[0]
    );
    let wavs = of("wavs");
    assert_eq!(wavs.len(), clips.len(), "every clip passes the filter");
    for (w, c) in wavs.iter().zip(clips) {
        assert!(wav_of(w).contains(c["clip_id"].as_str().unwrap()), "{w}");
    }
    assert!(
        of("none").iter().all(|s| s["status"] != "succeeded"),
        "an empty filter sends nothing"
    );
    let wav_price = sonicflow::prices::PriceTable::builtin()
        .price("wav")
        .unwrap();
    let create_price = sonicflow::prices::PriceTable::builtin()
        .price("create_music")
        .unwrap();
    let ledger = sandbox.ledger("kexpr");
    assert_eq!(
        ledger["charged"].as_u64(),
        Some(create_price + wav_price * (clips.len() as u64 + 1)),
        "{ledger}"
    );
    let plan = sonicflow().args(["plan", "--json", file]).output().unwrap();
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert!(
        ledger["charged"].as_u64() <= plan["total_credits"].as_u64(),
        "the run stays within the plan: {plan}"
    );
}
