//! The two answer styles on the wire, in plain HTTP: every form the
//! observed style changes (not-ready object with `error`, empty URLs and a
//! `null` duration while generating, `streaming`, submits without `code`,
//! `mv` as sent, errors with `message` and `error`) and the documented form
//! it replaces. The sandbox counts the poll forms it served.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod sandbox_support;

use std::collections::BTreeSet;
use std::time::Duration;

use sandbox_support::{KEY, fast};
use serde_json::{Value, json};
use sonicflow::sandbox::{AnswerStyle, Sandbox, SandboxHandle};

async fn get(handle: &SandboxHandle, path: &str) -> (u16, Value) {
    get_with(&reqwest::Client::new(), handle, path).await
}

/// `get` on a client made once: making one loads the system's root
/// certificates, which can take longer than a song's first state lasts.
async fn get_with(http: &reqwest::Client, handle: &SandboxHandle, path: &str) -> (u16, Value) {
    let resp = http
        .get(format!("{}{path}", handle.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn post(handle: &SandboxHandle, path: &str, body: &Value) -> (u16, Value) {
    post_with(&reqwest::Client::new(), handle, path, body).await
}

async fn post_with(
    http: &reqwest::Client,
    handle: &SandboxHandle,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let resp = http
        .post(format!("{}{path}", handle.base_url()))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Every poll answer of one `sonic-v5-5` song from submit to its end,
/// polling every millisecond of a sandbox where a song takes 0.45–0.75 s,
/// so each state lasts tens of polls even on a busy machine.
async fn song_polls(style: AnswerStyle) -> (SandboxHandle, Value, Vec<Value>) {
    let config = fast().with_time_scale(200.0).with_style(style);
    let handle = Sandbox::start(config).await.unwrap();
    let body = json!({"custom_mode": true, "mv": "sonic-v5-5", "prompt": "[Verse]\nla"});
    let http = reqwest::Client::new();
    let (status, submit) = post_with(&http, &handle, "/api/v1/sonic/create", &body).await;
    assert_eq!(status, 200, "{submit}");
    let task_id = submit["task_id"].as_str().unwrap().to_owned();
    let mut polls = Vec::new();
    for _ in 0..5000 {
        let (status, poll) =
            get_with(&http, &handle, &format!("/api/v1/sonic/task/{task_id}")).await;
        assert_eq!(status, 200, "{poll}");
        let clips = poll["data"].as_array().cloned().unwrap_or_default();
        polls.push(poll);
        if !clips.is_empty() && clips.iter().all(|c| c["state"] == "succeeded") {
            return (handle, submit, polls);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the song did not finish: {:?}", polls.last());
}

fn clips_in(polls: &[Value], state: &str) -> Vec<Value> {
    polls
        .iter()
        .filter_map(|p| p["data"].as_array())
        .flatten()
        .filter(|c| c["state"] == state)
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_observed_style_answers_as_the_service_was_seen_to() {
    let (handle, submit, polls) = song_polls(AnswerStyle::Observed).await;
    assert_eq!(submit.get("code"), None, "{submit}");
    assert_eq!(submit["message"], "success");

    let first = &polls[0];
    assert_eq!(first.get("data"), None, "{first}");
    assert_eq!(first["type"], "not_ready");
    assert_eq!(first["error"], first["message"]);

    let states: BTreeSet<&str> = polls
        .iter()
        .filter_map(|p| p["data"].as_array())
        .flatten()
        .filter_map(|c| c["state"].as_str())
        .collect();
    for state in ["pending", "running", "streaming", "succeeded"] {
        assert!(states.contains(state), "{state} never seen: {states:?}");
    }
    for clip in clips_in(&polls, "pending")
        .into_iter()
        .chain(clips_in(&polls, "running"))
    {
        assert_eq!(
            (&clip["audio_url"], &clip["image_url"], &clip["duration"]),
            (&json!(""), &json!(""), &Value::Null),
            "{clip}"
        );
    }
    for clip in clips_in(&polls, "streaming") {
        let url = clip["audio_url"].as_str().unwrap();
        assert!(
            url.starts_with(handle.base_url()) && url.contains("stream"),
            "{clip}"
        );
        assert!(clip["image_url"].as_str().is_some_and(|u| !u.is_empty()));
        assert_eq!(clip["duration"], Value::Null, "{clip}");
    }
    for clip in clips_in(&polls, "succeeded") {
        assert!(clip["audio_url"].as_str().unwrap().ends_with(".mp3"));
        assert!(clip["duration"].as_f64().unwrap() > 0.0, "{clip}");
        assert_eq!(clip["mv"], "sonic-v5-5", "echoed as requested");
    }
    let streaming_status = polls.iter().any(|p| {
        p["data"]
            .as_array()
            .is_some_and(|d| d.iter().all(|c| c["state"] == "streaming"))
    });
    assert!(streaming_status, "some poll shows every clip streaming");

    let forms = handle.poll_forms();
    assert_eq!(forms.values().sum::<u64>(), polls.len() as u64, "{forms:?}");
    for form in ["not_ready", "streaming", "succeeded"] {
        assert!(forms.get(form).is_some_and(|n| *n > 0), "{forms:?}");
    }
    assert_eq!(forms.get("empty_data"), None, "{forms:?}");

    let (status, error) = get(&handle, "/api/v1/sonic/task/unknown").await;
    assert_eq!(
        (status, error),
        (
            400,
            json!({"code": 400, "message": "task not found.", "error": "task not found."})
        )
    );
}

#[tokio::test]
async fn the_documented_style_answers_as_the_reference_says() {
    let (handle, submit, polls) = song_polls(AnswerStyle::Documented).await;
    assert_eq!(submit["code"], 200, "{submit}");
    assert_eq!(
        polls[0],
        json!({"code": 200, "message": "success", "data": []})
    );
    assert!(clips_in(&polls, "streaming").is_empty());
    for clip in clips_in(&polls, "running") {
        assert_eq!(clip["audio_url"], Value::Null, "{clip}");
        assert!(clip["duration"].is_string(), "{clip}");
    }
    for clip in clips_in(&polls, "succeeded") {
        assert_eq!(clip["mv"], "chirp-v5-5");
        assert!(clip["duration"].as_str().unwrap().parse::<f64>().unwrap() > 0.0);
    }
    let forms = handle.poll_forms();
    assert!(forms.get("empty_data").is_some_and(|n| *n > 0), "{forms:?}");
    assert_eq!(forms.get("streaming"), None, "{forms:?}");
    assert_eq!(forms.get("not_ready"), None, "{forms:?}");
    let (status, error) = get(&handle, "/api/v1/sonic/task/unknown").await;
    assert_eq!(
        (status, error),
        (400, json!({"code": 400, "message": "task not found."}))
    );
}

#[tokio::test]
async fn sync_tools_keep_code_and_data_in_both_styles() {
    for style in AnswerStyle::ALL {
        let handle = Sandbox::start(fast().with_style(style)).await.unwrap();
        let (_, upload) = post(
            &handle,
            "/api/v1/sonic/upload",
            &json!({"url": "https://example.com/in.mp3"}),
        )
        .await;
        assert_eq!(upload["code"], 200, "{style:?} {upload}");
        let clip = upload["clip_id"].as_str().unwrap();
        let (_, bpm) = post(&handle, "/api/v1/sonic/bpm", &json!({"clip_id": clip})).await;
        assert_eq!(bpm["code"], 200, "{style:?} {bpm}");
        assert!(bpm["data"]["avg_bpm"].is_number(), "{style:?} {bpm}");
    }
}
