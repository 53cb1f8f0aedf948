//! Fault injection is deterministic for a seed, and webhooks are delivered
//! once per terminal event with the documented signature.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod sandbox_support;

use std::time::Duration;

use hmac::{Hmac, Mac};
use sandbox_support::{KEY, fast};
use serde_json::{Value, json};
use sha2::Sha256;
use sonicflow::sandbox::{DEFAULT_WEBHOOK_SECRET, Faults, Sandbox};

fn noisy() -> Faults {
    Faults {
        http_500: 0.2,
        http_429: 0.1,
        task_failed: 0.3,
        task_stuck: 0.1,
        drop_after_charge: 0.1,
        malformed_json: 0.1,
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

#[tokio::test]
async fn webhooks_are_signed_and_sent_once_per_terminal_event() {
    let (hook, mut rx) = receiver().await;
    let handle = Sandbox::start(fast()).await.unwrap();
    let task_id = submit_with_hook(handle.base_url(), &hook, Some("s3cret")).await;
    let (headers, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let h = |name: &str| headers[name].to_str().unwrap().to_owned();
    assert_eq!(h("x-webhook-event"), "song.completed");
    assert_eq!(h("x-webhook-id"), h("idempotency-key"));
    assert_eq!(
        h("x-webhook-signature"),
        expected_signature("s3cret", &h("x-webhook-timestamp"), &body)
    );
    let envelope: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(envelope["task_id"], json!(task_id));
    assert_eq!(
        (envelope["code"].clone(), envelope["platform"].clone()),
        (json!(200), json!("suno"))
    );
    assert_eq!(envelope["data"].as_array().unwrap().len(), 2);
    // Polling afterwards must not trigger a second delivery.
    reqwest::Client::new()
        .get(format!("{}/api/v1/sonic/task/{task_id}", handle.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rx.try_recv().is_err(), "one POST per terminal event");
}

#[tokio::test]
async fn failed_tasks_send_song_failed_signed_with_the_default_secret() {
    let (hook, mut rx) = receiver().await;
    let faults = Faults {
        task_failed: 1.0,
        ..Faults::default()
    };
    let handle = Sandbox::start(fast().with_faults(faults)).await.unwrap();
    submit_with_hook(handle.base_url(), &hook, None).await;
    let (headers, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(headers["x-webhook-event"], "song.failed");
    let timestamp = headers["x-webhook-timestamp"].to_str().unwrap();
    assert_eq!(
        headers["x-webhook-signature"].to_str().unwrap(),
        expected_signature(DEFAULT_WEBHOOK_SECRET, timestamp, &body)
    );
    let envelope: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(envelope["data"][0]["state"], "failed");
    assert_eq!(handle.ledger().refunded(KEY), 20);
}
