//! Property: whatever sequence of requests arrives, every account's balance
//! is its start minus its charges plus its refunds, get-credits reports
//! exactly that, and no task is charged or refunded twice.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod sandbox_support;

use std::collections::HashMap;

use proptest::prelude::*;
use sandbox_support::{KEY, fast};
use serde_json::{Value, json};
use sonicflow::sandbox::{EntryKind, Faults, Sandbox};

#[derive(Debug, Clone)]
enum Op {
    Create { valid: bool, model: usize },
    Upload,
    Wav { clip: usize },
    Stems { clip: usize, full: bool },
    AlignedLyrics { clip: usize },
    Credits,
    Wait,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<bool>(), 0..3usize).prop_map(|(valid, model)| Op::Create { valid, model }),
        Just(Op::Upload),
        (0..4usize).prop_map(|clip| Op::Wav { clip }),
        (0..4usize, any::<bool>()).prop_map(|(clip, full)| Op::Stems { clip, full }),
        (0..4usize).prop_map(|clip| Op::AlignedLyrics { clip }),
        Just(Op::Credits),
        Just(Op::Wait),
    ]
}

async fn post(http: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    let resp = http
        .post(format!("{base}{path}"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap_or(Value::Null)
}

async fn run(balance: u64, ops: Vec<Op>) {
    let faults = Faults {
        task_failed: 0.4,
        ..Faults::default()
    };
    let handle = Sandbox::start(fast().with_balance(balance).with_faults(faults))
        .await
        .unwrap();
    let base = handle.base_url().to_owned();
    let http = reqwest::Client::new();
    let mut clips: Vec<String> = Vec::new();
    let mut tasks: Vec<String> = Vec::new();
    for op in ops {
        match op {
            Op::Create { valid, model } => {
                let mv = ["sonic-v5", "sonic-v4", "sonic-v4-5"][model];
                let mv = if valid { mv } else { "sonic-v0" };
                let answer = post(
                    &http,
                    &base,
                    "/api/v1/sonic/create",
                    json!({"custom_mode": true, "mv": mv, "prompt": "[Verse]\nla"}),
                )
                .await;
                if let Some(task) = answer["task_id"].as_str() {
                    tasks.push(task.to_owned());
                }
            }
            Op::Upload => {
                let answer = post(
                    &http,
                    &base,
                    "/api/v1/sonic/upload",
                    json!({"url": "https://example.com/a.mp3"}),
                )
                .await;
                if let Some(clip) = answer["clip_id"].as_str() {
                    clips.push(clip.to_owned());
                }
            }
            Op::Wav { clip } | Op::AlignedLyrics { clip } | Op::Stems { clip, .. }
                if clips.is_empty() =>
            {
                let _ = clip;
            }
            Op::Wav { clip } => {
                post(
                    &http,
                    &base,
                    "/api/v1/sonic/wav",
                    json!({"clip_id": clips[clip % clips.len()]}),
                )
                .await;
            }
            Op::Stems { clip, full } => {
                let path = if full {
                    "/api/v1/sonic/stems/full"
                } else {
                    "/api/v1/sonic/stems/basic"
                };
                post(
                    &http,
                    &base,
                    path,
                    json!({"clip_id": clips[clip % clips.len()]}),
                )
                .await;
            }
            Op::AlignedLyrics { clip } => {
                post(
                    &http,
                    &base,
                    "/api/v1/sonic/aligned-lyrics",
                    json!({"clip_id": clips[clip % clips.len()]}),
                )
                .await;
            }
            Op::Credits => {
                let resp = http
                    .get(format!("{base}/api/v1/get-credits"))
                    .bearer_auth(KEY)
                    .send()
                    .await
                    .unwrap();
                let credits: Value = resp.json().await.unwrap();
                assert_invariant(&handle, balance);
                assert!(credits["credits"].as_u64().unwrap() <= balance);
            }
            Op::Wait => {
                tokio::time::sleep(std::time::Duration::from_millis(40)).await;
                // Finished songs become sources for the clip-based operations.
                for task in &tasks {
                    let resp = http
                        .get(format!("{base}/api/v1/sonic/task/{task}"))
                        .bearer_auth(KEY)
                        .send()
                        .await
                        .unwrap();
                    let poll: Value = resp.json().await.unwrap();
                    for clip in poll["data"].as_array().into_iter().flatten() {
                        let id = clip["clip_id"].as_str().unwrap().to_owned();
                        if clip["state"] == "succeeded" && !clips.contains(&id) {
                            clips.push(id);
                        }
                    }
                }
            }
        }
        assert_invariant(&handle, balance);
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_invariant(&handle, balance);
    let resp = http
        .get(format!("{base}/api/v1/get-credits"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let credits: Value = resp.json().await.unwrap();
    assert_eq!(
        credits["credits"].as_u64().unwrap(),
        handle.ledger().balance(KEY)
    );
    handle.shutdown().await;
}

fn assert_invariant(handle: &sonicflow::sandbox::SandboxHandle, start: u64) {
    let ledger = handle.ledger();
    let entries = ledger.entries(KEY);
    assert_eq!(
        ledger.balance(KEY) + ledger.charged(KEY),
        start + ledger.refunded(KEY)
    );
    let mut per_task: HashMap<(String, EntryKind), usize> = HashMap::new();
    for e in entries.iter().filter(|e| e.task_id.is_some()) {
        *per_task
            .entry((e.task_id.clone().unwrap(), e.kind))
            .or_default() += 1;
    }
    assert!(per_task.values().all(|n| *n == 1), "{per_task:?}");
    for pair in entries.windows(2) {
        assert!(pair[0].seq < pair[1].seq);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn balance_is_start_minus_charges_plus_refunds(balance in 0u64..120, ops in proptest::collection::vec(op(), 1..14)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(balance, ops));
    }
}
