//! The README flow, in plain HTTP: upload → cover (cover_upload_music) →
//! poll → wav → download. Only reqwest and `json!` bodies, so this proves
//! the sandbox speaks the protocol, not just the typed client's, in both
//! answer styles.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

use std::time::Duration;

use serde_json::{Value, json};
use sonicflow::prices::PriceTable;
use sonicflow::sandbox::{AnswerStyle, Sandbox, SandboxConfig};

const KEY: &str = "demo-key";

async fn call(http: &reqwest::Client, req: reqwest::RequestBuilder) -> Value {
    let resp = http
        .execute(req.bearer_auth(KEY).build().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn upload_cover_poll_wav() {
    for style in AnswerStyle::ALL {
        flow(style).await;
    }
}

async fn flow(style: AnswerStyle) {
    let config = SandboxConfig::default()
        .with_time_scale(1000.0)
        .with_style(style);
    let handle = Sandbox::start(config).await.unwrap();
    let base = handle.base_url().to_owned();
    let http = reqwest::Client::new();

    let upload = call(
        &http,
        http.post(format!("{base}/api/v1/sonic/upload"))
            .json(&json!({"url": "https://example.com/demo.mp3"})),
    )
    .await;
    assert_eq!(upload["code"], 200);
    let source = upload["clip_id"].as_str().unwrap();

    // The default submit spacing is 3 s / 1000.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cover = json!({
        "task_type": "cover_upload_music", "continue_clip_id": source,
        "custom_mode": true, "mv": "sonic-v4-5", "tags": "jazz, smooth", "audio_weight": 0.6,
        "prompt": "[Verse]\nSoft rain on the window"
    });
    let submit = call(
        &http,
        http.post(format!("{base}/api/v1/sonic/create"))
            .json(&cover),
    )
    .await;
    let task_id = submit["task_id"].as_str().unwrap().to_owned();
    let documented = style == AnswerStyle::Documented;
    assert_eq!(submit.get("code").is_some(), documented, "{submit}");
    assert_eq!(submit["message"], "success");

    let mut clips = Vec::new();
    for _ in 0..1000 {
        let poll = call(
            &http,
            http.get(format!("{base}/api/v1/sonic/task/{task_id}")),
        )
        .await;
        clips = poll["data"].as_array().cloned().unwrap_or_default();
        if !clips.is_empty() && clips.iter().all(|c| c["state"] == "succeeded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(clips.len(), 2, "{clips:?}");
    assert_eq!(clips[0]["tags"], "jazz, smooth");
    let mv = if documented {
        "chirp-v4-5"
    } else {
        "sonic-v4-5"
    };
    assert_eq!(clips[0]["mv"], mv);
    let clip_id = clips[0]["clip_id"].as_str().unwrap();
    // A decimal string in the documented style, a number as seen live.
    let duration = &clips[0]["duration"];
    let duration: f64 = match duration.as_str() {
        Some(text) if documented => text.parse().unwrap(),
        _ => duration.as_f64().unwrap(),
    };

    tokio::time::sleep(Duration::from_millis(5)).await;
    let wav = call(
        &http,
        http.post(format!("{base}/api/v1/sonic/wav"))
            .json(&json!({"clip_id": clip_id})),
    )
    .await;
    let wav_url = wav["data"]["wav_url"].as_str().unwrap();
    assert!(wav_url.starts_with(&base), "{wav_url}");
    let file = http.get(wav_url).send().await.unwrap();
    assert_eq!(file.headers()["content-type"], "audio/wav");
    let bytes = file.bytes().await.unwrap();
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    assert_eq!(bytes.len(), 44 + (duration * 8000.0).round() as usize);

    let ledger = call(&http, http.get(format!("{base}/_sandbox/ledger"))).await;
    let ops: Vec<&str> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["upload", "cover_upload_music", "wav"]);
    let prices = PriceTable::builtin();
    let spent: u64 = ops.iter().map(|o| prices.price(o).unwrap()).sum();
    assert_eq!(ledger["balance"], 1000 - spent);
    let credits = call(&http, http.get(format!("{base}/api/v1/get-credits"))).await;
    assert_eq!(
        credits,
        json!({"credits": 1000 - spent, "extra_credits": 0})
    );
    handle.shutdown().await;
}
