//! Fault injection is deterministic for a seed, and webhooks are delivered
//! once per event (the terminal one, and `song.streaming` in the observed
//! style) with the documented signature.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod sandbox_support;

use std::time::Duration;

use hmac::{Hmac, Mac};
use sandbox_support::{KEY, fast, price, styled};
use serde_json::{Value, json};
use sha2::Sha256;
use sonicflow::sandbox::{AnswerStyle, DEFAULT_WEBHOOK_SECRET, Faults, Sandbox};

fn noisy() -> Faults {
    Faults {
        http_500: 0.2,
        http_429: 0.1,
        task_failed: 0.3,
        task_stuck: 0.1,
        drop_after_charge: 0.1,
        malformed_json: 0.1,
        ..Faults::default()
    }
}

/// Runs a fixed request sequence and describes everything observable that
/// does not depend on timing: each answer's kind, and the final ledger.
async fn run_sequence(seed: u64) -> (Vec<String>, Vec<String>) {
    let handle = Sandbox::start(fast().with_seed(seed).with_faults(noisy()))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for i in 0..30 {
        let body = json!({"custom_mode": true, "mv": "sonic-v5", "prompt": format!("[Verse]\nline {}", i % 7)});
        let sent = http
            .post(format!("{}/api/v1/sonic/create", handle.base_url()))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await;
        let answer = match sent {
            Err(_) => "transport error".to_owned(),
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Err(_) => format!("{status} then transport error"),
                    Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                        Ok(v) => format!(
                            "{status} {}",
                            v.get("task_id")
                                .or(v.get("message"))
                                .cloned()
                                .unwrap_or(Value::Null)
                        ),
                        Err(_) => format!("{status} malformed"),
                    },
                }
            }
        };
        answers.push(answer);
    }
    // Long enough for every task that can finish to have finished (a song
    // takes at most 150 s / 2000 = 75 ms here).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut ledger: Vec<String> = handle
        .ledger()
        .entries(KEY)
        .into_iter()
        .map(|e| {
            format!(
                "{:?} {} {} {:?} {}",
                e.kind, e.operation, e.credits, e.task_id, e.body_hash
            )
        })
        .collect();
    // Refund order follows timers; the set is what must not vary.
    ledger.sort();
    handle.shutdown().await;
    (answers, ledger)
}

#[tokio::test]
async fn same_seed_same_requests_same_outcomes() {
    let first = run_sequence(42).await;
    let second = run_sequence(42).await;
    assert_eq!(first, second);
    let kinds: std::collections::HashSet<&str> = first
        .0
        .iter()
        .map(|a| a.split_whitespace().nth(1).unwrap_or("transport"))
        .collect();
    assert!(
        kinds.len() >= 3,
        "the faults should show several kinds of answer: {:?}",
        first.0
    );
    assert!(
        first.1.iter().any(|e| e.starts_with("Refund")),
        "some task should fail and be refunded"
    );
    let other = run_sequence(7).await;
    assert_ne!(first.0, other.0, "another seed should give other outcomes");
}

type Seen = (axum::http::HeaderMap, axum::body::Bytes);

async fn receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
    use axum::{Router, routing::post};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Seen>();
    let app = Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((headers, body));
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

fn expected_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn submit_with_hook(base: &str, hook: &str, secret: Option<&str>) -> String {
    let mut body = json!({"custom_mode": true, "mv": "sonic-v5", "prompt": "[Verse]\nla", "webhook_url": hook});
    if let Some(secret) = secret {
        body["webhook_secret"] = json!(secret);
    }
    let resp: Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/sonic/create"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["task_id"].as_str().unwrap().to_owned()
}

/// The events a task with a webhook sends, in order, in `style`.
fn events(style: AnswerStyle, terminal: &str) -> Vec<String> {
    let mut events = Vec::new();
    if style == AnswerStyle::Observed {
        events.push("song.streaming".to_owned());
    }
    events.push(terminal.to_owned());
    events
}

/// The next `n` deliveries.
async fn receive(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>, n: usize) -> Vec<Seen> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let next = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        seen.push(next.unwrap().unwrap());
    }
    seen
}

fn event_of(seen: &Seen) -> String {
    seen.0["x-webhook-event"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn webhooks_are_signed_and_sent_once_per_event() {
    for style in AnswerStyle::ALL {
        let (hook, mut rx) = receiver().await;
        let handle = Sandbox::start(fast().with_style(style)).await.unwrap();
        let task_id = submit_with_hook(handle.base_url(), &hook, Some("s3cret")).await;
        let want = events(style, "song.completed");
        let seen = receive(&mut rx, want.len()).await;
        let got: Vec<String> = seen.iter().map(event_of).collect();
        assert_eq!(got, want, "{style:?}");
        for (headers, body) in &seen {
            let h = |name: &str| headers[name].to_str().unwrap().to_owned();
            assert_eq!(h("x-webhook-id"), h("idempotency-key"));
            assert_eq!(
                h("x-webhook-signature"),
                expected_signature("s3cret", &h("x-webhook-timestamp"), body)
            );
            let envelope: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(envelope["task_id"], json!(task_id));
            assert_eq!(
                (envelope["code"].clone(), envelope["platform"].clone()),
                (json!(200), json!("suno"))
            );
            assert_eq!(envelope["data"].as_array().unwrap().len(), 2);
        }
        if style == AnswerStyle::Observed {
            let streaming: Value = serde_json::from_slice(&seen[0].1).unwrap();
            assert_eq!(streaming["event"], "song.streaming");
            for clip in streaming["data"].as_array().unwrap() {
                assert_eq!(clip["state"], "streaming", "{clip}");
                assert_eq!(clip["duration"], Value::Null, "{clip}");
                assert!(clip["audio_url"].as_str().unwrap().contains("stream"));
            }
        }
        // Polling afterwards must not trigger another delivery.
        reqwest::Client::new()
            .get(format!("{}/api/v1/sonic/task/{task_id}", handle.base_url()))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "one POST per event ({style:?})");
    }
}

#[tokio::test]
async fn failed_tasks_send_song_failed_signed_with_the_default_secret() {
    for style in AnswerStyle::ALL {
        let (hook, mut rx) = receiver().await;
        let faults = Faults {
            task_failed: 1.0,
            ..Faults::default()
        };
        let config = fast().with_style(style).with_faults(faults);
        let handle = Sandbox::start(config).await.unwrap();
        submit_with_hook(handle.base_url(), &hook, None).await;
        let want = events(style, "song.failed");
        let seen = receive(&mut rx, want.len()).await;
        let got: Vec<String> = seen.iter().map(event_of).collect();
        assert_eq!(got, want, "{style:?}");
        let (headers, body) = seen.last().unwrap();
        let timestamp = headers["x-webhook-timestamp"].to_str().unwrap();
        assert_eq!(
            headers["x-webhook-signature"].to_str().unwrap(),
            expected_signature(DEFAULT_WEBHOOK_SECRET, timestamp, body)
        );
        let envelope: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(envelope["data"][0]["state"], "failed");
        assert_eq!(handle.ledger().refunded(KEY), price("create_music"));
    }
}

#[tokio::test]
async fn full_splits_fail_and_are_refunded_when_their_fault_is_on() {
    styled(async |style| {
        let faults = Faults {
            stems_full_failure: 1.0,
            ..Faults::default()
        };
        let (handle, client) =
            sandbox_support::start(fast().with_style(style).with_faults(faults)).await;
        let clip = sandbox_support::song(&client).await.remove(0).clip_id;
        let basic = client.stems_basic(&clip).await.unwrap().task_id;
        let basic = sandbox_support::wait_done(&client, &basic).await;
        assert_eq!(sandbox_support::succeeded(&basic).len(), 4);
        let full = client.stems_full(&clip).await.unwrap().task_id;
        let full = sandbox_support::wait_done(&client, &full).await;
        let clips = full.clips();
        assert_eq!(clips.len(), 24);
        assert!(
            clips
                .iter()
                .all(|c| c.state == sonicflow::api::ClipState::Failed)
        );
        // The refund lands when the task ends, which the poll above saw.
        assert_eq!(handle.ledger().refunded(KEY), price("stems_full"));
    })
    .await;
}
